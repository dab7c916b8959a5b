/**
 * Media parts of chat messages, as generation sees them before a family lays them out: which messages carry
 * images or videos, their sources in prompt order, and the per-call options of loading them.
 * @module
 */
import { ImageInputError } from "../errors.ts";
import type { ChatMessage } from "../tokenizer/chat_template.ts";
import type { ImageSource, LoadImageOptions } from "../vision/image.ts";
import type { VideoLoadOptions, VideoSource } from "../vision/video.ts";

/** Per-call image options. */
export interface ImageOptions {
  /** Pan-and-scan crops for images far from square, where the family's processor has them (default: the
   * checkpoint's preprocessor_config.json). */
  panAndScan?: boolean;
  /** Limits and conversions of image decoding (size, EXIF orientation, alpha background). */
  imageLoading?: LoadImageOptions;
  /**
   * Decode and preprocess the images, and preprocess video frames, in a Worker (default false): a large image or a
   * long video costs seconds there instead of blocking the caller's event loop (a server's other requests, its
   * health checks). Same pixels, same errors.
   */
  imagesOffThread?: boolean;
}

/** Per-call video options. */
export interface VideoOptions {
  /** Decoding limits and frame sampling (numFrames / fps) of videos. */
  videoLoading?: VideoLoadOptions;
}

/** Everything a family's prompt layout may be asked about media. */
export type MediaOptions = ImageOptions & VideoOptions;

function parts(messages: readonly ChatMessage[], type: string): { part: Record<string, unknown>; where: string }[] {
  const out: { part: Record<string, unknown>; where: string }[] = [];
  messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((part, j) => {
      if (part?.type === type) {
        out.push({ part: part as Record<string, unknown>, where: `messages[${i}].content[${j}]` });
      }
    });
  });
  return out;
}

/**
 * The image parts of a conversation, in prompt order: `{type: "image", path | bytes | base64 | url | image}`
 * (the shape chat datasets use; `url` takes file: and data: URLs).
 */
export function imageParts(messages: readonly ChatMessage[]): ImageSource[] {
  return parts(messages, "image").map(({ part: p, where }): ImageSource => {
    if (typeof p.path === "string") return { path: p.path };
    if (p.bytes instanceof Uint8Array || p.bytes instanceof ArrayBuffer) return { bytes: p.bytes };
    if (typeof p.base64 === "string") return { base64: p.base64 };
    if (typeof p.url === "string") return { url: p.url };
    if (typeof p.image === "string" || p.image instanceof Uint8Array) return p.image;
    throw new ImageInputError(
      "generate",
      `${where} is an image part without a source: give path, bytes, base64 or url`,
    );
  });
}

/** The video parts of a conversation, in prompt order: `{type: "video", path | bytes}`. */
export function videoParts(messages: readonly ChatMessage[]): VideoSource[] {
  return parts(messages, "video").map(({ part: p, where }): VideoSource => {
    if (typeof p.path === "string") return { path: p.path };
    if (p.bytes instanceof Uint8Array || p.bytes instanceof ArrayBuffer) return { bytes: p.bytes };
    throw new ImageInputError("generate", `${where} is a video part without a source: give path or bytes`);
  });
}

/** Whether any message carries an image part. */
export function hasImages(messages: readonly ChatMessage[]): boolean {
  return parts(messages, "image").length > 0;
}

/** Whether any message carries a video part. */
export function hasVideos(messages: readonly ChatMessage[]): boolean {
  return parts(messages, "video").length > 0;
}
