// y[m, n] = x[m, k] · W[n, k]^T (+ bias): GEMV for m == 1, SIMT f32 GEMM or WMMA tensor-core GEMM otherwise.
// GGUF-quantized W (every block dtype) stays quantized in memory: the GEMV decodes blocks in registers, the
// tensor-core GEMM decodes each W tile into shared memory as it stages it (quant.cuh has the block decoders).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <type_traits>

#include "cuda_common.cuh"
#include "quant.cuh"

namespace {

using namespace gk::cuda;
using namespace nvcuda;
namespace q = gk::cuda::quant;

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

// ---- m == 1, quantized weights: blocks decoded in registers -------------------------------------------
//
// Work unit: one 8-element group of one row (quant.cuh). Lane u of a warp takes groups u, u + 32, ... of the
// row, so a warp's loads cover a contiguous run of blocks (coalesced into whole sectors even though single loads
// are only 2 or 4 bytes wide: blocks are 22/34/210 bytes, never 16-byte aligned). x is staged in shared memory
// once per block; each lane reads its group's 8 x values once and multiplies them against R rows, so the shared
// traffic (and the Σx of formats with a per-group offset) is paid once per R rows. R * U = 4 groups' loads are issued before any is used, so a
// lane keeps 20-40 loads in flight: enough to cover DRAM latency without a deep software pipeline.
//
// Blocks are persistent: the grid is what fits on the device at once and each block strides over row groups, so
// for k <= kQTile x is loaded once per block rather than once per 8R rows (on the Q8_0 lm_head, [262144, 640],
// reloading it would add ~10% to the 168 MB of weight traffic).
constexpr int kQWarps = 8;
constexpr int kQTile = 8192;  // x floats staged per pass (32 KiB); a multiple of every block size

template <int DT, int R, int U>
__global__ void __launch_bounds__(kQWarps * 32)
    gemv_quant_kernel(const float* __restrict__ x, const uint8_t* __restrict__ w, const float* __restrict__ bias,
                      int32_t n, int32_t k, float* __restrict__ y) {
  constexpr int BE = q::block_elems(DT), BB = q::block_bytes(DT), GPB = BE / 8;  // groups per block
  extern __shared__ __align__(16) float xs[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t row_bytes = (int64_t)(k / BE) * BB;
  const int64_t groups = ceil_div<int64_t>(n, kQWarps * R);
  const int32_t tiles = ceil_div<int32_t>(k, kQTile);
  for (int64_t rg = blockIdx.x; rg < groups; rg += gridDim.x) {
    const int64_t row0 = (rg * kQWarps + warp) * R;
    // Rows past n read row n-1 (valid memory) and are never written: no divergence inside the loop.
    const uint8_t* rp[R];
#pragma unroll
    for (int r = 0; r < R; ++r) rp[r] = w + (row0 + r < n ? row0 + r : (int64_t)n - 1) * row_bytes;
    float acc[R];
#pragma unroll
    for (int r = 0; r < R; ++r) acc[r] = 0.0f;
    for (int32_t t = 0; t < tiles; ++t) {
      const int32_t k0 = t * kQTile, kl = min(kQTile, k - k0);  // kl: a multiple of BE, as k is
      if (tiles > 1 || rg == blockIdx.x) {  // uniform across the block
        __syncthreads();                      // everyone is done with the previous tile
        for (int32_t i = threadIdx.x; i < kl; i += blockDim.x) xs[i] = x[k0 + i];
        __syncthreads();
      }
      const int32_t units = kl / 8;
      const int64_t wofs = (int64_t)(k0 / BE) * BB;  // byte offset of the tile's first block inside a row
      for (int32_t u0 = lane; u0 < units; u0 += 32 * U) {
        q::Raw8 raw[U][R];
        float xv[U][8];
#pragma unroll
        for (int uu = 0; uu < U; ++uu) {
          const int32_t u = u0 + 32 * uu;
          if (u < units) {
            // Group u covers tile elements 8u .. 8u+7: block u / GPB, first element (u % GPB) * 8.
            const float4 a = *(const float4*)&xs[8 * u], b = *(const float4*)&xs[8 * u + 4];
            xv[uu][0] = a.x, xv[uu][1] = a.y, xv[uu][2] = a.z, xv[uu][3] = a.w;
            xv[uu][4] = b.x, xv[uu][5] = b.y, xv[uu][6] = b.z, xv[uu][7] = b.w;
            const int64_t bo = wofs + (int64_t)(u / GPB) * BB;
#pragma unroll
            for (int r = 0; r < R; ++r) raw[uu][r] = q::load_raw8<DT, q::AlignedLoad>(rp[r] + bo, (u % GPB) * 8);
          }
        }
#pragma unroll
        for (int uu = 0; uu < U; ++uu) {
          const int32_t u = u0 + 32 * uu;
          if (u < units) {
            float xsum = 0.0f;
            if constexpr (q::needs_xsum(DT)) {
#pragma unroll
              for (int i = 0; i < 8; ++i) xsum += xv[uu][i];
            }
#pragma unroll
            for (int r = 0; r < R; ++r) acc[r] += q::dot8<DT>(raw[uu][r], (u % GPB) * 8, xv[uu], xsum);
          }
        }
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float v = warp_sum(acc[r]);
      const int64_t row = row0 + r;
      if (lane == 0 && row < n) y[row] = bias ? v + bias[row] : v;
    }
  }
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

// ---- m > 1, f16/bf16 or quantized weights: WMMA 16x16x16, f32 accumulators ------------------------------

template <int DT>
using mma_t = typename std::conditional<DT == GK_BF16, __nv_bfloat16, __half>::type;

// The tensor-core type for weights stored as DT: always bf16, because x is rounded to it too and Gemma's
// activations exceed f16's range (65504; the down_proj input gelu(gate)·up reaches ~1e5), where bf16 keeps
// f32's. An f16 x would turn them into ±inf and the prefill logits into NaN, while the CPU (f32) stays finite.
// Quantized and f16 weights are widened to f32 and rounded to bf16 as they are staged: they lose at most 2^-9
// relative, the same rounding x gets.
template <int DT>
__host__ __device__ constexpr int mma_dtype() {
  return GK_BF16;
}

// x is rounded to bf16 (nearest even) as it is staged, the way transformers runs a bf16 model on bf16
// activations; products and sums stay f32 inside the tensor cores.
template <int DT>
__device__ __forceinline__ uint32_t to_bits(float f) {
  if constexpr (DT == GK_BF16) return __bfloat16_as_ushort(__float2bfloat16_rn(f));
  else return __half_as_ushort(__float2half_rn(f));
}

constexpr int kBK = 32;
constexpr int kLd = kBK + 8;  // 16-bit elements per shared row: a multiple of 8 (WMMA), padded against conflicts

// Block tile BM x BN, warps arranged (BM/WM) x (BN/WN), each warp a WM x WN grid of 16x16 fragments.
// The next k-tile is loaded into registers while the current one is multiplied from shared memory.
// DT is how W is stored. For a quantized W the registers hold raw block bytes (q::Raw8) and store_tile decodes them
// to bf16 on their way into shared memory: decoding at load time would wait for the loads right there, before the
// MMAs they are meant to hide behind. k is then a multiple of the block size, hence of kBK: every k-tile is full
// and every 8-element group lies inside one block.
template <int DT, int BM, int BN, int WM, int WN>
__global__ void __launch_bounds__((BM / WM) * (BN / WN) * 32)
    wmma_gemm_kernel(const float* __restrict__ x, const void* __restrict__ wp, const void* __restrict__ bias,
                     int32_t m, int32_t n, int32_t k, bool x_vec, bool w_vec, float* __restrict__ y) {
  constexpr bool QUANT = q::is_quant_dtype(DT);
  constexpr bool WIDEN_F16 = DT == GK_F16;  // f16 W staged as bf16: see mma_dtype
  constexpr int MT = mma_dtype<DT>();
  constexpr int BIAS_DT = QUANT ? GK_F32 : DT;  // a quantized W comes with an f32 bias
  using T = mma_t<MT>;
  using BReg = typename std::conditional<QUANT, q::Raw8, uint4>::type;
  const uint16_t* __restrict__ w = (const uint16_t*)wp;
  const uint8_t* __restrict__ wq = (const uint8_t*)wp;
  const int64_t q_row_bytes = QUANT ? (int64_t)(k / q::block_elems(DT)) * q::block_bytes(DT) : 0;
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
  BReg rb[B_IT];
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
      if constexpr (QUANT) {
        // Rows past n: all-zero bytes decode to zeros (d = 0), like the zero padding of the float path.
        constexpr int BE = q::block_elems(DT), BB = q::block_bytes(DT);
        q::Raw8 v{};
        if (gn < n) v = q::load_raw8<DT, q::AlignedLoad>(wq + gn * q_row_bytes + (int64_t)(gk / BE) * BB, gk % BE);
        rb[it] = v;
      } else {
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
    }
  };
  auto store_tile = [&](int32_t k0) {
#pragma unroll
    for (int it = 0; it < A_IT; ++it) {
      const int g = tid + it * THREADS, r = g / (kBK / 4), c = (g % (kBK / 4)) * 4;
      const float4 v = ra[it];
      *(uint2*)&As[r][c] = make_uint2(to_bits<MT>(v.x) | to_bits<MT>(v.y) << 16,
                                      to_bits<MT>(v.z) | to_bits<MT>(v.w) << 16);
    }
#pragma unroll
    for (int it = 0; it < B_IT; ++it) {
      const int g = tid + it * THREADS, r = g / (kBK / 8), c = (g % (kBK / 8)) * 8;
      if constexpr (QUANT) {
        // (k0 + c) % BE: the group's first element inside its block (groups start at multiples of 8, blocks at
        // multiples of 32, so a group never leaves its block).
        float f[8];
        q::decode8<DT>(rb[it], (k0 + c) % q::block_elems(DT), f);
        uint32_t h[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) h[e] = to_bits<MT>(f[2 * e]) | to_bits<MT>(f[2 * e + 1]) << 16;
        *(uint4*)&Bs[r][c] = make_uint4(h[0], h[1], h[2], h[3]);
      } else if constexpr (WIDEN_F16) {
        // Each 32-bit word holds two f16 weights, the lower element in the low half (little-endian).
        const uint32_t u[4] = {rb[it].x, rb[it].y, rb[it].z, rb[it].w};
        uint32_t h[4];
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float lo = __half2float(__ushort_as_half((unsigned short)(u[e] & 0xffffu)));
          const float hi = __half2float(__ushort_as_half((unsigned short)(u[e] >> 16)));
          h[e] = to_bits<MT>(lo) | to_bits<MT>(hi) << 16;
        }
        *(uint4*)&Bs[r][c] = make_uint4(h[0], h[1], h[2], h[3]);
      } else {
        *(uint4*)&Bs[r][c] = rb[it];
      }
    }
  };

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[FM][FN];
#pragma unroll
  for (int i = 0; i < FM; ++i)
#pragma unroll
    for (int j = 0; j < FN; ++j) wmma::fill_fragment(acc[i][j], 0.0f);

  load_tile(0);
  for (int32_t k0 = 0; k0 < k; k0 += kBK) {
    store_tile(k0);
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
        if (gm < m && gn < n) y[gm * n + gn] = add_bias<BIAS_DT>(cs[e], bias, gn);
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
  wmma_gemm_kernel<DT, BM, BN, WM, WN><<<grid, (BM / WM) * (BN / WN) * 32, 0, st>>>(x, w, bias, m, n, k, x_vec,
                                                                                   w_vec, y);
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

template <int DT, int R>
gk_status launch_gemv_quant_r(const float* x, const void* w, const float* bias, int32_t n, int32_t k, float* y,
                              int sms, cudaStream_t st) {
  constexpr int U = 4 / R;
  const size_t smem = sizeof(float) * (size_t)(k < kQTile ? k : kQTile);
  int per_sm = 0;
  GK_CUDA_CHECK(
      cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, gemv_quant_kernel<DT, R, U>, kQWarps * 32, smem));
  const int64_t groups = ceil_div<int64_t>(n, kQWarps * R);
  const int64_t resident = (int64_t)sms * (per_sm > 0 ? per_sm : 1);
  const unsigned grid = (unsigned)(groups < resident ? groups : resident);
  gemv_quant_kernel<DT, R, U><<<grid, kQWarps * 32, smem, st>>>(x, (const uint8_t*)w, bias, n, k, y);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

// Rows per warp: 4 when there are enough rows to give every SM several row groups anyway (large n, above all the
// lm_head), fewer for small n so that all SMs still get work.
template <int DT>
gk_status launch_gemv_quant(const float* x, const void* w, const float* bias, int32_t n, int32_t k, float* y,
                            int device, cudaStream_t st) {
  int sms = 0;
  GK_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  if (sms < 1) sms = 1;
  const int64_t per_sm4 = (int64_t)n / ((int64_t)kQWarps * 4 * sms);  // row groups per SM at R = 4
  const int64_t per_sm2 = (int64_t)n / ((int64_t)kQWarps * 2 * sms);
  if (per_sm4 >= 2) return launch_gemv_quant_r<DT, 4>(x, w, bias, n, k, y, sms, st);
  if (per_sm2 >= 2) return launch_gemv_quant_r<DT, 2>(x, w, bias, n, k, y, sms, st);
  return launch_gemv_quant_r<DT, 1>(x, w, bias, n, k, y, sms, st);
}

template <int DT>
gk_status launch_quant(const float* x, const void* w, const void* bias, int32_t m, int32_t n, int32_t k, float* y,
                       int device, cudaStream_t st) {
  // Loads are as wide as the format's guaranteed alignment (quant.cuh); a tensor base that breaks it cannot come
  // from gk_malloc or a row view of a GGUF tensor (rows are whole blocks, blocks an even number of bytes).
  if ((uintptr_t)w % q::quant_align(DT) != 0) {
    return gk_fail(GK_ERR_UNSUPPORTED, "gk_linear: quantized weight dtype %d must be %d-byte aligned on CUDA (got %p)",
                   DT, q::quant_align(DT), w);
  }
  if (m == 1) return launch_gemv_quant<DT>(x, w, (const float*)bias, n, k, y, device, st);
  return launch_tensor_core<DT>(x, w, bias, m, n, k, y, st);
}

}  // namespace

GK_API gk_status gk_linear(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype, const void* bias,
                           int32_t m, int32_t n, int32_t k, float* y) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_linear", &st));
  GK_TRY(gk::validate_linear(x, weight, weight_dtype, m, n, k, y));
  switch (weight_dtype) {
#define GK_LINEAR_CASE(DT) \
  case DT: return launch_quant<DT>(x, weight, bias, m, n, k, y, s->ctx->device, st);
    GK_QUANT_DTYPES(GK_LINEAR_CASE)
#undef GK_LINEAR_CASE
    default: break;
  }
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
