/**
 * Gemma 4's vision projector file (llama.cpp `mmproj-*.gguf`, `clip.vision.projector_type` "gemma4v"): its
 * `clip.vision.*` metadata and tensor shapes mapped onto the Gemma 4 vision config, its tensors onto the vision
 * weight table (src/models/gemma4/vision.ts) under their Hugging Face names, and the tower built over them, ready
 * to join a Gemma 4 text model as Gemma4Multimodal.
 *
 * What the converter does to each tensor (convert_hf_to_gguf.py @0c1e57098, conversion/gemma.py
 * `Gemma4VisionAudioModel.modify_tensors`; names from gguf-py tensor_mapping.py and constants.py):
 * - `patch_embedder.input_proj.weight` [D, p·p·3] (each patch's values in (py, px, c) order) is reshaped to
 *   [D, p, p, 3] and permuted to the Conv2d layout [D, 3, p, p] (v.patch_embd.weight): undone here on the host;
 * - the scalar bounds of every Gemma4ClippableLinear (input_min/max, output_min/max) are unsqueezed to [1]:
 *   read back as scalars. `.linear.weight` loses its `.linear`;
 * - `patch_embedder.position_embedding_table` [2, positions, D] keeps its layout (forced F32), as v.position_embd;
 * - no norm is shifted (the tower's RMSNorms hold w as transformers does), no q/k permutation;
 * - `embed_vision.embedding_projection.weight` [textHidden, D] is written as mm.input_projection.weight;
 * - the metadata carries the tower's width, depth, heads, patch size and eps, and a placeholder image size (224);
 *   llama.cpp's clip.cpp hard-codes the rest for gemma4v: RoPE θ 100, pooling kernel 3 (n_merge, unless
 *   clip.vision.projector.scale_factor says otherwise). The head dim is the q/k norms' length, the key/value
 *   heads follow from attn_k's rows, the position table's size from its shape; clipped linears and standardize
 *   are on when their tensors are in the file (clip.cpp reads them as optional tensors);
 * - the media token ids are not in the file: they are the text model's (`<|image>`, `<image|>`, `<|image|>`,
 *   `<|video|>`, `<|audio|>` in a Gemma 4 vocabulary).
 * @module
 */
import type { GgufFile } from "../../formats/gguf.ts";
import { readMatchingProjector } from "../common/mmproj.ts";
import { type ClipTensorFix, clipWeightSource, ggufTokenId } from "../../formats/gguf_clip.ts";
import type { WeightSource } from "../../formats/weight_source.ts";
import type { Backend } from "../../runtime/backend.ts";
import { buildOwning, ModelWeights } from "../common/weight_table.ts";
import type { LoadWeightsOptions } from "../common/weights.ts";
import { Gemma4VisionModel, gemma4VisionTable } from "./vision.ts";
import { type Gemma4VisionConfig, parseGemma4VisionConfig } from "./vision_config.ts";
import type { ModelParts } from "../../generate/model.ts";
import { VisionCache } from "../../runtime/vision_cache.ts";
import { encodeGemma4MediaPrompt, type Gemma4VisionSupport } from "./media.ts";
import type { Gemma4TextModel } from "./model.ts";
import { Gemma4Multimodal } from "./multimodal.ts";
import { Gemma4ImageProcessorConfig, Gemma4VideoProcessorConfig } from "./processor.ts";

/** The projector type llama.cpp writes for Gemma 4's vision tower (`PROJECTOR_TYPE_GEMMA4V`). */
export const GEMMA4_PROJECTOR_TYPE = "gemma4v";
/** clip.cpp for gemma4v: `hparams.rope_theta = 100.0f`. */
const ROPE_THETA = 100;
/** clip.cpp for gemma4v: `hparams.n_merge = 3; // pooling_kernel_size`. */
const DEFAULT_POOLING_KERNEL = 3;

