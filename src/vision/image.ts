/**
 * Image input: a path, bytes, base64 or a data URL in; an upright RGB8 image out, as transformers'
 * `load_image` gives its processors (Pillow: open, `ImageOps.exif_transpose`, `convert("RGB")`).
 *
 * Formats: PNG (every bit depth and colour type; pixel-exact with Pillow), JPEG (baseline and progressive; gray,
 * RGB, CMYK/YCCK; within a few levels of Pillow's libjpeg-turbo, see jpeg.ts) and GIF (first frame).
 * WebP, TIFF, BMP and others are refused with `unsupported_format`.
 *
 * Conversions follow Pillow's `convert("RGB")`, because that is what transformers does:
 * - alpha is DROPPED, not composited: RGBA -> RGB keeps the stored colour of transparent pixels. Pass
 *   `alphaBackground` to composite onto a colour instead (then the result differs from transformers);
 * - gray is replicated to R=G=B; 1/2/4-bit gray is scaled to 0..255; palettes are looked up;
 * - 16-bit samples keep their high byte, except 16-bit gray without alpha, which Pillow opens as I;16 and
 *   clamps to 255 on conversion (transformers shows the model that clamped image, and so do we);
 * - CMYK -> RGB with Pillow's formula (R = (255 - C)(255 - K)/255).
 *
 * EXIF orientation is applied (JPEG APP1, PNG eXIf), as transformers' `load_image` and Pillow-loaded images
 * passed through it get. Note that transformers' torchvision route for a *path string*
 * (`load_image_as_tensor`, torchvision `decode_image`) does not apply it; set `applyExifOrientation: false` to
 * match that route.
 *
 * The pixel limit (`maxPixels`, default {@link DEFAULT_MAX_PIXELS}) is checked from the header, before any
 * pixel is decoded, so an "image bomb" costs nothing.
 * @module
 */
import { ImageError } from "../errors.ts";
import { applyOrientation, exifOrientation } from "./exif.ts";
import { decodeGifRgb, readGifHeader } from "./gif.ts";
import { decodeJpegRgb, readJpegHeader } from "./jpeg.ts";
import { decodePngRgb, PNG_SIGNATURE, readPngHeader } from "./png.ts";
import type { DecodeOptions, ImageFormat, ImageHeader, RgbaImage, RgbImage } from "./image_types.ts";

export type { DecodeOptions, ImageFormat, ImageHeader, RgbaImage, RgbImage };

const OP = "loadImage";

/**
 * Where an image comes from: a file path (or `file:` URL), raw bytes, base64, or a `data:` URL, bare or in the
 * object shapes OpenAI-style image parts use. Remote `http(s):` URLs are refused (`bad_source`): fetch them
 * yourself, with your own limits, and pass the bytes.
 */
export type ImageSource =
  | string
  | Uint8Array
  | ArrayBuffer
  | { path: string }
  | { bytes: Uint8Array | ArrayBuffer }
  | { base64: string }
  | { url: string };

/** 50 megapixels: above any camera photo most users send, far below what would exhaust memory (150 MB RGB). */
export const DEFAULT_MAX_PIXELS = 50_000_000;
/** Files larger than this are not read at all. */
export const DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024;

export interface LoadImageOptions {
  /** Refuse images with more pixels than this (`too_large`), from the header. Default 50 M. */
  maxPixels?: number;
  /** Refuse files / decoded base64 larger than this many bytes. Default 256 MiB. */
  maxFileBytes?: number;
  /** Turn the image upright by its EXIF orientation (default true, as transformers' load_image). */
  applyExifOrientation?: boolean;
  /** Composite alpha onto this colour instead of dropping it (default: drop, as Pillow/transformers). */
  alphaBackground?: readonly [number, number, number];
}

function resolveOptions(o: LoadImageOptions): DecodeOptions {
  const maxPixels = o.maxPixels ?? DEFAULT_MAX_PIXELS;
  const maxFileBytes = o.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (!(maxPixels > 0) || !(maxFileBytes > 0)) {
    throw new RangeError(`${OP}: maxPixels and maxFileBytes must be positive`);
  }
  const bg = o.alphaBackground;
  if (bg && (bg.length !== 3 || bg.some((v) => !(Number.isInteger(v) && v >= 0 && v <= 255)))) {
    throw new RangeError(`${OP}: alphaBackground must be three integers in 0..255`);
  }
  return { maxPixels, maxFileBytes, applyExifOrientation: o.applyExifOrientation ?? true, alphaBackground: bg };
}

