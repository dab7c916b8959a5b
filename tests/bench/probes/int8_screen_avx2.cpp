// A probe, not part of the build: on an AVX2 host without VNNI, is an int8 screen of a Q8_0 lm_head (x's high byte
// against the codes: vpsignb + vpmaddubsw + vpmaddwd, a conversion and a scaled add per block and row of x) cheaper
// than the f32 path gk_linear takes for 8 rows of x (each block decoded once, then 4 FMAs per 32 codes and row)? It
// times both inner loops over 256 W rows (in L2) on one thread. docs/benchmarks.md has the figures. Run:
//   g++ -O3 -march=native -o /tmp/probe tests/bench/probes/int8_screen_avx2.cpp && /tmp/probe
// (a scale per block and row of x, one permute each), or with -DSHARED_SCALE (one scale per block for all rows).
#include <immintrin.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <vector>

constexpr int K = 640, NB = K / 32, M = 8, N = 256;
struct Block {
  uint16_t d;
  int8_t q[32];
} __attribute__((packed));

alignas(32) static float x[M][K];
alignas(32) static int8_t xq[M][K];
alignas(32) static float xs[NB][8];

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  return _mm_cvtss_f32(_mm_hadd_ps(_mm_hadd_ps(s, s), s));
}

// gk_linear's AVX2 path for 8 rows of x (linear.cpp qdot_block<GK_Q8_0, 8, 1>): decode once, 32 FMAs per block.
void f32_row(const Block* row, __m256* acc) {
  for (int b = 0; b < NB; ++b) {
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(row[b].d));
    __m256 wv[4];
    for (int v = 0; v < 4; ++v) {
      const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i*)(row[b].q + 8 * v)));
      wv[v] = _mm256_mul_ps(_mm256_cvtepi32_ps(q), d);
    }
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      for (int v = 0; v < 4; ++v) acc[i] = _mm256_fmadd_ps(wv[v], _mm256_load_ps(&x[i][32 * b + 8 * v]), acc[i]);
    }
  }
}

// The screen's value: codes' magnitudes against x's int8 codes signed by the weights', scaled per block.
void int8_row(const Block* row, __m256* acc) {
  for (int b = 0; b < NB; ++b) {
    const __m256i q = _mm256_loadu_si256((const __m256i*)row[b].q);
    const __m256i aq = _mm256_sign_epi8(q, q);
    const __m256 ds = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(row[b].d)), _mm256_load_ps(xs[b]));
#pragma GCC unroll 8
    for (int i = 0; i < M; ++i) {
      const __m256i sx = _mm256_sign_epi8(_mm256_load_si256((const __m256i*)&xq[i][32 * b]), q);
      const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, sx), _mm256_set1_epi16(1));
#if defined(SHARED_SCALE)
      const __m256 scale = ds;
#else
      const __m256 scale = _mm256_permutevar8x32_ps(ds, _mm256_set1_epi32(i));
#endif
      acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[i]);
    }
  }
}

int main() {
  std::vector<Block> w(N * NB);
  for (auto& b : w) {
    b.d = 0x2000;
    for (int j = 0; j < 32; ++j) b.q[j] = (int8_t)(rand() % 255 - 127);
  }
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < K; ++j) {
      x[i][j] = (float)(rand() % 1000) / 500.0f - 1.0f;
      xq[i][j] = (int8_t)(rand() % 255 - 127);
    }
  }
  for (auto& s : xs)
    for (float& v : s) v = 0.01f;
  std::vector<float> y(M * N);
  for (int variant = 0; variant < 2; ++variant) {
    double best = 1e30;
    for (int rep = 0; rep < 20; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int it = 0; it < 20; ++it) {
        for (int r = 0; r < N; ++r) {
          __m256 acc[M];
          for (auto& a : acc) a = _mm256_setzero_ps();
          if (variant == 0) {
            f32_row(&w[r * NB], acc);
          } else {
            int8_row(&w[r * NB], acc);
          }
          for (int i = 0; i < M; ++i) y[i * N + r] = hsum(acc[i]);
        }
      }
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, ns / (20.0 * N));
    }
    printf("%s: %.1f ns a W row (8 rows of x, k = %d); a 262,144-row lm_head on one thread: %.1f ms\n",
           variant ? "int8 screen" : "f32 path   ", best, K, best * 262144 / 1e6);
  }
  return y[3] == 12345.0f;  // (keeps the products live)
}
