/*
 * gemmakit.h — the one C ABI behind both native libraries.
 *
 * libgemmakit_cpu.so (g++, kernels/cpu) and libgemmakit_cuda.so (nvcc, kernels/cuda) export exactly
 * these symbols; src/ffi/symbols.ts mirrors this file row for row.
 *
 * Conventions
 * - Every entry returns a gk_status (0 = GK_OK). On failure, gk_last_error() returns a message for
 *   the calling thread (with file:line for CUDA failures) until the next failing call.
 * - Pointers named "device" live in memory from gk_malloc of the same context (host memory on CPU).
 *   Host pointers are only the `host_*` arguments of the copy functions.
 * - Activations, KV caches and outputs are f32. Weights (embedding tables, norm and linear params)
 *   are read in their stored dtype (f32, f16, bf16) and accumulated in f32.
 * - Values that change every decode step (token ids, positions) are read from device memory, so a
 *   recorded decode step can be replayed without re-recording.
 * - Ops are enqueued on a stream. On CPU a stream runs synchronously; on CUDA call
 *   gk_stream_synchronize (or a d2h copy, which synchronizes) before reading results on the host.
 *
 * Adding an op: declare it here, validate its arguments in kernels/common/validate.h, implement
 * kernels/cpu/<op>.cpp and kernels/cuda/<op>.cu, mirror it in src/ffi/symbols.ts, wrap it in
 * src/ops/, and add rows to tests/ops/cases.ts.
 */
#ifndef GEMMAKIT_H
#define GEMMAKIT_H

#include <stdint.h>

#ifdef __cplusplus
#define GK_EXTERN extern "C"
#else
#define GK_EXTERN
#endif
#define GK_API GK_EXTERN __attribute__((visibility("default")))

/* Bumped whenever a signature below changes; the loader refuses a library of another version. */
#define GK_ABI_VERSION 8

typedef int32_t gk_status;
enum {
  GK_OK = 0,
  GK_ERR_INVALID_ARGUMENT = 1, /* a shape, dtype, pointer or parameter the op cannot take */
  GK_ERR_OUT_OF_MEMORY = 2,
  GK_ERR_DEVICE = 3,      /* the CUDA runtime reported a failure */
  GK_ERR_NO_DEVICE = 4,   /* no usable device for this backend */
  GK_ERR_UNSUPPORTED = 5, /* valid request this build cannot serve */
  GK_ERR_INTERNAL = 6,
};

