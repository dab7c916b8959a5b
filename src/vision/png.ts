/**
 * PNG: header and chunk walk (size, truncation, eXIf) done here before decoding; pixels from fast-png; then
 * the conversion to RGB8 that Pillow's `open(...).convert("RGB")` performs, mode by mode, so that the result
 * is pixel-exact with what transformers feeds its image processor.
 * @module
 */
import { decode as decodePng } from "fast-png";
import { ImageError } from "../errors.ts";
import type { DecodeOptions, ImageHeader, RgbaImage } from "./image_types.ts";

const OP = "loadImage";
export const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** IHDR facts plus the eXIf payload, from a chunk walk that proves the file reaches IEND. */
export function readPngHeader(bytes: Uint8Array): ImageHeader & { depth: number; colorType: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 33) throw new ImageError(OP, "truncated", "PNG ends inside its header");
  if (view.getUint32(12) !== 0x49484452) throw new ImageError(OP, "corrupt", "PNG does not start with IHDR");
  const width = view.getUint32(16), height = view.getUint32(20);
  const depth = bytes[24], colorType = bytes[25];
  let exif: Uint8Array | undefined;
  let pos = 8, sawIend = false;
  while (pos + 8 <= bytes.length) {
    const len = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    if (pos + 12 + len > bytes.length) break;
    if (type === "eXIf") exif = bytes.subarray(pos + 8, pos + 8 + len);
    if (type === "IEND") {
      sawIend = true;
      break;
    }
    pos += 12 + len;
  }
  if (!sawIend) throw new ImageError(OP, "truncated", "PNG ends before its IEND chunk (the file is cut short)");
  return { format: "png", width, height, exif, depth, colorType };
}

/** Pillow's unpackers for 1/2/4-bit gray scale the sample to 0..255 ("1", "L;2", "L;4"); palettes keep the index. */
function unpackBits(data: Uint8Array, width: number, height: number, depth: number, scale: boolean): Uint8Array {
  const out = new Uint8Array(width * height);
  const rowBytes = Math.ceil((width * depth) / 8);
  const max = (1 << depth) - 1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const bit = x * depth;
      const v = (data[y * rowBytes + (bit >> 3)] >> (8 - depth - (bit & 7))) & max;
      out[y * width + x] = scale ? (v * 255) / max : v;
    }
  }
  return out;
}

/** Decode a PNG whose header {@link readPngHeader} accepted, to RGB8 plus alpha where the file has one. */
export function decodePngRgb(
  bytes: Uint8Array,
  _header: ImageHeader & { depth: number },
  _o: DecodeOptions,
): RgbaImage {
  let png;
  try {
    png = decodePng(bytes, { checkCrc: true });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const truncated = /decompress|unexpected end|offset|out of bounds/i.test(msg);
    throw new ImageError(OP, truncated ? "truncated" : "corrupt", `PNG data cannot be decoded: ${msg}`, { cause: e });
  }
  const { width, height, channels, depth } = png;
  const n = width * height;
  const want = depth < 8 ? Math.ceil((width * depth) / 8) * height : n * channels;
  if (png.data.length < want) throw new ImageError(OP, "truncated", "PNG image data is shorter than its size says");
  const rgb = new Uint8Array(n * 3);
  let alpha: Uint8Array | undefined;
  // 16-bit samples: Pillow keeps the high byte ("RGB;16B", "LA;16B", "RGBA;16B") except for gray without alpha,
  // which it opens as mode I;16 and whose convert("RGB") clamps each value to 255 (transformers inherits this).
  const src = png.data;
  const byte = depth === 16 ? (v: number) => v >> 8 : (v: number) => v;

  if (png.palette) {
    const idx = depth < 8 ? unpackBits(src as Uint8Array, width, height, depth, false) : src;
    const pal = png.palette;
    const trns = png.transparency;
    if (trns) alpha = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const c = pal[idx[i]] ?? [0, 0, 0]; // an index past the palette reads as black, as in Pillow
      rgb[i * 3] = c[0];
      rgb[i * 3 + 1] = c[1];
      rgb[i * 3 + 2] = c[2];
      if (alpha) alpha[i] = c.length > 3 ? c[3] : 255;
    }
  } else if (channels === 1 || channels === 2) {
    const gray = depth < 8 ? unpackBits(src as Uint8Array, width, height, depth, true) : src;
    const g = channels === 1 && depth === 16 ? (v: number) => Math.min(v, 255) : depth < 8 ? (v: number) => v : byte;
    if (channels === 2) alpha = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const v = g(gray[i * channels]);
      rgb[i * 3] = rgb[i * 3 + 1] = rgb[i * 3 + 2] = v;
      if (alpha) alpha[i] = byte(src[i * 2 + 1]);
    }
  } else if (channels === 3 || channels === 4) {
    if (channels === 4) alpha = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      rgb[i * 3] = byte(src[i * channels]);
      rgb[i * 3 + 1] = byte(src[i * channels + 1]);
      rgb[i * 3 + 2] = byte(src[i * channels + 2]);
      if (alpha) alpha[i] = byte(src[i * 4 + 3]);
    }
  } else {
    throw new ImageError(OP, "unsupported_format", `PNG with ${channels} channels is not supported`);
  }
  return { width, height, data: rgb, alpha };
}
