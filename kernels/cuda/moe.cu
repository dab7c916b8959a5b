// Gemma 4's mixture of experts on CUDA: gk_moe_route (softmax, top-k, renormalise, per-expert scale; one block per
// token) and gk_moe_experts (the selected experts' gated MLPs, weighted and summed).
//
// The expert ids stay on the device (no host synchronisation, so a decode step with a MoE layer can be captured
// into a CUDA graph). gk_moe_experts takes one of two paths, chosen on the host from the token count only:
//  - a few tokens (decode): one warp per output row of each (token, slot) pair reads only the chosen experts' rows
//    (bandwidth-bound, like the matrix-vector linear), the gate and up rows of an intermediate unit together; the
//    down projection's warps combine the k slots in ascending expert id as they go.
//  - more tokens (prefill): a one-block kernel groups the (token, slot) pairs by expert (histogram, scan, scatter)
//    and writes a table of row tiles; grouped GEMM kernels (one block per tile and column block, the tile count
//    bounded on the host by ceil(P / BM) + min(E, P)) read each expert's weights once per tile, and a last kernel
//    combines each token's slots in ascending expert id.
// Weights are read in 8-element groups (f32/f16/bf16, or a GGUF quantization decoded with quant.cuh's decode8;
// gate_up and down each in its own type), accumulated in f32 with FMA; the CPU library sums the same terms in
// another order (op-parity limit 1e-10).
#include <algorithm>

#include "../common/moe.h"
#include "cuda_common.cuh"
#include "quant.cuh"

namespace {

using namespace gk::cuda;
using gk::moe::kMaxTopK;
using gk::moe::ranks_before;

// ---- router ---------------------------------------------------------------------------------------------------

constexpr int kRouteThreads = 128;

__global__ void __launch_bounds__(kRouteThreads) route_kernel(const float* __restrict__ logits, const void* scale,
                                                              int scale_dtype, int experts, int top_k,
                                                              int32_t* __restrict__ ids, float* __restrict__ weights) {
  __shared__ float red[32];
  __shared__ float best_p[kMaxTopK];
  __shared__ int best_id[kMaxTopK];
  __shared__ float warp_p[kRouteThreads / 32];
  __shared__ int warp_id[kRouteThreads / 32];
  const float* x = logits + (int64_t)blockIdx.x * experts;
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < experts; j += blockDim.x) mx = fmaxf(mx, x[j]);
  mx = block_max(mx, red);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < experts; j += blockDim.x) sum += expf(x[j] - mx);
  const float inv = 1.0f / block_sum(sum, red);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int r = 0; r < top_k; ++r) {
    // This thread's best unchosen expert, then the warp's, then the block's.
    float bp = 0.0f;
    int bi = -1;
    for (int j = threadIdx.x; j < experts; j += blockDim.x) {
      bool taken = false;
      for (int q = 0; q < r; ++q) taken |= best_id[q] == j;
      const float p = x[j];  // ranked by logit, as the CPU: exact on both backends (see kernels/cpu/moe.cpp)
      if (!taken && (bi < 0 || ranks_before(p, j, bp, bi))) bp = p, bi = j;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float op = __shfl_xor_sync(0xffffffffu, bp, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (oi >= 0 && (bi < 0 || ranks_before(op, oi, bp, bi))) bp = op, bi = oi;
    }
    if (lane == 0) warp_p[warp] = bp, warp_id[warp] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < kRouteThreads / 32; ++w) {
        if (warp_id[w] >= 0 && (bi < 0 || ranks_before(warp_p[w], warp_id[w], bp, bi))) bp = warp_p[w], bi = warp_id[w];
      }
      best_p[r] = bp;
      best_id[r] = bi;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    for (int i = 0; i < top_k; ++i) best_p[i] = expf(best_p[i] - mx) * inv;  // the chosen logits' probabilities
    float total = 0.0f;
    for (int i = 0; i < top_k; ++i) total += best_p[i];
    const int64_t o = (int64_t)blockIdx.x * top_k;
    for (int i = 0; i < top_k; ++i) {
      ids[o + i] = best_id[i];
      weights[o + i] = best_p[i] / total * (scale ? gk::load_f32(scale, scale_dtype, best_id[i]) : 1.0f);
    }
  }
}

