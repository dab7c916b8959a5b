/**
 * vLLM's OpenAI extension `{type: "video_url", video_url: {url}}` → video bytes for the library. As with images:
 * data URLs are decoded here; http(s) URLs are fetched only when the operator allows it, under a time limit and the
 * video byte limit. Bytes that are no container ffmpeg knows by its magic number are refused before they reach a
 * queue. The library then writes the bytes to a private temporary file for ffmpeg and removes it whatever happens
 * (src/vision/video.ts), so nothing the client sent outlives its request.
 * @module
 */
import { invalid } from "./errors.ts";
import { mediaUrlBytes } from "./images.ts";
import type { Limits, RemoteImages } from "./limits.ts";

/** The container of a video by its first bytes, or undefined when it is none we take. */
export function sniffVideo(b: Uint8Array): string | undefined {
  const ascii = (at: number, s: string) => [...s].every((c, i) => b[at + i] === c.charCodeAt(0));
  if (ascii(4, "ftyp")) return "mp4"; // MP4, MOV, 3GP, M4V (ISO base media)
  if (b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3) return "matroska"; // MKV, WebM
  if (ascii(0, "RIFF") && ascii(8, "AVI ")) return "avi";
  if (ascii(0, "OggS")) return "ogg";
  if (b[0] === 0x47 && b.length > 188 && b[188] === 0x47) return "mpegts";
  if (b[0] === 0 && b[1] === 0 && b[2] === 1 && b[3] === 0xba) return "mpeg-ps";
  return undefined;
}

/** The bytes of one video_url, checked to be a video container and within the limits. */
export async function videoBytes(
  url: string,
  param: string,
  limits: Limits,
  remote: RemoteImages,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const bytes = await mediaUrlBytes(url, param, { noun: "video", maxBytes: limits.maxVideoBytes }, remote, signal);
  if (!sniffVideo(bytes)) {
    throw invalid(
      param,
      `${param}: the bytes are not a video container (MP4/MOV, WebM/MKV, AVI, Ogg, MPEG)`,
      "invalid_video",
    );
  }
  return bytes;
}

/**
 * vLLM's `media_io_kwargs: {video: {num_frames | fps}}`: how many frames to sample from each video of the request,
 * bounded by `limits.maxVideoFrames`. Undefined: the checkpoint's video processor decides.
 */
export function videoSamplingOf(
  body: Record<string, unknown>,
  limits: Limits,
): { doSampleFrames: true; numFrames: number | null; fps: number | null } | undefined {
  const io = body.media_io_kwargs;
  if (io === undefined || io === null) return undefined;
  const param = "media_io_kwargs.video";
  const video = typeof io === "object" && !Array.isArray(io) ? (io as Record<string, unknown>).video : io;
  if (video === undefined || video === null) return undefined;
  if (typeof video !== "object" || Array.isArray(video)) throw invalid(param, `${param} must be an object`);
  const { num_frames: n, fps } = video as Record<string, unknown>;
  if (n !== undefined && n !== null) {
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > limits.maxVideoFrames) {
      throw invalid(`${param}.num_frames`, `${param}.num_frames must be an integer in [1, ${limits.maxVideoFrames}]`);
    }
    if (fps !== undefined && fps !== null) throw invalid(param, `${param}: give num_frames or fps, not both`);
    return { doSampleFrames: true, numFrames: n, fps: null };
  }
  if (fps !== undefined && fps !== null) {
    if (typeof fps !== "number" || !(fps > 0) || fps > 60) {
      throw invalid(`${param}.fps`, `${param}.fps must be a number in (0, 60]`);
    }
    return { doSampleFrames: true, numFrames: null, fps };
  }
  return undefined;
}
