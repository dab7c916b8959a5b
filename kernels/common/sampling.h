// Arithmetic gk_sample shares between the CPU and CUDA backends (and tests/ops/reference.ts), so that
// equal logits give the same token on every backend, bit for bit.
//
// The sampler never sums floats in an order-dependent way. After repetition penalty and temperature (one
// correctly rounded f32 operation each), every token gets
//   weight w = exp(l - max)        f32, by sample_exp below (fmaf and single ops only: no libm, no
//                                  contraction, the same bits on g++, nvcc and in TypeScript)
//   mass   M = floor(w * 2^40)     uint64: sums of masses are exact integers, so their order is irrelevant
// Tokens are ranked by key (scaled logit descending, then id ascending): sample_key packs both into one
// uint64 so that "higher key" is "ranked first". The draw is R = floor(u * total) with u = h / 2^24 from
// the stateless hash of (seed, step); the token is the first id (ascending) whose cumulative kept mass
// exceeds R.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dtype.h"  // GK_HD

namespace gk {

// lowbias32 (C. Wellons): a 32-bit integer mix with good avalanche.
GK_HD uint32_t sample_mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// The RNG: stateless, one 32-bit hash per (seed, step). For a fixed seed it is a bijection of step.
GK_HD uint32_t sample_hash(uint32_t seed, uint32_t step) { return sample_mix32(sample_mix32(seed ^ 0x9e3779b9u) + step); }

// The top 24 bits of the hash: u = sample_u24(...) / 2^24 lies in [0, 1) and is exact in f32 and f64.
GK_HD uint32_t sample_u24(uint32_t seed, uint32_t step) { return sample_hash(seed, step) >> 8; }

// Single f32 operations a code generator must not fuse with a neighbour: ptxas may contract a plain PTX
// mul/add pair into an FMA, the _rn intrinsics never are. (Host code is built without such pairs; the
// CPU library's disassembly shows exactly the explicit fmaf of sample_exp.)
GK_HD float sample_fmul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

GK_HD float sample_fsub(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}

// Masses are weights in units of 2^-40; a token whose weight is below 2^-40 (l - max < -27.7) has mass 0.
#define GK_SAMPLE_MASS_BITS 40

// exp(x) for x <= 0 in f32, written so that every backend computes the same bits: Cody-Waite reduction
// and a degree-6 polynomial, each step an explicit fmaf or a single correctly rounded operation (nothing
// for a compiler to contract into an FMA). Accurate to about 2 ulp, which is not the point; determinism is.
// x < -28 (weights below 2^-40, i.e. mass 0 anyway), -inf and NaN give 0.
GK_HD float sample_exp(float x) {
  if (!(x >= -28.0f)) return 0.0f;
  if (x >= 0.0f) return 1.0f;
  const float k = rintf(sample_fmul(x, 1.44269502f));  // round to nearest even; k in [-40, 0]
  float r = fmaf(k, -0.693145752f, x);     // ln2 split: hi has 16 significant bits
  r = fmaf(k, -1.42860677e-06f, r);
  float p = 1.38888889e-3f;                // 1/720
  p = fmaf(p, r, 8.33333333e-3f);          // 1/120
  p = fmaf(p, r, 4.16666667e-2f);          // 1/24
  p = fmaf(p, r, 1.66666667e-1f);          // 1/6
  p = fmaf(p, r, 0.5f);
  p = fmaf(p, r, 1.0f);
  p = fmaf(p, r, 1.0f);
  // p * 2^k, k >= -41: the power of two is a normal f32, the product rounds once.
  const uint32_t bits = (uint32_t)((int32_t)k + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return sample_fmul(p, scale);
}

// The weight of a token with scaled logit l when the largest is m (finite or +inf): 1 for the maxima
// (so +inf logits share the mass), otherwise exp(l - m).
GK_HD float sample_weight(float l, float m) { return l == m ? 1.0f : sample_exp(sample_fsub(l, m)); }

// floor(w * 2^40): w * 2^40 is exact (a power-of-two scale of an f32 <= 1) and the conversion truncates.
GK_HD uint64_t sample_mass(float w) { return (uint64_t)sample_fmul(w, 1099511627776.0f); }

// The scaled logit a key ranks: NaN counts as -inf and -0 as +0 (equal floats must tie, then go by id).
GK_HD float sample_rank_value(float l) { return l != l ? -INFINITY : (l == 0.0f ? 0.0f : l); }

// (value descending, id ascending) as one uint64, larger = ranked first. The value's bits are made
// monotone (negative floats flipped), the id is stored complemented.
GK_HD uint64_t sample_key(float l, int32_t id) {
  const float v = sample_rank_value(l);
  uint32_t b;
  memcpy(&b, &v, sizeof b);
  b = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  return ((uint64_t)b << 32) | (uint64_t)(0xffffffffu - (uint32_t)id);
}

// The rank value (a float, never NaN or -0) whose key has the value bits v = key >> 32: the inverse of the
// order-preserving map in sample_key. Every token of one rank value has the same weight, so a selection
// over key ranges (CUDA's radix select) can weigh a whole value at once.
GK_HD float sample_value_logit(uint32_t v) {
  const uint32_t b = (v & 0x80000000u) ? (v & 0x7fffffffu) : ~v;
  float l;
  memcpy(&l, &b, sizeof l);
  return l;
}

// The threshold a selection stops at inside one rank value: the smallest j in [1, count] with
// (double)(above + j * unit) >= target, where `above` is the weight ranked before the value and each of its
// `count` tokens weighs `unit` > 0. Requires (double)(above + count * unit) >= target. Top-k (unit 1, target
// k) and top-p (unit the value's mass, target top_p of the kept mass) both stop this way: the threshold is
// the key of the j-th token of the value in key order, i.e. with the j-th lowest id.
GK_HD uint64_t sample_tie_rank(uint64_t above, uint64_t unit, uint64_t count, double target) {
  uint64_t lo = 1, hi = count;
  while (lo < hi) {
    const uint64_t mid = lo + ((hi - lo) >> 1);
    if ((double)(above + mid * unit) >= target) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// OpenAI's frequency and presence penalties on a logit whose id occurs count > 0 times:
// l - fma(count, frequency, presence): the explicit fmaf rounds once and nothing is left for a compiler to
// contract, so every backend agrees bit for bit.
GK_HD float sample_count_penalty(float l, int32_t count, float frequency, float presence) {
  return sample_fsub(l, fmaf((float)count, frequency, presence));
}

// transformers' RepetitionPenaltyLogitsProcessor on one logit.
GK_HD float sample_penalize(float l, float penalty) { return l < 0.0f ? sample_fmul(l, penalty) : l / penalty; }

}  // namespace gk