typedef enum {
  GK_F32 = 0,
  GK_F16 = 1,
  GK_BF16 = 2,
  GK_I32 = 3,
  /* GGUF block-quantized weights, stored exactly as in the file; codes are ggml's type ids, except Q4_0 and
   * Q4_1, whose ids (2, 3) BF16 and I32 hold here: theirs are 100 + ggml's id. A row of
   * k elements is k / block_elems blocks (k must be a multiple of block_elems). kvalues: ggml's
   * kvalues_iq4nl {-127,-104,-83,-65,-49,-35,-22,-10,1,13,25,38,53,69,89,113} and kvalues_mxfp4
   * {0,1,2,3,4,6,8,12,0,-1,-2,-3,-4,-6,-8,-12}; "q4 of qs" is element j < 16 the low nibble of qs[j],
   * element j + 16 its high nibble. */
  GK_Q4_0 = 102, /* 32 elems, 18 bytes: f16 d, u8 qs[16] (q4 of qs);         x = (q4 - 8) * d */
  GK_Q4_1 = 103, /* 32 elems, 20 bytes: f16 d, f16 m, u8 qs[16] (q4 of qs);  x = q4 * d + m */
  GK_Q5_0 = 6,   /* 32 elems, 22 bytes: f16 d, u8 qh[4], u8 qs[16]; x = (q5 - 16) * d */
  GK_Q5_1 = 7,   /* 32 elems, 24 bytes: f16 d, f16 m, u8 qh[4], u8 qs[16];   x = q5 * d + m */
  GK_Q8_0 = 8,   /* 32 elems, 34 bytes: f16 d, i8 qs[32];          x = q * d */
  GK_Q2_K = 10,  /* 256 elems, 84 bytes: u8 scales[16] (4-bit sc | 4-bit m), u8 qs[64], f16 d, f16 dmin */
  GK_Q3_K = 11,  /* 256 elems, 110 bytes: u8 hmask[32], u8 qs[64], u8 scales[12] (6-bit), f16 d */
  GK_Q4_K = 12,  /* 256 elems, 144 bytes: f16 d, f16 dmin, u8 scales[12] (6-bit), u8 qs[128] */
  GK_Q5_K = 13,  /* 256 elems, 176 bytes: f16 d, f16 dmin, u8 scales[12] (6-bit), u8 qh[32], u8 qs[128] */
  GK_Q6_K = 14,  /* 256 elems, 210 bytes: u8 ql[128], u8 qh[64], i8 scales[16], f16 d */
  GK_IQ4_NL = 20, /* 32 elems, 18 bytes: f16 d, u8 qs[16] (q4 of qs);        x = d * kvalues_iq4nl[q4] */
  GK_IQ4_XS = 23, /* 256 elems, 136 bytes: f16 d, u16 scales_h, u8 scales_l[4], u8 qs[128] (8 IQ4_NL groups) */
  GK_MXFP4 = 39, /* 32 elems, 17 bytes: u8 e (E8M0), u8 qs[16] (q4 of qs);   x = kvalues_mxfp4[q4] * 2^(e - 128) */
  /* Not a file format: Q8_0 with 16 rows interleaved, which gk_repack makes from a Q8_0 matrix [n, k] (n a multiple
   * of 16) for the CPU kernels, Q8_0's size. Rows 16g .. 16g + 15 (group g) are stored together, block b of the
   * group (k / 32 blocks) at byte (g · k / 32 + b) · 544: f16 d[16] (row j's d at 2j), then for t < 8 the codes of
   * elements 4t .. 4t + 3 of rows 0 .. 15 (row j's at 32 + 64t + 4j), each stored as u8 q ^ 0x80 (q + 128). x = q * d
   * as in Q8_0. Only gk_linear and gk_embedding of the CPU library read it (as they do the other layouts below). */
  GK_Q8_0X16 = 208,
  /* Not a file format: Q5_0 with 16 rows interleaved, which gk_repack makes from a Q5_0 matrix [n, k] (n a multiple of
   * 16), Q5_0's size. Block b of group g at byte (g · k / 32 + b) · 352: f16 d[16] (row j's d at 2j); then for
   * u < 4, 64 bytes whose byte 32 + 64u + 4j + e holds the low 4 bits of row j's q5 of element 4u + e (low nibble)
   * and of element 16 + 4u + e (high nibble); then for t < 8 a little-endian u64 at 288 + 8t whose bit 4j + e is bit
   * 4 of row j's q5 of element 4t + e. x = (q5 - 16) * d as in Q5_0. Only the CPU library's gk_linear and
   * gk_embedding read it. */
  GK_Q5_0X16 = 209,
  /* Not a file format: Q4_K with 16 rows interleaved (gk_repack, from a Q4_K matrix, Q4_K's size). Superblock b (256
   * columns) of group g at byte (g · k / 256 + b) · 2304: f16 d[16] (row j's at 2j), f16 dmin[16] (at 32 + 2j), the
   * 12 packed scale bytes of each row as 3 dwords (dword w of row j at 64 + 64w + 4j), then for sub-block s < 8 at
   * 256 + 256s, 4 × 64 bytes of codes as GK_Q5_0X16's low bits (byte 64u + 4j + e: element 4u + e low nibble, 16 + 4u
   * + e high). x = d * sc * q - dmin * m as in Q4_K. */
  GK_Q4_KX16 = 210,
  /* Not a file format: Q6_K with 16 rows interleaved (gk_repack, from a Q6_K matrix, Q6_K's size). Superblock b of
   * group g at byte (g · k / 256 + b) · 3360: f16 d[16] (row j's at 2j), the int8 scales (scale i of row j at 32 +
   * 16i + j), then for 32-element chunk c < 8 at 288 + 384c: 4 × 64 bytes of the codes' low 4 bits as GK_Q4_KX16's,
   * and 2 × 64 bytes whose byte 256 + 64p + 4j + e holds in bits 2i, 2i + 1 the top 2 bits of row j's code of chunk
   * element 16p + 4i + e. x = d * scale * (q6 - 32) as in Q6_K. */
  GK_Q6_KX16 = 211,
  /* Not a file format: Q4_0 with 16 rows interleaved (gk_repack, from a Q4_0 matrix, Q4_0's size): block b of group g
   * at byte (g · k / 32 + b) · 288, f16 d[16] (row j's at 2j), then 4 × 64 bytes of the codes q4 as GK_Q5_0X16's low
   * bits. x = (q4 - 8) * d as in Q4_0. */
  GK_Q4_0X16 = 212,
  /* Not a file format: Q5_K with 16 rows interleaved (gk_repack, from a Q5_K matrix, Q5_K's size): superblock b of
   * group g at byte (g · k / 256 + b) · 2816, laid out as GK_Q4_KX16's but each sub-block s at 256 + 320s, its 4 × 64
   * bytes of low bits followed by 8 u64 masks of the fifth bits as GK_Q5_0X16's. x = d * sc * q5 - dmin * m. */
  GK_Q5_KX16 = 213,
  /* Not a file format: Q4_1 and Q5_1 with 16 rows interleaved (gk_repack, their sizes): block b of group g at byte
   * (g · k / 32 + b) · 320 (Q4_1) or 384 (Q5_1), f16 d[16] (row j's at 2j), f16 m[16] (at 32 + 2j), then the codes as
   * GK_Q4_0X16's (Q4_1) or GK_Q5_0X16's (Q5_1) from byte 64. x = d * q + m. */
  GK_Q4_1X16 = 214,
  GK_Q5_1X16 = 215,
} gk_dtype;

