/**
 * Gemma 3's vision projector file (llama.cpp `mmproj-*.gguf`, `clip.projector_type` "gemma3") beside a Gemma 3
 * text GGUF: its `clip.vision.*` metadata mapped onto the Gemma 3 vision config, its tensors onto the vision weight
 * table (src/models/gemma3/vision.ts) under their Hugging Face names, and the pair loaded as Gemma3Multimodal.
 *
 * What the converter does to each tensor (convert_hf_to_gguf.py @0c1e57098, conversion/gemma.py
 * `Gemma3VisionModel` and the generic `MmprojModel.modify_tensors`; names from gguf-py tensor_mapping.py):
 * - every tensor keeps its Hugging Face layout (GGUF lists dimensions innermost first; gemmakit's reader turns
 *   them outermost first): v.patch_embd.weight is the Conv2d weight [D, C, p, p] unchanged, v.position_embd.weight
 *   the embedding table [patches, D], attention projections are not permuted (the q/k permutation of LLaMA's
 *   text converter is not applied to vision towers);
 * - `multi_modal_projector.mm_input_projection_weight` is renamed `mm_input_projection.weight` (filter_tensors)
 *   and written as mm.input_projection.weight, still the plain-matmul [D, textHidden], and always F16
 *   (`tensor_force_quant`, llama.cpp issue 13025), whatever the outtype;
 * - `mm_soft_emb_norm.weight` is stored as 1 + w ("Correcting norm value"): Gemma3RMSNorm's (1 + w) is already
 *   applied, so the projector's norm scales by the weight as stored. SigLIP's LayerNorms are stored unchanged;
 * - `clip.vision.projector.scale_factor` (llama.cpp's n_merge: patches per side / soft tokens per side) is
 *   written only when it is not the default 4 (tools/mtmd/clip.cpp reads 4 otherwise);
 * - the image token ids are not in the mmproj file: they are the text GGUF's vocabulary entries
 *   `<start_of_image>`, `<end_of_image>`, `<image_soft_token>` (transformers' defaults 255999, 256000, 262144 when
 *   the vocabulary has none of that text).
 * @module
 */
import type { GgufFile } from "../../formats/gguf.ts";
import { readMatchingProjector } from "../common/mmproj.ts";
import { type ClipTensorFix, clipWeightSource, ggufTokenId } from "../../formats/gguf_clip.ts";
import type { SourceTensor, WeightSource } from "../../formats/weight_source.ts";
import type { Backend } from "../../runtime/backend.ts";
import { VisionCache } from "../../runtime/vision_cache.ts";
import { buildTextAndVision } from "../common/multimodal.ts";
import type { Gemma3Model } from "./config.ts";
import { gemma3ConfigFromGguf, ggufWeightSource } from "./gguf.ts";
import { buildGemma3, type LoadGemma3Options } from "./load.ts";
import { Gemma3Multimodal } from "./multimodal.ts";
import { Gemma3VisionModel, gemma3VisionTable } from "./vision.ts";
import { type Gemma3VisionConfig, parseGemma3VisionConfig } from "./vision_config.ts";
import { gemma3TextTable } from "./weights.ts";
import type { ModelParts } from "../../generate/model.ts";
import { encodeImagePrompt } from "./media.ts";
import type { PromptImages } from "./multimodal.ts";
import { Gemma3ImageProcessorConfig } from "./processor.ts";

/** The projector type llama.cpp writes for Gemma 3 (`PROJECTOR_TYPE_GEMMA3`). */
export const GEMMA3_PROJECTOR_TYPE = "gemma3";
/** clip.cpp's default n_merge for gemma3: 64×64 patches pooled to 16×16 soft tokens. */
const DEFAULT_SCALE_FACTOR = 4;

/** The tower's per-layer tensors: GGUF suffix under `v.blk.{i}.` → HF suffix under `encoder.layers.{i}.`. */
const LAYER_TENSORS: Readonly<Record<string, string>> = {
  "ln1": "layer_norm1",
  "ln2": "layer_norm2",
  "attn_q": "self_attn.q_proj",
  "attn_k": "self_attn.k_proj",
  "attn_v": "self_attn.v_proj",
  "attn_out": "self_attn.out_proj",
  "ffn_up": "mlp.fc1",
  "ffn_down": "mlp.fc2",
};

