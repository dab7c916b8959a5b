/**
 * Gemma 3 from a llama.cpp GGUF: the config (GGUF metadata → a transformers-style config, parsed by
 * `parseGemma3Config` so validation is shared with config.json) and a WeightSource that lists the GGUF tensors
 * under the Hugging Face names of the weight table (src/models/gemma3/weights.ts), in our orientation.
 *
 * References (llama.cpp, ggml-org/llama.cpp):
 * - src/llama-model.cpp @00342301, `llama_model::load_hparams`: the generic keys (context_length,
 *   embedding_length, block_count, feed_forward_length, attention.head_count[_kv], attention.key_length
 *   defaulting to n_embd / n_head, rope.freq_base defaulting to 10000, rope.scaling.type defaulting to
 *   "linear", rope.scaling.factor or the older rope.scale_linear, 0 meaning none); and `case LLM_ARCH_GEMMA3`:
 *   `set_swa_pattern(6)`, `rope_freq_base_train_swa = 10000.0f`, `rope_freq_scale_train_swa = 1.0f`,
 *   attention.sliding_window and attention.layer_norm_rms_epsilon required, and
 *   `f_attention_scale = type == LLM_TYPE_27B ? 1/sqrt(float(n_embd / n_head(0))) : 1/sqrt(float(n_embd_head_k))`
 *   with LLM_TYPE_27B ⇔ n_layer == 62.
 * - src/llama-hparams.cpp `set_swa_pattern(n)`: layer il slides iff `il % n < n - 1`, i.e. `(il + 1) % n != 0`.
 * - convert_hf_to_gguf.py @0024aa74, `Gemma3Model`: `norm_shift` returns 1.0 for names ending in
 *   "norm.weight" and `modify_tensors` adds it ("Gemma3RMSNorm adds 1.0 to the norm value"), so every
 *   norm weight in the file is already `1 + w`; token_embd is trimmed to the real vocabulary; q/k are not
 *   permuted (unlike LLaMA's converter), so they keep the Hugging Face layout.
 * @module
 */
import type { GgufFile } from "../../formats/gguf.ts";
import { llamaCppHfName, type RenamedGgufSource, renamedGgufSource } from "../../formats/gguf_source.ts";
import { GEMMA_LAYER_TENSORS, GgufMetaReader } from "../common/gguf_meta.ts";
import { type Gemma3Model, parseGemma3Config } from "./config.ts";
import { ConfigError } from "../../errors.ts";

/**
 * Facts of a Gemma 3 GGUF that neither the config nor the weight table carries.
 * `normAlreadyOffset`: every RMSNorm weight is stored as `1 + w` (convert_hf_to_gguf.py adds the 1), so the
 * model must scale by the weight as stored, not by `1 + weight` as for Hugging Face checkpoints. Verified on
 * gemma-3-270m Q4_K_M: for every one of the 55,936 norm values v, v − 1 is exactly a bf16 number (the HF
 * checkpoint is bf16), while v itself is for only 75% of them.
 */
export const GEMMA3_GGUF_FACTS = Object.freeze({ normAlreadyOffset: true } as const);

/** llama.cpp's sliding-window pattern for gemma3: every 6th layer is global. */
const SLIDING_WINDOW_PATTERN = 6;
/** llama.cpp's `rope_freq_base_train_swa` for gemma3 (sliding layers, never scaled). */
const LOCAL_ROPE_BASE = 10_000;
/** llama.cpp's default `rope_freq_base_train` when rope.freq_base is absent. */
const DEFAULT_ROPE_BASE = 10_000;
/** llama.cpp treats a 62-layer gemma3 as 27B, whose attention scale uses hidden / heads (5376 / 32 = 168). */
const LAYERS_27B = 62;

/** Top-level GGUF tensor name → HF name. */
const TOP_TENSORS: Readonly<Record<string, string>> = {
  "token_embd.weight": "model.embed_tokens.weight",
  "output_norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
};

/**
 * The HF name of a GGUF tensor of a Gemma 3 model with `layers` layers, or undefined when it is not a tensor
 * of the text model (or its block index is out of range).
 *
 * @example
 * ```ts
 * gemma3HfName("blk.3.ffn_norm.weight", 18); // "model.layers.3.pre_feedforward_layernorm.weight"
 * ```
 */
export function gemma3HfName(ggufName: string, layers: number): string | undefined {
  return llamaCppHfName(ggufName, layers, { top: TOP_TENSORS, perLayer: GEMMA_LAYER_TENSORS });
}

/**
 * The Gemma 3 config a llama.cpp GGUF describes: its `gemma3.*` metadata plus what llama.cpp hard-codes for
 * gemma3 (sliding pattern 6, local RoPE base 10000, query_pre_attn_scalar = head_dim except for 27B), mapped
 * to a transformers `gemma3_text` config and parsed by `parseGemma3Config`. Throws ConfigError listing every
 * problem (another architecture, missing or mistyped keys, values the model cannot run).
 *
 * @example
 * ```ts
 * using gguf = openGguf("gemma-3-270m-q4_k_m.gguf");
 * const config = gemma3ConfigFromGguf(gguf);
 * console.log(config.text.hiddenSize, config.layers.filter((l) => l.type === "full_attention").length); // 640 3
 * ```
 */