typedef enum {
  GK_NORM_PLAIN = 0,    /* y = x / rms(x)                (Gemma 4 v_norm, router norm) */
  GK_NORM_SCALE = 1,    /* y = x / rms(x) * w            (Gemma 4 Gemma4RMSNorm) */
  GK_NORM_ONE_PLUS = 2, /* y = x / rms(x) * (1 + w)      (Gemma 3 Gemma3RMSNorm) */
} gk_norm_mode;

typedef struct gk_context gk_context;
typedef struct gk_stream gk_stream;

/* ---- library, errors, devices ------------------------------------------------------------- */
GK_API int32_t gk_abi_version(void);
GK_API const char* gk_backend_kind(void); /* "cpu" or "cuda" */
GK_API const char* gk_last_error(void);   /* never NULL; "" when no error was recorded */
GK_API gk_status gk_device_count(int32_t* out_count);
/* Writes a NUL-terminated description (name, compute capability, memory) into buf. */
GK_API gk_status gk_device_name(int32_t device, char* buf, int32_t buf_len);

/* ---- contexts and streams ----------------------------------------------------------------- */
GK_API gk_status gk_context_create(int32_t device, gk_context** out_ctx);
/* Frees every allocation still owned by the context, then the context itself. */
GK_API gk_status gk_context_destroy(gk_context* ctx);
GK_API gk_status gk_context_default_stream(gk_context* ctx, gk_stream** out_stream);
GK_API gk_status gk_stream_create(gk_context* ctx, gk_stream** out_stream);
GK_API gk_status gk_stream_destroy(gk_stream* stream);
GK_API gk_status gk_stream_synchronize(gk_stream* stream);

