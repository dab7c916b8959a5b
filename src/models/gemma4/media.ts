/**
 * Images and video in a Gemma 4 conversation: the image and video parts of the messages are decoded and
 * preprocessed (src/vision: Gemma4ImageProcessor / Gemma4VideoProcessor semantics), the chat template's
 * `<|image|>` / `<|video|>` placeholders are expanded as Gemma4Processor does (each image `<|image>` + soft tokens +
 * `<image|>`; each video frame `"mm:ss <|image>" + <|video|>×n + "<image|>"`, joined by spaces), and the result is
 * the prompt ids plus the patches the model's prefill encodes.
 * @module
 */
import type { Gemma4PromptMedia } from "./multimodal.ts";
import type { VisionBatch } from "./vision.ts";
import type { Gemma4VisionConfig } from "./vision_config.ts";
import { ImageInputError } from "../../errors.ts";
import type { ChatMessage, ChatTemplateOptions } from "../../tokenizer/chat_template.ts";
import type { Tokenizer } from "../../tokenizer/tokenizer.ts";
import {
  expandGemma4Prompt,
  type Gemma4ImageProcessorConfig,
  type Gemma4PixelValues,
  type Gemma4VideoProcessorConfig,
  type Gemma4VideoPrompt,
  preprocessGemma4,
  preprocessGemma4Video,
} from "./processor.ts";
import { decodeOptionsOf, imageSourceBytes, loadImage } from "../../vision/image.ts";
import { runMediaWorker } from "../common/media_worker.ts";
import type { Gemma4MediaRequest } from "./media_worker.ts";
import { loadVideo } from "./video.ts";
import { imageParts, type MediaOptions, videoParts } from "../../generate/media.ts";
import { type MediaSpan, mediaSpansOf } from "../../generate/prefix.ts";
import { visionKey } from "../../runtime/vision_cache.ts";

/** What a Gemma 4 model needs to take images and video: its vision config and the checkpoint's processors. */
export interface Gemma4VisionSupport {
  config: Gemma4VisionConfig;
  image: Gemma4ImageProcessorConfig;
  video: Gemma4VideoProcessorConfig;
}

const WORKER = new URL("./media_worker.ts", import.meta.url);

const batchOf = (p: Gemma4PixelValues): VisionBatch => ({
  pixelValues: p.pixelValues,
  positionIds: p.positionIds,
  count: p.shape[0],
  maxPatches: p.shape[1],
});

/**
 * Renders the conversation, loads and preprocesses its images and videos, and expands the placeholders. Throws
 * ImageInputError when the placeholders and the media disagree, ImageError / VideoError (src/vision) for media
 * that cannot be read.
 */
