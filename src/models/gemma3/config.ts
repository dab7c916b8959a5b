/**
 * Gemma 3 text configuration: HF `config.json` (`gemma3_text`, or `gemma3` with the text model under
 * `text_config`) parsed once into a typed object and per-layer facts the layers read.
 * ref: transformers models/gemma3/configuration_gemma3.py (Gemma3TextConfig).
 * @module
 */
import { ConfigReader, type Json, type LayerType, readLayerTypes, readSpecialTokens } from "../common/config.ts";
import { ConfigError } from "../../errors.ts";

export type { LayerType };

/** RoPE of one layer type. Only the kinds Gemma 3 checkpoints use; others are refused at parse time. */
export interface RopeParams {
  type: "default" | "linear";
  theta: number;
  /** Linear scaling divides inv_freq by this (1 for "default"). */
  factor: number;
}

export interface Gemma3TextConfig {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  rmsNormEps: number;
  /** Attention scores are multiplied by queryPreAttnScalar^-0.5 (not head_dim^-0.5). */
  queryPreAttnScalar: number;
  slidingWindow: number;
  maxPositionEmbeddings: number;
  finalLogitSoftcapping: number | null;
  layerTypes: LayerType[];
  rope: Record<LayerType, RopeParams>;
  tieWordEmbeddings: boolean;
  bosTokenId: number;
  eosTokenIds: number[];
  padTokenId: number;
}

/** Facts of one decoder layer, derived once. */
export interface LayerSpec {
  index: number;
  type: LayerType;
  /** Sliding window in tokens; 0 for full attention. */
  window: number;
  rope: RopeParams;
}

export interface Gemma3Model {
  /** "causal_lm" (Gemma3ForCausalLM) or "conditional_generation" (Gemma3ForConditionalGeneration). */
  architecture: "causal_lm" | "conditional_generation";
  /**
   * How stored RMSNorm weights apply: HF checkpoints hold w for Gemma3RMSNorm's x·(1 + w) ("one_plus");
   * llama.cpp's GGUF converter stores 1 + w, applied as x·w ("scale").
   */
  normMode: "one_plus" | "scale";
  text: Gemma3TextConfig;
  layers: LayerSpec[];
}

function parseRope(r: ConfigReader, raw: unknown, where: string, theta: number): RopeParams {
  if (raw === undefined || raw === null) return { type: "default", theta, factor: 1 };
  if (typeof raw !== "object") {
    r.problems.push(`${where} must be an object, got ${JSON.stringify(raw)}`);
    return { type: "default", theta, factor: 1 };
  }
  const o = raw as Json;
  const type = o.rope_type ?? o.type ?? "default";
  const ropeTheta = typeof o.rope_theta === "number" ? o.rope_theta : theta;
  if (type === "default") return { type, theta: ropeTheta, factor: 1 };
  if (type === "linear") {
    const factor = o.factor;
    if (typeof factor !== "number" || !(factor > 0)) {
      r.problems.push(`${where}.factor must be a positive number for linear RoPE, got ${JSON.stringify(factor)}`);
      return { type, theta: ropeTheta, factor: 1 };
    }
    return { type, theta: ropeTheta, factor };
  }
  r.problems.push(`${where}.rope_type "${type}" is not supported for Gemma 3 (expected "default" or "linear")`);
  return { type: "default", theta: ropeTheta, factor: 1 };
}

