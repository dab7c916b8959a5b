/**
 * The C ABI of kernels/include/gemmakit.h as one Deno FFI symbol table. Keep it in the header's order;
 * the trailing comment names the C parameter.
 * @module
 */

/** ABI version this table matches; the loader refuses a library reporting another. */
export const ABI_VERSION = 8;

export const symbols = {
  // library, errors, devices
  gk_abi_version: { parameters: [], result: "i32" },
  gk_backend_kind: { parameters: [], result: "pointer" },
  gk_last_error: { parameters: [], result: "pointer" },
  gk_device_count: { parameters: ["buffer" /* int32_t* out_count */], result: "i32" },
  gk_device_name: { parameters: ["i32", /* device */ "buffer", /* buf */ "i32" /* buf_len */], result: "i32" },

  // contexts and streams
  gk_context_create: { parameters: ["i32", /* device */ "buffer" /* gk_context** out */], result: "i32" },
  gk_context_destroy: { parameters: ["pointer" /* ctx */], result: "i32" },
  gk_context_default_stream: { parameters: ["pointer", /* ctx */ "buffer" /* gk_stream** out */], result: "i32" },
  gk_stream_create: { parameters: ["pointer", /* ctx */ "buffer" /* gk_stream** out */], result: "i32" },
  gk_stream_destroy: { parameters: ["pointer" /* stream */], result: "i32" },
  gk_stream_synchronize: { parameters: ["pointer" /* stream */], result: "i32" },

  // memory
  gk_malloc: { parameters: ["pointer", /* ctx */ "u64", /* bytes */ "buffer" /* void** out */], result: "i32" },
  gk_free: { parameters: ["pointer", /* ctx */ "pointer" /* ptr */], result: "i32" },
  gk_memcpy_h2d: {
    parameters: ["pointer", /* stream */ "pointer", /* dst_device */ "buffer", /* src_host */ "u64" /* bytes */],
    result: "i32",
  },
  gk_memcpy_d2h: {
    parameters: ["pointer", /* stream */ "buffer", /* dst_host */ "pointer", /* src_device */ "u64" /* bytes */],
    result: "i32",
  },
  gk_memcpy_d2d: {
    parameters: ["pointer", /* stream */ "pointer", /* dst_device */ "pointer", /* src_device */ "u64" /* bytes */],
    result: "i32",
  },
  gk_memset: {
    parameters: ["pointer", /* stream */ "pointer", /* dst_device */ "i32", /* byte_value */ "u64" /* bytes */],
    result: "i32",
  },
  gk_memory_stats: { parameters: ["pointer", /* ctx */ "buffer" /* uint64_t out4[4] */], result: "i32" },
  gk_memory_reset_peak: { parameters: ["pointer" /* ctx */], result: "i32" },

  // ops
  gk_embedding: {
    parameters: [
      "pointer", /* s */
      "pointer", /* table */
      "i32", /* table_dtype */
      "i32", /* vocab */
      "i32", /* dim */
      "pointer", /* ids */
      "i32", /* n */
      "f32", /* scale */
      "pointer", /* out */
    ],
    result: "i32",
  },
  gk_rms_norm: {
    parameters: [
      "pointer", /* s */
      "pointer", /* x */
      "pointer", /* weight */
      "i32", /* weight_dtype */
      "i32", /* mode */
      "f32", /* eps */
      "i32", /* rows */
      "i32", /* dim */
      "pointer", /* y */
    ],
    result: "i32",
  },
  gk_patch_extract: {
    parameters: [
      "pointer", /* s */
      "pointer", /* pixels */
      "i32", /* n */
      "i32", /* channels */
      "i32", /* height */
      "i32", /* width */
      "i32", /* patch */
      "pointer", /* out */
    ],
    result: "i32",
  },
  gk_avg_pool2d: {
    parameters: [
      "pointer", /* s */
      "pointer", /* x */
      "i32", /* n */
      "i32", /* grid_h */
      "i32", /* grid_w */
      "i32", /* channels */
      "i32", /* kernel */
      "pointer", /* y */
    ],
    result: "i32",
  },
  gk_gather_sum: {
    parameters: [
      "pointer", /* s */
      "pointer", /* x */
      "i32", /* rows */
      "i32", /* cols */
      "pointer", /* idx */
      "i32", /* out_rows */
      "i32", /* k */
      "f32", /* scale */
      "pointer", /* y */
    ],
    result: "i32",
  },
  gk_rope_axes: {
    parameters: [
      "pointer", /* s */
      "pointer", /* x */
      "i32", /* tokens */
      "i32", /* heads */
      "i32", /* head_dim */
      "i32", /* axes */
      "pointer", /* positions */
      "pointer", /* inv_freq */
    ],
    result: "i32",
  },
  gk_clamp: {
    parameters: [
      "pointer",
      /* s */ "pointer",
      /* x */ "pointer",
      /* y */ "i64",
      /* n */ "f32",
      /* lo */ "f32", /* hi */
    ],
    result: "i32",
  },
  gk_layer_norm: {
    parameters: [
      "pointer", /* s */
      "pointer", /* x */
      "pointer", /* weight */
      "pointer", /* bias */
      "i32", /* param_dtype */
      "f32", /* eps */
      "i32", /* rows */
      "i32", /* dim */
      "pointer", /* y */
    ],
    result: "i32",
  },
  gk_repack: {
    parameters: [
      "pointer", /* s */
      "pointer", /* weight */
      "i32", /* from_dtype */
      "i32", /* to_dtype */
      "i32", /* n */
      "i32", /* k */
    ],
    result: "i32",
  },
  gk_greedy_logits: {
    parameters: [
      "pointer", /* s */
      "pointer", /* x */
      "pointer", /* weight */
      "i32", /* weight_dtype */
      "pointer", /* keep_ids */
      "i32", /* n_keep */
      "i32", /* m */
      "i32", /* n */
      "i32", /* k */
      "f32", /* cap */
      "pointer", /* y */
    ],
    result: "i32",
  },
  gk_linear: {
    parameters: [
      "pointer", /* s */
      "pointer", /* x */
      "pointer", /* weight */
      "i32", /* weight_dtype */
      "pointer", /* bias */
      "i32", /* m */
      "i32", /* n */
      "i32", /* k */
      "pointer", /* y */
    ],
    result: "i32",
  },
  gk_rope: {
    parameters: [
      "pointer", /* s */
      "pointer", /* x */
      "i32", /* tokens */
      "i32", /* heads */
      "i32", /* head_dim */
      "i32", /* rotary_dim */
      "pointer", /* positions */
      "pointer", /* inv_freq */
    ],
    result: "i32",
  },
  gk_attention_prefill: {
    parameters: [
      "pointer", /* s */
      "pointer", /* q */
      "pointer", /* k */
      "pointer", /* v */
      "pointer", /* out */
      "i32", /* q_len */
      "i32", /* kv_len */
      "i32", /* q_heads */
      "i32", /* kv_heads */
      "i32", /* head_dim */
      "i32", /* q_pos0 */
      "i32", /* causal */
      "i32", /* window */
      "pointer", /* span_ids */
      "f32", /* scale */
      "f32", /* softcap */
    ],
    result: "i32",
  },
  gk_attention_decode: {
    parameters: [
      "pointer", /* s */
      "pointer", /* q */
      "pointer", /* k_cache */
      "pointer", /* v_cache */
      "pointer", /* out */
      "i32", /* q_heads */
      "i32", /* kv_heads */
      "i32", /* head_dim */
      "i32", /* capacity */
      "i32", /* window */
      "pointer", /* position */
      "f32", /* scale */
      "f32", /* softcap */
    ],
    result: "i32",
  },
  gk_kv_cache_write: {
    parameters: [
      "pointer", /* s */
      "pointer", /* src */
      "pointer", /* cache */
      "i32", /* tokens */
      "i32", /* row_elems */
      "i32", /* capacity */
      "pointer", /* position0 */
    ],
    result: "i32",
  },
  gk_add: {
    parameters: [
      "pointer", /* s */
      "pointer", /* a */
      "pointer", /* b */
      "pointer", /* y */
      "i64", /* n */
      "i64", /* b_n */
    ],
    result: "i32",
  },
  gk_mul: {
    parameters: [
      "pointer", /* s */
      "pointer", /* a */
      "pointer", /* b */
      "pointer", /* y */
      "i64", /* n */
      "i64", /* b_n */
    ],
    result: "i32",
  },
  gk_scale: {
    parameters: ["pointer", /* s */ "pointer", /* x */ "pointer", /* y */ "i64", /* n */ "f32" /* alpha */],
    result: "i32",
  },
  gk_gelu_tanh: { parameters: ["pointer", /* s */ "pointer", /* x */ "pointer", /* y */ "i64" /* n */], result: "i32" },
  gk_gelu_tanh_mul: {
    parameters: ["pointer", /* s */ "pointer", /* gate */ "pointer", /* up */ "pointer", /* y */ "i64" /* n */],
    result: "i32",
  },
  gk_softcap: {
    parameters: ["pointer", /* s */ "pointer", /* x */ "pointer", /* y */ "i64", /* n */ "f32" /* cap */],
    result: "i32",
  },
  gk_softmax: {
    parameters: ["pointer", /* s */ "pointer", /* x */ "pointer", /* y */ "i32", /* rows */ "i32" /* cols */],
    result: "i32",
  },
  gk_argmax: {
    parameters: ["pointer", /* s */ "pointer", /* x */ "pointer", /* out */ "i32", /* rows */ "i32" /* cols */],
    result: "i32",
  },
  gk_moe_route: {
    parameters: [
      "pointer", /* s */
      "pointer", /* logits */
      "pointer", /* per_expert_scale */
      "i32", /* scale_dtype */
      "i32", /* tokens */
      "i32", /* experts */
      "i32", /* top_k */
      "pointer", /* ids */
      "pointer", /* weights */
    ],
    result: "i32",
  },
  gk_moe_experts: {
    parameters: [
      "pointer", /* s */
      "pointer", /* x */
      "pointer", /* ids */
      "pointer", /* weights */
      "i32", /* tokens */
      "i32", /* top_k */
      "pointer", /* gate_up */
      "i32", /* gate_up_dtype */
      "pointer", /* down */
      "i32", /* down_dtype */
      "i32", /* experts */
      "i32", /* hidden */
      "i32", /* inter */
      "pointer", /* scratch */
      "u64", /* scratch_bytes */
      "pointer", /* out */
    ],
    result: "i32",
  },

  // decode programs
  gk_program_begin: { parameters: ["pointer" /* s */], result: "i32" },
  gk_program_end: { parameters: ["pointer", /* s */ "buffer" /* gk_program** out_program */], result: "i32" },
  gk_program_run: { parameters: ["pointer", /* program */ "pointer", /* s */ "i32" /* steps */], result: "i32" },
  gk_program_destroy: { parameters: ["pointer" /* program */], result: "i32" },
  // The same entry run on a worker thread, so a chunk of decode steps does not block the event loop.
  gk_program_run_nonblocking: {
    name: "gk_program_run",
    parameters: ["pointer", /* program */ "pointer", /* s */ "i32" /* steps */],
    result: "i32",
    nonblocking: true,
  },
  gk_program_last_error: { parameters: ["pointer" /* program */], result: "pointer" },
  gk_sample: {
    parameters: [
      "pointer", /* s */
      "pointer", /* logits */
      "i32", /* vocab */
      "buffer", /* const gk_sampling* params (24 bytes, see src/ops/sample.ts) */
      "pointer", /* state */
      "pointer", /* history */
      "i32", /* history_capacity */
      "pointer", /* stop_ids */
      "i32", /* n_stop */
    ],
    result: "i32",
  },
  gk_logits_process: {
    parameters: [
      "pointer", /* s */
      "pointer", /* logits */
      "i32", /* vocab */
      "pointer", /* state */
      "pointer", /* history */
      "i32", /* history_capacity */
      "i32", /* penalty_start */
      "f32", /* frequency_penalty */
      "f32", /* presence_penalty */
      "pointer", /* bias_ids */
      "pointer", /* bias_values */
      "i32", /* n_bias */
      "pointer", /* allowed */
      "pointer", /* scratch */
    ],
    result: "i32",
  },
  gk_logprobs: {
    parameters: [
      "pointer", /* s */
      "pointer", /* logits */
      "i32", /* vocab */
      "pointer", /* state */
      "i32", /* top_n */
      "i32", /* capacity */
      "pointer", /* ids */
      "pointer", /* logprobs */
    ],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

export type Symbols = Deno.DynamicLibrary<typeof symbols>["symbols"];
