// gk_attention_prefill on the CPU. Two paths, the same mask, f32 throughout; they differ in summation order and
// in exp (a vectorised expf of ~1 ulp in the tiled path, std::exp in the other):
//
// Tiled (many query rows per kv head: vision towers' 4096×4096 bidirectional attention, long text prompts).
// Flash-attention style: a task is a tile of queries × the q heads of one kv head (the grouped-query family
// shares every K/V row, so its heads are rows of the same tile). It sweeps key tiles of kBk keys: S = Q·Kᵀ as a
// register-blocked GEMM against K packed transposed per tile, the mask applied only on tiles the visibility
// range cuts, an online softmax per row (running max and sum; the accumulator rescaled when the max grows),
// then O += P·V as a second GEMM against V packed with its rows padded to whole vectors. Key tiles no query of
// the tile can see are never touched. K and V are packed once per call, so the GEMMs read unit-stride panels.
// On these 2 Zen 4 cores: ~170 GFLOP/s at 4096×4096, 16 heads × 72 (the per-query path: ~4).
//
// Per query (under 16 queries: a short chunk after a cached prefix, where packing K/V would cost more than it
// saves and a tile of grouped heads would leave a core idle). One task is (query, kv head): visible keys
// are gathered into an index list first (a plain range without span_ids), scores per key block, and an exact
// (max-subtracted, expf) softmax.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "../common/error.h"
#include "cpu.h"
#include "simd.h"


namespace {

using namespace gk::cpu::simd;

// The hot loops stay out of line: inlined into the task body, GCC spilled their row pointers.
#define GK_HOT __attribute__((noinline))

// s[h·lds + j] = q[h·ldq ..] · r[j] for H q vectors and 4 key rows: 4H independent chains, and each
// loaded vector feeds H or 4 FMAs.
template <int H>
GK_HOT void dot_h4(const float* q, int64_t ldq, const float* const* r, int n, float* s, int64_t lds) {
  const float *r0 = r[0], *r1 = r[1], *r2 = r[2], *r3 = r[3];
  vf a[H][4];
  for (int h = 0; h < H; ++h) a[h][0] = a[h][1] = a[h][2] = a[h][3] = vzero();
  int i = 0;
  for (; i + kW <= n; i += kW) {
    const vf k0 = vload(r0 + i), k1 = vload(r1 + i), k2 = vload(r2 + i), k3 = vload(r3 + i);
    for (int h = 0; h < H; ++h) {
      const vf qv = vload(q + h * ldq + i);
      a[h][0] = vfma(qv, k0, a[h][0]);
      a[h][1] = vfma(qv, k1, a[h][1]);
      a[h][2] = vfma(qv, k2, a[h][2]);
      a[h][3] = vfma(qv, k3, a[h][3]);
    }
  }
  for (int h = 0; h < H; ++h) {
    float* sh = s + h * lds;
    sum4(a[h], sh);
    for (int t = i; t < n; ++t) {
      for (int j = 0; j < 4; ++j) sh[j] += q[h * ldq + t] * r[j][t];
    }
  }
}

inline float dot1(const float* q, const float* r, int n) {
  vf a = vzero();
  int i = 0;
  for (; i + kW <= n; i += kW) a = vfma(vload(q + i), vload(r + i), a);
  float lanes[kW];
  vstore(lanes, a);
  float s = 0.0f;
  for (int l = 0; l < kW; ++l) s += lanes[l];
  for (; i < n; ++i) s += q[i] * r[i];
  return s;
}

// acc[h·ldacc + d ..+C·kW) += Σ_j p[h·ldp + j] · v[j][d ..+C·kW): H·C chains held in registers across
// all nb keys, and each V vector feeds H heads.
template <int H, int C>
GK_HOT void weighted_sum_cols(const float* p, int64_t ldp, const float* const* v, int nb, int d, float* acc,
                              int64_t ldacc) {
  vf a[H][C];
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < C; ++c) a[h][c] = vload(acc + h * ldacc + d + c * kW);
  for (int j = 0; j < nb; ++j) {
    const float* vj = v[j] + d;
    vf ph[H];
    for (int h = 0; h < H; ++h) ph[h] = vset1(p[h * ldp + j]);
    for (int c = 0; c < C; ++c) {
      const vf vv = vload(vj + c * kW);
      for (int h = 0; h < H; ++h) a[h][c] = vfma(ph[h], vv, a[h][c]);
    }
  }
  for (int h = 0; h < H; ++h)
    for (int c = 0; c < C; ++c) vstore(acc + h * ldacc + d + c * kW, a[h][c]);
}

