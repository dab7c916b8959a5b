/**
 * Gemma 4 from a llama.cpp GGUF (general.architecture "gemma4"): the config (GGUF metadata → a transformers-style
 * `gemma4_text` config, parsed by `parseGemma4Config` so validation is shared with config.json) and a WeightSource
 * that lists the GGUF tensors under the Hugging Face names of the weight table (src/models/gemma4/weights.ts).
 *
 * References (the llama.cpp pinned by tests/bench/llama_cpp_src.ts, ggml-org/llama.cpp@0c1e57098):
 * - conversion/gemma.py `Gemma4Model` (Gemma4ForCausalLM / Gemma4ForConditionalGeneration): `norm_shift` is 0
 *   (Gemma4RMSNorm is x·w, so norms are stored as they are); `set_gguf_parameters` writes key_length /
 *   value_length for the full layers' head dim and key_length_swa / value_length_swa for the sliding ones,
 *   head_count_kv per layer when full layers have their own count (num_global_key_value_heads or
 *   per_layer_config), feed_forward_length per layer with use_double_wide_mlp (×2 on the KV-shared layers),
 *   attention.sliding_window_pattern as one bool per layer, attention.shared_kv_layers,
 *   embedding_length_per_layer_input, expert_feed_forward_length, rope.dimension_count(_swa);
 *   `generate_extra_tensors` writes `rope_freqs.weight` [full head_dim / 2] for the full layers' proportional
 *   RoPE: 1.0 for the rotated pairs, 1e30 (a frequency of ~0) for the rest; `modify_tensors` renames
 *   router.scale → ffn_gate_inp.scale and router.per_expert_scale → ffn_down_exps.scale.
 * - src/models/gemma4.cpp `load_hparams` / `load_tensors`: attention scale 1.0, rope.freq_base_swa, and a full
 *   layer without `attn_v` takes V from the K projection (attention_k_eq_v; the file has no key for it).
 * - gguf-py/gguf/tensor_mapping.py: layer_scalar → layer_output_scale, per_layer_input_gate → inp_gate,
 *   per_layer_projection → proj, post_per_layer_input_norm → post_norm, the per_layer_* top-level tensors.
 * @module
 */
import { ConfigError } from "../../errors.ts";
import type { GgufFile } from "../../formats/gguf.ts";
import { llamaCppHfName, renamedGgufSource } from "../../formats/gguf_source.ts";
import type { WeightSource } from "../../formats/weight_source.ts";
import { GEMMA_LAYER_TENSORS, GgufMetaReader } from "../common/gguf_meta.ts";
import { type Gemma4Model, parseGemma4Config } from "./config.ts";

/** Per-layer GGUF tensor name → HF name suffix under `model.layers.{i}.`. */
const LAYER_TENSORS: Readonly<Record<string, string>> = {
  ...GEMMA_LAYER_TENSORS,
  "layer_output_scale.weight": "layer_scalar",
  "inp_gate.weight": "per_layer_input_gate.weight",
  "proj.weight": "per_layer_projection.weight",
  "post_norm.weight": "post_per_layer_input_norm.weight",
  "ffn_gate_inp.weight": "router.proj.weight",
  "ffn_gate_inp.scale": "router.scale",
  "ffn_down_exps.scale": "router.per_expert_scale",
  "ffn_gate_up_exps.weight": "experts.gate_up_proj",
  "ffn_down_exps.weight": "experts.down_proj",
  "pre_ffw_norm_2.weight": "pre_feedforward_layernorm_2.weight",
  "post_ffw_norm_1.weight": "post_feedforward_layernorm_1.weight",
  "post_ffw_norm_2.weight": "post_feedforward_layernorm_2.weight",
};

/** Top-level GGUF tensor name → HF name. (`rope_freqs.weight` is read into the config, not loaded.) */
const TOP_TENSORS: Readonly<Record<string, string>> = {
  "token_embd.weight": "model.embed_tokens.weight",
  "output_norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
  "per_layer_token_embd.weight": "model.embed_tokens_per_layer.weight",
  "per_layer_model_proj.weight": "model.per_layer_model_projection.weight",
  "per_layer_proj_norm.weight": "model.per_layer_projection_norm.weight",
};

