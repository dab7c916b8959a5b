/**
 * Antialiased bilinear and bicubic resize of 8-bit interleaved images, bit-exact with what transformers' default
 * (torchvision) image processors run: `torchvision.transforms.v2.functional.resize(uint8 tensor, antialias=True,
 * BILINEAR | BICUBIC)`, which on the CPU is torch's uint8 `_upsample_{bilinear,bicubic}2d_aa` (a port of
 * Pillow-SIMD's ImagingResample; torchvision keeps uint8 for both filters on the CPU, so there is no float path
 * and no extra rounding step). Bicubic is Pillow's antialiasing cubic, a = -0.5 (torch's non-antialiased bicubic
 * uses -0.75; the antialiased one does not).
 *
 * Why integer arithmetic: torch converts the float tap weights to int16 with a per-axis precision, sums
 * `weight * pixel` in int32 and shifts back with rounding; a float implementation would differ by one level on
 * some pixels. We reproduce that exactly: the horizontal pass first (when the width changes), an 8-bit
 * intermediate, then the vertical pass (when the height changes). Kept model-agnostic so the Gemma 4
 * variable-resolution processor can reuse it.
 * @module
 */
import { ImageError } from "../errors.ts";

/** An 8-bit image with `channels` interleaved samples per pixel, rows top to bottom. */
export interface U8Image {
  width: number;
  height: number;
  channels: number;
  data: Uint8Array;
}

interface AxisTaps {
  /** first input index of each output position */
  start: Int32Array;
  /** number of taps of each output position */
  count: Int32Array;
  /** int16 weights, `stride` per output position */
  weights: Int32Array;
  stride: number;
  precision: number;
}

/** torch's HelperInterpLinear::aa_filter (Pillow's bilinear/triangle filter). */
function triangle(x: number): number {
  x = Math.abs(x);
  return x < 1 ? 1 - x : 0;
}

/** torch's HelperInterpCubic::aa_filter (Pillow's bicubic filter, a = -0.5). */
function cubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
  return 0;
}

/** An antialiasing filter: its kernel and its support at scale 1 (torch's `interp_size / 2`). */
interface AaFilter {
  fn: (x: number) => number;
  halfSize: number;
}

const BILINEAR: AaFilter = { fn: triangle, halfSize: 1 };
const BICUBIC: AaFilter = { fn: cubic, halfSize: 2 };

/**
 * Tap positions and int16 weights for one axis, as torch's `_compute_index_ranges_int16_weights` computes them
 * (align_corners=false, no explicit scale: scale = in / out; `Math.trunc` where C++ casts double to int64;
 * negative weights, which only bicubic has, round half away from zero as torch's `int(-0.5 + v)`).
 */
function aaTaps(inSize: number, outSize: number, filter: AaFilter): AxisTaps {
  const scale = inSize / outSize;
  const support = filter.halfSize * (scale >= 1 ? scale : 1);
  const invScale = scale >= 1 ? 1 / scale : 1;
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const f64 = new Float64Array(outSize * stride);
  let wMax = 0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    // torch clips the rare one-too-many tap that rounding can produce
    const xsize = Math.min(Math.max(Math.min(Math.trunc(center + support + 0.5), inSize) - xmin, 0), stride);
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const w = filter.fn((j + xmin - center + 0.5) * invScale);
      f64[i * stride + j] = w;
      total += w;
    }
    for (let j = 0; j < xsize; j++) {
      if (total !== 0) f64[i * stride + j] /= total;
      if (f64[i * stride + j] > wMax) wMax = f64[i * stride + j];
    }
    start[i] = xmin;
    count[i] = xsize;
  }
  // The largest precision (< 22 bits) at which the biggest weight still fits in int16.
  let precision = 0;
  for (; precision < 22; precision++) {
    if (Math.trunc(0.5 + wMax * 2 ** (precision + 1)) >= 1 << 15) break;
  }
  const weights = new Int32Array(outSize * stride);
  for (let k = 0; k < weights.length; k++) {
    const v = f64[k] * 2 ** precision;
    weights[k] = v < 0 ? Math.trunc(-0.5 + v) : Math.trunc(0.5 + v);
  }
  return { start, count, weights, stride, precision };
}

/** {@link aaTaps} for the bilinear (triangle) filter. */
export function bilinearAaTaps(inSize: number, outSize: number): AxisTaps {
  return aaTaps(inSize, outSize, BILINEAR);
}