/* ---- memory ------------------------------------------------------------------------------- */
/* 256-byte aligned. Zero bytes is an error. */
GK_API gk_status gk_malloc(gk_context* ctx, uint64_t bytes, void** out_ptr);
/* Only pointers gk_malloc returned for this context; anything else is GK_ERR_INVALID_ARGUMENT. */
GK_API gk_status gk_free(gk_context* ctx, void* ptr);
/* Both copies return once the bytes have arrived (h2d: the host buffer may be reused). */
GK_API gk_status gk_memcpy_h2d(gk_stream* stream, void* dst_device, const void* src_host, uint64_t bytes);
GK_API gk_status gk_memcpy_d2h(gk_stream* stream, void* dst_host, const void* src_device, uint64_t bytes);
GK_API gk_status gk_memcpy_d2d(gk_stream* stream, void* dst_device, const void* src_device, uint64_t bytes);
GK_API gk_status gk_memset(gk_stream* stream, void* dst_device, int32_t byte_value, uint64_t bytes);
/* out[0] bytes in use, out[1] peak bytes in use, out[2] live allocations, out[3] device total. */
GK_API gk_status gk_memory_stats(gk_context* ctx, uint64_t* out4);
GK_API gk_status gk_memory_reset_peak(gk_context* ctx);

/* ---- ops ---------------------------------------------------------------------------------- */

/* out[i, :] = table[ids[i], :] * scale.  table [vocab, dim] (f32/f16/bf16 or a GGUF quantized dtype),
 * ids [n] i32, out [n, dim].
 * An id outside [0, vocab) is an error on CPU; on CUDA (ids are on the device) its row is zeros. */
GK_API gk_status gk_embedding(gk_stream* s, const void* table, int32_t table_dtype, int32_t vocab,
                              int32_t dim, const int32_t* ids, int32_t n, float scale, float* out);

/* Row-wise RMSNorm in f32: y = x * rsqrt(mean(x^2) + eps) [* w | * (1 + w)] per gk_norm_mode.
 * x, y [rows, dim] (may alias); weight [dim] (NULL for GK_NORM_PLAIN). */
GK_API gk_status gk_rms_norm(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype,
                             int32_t mode, float eps, int32_t rows, int32_t dim, float* y);

/* Row-wise LayerNorm: y = (x - mean) * rsqrt(var + eps) * w + b. weight, bias [dim] (bias may be NULL).
 * y may alias x. */
GK_API gk_status gk_layer_norm(gk_stream* s, const float* x, const void* weight, const void* bias,
                               int32_t param_dtype, float eps, int32_t rows, int32_t dim, float* y);

/* im2col of a Conv2d with kernel = stride = patch (the SigLIP patch embedding): pixels [n, channels,
 * height, width] f32 -> out [n, (height/patch)·(width/patch), channels·patch·patch], patches in row-major grid
 * order, each row in the conv weight's (channel, ky, kx) order. height and width are multiples of patch. */
GK_API gk_status gk_patch_extract(gk_stream* s, const float* pixels, int32_t n, int32_t channels, int32_t height,
                                  int32_t width, int32_t patch, float* out);

/* AvgPool2d(kernel, stride = kernel) over a token-major grid: x [n, grid_h, grid_w, channels] ->
 * y [n, grid_h/kernel, grid_w/kernel, channels] (the Gemma 3 projector's pooling). The grid sides are
 * multiples of kernel. */
GK_API gk_status gk_avg_pool2d(gk_stream* s, const float* x, int32_t n, int32_t grid_h, int32_t grid_w,
                               int32_t channels, int32_t kernel, float* y);

/* Gather-and-sum of rows: y[o, :] = scale · Σ_j x[idx[o·k + j], :] over the ids in [0, rows) (others, e.g. -1
 * for padding, are skipped; a row with none is zeros). x [rows, cols], idx [out_rows, k] i32, y [out_rows, cols]
 * (must not alias x). A factored position-table lookup (k = 2) and a pooling over cells listed by id. */
GK_API gk_status gk_gather_sum(gk_stream* s, const float* x, int32_t rows, int32_t cols, const int32_t* idx,
                               int32_t out_rows, int32_t k, float scale, float* y);

