/**
 * Gemma 4 text configuration: HF `config.json` (`gemma4_text`, or `gemma4` with the text model under
 * `text_config`) parsed once into a typed object and per-layer facts the layers read: head dim and KV heads
 * per layer type, KV sharing, k_eq_v, double-wide MLP, per-layer inputs, the MoE block.
 * ref: transformers models/gemma4/configuration_gemma4.py (Gemma4TextConfig.__post_init__) — 5.17 writes the
 * full-layer geometry as `per_layer_config`; released checkpoints carry `global_head_dim` and
 * `num_global_key_value_heads` instead. Both are read.
 * @module
 */
import { ConfigReader, type Json, type LayerType, readLayerTypes, readSpecialTokens } from "../common/config.ts";
import { ConfigError } from "../../errors.ts";

export { ConfigError, type LayerType };

/** RoPE of one layer type. "proportional" (Gemma 4 full layers) rotates only partialRotaryFactor of the pairs. */
export interface Gemma4RopeParams {
  type: "default" | "linear" | "proportional";
  theta: number;
  /** Divides inv_freq (1 = none). */
  factor: number;
  /** Fraction of frequency pairs that rotate; the rest are zero (1 unless proportional). */
  partialRotaryFactor: number;
}

/** The mixture-of-experts block (26B-A4B); null when enable_moe_block is false. */
export interface Gemma4MoeSpec {
  numExperts: number;
  topK: number;
  moeIntermediateSize: number;
}

export interface Gemma4TextConfig {
  vocabSize: number;
  hiddenSize: number;
  /** The dense MLP's width (doubled on KV-shared layers with use_double_wide_mlp: see LayerSpec). */
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  rmsNormEps: number;
  slidingWindow: number;
  maxPositionEmbeddings: number;
  finalLogitSoftcapping: number | null;
  layerTypes: LayerType[];
  rope: Record<LayerType, Gemma4RopeParams>;
  tieWordEmbeddings: boolean;
  /** Per-layer input width P (0 = no per-layer inputs) and the vocabulary of its table. */
  hiddenSizePerLayerInput: number;
  vocabSizePerLayerInput: number;
  numKvSharedLayers: number;
  moe: Gemma4MoeSpec | null;
  bosTokenId: number;
  eosTokenIds: number[];
  padTokenId: number;
}

/** Facts of one decoder layer, derived once. */
export interface Gemma4LayerSpec {
  index: number;
  type: LayerType;
  /** Sliding window in tokens; 0 for full attention. */
  window: number;
  headDim: number;
  kvHeads: number;
  /** attention_k_eq_v on a full layer: no v_proj, V is the raw K projection. */
  kEqV: boolean;
  /** The layer whose K/V this layer attends over: itself, or for a KV-shared layer its source. */
  kvSource: number;
  /** Shared layers have no k/v weights and no cache of their own. */
  kvShared: boolean;
  /** Dense MLP width of this layer. */
  intermediateSize: number;
  rope: Gemma4RopeParams;
}

export interface Gemma4Model {
  /** "causal_lm" (Gemma4ForCausalLM) or "conditional_generation" (Gemma4ForConditionalGeneration). */
  architecture: "causal_lm" | "conditional_generation";
  text: Gemma4TextConfig;
  layers: Gemma4LayerSpec[];
  /**
   * The dtype the embedding scales (√hidden, √per-layer width) are rounded to. Default (undefined): the table's
   * stored float dtype, as transformers casts them to the checkpoint's dtype; "f32" for GGUF files, whose
   * storage type says nothing of the compute type (llama.cpp scales in f32).
   */
  embedScaleDtype?: "f32";
}

const DEFAULT_ROPE: Record<LayerType, Gemma4RopeParams> = {
  sliding_attention: { type: "default", theta: 1e4, factor: 1, partialRotaryFactor: 1 },
  full_attention: { type: "proportional", theta: 1e6, factor: 1, partialRotaryFactor: 0.25 },
};

function parseRope(r: ConfigReader, raw: unknown, type: LayerType): Gemma4RopeParams {
  const where = `${r.prefix}rope_parameters.${type}`;
  if (raw === undefined || raw === null) return DEFAULT_ROPE[type];
  if (typeof raw !== "object") {
    r.problems.push(`${where} must be an object, got ${JSON.stringify(raw)}`);
    return DEFAULT_ROPE[type];
  }
  const o = raw as Json;
  const kind = o.rope_type ?? "default";
  const sub = new ConfigReader(o, `${where}.`);
  const theta = sub.num("rope_theta", DEFAULT_ROPE[type].theta);
  const factor = sub.num("factor", 1);
  const partial = sub.num("partial_rotary_factor", 1);
  r.problems.push(...sub.problems);
  if (kind !== "default" && kind !== "linear" && kind !== "proportional") {
    r.problems.push(`${where}.rope_type "${kind}" is not supported (expected default, linear or proportional)`);
    return DEFAULT_ROPE[type];
  }
  if (!(factor > 0)) r.problems.push(`${where}.factor must be positive`);
  if (!(partial > 0 && partial <= 1)) r.problems.push(`${where}.partial_rotary_factor must be in (0, 1]`);
  // transformers' default rope ignores factor; partial_rotary_factor only zeroes tail frequencies when proportional.
  return {
    type: kind,
    theta,
    factor: kind === "default" ? 1 : factor,
    partialRotaryFactor: kind === "proportional" ? partial : 1,
  };
}