// ---- weights in 8-element groups ------------------------------------------------------------------------------

// w[0..8) = row `row` of a [rows, cols] matrix at columns c0 .. c0+8 (zeros past cols), as f32. Quantized rows are
// whole blocks and c0 is a multiple of 8, so a group never leaves its block.
template <int DT>
__device__ __forceinline__ void load8(const void* base, int64_t row, int64_t cols, int64_t c0, float* w) {
  if constexpr (quant::is_quant_dtype(DT)) {
    constexpr int be = quant::block_elems(DT), bb = quant::block_bytes(DT);
    const uint8_t* blk = (const uint8_t*)base + row * (cols / be * bb) + c0 / be * bb;
    const int e0 = (int)(c0 % be);
    quant::decode8<DT>(quant::load_raw8<DT, quant::AlignedLoad>(blk, e0), e0, w);
  } else {
    const int64_t i = row * cols + c0;
    constexpr int esz = DT == GK_F32 ? 4 : 2;
    const char* p = (const char*)base + i * esz;
    if (c0 + 8 <= cols && ((uintptr_t)p & 15) == 0) {
      if constexpr (DT == GK_F32) {
        const float4 a = __ldg((const float4*)p), b = __ldg((const float4*)p + 1);
        w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
      } else {
        const uint4 v = __ldg((const uint4*)p);
        const uint32_t u[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int q = 0; q < 4; ++q) {  // little-endian: element 2q is the low half of word q
          if constexpr (DT == GK_BF16) {
            w[2 * q] = __uint_as_float(u[q] << 16);
            w[2 * q + 1] = __uint_as_float(u[q] & 0xffff0000u);
          } else {
            w[2 * q] = __half2float(__ushort_as_half((unsigned short)(u[q] & 0xffffu)));
            w[2 * q + 1] = __half2float(__ushort_as_half((unsigned short)(u[q] >> 16)));
          }
        }
      }
    } else {
#pragma unroll
      for (int q = 0; q < 8; ++q) w[q] = c0 + q < cols ? load_w<DT>(base, i + q) : 0.0f;
    }
  }
}

// x[0..8) of an f32 row at c0 (zeros past cols).
__device__ __forceinline__ void load8_f32(const float* row, int64_t cols, int64_t c0, float* x) {
#pragma unroll
  for (int q = 0; q < 8; ++q) x[q] = c0 + q < cols ? row[c0 + q] : 0.0f;
}

// Slot order of one token: the j-th smallest valid id among its top_k slots (ids within a token are distinct), or
// -1 past the valid ones. O(top_k) per call; top_k is small.
__device__ __forceinline__ int next_slot(const int32_t* tid, int top_k, int experts, int prev_id) {
  int slot = -1, best = experts;
  for (int j = 0; j < top_k; ++j) {
    const int e = tid[j];
    if (e > prev_id && e < best) best = e, slot = j;
  }
  return slot;
}

// ---- few tokens: per (token, slot) pair ------------------------------------------------------------------------

constexpr int kWarps = 8;

// h[p, i] = gelu_tanh(gate_i · x) * (up_i · x) for pair p = blockIdx.y, i = one per warp.
template <int DT>
__global__ void __launch_bounds__(kWarps * 32)
    pair_gate_up(const float* __restrict__ x, const int32_t* __restrict__ ids, int top_k, const void* gate_up,
                 int experts, int hidden, int inter, float* __restrict__ h) {
  const int p = blockIdx.y, i = blockIdx.x * kWarps + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (i >= inter) return;
  const int e = ids[p];
  if (e < 0 || e >= experts) {  // a bad id contributes nothing (the combine skips it too)
    if (lane == 0) h[(int64_t)p * inter + i] = 0.0f;
    return;
  }
  const float* xr = x + (int64_t)(p / top_k) * hidden;
  const int64_t rg = (int64_t)e * 2 * inter + i, ru = rg + inter;
  float g = 0.0f, u = 0.0f;
  for (int64_t c0 = lane * 8; c0 < hidden; c0 += 32 * 8) {
    float wg[8], wu[8], xv[8];
    load8<DT>(gate_up, rg, hidden, c0, wg);
    load8<DT>(gate_up, ru, hidden, c0, wu);
    load8_f32(xr, hidden, c0, xv);
#pragma unroll
    for (int q = 0; q < 8; ++q) g = fmaf(wg[q], xv[q], g), u = fmaf(wu[q], xv[q], u);
  }
  g = warp_sum(g);
  u = warp_sum(u);
  if (lane == 0) h[(int64_t)p * inter + i] = gelu_tanh(g) * u;
}

