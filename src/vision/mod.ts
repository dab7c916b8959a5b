/**
 * Image input and preprocessing: decode (PNG, JPEG, GIF) to upright RGB8, then the Gemma 3 image processor.
 * A leaf: imports nothing from ops or runtime.
 * @module
 */
export { ImageError, type ImageErrorKind } from "./errors.ts";
export {
  decodeImage,
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_PIXELS,
  type ImageFormat,
  type ImageSource,
  loadImage,
  type LoadImageOptions,
  probeImage,
  type RgbImage,
} from "./image.ts";
export {
  type CropBox,
  GEMMA3_IMAGE_TOKENS,
  Gemma3ImageProcessorConfig,
  gemma3ImagePromptText,
  type Gemma3ImageTokens,
  type Gemma3PixelValues,
  type Gemma3ProcessorOverrides,
  panAndScanCrops,
  type PanAndScanOptions,
  preprocessGemma3,
} from "./gemma3_processor.ts";
export { resizeBilinearAntialias, type U8Image } from "./resize.ts";