/** A clippable linear's GGUF stem under `v.blk.{i}.` → HF stem under `encoder.layers.{i}.`. */
const CLIPPABLE: Readonly<Record<string, string>> = {
  "attn_q": "self_attn.q_proj",
  "attn_k": "self_attn.k_proj",
  "attn_v": "self_attn.v_proj",
  "attn_out": "self_attn.o_proj",
  "ffn_gate": "mlp.gate_proj",
  "ffn_up": "mlp.up_proj",
  "ffn_down": "mlp.down_proj",
};
/** The layer norms: GGUF stem → HF module. */
const NORMS: Readonly<Record<string, string>> = {
  "ln1": "input_layernorm",
  "attn_post_norm": "post_attention_layernorm",
  "ln2": "pre_feedforward_layernorm",
  "ffn_post_norm": "post_feedforward_layernorm",
  "attn_q_norm": "self_attn.q_norm",
  "attn_k_norm": "self_attn.k_norm",
};
const TOP: Readonly<Record<string, string>> = {
  "v.patch_embd.weight": "vision_tower.patch_embedder.input_proj.weight",
  "v.position_embd.weight": "vision_tower.patch_embedder.position_embedding_table",
  "v.std_bias": "vision_tower.std_bias",
  "v.std_scale": "vision_tower.std_scale",
  "mm.input_projection.weight": "embed_vision.embedding_projection.weight",
};
const BOUNDS = ["input_min", "input_max", "output_min", "output_max"];

/**
 * The HF name (one of the vision table's aliases) of a tensor of a Gemma 4 mmproj file, or undefined for one the
 * table does not read.
 *
 * @example
 * ```ts
 * gemma4MmprojHfName("v.blk.0.attn_q.input_max"); // "vision_tower.encoder.layers.0.self_attn.q_proj.input_max"
 * ```
 */
export function gemma4MmprojHfName(ggufName: string): string | undefined {
  if (Object.hasOwn(TOP, ggufName)) return TOP[ggufName];
  const m = /^v\.blk\.(0|[1-9]\d*)\.([a-z_0-9]+)\.([a-z_]+)$/.exec(ggufName);
  if (!m) return undefined;
  const [, i, stem, leaf] = m;
  const layer = `vision_tower.encoder.layers.${i}.`;
  if (Object.hasOwn(NORMS, stem)) return leaf === "weight" ? `${layer}${NORMS[stem]}.weight` : undefined;
  if (!Object.hasOwn(CLIPPABLE, stem)) return undefined;
  if (leaf === "weight") return `${layer}${CLIPPABLE[stem]}.linear.weight`;
  return BOUNDS.includes(leaf) ? `${layer}${CLIPPABLE[stem]}.${leaf}` : undefined;
}

/** The text model a Gemma 4 mmproj file is to join: what the file needs from it. */
export interface Gemma4MmprojText {
  /** The model file or folder, for messages. */
  path: string;
  /** The text model's width (the projector must write it). */
  hiddenSize: number;
  /** Media token ids (undefined: transformers' Gemma4Config defaults). */
  tokenIds?: { boi?: number; eoi?: number; image?: number; video?: number; audio?: number | null };
  /** text_config.use_bidirectional_attention (null, "vision" or "all"). */
  useBidirectionalAttention?: string | null;
}

/** The media token ids of a Gemma 4 vocabulary in a text GGUF (tokenizer.ggml.tokens). */
export function gemma4GgufMediaTokenIds(text: GgufFile): NonNullable<Gemma4MmprojText["tokenIds"]> {
  return {
    boi: ggufTokenId(text, "<|image>"),
    eoi: ggufTokenId(text, "<image|>"),
    image: ggufTokenId(text, "<|image|>"),
    video: ggufTokenId(text, "<|video|>"),
    audio: ggufTokenId(text, "<|audio|>") ?? null,
  };
}

