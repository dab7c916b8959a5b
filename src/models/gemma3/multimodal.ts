/**
 * Gemma 3 with images (Gemma3ForConditionalGeneration): the text model plus the vision encoder. A prefill
 * with images encodes them, splices the soft tokens over the image-token embeddings (masked_scatter) and
 * makes each image's run of soft tokens attend bidirectionally (token_type_ids → image groups), as
 * transformers' Gemma3Model.forward does on prefill. The decode step is the text model's, unchanged.
 * @module
 */
import { join } from "node:path";
import { ContextLengthError, ImageInputError, ShapeError } from "../../errors.ts";
import { openSafetensorsDir } from "../../formats/safetensors.ts";
import type { Backend } from "../../runtime/backend.ts";
import { Tensor } from "../../runtime/tensor.ts";
import type { KvCache } from "../../runtime/kv_cache.ts";
import type { Workspace } from "../../runtime/workspace.ts";
import type { BatchRow, PrefillPart } from "../common/step.ts";
import { copyRows } from "../../ops/copy.ts";
import { buildTextAndVision, MultimodalModel } from "../common/multimodal.ts";
import { VisionCache, visionKey } from "../../runtime/vision_cache.ts";
import { parseGemma3Config } from "./config.ts";
import { buildGemma3, type LoadGemma3Options } from "./load.ts";
import { readConfig } from "../common/config.ts";
import type { Gemma3TextModel } from "./model.ts";
import { Gemma3VisionModel, gemma3VisionTable } from "./vision.ts";
import { parseGemma3VisionConfig } from "./vision_config.ts";
import { gemma3TextTable } from "./weights.ts";

/** Pixel values of a prompt's images, in prompt order (crops follow their image), as the processor makes them. */
export interface PromptImages {
  /** f32 [count, channels, imageSize, imageSize]. */
  pixelValues: Float32Array;
  count: number;
}

/**
 * Where each image's soft tokens sit: transformers' get_block_sequence_ids_for_mask — every maximal run of
 * `imageTokenId` is one image group. Span ids are the group number + 1 (0 = text, which the kernel reads as
 * "no span").
 */
export function imageSpans(ids: ArrayLike<number>, imageTokenId: number): { positions: number[]; spanIds: Int32Array } {
  const positions: number[] = [];
  const spanIds = new Int32Array(ids.length);
  let group = 0;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] !== imageTokenId) continue;
    if (i === 0 || ids[i - 1] !== imageTokenId) group++;
    spanIds[i] = group;
    positions.push(i);
  }
  return { positions, spanIds };
}

export class Gemma3Multimodal extends MultimodalModel<Gemma3TextModel, Gemma3VisionModel> {
  /** A batch slot's KV cache (the text model's geometry). */
  createCache(): KvCache {
    return this.text.createCache();
  }

  /** Runs `f` (a prefill, media included) with `cache` as the text model's cache. */
  withCache<T>(cache: KvCache, f: () => T): T {
    return this.text.withCache(cache, f);
  }

  /** The batched decode step is the text model's: media only enter through prefill. */
  decodeStepBatch(tokens: Tensor, positions: Tensor, rows: readonly BatchRow[], ws: Workspace, logits: Tensor): Tensor {
    return this.text.decodeStepBatch(tokens, positions, rows, ws, logits);
  }

  /** Several text-only prompts in one forward (the text model's): a prompt with media goes in alone. */
  prefillBatch(parts: readonly PrefillPart[]): Tensor {
    return this.text.prefillBatch(parts);
  }

  /** Image features f32 [count · mmTokensPerImage, textHidden] (the caller disposes them). */
  encodeImages(images: PromptImages): Tensor {
    return this.vision.encode(images.pixelValues, images.count);
  }