constexpr int kKeyBlock = 32;   // keys whose K or V rows stay in L1 while every q head of the group uses them
constexpr int kHeads = 2;       // q heads sharing each loaded K/V vector
constexpr int kCols = kW == 16 ? 8 : 4;  // vectors of one output row kept in registers per head

// s[g·lds + j] = softcap(scale · q_g·k[j]) for g < heads, j < nb.
inline void scores(const float* q, int heads, int hd, const float* const* k, int nb, float scale, float softcap,
                   float* s, int64_t lds) {
  int g = 0;
  for (; g + kHeads <= heads; g += kHeads) {
    int j = 0;
    for (; j + 4 <= nb; j += 4) dot_h4<kHeads>(q + g * hd, hd, k + j, hd, s + g * lds + j, lds);
    for (; j < nb; ++j)
      for (int h = g; h < g + kHeads; ++h) s[h * lds + j] = dot1(q + h * hd, k[j], hd);
  }
  for (; g < heads; ++g) {
    int j = 0;
    for (; j + 4 <= nb; j += 4) dot_h4<1>(q + g * hd, hd, k + j, hd, s + g * lds + j, lds);
    for (; j < nb; ++j) s[g * lds + j] = dot1(q + g * hd, k[j], hd);
  }
  for (g = 0; g < heads; ++g) {
    for (int j = 0; j < nb; ++j) {
      float x = s[g * lds + j] * scale;
      if (softcap > 0.0f) x = softcap * std::tanh(x / softcap);
      s[g * lds + j] = x;
    }
  }
}

template <int H>
inline void weighted_sum_heads(const float* p, int64_t ldp, const float* const* v, int nb, int hd, float* acc) {
  int d = 0;
  for (; d + kCols * kW <= hd; d += kCols * kW) weighted_sum_cols<H, kCols>(p, ldp, v, nb, d, acc, hd);
  for (; d + kW <= hd; d += kW) weighted_sum_cols<H, 1>(p, ldp, v, nb, d, acc, hd);
  for (; d < hd; ++d) {
    for (int h = 0; h < H; ++h) {
      float a = acc[h * hd + d];
      for (int j = 0; j < nb; ++j) a += p[h * ldp + j] * v[j][d];
      acc[h * hd + d] = a;
    }
  }
}

// acc[g·hd + d] += Σ_j p[g·ldp + j] · v[j][d] for g < heads, j < nb.
inline void weighted_sum(const float* p, int64_t ldp, int heads, const float* const* v, int nb, int hd, float* acc) {
  int g = 0;
  for (; g + kHeads <= heads; g += kHeads) weighted_sum_heads<kHeads>(p + g * ldp, ldp, v, nb, hd, acc + g * hd);
  for (; g < heads; ++g) weighted_sum_heads<1>(p + g * ldp, ldp, v, nb, hd, acc + g * hd);
}

// In place: s[j] = exp(s[j] - max s); writes max s and Σ exp to *mx and *sum.
inline void softmax_unnormalised(float* s, int64_t n, float* mx, float* sum) {
  float m = s[0];
  for (int64_t j = 1; j < n; ++j) m = std::max(m, s[j]);
  float l = 0.0f;
  for (int64_t j = 0; j < n; ++j) {
    s[j] = std::exp(s[j] - m);
    l += s[j];
  }
  *mx = m;
  *sum = l;
}

struct Params {
  const float *q, *k, *v;
  float* out;
  int32_t q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window;
  const int32_t* span_ids;
  float scale, softcap;
};

// Whether the query at position p sees any key (visible_keys(...) > 0, without listing them).
bool any_visible(const Params& a, int64_t p) {
  const int64_t lo = a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0;
  const int64_t hi = std::min<int64_t>(a.causal ? p : (int64_t)a.kv_len - 1, (int64_t)a.kv_len - 1);
  if (lo <= hi) return true;
  const int32_t own = a.span_ids ? a.span_ids[p] : 0;
  for (int64_t j = lo; own != 0 && j < a.kv_len; ++j) {
    if (a.span_ids[j] == own) return true;
  }
  return false;
}