/**
 * What a Gemma 4 text GGUF tells its projector: the width, the media token ids of its vocabulary, and the mask rule
 * for media, which the GGUF does not store: llama.cpp's (tools/mtmd `mtmd_decode_use_non_causal`) — bidirectional
 * on sliding layers ("vision", as the 26B and 31B configs say) except for E2B and E4B (widths 1536 and 2560), which
 * stay causal.
 */
export function gemma4GgufMmprojText(path: string, text: GgufFile, hiddenSize: number): Gemma4MmprojText {
  return {
    path,
    hiddenSize,
    tokenIds: gemma4GgufMediaTokenIds(text),
    useBidirectionalAttention: hiddenSize === 1536 || hiddenSize === 2560 ? null : "vision",
  };
}

/**
 * The Gemma 4 vision config of an mmproj file for the text model `text`. Throws MmprojError (kind "mismatch")
 * naming both when the file is another projector type or projects to another width; FormatError / ConfigError
 * when its metadata or tensors do not describe a tower gemmakit runs.
 */
export function gemma4VisionConfigFromMmproj(mmproj: GgufFile, text: Gemma4MmprojText): Gemma4VisionConfig {
  const h = readMatchingProjector(mmproj, {
    path: text.path,
    family: "Gemma 4",
    type: GEMMA4_PROJECTOR_TYPE,
    hiddenSize: text.hiddenSize,
  });
  const qNorm = mmproj.get("v.blk.0.attn_q_norm.weight");
  const headDim = qNorm?.shape[0] ?? Math.floor(h.hiddenSize / h.numAttentionHeads);
  const k = mmproj.get("v.blk.0.attn_k.weight");
  const kvHeads = k ? Math.floor(k.shape[0] / headDim) : h.numAttentionHeads;
  const positions = mmproj.get("v.position_embd.weight");
  const ids = text.tokenIds ?? {};
  const defined = (o: Record<string, unknown>) =>
    Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const json = {
    model_type: "gemma4",
    ...defined({
      boi_token_id: ids.boi,
      eoi_token_id: ids.eoi,
      image_token_id: ids.image,
      video_token_id: ids.video,
      audio_token_id: ids.audio,
    }),
    text_config: { use_bidirectional_attention: text.useBidirectionalAttention ?? null },
    vision_config: {
      hidden_size: h.hiddenSize,
      intermediate_size: h.intermediateSize,
      num_hidden_layers: h.numHiddenLayers,
      num_attention_heads: h.numAttentionHeads,
      num_key_value_heads: kvHeads,
      head_dim: headDim,
      patch_size: h.patchSize,
      pooling_kernel_size: h.scaleFactor ?? DEFAULT_POOLING_KERNEL,
      ...(positions ? { position_embedding_size: positions.shape[1] } : {}),
      rms_norm_eps: h.layerNormEps ?? 1e-6,
      rope_parameters: { rope_type: "axial", rope_theta: ROPE_THETA },
      use_clipped_linears: mmproj.tensors.some((t) => t.name.endsWith(".input_max")),
      standardize: mmproj.get("v.std_bias") !== undefined,
    },
  };
  return parseGemma4VisionConfig(json, mmproj.path);
}

/**
 * The mmproj file's tensors under the vision table's HF names: the patch embedding back in (py, px, c) order,
 * the clippable linears' bounds back to scalars.
 */
