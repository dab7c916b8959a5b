// A probe, not part of the build: times gk_linear (this library's CPU build) on random quantized weights — one matrix
// product shape, dtype and number of rows of x, over `mats` distinct matrices in turn (1: the matrix stays in cache
// when it fits; enough of them: every product reads its weights from memory) — and prints the median and best
// GB/s of weights read. The library's switches (GEMMAKIT_CPU_*) and OMP_NUM_THREADS apply. Run (after
// `deno task build`):
//   g++ -O2 -std=c++17 -Ikernels/include -o /tmp/linear_probe tests/bench/probes/linear_probe.cpp
//     -Lbuild/out -lgemmakit_cpu -Wl,-rpath,$PWD/build/out   (one command)
//   OMP_NUM_THREADS=2 /tmp/linear_probe DTYPE N K [MATS [M [REPS]]]   (DTYPE: 6 Q5_0, 8 Q8_0, 12 Q4_K, 14 Q6_K)
// A two-thread figure needs a few hundred repetitions: the second core takes a while to join after the setup.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "gemmakit.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s DTYPE N K [MATS [M [REPS]]]\n", argv[0]);
    return 2;
  }
  const int dt = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]);
  const int mats = argc > 4 ? atoi(argv[4]) : 1, m = argc > 5 ? atoi(argv[5]) : 1, reps = argc > 6 ? atoi(argv[6]) : 100;
  int block_bytes, block_elems, scale_at;  // where each block's f16 scale sits
  switch (dt) {
    case GK_Q5_0: block_bytes = 22, block_elems = 32, scale_at = 0; break;
    case GK_Q8_0: block_bytes = 34, block_elems = 32, scale_at = 0; break;
    case GK_Q4_K: block_bytes = 144, block_elems = 256, scale_at = 0; break;
    case GK_Q6_K: block_bytes = 210, block_elems = 256, scale_at = 208; break;
    default: fprintf(stderr, "DTYPE: 6, 8, 12 or 14\n"); return 2;
  }
  if (n < 1 || k < 1 || k % block_elems || mats < 1 || m < 1 || reps < 1) {
    fprintf(stderr, "bad shape: K must be a multiple of %d\n", block_elems);
    return 2;
  }
  const size_t bytes = (size_t)n * k / block_elems * block_bytes;
  std::vector<std::vector<uint8_t>> w(mats, std::vector<uint8_t>(bytes));
  uint32_t seed = 1;
  const auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  for (auto& mat : w) {
    for (auto& b : mat) b = (uint8_t)(next() >> 24);
    for (size_t at = 0; at < bytes; at += block_bytes) {  // scales of a sane size (2^-7 .. 2^-6), Q4_K's dmin too
      const uint16_t h = (uint16_t)(0x2000 | (next() >> 22));
      memcpy(&mat[at + scale_at], &h, 2);
      if (dt == GK_Q4_K) memcpy(&mat[at + 2], &h, 2);
    }
  }
  std::vector<float> x((size_t)m * k), y((size_t)m * n);
  for (auto& v : x) v = (float)((int)(next() >> 16) % 2000 - 1000) / 300.0f;
  gk_context* ctx = nullptr;
  gk_stream* s = nullptr;
  if (gk_context_create(0, &ctx) != GK_OK || gk_context_default_stream(ctx, &s) != GK_OK) {
    fprintf(stderr, "gemmakit: %s\n", gk_last_error());
    return 1;
  }
  std::vector<double> t;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < mats; ++i) {
      if (gk_linear(s, x.data(), w[i].data(), dt, nullptr, m, n, k, y.data()) != GK_OK) {
        fprintf(stderr, "gk_linear: %s\n", gk_last_error());
        return 1;
      }
    }
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  const double med = t[t.size() / 2];
  printf("dtype %d [%d, %d], m = %d, %d matrices: %.1f us a product, %.2f GB/s (median of %d), best %.2f GB/s\n", dt, n,
         k, m, mats, med / mats * 1e6, bytes * mats / med / 1e9, reps, bytes * mats / t[0] / 1e9);
  gk_context_destroy(ctx);
  return 0;
}
