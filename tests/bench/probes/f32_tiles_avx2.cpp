// A probe, not part of the build: how close to the FMA peak can 8 rows of x × a Q8_0 W (the batched decode step's
// lm_head, kernels/cpu/linear.cpp qdot_block<GK_Q8_0, 8, 1>) get on one AVX2 core, and which register tile gets
// there? It times, on one thread with W in L2 (240 rows, k = 640): the FMA peak (12 independent FMA chains in
// registers), the current tile (a W block decoded once, then 32 FMAs with x from memory, one accumulator per row of
// x), four other tiles (2 or 3 W rows sharing each x load, the rows of x in two passes), the current tile with 2
// accumulators a row, and the current tile on W already in f32 (no decoding at all). docs/benchmarks.md has the
// figures. Run:
//   g++ -O3 -march=native -o /tmp/f32_tiles tests/bench/probes/f32_tiles_avx2.cpp && /tmp/f32_tiles
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

constexpr int K = 640, NB = K / 32, MX = 8, N = 240;
struct Block {
  uint16_t d;
  int8_t q[32];
} __attribute__((packed));

alignas(32) static float x[MX][K];

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  return _mm_cvtss_f32(_mm_hadd_ps(_mm_hadd_ps(s, s), s));
}

inline __m256 decode(const Block& b, int v, __m256 d) {
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(b.q + 8 * v)))), d);
}

// The library's tile: a block's 4 vectors decoded, then for each row of x its 4 FMAs (ACC accumulators a row).
template <int M, int ACC>
void current(const Block* row, const float* xs, float* y, int ystride) {
  __m256 acc[M][ACC];
  for (auto& a : acc)
    for (auto& v : a) v = _mm256_setzero_ps();
  for (int b = 0; b < NB; ++b) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(row[b].d));
    __m256 wv[4];
    for (int v = 0; v < 4; ++v) wv[v] = decode(row[b], v, d);
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      for (int v = 0; v < 4; ++v) {
        acc[i][v % ACC] = _mm256_fmadd_ps(wv[v], _mm256_load_ps(xs + i * K + 32 * b + 8 * v), acc[i][v % ACC]);
      }
    }
  }
  for (int i = 0; i < M; ++i) {
    __m256 s = acc[i][0];
    for (int a = 1; a < ACC; ++a) s = _mm256_add_ps(s, acc[i][a]);
    y[i * ystride] = hsum(s);
  }
}

// M rows of x against R W rows: per vector, R decoded, then each row of x loaded once for R FMAs.
template <int M, int R>
void shared_x(const Block* rows, const float* xs, float* y, int ystride) {
  __m256 acc[M][R];
  for (auto& a : acc)
    for (auto& v : a) v = _mm256_setzero_ps();
  for (int b = 0; b < NB; ++b) {
    __m256 d[R];
    for (int j = 0; j < R; ++j) d[j] = _mm256_set1_ps(_cvtsh_ss(rows[j * NB + b].d));
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) {
      __m256 w[R];
      for (int j = 0; j < R; ++j) w[j] = decode(rows[j * NB + b], v, d[j]);
#pragma GCC unroll 8
      for (int i = 0; i < M; ++i) {
        const __m256 xv = _mm256_load_ps(xs + i * K + 32 * b + 8 * v);
        for (int j = 0; j < R; ++j) acc[i][j] = _mm256_fmadd_ps(w[j], xv, acc[i][j]);
      }
    }
  }
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < R; ++j) y[i * ystride + j] = hsum(acc[i][j]);
}

// The current tile's FMAs on W already in f32: what the tile costs without any decoding.
void f32_w(const float* row, const float* xs, float* y, int ystride) {
  __m256 acc[MX];
  for (auto& a : acc) a = _mm256_setzero_ps();
  for (int c = 0; c < K; c += 8) {
    const __m256 wv = _mm256_loadu_ps(row + c);
#pragma GCC unroll 8
    for (int i = 0; i < MX; ++i) acc[i] = _mm256_fmadd_ps(wv, _mm256_load_ps(xs + i * K + c), acc[i]);
  }
  for (int i = 0; i < MX; ++i) y[i * ystride] = hsum(acc[i]);
}

// GMAC/s of 12 independent FMA chains (8 lanes each) on this thread.
double fma_peak() {
  __m256 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(i * 0.001f);
  const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
  double best = 0;
  for (int round = 0; round < 5; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long it = 0; it < 5000000; ++it) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], m, c);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 5e6 * 12 * 8 / s / 1e9);
  }
  float sink = 0;
  for (auto& v : a) sink += v[0];
  return sink == 12345.0f ? 0 : best;
}

int main() {
  std::vector<Block> w(N * NB);
  for (auto& b : w) {
    b.d = 0x2000;
    for (auto& q : b.q) q = (int8_t)(rand() % 255 - 127);
  }
  std::vector<float> wf((size_t)N * K);
  for (int r = 0; r < N; ++r)
    for (int b = 0; b < NB; ++b)
      for (int e = 0; e < 32; ++e) wf[(size_t)r * K + 32 * b + e] = w[r * NB + b].q[e] * _cvtsh_ss(w[r * NB + b].d);
  for (auto& row : x)
    for (float& v : row) v = (float)(rand() % 1000) / 500.0f - 1.0f;
  const double peak = fma_peak();
  printf("FMA peak (12 chains in registers): %.1f GMAC/s on this thread\n", peak);
  const char* names[] = {"current: 8 rows of x, 1 W row",  "4 + 4 rows of x, 2 W rows",
                         "6 + 2 rows of x, 2 W rows",      "4 + 4 rows of x, 3 W rows",
                         "current, 2 accumulators a row", "current on f32 W (no decoding)"};
  std::vector<float> y(MX * N), ref(MX * N);
  for (int variant = 0; variant < 6; ++variant) {
    double best = 1e30;
    for (int rep = 0; rep < 30; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int it = 0; it < 20; ++it) {
        for (int r = 0; r < N;) {
          const Block* rows = &w[r * NB];
          switch (variant) {
            case 0: current<8, 1>(rows, &x[0][0], &y[r], N), r += 1; break;
            case 1:
              shared_x<4, 2>(rows, &x[0][0], &y[r], N), shared_x<4, 2>(rows, &x[4][0], &y[4 * N + r], N), r += 2;
              break;
            case 2:
              shared_x<6, 2>(rows, &x[0][0], &y[r], N), shared_x<2, 2>(rows, &x[6][0], &y[6 * N + r], N), r += 2;
              break;
            case 3:
              shared_x<4, 3>(rows, &x[0][0], &y[r], N), shared_x<4, 3>(rows, &x[4][0], &y[4 * N + r], N), r += 3;
              break;
            case 4: current<8, 2>(rows, &x[0][0], &y[r], N), r += 1; break;
            default: f32_w(&wf[(size_t)r * K], &x[0][0], &y[r], N), r += 1; break;
          }
        }
      }
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, ns / (20.0 * N));
    }
    if (variant == 0) ref = y;
    double diff = 0;
    for (int i = 0; i < MX * N; ++i) diff = std::max(diff, (double)std::fabs(y[i] - ref[i]));
    const double gmac = 8.0 * K / best;
    printf("%-32s %6.1f ns a W row: %5.1f GMAC/s, %3.0f%% of the peak (largest difference from the first %.1g)\n",
           names[variant], best, gmac, 100 * gmac / peak, diff);
  }
  return 0;
}