function horizontal(src: U8Image, outWidth: number, filter: AaFilter): U8Image {
  const { width, height, channels: c, data } = src;
  const taps = aaTaps(width, outWidth, filter);
  const out = new Uint8Array(outWidth * height * c);
  const half = 2 ** (taps.precision - 1);
  const div = 2 ** taps.precision;
  for (let y = 0; y < height; y++) {
    const row = y * width * c;
    for (let x = 0; x < outWidth; x++) {
      const x0 = taps.start[x], n = taps.count[x], k0 = x * taps.stride;
      for (let ch = 0; ch < c; ch++) {
        let acc = half;
        for (let j = 0; j < n; j++) acc += taps.weights[k0 + j] * data[row + (x0 + j) * c + ch];
        const v = Math.floor(acc / div);
        out[(y * outWidth + x) * c + ch] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  }
  return { width: outWidth, height, channels: c, data: out };
}

function vertical(src: U8Image, outHeight: number, filter: AaFilter): U8Image {
  const { width, height, channels: c, data } = src;
  const taps = aaTaps(height, outHeight, filter);
  const rowLen = width * c;
  const out = new Uint8Array(outHeight * rowLen);
  const half = 2 ** (taps.precision - 1);
  const div = 2 ** taps.precision;
  for (let y = 0; y < outHeight; y++) {
    const y0 = taps.start[y], n = taps.count[y], k0 = y * taps.stride;
    for (let i = 0; i < rowLen; i++) {
      let acc = half;
      for (let j = 0; j < n; j++) acc += taps.weights[k0 + j] * data[(y0 + j) * rowLen + i];
      const v = Math.floor(acc / div);
      out[y * rowLen + i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return { width, height: outHeight, channels: c, data: out };
}

/** Largest side of a resize output; no processor asks for more than a few thousand. */
export const MAX_RESIZE_SIDE = 1 << 16;
/** Most multiply-adds one resize may cost (about a second of CPU): a 50 MP photo to 896x896 needs ~0.4 G. */
export const MAX_RESIZE_WORK = 2e9;

/**
 * Multiply-adds of a resize (both passes, as torch orders them), computed before any allocation, so that an
 * image within the pixel limit but of extreme shape (1x4,000,000) cannot cost minutes.
 */
export function resizeWork(inW: number, inH: number, outW: number, outH: number, channels: number, halfSize = 2) {
  const taps = (i: number, o: number) => 2 * Math.ceil(halfSize * Math.max(i / o, 1)) + 1;
  const h = outW !== inW ? inH * outW * channels * taps(inW, outW) : 0;
  const v = outH !== inH ? outH * outW * channels * taps(inH, outH) : 0;
  return h + v;
}

function resizeAa(src: U8Image, outWidth: number, outHeight: number, filter: AaFilter, name: string): U8Image {
  for (const [field, v] of [["width", outWidth], ["height", outHeight]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > MAX_RESIZE_SIDE) {
      throw new ImageError(name, "bad_config", `output ${field} must be an integer in 1..${MAX_RESIZE_SIDE}, got ${v}`);
    }
  }
  const work = resizeWork(src.width, src.height, outWidth, outHeight, src.channels, filter.halfSize);
  if (work > MAX_RESIZE_WORK) {
    throw new ImageError(
      name,
      "too_large",
      `resizing ${src.width}x${src.height} to ${outWidth}x${outHeight} would take ${work.toExponential(2)} ` +
        `multiply-adds, over the bound of ${MAX_RESIZE_WORK.toExponential(0)}`,
      { hint: "an image of so extreme an aspect ratio cannot be used; crop or pad it first" },
    );
  }
  // Horizontal pass first, through an 8-bit (clamped) intermediate, as torch does.
  let img = src;
  if (outWidth !== img.width) img = horizontal(img, outWidth, filter);
  if (outHeight !== img.height) img = vertical(img, outHeight, filter);
  return img === src ? { ...src, data: src.data.slice() } : img;
}

/**
 * Resize to `outWidth` x `outHeight` with antialiased bilinear filtering, bit-exact with torch/torchvision on
 * uint8 CPU tensors. Same size in: a copy out.
 */
export function resizeBilinearAntialias(src: U8Image, outWidth: number, outHeight: number): U8Image {
  return resizeAa(src, outWidth, outHeight, BILINEAR, "resizeBilinearAntialias");
}

/**
 * Resize to `outWidth` x `outHeight` with antialiased bicubic filtering (a = -0.5), bit-exact with
 * torch/torchvision on uint8 CPU tensors (what the Gemma 4 image and video processors run). Same size in: a copy
 * out.
 */
export function resizeBicubicAntialias(src: U8Image, outWidth: number, outHeight: number): U8Image {
  return resizeAa(src, outWidth, outHeight, BICUBIC, "resizeBicubicAntialias");
}

/** The `width` x `height` region at (`x`, `y`), clipped to the image (as tensor slicing clips). */
export function cropU8(src: U8Image, x: number, y: number, width: number, height: number): U8Image {
  const w = Math.max(0, Math.min(width, src.width - x));
  const h = Math.max(0, Math.min(height, src.height - y));
  const c = src.channels;
  const out = new Uint8Array(w * h * c);
  for (let r = 0; r < h; r++) {
    const from = ((y + r) * src.width + x) * c;
    out.set(src.data.subarray(from, from + w * c), r * w * c);
  }
  return { width: w, height: h, channels: c, data: out };
}