/** Parses a config.json object; `source` names it in errors. Throws ConfigError listing every problem. */
export function parseGemma3Config(json: unknown, source = "config.json"): Gemma3Model {
  if (typeof json !== "object" || json === null) throw new ConfigError(source, ["config is not a JSON object"]);
  const top = json as Json;
  const modelType = top.model_type;
  let architecture: Gemma3Model["architecture"];
  let text: Json;
  let prefix = "";
  if (modelType === "gemma3_text") {
    architecture = "causal_lm";
    text = top;
  } else if (modelType === "gemma3") {
    architecture = "conditional_generation";
    if (typeof top.text_config !== "object" || top.text_config === null) {
      throw new ConfigError(source, ['model_type "gemma3" needs a text_config object']);
    }
    text = top.text_config as Json;
    prefix = "text_config.";
  } else {
    throw new ConfigError(source, [
      `model_type ${JSON.stringify(modelType)} is not a Gemma 3 model (gemma3_text or gemma3)`,
    ]);
  }
  const r = new ConfigReader(text, prefix);
  const numHiddenLayers = r.int("num_hidden_layers", 26);
  const numAttentionHeads = r.int("num_attention_heads", 8);
  const numKeyValueHeads = r.int("num_key_value_heads", numAttentionHeads);
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    r.problems.push(
      `${prefix}num_attention_heads=${numAttentionHeads} is not a multiple of num_key_value_heads=${numKeyValueHeads}`,
    );
  }
  const headDim = r.int("head_dim", 256);
  if (headDim % 2 !== 0 || headDim > 512) r.problems.push(`${prefix}head_dim=${headDim} must be even and <= 512`);
  const activation = text.hidden_activation ?? text.hidden_act ?? "gelu_pytorch_tanh";
  if (activation !== "gelu_pytorch_tanh") {
    r.problems.push(`${prefix}hidden_activation "${activation}" is not supported (Gemma 3 uses "gelu_pytorch_tanh")`);
  }
  if (text.attention_bias === true) r.problems.push(`${prefix}attention_bias=true is not supported (Gemma 3 has none)`);
  if (text.use_bidirectional_attention === true) {
    r.problems.push(`${prefix}use_bidirectional_attention=true (an encoder such as EmbeddingGemma) is not supported`);
  }

  // Layer kinds: explicit layer_types, else the sliding_window_pattern rule (every Nth layer is full).
  let layerTypes: LayerType[];
  if (Array.isArray(text.layer_types)) {
    layerTypes = readLayerTypes(r, text.layer_types, numHiddenLayers);
  } else {
    const pattern = r.int("sliding_window_pattern", 6);
    layerTypes = Array.from(
      { length: numHiddenLayers },
      (_, i) => (i + 1) % pattern ? "sliding_attention" : "full_attention",
    );
  }

  // RoPE: transformers 5 writes rope_parameters per layer type; older configs use rope_theta,
  // rope_scaling (global layers only) and rope_local_base_freq (sliding layers, always default).
  const ropeTheta = typeof text.rope_theta === "number" ? text.rope_theta : 1e6;
  const localTheta = typeof text.rope_local_base_freq === "number" ? text.rope_local_base_freq : 1e4;
  let rope: Record<LayerType, RopeParams>;
  const params = text.rope_parameters as Json | undefined;
  if (params && typeof params === "object" && ("full_attention" in params || "sliding_attention" in params)) {
    rope = {
      full_attention: parseRope(r, params.full_attention, `${prefix}rope_parameters.full_attention`, ropeTheta),
      sliding_attention: parseRope(
        r,
        params.sliding_attention,
        `${prefix}rope_parameters.sliding_attention`,
        localTheta,
      ),
    };
  } else {
    rope = {
      full_attention: parseRope(r, text.rope_scaling ?? params, `${prefix}rope_scaling`, ropeTheta),
      sliding_attention: { type: "default", theta: localTheta, factor: 1 },
    };
  }

  const config: Gemma3TextConfig = {
    vocabSize: r.int("vocab_size", 262208),
    hiddenSize: r.int("hidden_size", 2304),
    intermediateSize: r.int("intermediate_size", 9216),
    numHiddenLayers,
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    rmsNormEps: r.num("rms_norm_eps", 1e-6),
    queryPreAttnScalar: r.num("query_pre_attn_scalar", 256),
    slidingWindow: r.int("sliding_window", 4096),
    maxPositionEmbeddings: r.int("max_position_embeddings", 131072),
    // transformers' Gemma3ForConditionalGeneration.forward is `lm_head(hidden)` with no final softcap; only
    // Gemma3ForCausalLM applies it (the field is still checked).
    finalLogitSoftcapping: architecture === "conditional_generation"
      ? (r.optionalPositive("final_logit_softcapping"), null)
      : r.optionalPositive("final_logit_softcapping"),
    layerTypes,
    rope,
    // Tied or not is the loaded class's own config's word: the top level for Gemma3ForConditionalGeneration
    // (modeling_utils reads `self.config.tie_word_embeddings`), text_config is not consulted.
    tieWordEmbeddings: (top.tie_word_embeddings ?? true) !== false,
    ...readSpecialTokens(text, top),
  };
  if (!(config.queryPreAttnScalar > 0)) r.problems.push(`${prefix}query_pre_attn_scalar must be positive`);
  if (r.problems.length > 0) throw new ConfigError(source, r.problems);
  const layers: LayerSpec[] = layerTypes.map((type, index) => ({
    index,
    type,
    window: type === "sliding_attention" ? config.slidingWindow : 0,
    rope: rope[type],
  }));
  return { architecture, normMode: "one_plus", text: config, layers };
}
