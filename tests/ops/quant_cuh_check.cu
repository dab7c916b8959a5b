// quant.cuh's decoders (the CUDA kernels' decode8 / dot8, both load policies), run on the host, against
// kernels/cpu/quant.h's decode_block (held to ggml's values by the op-parity rows and tests/runtime/quant_test.ts).
// Built and run by tests/ops/quant_cuh_test.ts wherever nvcc is found: no GPU needed. Values compare with ==
// (CUDA keeps ggml's -0 where the CPU's scale * q + offset gives +0).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include "cuda/quant.cuh"
#include "cpu/quant.h"

static uint32_t rs = 12345;
static uint8_t rb() { rs = rs * 1103515245u + 12345u; return (uint8_t)(rs >> 16); }

template <int DT>
int check(const char* name) {
  constexpr int BE = gk::block_elems(DT), BB = gk::block_bytes(DT);
  int bad = 0;
  for (int t = 0; t < 200; ++t) {
    alignas(16) uint8_t blk[256];
    for (int i = 0; i < BB; ++i) blk[i] = rb();
    // f16 scales of either sign and magnitude 2^-11 .. 2^4 (high byte 0x10 .. 0x2f): finite products.
    auto f16 = [&](int at) { blk[at + 1] = (uint8_t)(0x10 + (rb() & 0x1f)) | (rb() & 0x80); };
    if (DT == GK_Q2_K) { f16(80); f16(82); }
    else if (DT == GK_Q3_K) f16(108);
    else if (DT == GK_Q6_K) f16(208);
    else if (DT == GK_MXFP4) blk[0] = 110 + rb() % 30;
    else { f16(0); if (DT == GK_Q4_K || DT == GK_Q5_K || DT == GK_Q4_1 || DT == GK_Q5_1) f16(2); }
    float ref[256];
    gk::quant::decode_block<DT>(blk, ref);
    for (int e0 = 0; e0 < BE; e0 += 8) {
      float a[8], b[8];
      gk::cuda::quant::decode8<DT>(gk::cuda::quant::load_raw8<DT, gk::cuda::quant::AlignedLoad>(blk, e0), e0, a);
      gk::cuda::quant::decode8<DT>(gk::cuda::quant::load_raw8<DT, gk::cuda::quant::ByteLoad>(blk, e0), e0, b);
      float x[8], xsum = 0; double want = 0;
      for (int i = 0; i < 8; ++i) { x[i] = (rb() - 128) / 64.0f; xsum += x[i]; want += (double)x[i] * ref[e0 + i]; }
      float got = gk::cuda::quant::dot8<DT>(gk::cuda::quant::load_raw8<DT, gk::cuda::quant::AlignedLoad>(blk, e0), e0, x, xsum);
      double mag = 0; for (int i = 0; i < 8; ++i) mag += fabs((double)x[i] * ref[e0 + i]);
      if (fabs(got - want) > 1e-5 * mag + 1e-30) {  // f32 sums of 8 products
        if (bad++ < 3) printf("%s dot e0=%d got %g want %g\n", name, e0, got, want);
      }
      for (int i = 0; i < 8; ++i) {
        if (!(a[i] == ref[e0 + i]) || !(b[i] == ref[e0 + i])) {
          if (bad++ < 3) printf("%s e=%d got %g / %g want %g\n", name, e0 + i, a[i], b[i], ref[e0 + i]);
        }
      }
    }
  }
  printf("%-7s %s\n", name, bad ? "MISMATCH" : "ok");
  return bad;
}

int main() {
  int bad = 0;
#define C(DT) bad += check<DT>(#DT);
  GK_QUANT_DTYPES(C)
  return bad != 0;
}
