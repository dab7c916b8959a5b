/**
 * PNG: header and chunk walk (size, truncation, eXIf) done here before decoding; pixels from fast-png; then
 * the conversion to RGB8 that Pillow's `open(...).convert("RGB")` performs, mode by mode, so that the result
 * is pixel-exact with what transformers feeds its image processor.
 * @module
 */
import { decode as decodePng } from "fast-png";
import { Unzlib } from "fflate";
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

/** Samples per pixel of each PNG colour type (gray, RGB, palette, gray+alpha, RGBA). */
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** deflate's largest expansion: 258 bytes from one 2-bit code, ~1032:1 over a stream. */
const DEFLATE_MAX_RATIO = 1032;

/** Filtered bytes the header's size implies: one filter byte per row (per Adam7 pass when interlaced). */
function rawBytes(width: number, height: number, bitsPerPixel: number, interlaced: boolean): number {
  const row = (w: number) => (w > 0 ? 1 + Math.ceil((w * bitsPerPixel) / 8) : 0);
  if (!interlaced) return height * row(width);
  // Adam7: [x0, y0, dx, dy] of each pass.
  const passes = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
  let total = 0;
  for (const [x0, y0, dx, dy] of passes) {
    const w = Math.ceil((width - x0) / dx), h = Math.ceil((height - y0) / dy);
    if (w > 0 && h > 0) total += h * row(w);
  }
  return total;
}

/**
 * Proves, before fast-png inflates anything, that the image data inflates to no more than the header's size
 * implies: first from the compressed length (deflate cannot expand past ~1032:1, so a small file cannot hold a
 * large image), then by inflating in small steps and stopping as soon as the output passes the expected size.
 * A decompression bomb therefore costs at most the expected size, which the pixel limit already bounds.
 */
function checkInflatedSize(bytes: Uint8Array, width: number, height: number, depth: number, colorType: number): void {
  const channels = CHANNELS[colorType];
  if (channels === undefined || ![1, 2, 4, 8, 16].includes(depth)) {
    throw new ImageError(OP, "corrupt", `PNG colour type ${colorType} with bit depth ${depth} is not valid`);
  }
  const expected = rawBytes(width, height, channels * depth, bytes[28] === 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  let compressed = 0;
  for (let pos = 8; pos + 12 <= bytes.length;) {
    const len = view.getUint32(pos);
    const type = view.getUint32(pos + 4);
    if (pos + 12 + len > bytes.length) break;
    if (type === 0x49444154) { // IDAT
      idat.push(bytes.subarray(pos + 8, pos + 8 + len));
      compressed += len;
    } else if (type === 0x49454e44) break; // IEND
    pos += 12 + len;
  }
  if (compressed * DEFLATE_MAX_RATIO + 1024 < expected) {
    throw new ImageError(
      OP,
      "truncated",
      `PNG holds ${compressed} compressed bytes, too few for its ${width}x${height} pixels ` +
        `(${expected} bytes once inflated); the file is cut short or a decompression bomb`,
    );
  }
  let produced = 0;
  const inflater = new Unzlib((chunk) => {
    produced += chunk.length;
    if (produced > expected) throw new ImageError(OP, "corrupt", "PNG image data inflates past its declared size");
  });
  const STEP = 4096; // each push inflates at most STEP * 1032 bytes (4 MiB) before the count is checked
  try {
    for (const part of idat) {
      for (let at = 0; at < part.length; at += STEP) inflater.push(part.subarray(at, at + STEP));
    }
  } catch (e) {
    if (e instanceof ImageError) throw e;
    // A broken zlib stream: let fast-png, which reads it the same way, report it with its own message.
  }
}

/** Decode a PNG whose header {@link readPngHeader} accepted, to RGB8 plus alpha where the file has one. */
export function decodePngRgb(
  bytes: Uint8Array,
  header: ImageHeader & { depth: number; colorType?: number },
  _o: DecodeOptions,
): RgbaImage {
  checkInflatedSize(bytes, header.width, header.height, header.depth, header.colorType ?? bytes[25]);
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
