// gk_sample on the CPU: the reference semantics of kernels/common/sampling.h, with sorting where CUDA
// bisects. Both pick the same token for the same logits: weights, masses and keys are computed by the
// shared functions, and every sum is an exact integer sum.
#include <algorithm>
#include <functional>

#include "../common/sampling.h"
#include "cpu.h"
#include "simd.h"

namespace {

// Per-thread scratch, kept between calls (a decode loop samples the same vocab every step) unless huge.
struct Scratch {
  std::vector<float> w;
  std::vector<uint64_t> keys;
  std::vector<std::pair<uint64_t, uint64_t>> cand;  // (key, mass)
  std::vector<uint8_t> seen;
  std::vector<std::pair<int32_t, uint64_t>> kept;  // (id, mass)

  void trim(int32_t vocab) {
    if (vocab > (1 << 20)) *this = Scratch();
  }
};
thread_local Scratch scratch;

// Up to this top_k the survivors are found with a heap (draw_top_k); larger ones take draw()'s nth_element.
constexpr int32_t kHeapTopK = 4096;

// torch.argmax: the first maximum, and the first NaN beats every number (simd.h). (Splitting a vocabulary-sized
// row over the decode pool measured slower on 2 shared cores: the hand-off costs more than the second core's
// share of bandwidth.)
int32_t argmax(const float* x, int32_t n) { return gk::cpu::simd::argmax(x, n); }

// Top-p's cut: the key of the entry of `ranked` ((key, mass > 0), key descending) at which the cumulative mass first
// reaches top_p of `total` (the mass of every candidate, zeros included); `threshold` when it never does.
uint64_t top_p_cut(const std::vector<std::pair<uint64_t, uint64_t>>& ranked, uint64_t total, float top_p,
                   uint64_t threshold) {
  const double target = (double)top_p * (double)total;
  uint64_t cum = 0;
  for (const auto& [key, mass] : ranked) {
    cum += mass;
    if ((double)cum >= target) return key;
  }
  return threshold;
}

// R = floor(u * total), u = u24 / 2^24: the mass at which the draw stops.
uint64_t draw_point(uint32_t u24, uint64_t total) { return (uint64_t)(((unsigned __int128)u24 * total) >> 24); }

// draw() with top-k on: only its k survivors can be drawn, so they are found in one pass over the keys with a min-heap
// of k, and weights, top-p, min-p and the draw look at them alone — the same token as the whole-vocabulary passes,
// which took ~6 ms of a 262,144-token draw with Gemma's top_k 64 (nth_element over every key, then the weights and
// keys of every token again), ~15% of a 270M token on a 2-core EPYC.
int32_t draw_top_k(const float* logits, int32_t vocab, const gk_sampling& p, float m, uint32_t u24) {
  const size_t k = (size_t)p.top_k;
  std::vector<uint64_t>& heap = scratch.keys;  // the k largest keys so far, smallest at the front
  heap.clear();
  int32_t i = 0;
  for (; i < vocab && heap.size() < k; ++i) heap.push_back(gk::sample_key(logits[i], i));
  std::make_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
  // The front's rank value: a later token (a larger id) beats the front only with a larger rank value, so a vector of
  // logits none of which is larger (NaN ranks as -inf; max_ps drops it) holds no survivor and is skipped whole.
  float front = gk::sample_value_logit((uint32_t)(heap.front() >> 32));
  const auto offer = [&](int32_t j) {
    const uint64_t key = gk::sample_key(logits[j], j);
    if (key <= heap.front()) return;
    std::pop_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    heap.back() = key;
    std::push_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    front = gk::sample_value_logit((uint32_t)(heap.front() >> 32));
  };
  {
    using namespace gk::cpu::simd;
    const vf none = vset1(-INFINITY);
    for (; i + kW <= vocab; i += kW) {
      if (!(hmax(vmax(vload(logits + i), none)) > front)) continue;
      for (int32_t j = i; j < i + kW; ++j) offer(j);
    }
  }
  for (; i < vocab; ++i) offer(i);
  std::sort(heap.begin(), heap.end(), std::greater<uint64_t>());  // the survivors, ranked
  uint64_t threshold = heap.back();                                  // the k-th largest key
  const auto id_of = [](uint64_t key) { return (int32_t)(0xffffffffu - (uint32_t)key); };
  const auto weight = [&](uint64_t key) { return gk::sample_weight(logits[id_of(key)], m); };
  if (p.top_p < 1.0f) {  // as draw(): the shortest ranked prefix whose mass reaches top_p of the survivors'
    auto& cand = scratch.cand;
    cand.clear();
    uint64_t total = 0;
    for (const uint64_t key : heap) {
      const uint64_t mass = gk::sample_mass(weight(key));
      total += mass;
      if (mass > 0) cand.emplace_back(key, mass);
    }
    threshold = top_p_cut(cand, total, p.top_p, threshold);
  }
  // Kept (top-p's prefix, min-p), then the draw in id order.
  auto& kept = scratch.kept;
  kept.clear();
  uint64_t total = 0;
  for (const uint64_t key : heap) {
    if (key < threshold) break;  // (ranked: the rest are below too)
    const float w = weight(key);
    if (w < p.min_p) continue;
    kept.emplace_back(id_of(key), gk::sample_mass(w));
    total += kept.back().second;
  }
  std::sort(kept.begin(), kept.end());
  const uint64_t r = draw_point(u24, total);
  uint64_t cum = 0;
  for (const auto& [id, mass] : kept) {
    cum += mass;
    if (cum > r) return id;
  }
  return argmax(logits, vocab);  // unreachable: the most likely token is always kept
}

// Temperature, softmax weights, top-k, top-p, min-p, then the draw. Scales logits in place.
int32_t draw(float* logits, int32_t vocab, const gk_sampling& p, uint32_t u24) {
  // The largest rank value (NaN as -inf: max_ps keeps its second operand when the first is NaN; -0 as +0 below).
  using namespace gk::cpu::simd;
  vf mv = vset1(-INFINITY);
  const vf t = vset1(p.temperature);
  int32_t i = 0;
  for (; i + kW <= vocab; i += kW) {
    const vf l = vdiv(vload(logits + i), t);
    vstore(logits + i, l);
    mv = vmax(l, mv);
  }
  float m = hmax(mv);
  for (; i < vocab; ++i) {
    const float l = logits[i] / p.temperature;
    logits[i] = l;
    m = std::max(m, gk::sample_rank_value(l));
  }
  if (m == 0.0f) m = 0.0f;
  // Nothing but -inf and NaN: no distribution to draw from; take what greedy would.
  if (m == -INFINITY) return argmax(logits, vocab);
  if (p.top_k > 0 && p.top_k <= kHeapTopK && p.top_k < vocab) return draw_top_k(logits, vocab, p, m, u24);

  std::vector<float>& w = scratch.w;
  w.resize((size_t)vocab);
  for (int32_t i = 0; i < vocab; ++i) w[i] = gk::sample_weight(logits[i], m);

  // Tokens with key >= threshold survive top-k and top-p.
  uint64_t threshold = 0;
  if (p.top_k > 0 && p.top_k < vocab) {
    std::vector<uint64_t>& keys = scratch.keys;
    keys.resize((size_t)vocab);
    for (int32_t i = 0; i < vocab; ++i) keys[i] = gk::sample_key(logits[i], i);
    // The k-th largest key: keys are distinct (they hold the id), so exactly k tokens remain.
    std::nth_element(keys.begin(), keys.begin() + (p.top_k - 1), keys.end(), std::greater<uint64_t>());
    threshold = keys[(size_t)p.top_k - 1];
  }
  if (p.top_p < 1.0f) {
    // Shortest prefix (by key, descending) of the top-k survivors whose mass reaches top_p of theirs.
    // The prefix ends at a token of positive mass, so only those need sorting.
    auto& cand = scratch.cand;
    cand.clear();
    uint64_t total = 0;
    for (int32_t i = 0; i < vocab; ++i) {
      const uint64_t key = gk::sample_key(logits[i], i);
      if (key < threshold) continue;
      const uint64_t mass = gk::sample_mass(w[i]);
      total += mass;
      if (mass > 0) cand.emplace_back(key, mass);
    }
    std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    threshold = top_p_cut(cand, total, p.top_p, threshold);
  }
  // min-p: the most likely token has weight 1, so "prob < min_p * max prob" is "weight < min_p".
  auto kept = [&](int32_t i) { return gk::sample_key(logits[i], i) >= threshold && !(w[i] < p.min_p); };
  uint64_t total = 0;
  for (int32_t i = 0; i < vocab; ++i) {
    if (kept(i)) total += gk::sample_mass(w[i]);
  }
  // The most likely token is always kept, so total > 0 and R < total.
  const uint64_t r = draw_point(u24, total);
  uint64_t cum = 0;
  for (int32_t i = 0; i < vocab; ++i) {
    if (!kept(i)) continue;
    cum += gk::sample_mass(w[i]);
    if (cum > r) return i;
  }
  return argmax(logits, vocab);  // unreachable
}

}  // namespace