// out[t, o] = Σ_slots (ascending expert id) weight · (down_o · h[pair]) for token t = blockIdx.y, o one per warp.
template <int DT>
__global__ void __launch_bounds__(kWarps * 32)
    pair_down(const float* __restrict__ h, const int32_t* __restrict__ ids, const float* __restrict__ weights,
              int top_k, const void* down, int experts, int hidden, int inter, float* __restrict__ out) {
  const int t = blockIdx.y, o = blockIdx.x * kWarps + (threadIdx.x >> 5), lane = threadIdx.x & 31;
  if (o >= hidden) return;
  const int32_t* tid = ids + (int64_t)t * top_k;
  float acc = 0.0f;
  for (int prev = -1;;) {
    const int j = next_slot(tid, top_k, experts, prev);
    if (j < 0) break;
    const int e = tid[j];
    prev = e;
    const int64_t p = (int64_t)t * top_k + j;
    const float* hr = h + p * inter;
    float y = 0.0f;
    for (int64_t c0 = lane * 8; c0 < inter; c0 += 32 * 8) {
      float w[8], hv[8];
      load8<DT>(down, (int64_t)e * hidden + o, inter, c0, w);
      load8_f32(hr, inter, c0, hv);
#pragma unroll
      for (int q = 0; q < 8; ++q) y = fmaf(w[q], hv[q], y);
    }
    acc += warp_sum(y) * weights[p];
  }
  if (lane == 0) out[(int64_t)t * hidden + o] = acc;
}

// ---- many tokens: grouped by expert ----------------------------------------------------------------------------

constexpr int kBM = 32, kBN = 32, kBK = 32, kGemmThreads = 256, kGroupThreads = 1024;

// Integer scratch: counts[E] (then the scatter cursor), offsets[E + 1], perm[P] (pairs grouped by expert),
// tile_e[P + E], tile_r0[P + E] (expert and first perm index of each BM-row tile), n_tiles[1]: 4E + 3P + 2 words.
struct Groups {
  int32_t *counts, *offsets, *perm, *tile_e, *tile_r0, *n_tiles;
};

inline Groups groups_in(int32_t* ints, int64_t pairs, int64_t experts) {
  Groups g;
  g.counts = ints;
  g.offsets = g.counts + experts;
  g.perm = g.offsets + experts + 1;
  g.tile_e = g.perm + pairs;
  g.tile_r0 = g.tile_e + pairs + experts;
  g.n_tiles = g.tile_r0 + pairs + experts;
  return g;
}

__global__ void __launch_bounds__(kGroupThreads)
    group_kernel(const int32_t* __restrict__ ids, int pairs, int experts, Groups g) {
  for (int e = threadIdx.x; e < experts; e += blockDim.x) g.counts[e] = 0;
  __syncthreads();
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    const int e = ids[p];
    if (e >= 0 && e < experts) atomicAdd(&g.counts[e], 1);
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // E is small (128 for 26B-A4B): a serial scan costs less than a launch
    int off = 0, nt = 0;
    for (int e = 0; e < experts; ++e) {
      const int c = g.counts[e];
      g.offsets[e] = off;
      for (int r = 0; r < c; r += kBM) g.tile_e[nt] = e, g.tile_r0[nt] = off + r, ++nt;
      g.counts[e] = off;
      off += c;
    }
    g.offsets[experts] = off;
    *g.n_tiles = nt;
  }
  __syncthreads();
  // The order inside an expert's group depends on the atomics; every pair's row is computed on its own and
  // written by pair index, so results do not.
  for (int p = threadIdx.x; p < pairs; p += blockDim.x) {
    const int e = ids[p];
    if (e >= 0 && e < experts) g.perm[atomicAdd(&g.counts[e], 1)] = p;
  }
}

