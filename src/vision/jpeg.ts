/**
 * JPEG: a marker walk (size, EXIF, truncation) before decoding; pixels from jpeg-js (pure JS). jpeg-js is not
 * libjpeg-turbo (which Pillow uses): its IDCT rounds differently and it upsamples chroma by pixel replication
 * where libjpeg uses "fancy" triangular upsampling, so decoded values differ by a few levels near colour edges.
 * tests/vision/image_test.ts measures that difference against Pillow and bounds it.
 * @module
 */
import jpeg from "jpeg-js";
import { ImageError } from "../errors.ts";
import type { DecodeOptions, ImageHeader, RgbaImage } from "./image_types.ts";

const OP = "loadImage";

/** SOF markers jpeg-js decodes: baseline, extended sequential, progressive (Huffman). */
const SOF_DECODABLE = new Set([0xc0, 0xc1, 0xc2]);
/** Other SOF markers: lossless, hierarchical and arithmetic-coded JPEGs. */
const SOF_OTHER = new Set([0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

/** Size, components and EXIF from the segments before the first scan; also proves an EOI follows the scan. */
export function readJpegHeader(bytes: Uint8Array): ImageHeader & { components: number; sampling: number[][] } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 2;
  let exif: Uint8Array | undefined;
  let width = -1, height = -1, components = 0, adobe = false;
  const sampling: number[][] = []; // [h, v] per component
  for (;;) {
    while (pos < bytes.length && bytes[pos] === 0xff && bytes[pos + 1] === 0xff) pos++; // fill bytes
    if (pos + 4 > bytes.length) throw new ImageError(OP, "truncated", "JPEG ends before its image data");
    if (bytes[pos] !== 0xff) throw new ImageError(OP, "corrupt", `JPEG marker expected at byte ${pos}`);
    const marker = bytes[pos + 1];
    const len = view.getUint16(pos + 2);
    if (pos + 2 + len > bytes.length) throw new ImageError(OP, "truncated", "JPEG ends inside a header segment");
    const body = bytes.subarray(pos + 4, pos + 2 + len);
    if (marker === 0xe1 && body.length > 6 && String.fromCharCode(...body.subarray(0, 6)) === "Exif\0\0") {
      exif ??= body.subarray(6);
    } else if (SOF_DECODABLE.has(marker) || SOF_OTHER.has(marker)) {
      if (SOF_OTHER.has(marker)) {
        throw new ImageError(OP, "unsupported_format", `JPEG process SOF${marker - 0xc0} is not supported`, {
          hint: "baseline and progressive (Huffman) JPEGs are; re-encode the image",
        });
      }
      if (body.length < 6) throw new ImageError(OP, "corrupt", "JPEG frame header is too short");
      height = view.getUint16(pos + 5);
      width = view.getUint16(pos + 7);
      components = body[5];
      for (let c = 0; c < components && 6 + c * 3 + 2 < body.length; c++) {
        const hv = body[6 + c * 3 + 1];
        sampling.push([hv >> 4, hv & 15]);
      }
    } else if (marker === 0xee && String.fromCharCode(...body.subarray(0, 5)) === "Adobe") {
      adobe = true;
    } else if (marker === 0xda) {
      break;
    }
    pos += 2 + len;
  }
  if (width < 0) throw new ImageError(OP, "corrupt", "JPEG has no frame header before its first scan");
  // The entropy-coded data cannot contain 0xFF 0xD9 (0xFF is stuffed), so a missing EOI means a cut file.
  let eoi = false;
  for (let i = bytes.length - 2; i > pos; i--) {
    if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) {
      eoi = true;
      break;
    }
  }
  if (!eoi) throw new ImageError(OP, "truncated", "JPEG ends before its end-of-image marker (the file is cut short)");
  return { format: "jpeg", width, height, exif, components, sampling: adobe ? [] : sampling };
}

/** libjpeg's fixed-point YCbCr -> RGB tables (jdcolor.c, SCALEBITS 16), so colours round as Pillow's do. */
const FIX = (x: number) => Math.floor(x * 65536 + 0.5);
const CR_R = new Int32Array(256), CB_B = new Int32Array(256), CR_G = new Int32Array(256), CB_G = new Int32Array(256);
for (let i = 0; i < 256; i++) {
  const x = i - 128;
  CR_R[i] = (FIX(1.402) * x + 32768) >> 16;
  CB_B[i] = (FIX(1.772) * x + 32768) >> 16;
  CR_G[i] = -FIX(0.71414) * x;
  CB_G[i] = -FIX(0.34414) * x + 32768;
}
const clamp8 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/**
 * libjpeg-turbo's "fancy" chroma upsampling (jdsample.c h2v1/h2v2: 3/4 nearer + 1/4 further sample, edges
 * replicated) and YCbCr conversion, applied to jpeg-js's raw component planes. jpeg-js replicates chroma
 * (nearest); at colour edges that differs from Pillow by up to half the range, this by an IDCT rounding step.
 * Returns undefined for layouts other than 4:4:4, 4:2:2 and 4:2:0 (jpeg-js's own conversion is used then).
 */
