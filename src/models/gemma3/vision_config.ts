/**
 * Gemma 3's vision side of config.json (`gemma3` model_type): the SigLIP tower's `vision_config` and the
 * projector / image-token fields of the top level, parsed once into a typed object.
 * ref: transformers models/siglip/configuration_siglip.py (SiglipVisionConfig defaults) and
 * models/gemma3/configuration_gemma3.py (Gemma3Config: mm_tokens_per_image, boi/eoi/image token indices).
 * @module
 */
import { ConfigError } from "../../errors.ts";

export interface Gemma3VisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  headDim: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  layerNormEps: number;
  /** Patches per side: imageSize / patchSize. */
  patchesPerSide: number;
  /** Soft tokens per image after the projector's pooling. */
  mmTokensPerImage: number;
  /** AvgPool2d kernel (and stride): patchesPerSide / sqrt(mmTokensPerImage). */
  poolKernel: number;
  boiTokenId: number;
  eoiTokenId: number;
  imageTokenId: number;
}

type Json = Record<string, unknown>;

/** Parses the vision fields of a `gemma3` config.json; throws ConfigError listing every problem. */
export function parseGemma3VisionConfig(json: unknown, source = "config.json"): Gemma3VisionConfig {
  const top = (json ?? {}) as Json;
  const problems: string[] = [];
  // Gemma3Config builds a default SiglipVisionConfig when vision_config is absent.
  const v = (top.vision_config ?? {}) as Json;
  const int = (o: Json, key: string, fallback: number, prefix: string): number => {
    let x = o[key] ?? fallback;
    if (Array.isArray(x) && x.length === 2 && x[0] === x[1]) x = x[0]; // image_size / patch_size may be pairs
    if (typeof x !== "number" || !Number.isInteger(x) || x < 1) {
      problems.push(`${prefix}${key} must be a positive integer (or a square pair), got ${JSON.stringify(o[key])}`);
      return 1;
    }
    return x;
  };
  const p = "vision_config.";
  const hiddenSize = int(v, "hidden_size", 768, p);
  const numAttentionHeads = int(v, "num_attention_heads", 12, p);
  const imageSize = int(v, "image_size", 224, p);
  const patchSize = int(v, "patch_size", 16, p);
  const mmTokensPerImage = int(top, "mm_tokens_per_image", 256, "");
  const act = v.hidden_act ?? "gelu_pytorch_tanh";
  if (act !== "gelu_pytorch_tanh") {
    problems.push(`${p}hidden_act "${act}" is not supported (SigLIP uses gelu_pytorch_tanh)`);
  }
  if (v.vision_use_head === true) {
    problems.push(`${p}vision_use_head=true is not supported (Gemma 3 has no pooling head)`);
  }
  if (hiddenSize % numAttentionHeads !== 0) {
    problems.push(`${p}hidden_size=${hiddenSize} is not a multiple of num_attention_heads=${numAttentionHeads}`);
  }
  const headDim = hiddenSize / numAttentionHeads;
  if (headDim > 512) problems.push(`${p}head dim ${headDim} exceeds 512`);
  if (imageSize % patchSize !== 0) {
    problems.push(`${p}image_size=${imageSize} is not a multiple of patch_size=${patchSize}`);
  }
  const patchesPerSide = Math.floor(imageSize / patchSize);
  const tokensPerSide = Math.round(Math.sqrt(mmTokensPerImage));
  if (tokensPerSide * tokensPerSide !== mmTokensPerImage || patchesPerSide % tokensPerSide !== 0) {
    problems.push(
      `mm_tokens_per_image=${mmTokensPerImage} must be a square whose side divides the ${patchesPerSide}x${patchesPerSide} patch grid`,
    );
  }
  const eps = v.layer_norm_eps ?? 1e-6;
  if (typeof eps !== "number" || !(eps >= 0)) problems.push(`${p}layer_norm_eps must be a number >= 0`);
  const config: Gemma3VisionConfig = {
    hiddenSize,
    intermediateSize: int(v, "intermediate_size", 3072, p),
    numHiddenLayers: int(v, "num_hidden_layers", 12, p),
    numAttentionHeads,
    headDim,
    numChannels: int(v, "num_channels", 3, p),
    imageSize,
    patchSize,
    layerNormEps: typeof eps === "number" ? eps : 1e-6,
    patchesPerSide,
    mmTokensPerImage,
    poolKernel: Math.max(1, Math.floor(patchesPerSide / Math.max(1, tokensPerSide))),
    boiTokenId: int(top, "boi_token_index", 255999, ""),
    eoiTokenId: int(top, "eoi_token_index", 256000, ""),
    imageTokenId: int(top, "image_token_index", 262144, ""),
  };
  if (problems.length > 0) throw new ConfigError(source, problems);
  return config;
}
