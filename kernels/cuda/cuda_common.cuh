// Shared by every CUDA translation unit: the context/stream layout, error macros and device helpers.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include <cmath>
#include <mutex>
#include <unordered_map>

#include "../common/dtype.h"
#include "../common/error.h"
#include "../common/validate.h"

// A failed runtime call also sets the thread's "last error"; it is read back (and thereby cleared)
// so a later GK_LAUNCH_CHECK does not blame an unrelated kernel for it.
#define GK_CUDA_CHECK(expr)                                                                             \
  do {                                                                                                  \
    cudaError_t gk_cuda_err_ = (expr);                                                                  \
    if (gk_cuda_err_ != cudaSuccess) {                                                                  \
      (void)cudaGetLastError();                                                                         \
      return gk_fail(GK_ERR_DEVICE, "%s:%d: %s: %s", __FILE__, __LINE__, #expr,                         \
                     cudaGetErrorString(gk_cuda_err_));                                                 \
    }                                                                                                   \
  } while (0)

// After a <<<>>> launch: catches bad configurations (and sticky errors of earlier kernels) without
// synchronising, so ops stay capturable into CUDA graphs.
#define GK_LAUNCH_CHECK()                                                                               \
  do {                                                                                                  \
    cudaError_t gk_cuda_err_ = cudaGetLastError();                                                     \
    if (gk_cuda_err_ != cudaSuccess)                                                                    \
      return gk_fail(GK_ERR_DEVICE, "%s:%d: kernel launch: %s", __FILE__, __LINE__,                     \
                     cudaGetErrorString(gk_cuda_err_));                                                 \
  } while (0)

struct gk_context;

struct gk_stream {
  gk_context* ctx;
  cudaStream_t stream;
  bool is_default;  // the default stream lives inside its context and dies with it
};

struct gk_context {
  int device = 0;
  gk_stream default_stream{nullptr, nullptr, true};
  std::mutex mu;
  std::unordered_map<void*, uint64_t> live;  // pointer -> bytes, so gk_free can refuse strangers
  uint64_t in_use = 0, peak = 0;
};

namespace gk::cuda {

// Deno may call from a worker thread whose current device is still 0; launching on a stream of
// another device would then fail. cudaGetDevice is a thread-local read, so this is cheap.
inline gk_status use_device(int device) {
  int cur = -1;
  GK_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != device) GK_CUDA_CHECK(cudaSetDevice(device));
  return GK_OK;
}

// Checks the stream, makes its device current and hands back the cudaStream_t to launch on.
inline gk_status begin_op(const gk_stream* s, const char* op, cudaStream_t* out) {
  GK_TRY(gk::validate_stream(s, op));
  GK_REQUIRE(s->ctx != nullptr, "%s: stream has no context", op);
  GK_TRY(use_device(s->ctx->device));
  *out = s->stream;
  return GK_OK;
}

// The stream's capture status: None, Active (recording a program) or Invalidated.
inline gk_status capture_status(cudaStream_t st, cudaStreamCaptureStatus* out) {
  GK_CUDA_CHECK(cudaStreamIsCapturing(st, out));
  return GK_OK;
}

// Host-synchronising calls (h2d/d2h copies, gk_stream_synchronize) would invalidate a capture: refuse them.
inline gk_status refuse_while_capturing(cudaStream_t st, const char* op) {
  cudaStreamCaptureStatus cs;
  GK_TRY(capture_status(st, &cs));
  GK_REQUIRE(cs == cudaStreamCaptureStatusNone, "%s: not allowed while recording a program (it synchronizes with the host)",
             op);
  return GK_OK;
}

// Ends a capture on the stream, if there is one, and throws its graph away: the stream is usable again.
inline void abandon_capture(cudaStream_t st) {
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  if (cudaStreamIsCapturing(st, &cs) == cudaSuccess && cs != cudaStreamCaptureStatusNone) {
    cudaGraph_t g = nullptr;
    cudaStreamEndCapture(st, &g);
    if (g) cudaGraphDestroy(g);
  }
  (void)cudaGetLastError();
}

template <typename T>
__host__ __device__ __forceinline__ T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// Grid size for 64-bit grid-stride loops: enough blocks to fill any GPU, never above the grid limit.
inline unsigned grid_for(int64_t n, int threads) {
  int64_t blocks = ceil_div<int64_t>(n, threads);
  return (unsigned)(blocks < 65536 ? blocks : 65536);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Block-wide reductions; every thread gets the result. `scratch` holds >= 32 floats and may be reused
// right after the call returns (the trailing barrier protects it). blockDim.x must be a multiple of 32.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < warps ? scratch[lane] : 0.0f;
  r = warp_sum(r);
  __syncthreads();
  return r;
}

__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float r = lane < warps ? scratch[lane] : -INFINITY;
  r = warp_max(r);
  __syncthreads();
  return r;
}

// Threads per block for a row-wise kernel: a multiple of 32, at most 512, no more than the row needs.
inline int row_threads(int32_t cols) {
  int t = (int)ceil_div<int64_t>(cols, 32) * 32;
  return t < 512 ? t : 512;
}

// The formula of the CPU's gelu_tanh (kernels/cpu/simd.h vgelu_tanh) with precise tanhf; the CPU's vectorised
// tanh is within 1.5 ulp, so the two differ by an ulp or two, well inside the f32 tolerances of the rows.
__device__ __forceinline__ float gelu_tanh(float x) {
  const float k = 0.7978845608028654f;
  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

// Weight element as f32 with the dtype fixed at compile time, so the branch disappears from loops.
template <int DT>
__device__ __forceinline__ float load_w(const void* base, int64_t i) {
  if constexpr (DT == GK_F32) return ((const float*)base)[i];
  else if constexpr (DT == GK_BF16) return gk::bf16_to_f32(((const uint16_t*)base)[i]);
  else return __half2float(__ushort_as_half(((const uint16_t*)base)[i]));  // exact, like f16_to_f32
}

}  // namespace gk::cuda
