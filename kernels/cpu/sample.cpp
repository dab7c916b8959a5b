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

  void trim(int32_t vocab) {
    if (vocab > (1 << 20)) *this = Scratch();
  }
};
thread_local Scratch scratch;

// torch.argmax: the first maximum, and the first NaN beats every number (simd.h). (Splitting a vocabulary-sized
// row over the decode pool measured slower on 2 shared cores: the hand-off costs more than the second core's
// share of bandwidth.)
int32_t argmax(const float* x, int32_t n) { return gk::cpu::simd::argmax(x, n); }

// Temperature, softmax weights, top-k, top-p, min-p, then the draw. Scales logits in place.
int32_t draw(float* logits, int32_t vocab, const gk_sampling& p, uint32_t u24) {
  float m = -INFINITY;
  for (int32_t i = 0; i < vocab; ++i) {
    const float l = logits[i] / p.temperature;
    logits[i] = l;
    m = std::max(m, gk::sample_rank_value(l));
  }
  // Nothing but -inf and NaN: no distribution to draw from; take what greedy would.
  if (m == -INFINITY) return argmax(logits, vocab);

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
    const double target = (double)p.top_p * (double)total;
    std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    uint64_t cum = 0;
    for (const auto& [key, mass] : cand) {
      cum += mass;
      if ((double)cum >= target) {
        threshold = key;
        break;
      }
    }
  }
  // min-p: the most likely token has weight 1, so "prob < min_p * max prob" is "weight < min_p".
  auto kept = [&](int32_t i) { return gk::sample_key(logits[i], i) >= threshold && !(w[i] < p.min_p); };
  uint64_t total = 0;
  for (int32_t i = 0; i < vocab; ++i) {
    if (kept(i)) total += gk::sample_mass(w[i]);
  }
  // R = floor(u * total), u = u24 / 2^24; the most likely token is always kept, so total > 0 and R < total.
  const uint64_t r = (uint64_t)(((unsigned __int128)u24 * total) >> 24);
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