/* Multi-axis rotary embedding in place (transformers' apply_multidimensional_rope): x [tokens, heads, head_dim]
 * is split into `axes` equal parts of head_dim/axes channels; part a rotates by positions[t·axes + a] with
 * inv_freq [head_dim/(2·axes)], pairs (j, j + part/2) within the part (rotate_half per part). */
GK_API gk_status gk_rope_axes(gk_stream* s, float* x, int32_t tokens, int32_t heads, int32_t head_dim, int32_t axes,
                              const int32_t* positions, const float* inv_freq);

/* y = clamp(x, lo, hi) elementwise (torch.clamp; lo <= hi, either may be infinite). y may alias x. */
GK_API gk_status gk_clamp(gk_stream* s, const float* x, float* y, int64_t n, float lo, float hi);

/* y [m, n] = x [m, k] · W [n, k]^T (+ bias [n]). W in weight_dtype: f32/f16/bf16, or a GGUF quantized
 * dtype read block by block as stored (then bias, if any, is f32). bias may be NULL.
 * A few rows (m == 1 on CUDA, m <= 4 on CPU) stream W once through the matrix-vector path; more rows take
 * the tiled path (tensor cores on CUDA for f16/bf16 weights). y must not alias x. */
GK_API gk_status gk_linear(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype,
                           const void* bias, int32_t m, int32_t n, int32_t k, float* y);

/* Logits for greedy draws: y [m, n] holds, for each row of x, gk_linear's value of x · Wᵀ (then cap · tanh(v / cap) as
 * gk_softcap computes it, when cap > 0) at every column that could be that row's maximum and at each of keep_ids
 * [n_keep] (device; ids outside [0, n) ignored), and -inf or that same value at every other column. So the argmax of
 * each row (the first maximum, NaN above any number) is the argmax of gk_linear's (softcapped) row, and stays so when
 * a logit bias on keep_ids is added afterwards. Which columns get -inf may change from call to call. weight as
 * gk_linear's (no bias); 0 <= n_keep <= 2^20; cap >= 0 (0: none). The CPU library screens the 16-row layouts
 * GK_Q8_0X16, GK_Q5_0X16, GK_Q4_0X16 and GK_Q6_KX16 (kernels/cpu/repack.cpp) at 2 rows of x up to its integer
 * kernel's limit; otherwise, and on CUDA, every value is written. y must not alias x. */
GK_API gk_status gk_greedy_logits(gk_stream* s, const float* x, const void* weight, int32_t weight_dtype,
                                  const int32_t* keep_ids, int32_t n_keep, int32_t m, int32_t n, int32_t k, float cap,
                                  float* y);

/* Rewrites weight [n, k] of from_dtype in place into to_dtype, the same bytes in a layout the kernels of this library
 * multiply faster. Supported on CPU builds with AVX512-VNNI (n % 16 == 0, k a whole number of blocks): GK_Q8_0 ->
 * GK_Q8_0X16, GK_Q5_0 -> GK_Q5_0X16, GK_Q4_0 -> GK_Q4_0X16, GK_Q4_1 -> GK_Q4_1X16, GK_Q5_1 -> GK_Q5_1X16, GK_Q4_K ->
 * GK_Q4_KX16, GK_Q5_K -> GK_Q5_KX16 and GK_Q6_K -> GK_Q6_KX16. Anything else returns GK_ERR_UNSUPPORTED with the
 * weight untouched (the CUDA library always does: its kernels read the GGUF layouts as stored), so a caller may try it
 * and keep the weight as it was. */
GK_API gk_status gk_repack(gk_stream* s, void* weight, int32_t from_dtype, int32_t to_dtype, int32_t n, int32_t k);

/* In-place rotary embedding, transformers' half-rotation layout, on x [tokens, heads, head_dim].
 * Pairs (j, j + rotary_dim/2) for j < rotary_dim/2 rotate by angle positions[t] * inv_freq[j]
 * (angle and cos/sin in f32); dims >= rotary_dim pass through. inv_freq [rotary_dim/2] f32 carries
 * theta, linear scaling and Gemma 4's proportional rope (zeros past the rotated fraction). */