/** The tensors outside the layers: GGUF name → HF name. */
const TOP_TENSORS: Readonly<Record<string, string>> = {
  "v.patch_embd.weight": "vision_tower.vision_model.embeddings.patch_embedding.weight",
  "v.patch_embd.bias": "vision_tower.vision_model.embeddings.patch_embedding.bias",
  "v.position_embd.weight": "vision_tower.vision_model.embeddings.position_embedding.weight",
  "v.post_ln.weight": "vision_tower.vision_model.post_layernorm.weight",
  "v.post_ln.bias": "vision_tower.vision_model.post_layernorm.bias",
  "mm.soft_emb_norm.weight": "multi_modal_projector.mm_soft_emb_norm.weight",
  "mm.input_projection.weight": "multi_modal_projector.mm_input_projection_weight",
};

/**
 * The HF name (one of the vision table's aliases) of a tensor of a Gemma 3 mmproj file, or undefined for a
 * tensor the table does not read.
 *
 * @example
 * ```ts
 * gemma3MmprojHfName("v.blk.3.ffn_up.weight"); // "vision_tower.vision_model.encoder.layers.3.mlp.fc1.weight"
 * ```
 */
export function gemma3MmprojHfName(ggufName: string): string | undefined {
  if (Object.hasOwn(TOP_TENSORS, ggufName)) return TOP_TENSORS[ggufName];
  const m = /^v\.blk\.(0|[1-9]\d*)\.([a-z_0-9]+)\.(weight|bias)$/.exec(ggufName);
  if (!m || !Object.hasOwn(LAYER_TENSORS, m[2])) return undefined;
  return `vision_tower.vision_model.encoder.layers.${m[1]}.${LAYER_TENSORS[m[2]]}.${m[3]}`;
}

/**
 * The Gemma 3 vision config of an mmproj file that goes with the text model `text` (a Gemma 3 text GGUF, whose
 * vocabulary gives the image token ids). Throws MmprojError (kind "mismatch") naming both files when the file is
 * another projector type or projects to another width than the text model's; FormatError / ConfigError when
 * its metadata is missing or not a tower gemmakit runs.
 */
export function gemma3VisionConfigFromMmproj(
  mmproj: GgufFile,
  text: GgufFile,
  textConfig: Gemma3Model,
): Gemma3MmprojVision {
  const h = readMatchingProjector(mmproj, {
    path: text.path,
    family: "Gemma 3",
    type: GEMMA3_PROJECTOR_TYPE,
    hiddenSize: textConfig.text.hiddenSize,
    widthKey: "gemma3.embedding_length",
  });
  const perSide = Math.floor(h.imageSize / h.patchSize / (h.scaleFactor ?? DEFAULT_SCALE_FACTOR));
  const json = {
    model_type: "gemma3",
    mm_tokens_per_image: perSide * perSide,
    boi_token_index: ggufTokenId(text, "<start_of_image>") ?? 255999,
    eoi_token_index: ggufTokenId(text, "<end_of_image>") ?? 256000,
    image_token_index: ggufTokenId(text, "<image_soft_token>") ?? 262144,
    vision_config: {
      hidden_size: h.hiddenSize,
      intermediate_size: h.intermediateSize,
      num_hidden_layers: h.numHiddenLayers,
      num_attention_heads: h.numAttentionHeads,
      num_channels: 3,
      image_size: h.imageSize,
      patch_size: h.patchSize,
      layer_norm_eps: h.layerNormEps ?? 1e-6,
      // clip.use_gelu: SigLIP's gelu_pytorch_tanh (the only activation the tower runs).
      hidden_act: "gelu_pytorch_tanh",
    },
  };
  return { config: parseGemma3VisionConfig(json, mmproj.path), imageMean: h.imageMean, imageStd: h.imageStd };
}

/**
 * The mmproj file's tensors under the vision table's HF names. A float linear (or patch-embedding) weight stored in
 * another dtype than its bias (the converter writes matrices at the outtype, f16 say, and every 1-D tensor as F32;
 * older converters also the patch embedding) is widened to f32 on load, exactly: `linear` takes a float weight's
 * bias in the weight's dtype, and the bias stays as stored. Quantized weights (Q8_0, …) load as stored: `linear`
 * decodes them, with an f32 bias.
 */