export async function encodeGemma4MediaPrompt(
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  chat: ChatTemplateOptions,
  vision: Gemma4VisionSupport,
  options: MediaOptions = {},
): Promise<{ ids: number[]; media: Gemma4PromptMedia; spans: MediaSpan[] }> {
  const c = vision.config;
  const token = (id: number, fallback: string) => tokenizer.idToToken(id) ?? fallback;
  const tokens = {
    boiToken: token(c.boiTokenId, "<|image>"),
    imageToken: token(c.imageTokenId, "<|image|>"),
    eoiToken: token(c.eoiTokenId, "<image|>"),
    videoToken: token(c.videoTokenId, "<|video|>"),
  };
  const text = tokenizer.applyChatTemplate(messages, chat);
  const media: Gemma4PromptMedia = {};
  const imageSources = imageParts(messages);
  let imageTokens: number[] = [];
  if (imageSources.length > 0) {
    let p: Gemma4PixelValues;
    if (options.imagesOffThread) {
      // Only reading the bytes stays here (asynchronous I/O); decoding and resizing run in the worker.
      const images: Uint8Array[] = [];
      for (const s of imageSources) images.push(await imageSourceBytes(s, options.imageLoading));
      const request: Gemma4MediaRequest = {
        kind: "images",
        images,
        loading: decodeOptionsOf(options.imageLoading),
        config: vision.image,
      };
      p = await runMediaWorker(WORKER, request, [], "generate");
    } else {
      const rgb = [];
      for (const s of imageSources) rgb.push(await loadImage(s, options.imageLoading));
      p = preprocessGemma4(rgb, vision.image);
    }
    media.images = batchOf(p);
    imageTokens = p.numSoftTokens;
  }
  const videos: Gemma4VideoPrompt[] = [];
  const frames: Gemma4PixelValues[] = [];
  for (const s of videoParts(messages)) {
    const v = await loadVideo(s, { ...options.videoLoading, config: vision.video });
    let p: Gemma4PixelValues;
    if (options.imagesOffThread) {
      // Resizing and patchifying 32 frames costs as much as a large image: the frames move to the worker.
      const request: Gemma4MediaRequest = { kind: "video", frames: v.frames, config: vision.video };
      const buffers = new Set(v.frames.map((f) => f.data.buffer as ArrayBuffer));
      p = await runMediaWorker(WORKER, request, [...buffers], "generate");
    } else {
      p = preprocessGemma4Video(v.frames, vision.video);
    }
    frames.push(p);
    videos.push({ numSoftTokens: p.numSoftTokens[0], timestamps: v.timestamps });
  }
  if (frames.length > 0) {
    // Every video uses the video processor's patch budget, so their frames stack into one batch.
    const pixelValues = new Float32Array(frames.reduce((s, f) => s + f.pixelValues.length, 0));
    const positionIds = new Int32Array(frames.reduce((s, f) => s + f.positionIds.length, 0));
    let a = 0, b = 0;
    for (const f of frames) {
      pixelValues.set(f.pixelValues, a);
      positionIds.set(f.positionIds, b);
      a += f.pixelValues.length;
      b += f.positionIds.length;
    }
    media.videoFrames = {
      pixelValues,
      positionIds,
      count: frames.reduce((s, f) => s + f.shape[0], 0),
      maxPatches: frames[0].shape[1],
    };
  }
  let expanded: string;
  try {
    expanded = expandGemma4Prompt(text, { images: imageTokens, videos }, tokens);
  } catch (e) {
    throw new ImageInputError("generate", (e as Error).message, { cause: e });
  }
  const ids = tokenizer.encode(expanded, { addSpecialTokens: false });
  return { ids, media, spans: gemma4MediaSpans(ids, media, c) };
}

/**
 * Content keys of a prompt's media runs, for prefix reuse: image runs are the images in order, video runs the
 * frames in order (each keyed as the vision-encoder cache keys it). Runs that do not pair up one to one with
 * items are keyed by all of their kind's pixels, so any change still shows.
 */
export function gemma4MediaSpans(ids: number[], media: Gemma4PromptMedia, c: Gemma4VisionConfig): MediaSpan[] {
  const keysOf = (b: VisionBatch | undefined) => {
    if (!b) return [];
    const pp = b.pixelValues.length / b.count / b.maxPatches, per = b.maxPatches;
    return Array.from({ length: b.count }, (_, n) =>
      visionKey(
        b.pixelValues.subarray(n * per * pp, (n + 1) * per * pp),
        Int32Array.from({ length: per * 2 }, (_, j) => b.positionIds[n * per * 2 + j]),
      ));
  };
  const all = (b: VisionBatch | undefined) => (b ? visionKey(b.pixelValues, Int32Array.from(b.positionIds)) : "none");
  const spans = (token: number, b: VisionBatch | undefined) => {
    const keys = keysOf(b);
    const runs = mediaSpansOf(ids, [token], keys, all(b));
    return runs.length === keys.length ? runs : mediaSpansOf(ids, [token], [], all(b));
  };
  return [...spans(c.imageTokenId, media.images), ...spans(c.videoTokenId, media.videoFrames)]
    .sort((a, b) => a.start - b.start);
}