/** End-of-generation tokens of Gemma 4 besides eos, by text (see gemma4ConfigFromGguf). */
const STOP_TEXTS = ["<turn|>", "<|tool_response>"];

/** The tensor that carries the full layers' proportional RoPE (see the module comment). */
const ROPE_FREQS = "rope_freqs.weight";
/** What the converter writes for a pair that does not rotate; anything this large is "not rotated". */
const UNROTATED_FACTOR = 1e29;

/**
 * The HF name of a GGUF tensor of a Gemma 4 text model with `layers` layers, or undefined when it is not one
 * (or its block index is out of range).
 *
 * @example
 * ```ts
 * gemma4HfName("blk.3.layer_output_scale.weight", 7); // "model.layers.3.layer_scalar"
 * ```
 */
export function gemma4HfName(ggufName: string, layers: number): string | undefined {
  return llamaCppHfName(ggufName, layers, { top: TOP_TENSORS, perLayer: LAYER_TENSORS });
}

/** The fraction of the full layers' frequency pairs that rotate, from `rope_freqs.weight` (1 without it). */
function partialRotaryFactor(gguf: GgufFile, fullHeadDim: number | undefined, problems: string[]): number {
  const t = gguf.get(ROPE_FREQS);
  if (t === undefined) return 1;
  if (t.dtype !== "f32" || t.shape.length !== 1 || (fullHeadDim !== undefined && t.shape[0] !== fullHeadDim / 2)) {
    problems.push(`${ROPE_FREQS} is ${t.dtype} [${t.shape.join(", ")}], expected f32 [${(fullHeadDim ?? 0) / 2}]`);
    return 1;
  }
  const bytes = gguf.readBytes(ROPE_FREQS);
  const factors = new Float32Array(bytes.buffer, bytes.byteOffset, t.shape[0]);
  const rotated = factors.findIndex((f) => !(f < UNROTATED_FACTOR));
  const n = rotated < 0 ? factors.length : rotated;
  // transformers' proportional RoPE rotates a prefix of the pairs at their own frequencies and leaves the rest.
  if (factors.slice(0, n).some((f) => f !== 1) || factors.slice(n).some((f) => f < UNROTATED_FACTOR)) {
    problems.push(`${ROPE_FREQS} is not ones followed by ≥1e29 (only Gemma 4's proportional RoPE is supported)`);
  }
  return n / factors.length;
}

/**
 * The Gemma 4 config a llama.cpp GGUF describes, mapped to a transformers `gemma4_text` config and parsed by
 * `parseGemma4Config`. Throws ConfigError listing every problem.
 *
 * @example
 * ```ts
 * using gguf = openGguf("gemma4-text-e.f32.gguf");
 * const config = gemma4ConfigFromGguf(gguf);
 * console.log(config.layers.map((l) => l.kvShared)); // the last shared_kv_layers are true
 * ```
 */