export function gemma3MmprojWeightSource(mmproj: GgufFile): WeightSource {
  const fixes: Record<string, ClipTensorFix> = {};
  for (const t of mmproj.tensors) {
    if (!/^v\..+\.weight$/.test(t.name) || t.shape.length < 2) continue; // linears and the patch embedding
    const bias = mmproj.get(t.name.replace(/weight$/, "bias"));
    if (bias !== undefined && bias.dtype !== t.dtype && (t.dtype === "f16" || t.dtype === "bf16")) {
      fixes[t.name] = { shape: t.shape, apply: (v) => v };
    }
  }
  return clipWeightSource(mmproj, gemma3MmprojHfName, fixes);
}

/** Two weight sources listed as one (names must not clash), so one check covers a text GGUF and its mmproj. */
function pairSource(text: WeightSource, vision: WeightSource, path: string): WeightSource {
  const visionNames = new Set(vision.tensors.map((t) => t.name));
  const tensors: SourceTensor[] = [...text.tensors.filter((t) => !visionNames.has(t.name)), ...vision.tensors];
  return {
    path,
    tensors,
    loadTensor: (backend, name, options) => (visionNames.has(name) ? vision : text).loadTensor(backend, name, options),
  };
}

/** The vision config of an mmproj file, and the image normalization it records (`clip.vision.image_mean/std`). */
export interface Gemma3MmprojVision {
  config: Gemma3VisionConfig;
  imageMean: number[] | undefined;
  imageStd: number[] | undefined;
}

/**
 * Loads a Gemma 3 text GGUF and its vision projector (mmproj) GGUF as one multimodal model: both weight
 * tables checked together (one error lists every problem), then the text model (norms stored 1 + w) and the
 * SigLIP tower with the projector (its soft-embedding norm stored 1 + w as well). Both files stay the caller's.
 *
 * @example
 * ```ts
 * using text = openGguf("gemma-3-4b-it-Q4_K_M.gguf"), mmproj = openGguf("mmproj-gemma-3-4b-it-f16.gguf");
 * const { model } = loadGemma3GgufMultimodal(backend, text, mmproj);
 * ```
 */
export function loadGemma3GgufMultimodal(
  backend: Backend,
  text: GgufFile,
  mmproj: GgufFile,
  options: LoadGemma3Options & { visionCacheBytes?: number } = {},
): { model: Gemma3Multimodal; vision: Gemma3MmprojVision } {
  const config: Gemma3Model = { ...gemma3ConfigFromGguf(text), normMode: "scale" };
  const { config: visionConfig, imageMean, imageStd } = gemma3VisionConfigFromMmproj(mmproj, text, config);
  const source = pairSource(ggufWeightSource(text, config), gemma3MmprojWeightSource(mmproj), text.path);
  const built = buildTextAndVision(
    backend,
    source,
    { text: gemma3TextTable(config), vision: gemma3VisionTable(visionConfig, config.text.hiddenSize) },
    options,
    () => buildGemma3(backend, config, source, options),
    (w) => new Gemma3VisionModel(backend, visionConfig, w, config.text.hiddenSize, { softEmbNormOffset: true }),
  );
  return {
    model: new Gemma3Multimodal(built.text, built.vision, new VisionCache(options.visionCacheBytes)),
    vision: { config: visionConfig, imageMean, imageStd },
  };
}

/**
 * The model parts of a Gemma 3 text GGUF with its mmproj file, but the tokenizer and sampling defaults (the
 * family's, from the text GGUF): the multimodal model, its vision-encoder cache, and the image prompt layout —
 * Gemma 3's shipped image processor at the tower's image size, normalized with the file's image_mean / image_std.
 */
export function loadGemma3MmprojParts(
  backend: Backend,
  text: GgufFile,
  mmproj: GgufFile,
  options: LoadGemma3Options & { visionCacheBytes?: number } = {},
): Pick<ModelParts, "lm" | "visionCache" | "media"> {
  const { model: lm, vision } = loadGemma3GgufMultimodal(backend, text, mmproj, options);
  const support = {
    config: vision.config,
    processor: Gemma3ImageProcessorConfig.gemma3Default().with({
      imageSize: vision.config.imageSize,
      ...(vision.imageMean ? { imageMean: vision.imageMean } : {}),
      ...(vision.imageStd ? { imageStd: vision.imageStd } : {}),
    }),
  };
  return {
    lm,
    visionCache: lm.visionCache,
    media: {
      video: false,
      encode: async (tokenizer, messages, chat, opts) => {
        const { ids, images, spans } = await encodeImagePrompt(tokenizer, messages, chat, support, opts);
        return { ids, media: images as PromptImages, spans };
      },
    },
  };
}
