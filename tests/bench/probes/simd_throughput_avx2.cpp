// A probe, not part of the build: how many vector multiplies a core issues per nanosecond — f32 FMAs against the
// integer pair (vpmaddubsw, then vpmaddwd) that int8 products use for 32 multiply-adds — so a host's answer to "can
// integer x beat f32 here" is read off in a second, before writing a kernel. Each test keeps 8 independent chains
// (enough to cover the latencies), the values opaque to the compiler. On the 2-vCPU AMD EPYC (Zen 3) of these
// sessions vpmaddubsw, vpmaddwd and FMAs all issued 2 a cycle and from the same two slots (8 + 8 of two kinds took as
// long as 16 of one; 4 + 4 as long as 8): an int8 pair's 32 multiply-adds cost one cycle against four FMAs' two, so
// integer products can at best halve the f32 tiles' multiply time there, before any conversion or scaling, and an
// integer path cannot run beside an f32 one on idle ports (docs/benchmarks.md).
// Run:
//   g++ -O2 -mavx2 -mfma -o /tmp/simd_throughput tests/bench/probes/simd_throughput_avx2.cpp && /tmp/simd_throughput
#include <immintrin.h>

#include <chrono>
#include <cstdio>

namespace {

constexpr long kIters = 20000000;
volatile int seed = 1;  // keeps the inputs unknown at compile time
volatile float sunk;

// Each op's result feeds its own chain only; the empty asm keeps GCC from merging or hoisting the chains.
#define OPAQUE(v) __asm__("" : "+x"(v))

template <typename Body>
double ns_per_iteration(Body body) {
  double best = 1e30;
  for (int round = 0; round < 3; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    for (long n = 0; n < kIters; ++n) body();
    const double ns = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() * 1e9 / kIters;
    if (ns < best) best = ns;
  }
  return best;
}

}  // namespace

int main() {
  const __m256i xb = _mm256_set1_epi8((char)(seed + 2)), xw = _mm256_set1_epi16((short)(seed + 1));
  const __m256 fx = _mm256_set1_ps(seed * 1.0f), fy = _mm256_set1_ps(0.0f);
  __m256i a0 = _mm256_set1_epi8((char)seed), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
  __m256 f0 = _mm256_set1_ps((float)seed), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0, f6 = f0, f7 = f0;
#define EACH8(OP, P) OP(P##0) OP(P##1) OP(P##2) OP(P##3) OP(P##4) OP(P##5) OP(P##6) OP(P##7)
#define EACH4(OP, P) OP(P##0) OP(P##1) OP(P##2) OP(P##3)
#define MUB(v) v = _mm256_maddubs_epi16(v, xb); OPAQUE(v);
#define MADD(v) v = _mm256_madd_epi16(v, xw); OPAQUE(v);
#define ADD(v) v = _mm256_add_epi32(v, xb); OPAQUE(v);
#define FMA(v) v = _mm256_fmadd_ps(v, fx, fy); OPAQUE(v);
  const double add = ns_per_iteration([&] { EACH8(ADD, a) });
  const double mub = ns_per_iteration([&] { EACH8(MUB, a) });
  const double madd = ns_per_iteration([&] { EACH8(MADD, a) });
  const double both = ns_per_iteration([&] { EACH8(MUB, a) EACH8(MADD, a) });
  const double fma = ns_per_iteration([&] { EACH8(FMA, f) });
  const double mixed = ns_per_iteration([&] { EACH4(MUB, a) EACH4(FMA, f) });
  // (the chains' values are used, so none of the loops is dead code)
  const __m256 fs = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(f0, f1), _mm256_add_ps(f2, f3)),
                                  _mm256_add_ps(_mm256_add_ps(f4, f5), _mm256_add_ps(f6, f7)));
  const __m256i as = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(a0, a1), _mm256_add_epi32(a2, a3)),
                                      _mm256_add_epi32(_mm256_add_epi32(a4, a5), _mm256_add_epi32(a6, a7)));
  sunk = _mm256_cvtss_f32(fs) + (float)_mm256_extract_epi32(as, 0);
  printf("ns for 8 independent ops (best of 3 x %ld):\n", kIters);
  printf("  vpaddd %.2f   vpmaddubsw %.2f   vpmaddwd %.2f   8 vpmaddubsw + 8 vpmaddwd %.2f   vfmadd %.2f\n", add, mub,
         madd, both, fma);
  printf("  4 vpmaddubsw + 4 vfmadd %.2f (the two sharing ports if near the slower of the two alone)\n", mixed);
  printf("multiply-adds per ns: int8 pairs (32 each) %.1f, f32 FMAs (8 each) %.1f: int8 / f32 = %.2f\n",
         8 * 32 / both, 8 * 8 / fma, (8 * 32 / both) / (8 * 8 / fma));
  return 0;
}
