/**
 * The one error image input and preprocessing throw. `kind` says which rule the input broke, so a server can
 * map it to a 400 without parsing the message.
 * @module
 */
import { GemmakitError } from "../ffi/errors.ts";

/** Why an image was refused. */
export type ImageErrorKind =
  | "not_an_image" // no known image signature
  | "unsupported_format" // a real image format gemmakit does not decode (WebP, TIFF, BMP, ...)
  | "truncated" // the file ends before its image data does
  | "corrupt" // the decoder rejected the data
  | "zero_size" // width or height is 0
  | "too_large" // more pixels than the configured limit (checked from the header, before decoding)
  | "bad_source" // the source itself is malformed: bad base64, a data URL without data, a remote URL
  | "io" // the file could not be read
  | "bad_config"; // a processor config gemmakit cannot honour (e.g. an unsupported resample filter)

/** A refused image or image-processor input. Thrown before any decoding work where the header decides. */
export class ImageError extends GemmakitError {
  override name = "ImageError";
  readonly kind: ImageErrorKind;

  constructor(op: string, kind: ImageErrorKind, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(op, message, options);
    this.kind = kind;
  }
}
