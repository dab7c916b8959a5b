/**
 * Gemma 3's public surface: config, text model and loaders, and the image processor.
 * @module
 */
export { type Gemma3Model, type Gemma3TextConfig, parseGemma3Config } from "./config.ts";
export { Gemma3TextModel } from "./model.ts";
export { loadGemma3Gguf, type LoadGemma3Options, loadGemma3Text } from "./load.ts";
export { Gemma3Multimodal, loadGemma3Multimodal, type PromptImages } from "./multimodal.ts";
export {
  GEMMA3_IMAGE_TOKENS,
  Gemma3ImageProcessorConfig,
  gemma3ImagePromptText,
  type Gemma3PixelValues,
  type Gemma3ProcessorOverrides,
  panAndScanCrops,
  preprocessGemma3,
} from "./processor.ts";
export { gemma3 } from "./family.ts";
export { type Gemma3MmprojVision, loadGemma3GgufMultimodal } from "./mmproj.ts";