export function gemma3ConfigFromGguf(gguf: GgufFile): Gemma3Model {
  const m = new GgufMetaReader(gguf, "Gemma 3");
  const arch = m.str("general.architecture");
  if (arch !== undefined && arch !== "gemma3") {
    throw new ConfigError(gguf.path, [
      `general.architecture is ${JSON.stringify(arch)}, not Gemma 3 ("gemma3")`,
    ]);
  }
  if (arch === undefined) throw new ConfigError(gguf.path, m.problems);
  const k = (key: string) => `gemma3.${key}`;

  const hidden = m.num(k("embedding_length"));
  const layers = m.num(k("block_count"));
  const intermediate = m.uniform(k("feed_forward_length"));
  const heads = m.uniform(k("attention.head_count"));
  const kvHeads = m.uniform(k("attention.head_count_kv"), false) ?? heads;
  const defaultHeadDim = hidden !== undefined && heads ? Math.floor(hidden / heads) : undefined;
  const headDim = m.num(k("attention.key_length"), false) ?? defaultHeadDim;
  const valueDim = m.num(k("attention.value_length"), false);
  if (valueDim !== undefined && headDim !== undefined && valueDim !== headDim) {
    m.problems.push(`${k("attention.value_length")} ${valueDim} differs from key_length ${headDim}; Gemma 3 has one`);
  }
  const ropeDims = m.num(k("rope.dimension_count"), false);
  if (ropeDims !== undefined && headDim !== undefined && ropeDims !== headDim) {
    m.problems.push(`${k("rope.dimension_count")} ${ropeDims} differs from head_dim ${headDim} (partial RoPE)`);
  }
  const eps = m.num(k("attention.layer_norm_rms_epsilon"));
  const window = m.num(k("attention.sliding_window"));
  const context = m.num(k("context_length"));
  const ropeBase = m.num(k("rope.freq_base"), false) ?? DEFAULT_ROPE_BASE;
  const scalingType = m.str(k("rope.scaling.type"), false) ?? "linear";
  const factor = m.num(k("rope.scaling.factor"), false) ?? m.num(k("rope.scale_linear"), false) ?? 0;
  const softcap = m.num(k("final_logit_softcapping"), false);

  // Vocabulary: the embedding's rows (the converter trims it to the tokenizer's size).
  const embed = gguf.get("token_embd.weight");
  const tokens = gguf.metadata.get("tokenizer.ggml.tokens");
  const vocab = embed?.shape[0] ?? (tokens?.type === "array" ? tokens.items.length : undefined);
  if (vocab === undefined) m.problems.push("token_embd.weight is missing, so the vocabulary size is unknown");
  if (m.problems.length > 0) throw new ConfigError(gguf.path, m.problems);

  // A GGUF with rope.scaling.type "none", or a zero factor, has no scaling (llama.cpp: freq_scale 1).
  const ropeScaling = scalingType === "none" || factor === 0 || (scalingType === "linear" && factor === 1)
    ? null
    : { rope_type: scalingType, factor };
  const tokenId = (key: string) => {
    const v = gguf.metadata.get(`tokenizer.ggml.${key}`);
    return v !== undefined && v.type !== "array" && typeof v.value === "number" ? v.value : undefined;
  };
  const eos = tokenId("eos_token_id");
  const eot = tokenId("eot_token_id");
  const json = {
    model_type: "gemma3_text",
    architectures: ["Gemma3ForCausalLM"],
    vocab_size: vocab,
    hidden_size: hidden,
    intermediate_size: intermediate,
    num_hidden_layers: layers,
    num_attention_heads: heads,
    num_key_value_heads: kvHeads,
    head_dim: headDim,
    rms_norm_eps: eps,
    query_pre_attn_scalar: layers === LAYERS_27B && heads ? Math.floor(hidden! / heads) : headDim,
    sliding_window: window,
    sliding_window_pattern: SLIDING_WINDOW_PATTERN,
    max_position_embeddings: context,
    rope_theta: ropeBase,
    rope_local_base_freq: LOCAL_ROPE_BASE,
    rope_scaling: ropeScaling,
    final_logit_softcapping: softcap ?? null,
    hidden_activation: "gelu_pytorch_tanh",
    tie_word_embeddings: gguf.get("output.weight") === undefined,
    bos_token_id: tokenId("bos_token_id"),
    eos_token_id: eos !== undefined && eot !== undefined && eot !== eos ? [eos, eot] : eos,
    pad_token_id: tokenId("padding_token_id"),
  };
  return parseGemma3Config(json, gguf.path);
}

/** A Gemma 3 GGUF seen as a WeightSource under Hugging Face names. */
export interface Gemma3GgufSource extends RenamedGgufSource {
  /** See GEMMA3_GGUF_FACTS: norm weights are stored as `1 + w`. */
  readonly normAlreadyOffset: true;
}

/**
 * The GGUF's tensors under the HF names of `gemma3TextWeights(config)` (shapes already outermost first), so
 * `loadWeights(backend, ggufWeightSource(gguf, config), rows)` works as for safetensors. The GGUF stays
 * owned by the caller (close it after loading).
 *
 * @example
 * ```ts
 * using gguf = openGguf("gemma-3-270m-q4_k_m.gguf");
 * const config = gemma3ConfigFromGguf(gguf);
 * const weights = loadWeights(backend, ggufWeightSource(gguf, config), gemma3TextWeights(config));
 * ```
 */
export function ggufWeightSource(gguf: GgufFile, config: Gemma3Model): Gemma3GgufSource {
  const layers = config.text.numHiddenLayers;
  return {
    ...renamedGgufSource(gguf, (name) => gemma3HfName(name, layers)),
    normAlreadyOffset: GEMMA3_GGUF_FACTS.normAlreadyOffset,
  };
}
