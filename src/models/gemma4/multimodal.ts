/**
 * Gemma 4 with images and video (Gemma4ForConditionalGeneration): the text model plus the vision encoder. A
 * prefill with media encodes every image and video frame in one batched tower pass (or takes them from the
 * vision-encoder cache), looks the placeholder ids up as the pad id (token embedding and per-layer inputs alike),
 * splices the soft tokens over the image- and video-token embeddings in order (masked_scatter), and — for
 * use_bidirectional_attention "vision" checkpoints — lets each media run attend bidirectionally on sliding layers,
 * as transformers' Gemma4Model.forward does. The decode step is the text model's, unchanged.
 * ref: transformers models/gemma4/modeling_gemma4.py — Gemma4Model.forward, get_placeholder_mask,
 * get_block_sequence_ids_for_mask, create_masks_for_vision_model.
 * @module
 */
import { join } from "node:path";
import { ContextLengthError, ShapeError } from "../../errors.ts";
import { openSafetensorsDir } from "../../formats/safetensors.ts";
import type { Backend } from "../../runtime/backend.ts";
import type { Tensor } from "../../runtime/tensor.ts";
import type { KvCache } from "../../runtime/kv_cache.ts";
import type { Workspace } from "../../runtime/workspace.ts";
import type { BatchRow, PrefillPart } from "../common/step.ts";
import { buildTextAndVision, MultimodalModel } from "../common/multimodal.ts";
import { VisionCache, visionKey } from "../../runtime/vision_cache.ts";
import { ImageInputError } from "../../errors.ts";
import { readConfig } from "../common/config.ts";
import { parseGemma4Config } from "./config.ts";
import { buildGemma4, type LoadGemma4Options } from "./load.ts";
import type { Gemma4TextModel } from "./model.ts";
import { Gemma4VisionModel, gemma4VisionTable, type VisionBatch } from "./vision.ts";
import { parseGemma4VisionConfig } from "./vision_config.ts";
import { gemma4TextTable } from "./weights.ts";

/** A prompt's media, as the Gemma 4 processor makes them: images in prompt order, video frames in prompt order. */
export interface Gemma4PromptMedia {
  images?: VisionBatch;
  /** Every video's frames, flattened (transformers' pixel_values_videos.flatten(0, 1)). */
  videoFrames?: VisionBatch;
}

/** Where each media run sits: runs of image or video tokens, numbered from 1 (0 = text). */
export function mediaSpans(ids: ArrayLike<number>, mediaIds: readonly number[]): Int32Array {
  const spanIds = new Int32Array(ids.length);
  let group = 0;
  for (let i = 0; i < ids.length; i++) {
    if (!mediaIds.includes(ids[i])) continue;
    if (i === 0 || !mediaIds.includes(ids[i - 1])) group++;
    spanIds[i] = group;
  }
  return spanIds;
}

export interface Gemma4MultimodalOptions extends LoadGemma4Options {
  /** Byte bound of the vision-encoder cache (default 256 MiB; 0 turns caching off). */
  visionCacheBytes?: number;
}

export class Gemma4Multimodal extends MultimodalModel<Gemma4TextModel, Gemma4VisionModel> {
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

  /**
   * Soft tokens of the images, then the video frames, per item (each f32 [n_i, textHidden]), through the cache:
   * the misses of both kinds are encoded together in one tower pass. `commit` once the prefill is done.
   */
  encodeMedia(
    media: Gemma4PromptMedia,
    skip: { images: number; frames: number } = { images: 0, frames: 0 },
  ): { images: Tensor[]; frames: Tensor[]; commit(): void } {
    // `skip`: leading items already in the KV cache (a prefill from an offset), not encoded.
    const items = [
      ...Array.from({ length: (media.images?.count ?? 0) - skip.images }, (_, n) => ({
        b: media.images!,
        n: n + skip.images,
      })),
      ...Array.from({ length: (media.videoFrames?.count ?? 0) - skip.frames }, (_, n) => ({
        b: media.videoFrames!,
        n: n + skip.frames,
      })),
    ];
    const pp = 3 * this.visionConfig.patchSize ** 2;
    const slice = (b: VisionBatch, n: number) => ({
      pixels: b.pixelValues.subarray(n * b.maxPatches * pp, (n + 1) * b.maxPatches * pp),
      positions: Int32Array.from({ length: b.maxPatches * 2 }, (_, j) => b.positionIds[n * b.maxPatches * 2 + j]),
    });
    const keys = items.map(({ b, n }) => {
      const s = slice(b, n);
      return visionKey(s.pixels, s.positions);
    });
    const found = this.visionCache.lookup(keys, (missing) => {
      // The misses of every size, padded to the largest patch budget among them, in one pass.
      const M = Math.max(...missing.map((i) => items[i].b.maxPatches));
      const pixelValues = new Float32Array(missing.length * M * pp);
      const positionIds = new Int32Array(missing.length * M * 2).fill(-1);
      missing.forEach((i, r) => {
        const s = slice(items[i].b, items[i].n);
        pixelValues.set(s.pixels, r * M * pp);
        positionIds.set(s.positions, r * M * 2);
      });
      return this.vision.encode({ pixelValues, positionIds, count: missing.length, maxPatches: M });
    });
    const nImages = (media.images?.count ?? 0) - skip.images;
    return { images: found.tensors.slice(0, nImages), frames: found.tensors.slice(nImages), commit: found.commit };
  }