function startsWith(bytes: Uint8Array, sig: readonly number[], at = 0): boolean {
  return bytes.length >= at + sig.length && sig.every((b, i) => bytes[at + i] === b);
}

const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** Recognise the format from its signature; name known formats gemmakit does not decode. */
export function sniffFormat(bytes: Uint8Array): ImageFormat {
  if (startsWith(bytes, PNG_SIGNATURE)) return "png";
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(bytes, ascii("GIF87a")) || startsWith(bytes, ascii("GIF89a"))) return "gif";
  const other: [string, boolean][] = [
    ["WebP", startsWith(bytes, ascii("RIFF")) && startsWith(bytes, ascii("WEBP"), 8)],
    ["TIFF", startsWith(bytes, [0x49, 0x49, 0x2a, 0x00]) || startsWith(bytes, [0x4d, 0x4d, 0x00, 0x2a])],
    ["BMP", startsWith(bytes, ascii("BM"))],
    ["AVIF/HEIF", startsWith(bytes, ascii("ftyp"), 4)],
    ["JPEG 2000", startsWith(bytes, [0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20])],
    ["ICO", startsWith(bytes, [0, 0, 1, 0])],
    ["QOI", startsWith(bytes, ascii("qoif"))],
  ];
  const hit = other.find(([, ok]) => ok);
  if (hit) {
    throw new ImageError(OP, "unsupported_format", `${hit[0]} images are not supported`, {
      hint: "convert it to PNG or JPEG",
    });
  }
  if (bytes.length === 0) throw new ImageError(OP, "not_an_image", "the image data is empty");
  throw new ImageError(OP, "not_an_image", "the data is not a PNG, JPEG or GIF image (unknown signature)");
}

function readHeader(bytes: Uint8Array): ImageHeader {
  const format = sniffFormat(bytes);
  return format === "png" ? readPngHeader(bytes) : format === "jpeg" ? readJpegHeader(bytes) : readGifHeader(bytes);
}

/** Size and format from the header alone (no decoding); throws the same typed errors as {@link decodeImage}. */
export function probeImage(bytes: Uint8Array): { format: ImageFormat; width: number; height: number } {
  const { format, width, height } = readHeader(bytes);
  return { format, width, height };
}

/** Decode image bytes (PNG, JPEG, GIF) to an upright RGB8 image. Synchronous; see the module doc. */
export function decodeImage(bytes: Uint8Array, options: LoadImageOptions = {}): RgbImage {
  const o = resolveOptions(options);
  if (bytes.length > o.maxFileBytes) {
    throw new ImageError(OP, "too_large", `the image is ${bytes.length} bytes, over the ${o.maxFileBytes}-byte limit`);
  }
  const header = readHeader(bytes);
  const { width, height } = header;
  if (width === 0 || height === 0) {
    throw new ImageError(OP, "zero_size", `the ${header.format.toUpperCase()} header says ${width}x${height}`);
  }
  if (width * height > o.maxPixels) {
    throw new ImageError(
      OP,
      "too_large",
      `${width}x${height} = ${width * height} pixels is over the limit of ${o.maxPixels}`,
      { hint: "downscale the image, or raise maxPixels" },
    );
  }
  const decoded = header.format === "png"
    ? decodePngRgb(bytes, header as ImageHeader & { depth: number }, o)
    : header.format === "jpeg"
    ? decodeJpegRgb(bytes, header, o)
    : decodeGifRgb(bytes, header, o);
  if (decoded.width !== width || decoded.height !== height) {
    throw new ImageError(OP, "corrupt", `decoded ${decoded.width}x${decoded.height}, header said ${width}x${height}`);
  }
  let img: RgbImage = { width, height, data: decoded.data };
  if (decoded.alpha && o.alphaBackground) img = composite(img, decoded.alpha, o.alphaBackground);
  if (o.applyExifOrientation && header.exif) img = applyOrientation(img, exifOrientation(header.exif));
  return img;
}

/** out = (rgb * a + bg * (255 - a)) / 255, rounded (Pillow's alpha_composite rounding onto an opaque colour). */
function composite(img: RgbImage, alpha: Uint8Array, bg: readonly number[]): RgbImage {
  const out = new Uint8Array(img.data.length);
  for (let i = 0; i < alpha.length; i++) {
    const a = alpha[i];
    for (let c = 0; c < 3; c++) out[i * 3 + c] = Math.round((img.data[i * 3 + c] * a + bg[c] * (255 - a)) / 255);
  }
  return { ...img, data: out };
}

