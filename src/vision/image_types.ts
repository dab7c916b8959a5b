/**
 * The shapes image decoding passes around: decoded pixels, what a decoder's header walk found, and the options
 * every decoder honours. A file of its own so the decoders (png, jpeg, gif, exif) and image.ts, which picks
 * among them, all import it and not each other.
 * @module
 */

/** An 8-bit RGB image: `data` holds `width * height * 3` bytes, row-major, R G B per pixel. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A decoded image before alpha handling (internal to the decoders). */
export interface RgbaImage extends RgbImage {
  /** one byte per pixel where the file has an alpha channel or a transparent palette entry */
  alpha?: Uint8Array;
}

/** What a decoder's header walk found, before decoding. */
export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  /** EXIF block from its TIFF header on */
  exif?: Uint8Array;
  components?: number;
}

export type ImageFormat = "png" | "jpeg" | "gif";

/** Options after defaults (what the decoders see). */
export interface DecodeOptions {
  maxPixels: number;
  maxFileBytes: number;
  applyExifOrientation: boolean;
  alphaBackground?: readonly [number, number, number];
}
