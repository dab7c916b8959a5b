/**
 * Image and video input and preprocessing: decode (PNG, JPEG, GIF) to upright RGB8, then the Gemma 3 or Gemma 4
 * image processor; videos through ffmpeg (video.ts) and the Gemma 4 video processor.
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
export {
  expandGemma4Prompt,
  formatGemma4Timestamp,
  GEMMA4_SOFT_TOKEN_BUDGETS,
  GEMMA4_VISION_TOKENS,
  Gemma4ImageProcessorConfig,
  gemma4ImagePromptIds,
  gemma4ImagePromptText,
  gemma4NumSoftTokens,
  type Gemma4PixelValues,
  type Gemma4ProcessorOverrides,
  gemma4SampleFrameIndices,
  gemma4TargetSize,
  type Gemma4VideoOverrides,
  Gemma4VideoProcessorConfig,
  type Gemma4VideoPrompt,
  gemma4VideoPromptText,
  type Gemma4VisionTokens,
  preprocessGemma4,
  preprocessGemma4Video,
} from "./gemma4_processor.ts";
export { resizeBicubicAntialias, resizeBilinearAntialias, type U8Image } from "./resize.ts";
export {
  findFfmpeg,
  type LoadedVideo,
  loadVideo,
  type LoadVideoOptions,
  VideoError,
  type VideoErrorKind,
  type VideoSource,
} from "./video.ts";
