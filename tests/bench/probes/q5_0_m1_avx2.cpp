// A probe, not part of the build: on an AVX2 host without VNNI, would an f32 path beat the 24-bit integer path
// (kernels/cpu/linear_x24_avx2.cpp) for one row of x × a Q5_0 W (decode's gate/up projections)? The f32 row here
// decodes the codes as bytes the way the 24-bit path does (nibbles and fifth bits to 32 bytes), widens them to int32,
// converts and FMAs them against x, then scales by the block's d (the −16 offset as a sum of x per block). Both run
// on one thread over the same 256 × 1152 W (in L2), gk_linear through the library. docs/benchmarks.md has the
// figures. Run (after `deno task build`):
//   g++ -O3 -march=native -Ikernels/include -o /tmp/q5_0_m1 tests/bench/probes/q5_0_m1_avx2.cpp
//     -Lbuild/out -lgemmakit_cpu -Wl,-rpath,$PWD/build/out && OMP_NUM_THREADS=1 /tmp/q5_0_m1   (one command)
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gemmakit.h"

constexpr int K = 1152, NB = K / 32, N = 256;
struct Block {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
} __attribute__((packed));
static_assert(sizeof(Block) == 22, "Q5_0's block");

alignas(32) static float x[K];
static float xsum[NB];

inline float hsum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  return _mm_cvtss_f32(_mm_hadd_ps(_mm_hadd_ps(s, s), s));
}

// Byte j: 0xFF when bit j of x is set (as linear_x24_avx2.cpp's bits_to_bytes).
inline __m256i bits_to_bytes(uint32_t x) {
  const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                          0x0303030303030303);
  const __m256i bytes = _mm256_or_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf),
                                        _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
  return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

float f32_row(const Block* row) {
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};  // two chains: even and odd blocks
  float offset = 0.0f;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int b = 0; b < NB; ++b) {
    const Block& blk = row[b];
    const float* xb = x + 32 * b;
    const __m128i q = _mm_loadu_si128((const __m128i*)blk.qs);
    uint32_t qh;
    memcpy(&qh, blk.qh, 4);
    const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low4);
    const __m256i codes = _mm256_or_si256(nib, _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
    const __m128i lo = _mm256_castsi256_si128(codes), hi = _mm256_extracti128_si256(codes, 1);
    __m256 s = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), _mm256_load_ps(xb));
    s = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), _mm256_load_ps(xb + 8), s);
    __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), _mm256_load_ps(xb + 16));
    t = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), _mm256_load_ps(xb + 24), t);
    const float d = _cvtsh_ss(blk.d);
    acc[b & 1] = _mm256_fmadd_ps(_mm256_add_ps(s, t), _mm256_set1_ps(d), acc[b & 1]);
    offset = std::fma(-16.0f * d, xsum[b], offset);
  }
  return hsum(_mm256_add_ps(acc[0], acc[1])) + offset;
}

double ref_row(const Block* row) {
  double s = 0;
  for (int b = 0; b < NB; ++b) {
    uint32_t qh;
    memcpy(&qh, row[b].qh, 4);
    for (int e = 0; e < 32; ++e) {
      const int nib = e < 16 ? row[b].qs[e] & 15 : row[b].qs[e - 16] >> 4;
      s += (double)((nib | (int)((qh >> e) & 1) << 4) - 16) * _cvtsh_ss(row[b].d) * x[32 * b + e];
    }
  }
  return s;
}

int main() {
  std::vector<Block> w(N * NB);
  for (auto& b : w) {
    b.d = (uint16_t)(0x2000 | (rand() & 0x3ff));
    for (auto& c : b.qh) c = (uint8_t)rand();
    for (auto& c : b.qs) c = (uint8_t)rand();
  }
  for (float& v : x) v = (float)(rand() % 1000) / 500.0f - 1.0f;
  for (int b = 0; b < NB; ++b) {
    float s = 0;
    for (int e = 0; e < 32; ++e) s += x[32 * b + e];
    xsum[b] = s;
  }
  gk_context* ctx = nullptr;
  gk_stream* stream = nullptr;
  if (gk_context_create(0, &ctx) != GK_OK || gk_context_default_stream(ctx, &stream) != GK_OK) {
    fprintf(stderr, "gemmakit: %s\n", gk_last_error());
    return 1;
  }
  std::vector<float> y(N), yl(N);
  double best[2] = {1e30, 1e30};
  for (int rep = 0; rep < 600; ++rep) {
    const int variant = rep % 2;
    const auto t0 = std::chrono::steady_clock::now();
    if (variant == 0) {
      for (int r = 0; r < N; ++r) y[r] = f32_row(&w[r * NB]);
    } else if (gk_linear(stream, x, w.data(), GK_Q5_0, nullptr, 1, N, K, yl.data()) != GK_OK) {
      fprintf(stderr, "gk_linear: %s\n", gk_last_error());
      return 1;
    }
    const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / N;
    best[variant] = std::min(best[variant], ns);
  }
  double e0 = 0, e1 = 0;
  for (int r = 0; r < N; ++r) {
    const double ref = ref_row(&w[r * NB]);
    e0 = std::max(e0, std::fabs(y[r] - ref)), e1 = std::max(e1, std::fabs(yl[r] - ref));
  }
  printf("f32 row (bytes widened):    %.1f ns a row (k = %d), largest error against double %.2g\n", best[0], K, e0);
  printf("gk_linear (this library):   %.1f ns a row, largest error against double %.2g\n", best[1], e1);
  gk_context_destroy(ctx);
  return 0;
}