  /**
   * Prefill of a prompt whose image placeholders (`image_token_index` runs of mmTokensPerImage) hold the
   * images in order. Without images it is the text model's prefill (a prompt with placeholders but no
   * images is refused, as transformers refuses mismatched counts).
   */
  prefill(ids: ArrayLike<number>, images?: PromptImages, logitsRows: "last" | "all" = "last", start = 0): Tensor {
    const v = this.visionConfig, T = v.mmTokensPerImage;
    if (ids.length > this.maxContext) throw new ContextLengthError("prefill", ids.length, this.maxContext);
    const { positions, spanIds } = imageSpans(ids, v.imageTokenId);
    const count = images?.count ?? 0;
    if (positions.length !== count * T) {
      throw new ImageInputError(
        "prefill",
        `the prompt has ${positions.length} image tokens but ${count} image(s) give ${count * T} features ` +
          `(${T} per image)`,
        { hint: "each image needs exactly one <start_of_image> placeholder, expanded by the processor" },
      );
    }
    // Gemma3Model.forward looks up id 0 for image tokens outside the vocabulary.
    const lookup = v.imageTokenId >= this.vocabSize ? Array.from(ids, (id) => id === v.imageTokenId ? 0 : id) : ids;
    if (!images) return this.text.prefill(lookup, logitsRows, undefined, start);
    // From an offset, the images before it are in the KV cache already: only the later ones are encoded.
    let first = 0;
    while (first < count && positions[first * T] < start) first++;
    if (first > 0 && positions[first * T - 1] >= start) {
      throw new ShapeError("prefill", `start=${start} falls inside image ${first - 1}'s soft tokens`);
    }
    // Per image through the vision-encoder cache, then gathered into one [count · T, hidden] block.
    const plane = images.pixelValues.length / count;
    const pixels = (n: number) => images.pixelValues.subarray(n * plane, (n + 1) * plane);
    const keys = Array.from({ length: count - first }, (_, n) => visionKey(pixels(first + n)));
    const found = this.visionCache.lookup(keys, (missing) => {
      const out: Tensor[] = [];
      try {
        for (const n of missing) out.push(this.vision.encode(pixels(first + n), 1));
        return out;
      } catch (e) {
        for (const t of out) t.dispose();
        throw e;
      }
    });
    try {
      if (keys.length === 0) return this.text.prefill(lookup, logitsRows, undefined, start);
      using features = Tensor.empty(this.backend, [keys.length * T, this.text.config.text.hiddenSize]);
      found.tensors.forEach((t, n) => copyRows(t, features, n * T));
      const inject = { embeds: features, positions: positions.slice(first * T), spanIds };
      return this.text.prefill(lookup, logitsRows, inject, start);
    } finally {
      found.commit();
    }
  }
}

/** Whether a checkpoint directory's config describes Gemma 3 with a vision tower (model_type "gemma3"). */
export function isGemma3Multimodal(config: unknown): boolean {
  return typeof config === "object" && config !== null && (config as Record<string, unknown>).model_type === "gemma3";
}

/**
 * Loads a Gemma3ForConditionalGeneration checkpoint directory: text and vision weight tables checked together
 * (one error lists every problem), then the text model and the vision encoder built on `backend`.
 */
export function loadGemma3Multimodal(
  backend: Backend,
  dir: string,
  options: LoadGemma3Options & { visionCacheBytes?: number } = {},
): Gemma3Multimodal {
  const json = readConfig(dir);
  const source = join(dir, "config.json");
  const config = parseGemma3Config(json, source);
  const visionConfig = parseGemma3VisionConfig(json, source);
  using ckpt = openSafetensorsDir(dir);
  const { text, vision } = buildTextAndVision(
    backend,
    ckpt,
    { text: gemma3TextTable(config), vision: gemma3VisionTable(visionConfig, config.text.hiddenSize) },
    options,
    () => buildGemma3(backend, config, ckpt, options),
    (w) => new Gemma3VisionModel(backend, visionConfig, w, config.text.hiddenSize),
  );
  return new Gemma3Multimodal(text, vision, new VisionCache(options.visionCacheBytes));
}
