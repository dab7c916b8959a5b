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
import { DataUrlError, ImageError } from "../errors.ts";
import { decodeBase64, decodeDataUrl } from "../runtime/bounds.ts";
import { fetchRemoteMedia, type RemoteFetchOptions } from "./remote.ts";
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
  /**
   * Fetch http(s) URLs (off by default: they are refused). Only public addresses are reached, within `maxFileBytes`
   * and the time limit; see {@link fetchRemoteMedia} for what is refused.
   */
  remote?: RemoteImageOptions;
}

/** How {@link loadImage} fetches http(s) URLs when the caller opts in (the byte limit is `maxFileBytes`). */
export type RemoteImageOptions = Omit<RemoteFetchOptions, "maxBytes">;

function resolveOptions(o: LoadImageOptions): DecodeOptions {
  const maxPixels = o.maxPixels ?? DEFAULT_MAX_PIXELS;
  const maxFileBytes = o.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  if (!(maxPixels > 0) || !(maxFileBytes > 0)) {
    throw new ImageError(OP, "bad_config", `maxPixels and maxFileBytes must be positive`);
  }
  const bg = o.alphaBackground;
  if (bg && (bg.length !== 3 || bg.some((v) => !(Number.isInteger(v) && v >= 0 && v <= 255)))) {
    throw new ImageError(OP, "bad_config", `alphaBackground must be three integers in 0..255`);
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
  checkDataCanHold(bytes, header);
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

/**
 * Most pixels one byte of each format can carry, at the formats' best compression: a JPEG codes at least one
 * bit per 8x8 block (512 px/byte; 1024 leaves room), a GIF's LZW code of 12 bits stands for up to 4096 pixels,
 * a PNG's deflate expands at most ~1032:1 (8 one-bit pixels a byte). A file that declares more pixels than its
 * bytes can hold is refused before any buffer is sized from the header, so a 37-byte file cannot make the
 * decoder allocate hundreds of megabytes.
 */
const MAX_PIXELS_PER_BYTE: Record<ImageFormat, number> = { jpeg: 1024, gif: 4096, png: 1032 * 8 };
/** Pixels any file may declare whatever its size (tiny images are cheap). */
const FREE_PIXELS = 1 << 16;

function checkDataCanHold(bytes: Uint8Array, header: ImageHeader): void {
  const { format, width, height } = header;
  const most = bytes.length * MAX_PIXELS_PER_BYTE[format] + FREE_PIXELS;
  if (width * height > most) {
    throw new ImageError(
      OP,
      "truncated",
      `the ${format.toUpperCase()} file is ${bytes.length} bytes, too small to hold the ${width}x${height} pixels ` +
        `its header declares (a cut-off file or a decompression bomb)`,
    );
  }
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

/** Base64 / data URL bytes through the shared helper; its refusals become ImageErrors of the same meaning. */
function dataBytes(text: string, maxBytes: number, dataUrl: boolean): Uint8Array {
  try {
    return dataUrl ? decodeDataUrl(text, maxBytes).bytes : decodeBase64(text, maxBytes);
  } catch (e) {
    if (!(e instanceof DataUrlError)) throw e;
    const kind = e.kind === "too_large" ? "too_large" : "bad_source";
    throw new ImageError(
      OP,
      kind,
      `the image ${dataUrl ? "data URL" : "base64"}: ${e.message.replace(/^dataUrl: /, "")}`,
      {
        cause: e,
        hint: e.hint,
      },
    );
  }
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

async function fromUrlOrPath(s: string, o: DecodeOptions, remote?: RemoteImageOptions): Promise<Uint8Array> {
  if (/^data:/i.test(s)) return dataBytes(s, o.maxFileBytes, true);
  if (/^https?:\/\//i.test(s)) {
    if (remote) return await fetchRemoteMedia(s, { ...remote, maxBytes: o.maxFileBytes });
    throw new ImageError(OP, "bad_source", "remote image URLs are not fetched", {
      hint: "pass loadImage's `remote` option to fetch public URLs, or download the image yourself and pass its bytes",
    });
  }
  if (/^file:/i.test(s)) {
    let url: URL;
    try {
      url = new URL(s);
    } catch (e) {
      throw new ImageError(OP, "bad_source", "the file: URL does not parse", { cause: e });
    }
    return await readFile(url, o.maxFileBytes);
  }
  return await readFile(s, o.maxFileBytes);
}

async function sourceBytes(source: ImageSource, o: DecodeOptions, remote?: RemoteImageOptions): Promise<Uint8Array> {
  if (typeof source === "string") return await fromUrlOrPath(source, o, remote);
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (source && typeof source === "object") {
    if ("path" in source && typeof source.path === "string") return await readFile(source.path, o.maxFileBytes);
    if ("bytes" in source && (source.bytes instanceof Uint8Array || source.bytes instanceof ArrayBuffer)) {
      return source.bytes instanceof Uint8Array ? source.bytes : new Uint8Array(source.bytes);
    }
    if ("base64" in source && typeof source.base64 === "string") {
      const b = source.base64.trimStart();
      return dataBytes(b, o.maxFileBytes, /^data:/i.test(b));
    }
    if ("url" in source && typeof source.url === "string") return await fromUrlOrPath(source.url, o, remote);
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
  return decodeImage(await sourceBytes(source, o, options.remote), o);
}

/**
 * The encoded bytes of an image source, read (file, data URL, base64, opted-in remote URL) under the same limits
 * as {@link loadImage}, not decoded: for a caller that decodes them elsewhere (in a worker).
 */
export async function imageSourceBytes(source: ImageSource, options: LoadImageOptions = {}): Promise<Uint8Array> {
  return await sourceBytes(source, resolveOptions(options), options.remote);
}

/** The options of {@link decodeImage} that survive a structured clone (the remote fetcher's are not needed). */
export function decodeOptionsOf(options: LoadImageOptions = {}): LoadImageOptions {
  const { maxPixels, maxFileBytes, applyExifOrientation, alphaBackground } = options;
  return { maxPixels, maxFileBytes, applyExifOrientation, alphaBackground };
}
