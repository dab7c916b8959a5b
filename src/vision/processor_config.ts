/**
 * Pieces the Gemma 3 and Gemma 4 image processors share: reading transformers' config JSON fields, checking
 * an input image, and the byte → float32 rescale/normalize table.
 * @module
 */
import { ImageError } from "../errors.ts";
import type { RgbImage } from "./image.ts";

export type Json = Record<string, unknown>;

/** A bad_config ImageError from config parsing or validation (`where` names the config class). */
export function badConfig(where: string, msg: string, hint?: string): ImageError {
  return new ImageError(where, "bad_config", msg, hint ? { hint } : {});
}

/** A finite number field; `fallback` when unset or null. */
export function num(where: string, json: Json, key: string, fallback: number): number {
  const v = json[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw badConfig(where, `${key} must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** A boolean field; `fallback` when unset or null. */
export function bool(where: string, json: Json, key: string, fallback: boolean): boolean {
  const v = json[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "boolean") throw badConfig(where, `${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

/** A per-channel field: 3 numbers, or one number for all three; `fallback` when unset or null. */
export function triple(where: string, json: Json, key: string, fallback: readonly number[]): readonly number[] {
  const v = json[key];
  if (v === undefined || v === null) return fallback;
  const arr = typeof v === "number" ? [v, v, v] : v;
  if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === "number" && Number.isFinite(x))) {
    throw badConfig(where, `${key} must be 3 numbers, got ${JSON.stringify(v)}`);
  }
  return arr;
}

/** A sub-object of processor_config.json (`image_processor`, `video_processor`), or {}. */
export function nested(processor: Json, key: string): Json {
  const v = processor[key];
  return v && typeof v === "object" && !Array.isArray(v) ? v as Json : {};
}

/** Throws ImageError unless `img` (input number `i`) has positive integer sides and width*height*3 RGB bytes. */
export function checkImage(op: string, img: RgbImage, i: number): void {
  const { width, height, data } = img;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width > 0 && height > 0)) {
    throw new ImageError(op, "zero_size", `image ${i} is ${width}x${height}; both sides must be positive integers`);
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 3) {
    throw new ImageError(
      op,
      "bad_source",
      `image ${i}: data must be a Uint8Array of width*height*3 = ${width * height * 3} RGB bytes, got ${data?.length}`,
    );
  }
}

/** The settings {@link valueTable} reads. */
export interface RescaleNormalize {
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: readonly number[];
  imageStd: readonly number[];
}

/**
 * byte value -> float32 per channel (`[3 * 256]`), as TorchvisionBackend.rescale_and_normalize computes it: with
 * normalize, mean and std are float32 tensors times `1 / rescale_factor` (fused), then `(x - mean) / std` in
 * float32; rescale alone is `x * float32(rescale_factor)`. `Math.fround` after a double op is the correctly
 * rounded float32 op for +, -, *, /.
 */
export function valueTable(c: RescaleNormalize): Float32Array {
  const f = Math.fround;
  const lut = new Float32Array(3 * 256);
  for (let ch = 0; ch < 3; ch++) {
    let mean = f(c.imageMean[ch]), std = f(c.imageStd[ch]);
    if (c.doNormalize && c.doRescale) {
      mean = f(mean * f(1 / c.rescaleFactor));
      std = f(std * f(1 / c.rescaleFactor));
    }
    for (let v = 0; v < 256; v++) {
      lut[ch * 256 + v] = c.doNormalize ? f(f(v - mean) / std) : c.doRescale ? f(v * f(c.rescaleFactor)) : v;
    }
  }
  return lut;
}