/** Head dim and KV heads of each layer: per_layer_config (transformers 5.17) or the released global_* fields. */
function layerGeometry(
  r: ConfigReader,
  text: Json,
  types: LayerType[],
  base: { headDim: number; kvHeads: number; kEqV: boolean },
): { headDim: number; kvHeads: number }[] {
  const perLayer = text.per_layer_config;
  if (perLayer !== undefined && perLayer !== null) {
    if (typeof perLayer !== "object") {
      r.problems.push(`${r.prefix}per_layer_config must be an object keyed by layer index`);
      return types.map(() => ({ headDim: base.headDim, kvHeads: base.kvHeads }));
    }
    const overrides = perLayer as Json;
    for (const key of Object.keys(overrides)) {
      const i = Number(key);
      if (!Number.isInteger(i) || i < 0 || i >= types.length) {
        r.problems.push(`${r.prefix}per_layer_config has key "${key}", not a layer index`);
      }
    }
    return types.map((_, i) => {
      const o = overrides[String(i)];
      if (o === undefined || o === null) return { headDim: base.headDim, kvHeads: base.kvHeads };
      const sub = new ConfigReader(o as Json, `${r.prefix}per_layer_config.${i}.`);
      for (const k of Object.keys(o as Json)) {
        if (k !== "head_dim" && k !== "num_key_value_heads") sub.problems.push(`${sub.prefix}${k} is not supported`);
      }
      const g = { headDim: sub.int("head_dim", base.headDim), kvHeads: sub.int("num_key_value_heads", base.kvHeads) };
      r.problems.push(...sub.problems);
      return g;
    });
  }
  const globalHeadDim = r.int("global_head_dim", 512);
  const globalKv = text.num_global_key_value_heads;
  const fullKv = base.kEqV && globalKv !== undefined && globalKv !== null
    ? r.int("num_global_key_value_heads")
    : base.kvHeads;
  return types.map((t) =>
    t === "full_attention"
      ? { headDim: globalHeadDim, kvHeads: fullKv }
      : { headDim: base.headDim, kvHeads: base.kvHeads }
  );
}