export function gemma4ConfigFromGguf(gguf: GgufFile): Gemma4Model {
  const m = new GgufMetaReader(gguf, "Gemma 4");
  const arch = m.str("general.architecture");
  if (arch !== undefined && arch !== "gemma4") {
    throw new ConfigError(gguf.path, [`general.architecture is ${JSON.stringify(arch)}, not Gemma 4 ("gemma4")`]);
  }
  if (arch === undefined) throw new ConfigError(gguf.path, m.problems);
  const k = (key: string) => `gemma4.${key}`;

  const L = m.num(k("block_count")) ?? 0;
  const hidden = m.num(k("embedding_length"));
  const heads = m.uniform(k("attention.head_count"));
  const swaPattern = m.bools(k("attention.sliding_window_pattern"));
  if (swaPattern && swaPattern.length !== L) {
    m.problems.push(`${k("attention.sliding_window_pattern")} has ${swaPattern.length} entries for ${L} layers`);
  }
  const isSwa = (i: number) => swaPattern?.[i] ?? false;
  const fullHeadDim = m.num(k("attention.key_length"));
  const swaHeadDim = m.num(k("attention.key_length_swa"));
  const fullValueDim = m.num(k("attention.value_length"), false) ?? fullHeadDim;
  const swaValueDim = m.num(k("attention.value_length_swa"), false) ?? swaHeadDim;
  if (fullValueDim !== fullHeadDim || swaValueDim !== swaHeadDim) {
    m.problems.push("value_length differs from key_length; Gemma 4 has one head dim per layer type");
  }
  const kvHeads = m.perLayer(k("attention.head_count_kv"), L, false) ??
    (heads !== undefined ? Array.from({ length: L }, () => heads) : undefined);
  const ff = m.perLayer(k("feed_forward_length"), L);
  const shared = m.num(k("attention.shared_kv_layers"), false) ?? 0;
  const perLayerInput = m.num(k("embedding_length_per_layer_input"), false) ?? 0;
  const eps = m.num(k("attention.layer_norm_rms_epsilon"));
  const window = m.num(k("attention.sliding_window"));
  const context = m.num(k("context_length"));
  const fullTheta = m.num(k("rope.freq_base"), false) ?? 1_000_000;
  const swaTheta = m.num(k("rope.freq_base_swa"), false) ?? 10_000;
  const softcap = m.num(k("final_logit_softcapping"), false);
  const ropeDims = m.num(k("rope.dimension_count"), false);
  if (ropeDims !== undefined && fullHeadDim !== undefined && ropeDims !== fullHeadDim) {
    m.problems.push(`${k("rope.dimension_count")} ${ropeDims} differs from key_length ${fullHeadDim}`);
  }
  const swaRopeDims = m.num(k("rope.dimension_count_swa"), false);
  if (swaRopeDims !== undefined && swaHeadDim !== undefined && swaRopeDims !== swaHeadDim) {
    m.problems.push(`${k("rope.dimension_count_swa")} ${swaRopeDims} differs from key_length_swa ${swaHeadDim}`);
  }
  const scaling = m.num(k("rope.scaling.factor"), false);
  if (scaling !== undefined && scaling !== 0 && scaling !== 1) {
    m.problems.push(`${k("rope.scaling.factor")} ${scaling}: RoPE scaling is not supported for Gemma 4 GGUFs`);
  }
  const experts = m.num(k("expert_count"), false) ?? 0;
  const moe = experts > 0
    ? {
      num_experts: experts,
      top_k_experts: m.num(k("expert_used_count")),
      moe_intermediate_size: m.uniform(k("expert_feed_forward_length")),
    }
    : {};

  // The dense MLP: one width, doubled on the KV-shared layers with use_double_wide_mlp.
  const firstShared = L - shared;
  const base = ff?.[0];
  const doubleWide = ff !== undefined && shared > 0 && ff[firstShared] === 2 * base! && base! > 0;
  if (ff && ff.some((w, i) => w !== (doubleWide && i >= firstShared ? 2 * base! : base))) {
    m.problems.push(`${k("feed_forward_length")} [${ff.join(", ")}] is neither uniform nor doubled on shared layers`);
  }
  // attention_k_eq_v has no key: the full layers that own K/V have no attn_v (llama.cpp checks the same).
  const ownFull = Array.from({ length: L }, (_, i) => i).filter((i) => !isSwa(i) && i < firstShared);
  const withV = ownFull.filter((i) => gguf.get(`blk.${i}.attn_v.weight`) !== undefined);
  const kEqV = ownFull.length > 0 && withV.length === 0;
  if (withV.length > 0 && withV.length < ownFull.length) {
    m.problems.push(
      `full layers ${ownFull.filter((i) => !withV.includes(i)).join(", ")} lack attn_v but others have it`,
    );
  }
  const swaKv = kvHeads?.find((_, i) => isSwa(i)) ?? kvHeads?.[0];
  const perLayerConfig: Record<string, { head_dim?: number; num_key_value_heads?: number }> = {};
  for (let i = 0; i < L; i++) {
    if (!isSwa(i)) perLayerConfig[i] = { head_dim: fullHeadDim, num_key_value_heads: kvHeads?.[i] };
    else if (kvHeads?.[i] !== swaKv) m.problems.push(`sliding layer ${i} has ${kvHeads?.[i]} KV heads, not ${swaKv}`);
  }
  const partial = partialRotaryFactor(gguf, fullHeadDim, m.problems);

  // Vocabularies: the embeddings' rows (the per-layer table may differ from the main one).
  const embed = gguf.get("token_embd.weight");
  if (embed === undefined) m.problems.push("token_embd.weight is missing, so the vocabulary size is unknown");
  const perLayerEmbed = gguf.get("per_layer_token_embd.weight");
  if (perLayerInput > 0 && perLayerEmbed === undefined) {
    m.problems.push(`per_layer_token_embd.weight is missing, but embedding_length_per_layer_input is ${perLayerInput}`);
  }
  if (m.problems.length > 0) throw new ConfigError(gguf.path, m.problems);

  const tokenId = (key: string) => {
    const v = gguf.metadata.get(`tokenizer.ggml.${key}`);
    return v !== undefined && v.type !== "array" && typeof v.value === "number" ? v.value : undefined;
  };
  // Gemma 4's generation_config.json stops at <eos>, <turn|> and <|tool_response> (1, 106, 50 in the real
  // vocabulary); the file keeps only eos_token_id, so the other two are found by their text.
  const tokens = gguf.metadata.get("tokenizer.ggml.tokens");
  const texts = tokens?.type === "array" && tokens.itemType === "string" ? tokens.items as readonly string[] : [];
  const eosIds = [tokenId("eos_token_id"), tokenId("eot_token_id"), ...STOP_TEXTS.map((t) => texts.indexOf(t))]
    .filter((id): id is number => id !== undefined && id >= 0)
    .filter((id, i, all) => all.indexOf(id) === i);
  const json = {
    model_type: "gemma4_text",
    architectures: ["Gemma4ForCausalLM"],
    vocab_size: embed!.shape[0],
    hidden_size: hidden,
    intermediate_size: base,
    num_hidden_layers: L,
    num_attention_heads: heads,
    num_key_value_heads: swaKv,
    head_dim: swaHeadDim,
    per_layer_config: perLayerConfig,
    layer_types: Array.from({ length: L }, (_, i) => isSwa(i) ? "sliding_attention" : "full_attention"),
    rms_norm_eps: eps,
    sliding_window: window,
    max_position_embeddings: context,
    rope_parameters: {
      sliding_attention: { rope_type: "default", rope_theta: swaTheta },
      full_attention: { rope_type: "proportional", rope_theta: fullTheta, partial_rotary_factor: partial },
    },
    final_logit_softcapping: softcap ?? null,
    hidden_activation: "gelu_pytorch_tanh",
    tie_word_embeddings: gguf.get("output.weight") === undefined,
    attention_k_eq_v: kEqV,
    num_kv_shared_layers: shared,
    use_double_wide_mlp: doubleWide,
    hidden_size_per_layer_input: perLayerInput,
    vocab_size_per_layer_input: perLayerEmbed?.shape[0],
    enable_moe_block: experts > 0,
    ...moe,
    bos_token_id: tokenId("bos_token_id"),
    eos_token_id: eosIds,
    pad_token_id: tokenId("padding_token_id"),
  };
  return parseGemma4Config(json, gguf.path);
}

/**
 * The GGUF's tensors under the HF names of `gemma4TextWeights(config)` (shapes already outermost first), so
 * `ModelWeights.load(backend, gemma4GgufWeightSource(gguf, config), gemma4TextTable(config))` works as for
 * safetensors. Every tensor keeps its stored type, the experts too when llama-quantize stored gate_up and down in
 * different types (a "_M" mix gives ffn_down_exps more bits; rows that fit no block fall back): moeExperts takes
 * one type per tensor.
 * The GGUF stays owned by the caller.
 */
export function gemma4GgufWeightSource(gguf: GgufFile, config: Gemma4Model): WeightSource {
  const layers = config.text.numHiddenLayers;
  // rope_freqs is read into the config (the partial RoPE), not loaded as a weight.
  return renamedGgufSource(gguf, (name) => name === ROPE_FREQS ? null : gemma4HfName(name, layers));
}
