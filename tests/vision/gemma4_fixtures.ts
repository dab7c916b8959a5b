/** Readers for tests/fixtures/gemma4-media (written by tests/fixtures/make_gemma4_media_fixtures.py). */
import { gunzipSync } from "fflate";
import { fileURLToPath } from "node:url";
import { loadImage } from "../../src/vision/image.ts";
import type { RgbImage } from "../../src/vision/image.ts";
import { pilRgb } from "./fixtures.ts";

export const MEDIA_DIR = fileURLToPath(new URL("../fixtures/gemma4-media/", import.meta.url));

export interface ImageCase {
  case: string;
  image: string;
  source: string;
  width: number;
  height: number;
  maxSoftTokens: number;
  shape: number[];
  numValidPatches: number;
  patchGrid: [number, number];
  resized: [number, number];
  numSoftTokens: number[];
  pixelSha256: string;
  positionSha256: string;
  validU8: string | null;
}

export interface SamplingCase {
  init: Record<string, unknown>;
  kwargs: Record<string, unknown>;
  frameIndices: number[];
  timestamps: number[];
  shape: number[];
  numSoftTokens: number[];
  pixelSha256: string;
  positionSha256: string;
  frame0U8?: string;
  numValidPatches?: number;
}

export interface MediaExpected {
  images: ImageCase[];
  imageBatch: {
    images: string[];
    maxSoftTokens: number;
    text: string;
    pixelSha256: string;
    positionSha256: string;
    numSoftTokens: number[];
    inputIds: number[];
    mmTokenTypeIds: number[];
  };
  processorConfig: Record<string, unknown>;
  ffmpegDecodeArgs: string[];
  video: {
    file: string;
    frames: string;
    ffmpegVersion: string;
    totalNumFrames: number;
    fps: number;
    width: number;
    height: number;
    decodedSha256: string;
    sampling: Record<string, SamplingCase>;
    prompt: { text: string; expandedText: string; inputIds: number[]; mmTokenTypeIds: number[] };
  };
  sampleTable: { total: number; numFrames: number; indices: number[] }[];
}

export const media: MediaExpected = JSON.parse(Deno.readTextFileSync(MEDIA_DIR + "expected.json"));

export const mediaPath = (file: string) => MEDIA_DIR + file;
export const mediaGunzip = (file: string) => gunzipSync(Deno.readFileSync(MEDIA_DIR + file));

/** The RGB8 transformers was given for an image case (Pillow's, for the tests/fixtures/images ones). */
export async function caseRgb(name: string): Promise<RgbImage> {
  if (name.startsWith("very_")) return await loadImage(mediaPath(`${name}.png`)); // PNG: pixel-exact with Pillow
  return pilRgb(name);
}

/** The committed decoded frames of testsrc.mp4, [T, H, W, 3]. */
export function committedFrames(): RgbImage[] {
  const { width, height, totalNumFrames } = media.video;
  const all = mediaGunzip(media.video.frames);
  const n = width * height * 3;
  if (all.length !== n * totalNumFrames) throw new Error("testsrc.rgb.gz has the wrong size");
  return Array.from({ length: totalNumFrames }, (_, i) => ({ width, height, data: all.subarray(i * n, (i + 1) * n) }));
}

export async function sha256Hex(data: ArrayBufferView): Promise<string> {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const d = await crypto.subtle.digest("SHA-256", bytes.slice());
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Largest |ours*255 - theirs| over the valid patches (both as byte levels), for a readable failure. */
export function maxLevelDiff(ours: Float32Array, theirsU8: Uint8Array): { max: number; count: number } {
  let max = 0, count = 0;
  for (let i = 0; i < theirsU8.length; i++) {
    const d = Math.abs(Math.round(ours[i] * 255) - theirsU8[i]);
    if (d) count++;
    if (d > max) max = d;
  }
  return { max, count };
}