// One BM-row tile of one expert × BN output columns. GATED: rows are x[token of pair] (k = hidden), outputs the
// intermediate units n (gate row n and up row inter + n of gate_up[e]) as h[pair, n] = gelu(gate) * up. Otherwise:
// rows are h[pair] (k = inter), outputs y[pair, n] = down[e] row n · h[pair].
template <int DT, bool GATED>
__global__ void __launch_bounds__(kGemmThreads)
    grouped_gemm(const float* __restrict__ a, int top_k, const void* w, int experts, int hidden, int inter, Groups g,
                 float* __restrict__ c) {
  __shared__ float As[kBK][kBM + 1];
  __shared__ float Bg[kBK][kBN + 1];
  __shared__ float Bu[GATED ? kBK : 1][kBN + 1];
  const int tile = blockIdx.x;
  if (tile >= *g.n_tiles) return;
  const int e = g.tile_e[tile], r0 = g.tile_r0[tile];
  const int rows = min(kBM, g.offsets[e + 1] - r0);
  const int k = GATED ? hidden : inter, n_out = GATED ? inter : hidden, n0 = blockIdx.y * kBN;
  const int tid = threadIdx.x, ty = tid / 16, tx = tid % 16;
  float acc_g[2][2] = {}, acc_u[2][2] = {};
  // This thread's A loads: row tid / 8, columns 4 (tid % 8) .. + 4.
  const int ar = tid / 8, ac = (tid % 8) * 4;
  const float* arow = nullptr;
  if (ar < rows) {
    const int p = g.perm[r0 + ar];
    arow = GATED ? a + (int64_t)(p / top_k) * hidden : a + (int64_t)p * inter;
  }
  // B loads: one 8-group per thread, matrix (gate / up) tid / 128, row (tid % 128) / 4, columns 8 (tid % 4) .. + 8.
  const int bm = tid / 128, br = (tid % 128) / 4, bc = (tid % 4) * 8;
  const bool b_active = GATED || bm == 0;
  const int64_t brow = GATED ? (int64_t)e * 2 * inter + (int64_t)bm * inter + n0 + br : (int64_t)e * hidden + n0 + br;
  for (int k0 = 0; k0 < k; k0 += kBK) {
#pragma unroll
    for (int q = 0; q < 4; ++q) As[ac + q][ar] = arow && k0 + ac + q < k ? arow[k0 + ac + q] : 0.0f;
    if (b_active) {
      float wv[8];
      if (n0 + br < n_out) {
        load8<DT>(w, brow, k, k0 + bc, wv);
      } else {
#pragma unroll
        for (int q = 0; q < 8; ++q) wv[q] = 0.0f;
      }
      float (*B)[kBN + 1] = bm == 0 ? Bg : Bu;
#pragma unroll
      for (int q = 0; q < 8; ++q) B[bc + q][br] = wv[q];
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kBK; ++kk) {
      const float a0 = As[kk][2 * ty], a1 = As[kk][2 * ty + 1];
      const float g0 = Bg[kk][2 * tx], g1 = Bg[kk][2 * tx + 1];
      acc_g[0][0] = fmaf(a0, g0, acc_g[0][0]);
      acc_g[0][1] = fmaf(a0, g1, acc_g[0][1]);
      acc_g[1][0] = fmaf(a1, g0, acc_g[1][0]);
      acc_g[1][1] = fmaf(a1, g1, acc_g[1][1]);
      if constexpr (GATED) {
        const float u0 = Bu[kk][2 * tx], u1 = Bu[kk][2 * tx + 1];
        acc_u[0][0] = fmaf(a0, u0, acc_u[0][0]);
        acc_u[0][1] = fmaf(a0, u1, acc_u[0][1]);
        acc_u[1][0] = fmaf(a1, u0, acc_u[1][0]);
        acc_u[1][1] = fmaf(a1, u1, acc_u[1][1]);
      }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int r = 2 * ty + i;
    if (r >= rows) continue;
    const int64_t p = g.perm[r0 + r];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const int n = n0 + 2 * tx + j;
      if (n >= n_out) continue;
      if constexpr (GATED) {
        c[p * inter + n] = gelu_tanh(acc_g[i][j]) * acc_u[i][j];
      } else {
        c[p * hidden + n] = acc_g[i][j];
      }
    }
  }
}

