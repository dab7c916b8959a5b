// y[m, n] = x[m, k] · W[n, k]^T (+ bias): GEMV for m == 1, SIMT f32 GEMM or WMMA tensor-core GEMM otherwise.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include "cuda_common.cuh"

namespace {

using namespace gk::cuda;
using namespace nvcuda;

template <int DT>
__host__ __device__ constexpr int elem_bytes() {
  return DT == GK_F32 ? 4 : 2;
}

template <int DT>
__device__ __forceinline__ float add_bias(float acc, const void* bias, int64_t j) {
  return bias ? acc + load_w<DT>(bias, j) : acc;
}

// ---- m == 1: one warp per output row, streaming W at memory bandwidth ---------------------------------

constexpr int kGemvWarps = 8;

// Dot product of one 16-byte chunk of weights (4 f32 or 8 f16/bf16) with the matching x values.
template <int DT>
__device__ __forceinline__ float dot_chunk(uint4 q, const float4* __restrict__ xv, int64_t c, float acc) {
  if constexpr (DT == GK_F32) {
    const float4 a = xv[c];
    acc = fmaf(a.x, __uint_as_float(q.x), acc);
    acc = fmaf(a.y, __uint_as_float(q.y), acc);
    acc = fmaf(a.z, __uint_as_float(q.z), acc);
    acc = fmaf(a.w, __uint_as_float(q.w), acc);
  } else {
    const float4 a = xv[2 * c], b = xv[2 * c + 1];
    const float xs[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    const uint32_t ws[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      float lo, hi;  // both conversions are exact
      if constexpr (DT == GK_BF16) {
        lo = __uint_as_float(ws[i] << 16);
        hi = __uint_as_float(ws[i] & 0xffff0000u);
      } else {
        lo = __half2float(__ushort_as_half((unsigned short)(ws[i] & 0xffffu)));
        hi = __half2float(__ushort_as_half((unsigned short)(ws[i] >> 16)));
      }
      acc = fmaf(xs[2 * i], lo, acc);
      acc = fmaf(xs[2 * i + 1], hi, acc);
    }
  }
  return acc;
}

// Needs W and x 16-byte aligned and k * elem_bytes a multiple of 16, so every row starts aligned and
// splits into whole chunks. Four chunks per lane are loaded before any is used to keep loads in flight.
template <int DT>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_vec_kernel(const float* __restrict__ x, const void* __restrict__ w, const void* __restrict__ bias, int32_t n,
                    int32_t k, float* __restrict__ y) {
  constexpr int E = 16 / elem_bytes<DT>();
  constexpr int U = 4;
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
  if (row >= n) return;
  const uint4* wr = (const uint4*)((const char*)w + row * k * elem_bytes<DT>());
  const float4* xv = (const float4*)x;
  const int64_t chunks = k / E;
  float acc = 0.0f;
  int64_t c = lane;
  for (; c + 32 * (U - 1) < chunks; c += 32 * U) {
    uint4 q[U];
#pragma unroll
    for (int u = 0; u < U; ++u) q[u] = __ldg(wr + c + 32 * u);
#pragma unroll
    for (int u = 0; u < U; ++u) acc = dot_chunk<DT>(q[u], xv, c + 32 * u, acc);
  }
  for (; c < chunks; c += 32) acc = dot_chunk<DT>(__ldg(wr + c), xv, c, acc);
  acc = warp_sum(acc);
  if (lane == 0) y[row] = add_bias<DT>(acc, bias, row);
}

// Any alignment and any k: coalesced scalar loads.
template <int DT>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_scalar_kernel(const float* __restrict__ x, const void* __restrict__ w, const void* __restrict__ bias,
                       int32_t n, int32_t k, float* __restrict__ y) {
  const int lane = threadIdx.x & 31;
  const int64_t row = (int64_t)blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
  if (row >= n) return;
  const int64_t base = row * k;
  float acc = 0.0f;
  for (int32_t j = lane; j < k; j += 32) acc = fmaf(x[j], load_w<DT>(w, base + j), acc);
  acc = warp_sum(acc);
  if (lane == 0) y[row] = add_bias<DT>(acc, bias, row);
}

// ---- m > 1, f32 weights: SIMT GEMM, exact f32 FMAs (no TF32) --------------------------------------------

constexpr int kSB = 64, kSK = 16;

// 64x64 tile per block, 16x16 threads each owning a 4x4 block of outputs. Tiles are stored k-major in
// shared memory so the inner loop reads one float4 of A and one of B per k; out-of-range elements are zeros.
__global__ void __launch_bounds__(256, 1)
    sgemm_kernel(const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias, int32_t m,
                 int32_t n, int32_t k, float* __restrict__ y) {
  __shared__ __align__(16) float As[kSK][kSB + 4];
  __shared__ __align__(16) float Bs[kSK][kSB + 4];
  const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
  const int64_t m0 = (int64_t)blockIdx.x * kSB, n0 = (int64_t)blockIdx.y * kSB;
  float acc[4][4] = {};
  for (int32_t k0 = 0; k0 < k; k0 += kSK) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int e = tid + i * 256;
      const int r = e / kSK, c = e % kSK;
      const int64_t gm = m0 + r, gn = n0 + r;
      const int32_t gk = k0 + c;
      As[c][r] = (gm < m && gk < k) ? x[gm * k + gk] : 0.0f;
      Bs[c][r] = (gn < n && gk < k) ? w[gn * k + gk] : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kSK; ++kk) {
      const float4 a4 = *(const float4*)&As[kk][ty * 4];
      const float4 b4 = *(const float4*)&Bs[kk][tx * 4];
      const float a[4] = {a4.x, a4.y, a4.z, a4.w}, b[4] = {b4.x, b4.y, b4.z, b4.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t gm = m0 + ty * 4 + i;
    if (gm >= m) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t gn = n0 + tx * 4 + j;
      if (gn < n) y[gm * n + gn] = add_bias<GK_F32>(acc[i][j], bias, gn);
    }
  }
}

// ---- m > 1, f16/bf16 weights: WMMA 16x16x16, f32 accumulators ----------------------------------------

template <int DT>
using mma_t = typename std::conditional<DT == GK_BF16, __nv_bfloat16, __half>::type;

// x is rounded to the weight dtype (nearest even) as it is staged, the way transformers runs a bf16 model
// on bf16 activations; products and sums stay f32 inside the tensor cores.
template <int DT>
__device__ __forceinline__ uint32_t to_bits(float f) {
  if constexpr (DT == GK_BF16) return __bfloat16_as_ushort(__float2bfloat16_rn(f));
  else return __half_as_ushort(__float2half_rn(f));
}

constexpr int kBK = 32;
constexpr int kLd = kBK + 8;  // 16-bit elements per shared row: a multiple of 8 (WMMA), padded against conflicts

// Block tile BM x BN, warps arranged (BM/WM) x (BN/WN), each warp a WM x WN grid of 16x16 fragments.
// The next k-tile is loaded into registers while the current one is multiplied from shared memory.
template <int DT, int BM, int BN, int WM, int WN>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32)
    wmma_gemm_kernel(const float* __restrict__ x, const uint16_t* __restrict__ w, const void* __restrict__ bias,
                     int32_t m, int32_t n, int32_t k, bool x_vec, bool w_vec, float* __restrict__ y) {
  using T = mma_t<DT>;
  constexpr int WARPS_N = BN / WN, THREADS = (BM / WM) * WARPS_N * 32;
  constexpr int FM = WM / 16, FN = WN / 16;
  constexpr int A_IT = BM * kBK / 4 / THREADS;  // float4 groups of x per thread
  constexpr int B_IT = BN * kBK / 8 / THREADS;  // 8-weight groups of W per thread
  static_assert(A_IT * 4 * THREADS == BM * kBK && B_IT * 8 * THREADS == BN * kBK, "tile not divisible");
  __shared__ __align__(128) uint16_t As[BM][kLd];
  __shared__ __align__(128) uint16_t Bs[BN][kLd];
  __shared__ __align__(128) float Cs[THREADS / 32][16 * 16];

  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm0 = (warp / WARPS_N) * WM, wn0 = (warp % WARPS_N) * WN;
  const int64_t m0 = (int64_t)blockIdx.x * BM, n0 = (int64_t)blockIdx.y * BN;

  float4 ra[A_IT];
  uint4 rb[B_IT];
  auto load_tile = [&](int32_t k0) {
#pragma unroll
    for (int it = 0; it < A_IT; ++it) {
      const int g = tid + it * THREADS, r = g / (kBK / 4), c = (g % (kBK / 4)) * 4;
      const int64_t gm = m0 + r;
      const int32_t gk = k0 + c;
      float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (gm < m) {
        const float* p = x + gm * k + gk;
        if (x_vec) {  // k % 4 == 0: a group is wholly inside or wholly outside the row
          if (gk < k) v = *(const float4*)p;
        } else {
          if (gk < k) v.x = p[0];
          if (gk + 1 < k) v.y = p[1];
          if (gk + 2 < k) v.z = p[2];
          if (gk + 3 < k) v.w = p[3];
        }
      }
      ra[it] = v;
    }
#pragma unroll
    for (int it = 0; it < B_IT; ++it) {
      const int g = tid + it * THREADS, r = g / (kBK / 8), c = (g % (kBK / 8)) * 8;
      const int64_t gn = n0 + r;
      const int32_t gk = k0 + c;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (gn < n) {
        const uint16_t* p = w + gn * k + gk;
        if (w_vec) {  // k % 8 == 0
          if (gk < k) v = __ldg((const uint4*)p);
        } else {
          uint32_t h[8];
#pragma unroll
          for (int e = 0; e < 8; ++e) h[e] = gk + e < k ? p[e] : 0u;
          v = make_uint4(h[0] | h[1] << 16, h[2] | h[3] << 16, h[4] | h[5] << 16, h[6] | h[7] << 16);
        }
      }
      rb[it] = v;
    }
  };
  auto store_tile = [&]() {
#pragma unroll
    for (int it = 0; it < A_IT; ++it) {
      const int g = tid + it * THREADS, r = g / (kBK / 4), c = (g % (kBK / 4)) * 4;
      const float4 v = ra[it];
      *(uint2*)&As[r][c] = make_uint2(to_bits<DT>(v.x) | to_bits<DT>(v.y) << 16,
                                      to_bits<DT>(v.z) | to_bits<DT>(v.w) << 16);
    }
#pragma unroll
    for (int it = 0; it < B_IT; ++it) {
      const int g = tid + it * THREADS, r = g / (kBK / 8), c = (g % (kBK / 8)) * 8;
      *(uint4*)&Bs[r][c] = rb[it];
    }
  };

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  load_tile(0);
  for (int32_t k0 = 0; k0 < k; k0 += kBK) {
    store_tile();
    __syncthreads();
    if (k0 + kBK < k) load_tile(k0 + kBK);
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      // B(k, n) = W[n, k]: W's rows in shared memory are B's columns, hence col_major.
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[FM];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb[FN];
#pragma unroll
      for (int i = 0; i < FM; ++i) wmma::load_matrix_sync(fa[i], (const T*)&As[wm0 + 16 * i][kk], kLd);
#pragma unroll
      for (int j = 0; j < FN; ++j) wmma::load_matrix_sync(fb[j], (const T*)&Bs[wn0 + 16 * j][kk], kLd);
#pragma unroll
      for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
    }
    __syncthreads();
  }

  // Fragments go through a per-warp 16x16 scratch so edges can be bounds-checked and bias added in f32.
  float* cs = Cs[warp];