GK_API gk_status gk_rope(gk_stream* s, float* x, int32_t tokens, int32_t heads, int32_t head_dim,
                         int32_t rotary_dim, const int32_t* positions, const float* inv_freq);

/* Prefill attention. q [q_len, q_heads, head_dim], k/v [kv_len, kv_heads, head_dim],
 * out [q_len, q_heads, head_dim]. Query i sits at position q_pos0 + i (q_pos0 + q_len <= kv_len),
 * key j at position j. Key j is visible to query position p when
 *   ((!causal || j <= p) || (span_ids && span_ids[j] != 0 && span_ids[j] == span_ids[p]))
 *   && (window == 0 || j > p - window)
 * (span_ids [kv_len] i32 or NULL: bidirectional blocks such as an image's soft tokens; the window still
 * applies inside them, as transformers composes sliding masks: AND(window, OR(causal, same block))).
 * score = (q·k) * scale, then softcap·tanh(score/softcap) when softcap > 0, softmax in f32.
 * Grouped-query: q head h reads kv head h / (q_heads / kv_heads). head_dim in [1, 512]. */
GK_API gk_status gk_attention_prefill(gk_stream* s, const float* q, const float* k, const float* v,
                                      float* out, int32_t q_len, int32_t kv_len, int32_t q_heads,
                                      int32_t kv_heads, int32_t head_dim, int32_t q_pos0, int32_t causal,
                                      int32_t window, const int32_t* span_ids, float scale, float softcap);

/* One decode query over a KV cache. q, out [q_heads, head_dim]; caches [capacity, kv_heads, head_dim]
 * where position p lives in slot p % capacity (a ring buffer when capacity < context).
 * *position (device i32) is the query's position; its K/V must already be written. Keys at
 * positions max(0, position - span + 1) .. position are read, span = min(window or ∞, capacity). */
GK_API gk_status gk_attention_decode(gk_stream* s, const float* q, const float* k_cache,
                                     const float* v_cache, float* out, int32_t q_heads, int32_t kv_heads,
                                     int32_t head_dim, int32_t capacity, int32_t window,
                                     const int32_t* position, float scale, float softcap);

/* cache[(position0 + t) % capacity, :] = src[t, :] for t < tokens (row_elems floats per row);
 * *position0 is read from device memory. When tokens > capacity only the last capacity rows land. */
GK_API gk_status gk_kv_cache_write(gk_stream* s, const float* src, float* cache, int32_t tokens,
                                   int32_t row_elems, int32_t capacity, const int32_t* position0);

/* Elementwise, all f32, y may alias an input. b is broadcast cyclically: y[i] = a[i] op b[i % b_n]. */
GK_API gk_status gk_add(gk_stream* s, const float* a, const float* b, float* y, int64_t n, int64_t b_n);
GK_API gk_status gk_mul(gk_stream* s, const float* a, const float* b, float* y, int64_t n, int64_t b_n);
GK_API gk_status gk_scale(gk_stream* s, const float* x, float* y, int64_t n, float alpha);
/* GELU with the tanh approximation (transformers gelu_pytorch_tanh). */
GK_API gk_status gk_gelu_tanh(gk_stream* s, const float* x, float* y, int64_t n);
/* y = gelu_tanh(gate) * up: the gated MLP product. */
GK_API gk_status gk_gelu_tanh_mul(gk_stream* s, const float* gate, const float* up, float* y, int64_t n);
/* y = cap * tanh(x / cap), cap > 0. */
GK_API gk_status gk_softcap(gk_stream* s, const float* x, float* y, int64_t n, float cap);
/* Row-wise softmax over cols. y may alias x. */
GK_API gk_status gk_softmax(gk_stream* s, const float* x, float* y, int32_t rows, int32_t cols);
/* out[r] = index of the largest x[r, :] (first one on ties; NaN counts as largest, as torch). */
GK_API gk_status gk_argmax(gk_stream* s, const float* x, int32_t* out, int32_t rows, int32_t cols);