// out[t, col] = Σ_slots (ascending expert id) weight · y[pair, col], token t = blockIdx.x.
__global__ void combine_kernel(const float* __restrict__ y, const int32_t* __restrict__ ids,
                               const float* __restrict__ weights, int top_k, int experts, int hidden,
                               float* __restrict__ out) {
  const int64_t t = blockIdx.x;
  const int col = blockIdx.y * blockDim.x + threadIdx.x;
  if (col >= hidden) return;
  const int32_t* tid = ids + t * top_k;
  float acc = 0.0f;
  for (int prev = -1;;) {
    const int j = next_slot(tid, top_k, experts, prev);
    if (j < 0) break;
    prev = tid[j];
    const int64_t p = t * top_k + j;
    acc += y[p * hidden + col] * weights[p];
  }
  out[t * hidden + col] = acc;
}

// Tokens up to this take the per-pair path (the CPU's streaming rule: a few rows of x).
constexpr int kPairPathTokens = 4;

// One call's arguments and the path it takes, shared by its two projections.
struct Call {
  cudaStream_t st;
  const float *x, *weights;
  const int32_t* ids;
  const void *gate_up, *down;
  int tokens, top_k, experts, hidden, inter;
  int64_t pairs;
  bool grouped;    // the expert-grouped GEMMs (else the per-pair kernels)
  unsigned tiles;  // grouped: the tile bound of the launch grid
  Groups g;        // grouped: the tile tables
  gk::moe::Scratch sc;
  float* out;
};

// One projection, GATE: h[pair, i] = gelu_tanh(gate_i · x) * (up_i · x); else down: on the per-pair path straight
// into out (the slots combined as they go), grouped into y[pair] = down[e] · h[pair] (combined after). gate_up and
// down may be stored in different types (llama-quantize's mixes), so each projection is instantiated for its own
// type: the instantiations grow with the number of types, not with its square.
template <int DT, bool GATE>
gk_status project(const Call& c) {
  if (c.grouped) {
    grouped_gemm<DT, GATE><<<dim3(c.tiles, ceil_div(GATE ? c.inter : c.hidden, kBN)), kGemmThreads, 0, c.st>>>(
        GATE ? c.x : c.sc.h, c.top_k, GATE ? c.gate_up : c.down, c.experts, c.hidden, c.inter, c.g,
        GATE ? c.sc.h : c.sc.y);
  } else if constexpr (GATE) {
    pair_gate_up<DT><<<dim3(ceil_div(c.inter, kWarps), (unsigned)c.pairs), kWarps * 32, 0, c.st>>>(
        c.x, c.ids, c.top_k, c.gate_up, c.experts, c.hidden, c.inter, c.sc.h);
  } else {
    pair_down<DT><<<dim3(ceil_div(c.hidden, kWarps), c.tokens), kWarps * 32, 0, c.st>>>(
        c.sc.h, c.ids, c.weights, c.top_k, c.down, c.experts, c.hidden, c.inter, c.out);
  }
  GK_LAUNCH_CHECK();
  return GK_OK;
}

