/**
 * GIF: the first frame only (as Pillow's `Image.open` shows it before any seek), decoded by omggif. Pillow keeps
 * the frame as palette mode "P" and `convert("RGB")` looks every index up, transparent ones included, so the
 * transparent index's palette colour shows where the frame is transparent or does not reach.
 * @module
 */
import { GifReader } from "omggif";
import { ImageError } from "../errors.ts";
import type { DecodeOptions, ImageHeader, RgbaImage } from "./image_types.ts";

const OP = "loadImage";

/** The part of omggif's (untyped) GifReader used here. */
interface GifReaderLike {
  width: number;
  height: number;
  numFrames(): number;
  frameInfo(i: number): {
    palette_offset: number | null;
    transparent_index: number | null;
    width: number;
    height: number;
    data_offset: number;
  };
  decodeAndBlitFrameRGBA(i: number, out: Uint8Array): void;
}

export function readGifHeader(bytes: Uint8Array): ImageHeader {
  if (bytes.length < 13) throw new ImageError(OP, "truncated", "GIF ends inside its header");
  return { format: "gif", width: bytes[6] | (bytes[7] << 8), height: bytes[8] | (bytes[9] << 8) };
}

export function decodeGifRgb(bytes: Uint8Array, _header: ImageHeader, o: DecodeOptions): RgbaImage {
  let reader: GifReaderLike;
  try {
    reader = new (GifReader as new (b: Uint8Array) => GifReaderLike)(bytes);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const truncated = /block size|out of range/i.test(msg);
    throw new ImageError(OP, truncated ? "truncated" : "corrupt", `GIF cannot be read: ${msg}`, { cause: e });
  }
  if (reader.numFrames() < 1) throw new ImageError(OP, "truncated", "GIF has no complete frame");
  const { width, height } = reader;
  const info = reader.frameInfo(0);
  // omggif sizes its index buffer by the frame's own rectangle, which may be larger than the screen: bound it
  // as the screen was (the pixel limit, and what the file's bytes can hold at LZW's best, 4096 pixels a byte).
  const framePixels = info.width * info.height;
  if (framePixels > o.maxPixels || framePixels > bytes.length * 4096 + 65536) {
    throw new ImageError(
      OP,
      framePixels > o.maxPixels ? "too_large" : "truncated",
      `the GIF's first frame is ${info.width}x${info.height}, more than the limit or the file's ${bytes.length} bytes allow`,
    );
  }
  if (info.palette_offset === null) throw new ImageError(OP, "corrupt", "GIF frame has no palette");
  const pal = info.palette_offset;
  const palette = (i: number) => bytes.subarray(pal + i * 3, pal + i * 3 + 3);
  const rgba = new Uint8Array(width * height * 4);
  // Pixels the frame leaves untouched (transparent or outside its rectangle) keep this fill.
  const fill = palette(info.transparent_index ?? 0);
  for (let i = 0; i < width * height; i++) rgba.set(fill, i * 4);
  checkLzw(bytes, info.data_offset, framePixels);
  try {
    reader.decodeAndBlitFrameRGBA(0, rgba);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new ImageError(OP, "truncated", `GIF frame data cannot be decoded: ${msg}`, { cause: e });
  }
  const rgb = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    rgb[i * 3] = rgba[i * 4];
    rgb[i * 3 + 1] = rgba[i * 4 + 1];
    rgb[i * 3 + 2] = rgba[i * 4 + 2];
  }
  return { width, height, data: rgb };
}

/**
 * Walks the frame's LZW code stream exactly as omggif's decoder reads it (same bit reader, same code-size growth),
 * without output, and refuses a code that names an entry not yet defined. omggif does not check that: such a
 * code can make its table reference itself, and its prefix chase then never ends (a 600-byte GIF hung the
 * process). With every code at most `next_code`, each entry points at a smaller one and every chase ends. Reading
 * past the data is refused too (omggif reads `undefined` as 0).
 */
function checkLzw(stream: Uint8Array, start: number, pixels: number): void {
  const corrupt = (why: string) => new ImageError(OP, "corrupt", `GIF frame data is malformed: ${why}`);
  let p = start;
  const byte = () => {
    if (p >= stream.length) throw corrupt("the code stream runs past the end of the file");
    return stream[p++];
  };
  const minCodeSize = byte();
  if (minCodeSize < 1 || minCodeSize > 11) throw corrupt(`LZW minimum code size ${minCodeSize}`);
  const clear = 1 << minCodeSize, eoi = clear + 1;
  let next = eoi + 1, size = minCodeSize + 1, mask = (1 << size) - 1;
  let shift = 0, cur = 0, sub = byte();
  let prev: number | null = null;
  let out = 0;
  for (;;) {
    while (shift < 16) {
      if (sub === 0) break;
      cur |= byte() << shift;
      shift += 8;
      if (sub === 1) sub = byte();
      else --sub;
    }
    if (shift < size) return;
    const code = cur & mask;
    cur >>= size;
    shift -= size;
    if (code === clear) {
      next = eoi + 1;
      size = minCodeSize + 1;
      mask = (1 << size) - 1;
      prev = null;
      continue;
    }
    if (code === eoi) return;
    if (code > next || (code === next && prev === null)) throw corrupt(`code ${code} before entry ${next} exists`);
    // Each code emits at least one pixel; omggif stops once the frame is full, so may we.
    if (++out > pixels) return;
    if (prev !== null && next < 4096) {
      next++;
      if (next >= mask + 1 && size < 12) {
        ++size;
        mask = (mask << 1) | 1;
      }
    }
    prev = code;
  }
}