/* ---- mixture of experts (Gemma 4: Gemma4TextRouter's tail and Gemma4TextExperts) ----------------- */
/* Per token t: p = softmax(logits[t, :]) in f32; the top_k largest p, in descending order (equal values to
 * the lower expert id, NaN largest: torch.topk leaves the order of ties unspecified), go to ids [tokens, top_k]
 * i32; their p, divided by their f32 sum and then multiplied by per_expert_scale[id] ([experts] f32/f16/bf16;
 * NULL: 1), go to weights [tokens, top_k] f32. 1 <= top_k <= min(experts, 64). */
GK_API gk_status gk_moe_route(gk_stream* s, const float* logits, const void* per_expert_scale, int32_t scale_dtype,
                              int32_t tokens, int32_t experts, int32_t top_k, int32_t* ids, float* weights);

/* Scratch gk_moe_experts needs, in bytes (P = tokens * top_k): 4·(P·(2·hidden + 3·inter) + 4·(experts + P) + 256). */
/* out[t, :] = Σ_j weights[t, j] · down[e] · (gelu_tanh(g) ⊙ u) with e = ids[t, j] and [g; u] = gate_up[e] · x[t, :]
 * (rows 0..inter of gate_up[e] are the gate, inter..2·inter the up projection). x, out [tokens, hidden] f32 (out
 * must not alias x); ids, weights [tokens, top_k] from gk_moe_route, read on the device (a recorded decode step
 * replays the router's fresh choice; ids within a token must be distinct). gate_up [experts, 2·inter, hidden] in
 * gate_up_dtype, down [experts, hidden, inter] in down_dtype: each f32/f16/bf16 or a GGUF quantization whose
 * blocks tile its rows (hidden long for gate_up, inter for down), independently, as llama-quantize's mixes often
 * store down in another type from gate_up. Terms are added in ascending expert id, transformers' loop order. An id
 * outside [0, experts) is an error on CPU; on CUDA its term is skipped. scratch [scratch_bytes] is device memory
 * the op may overwrite. */
GK_API gk_status gk_moe_experts(gk_stream* s, const float* x, const int32_t* ids, const float* weights, int32_t tokens,
                                int32_t top_k, const void* gate_up, int32_t gate_up_dtype, const void* down,
                                int32_t down_dtype, int32_t experts, int32_t hidden, int32_t inter, void* scratch,
                                uint64_t scratch_bytes, float* out);

/* ---- decode programs ------------------------------------------------------------------------
 * A decode step is recorded once and replayed natively many times per FFI call. Between
 * gk_program_begin and gk_program_end, ops enqueued on the stream are recorded instead of run (their
 * arguments are validated when recorded): CUDA captures them into a CUDA graph, CPU keeps the list of
 * calls. Everything that changes per step lives in device memory — the decode state below — so the
 * recording stays valid. */
typedef struct gk_program gk_program;

GK_API gk_status gk_program_begin(gk_stream* s);
GK_API gk_status gk_program_end(gk_stream* s, gk_program** out_program);
/* Replays the program `steps` times on s, back to back (no host synchronisation in between on CUDA),
 * then waits for the last one. */
GK_API gk_status gk_program_run(gk_program* program, gk_stream* s, int32_t steps);
/* The message of this program's last failed run ("" after a successful one). Unlike gk_last_error it
 * can be read from another thread than the one that ran the program (Deno's nonblocking calls). */
GK_API const char* gk_program_last_error(gk_program* program);
GK_API gk_status gk_program_destroy(gk_program* program);