// Visible keys of the query at position p, ascending; returns how many were written to idx.
int visible_keys(const Params& a, int64_t p, int32_t* idx) {
  // The causal/window term is one contiguous range [lo, hi].
  const int64_t lo = a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0;
  const int64_t hi = a.causal ? p : (int64_t)a.kv_len - 1;
  const int32_t own = a.span_ids ? a.span_ids[p] : 0;
  int nk = 0;
  if (own == 0) {
    for (int64_t j = lo; j <= hi; ++j) idx[nk++] = (int32_t)j;
    return nk;
  }
  // The span lifts only the causal bound; the window still applies (AND(window, OR(causal, same span))).
  for (int64_t j = lo; j < a.kv_len; ++j) {
    if (j <= hi || a.span_ids[j] == own) idx[nk++] = (int32_t)j;
  }
  return nk;
}

struct Scratch {
  std::vector<int32_t> idx;  // [kv_len] visible keys
  std::vector<float> p;      // [group][kv_len] scores, then unnormalised softmax weights
  std::vector<float> acc;    // [group][head_dim]
  std::vector<float> inv;    // [group] 1 / softmax denominator
};

// All q heads of kv head `kvh` for query i.
void attend(const Params& a, int64_t i, int kvh, Scratch& w) {
  const int hd = a.head_dim, group = a.q_heads / a.kv_heads;
  const int64_t kv_stride = (int64_t)a.kv_heads * hd;
  const float* q = a.q + (i * a.q_heads + (int64_t)kvh * group) * hd;
  float* out = a.out + (i * a.q_heads + (int64_t)kvh * group) * hd;
  const int32_t* idx = w.idx.data();
  const int nk = visible_keys(a, a.q_pos0 + i, w.idx.data());
  if (nk == 0) {
    std::fill(out, out + (int64_t)group * hd, 0.0f);
    return;
  }
  const float* kbase = a.k + (int64_t)kvh * hd;
  const float* vbase = a.v + (int64_t)kvh * hd;
  const float* rows[kKeyBlock];
  for (int t0 = 0; t0 < nk; t0 += kKeyBlock) {
    const int nb = std::min(kKeyBlock, nk - t0);
    for (int j = 0; j < nb; ++j) rows[j] = kbase + idx[t0 + j] * kv_stride;
    scores(q, group, hd, rows, nb, a.scale, a.softcap, w.p.data() + t0, a.kv_len);
  }
  float* acc = w.acc.data();
  std::fill(acc, acc + (int64_t)group * hd, 0.0f);
  for (int g = 0; g < group; ++g) {
    float mx, sum;
    softmax_unnormalised(w.p.data() + (size_t)g * a.kv_len, nk, &mx, &sum);
    w.inv[g] = 1.0f / sum;
  }
  for (int t0 = 0; t0 < nk; t0 += kKeyBlock) {
    const int nb = std::min(kKeyBlock, nk - t0);
    for (int j = 0; j < nb; ++j) rows[j] = vbase + idx[t0 + j] * kv_stride;
    weighted_sum(w.p.data() + t0, a.kv_len, group, rows, nb, hd, acc);
  }
  for (int g = 0; g < group; ++g) {
    for (int d = 0; d < hd; ++d) out[(int64_t)g * hd + d] = acc[(int64_t)g * hd + d] * w.inv[g];
  }
}

// ---- tiled (flash) path --------------------------------------------------------------------------------------

constexpr int kBk = 4 * kW;                 // keys per tile: 64 on AVX-512
constexpr int kAcc = kW == 16 ? 24 : 12;    // accumulator registers a micro-tile may hold (of 32 zmm / 16 ymm)
constexpr int kMR = kW == 16 ? 8 : 4;       // most rows per micro-tile
constexpr int kNV = kW == 16 ? 4 : 2;       // key vectors per Q·Kᵀ micro-tile row
constexpr int kQkRows = kW == 16 ? 6 : 4;   // rows per Q·Kᵀ micro-tile (6×64 on AVX-512: 24 accumulators)
constexpr int kTileRows = 64;               // query rows (queries × grouped heads) per task
constexpr int kMinTiledQueries = 16;        // below this many queries the per-query path is used