#pragma unroll
  for (int i = 0; i < FM; ++i) {
#pragma unroll
    for (int j = 0; j < FN; ++j) {
      wmma::store_matrix_sync(cs, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int64_t gm = m0 + wm0 + 16 * i + e / 16, gn = n0 + wn0 + 16 * j + e % 16;
        if (gm < m && gn < n) y[gm * n + gn] = add_bias<DT>(cs[e], bias, gn);
      }
      __syncwarp();
    }
  }
}

bool aligned16(const void* p) { return ((uintptr_t)p & 15u) == 0; }

template <int DT>
gk_status launch_gemv(const float* x, const void* w, const void* bias, int32_t n, int32_t k, float* y,
                      cudaStream_t st) {
  const unsigned blocks = (unsigned)ceil_div<int64_t>(n, kGemvWarps);
  const bool vec = aligned16(x) && aligned16(w) && ((int64_t)k * elem_bytes<DT>()) % 16 == 0;
  if (vec) gemv_vec_kernel<DT><<<blocks, kGemvWarps * 32, 0, st>>>(x, w, bias, n, k, y);
  else gemv_scalar_kernel<DT><<<blocks, kGemvWarps * 32, 0, st>>>(x, w, bias, n, k, y);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

template <int DT, int BM, int BN, int WM, int WN>
gk_status launch_wmma(const float* x, const void* w, const void* bias, int32_t m, int32_t n, int32_t k, float* y,
                      cudaStream_t st) {
  const int64_t gy = ceil_div<int64_t>(n, BN);
  GK_REQUIRE(gy <= 65535, "gk_linear: n=%d is too large for the tiled path", n);
  const dim3 grid((unsigned)ceil_div<int64_t>(m, BM), (unsigned)gy);
  const bool x_vec = aligned16(x) && k % 4 == 0, w_vec = aligned16(w) && k % 8 == 0;
  wmma_gemm_kernel<DT, BM, BN, WM, WN><<<grid, (BM / WM) * (BN / WN) * 32, 0, st>>>(
      x, (const uint16_t*)w, bias, m, n, k, x_vec, w_vec, y);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

template <int DT>
gk_status launch_tensor_core(const float* x, const void* w, const void* bias, int32_t m, int32_t n, int32_t k,
                             float* y, cudaStream_t st) {
  // Small m (a short prompt, a few rows) would leave most of a 128-row tile empty.
  if (m <= 64) return launch_wmma<DT, 64, 64, 32, 32>(x, w, bias, m, n, k, y, st);
  return launch_wmma<DT, 128, 128, 64, 32>(x, w, bias, m, n, k, y, st);
}

}  // namespace

GK_API gk_status gk_linear(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype, const void* bias,
                           int32_t m, int32_t n, int32_t k, float* y) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_linear", &st));
  GK_TRY(gk::validate_linear(x, weight, weight_dtype, m, n, k, y));
  if (m == 1) {
    switch (weight_dtype) {
      case GK_F32: return launch_gemv<GK_F32>(x, weight, bias, n, k, y, st);
      case GK_F16: return launch_gemv<GK_F16>(x, weight, bias, n, k, y, st);
      default: return launch_gemv<GK_BF16>(x, weight, bias, n, k, y, st);
    }
  }
  switch (weight_dtype) {
    case GK_F32: {
      const int64_t gy = ceil_div<int64_t>(n, kSB);
      GK_REQUIRE(gy <= 65535, "gk_linear: n=%d is too large for the tiled path", n);
      const dim3 grid((unsigned)ceil_div<int64_t>(m, kSB), (unsigned)gy);
      sgemm_kernel<<<grid, 256, 0, st>>>(x, (const float*)weight, (const float*)bias, m, n, k, y);
      GK_LAUNCH_CHECK();
      return GK_OK;
    }
    case GK_F16: return launch_tensor_core<GK_F16>(x, weight, bias, m, n, k, y, st);
    default: return launch_tensor_core<GK_BF16>(x, weight, bias, m, n, k, y, st);
  }
}
