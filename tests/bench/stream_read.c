// Read-only memory bandwidth: T OpenMP threads each sum their contiguous share of a 1 GiB buffer (far
// larger than any cache) with 512-bit (or whatever -march gives) loads, best of R passes. Decode reads
// every weight once per token and writes almost nothing, so this, not a copy, is its bound.
// Built and run by tests/bench/stream_read.ts: cc -O3 -march=native -fopenmp stream_read.c; ./a.out [MiB] [reps]
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

int main(int argc, char** argv) {
  const size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 1024;
  const int reps = argc > 2 ? atoi(argv[2]) : 8;
  const size_t n = mib * 1024 * 1024 / sizeof(float);
  float* buf = aligned_alloc(64, n * sizeof(float));
  if (!buf) return 1;
  // First touch from the threads that will read it (one NUMA node here, but it also faults every page in).
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) buf[i] = (float)(i & 7);
  double best = 1e30, sink = 0;
  for (int r = 0; r < reps; ++r) {
    const double t0 = omp_get_wtime();
    double total = 0;
#pragma omp parallel reduction(+ : total)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t lo = n / 128 * t / nt * 128, hi = n / 128 * (t + 1) / nt * 128;
#if defined(__AVX512F__)
      // 8 independent accumulators: the adds never wait on each other, only on memory. Intrinsics, since
      // compilers differ on whether they vectorise a plain float reduction without -ffast-math.
      __m512 acc[8];
      for (int a = 0; a < 8; ++a) acc[a] = _mm512_setzero_ps();
      for (size_t i = lo; i < hi; i += 128)
        for (int a = 0; a < 8; ++a) acc[a] = _mm512_add_ps(acc[a], _mm512_load_ps(buf + i + 16 * a));
      for (int a = 0; a < 8; ++a) total += _mm512_reduce_add_ps(acc[a]);
#else
      // The same with the compiler's generic 256-bit vectors (an AVX2 ymm, two NEON q registers). A plain float
      // loop is not vectorised without -ffast-math: its scalar adds held an AVX2 core to ~8 GB/s, half of what its
      // vector loads get, and made the bound of every "% of bound" on such hosts ~1.7x too low.
      typedef float v8f __attribute__((vector_size(32)));
      v8f acc[8];
      memset(acc, 0, sizeof acc);
      for (size_t i = lo; i < hi; i += 128)
        for (int a = 0; a < 16; ++a) {
          v8f v;
          memcpy(&v, buf + i + 8 * a, sizeof v);  // a plain load (buf is 64-byte aligned; i is a multiple of 128)
          acc[a & 7] += v;
        }
      for (int a = 0; a < 8; ++a)
        for (int l = 0; l < 8; ++l) total += acc[a][l];
#endif
    }
    const double dt = omp_get_wtime() - t0;
    sink += total;
    if (dt < best) best = dt;
  }
  printf("{\"threads\": %d, \"bytes\": %zu, \"best_s\": %.6f, \"gbs\": %.3f, \"sink\": %g}\n", omp_get_max_threads(),
         n * sizeof(float), best, n * sizeof(float) / best / 1e9, sink);
  free(buf);
  return 0;
}