function libjpegColor(ycc: Uint8Array, w: number, h: number, sampling: number[][]): Uint8Array | undefined {
  if (sampling.length !== 3) return undefined;
  const maxH = Math.max(...sampling.map((s) => s[0])), maxV = Math.max(...sampling.map((s) => s[1]));
  if (sampling[0][0] !== maxH || sampling[0][1] !== maxV) return undefined;
  const planes: Uint8Array[] = [];
  for (let c = 1; c < 3; c++) {
    const fx = maxH / sampling[c][0], fy = maxV / sampling[c][1];
    if (!((fx === 1 || fx === 2) && (fy === 1 || (fy === 2 && fx === 2)))) return undefined;
    const cw = Math.ceil(w / fx), ch = Math.ceil(h / fy);
    const s = new Uint8Array(cw * ch); // the subsampled plane (jpeg-js replicated it fx x fy)
    for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) s[y * cw + x] = ycc[(y * fy * w + x * fx) * 3 + c];
    const up = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) {
      const sy = Math.floor(y / fy);
      // h2v2: vertical 3:1 blend with the row above (even output rows) or below (odd), clamped at the edges.
      const ny = fy === 2 ? Math.min(Math.max(y % 2 === 0 ? sy - 1 : sy + 1, 0), ch - 1) : sy;
      const col = (x: number) => {
        const xc = Math.min(Math.max(x, 0), cw - 1);
        return fy === 2 ? s[sy * cw + xc] * 3 + s[ny * cw + xc] : s[sy * cw + xc];
      };
      for (let x = 0; x < w; x++) {
        if (fx === 1) {
          up[y * w + x] = fy === 2 ? (col(x) * 4 + 8) >> 4 : col(x); // (fx 1, fy 2 is refused above)
          continue;
        }
        const i = x >> 1, here = col(i) * 3;
        const v = x % 2 === 0 ? here + col(i - 1) : here + col(i + 1);
        up[y * w + x] = fy === 2 ? (v + (x % 2 === 0 ? 8 : 7)) >> 4 : (v + (x % 2 === 0 ? 1 : 2)) >> 2;
      }
    }
    planes.push(up);
  }
  const [cbP, crP] = planes;
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const y = ycc[i * 3], cb = cbP[i], cr = crP[i];
    out[i * 3] = clamp8(y + CR_R[cr]);
    out[i * 3 + 1] = clamp8(y + ((CB_G[cb] + CR_G[cr]) >> 16));
    out[i * 3 + 2] = clamp8(y + CB_B[cb]);
  }
  return out;
}

/** Decode to RGB8 (gray replicated; YCbCr through libjpegColor; CMYK/YCCK through jpeg-js's Adobe handling). */
export function decodeJpegRgb(
  bytes: Uint8Array,
  header: ImageHeader & { sampling?: number[][] },
  o: DecodeOptions,
): RgbaImage {
  if (header.components !== 1 && header.components !== 3 && header.components !== 4) {
    throw new ImageError(OP, "unsupported_format", `JPEG with ${header.components} components is not supported`);
  }
  // Raw YCbCr planes when we can do libjpeg's upsampling and colour conversion ourselves.
  const raw = header.components === 3 && (header.sampling?.length ?? 0) === 3;
  try {
    const img = jpeg.decode(bytes, {
      colorTransform: raw ? false : undefined,
      useTArray: true,
      formatAsRGBA: false,
      tolerantDecoding: false,
      // The caller checked the pixel limit from the header; these only keep jpeg-js from refusing first.
      maxResolutionInMP: Math.ceil(o.maxPixels / 1e6) + 1,
      maxMemoryUsageInMB: Math.max(512, Math.ceil((o.maxPixels * 12) / (1 << 20))),
    });
    const rgb = raw ? libjpegColor(img.data, img.width, img.height, header.sampling!) : undefined;
    if (raw && !rgb) {
      return decodeJpegRgb(bytes, { ...header, sampling: [] }, o); // unusual layout: jpeg-js converts
    }
    return { width: img.width, height: img.height, data: rgb ?? img.data };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new ImageError(OP, "corrupt", `JPEG data cannot be decoded: ${msg}`, { cause: e });
  }
}
