/**
 * Gemma 4's vision side of config.json (`gemma4` model_type): the tower's `vision_config`, the media token ids of
 * the top level, and the text model's mask rule for media (`use_bidirectional_attention`), parsed once.
 * ref: transformers models/gemma4/configuration_gemma4.py (Gemma4VisionConfig defaults, Gemma4Config token ids).
 * @module
 */
import { ConfigReader, type Json } from "../common/config.ts";
import { ConfigError } from "../../errors.ts";

export interface Gemma4VisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numKeyValueHeads: number;
  headDim: number;
  patchSize: number;
  /** Pooling cell side k: k×k patches make one soft token. */
  poolingKernelSize: number;
  /** Rows of each of the two position tables (x and y). */
  positionEmbeddingSize: number;
  rmsNormEps: number;
  /** Axial RoPE θ. */
  ropeTheta: number;
  /** Gemma4ClippableLinear: clamp input and output with the checkpoint's scalar bounds. */
  useClippedLinears: boolean;
  /** (x - std_bias) · std_scale after pooling. */
  standardize: boolean;
  boiTokenId: number;
  eoiTokenId: number;
  imageTokenId: number;
  videoTokenId: number;
  audioTokenId: number | null;
  /** Media soft tokens attend bidirectionally within their run on sliding layers ("vision"; 31B / 26B). */
  bidirectionalVision: boolean;
}

/** Whether a parsed `gemma4` config.json carries a vision tower. */
export function hasGemma4Vision(json: unknown): boolean {
  const top = (json ?? {}) as Json;
  return top.model_type === "gemma4" && typeof top.vision_config === "object" && top.vision_config !== null;
}

/** Parses the vision fields of a `gemma4` config.json; throws ConfigError listing every problem. */
export function parseGemma4VisionConfig(json: unknown, source = "config.json"): Gemma4VisionConfig {
  const top = (json ?? {}) as Json;
  const v = (top.vision_config ?? {}) as Json;
  const r = new ConfigReader(v, "vision_config.");
  const t = new ConfigReader(top, "");
  const hiddenSize = r.int("hidden_size", 768);
  const numAttentionHeads = r.int("num_attention_heads", 12);
  const numKeyValueHeads = r.int("num_key_value_heads", numAttentionHeads);
  const headDim = r.int("head_dim", 64);
  const act = v.hidden_activation ?? "gelu_pytorch_tanh";
  if (act !== "gelu_pytorch_tanh") {
    r.problems.push(`vision_config.hidden_activation "${act}" is not supported (Gemma 4 uses gelu_pytorch_tanh)`);
  }
  if (v.attention_bias === true) r.problems.push("vision_config.attention_bias=true is not supported");
  if (headDim % 4 !== 0 || headDim > 512) {
    r.problems.push(`vision_config.head_dim=${headDim} must be a multiple of 4 (two rotated halves) and <= 512`);
  }
  if (numAttentionHeads % numKeyValueHeads !== 0) {
    r.problems.push(`vision_config.num_attention_heads=${numAttentionHeads} is not a multiple of num_key_value_heads`);
  }
  const rope = (v.rope_parameters ?? {}) as Json;
  if ((rope.rope_type ?? "axial") !== "axial") {
    r.problems.push(`vision_config.rope_parameters.rope_type "${rope.rope_type}" is not supported (axial only)`);
  }
  const theta = rope.rope_theta ?? 100;
  if (typeof theta !== "number" || !(theta > 0)) {
    r.problems.push("vision_config.rope_parameters.rope_theta must be > 0");
  }
  const text = (top.text_config ?? {}) as Json;
  const bidir = text.use_bidirectional_attention ?? null;
  if (bidir !== null && bidir !== "vision" && bidir !== "all") {
    r.problems.push(`text_config.use_bidirectional_attention ${JSON.stringify(bidir)} is not null, "vision" or "all"`);
  }
  const audio = top.audio_token_id;
  const config: Gemma4VisionConfig = {
    hiddenSize,
    intermediateSize: r.int("intermediate_size", 3072),
    numHiddenLayers: r.int("num_hidden_layers", 16),
    numAttentionHeads,
    numKeyValueHeads,
    headDim,
    patchSize: r.int("patch_size", 16),
    poolingKernelSize: r.int("pooling_kernel_size", 3),
    positionEmbeddingSize: r.int("position_embedding_size", 10240),
    rmsNormEps: r.num("rms_norm_eps", 1e-6),
    ropeTheta: typeof theta === "number" ? theta : 100,
    useClippedLinears: r.bool("use_clipped_linears", false),
    standardize: r.bool("standardize", false),
    boiTokenId: t.int("boi_token_id", 255999, 0),
    eoiTokenId: t.int("eoi_token_id", 258882, 0),
    imageTokenId: t.int("image_token_id", 258880, 0),
    videoTokenId: t.int("video_token_id", 258884, 0),
    audioTokenId: typeof audio === "number" ? audio : null,
    bidirectionalVision: bidir === "vision",
  };
  const problems = [...r.problems, ...t.problems];
  if (problems.length > 0) throw new ConfigError(source, problems);
  return config;
}
