// Elementwise f32 ops: add/mul with cyclic broadcast, scale, GELU (tanh), gated GELU, softcap.
#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;

constexpr int kThreads = 256;

// 64-bit grid-stride loops: n is int64 and may exceed 2^31, and a capped grid serves every size.
#define GK_GRID_STRIDE(i, n) \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

enum BinaryOp { ADD, MUL };

// Aliasing between y and a/b is fine: each element is read then written by one thread.
template <BinaryOp OP, bool FULL>
__global__ void binary_kernel(const float* a, const float* b, float* y, int64_t n, int64_t b_n) {
  GK_GRID_STRIDE(i, n) {
    const float bv = FULL ? b[i] : b[i % b_n];  // the modulo only when b is really broadcast
    y[i] = OP == ADD ? a[i] + bv : a[i] * bv;
  }
}

__global__ void scale_kernel(const float* x, float* y, int64_t n, float alpha) {
  GK_GRID_STRIDE(i, n) y[i] = x[i] * alpha;
}

__global__ void gelu_kernel(const float* x, float* y, int64_t n) {
  GK_GRID_STRIDE(i, n) y[i] = gelu_tanh(x[i]);
}

__global__ void gelu_mul_kernel(const float* gate, const float* up, float* y, int64_t n) {
  GK_GRID_STRIDE(i, n) y[i] = gelu_tanh(gate[i]) * up[i];
}

__global__ void softcap_kernel(const float* x, float* y, int64_t n, float cap) {
  GK_GRID_STRIDE(i, n) y[i] = cap * tanhf(x[i] / cap);
}

template <BinaryOp OP>
gk_status binary(const char* op, gk_stream* s, const float* a, const float* b, float* y, int64_t n, int64_t b_n) {
  cudaStream_t st;
  GK_TRY(begin_op(s, op, &st));
  GK_TRY(gk::validate_binary(op, a, b, y, n, b_n));
  if (b_n == n) binary_kernel<OP, true><<<grid_for(n, kThreads), kThreads, 0, st>>>(a, b, y, n, b_n);
  else binary_kernel<OP, false><<<grid_for(n, kThreads), kThreads, 0, st>>>(a, b, y, n, b_n);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

}  // namespace

GK_API gk_status gk_add(gk_stream* s, const float* a, const float* b, float* y, int64_t n, int64_t b_n) {
  return binary<ADD>("gk_add", s, a, b, y, n, b_n);
}

GK_API gk_status gk_mul(gk_stream* s, const float* a, const float* b, float* y, int64_t n, int64_t b_n) {
  return binary<MUL>("gk_mul", s, a, b, y, n, b_n);
}

GK_API gk_status gk_scale(gk_stream* s, const float* x, float* y, int64_t n, float alpha) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_scale", &st));
  GK_TRY(gk::validate_unary("gk_scale", x, y, n));
  scale_kernel<<<grid_for(n, kThreads), kThreads, 0, st>>>(x, y, n, alpha);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

GK_API gk_status gk_gelu_tanh(gk_stream* s, const float* x, float* y, int64_t n) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_gelu_tanh", &st));
  GK_TRY(gk::validate_unary("gk_gelu_tanh", x, y, n));
  gelu_kernel<<<grid_for(n, kThreads), kThreads, 0, st>>>(x, y, n);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

GK_API gk_status gk_gelu_tanh_mul(gk_stream* s, const float* gate, const float* up, float* y, int64_t n) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_gelu_tanh_mul", &st));
  GK_TRY(gk::validate_binary("gk_gelu_tanh_mul", gate, up, y, n, n));
  gelu_mul_kernel<<<grid_for(n, kThreads), kThreads, 0, st>>>(gate, up, y, n);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

GK_API gk_status gk_softcap(gk_stream* s, const float* x, float* y, int64_t n, float cap) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_softcap", &st));
  GK_TRY(gk::validate_softcap(x, y, n, cap));
  softcap_kernel<<<grid_for(n, kThreads), kThreads, 0, st>>>(x, y, n, cap);
  GK_LAUNCH_CHECK();
  return GK_OK;
}