/* The decode state: int32 fields in device memory, read and written by the recorded step. */
enum {
  GK_STATE_POSITION = 0, /* position of STATE_TOKEN, i.e. of the next step's input */
  GK_STATE_TOKEN = 1,    /* the next step's input token (the last one sampled) */
  GK_STATE_HISTORY = 2,  /* valid entries of the history buffer (prompt + sampled tokens) */
  GK_STATE_DONE = 3,     /* 1 once a stop token was sampled or the history is full: later samples do nothing */
  GK_STATE_STEP = 4,     /* samples drawn so far: the position of the RNG stream */
  GK_STATE_FIELDS = 8,
};

/* Sampling parameters, copied when gk_sample is enqueued or recorded. */
typedef struct {
  float temperature;        /* <= 0: greedy (argmax; ties to the lowest id) */
  int32_t top_k;            /* keep the k most likely; 0: off */
  float top_p;              /* keep the smallest most-likely set with mass >= top_p; >= 1: off */
  float min_p;              /* drop tokens below min_p * max probability; 0: off */
  float repetition_penalty; /* tokens in the history: logit / p if > 0 else logit * p; 1: off */
  uint32_t seed;            /* the RNG: uniform u = hash(seed, STATE_STEP); same on every backend */
} gk_sampling;

/* Draws the next token from logits [vocab] (modified in place: penalty, temperature) as transformers'
 * processors do, in their order: repetition penalty, temperature, top-k, top-p, min-p; then the token
 * whose cumulative kept probability, in id order, first exceeds u. Then: STATE_TOKEN = token,
 * history[STATE_HISTORY++] = token, STATE_POSITION++, STATE_STEP++, and STATE_DONE = 1 when the token
 * is one of stop_ids [n_stop] (device) or the history is full. Does nothing when STATE_DONE is set. */
GK_API gk_status gk_sample(gk_stream* s, float* logits, int32_t vocab, const gk_sampling* params, int32_t* state,
                           int32_t* history, int32_t history_capacity, const int32_t* stop_ids, int32_t n_stop);

/* The logit processors that come before gk_sample, in this order (OpenAI's and llama.cpp's fields):
 * 1. logit bias: logits[bias_ids[j]] += bias_values[j] for j < n_bias (device; ids distinct, ids outside
 *    [0, vocab) ignored);
 * 2. frequency and presence penalties over the ids in history[penalty_start, STATE_HISTORY) (the generated
 *    tokens when penalty_start is the prompt's length): an id found c > 0 times there gets
 *    logits[id] = logits[id] - (c * frequency_penalty + presence_penalty), each operation rounded once
 *    (kernels/common/sampling.h sample_count_penalty); scratch is int32 [vocab] device memory the op may
 *    overwrite, NULL when both penalties are 0;
 * 3. the allowed-token mask (a constraint engine's bitmask, device, NULL: none): id is allowed when bit
 *    (id & 31) of allowed[id >> 5] is set, otherwise its logit becomes -inf.
 * Does nothing when STATE_DONE is set. */
GK_API gk_status gk_logits_process(gk_stream* s, float* logits, int32_t vocab, const int32_t* state,
                                   const int32_t* history, int32_t history_capacity, int32_t penalty_start,
                                   float frequency_penalty, float presence_penalty, const int32_t* bias_ids,
                                   const float* bias_values, int32_t n_bias, const uint32_t* allowed,
                                   int32_t* scratch);

/* Log-probabilities of the step gk_sample just took, for OpenAI's logprobs: with slot = STATE_STEP - 1 (skipped
 * unless in [0, capacity)), ids[slot, 0] = STATE_TOKEN and logprobs[slot, 0] its log-softmax under logits [vocab];
 * ids/logprobs[slot, 1 + i] for i < top_n the i-th most likely id (ties to the lower id, NaN as -inf) and its
 * log-softmax. ids, logprobs: [capacity, 1 + top_n] (device), 0 <= top_n <= 64. The log-sum-exp is accumulated
 * in double, so backends agree to rounding, not bit for bit. */
GK_API gk_status gk_logprobs(gk_stream* s, const float* logits, int32_t vocab, const int32_t* state, int32_t top_n,
                             int32_t capacity, int32_t* ids, float* logprobs);

#endif /* GEMMAKIT_H */