function decodeBase64(text: string, maxBytes: number): Uint8Array {
  const clean = text.replace(/\s+/g, "").replace(/-/g, "+").replace(/_/g, "/");
  if (clean.length === 0) throw new ImageError(OP, "bad_source", "the base64 image data is empty");
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 === 1) {
    throw new ImageError(OP, "bad_source", "the image data is not valid base64");
  }
  if ((clean.length * 3) / 4 > maxBytes + 3) {
    throw new ImageError(OP, "too_large", `the base64 image is over the ${maxBytes}-byte limit`);
  }
  const bin = atob(clean.padEnd(Math.ceil(clean.length / 4) * 4, "="));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function decodeDataUrl(url: string, maxBytes: number): Uint8Array {
  const comma = url.indexOf(",");
  if (comma < 0) throw new ImageError(OP, "bad_source", "the data URL has no ',' before its data");
  const meta = url.slice(5, comma);
  const payload = url.slice(comma + 1);
  if (/;base64$/i.test(meta)) return decodeBase64(payload, maxBytes);
  // Percent-encoded (non-base64) data URL: rare for images but valid.
  const raw = decodeURIComponent(payload);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0) & 0xff);
}

async function readFile(path: string | URL, maxBytes: number): Promise<Uint8Array> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new ImageError(OP, "io", `${path} is not a file`);
    if (info.size > maxBytes) {
      throw new ImageError(OP, "too_large", `${path} is ${info.size} bytes, over the ${maxBytes}-byte limit`);
    }
    return await Deno.readFile(path);
  } catch (e) {
    if (e instanceof ImageError) throw e;
    const why = e instanceof Deno.errors.NotFound ? "no such file" : e instanceof Error ? e.message : String(e);
    throw new ImageError(OP, "io", `cannot read image ${path}: ${why}`, { cause: e });
  }
}

async function fromUrlOrPath(s: string, o: DecodeOptions): Promise<Uint8Array> {
  if (/^data:/i.test(s)) return decodeDataUrl(s, o.maxFileBytes);
  if (/^https?:\/\//i.test(s)) {
    throw new ImageError(OP, "bad_source", "remote image URLs are not fetched", {
      hint: "download the image yourself (with your own size and time limits) and pass its bytes",
    });
  }
  if (/^file:/i.test(s)) return await readFile(new URL(s), o.maxFileBytes);
  return await readFile(s, o.maxFileBytes);
}

async function sourceBytes(source: ImageSource, o: DecodeOptions): Promise<Uint8Array> {
  if (typeof source === "string") return await fromUrlOrPath(source, o);
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (source && typeof source === "object") {
    if ("path" in source && typeof source.path === "string") return await readFile(source.path, o.maxFileBytes);
    if ("bytes" in source && (source.bytes instanceof Uint8Array || source.bytes instanceof ArrayBuffer)) {
      return source.bytes instanceof Uint8Array ? source.bytes : new Uint8Array(source.bytes);
    }
    if ("base64" in source && typeof source.base64 === "string") {
      const b = source.base64.trimStart();
      return /^data:/i.test(b) ? decodeDataUrl(b, o.maxFileBytes) : decodeBase64(b, o.maxFileBytes);
    }
    if ("url" in source && typeof source.url === "string") return await fromUrlOrPath(source.url, o);
  }
  throw new ImageError(OP, "bad_source", "an image source must be a path, bytes, {path}, {bytes}, {base64} or {url}");
}

/**
 * Load an image from a path, bytes, base64 or a data URL into an upright RGB8 image (see the module doc for
 * formats and conversions). Every refusal is an {@link ImageError} whose `kind` names the problem; nothing is
 * left behind, so the next call works as usual.
 *
 * @example
 * ```ts
 * const img = await loadImage("photo.jpg");               // or bytes, { base64 }, "data:image/png;base64,..."
 * console.log(img.width, img.height, img.data.length); // RGB8, upright
 * ```
 */
export async function loadImage(source: ImageSource, options: LoadImageOptions = {}): Promise<RgbImage> {
  const o = resolveOptions(options);
  return decodeImage(await sourceBytes(source, o), o);
}