// Rows of a P·V micro-tile C vectors wide: as many as the accumulators allow.
constexpr int pv_rows(int c) { return std::max(1, std::min(kMR, kAcc / c)); }

// s[r·kBk + c] = Σ_d q[r·hd + d] · kt[d·kBk + c] for r < R, c < kNV·kW: one micro-tile of S = Q·Kᵀ.
template <int R>
GK_HOT void qk_tile(const float* q, int hd, const float* kt, float* s) {
  vf acc[R][kNV];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < kNV; ++c) acc[r][c] = vzero();
  for (int d = 0; d < hd; ++d) {
    vf kv[kNV];
    for (int c = 0; c < kNV; ++c) kv[c] = vload(kt + d * kBk + c * kW);
    for (int r = 0; r < R; ++r) {
      const vf qb = vset1(q[r * hd + d]);
      for (int c = 0; c < kNV; ++c) acc[r][c] = vfma(qb, kv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < kNV; ++c) vstore(s + r * kBk + c * kW, acc[r][c]);
}

// o[r·dp + c·kW ..] += Σ_j p[r·kBk + j] · v[j·dp + c·kW ..] for r < R, c < C, j < kBk: a micro-tile of
// O += P·V.
template <int R, int C>
GK_HOT void pv_tile(const float* p, const float* v, int64_t dp, float* o) {
  vf acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = vload(o + r * dp + c * kW);
  for (int j = 0; j < kBk; ++j) {
    vf vv[C];
    for (int c = 0; c < C; ++c) {
      vv[c] = vload(v + j * dp + c * kW);
      vkeep(vv[c]);
    }
    for (int r = 0; r < R; ++r) {
      const vf pb = vset1(p[r * kBk + j]);
      for (int c = 0; c < C; ++c) acc[r][c] = vfma(pb, vv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) vstore(o + r * dp + c * kW, acc[r][c]);
}

// The row tails (rows % kMR) of both GEMMs, dispatched to the matching micro-tile height.
template <int R>
void qk_tail(int rows, const float* q, int hd, const float* kt, float* s) {
  if constexpr (R > 0) {
    if (rows == R) return qk_tile<R>(q, hd, kt, s);
    qk_tail<R - 1>(rows, q, hd, kt, s);
  }
}
template <int R, int C>
void pv_tail(int rows, const float* p, const float* v, int64_t dp, float* o) {
  if constexpr (R > 0) {
    if (rows == R) return pv_tile<R, C>(p, v, dp, o);
    pv_tail<R - 1, C>(rows, p, v, dp, o);
  }
}

// S [rows][kBk] = Q [rows][hd] · Kᵀ, kt the tile's K as [hd][kBk].
void qk_gemm(const float* q, int rows, int hd, const float* kt, float* s) {
  for (int c0 = 0; c0 < kBk; c0 += kNV * kW) {
    int r = 0;
    for (; r + kQkRows <= rows; r += kQkRows) qk_tile<kQkRows>(q + r * hd, hd, kt + c0, s + r * kBk + c0);
    qk_tail<kQkRows - 1>(rows - r, q + r * hd, hd, kt + c0, s + r * kBk + c0);
  }
}

template <int C>
void pv_cols(const float* p, int rows, const float* v, int64_t dp, float* o) {
  constexpr int R = pv_rows(C);
  int r = 0;
  for (; r + R <= rows; r += R) pv_tile<R, C>(p + r * kBk, v, dp, o + r * dp);
  pv_tail<R - 1, C>(rows - r, p + r * kBk, v, dp, o + r * dp);
}

// O [rows][dp] += P [rows][kBk] · V [kBk][dp] (dp a whole number of vectors). Head dims of up to 5 vectors
// (64, 72 → 80 on AVX-512) take one micro-tile across the whole row, so each P broadcast feeds every column.
void pv_gemm(const float* p, int rows, const float* v, int64_t dp, float* o) {
  const int64_t nv = dp / kW;
  switch (nv) {
    case 1: return pv_cols<1>(p, rows, v, dp, o);
    case 2: return pv_cols<2>(p, rows, v, dp, o);
    case 3: return pv_cols<3>(p, rows, v, dp, o);
    case 4: return pv_cols<4>(p, rows, v, dp, o);
    case 5: return pv_cols<5>(p, rows, v, dp, o);
    default: break;
  }
  int64_t d = 0;
  for (; d + 4 * kW <= dp; d += 4 * kW) pv_cols<4>(p, rows, v + d, dp, o + d);
  switch ((dp - d) / kW) {
    case 1: return pv_cols<1>(p, rows, v + d, dp, o + d);
    case 2: return pv_cols<2>(p, rows, v + d, dp, o + d);
    case 3: return pv_cols<3>(p, rows, v + d, dp, o + d);
    default: break;
  }
}

// 64-byte aligned f32 scratch, uninitialised; get() is null when the allocation failed.
struct Buffer {
  std::unique_ptr<float, decltype(&std::free)> mem{nullptr, &std::free};
  explicit Buffer(size_t n) {
    const size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    mem.reset(static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64)));
  }
  float* get() const { return mem.get(); }
};

// The range of keys a query at position p can see without span_ids: [lo(p), hi(p)].
inline int64_t lo_key(const Params& a, int64_t p) { return a.window > 0 ? std::max<int64_t>(0, p - a.window + 1) : 0; }
inline int64_t hi_key(const Params& a, int64_t p) { return a.causal ? p : (int64_t)a.kv_len - 1; }

// The packed K/V buffer outlives the call, one per calling thread, up to kKeepFloats: a vision tower calls
// this op with the same shapes every layer, and faulting in tens of MB of fresh pages each call showed up in
// profiles. Larger requests (long prompts, where the quadratic work dwarfs the faults) are freed after the call.
constexpr size_t kKeepFloats = (size_t)64 << 20 >> 2;  // 64 MiB

float* pack_buffer(size_t n, Buffer& fresh) {
  thread_local Buffer kept{0};
  thread_local size_t kept_n = 0;
  if (n > kKeepFloats) {
    fresh = Buffer(n);
    return fresh.get();
  }
  if (n > kept_n) {
    kept = Buffer(0);  // free the old one before allocating the larger one
    kept = Buffer(n);
    kept_n = kept.get() ? n : 0;
  }
  return kept.get();
}

// K and V of every kv head, packed for the GEMMs over key tiles t0 .. t0 + tiles (keys past kv_len are zero):
// kt [kv_heads][tiles][hd][kBk] (each tile's Kᵀ one contiguous panel), vp [kv_heads][tiles·kBk][dp].
struct Packed {
  int64_t t0, tiles, dp;
  Buffer fresh{0};
  float *kt, *vp;  // null when out of memory
  Packed(const Params& a, int64_t t0_, int64_t tiles_, int64_t dp_) : t0(t0_), tiles(tiles_), dp(dp_) {
    const size_t nk = (size_t)a.kv_heads * tiles * a.head_dim * kBk, nv = (size_t)a.kv_heads * tiles * kBk * dp;
    kt = pack_buffer(nk + nv, fresh);
    vp = kt ? kt + nk : nullptr;
  }
  float* k_tile(int kvh, int64_t t, int hd) const { return kt + ((kvh * tiles + t - t0) * hd) * kBk; }
  float* v_tile(int kvh, int64_t t) const { return vp + (kvh * tiles + t - t0) * kBk * dp; }
};

void pack_tile(const Params& a, const Packed& pk, int kvh, int64_t t) {
  const int hd = a.head_dim;
  const int64_t stride = (int64_t)a.kv_heads * hd;
  float* kt = pk.k_tile(kvh, t, hd);
  float* vp = pk.v_tile(kvh, t);
  for (int j = 0; j < kBk; ++j) {
    const int64_t key = t * kBk + j;
    float* vrow = vp + j * pk.dp;
    if (key < a.kv_len) {
      const float* ks = a.k + key * stride + (int64_t)kvh * hd;
      const float* vs = a.v + key * stride + (int64_t)kvh * hd;
      for (int d = 0; d < hd; ++d) kt[d * kBk + j] = ks[d];
      std::memcpy(vrow, vs, sizeof(float) * hd);
      std::fill(vrow + hd, vrow + pk.dp, 0.0f);
    } else {
      for (int d = 0; d < hd; ++d) kt[d * kBk + j] = 0.0f;
      std::fill(vrow, vrow + pk.dp, 0.0f);
    }
  }
}

// One thread's tile buffers, carved from one allocation: q [rows][hd], s [rows][kBk] (scores, then weights),
// o [rows][dp], the running max m [rows] and sum l [rows][kW] (kept as lanes, reduced once at the end),
// seen [queries][kBk] (1 = visible, for cut tiles).
struct TileScratch {
  Buffer mem;
  float *q, *s, *o, *m, *l, *seen;
  TileScratch(int rows, int queries, int hd, int64_t dp)
      : mem((size_t)rows * (hd + kBk + dp + 1 + kW) + (size_t)queries * kBk + 5 * 16) {
    // Each part starts on a 64-byte boundary.
    auto up = [](float* p) { return p + ((16 - ((uintptr_t)p / sizeof(float)) % 16) % 16); };
    q = mem.get();
    s = up(q + (int64_t)rows * hd);
    o = up(s + (int64_t)rows * kBk);
    m = up(o + rows * dp);
    l = up(m + rows);
    seen = up(l + rows * kW);
  }
  bool ok() const { return mem.get() != nullptr; }
};

// One row's step of the online softmax over a key tile. s [kBk] holds q·k; it leaves holding the unnormalised
// weights e^(score - m) under the row's running max *m, which it raises when the tile has a larger score,
// rescaling the row's accumulator o [dp] and its running sum l [kW lanes] to match. plain: every key visible, no
// softcap, scale > 0 — then max(scale·s) = scale·max(s) exactly and the scaling folds into the exponent's FMA.
// Otherwise seen [kBk] (1 = visible; null: all) masks the tile, masked scores becoming -inf and their weights 0.
inline void online_softmax(float* s, bool plain, const float* seen, float scale, float softcap, float* m, float* l,
                           float* o, int64_t dp) {
  const float ninf = -std::numeric_limits<float>::infinity();
  vf mx = vset1(ninf);
  float tile_max;
  if (plain) {
    for (int c = 0; c < kBk; c += kW) mx = vmax(mx, vload(s + c));
    tile_max = hmax(mx) * scale;
  } else {
    for (int j = 0; j < kBk; ++j) {
      float x = s[j] * scale;
      if (softcap > 0.0f) x = softcap * std::tanh(x / softcap);
      s[j] = !seen || seen[j] != 0.0f ? x : ninf;
    }
    for (int c = 0; c < kBk; c += kW) mx = vmax(mx, vload(s + c));
    tile_max = hmax(mx);
    scale = 1.0f;  // s now holds the final scores
  }
  // max() may drop a NaN score; e^(NaN - m) below still makes the row NaN, as torch's softmax does (and a +inf
  // score does so through inf - inf). Only a row whose other scores are all -inf must look for NaN itself.
  const float m_old = *m, m_new = std::max(m_old, tile_max);
  if (m_new == ninf) {  // nothing visible to this row yet: its weights are all zero, unless a score is NaN
    bool nan = false;
    for (int c = 0; c < kBk; c += kW) nan |= vhas_nan(vload(s + c));
    if (nan) vstore(l, vset1(std::numeric_limits<float>::quiet_NaN()));
    std::fill(s, s + kBk, 0.0f);
    return;
  }
  vf sum = vload(l);
  if (m_new > m_old) {  // the running max grew: rescale what was accumulated under the old one
    const vf alpha = vset1(std::exp(m_old - m_new));  // 0 when m_old is -inf
    sum = vmul(sum, alpha);
    for (int64_t d = 0; d < dp; d += kW) vstore(o + d, vmul(vload(o + d), alpha));
    *m = m_new;
  }
  const vf sc = vset1(scale), neg_m = vset1(-m_new);
  for (int c = 0; c < kBk; c += kW) {
    const vf e = vexp(vfma(vload(s + c), sc, neg_m));
    vstore(s + c, e);
    sum = vadd(sum, e);
  }
  vstore(l, sum);
}

// One task: queries i0 .. i0 + nq of kv head kvh, all `group` q heads (row r = query r / group, head r % group).
void attend_tile(const Params& a, const Packed& pk, int64_t i0, int nq, int kvh, TileScratch& w) {
  const int hd = a.head_dim, group = a.q_heads / a.kv_heads, rows = nq * group;
  const int64_t dp = pk.dp;
  float *q = w.q, *s = w.s, *o = w.o;
  for (int i = 0; i < nq; ++i) {
    const float* src = a.q + ((i0 + i) * a.q_heads + (int64_t)kvh * group) * hd;
    std::memcpy(q + (int64_t)i * group * hd, src, sizeof(float) * group * hd);
  }
  std::fill(o, o + rows * dp, 0.0f);
  std::fill(w.m, w.m + rows, -std::numeric_limits<float>::infinity());
  std::fill(w.l, w.l + rows * kW, 0.0f);

  const int64_t p0 = a.q_pos0 + i0, p1 = p0 + nq - 1;  // first and last query position
  bool spans = false;                                  // does any query of the tile sit in a span?
  for (int64_t p = p0; a.span_ids && p <= p1 && !spans; ++p) spans = a.span_ids[p] != 0;
  // Tiles before lo(p0) are out of every query's window; past hi(p1) only a span can reach.
  const int64_t t_first = lo_key(a, p0) / kBk;
  const int64_t t_last = (spans ? (int64_t)a.kv_len - 1 : hi_key(a, p1)) / kBk;
  for (int64_t t = t_first; t <= t_last; ++t) {
    const int64_t j0 = t * kBk;
    // Whole tile visible to every query of the task: no mask to apply.
    const bool whole = j0 + kBk <= a.kv_len && j0 >= lo_key(a, p1) && j0 + kBk - 1 <= hi_key(a, p0);
    if (!whole) {
      bool any = false;
      for (int i = 0; i < nq; ++i) {
        const int64_t p = p0 + i, lo = lo_key(a, p), hi = hi_key(a, p);
        const int32_t own = a.span_ids ? a.span_ids[p] : 0;
        float* seen = w.seen + i * kBk;
        for (int j = 0; j < kBk; ++j) {
          const int64_t key = j0 + j;
          // AND(window, OR(causal, same non-zero span)), as gemmakit.h states it.
          const bool vis = key < a.kv_len && key >= lo && (key <= hi || (own != 0 && a.span_ids[key] == own));
          seen[j] = vis ? 1.0f : 0.0f;
          any |= vis;
        }
      }
      if (!any) continue;
    }
    qk_gemm(q, rows, hd, pk.k_tile(kvh, t, hd), s);
    const bool plain = whole && a.softcap == 0.0f && a.scale > 0.0f;
    for (int r = 0; r < rows; ++r) {
      const float* seen = whole ? nullptr : w.seen + (r / group) * kBk;
      online_softmax(s + r * kBk, plain, seen, a.scale, a.softcap, w.m + r, w.l + r * kW, o + r * dp, dp);
    }
    pv_gemm(s, rows, pk.v_tile(kvh, t), dp, o);
  }
  for (int r = 0; r < rows; ++r) {
    float* dst = a.out + ((i0 + r / group) * a.q_heads + (int64_t)kvh * group + r % group) * hd;
    const float l = hsum(vload(w.l + r * kW));
    // No visible key: zeros, as the per-query path; visible keys whose scores are all -inf: NaN, as torch's
    // softmax and the per-query path (exp(-inf - -inf)); NaN stays.
    const float inv = w.m[r] == -std::numeric_limits<float>::infinity() && any_visible(a, a.q_pos0 + i0 + r / group)
                          ? std::numeric_limits<float>::quiet_NaN()
                          : (l == 0.0f ? 0.0f : 1.0f / l);
    for (int d = 0; d < hd; ++d) dst[d] = o[r * dp + d] * inv;
  }
}

gk_status attention_tiled(const Params& a) {
  const int hd = a.head_dim, group = a.q_heads / a.kv_heads;
  const int64_t dp = (hd + kW - 1) / kW * kW;
  // Queries per task; without grouped heads a whole number of Q·Kᵀ micro-tiles (60 rows, not 64 = 10×6 + 4).
  const int bq = group == 1 ? kTileRows / kQkRows * kQkRows : std::max(1, kTileRows / group);
  const int64_t q_tiles = (a.q_len + bq - 1) / bq;
  // Key tiles any query can reach: from the first query's window start to the last key (span_ids or not
  // causal) or the last query's position.
  const int64_t p_first = a.q_pos0, p_last = (int64_t)a.q_pos0 + a.q_len - 1;
  const int64_t t0 = lo_key(a, p_first) / kBk;
  const int64_t t1 = (a.span_ids ? (int64_t)a.kv_len - 1 : hi_key(a, p_last)) / kBk;
  Packed pk(a, t0, t1 - t0 + 1, dp);
  // All allocations before the parallel region, so running out of memory is a status, not a throw.
  std::vector<TileScratch> scratch;
  scratch.reserve(omp_get_max_threads());
  for (int t = 0; t < omp_get_max_threads(); ++t) scratch.emplace_back(bq * group, bq, hd, dp);
  bool ok = pk.kt != nullptr;
  for (const TileScratch& w : scratch) ok = ok && w.ok();
  if (!ok) {
    return gk_fail(GK_ERR_OUT_OF_MEMORY, "gk_attention_prefill: cannot allocate %lld KiB of packed K/V",
                   (long long)(a.kv_heads * pk.tiles * kBk * (hd + dp) / 256));
  }
  const int64_t pack_tasks = (int64_t)a.kv_heads * pk.tiles;
  const int64_t tasks = q_tiles * a.kv_heads;
  const double work = (double)a.q_len * a.kv_len * a.q_heads * hd;
#pragma omp parallel if (work > 65536.0)
  {
#pragma omp for schedule(static)
    for (int64_t u = 0; u < pack_tasks; ++u) pack_tile(a, pk, (int)(u / pk.tiles), t0 + u % pk.tiles);
    TileScratch& w = scratch[omp_get_thread_num()];
    // kv-head-major: a thread's consecutive tasks reuse the same packed K/V from cache. Dynamic: causal tiles
    // differ in work.
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < tasks; ++u) {
      const int64_t i0 = (u % q_tiles) * bq;
      attend_tile(a, pk, i0, (int)std::min<int64_t>(bq, a.q_len - i0), (int)(u / q_tiles), w);
    }
  }
  return GK_OK;
}

}  // namespace

