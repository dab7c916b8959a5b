// Row-wise argmax with torch's tie and NaN rules.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

// True when candidate (v, i) beats the current best (bv, bi): NaN is the largest value, and between equal
// values (or two NaNs) the lower index wins, so the result is the first maximum whatever the reduction order.
__device__ __forceinline__ bool better(float v, int32_t i, float bv, int32_t bi) {
  const bool vn = v != v, bn = bv != bv;
  if (vn || bn) return vn && (!bn || i < bi);
  return v > bv || (v == bv && i < bi);
}

// One block per row; starts from (-inf, INT32_MAX) so an all -inf row still picks index 0.
__global__ void argmax_kernel(const float* __restrict__ x, int32_t* __restrict__ out, int32_t cols) {
  __shared__ float sv[32];
  __shared__ int32_t si[32];
  const float* xr = x + (int64_t)blockIdx.x * cols;
  float bv = -INFINITY;
  int32_t bi = INT32_MAX;
  for (int32_t j = threadIdx.x; j < cols; j += blockDim.x) {
    const float v = xr[j];
    if (better(v, j, bv, bi)) {
      bv = v;
      bi = j;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sv[warp] = bv;
    si[warp] = bi;
  }
  __syncthreads();
  if (warp == 0) {
    const int warps = blockDim.x >> 5;
    bv = lane < warps ? sv[lane] : -INFINITY;
    bi = lane < warps ? si[lane] : INT32_MAX;
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int32_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (better(ov, oi, bv, bi)) {
        bv = ov;
        bi = oi;
      }
    }
    if (lane == 0) out[blockIdx.x] = bi;
  }
}

}  // namespace

GK_API gk_status gk_argmax(gk_stream* s, const float* x, int32_t* out, int32_t rows, int32_t cols) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_argmax", &st));
  GK_TRY(gk::validate_rows("gk_argmax", x, out, rows, cols));
  argmax_kernel<<<rows, row_threads(cols), 0, st>>>(x, out, cols);
  GK_LAUNCH_CHECK();
  return GK_OK;
}