GK_API gk_status gk_sample(gk_stream* s, float* logits, int32_t vocab, const gk_sampling* params, int32_t* state,
                           int32_t* history, int32_t history_capacity, const int32_t* stop_ids, int32_t n_stop) {
  GK_TRY(gk::validate_stream(s, "gk_sample"));
  GK_TRY(gk::validate_sample(logits, vocab, params, state, history, history_capacity, stop_ids, n_stop));
  const gk_sampling p = *params;  // the recording keeps this copy, not the caller's pointer
  GK_CPU_RECORD(s, gk_sample(s, logits, vocab, &p, state, history, history_capacity, stop_ids, n_stop));
  if (state[GK_STATE_DONE] != 0) return GK_OK;

  // Repetition penalty, once per distinct id of history[0, STATE_HISTORY); ids outside [0, vocab) are ignored.
  const int32_t n_hist = std::clamp(state[GK_STATE_HISTORY], 0, history_capacity);
  if (p.repetition_penalty != 1.0f && n_hist > 0) {
    std::vector<uint8_t>& seen = scratch.seen;
    seen.assign((size_t)vocab, 0);
    for (int32_t j = 0; j < n_hist; ++j) {
      const int32_t id = history[j];
      if (id < 0 || id >= vocab || seen[id]) continue;
      seen[id] = 1;
      logits[id] = gk::sample_penalize(logits[id], p.repetition_penalty);
    }
  }

  const uint32_t step = (uint32_t)state[GK_STATE_STEP];
  const int32_t token =
      p.temperature > 0.0f ? draw(logits, vocab, p, gk::sample_u24(p.seed, step)) : argmax(logits, vocab);
  scratch.trim(vocab);

  state[GK_STATE_TOKEN] = token;
  int32_t h = state[GK_STATE_HISTORY];
  if (h >= 0 && h < history_capacity) {
    history[h] = token;
    state[GK_STATE_HISTORY] = ++h;
  }
  state[GK_STATE_POSITION] = (int32_t)((uint32_t)state[GK_STATE_POSITION] + 1u);
  state[GK_STATE_STEP] = (int32_t)(step + 1u);
  bool done = h >= history_capacity;
  for (int32_t i = 0; i < n_stop && !done; ++i) done = stop_ids[i] == token;
  if (done) state[GK_STATE_DONE] = 1;
  return GK_OK;
}