GK_API gk_status gk_attention_prefill(gk_stream* s, const float* q, const float* k, const float* v, float* out,
                                      int32_t q_len, int32_t kv_len, int32_t q_heads, int32_t kv_heads,
                                      int32_t head_dim, int32_t q_pos0, int32_t causal, int32_t window,
                                      const int32_t* span_ids, float scale, float softcap) {
  GK_TRY(gk::validate_stream(s, "gk_attention_prefill"));
  GK_TRY(gk::validate_attention_prefill(q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, window,
                                        scale, softcap));
  GK_CPU_RECORD(s, gk_attention_prefill(s, q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal,
                                        window, span_ids, scale, softcap));
  const Params a{q, k, v, out, q_len, kv_len, q_heads, kv_heads, head_dim, q_pos0, causal, window, span_ids,
                 scale, softcap};
  const int group = q_heads / kv_heads;
  if (q_len >= kMinTiledQueries) return attention_tiled(a);
  const int64_t tasks = (int64_t)q_len * kv_heads;
  const double work = (double)q_len * kv_len * q_heads * head_dim;
#pragma omp parallel if (tasks > 1 && work > 65536.0)
  {
    Scratch w{std::vector<int32_t>((size_t)kv_len), std::vector<float>((size_t)group * kv_len),
              std::vector<float>((size_t)group * head_dim), std::vector<float>((size_t)group)};
    // kv-head-major order: a thread's consecutive tasks reuse the same K/V head from cache.
    // Dynamic: causal rows have very different amounts of work.
#pragma omp for schedule(dynamic, 4)
    for (int64_t t = 0; t < tasks; ++t) attend(a, t % q_len, (int)(t / q_len), w);
  }
  return GK_OK;
}