/** Parses a config.json object; `source` names it in errors. Throws ConfigError listing every problem. */
export function parseGemma4Config(json: unknown, source = "config.json"): Gemma4Model {
  if (typeof json !== "object" || json === null) throw new ConfigError(source, ["config is not a JSON object"]);
  const top = json as Json;
  let architecture: Gemma4Model["architecture"];
  let text: Json;
  let prefix = "";
  if (top.model_type === "gemma4_text") {
    architecture = "causal_lm";
    text = top;
  } else if (top.model_type === "gemma4") {
    architecture = "conditional_generation";
    if (typeof top.text_config !== "object" || top.text_config === null) {
      throw new ConfigError(source, ['model_type "gemma4" needs a text_config object']);
    }
    text = top.text_config as Json;
    prefix = "text_config.";
  } else {
    throw new ConfigError(source, [
      `model_type ${JSON.stringify(top.model_type)} is not a Gemma 4 model (gemma4_text or gemma4)`,
    ]);
  }
  const r = new ConfigReader(text, prefix);
  // The geometry has no safe default: a config without it is not a checkpoint's config.
  const vocabSize = r.int("vocab_size");
  const hiddenSize = r.int("hidden_size");
  const intermediateSize = r.int("intermediate_size");
  const numHiddenLayers = r.int("num_hidden_layers");
  const numAttentionHeads = r.int("num_attention_heads");
  const numKeyValueHeads = r.int("num_key_value_heads");
  const headDim = r.int("head_dim");
  const activation = text.hidden_activation ?? text.hidden_act ?? "gelu_pytorch_tanh";
  if (activation !== "gelu_pytorch_tanh") {
    r.problems.push(`${prefix}hidden_activation "${activation}" is not supported (Gemma 4 uses "gelu_pytorch_tanh")`);
  }
  if (text.attention_bias === true) r.problems.push(`${prefix}attention_bias=true is not supported (Gemma 4 has none)`);
  if (text.use_bidirectional_attention === "all") {
    r.problems.push(`${prefix}use_bidirectional_attention="all" (an encoder) is not supported`);
  }

  let layerTypes: LayerType[];
  if (Array.isArray(text.layer_types)) {
    layerTypes = readLayerTypes(r, text.layer_types, numHiddenLayers);
  } else {
    layerTypes = Array.from(
      { length: numHiddenLayers },
      (_, i) => (i + 1) % 6 ? "sliding_attention" : "full_attention",
    );
  }
  // transformers forces the last layer to full attention (with a warning); so do we.
  if (layerTypes.length > 0) layerTypes[layerTypes.length - 1] = "full_attention";

  const params = (text.rope_parameters ?? {}) as Json;
  const rope = {
    sliding_attention: parseRope(r, params.sliding_attention, "sliding_attention"),
    full_attention: parseRope(r, params.full_attention, "full_attention"),
  };

  const kEqV = r.bool("attention_k_eq_v", false);
  const geometry = layerGeometry(r, text, layerTypes, { headDim, kvHeads: numKeyValueHeads, kEqV });
  for (const [i, g] of geometry.entries()) {
    if (g.headDim % 2 !== 0 || g.headDim > 512) {
      r.problems.push(`layer ${i}: head_dim=${g.headDim} must be even and <= 512`);
    }
    if (numAttentionHeads % g.kvHeads !== 0) {
      r.problems.push(
        `layer ${i}: num_attention_heads=${numAttentionHeads} is not a multiple of ${g.kvHeads} kv heads`,
      );
    }
  }

  const numKvSharedLayers = r.int("num_kv_shared_layers", 0, 0);
  const firstShared = numHiddenLayers - numKvSharedLayers;
  if (numKvSharedLayers > 0 && firstShared <= 0) {
    r.problems.push(`${prefix}num_kv_shared_layers=${numKvSharedLayers} leaves no layer to share from`);
  }
  const doubleWide = r.bool("use_double_wide_mlp", false);
  let moe: Gemma4MoeSpec | null = null;
  if (r.bool("enable_moe_block", false)) {
    // No defaults in transformers either (None): a MoE config must name its experts.
    moe = {
      numExperts: r.int("num_experts"),
      topK: r.int("top_k_experts"),
      moeIntermediateSize: r.int("moe_intermediate_size"),
    };
    if (moe.topK > moe.numExperts) r.problems.push(`${prefix}top_k_experts=${moe.topK} exceeds num_experts`);
  }
  const hiddenSizePerLayerInput = r.int("hidden_size_per_layer_input", 256, 0);
  const config: Gemma4TextConfig = {
    vocabSize,
    hiddenSize,
    intermediateSize,
    numHiddenLayers,
    numAttentionHeads,
    rmsNormEps: r.num("rms_norm_eps", 1e-6),
    slidingWindow: r.int("sliding_window", 512),
    maxPositionEmbeddings: r.int("max_position_embeddings", 131072),
    finalLogitSoftcapping: r.optionalPositive("final_logit_softcapping"),
    layerTypes,
    rope,
    // The loaded class's own config decides (modeling_utils reads `self.config.tie_word_embeddings`): the top level
    // for Gemma4ForConditionalGeneration, never text_config. (Its forward does apply text_config's softcap.)
    tieWordEmbeddings: (top.tie_word_embeddings ?? true) !== false,
    hiddenSizePerLayerInput,
    vocabSizePerLayerInput: hiddenSizePerLayerInput ? r.int("vocab_size_per_layer_input", 262144) : 0,
    numKvSharedLayers,
    moe,
    ...readSpecialTokens(text, top),
  };

  // KV sharing (Gemma4TextAttention): layer i >= first shares; its source is the last earlier
  // non-shared layer of the same type.
  const layers: Gemma4LayerSpec[] = layerTypes.map((type, index) => {
    const kvShared = numKvSharedLayers > 0 && index >= firstShared;
    let kvSource = index;
    if (kvShared) {
      kvSource = layerTypes.lastIndexOf(type, firstShared - 1);
      if (kvSource < 0) r.problems.push(`layer ${index} (${type}) is KV-shared but no earlier ${type} layer exists`);
    }
    return {
      index,
      type,
      window: type === "sliding_attention" ? config.slidingWindow : 0,
      headDim: geometry[index].headDim,
      kvHeads: geometry[index].kvHeads,
      kEqV: kEqV && type === "full_attention",
      kvSource,
      kvShared,
      intermediateSize: intermediateSize * (doubleWide && kvShared ? 2 : 1),
      rope: rope[type],
    };
  });
  if (r.problems.length > 0) throw new ConfigError(source, r.problems);
  return { architecture, text: config, layers };
}