export function gemma4MmprojWeightSource(mmproj: GgufFile): WeightSource {
  const fixes: Record<string, ClipTensorFix> = {};
  const patch = mmproj.get("v.patch_embd.weight");
  if (patch && patch.shape.length === 4) {
    const [D, C, p, q] = patch.shape;
    fixes[patch.name] = {
      shape: [D, p * q * C],
      // [D, C, p, p] → [D, p, p, C], the inverse of the converter's reshape + permute(0, 3, 1, 2).
      apply(v) {
        const out = new Float32Array(v.length);
        for (let d = 0; d < D; d++) {
          for (let c = 0; c < C; c++) {
            for (let y = 0; y < p; y++) {
              for (let x = 0; x < q; x++) out[((d * p + y) * q + x) * C + c] = v[((d * C + c) * p + y) * q + x];
            }
          }
        }
        return out;
      },
    };
  }
  for (const t of mmproj.tensors) {
    if (BOUNDS.some((b) => t.name.endsWith(`.${b}`)) && t.shape.length === 1 && t.shape[0] === 1) {
      fixes[t.name] = { shape: [], apply: (v) => v };
    }
  }
  return clipWeightSource(mmproj, gemma4MmprojHfName, fixes);
}

/**
 * Loads the Gemma 4 vision tower and embedder of an mmproj file for the text model `text`: config from the file
 * (checked against the text model), every row of the vision table checked, then loaded. The file stays the
 * caller's. Join it to a Gemma 4 text model with `new Gemma4Multimodal(text, vision, cache)`.
 */
export function loadGemma4MmprojVision(
  backend: Backend,
  mmproj: GgufFile,
  text: Gemma4MmprojText,
  options: LoadWeightsOptions = {},
): Gemma4VisionModel {
  const config = gemma4VisionConfigFromMmproj(mmproj, text);
  const weights = ModelWeights.load(
    backend,
    gemma4MmprojWeightSource(mmproj),
    gemma4VisionTable(config, text.hiddenSize),
    options,
  );
  return buildOwning(weights, (w) => new Gemma4VisionModel(backend, config, w, text.hiddenSize));
}

/**
 * The model parts of a Gemma 4 text model with the vision tower of an mmproj file, but the tokenizer, sampling
 * defaults and response parser (the family's): the multimodal model, its vision-encoder cache, and the image and
 * video prompt layout — Gemma 4's shipped image and video processors (transformers' defaults: 280 soft tokens per
 * image, 70 per frame) at the file's patch size and pooling kernel. Takes ownership of `text` (disposed if the tower
 * fails to load). What a Gemma 4 text-GGUF loader calls when an mmproj comes with the model:
 *
 * @example
 * ```ts
 * const parts = loadGemma4MmprojParts(backend, textModel, mmproj, {
 *   path: gguf.path, hiddenSize: config.text.hiddenSize, tokenIds: gemma4GgufMediaTokenIds(gguf),
 * });
 * return { ...familyParts, ...parts };
 * ```
 */
export function loadGemma4MmprojParts(
  backend: Backend,
  text: Gemma4TextModel,
  mmproj: GgufFile,
  info: Gemma4MmprojText,
  options: LoadWeightsOptions & {
    visionCacheBytes?: number;
    /** Processor settings instead of the shipped ones (a checkpoint's processor_config.json, say). */
    processors?: { image?: Gemma4ImageProcessorConfig; video?: Gemma4VideoProcessorConfig };
  } = {},
): Pick<ModelParts, "lm" | "visionCache" | "media"> {
  let vision: Gemma4VisionModel;
  try {
    vision = loadGemma4MmprojVision(backend, mmproj, info, options);
  } catch (e) {
    text.dispose();
    throw e;
  }
  const lm = new Gemma4Multimodal(text, vision, new VisionCache(options.visionCacheBytes));
  const layout = { patchSize: vision.config.patchSize, poolingKernelSize: vision.config.poolingKernelSize };
  const support: Gemma4VisionSupport = {
    config: vision.config,
    image: options.processors?.image ?? Gemma4ImageProcessorConfig.gemma4Default().with(layout),
    video: options.processors?.video ?? Gemma4VideoProcessorConfig.gemma4Default().with(layout),
  };
  return {
    lm,
    visionCache: lm.visionCache,
    media: {
      video: true,
      encode: (tokenizer, messages, chat, opts) => encodeGemma4MediaPrompt(tokenizer, messages, chat, support, opts),
    },
  };
}