gk_status project_any(bool gate, int32_t dtype, const Call& c) {
#define GK_MOE_CASE(DT) \
  case DT: return gate ? project<DT, true>(c) : project<DT, false>(c);
  switch (dtype) {
    GK_MOE_CASE(GK_F32)
    GK_MOE_CASE(GK_F16)
    GK_MOE_CASE(GK_BF16)
    GK_QUANT_DTYPES(GK_MOE_CASE)
    default: return gk_fail(GK_ERR_INVALID_ARGUMENT, "gk_moe_experts: %s dtype %d", gate ? "gate_up" : "down", dtype);
  }
#undef GK_MOE_CASE
}

gk_status run_experts(Call c, int32_t gate_up_dtype, int32_t down_dtype, void* scratch) {
  c.pairs = (int64_t)c.tokens * c.top_k;
  c.sc = gk::moe::carve(scratch, c.pairs, c.experts, c.hidden, c.inter);
  c.grouped = c.tokens > kPairPathTokens;
  if (!c.grouped) {
    GK_TRY(project_any(true, gate_up_dtype, c));
    return project_any(false, down_dtype, c);
  }
  c.g = groups_in(c.sc.ints, c.pairs, c.experts);
  group_kernel<<<1, kGroupThreads, 0, c.st>>>(c.ids, (int)c.pairs, c.experts, c.g);
  GK_LAUNCH_CHECK();
  // Σ_e ceil(count_e / BM) <= P / BM + (experts hit) <= ceil(P / BM) + min(E, P).
  c.tiles = (unsigned)(ceil_div<int64_t>(c.pairs, kBM) + std::min<int64_t>(c.experts, c.pairs));
  GK_TRY(project_any(true, gate_up_dtype, c));
  GK_TRY(project_any(false, down_dtype, c));
  combine_kernel<<<dim3(c.tokens, ceil_div(c.hidden, 256)), 256, 0, c.st>>>(c.sc.y, c.ids, c.weights, c.top_k,
                                                                           c.experts, c.hidden, c.out);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

}  // namespace

GK_API gk_status gk_moe_route(gk_stream* s, const float* logits, const void* per_expert_scale, int32_t scale_dtype,
                              int32_t tokens, int32_t experts, int32_t top_k, int32_t* ids, float* weights) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_moe_route", &st));
  GK_TRY(gk::moe::validate_route(logits, per_expert_scale, scale_dtype, tokens, experts, top_k, ids, weights));
  route_kernel<<<tokens, kRouteThreads, 0, st>>>(logits, per_expert_scale, scale_dtype, experts, top_k, ids, weights);
  GK_LAUNCH_CHECK();
  return GK_OK;
}

GK_API gk_status gk_moe_experts(gk_stream* s, const float* x, const int32_t* ids, const float* weights, int32_t tokens,
                                int32_t top_k, const void* gate_up, int32_t gate_up_dtype, const void* down,
                                int32_t down_dtype, int32_t experts, int32_t hidden, int32_t inter, void* scratch,
                                uint64_t scratch_bytes, float* out) {
  cudaStream_t st;
  GK_TRY(begin_op(s, "gk_moe_experts", &st));
  GK_TRY(gk::moe::validate_experts(x, ids, weights, tokens, top_k, gate_up, gate_up_dtype, down, down_dtype, experts,
                                   hidden, inter, scratch, scratch_bytes, out));
  GK_REQUIRE(!gk::is_quant_dtype(gate_up_dtype) || (uintptr_t)gate_up % quant::quant_align(gate_up_dtype) == 0,
             "gk_moe_experts: quantized gate_up must be %d-byte aligned", quant::quant_align(gate_up_dtype));
  GK_REQUIRE(!gk::is_quant_dtype(down_dtype) || (uintptr_t)down % quant::quant_align(down_dtype) == 0,
             "gk_moe_experts: quantized down must be %d-byte aligned", quant::quant_align(down_dtype));
  Call c{};
  c.st = st, c.x = x, c.weights = weights, c.ids = ids, c.gate_up = gate_up, c.down = down;
  c.tokens = tokens, c.top_k = top_k, c.experts = experts, c.hidden = hidden, c.inter = inter, c.out = out;
  return run_experts(c, gate_up_dtype, down_dtype, scratch);
}
