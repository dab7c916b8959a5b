// Argument checks both backends run before touching memory or launching anything.
// One function per op, so the CPU and CUDA entry points rely on exactly the same guarantees.
// (The TypeScript wrappers in src/ops check the same things first, with tensor shapes in the message.)
#pragma once
#include <cmath>

#include "dtype.h"
#include "error.h"

namespace gk {

inline bool is_float_dtype(int32_t d) { return d == GK_F32 || d == GK_F16 || d == GK_BF16; }

inline gk_status validate_stream(const void* s, const char* op) {
  GK_REQUIRE(s != nullptr, "%s: stream is NULL", op);
  return GK_OK;
}

inline gk_status validate_embedding(const void* table, int32_t dtype, int32_t vocab, int32_t dim,
                                    const int32_t* ids, int32_t n, const float* out) {
  GK_REQUIRE(table && ids && out, "gk_embedding: NULL table, ids or out");
  GK_REQUIRE(is_float_dtype(dtype) || is_quant_dtype(dtype),
             "gk_embedding: table dtype %d is not f32, f16, bf16 or a supported GGUF quantization", dtype);
  GK_REQUIRE(dim % block_elems(dtype) == 0, "gk_embedding: dim=%d is not a multiple of the %d-element blocks of dtype %d",
             dim, block_elems(dtype), dtype);
  GK_REQUIRE(vocab > 0 && dim > 0 && n > 0, "gk_embedding: vocab=%d dim=%d n=%d must be positive", vocab, dim, n);
  return GK_OK;
}

inline gk_status validate_rms_norm(const float* x, const void* w, int32_t dtype, int32_t mode, float eps,
                                   int32_t rows, int32_t dim, const float* y) {
  GK_REQUIRE(x && y, "gk_rms_norm: NULL x or y");
  GK_REQUIRE(mode == GK_NORM_PLAIN || mode == GK_NORM_SCALE || mode == GK_NORM_ONE_PLUS,
             "gk_rms_norm: unknown mode %d", mode);
  GK_REQUIRE(mode == GK_NORM_PLAIN || w != nullptr, "gk_rms_norm: mode %d needs a weight", mode);
  GK_REQUIRE(mode == GK_NORM_PLAIN || is_float_dtype(dtype), "gk_rms_norm: weight dtype %d is not f32, f16 or bf16", dtype);
  GK_REQUIRE(rows > 0 && dim > 0, "gk_rms_norm: rows=%d dim=%d must be positive", rows, dim);
  GK_REQUIRE(eps >= 0.0f, "gk_rms_norm: eps=%g must be >= 0", (double)eps);
  return GK_OK;
}

inline gk_status validate_layer_norm(const float* x, const void* w, int32_t dtype, float eps, int32_t rows,
                                     int32_t dim, const float* y) {
  GK_REQUIRE(x && w && y, "gk_layer_norm: NULL x, weight or y");
  GK_REQUIRE(is_float_dtype(dtype), "gk_layer_norm: param dtype %d is not f32, f16 or bf16", dtype);
  GK_REQUIRE(rows > 0 && dim > 0, "gk_layer_norm: rows=%d dim=%d must be positive", rows, dim);
  GK_REQUIRE(eps >= 0.0f, "gk_layer_norm: eps=%g must be >= 0", (double)eps);
  return GK_OK;
}

inline gk_status validate_patch_extract(const float* pixels, int32_t n, int32_t channels, int32_t height,
                                        int32_t width, int32_t patch, const float* out) {
  GK_REQUIRE(pixels && out, "gk_patch_extract: NULL pixels or out");
  GK_REQUIRE(n > 0 && channels > 0 && height > 0 && width > 0 && patch > 0,
             "gk_patch_extract: n=%d channels=%d height=%d width=%d patch=%d must be positive", n, channels, height,
             width, patch);
  GK_REQUIRE(height % patch == 0 && width % patch == 0,
             "gk_patch_extract: %dx%d pixels are not a whole number of %dx%d patches", height, width, patch, patch);
  return GK_OK;
}

inline gk_status validate_avg_pool2d(const float* x, int32_t n, int32_t grid_h, int32_t grid_w, int32_t channels,
                                     int32_t kernel, const float* y) {
  GK_REQUIRE(x && y, "gk_avg_pool2d: NULL x or y");
  GK_REQUIRE(n > 0 && grid_h > 0 && grid_w > 0 && channels > 0 && kernel > 0,
             "gk_avg_pool2d: n=%d grid=%dx%d channels=%d kernel=%d must be positive", n, grid_h, grid_w, channels,
             kernel);
  GK_REQUIRE(grid_h % kernel == 0 && grid_w % kernel == 0,
             "gk_avg_pool2d: the %dx%d grid is not a whole number of %dx%d windows", grid_h, grid_w, kernel, kernel);
  return GK_OK;
}

inline gk_status validate_linear(const float* x, const void* w, int32_t dtype, int32_t m, int32_t n, int32_t k,
                                 const float* y, const char* op = "gk_linear") {
  GK_REQUIRE(x && w && y, "%s: NULL x, weight or y", op);
  GK_REQUIRE(is_float_dtype(dtype) || is_quant_dtype(dtype),
             "%s: weight dtype %d is not f32, f16, bf16 or a supported GGUF quantization", op, dtype);
  GK_REQUIRE(k % block_elems(dtype) == 0, "%s: k=%d is not a multiple of the %d-element blocks of dtype %d", op, k,
             block_elems(dtype), dtype);
  GK_REQUIRE(m > 0 && n > 0 && k > 0, "%s: m=%d n=%d k=%d must be positive", op, m, n, k);
  GK_REQUIRE((const void*)x != (const void*)y, "%s: y must not alias x", op);
  return GK_OK;
}

// gk_greedy_logits' own arguments (its product's are validate_linear's).
inline gk_status validate_greedy_keep(const int32_t* keep_ids, int32_t n_keep, float cap) {
  GK_REQUIRE(n_keep >= 0 && n_keep <= (1 << 20), "gk_greedy_logits: n_keep=%d must be in [0, 2^20]", n_keep);
  GK_REQUIRE(n_keep == 0 || keep_ids, "gk_greedy_logits: NULL keep_ids with n_keep=%d", n_keep);
  GK_REQUIRE(cap >= 0.0f, "gk_greedy_logits: cap=%g must be >= 0 (0: no softcap)", (double)cap);
  return GK_OK;
}

inline gk_status validate_rope(const float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t rotary_dim,
                               const int32_t* positions, const float* inv_freq) {
  GK_REQUIRE(x && positions && inv_freq, "gk_rope: NULL x, positions or inv_freq");
  GK_REQUIRE(tokens > 0 && heads > 0 && head_dim > 0, "gk_rope: tokens=%d heads=%d head_dim=%d must be positive",
             tokens, heads, head_dim);
  GK_REQUIRE(rotary_dim > 0 && rotary_dim <= head_dim && rotary_dim % 2 == 0,
             "gk_rope: rotary_dim=%d must be even and in (0, head_dim=%d]", rotary_dim, head_dim);
  return GK_OK;
}

inline gk_status validate_attention_prefill(const float* q, const float* k, const float* v, const float* out,
                                            int32_t q_len, int32_t kv_len, int32_t q_heads, int32_t kv_heads,
                                            int32_t head_dim, int32_t q_pos0, int32_t window, float scale,
                                            float softcap) {
  GK_REQUIRE(q && k && v && out, "gk_attention_prefill: NULL q, k, v or out");
  GK_REQUIRE(q_len > 0 && kv_len > 0 && q_heads > 0 && kv_heads > 0,
             "gk_attention_prefill: q_len=%d kv_len=%d q_heads=%d kv_heads=%d must be positive", q_len, kv_len,
             q_heads, kv_heads);
  GK_REQUIRE(q_heads % kv_heads == 0, "gk_attention_prefill: q_heads=%d is not a multiple of kv_heads=%d", q_heads,
             kv_heads);
  GK_REQUIRE(head_dim > 0 && head_dim <= 512, "gk_attention_prefill: head_dim=%d must be in [1, 512]", head_dim);
  GK_REQUIRE(q_pos0 >= 0 && (int64_t)q_pos0 + q_len <= kv_len,
             "gk_attention_prefill: queries at positions %d..%d fall outside kv_len=%d", q_pos0, q_pos0 + q_len - 1,
             kv_len);
  GK_REQUIRE(window >= 0, "gk_attention_prefill: window=%d must be >= 0", window);
  GK_REQUIRE(scale == scale && softcap >= 0.0f, "gk_attention_prefill: scale must be a number, softcap >= 0");
  GK_REQUIRE(out != q && out != k && out != v, "gk_attention_prefill: out must not alias q, k or v");
  return GK_OK;
}

inline gk_status validate_attention_decode(const float* q, const float* kc, const float* vc, const float* out,
                                           int32_t q_heads, int32_t kv_heads, int32_t head_dim, int32_t capacity,
                                           int32_t window, const int32_t* position, float scale, float softcap) {
  GK_REQUIRE(q && kc && vc && out && position, "gk_attention_decode: NULL q, caches, out or position");
  GK_REQUIRE(q_heads > 0 && kv_heads > 0 && q_heads % kv_heads == 0,
             "gk_attention_decode: q_heads=%d must be a positive multiple of kv_heads=%d", q_heads, kv_heads);
  GK_REQUIRE(head_dim > 0 && head_dim <= 512, "gk_attention_decode: head_dim=%d must be in [1, 512]", head_dim);
  GK_REQUIRE(capacity > 0, "gk_attention_decode: capacity=%d must be positive", capacity);
  GK_REQUIRE(window >= 0, "gk_attention_decode: window=%d must be >= 0", window);
  GK_REQUIRE(scale == scale && softcap >= 0.0f, "gk_attention_decode: scale must be a number, softcap >= 0");
  GK_REQUIRE(out != q, "gk_attention_decode: out must not alias q");
  return GK_OK;
}

inline gk_status validate_kv_cache_write(const float* src, const float* cache, int32_t tokens, int32_t row_elems,
                                         int32_t capacity, const int32_t* position0) {
  GK_REQUIRE(src && cache && position0, "gk_kv_cache_write: NULL src, cache or position0");
  GK_REQUIRE(tokens > 0 && row_elems > 0 && capacity > 0,
             "gk_kv_cache_write: tokens=%d row_elems=%d capacity=%d must be positive", tokens, row_elems, capacity);
  return GK_OK;
}

inline gk_status validate_binary(const char* op, const float* a, const float* b, const float* y, int64_t n,
                                 int64_t b_n) {
  GK_REQUIRE(a && b && y, "%s: NULL a, b or y", op);
  GK_REQUIRE(n > 0 && b_n > 0 && n % b_n == 0, "%s: n=%lld must be a positive multiple of b_n=%lld", op,
             (long long)n, (long long)b_n);
  return GK_OK;
}

inline gk_status validate_unary(const char* op, const float* x, const float* y, int64_t n) {
  GK_REQUIRE(x && y, "%s: NULL x or y", op);
  GK_REQUIRE(n > 0, "%s: n=%lld must be positive", op, (long long)n);
  return GK_OK;
}

inline gk_status validate_softcap(const float* x, const float* y, int64_t n, float cap) {
  GK_TRY(validate_unary("gk_softcap", x, y, n));
  GK_REQUIRE(cap > 0.0f, "gk_softcap: cap=%g must be > 0", (double)cap);
  return GK_OK;
}

inline gk_status validate_rows(const char* op, const void* x, const void* y, int32_t rows, int32_t cols) {
  GK_REQUIRE(x && y, "%s: NULL input or output", op);
  GK_REQUIRE(rows > 0 && cols > 0, "%s: rows=%d cols=%d must be positive", op, rows, cols);
  return GK_OK;
}

// Everything gk_sample can check without reading device memory. The parameters are copied (params is
// read here, on the host), so a recorded sample keeps the values it was recorded with.
inline gk_status validate_sample(const float* logits, int32_t vocab, const gk_sampling* params, const int32_t* state,
                                 const int32_t* history, int32_t history_capacity, const int32_t* stop_ids,
                                 int32_t n_stop) {
  GK_REQUIRE(logits && params && state && history, "gk_sample: NULL logits, params, state or history");
  // Masses are at most 2^40 each (kernels/common/sampling.h): fewer than 2^24 of them sum exactly in 64 bits.
  GK_REQUIRE(vocab > 0 && vocab < (1 << 24), "gk_sample: vocab=%d must be in [1, 2^24)", vocab);
  GK_REQUIRE(history_capacity > 0, "gk_sample: history_capacity=%d must be positive", history_capacity);
  GK_REQUIRE(n_stop >= 0, "gk_sample: n_stop=%d must be >= 0", n_stop);
  GK_REQUIRE(n_stop == 0 || stop_ids != nullptr, "gk_sample: stop_ids is NULL but n_stop=%d", n_stop);
  const gk_sampling& p = *params;
  const bool finite = std::isfinite(p.temperature) && std::isfinite(p.top_p) && std::isfinite(p.min_p) &&
                      std::isfinite(p.repetition_penalty);
  GK_REQUIRE(finite, "gk_sample: temperature=%g top_p=%g min_p=%g repetition_penalty=%g must be finite",
             (double)p.temperature, (double)p.top_p, (double)p.min_p, (double)p.repetition_penalty);
  GK_REQUIRE(p.top_k >= 0, "gk_sample: top_k=%d must be >= 0 (0: off)", p.top_k);
  GK_REQUIRE(p.top_p > 0.0f, "gk_sample: top_p=%g must be > 0 (>= 1: off)", (double)p.top_p);
  GK_REQUIRE(p.min_p >= 0.0f && p.min_p <= 1.0f, "gk_sample: min_p=%g must be in [0, 1] (0: off)", (double)p.min_p);
  GK_REQUIRE(p.repetition_penalty > 0.0f, "gk_sample: repetition_penalty=%g must be > 0 (1: off)",
             (double)p.repetition_penalty);
  return GK_OK;
}

inline gk_status validate_logits_process(const float* logits, int32_t vocab, const int32_t* state,
                                        const int32_t* history, int32_t history_capacity, int32_t penalty_start,
                                        float frequency_penalty, float presence_penalty, const int32_t* bias_ids,
                                        const float* bias_values, int32_t n_bias, const int32_t* scratch) {
  GK_REQUIRE(logits && state, "gk_logits_process: NULL logits or state");
  GK_REQUIRE(vocab > 0, "gk_logits_process: vocab=%d must be positive", vocab);
  GK_REQUIRE(std::isfinite(frequency_penalty) && std::isfinite(presence_penalty),
             "gk_logits_process: frequency_penalty=%g presence_penalty=%g must be finite", (double)frequency_penalty,
             (double)presence_penalty);
  const bool penalties = frequency_penalty != 0.0f || presence_penalty != 0.0f;
  GK_REQUIRE(!penalties || (history && scratch && history_capacity > 0),
             "gk_logits_process: penalties need history (capacity %d > 0) and an int32 [vocab] scratch",
             history_capacity);
  GK_REQUIRE(penalty_start >= 0, "gk_logits_process: penalty_start=%d must be >= 0", penalty_start);
  GK_REQUIRE(n_bias >= 0, "gk_logits_process: n_bias=%d must be >= 0", n_bias);
  GK_REQUIRE(n_bias == 0 || (bias_ids && bias_values), "gk_logits_process: NULL bias_ids or bias_values but n_bias=%d",
             n_bias);
  return GK_OK;
}

inline gk_status validate_logprobs(const float* logits, int32_t vocab, const int32_t* state, int32_t top_n,
                                   int32_t capacity, const int32_t* ids, const float* logprobs) {
  GK_REQUIRE(logits && state && ids && logprobs, "gk_logprobs: NULL logits, state, ids or logprobs");
  GK_REQUIRE(vocab > 0, "gk_logprobs: vocab=%d must be positive", vocab);
  GK_REQUIRE(top_n >= 0 && top_n <= 64 && top_n <= vocab, "gk_logprobs: top_n=%d must be in [0, min(64, vocab=%d)]",
             top_n, vocab);
  GK_REQUIRE(capacity > 0, "gk_logprobs: capacity=%d must be positive", capacity);
  return GK_OK;
}

inline gk_status validate_gather_sum(const float* x, int32_t rows, int32_t cols, const int32_t* idx, int32_t out_rows,
                                    int32_t k, float scale, const float* y) {
  GK_REQUIRE(x && idx && y, "gk_gather_sum: NULL x, idx or y");
  GK_REQUIRE(rows > 0 && cols > 0 && out_rows > 0 && k > 0, "gk_gather_sum: rows=%d cols=%d out_rows=%d k=%d must be positive",
             rows, cols, out_rows, k);
  GK_REQUIRE(std::isfinite(scale), "gk_gather_sum: scale=%g must be finite", (double)scale);
  GK_REQUIRE((const void*)x != (const void*)y, "gk_gather_sum: y must not alias x");
  return GK_OK;
}

inline gk_status validate_rope_axes(const float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t axes,
                                    const int32_t* positions, const float* inv_freq) {
  GK_REQUIRE(x && positions && inv_freq, "gk_rope_axes: NULL x, positions or inv_freq");
  GK_REQUIRE(tokens > 0 && heads > 0 && head_dim > 0 && axes > 0,
             "gk_rope_axes: tokens=%d heads=%d head_dim=%d axes=%d must be positive", tokens, heads, head_dim, axes);
  GK_REQUIRE(head_dim % (2 * axes) == 0, "gk_rope_axes: head_dim=%d is not a multiple of 2·axes=%d", head_dim,
             2 * axes);
  return GK_OK;
}

inline gk_status validate_clamp(const float* x, const float* y, int64_t n, float lo, float hi) {
  GK_TRY(validate_unary("gk_clamp", x, y, n));
  GK_REQUIRE(!std::isnan(lo) && !std::isnan(hi) && lo <= hi, "gk_clamp: bounds [%g, %g] must be ordered, not NaN",
             (double)lo, (double)hi);
  return GK_OK;
}

inline gk_status validate_program_run(const void* program, const void* s, int32_t steps) {
  GK_REQUIRE(program && s, "gk_program_run: NULL program or stream");
  GK_REQUIRE(steps >= 0, "gk_program_run: steps=%d must be >= 0", steps);
  return GK_OK;
}

}  // namespace gk
