/**
 * EXIF orientation: read tag 0x0112 from a TIFF-structured EXIF block and apply it the way Pillow's
 * `ImageOps.exif_transpose` does (which transformers' `load_image` calls), so a phone photo comes out upright.
 * @module
 */
import type { RgbImage } from "./image_types.ts";

/**
 * The Orientation value (1..8) in an EXIF block that starts at the TIFF header ("II*\0" or "MM\0*"), or 1 when
 * absent or unreadable: a broken EXIF block never fails an image, as in Pillow.
 */
export function exifOrientation(tiff: Uint8Array): number {
  if (tiff.length < 8) return 1;
  const le = tiff[0] === 0x49 && tiff[1] === 0x49;
  if (!le && !(tiff[0] === 0x4d && tiff[1] === 0x4d)) return 1;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  const u16 = (o: number) => view.getUint16(o, le);
  const ifd = view.getUint32(4, le);
  if (ifd + 2 > tiff.length) return 1;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > tiff.length) return 1;
    if (u16(e) !== 0x0112) continue;
    const type = u16(e + 2);
    const value = type === 3 ? u16(e + 8) : type === 4 ? view.getUint32(e + 8, le) : 1;
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

/**
 * `image` turned upright for EXIF `orientation` (Pillow's exif_transpose: 2 mirror, 3 rotate 180, 4 flip,
 * 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90 counter-clockwise). 1 returns `image` itself.
 */
export function applyOrientation(image: RgbImage, orientation: number): RgbImage {
  if (orientation < 2 || orientation > 8) return image;
  const { width: w, height: h, data } = image;
  const swap = orientation >= 5;
  const ow = swap ? h : w, oh = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      let sx: number, sy: number; // the source pixel shown at (x, y)
      switch (orientation) {
        case 2:
          [sx, sy] = [w - 1 - x, y];
          break;
        case 3:
          [sx, sy] = [w - 1 - x, h - 1 - y];
          break;
        case 4:
          [sx, sy] = [x, h - 1 - y];
          break;
        case 5:
          [sx, sy] = [y, x];
          break;
        case 6:
          [sx, sy] = [y, h - 1 - x];
          break;
        case 7:
          [sx, sy] = [w - 1 - y, h - 1 - x];
          break;
        default:
          [sx, sy] = [w - 1 - y, x];
          break; // 8
      }
      const s = (sy * w + sx) * 3, d = (y * ow + x) * 3;
      out[d] = data[s];
      out[d + 1] = data[s + 1];
      out[d + 2] = data[s + 2];
    }
  }
  return { width: ow, height: oh, data: out };
}
