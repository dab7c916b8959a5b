/**
 * Antialiased bilinear resize of 8-bit interleaved images, bit-exact with what transformers' default (torchvision)
 * image processors run: `torchvision.transforms.v2.functional.resize(uint8 tensor, antialias=True, BILINEAR)`,
 * which on the CPU is torch's uint8 `_upsample_bilinear2d_aa` (a port of Pillow-SIMD's ImagingResample).
 *
 * Why integer arithmetic: torch converts the float tap weights to int16 with a per-axis precision, sums
 * `weight * pixel` in int32 and shifts back with rounding; a float implementation would differ by one level on
 * some pixels. We reproduce that exactly: the horizontal pass first (when the width changes), an 8-bit
 * intermediate, then the vertical pass (when the height changes). Kept model-agnostic so the Gemma 4
 * variable-resolution processor can reuse it.
 * @module
 */

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

/**
 * Tap positions and int16 weights for one axis, as torch's `_compute_indices_int16_weights_aa` computes them
 * (align_corners=false, no explicit scale: scale = in / out; `Math.trunc` where C++ casts double to int64).
 */
export function bilinearAaTaps(inSize: number, outSize: number): AxisTaps {
  const scale = inSize / outSize;
  const support = scale >= 1 ? scale : 1;
  const invScale = scale >= 1 ? 1 / scale : 1;
  const stride = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const f64 = new Float64Array(outSize * stride);
  let wMax = 0;
  for (let i = 0; i < outSize; i++) {
    const center = scale * (i + 0.5);
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xsize = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let j = 0; j < xsize; j++) {
      const w = triangle((j + xmin - center + 0.5) * invScale);
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
  for (let k = 0; k < weights.length; k++) weights[k] = Math.trunc(0.5 + f64[k] * 2 ** precision);
  return { start, count, weights, stride, precision };
}

function horizontal(src: U8Image, outWidth: number): U8Image {
  const { width, height, channels: c, data } = src;
  const taps = bilinearAaTaps(width, outWidth);
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

function vertical(src: U8Image, outHeight: number): U8Image {
  const { width, height, channels: c, data } = src;
  const taps = bilinearAaTaps(height, outHeight);
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

/**
 * Resize to `outWidth` x `outHeight` with antialiased bilinear filtering, bit-exact with torch/torchvision on
 * uint8 CPU tensors. Same size in: a copy out.
 */
export function resizeBilinearAntialias(src: U8Image, outWidth: number, outHeight: number): U8Image {
  if (!(Number.isInteger(outWidth) && Number.isInteger(outHeight) && outWidth > 0 && outHeight > 0)) {
    throw new RangeError(
      `resizeBilinearAntialias: output size must be positive integers, got ${outWidth}x${outHeight}`,
    );
  }
  let img = src;
  if (outWidth !== img.width) img = horizontal(img, outWidth);
  if (outHeight !== img.height) img = vertical(img, outHeight);
  return img === src ? { ...src, data: src.data.slice() } : img;
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