  /**
   * Prefill of a prompt whose image-token runs hold the images and video-token runs the video frames, in order.
   * Without media it is the text model's prefill; placeholders without media (or the reverse) are refused.
   */
  prefill(ids: ArrayLike<number>, media?: Gemma4PromptMedia, logitsRows: "last" | "all" = "last", start = 0): Tensor {
    const v = this.visionConfig;
    if (ids.length > this.maxContext) throw new ContextLengthError("prefill", ids.length, this.maxContext);
    const mediaIds = [v.imageTokenId, v.videoTokenId, ...(v.audioTokenId === null ? [] : [v.audioTokenId])];
    const imagePositions: number[] = [], videoPositions: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === v.imageTokenId) imagePositions.push(i);
      else if (ids[i] === v.videoTokenId) videoPositions.push(i);
      else if (ids[i] === v.audioTokenId) {
        throw new ImageInputError("prefill", `the prompt has an audio token at ${i}; audio input is not supported`);
      }
    }
    // Gemma4Model.forward: placeholder ids → pad before embed_tokens and the per-layer inputs' token branch.
    const pad = this.config.text.padTokenId;
    const lookup = Array.from(ids, (id) => mediaIds.includes(id) ? pad : id);
    const hasMedia = (media?.images?.count ?? 0) + (media?.videoFrames?.count ?? 0) > 0;
    if (!hasMedia) {
      this.#checkCount("image", imagePositions.length, 0);
      this.#checkCount("video", videoPositions.length, 0);
      return this.text.prefill(lookup, logitsRows, undefined, start);
    }
    // Counts are checked before the tower runs: a mismatch costs nothing.
    const counts = (b?: VisionBatch) => (b ? this.vision.softTokenCounts(b).reduce((s, n) => s + n, 0) : 0);
    this.#checkCount("image", imagePositions.length, counts(media!.images));
    this.#checkCount("video", videoPositions.length, counts(media!.videoFrames));
    // From an offset, the items before it are in the KV cache already: only the later ones are encoded.
    const skipped = (b: VisionBatch | undefined, positions: number[]) => {
      const sizes = b ? this.vision.softTokenCounts(b) : [];
      let n = 0, at = 0;
      while (n < sizes.length && positions[at] < start) at += sizes[n++];
      if (at > 0 && positions[at - 1] >= start) {
        throw new ShapeError("prefill", `start=${start} falls inside the soft tokens of a media item`);
      }
      return { n, at };
    };
    const si = skipped(media!.images, imagePositions), sv = skipped(media!.videoFrames, videoPositions);
    const encoded = this.encodeMedia(media!, { images: si.n, frames: sv.n });
    try {
      const parts = [
        ...this.#parts(encoded.images, imagePositions.slice(si.at)),
        ...this.#parts(encoded.frames, videoPositions.slice(sv.at)),
      ];
      const spanIds = v.bidirectionalVision ? mediaSpans(ids, mediaIds) : undefined;
      return this.text.prefill(lookup, logitsRows, { parts, spanIds }, start);
    } finally {
      encoded.commit();
    }
  }

  /** Consecutive items fill consecutive placeholder positions. */
  #parts(tensors: Tensor[], positions: number[]): { embeds: Tensor; positions: number[] }[] {
    let at = 0;
    return tensors.map((t) => {
      const n = t.shape[0];
      const part = { embeds: t, positions: positions.slice(at, at + n) };
      at += n;
      return part;
    });
  }

  #checkCount(kind: string, tokens: number, features: number): void {
    if (tokens === features) return;
    throw new ImageInputError(
      "prefill",
      `the prompt has ${tokens} ${kind} tokens but the ${kind} input gives ${features} soft tokens`,
      { hint: `each ${kind} placeholder must be expanded by the processor to its number of soft tokens` },
    );
  }
}

/**
 * Loads a Gemma4ForConditionalGeneration checkpoint directory with its vision tower: text and vision weight
 * tables checked together (one error lists every problem), then both built on `backend`. The audio tower, if
 * any, is left unloaded.
 */
export function loadGemma4Multimodal(
  backend: Backend,
  dir: string,
  options: Gemma4MultimodalOptions = {},
): Gemma4Multimodal {
  const json = readConfig(dir);
  const source = join(dir, "config.json");
  const config = parseGemma4Config(json, source);
  const visionConfig = parseGemma4VisionConfig(json, source);
  using ckpt = openSafetensorsDir(dir);
  const { text, vision } = buildTextAndVision(
    backend,
    ckpt,
    { text: gemma4TextTable(config), vision: gemma4VisionTable(visionConfig, config.text.hiddenSize) },
    options,
    () => buildGemma4(backend, config, ckpt, options),
    (w) => new Gemma4VisionModel(backend, visionConfig, w, config.text.hiddenSize),
  );
  return new Gemma4Multimodal(text, vision, new VisionCache(options.visionCacheBytes));
}
