/**
 * Gemma 4's public surface: config, text model and loaders, the image and video processors, the video loader
 * and the response parser.
 * @module
 */
export {
  type Gemma4LayerSpec,
  type Gemma4Model,
  type Gemma4MoeSpec,
  type Gemma4TextConfig,
  parseGemma4Config,
} from "./config.ts";
export { Gemma4TextModel } from "./model.ts";
export { type LoadGemma4Options, loadGemma4Text } from "./load.ts";
export { Gemma4Multimodal, type Gemma4PromptMedia, loadGemma4Multimodal } from "./multimodal.ts";
export {
  Gemma4ImageProcessorConfig,
  type Gemma4PixelValues,
  Gemma4VideoProcessorConfig,
  preprocessGemma4,
  preprocessGemma4Video,
} from "./processor.ts";
export { loadVideo, type LoadVideoOptions } from "./video.ts";
export { Gemma4ResponseParser } from "./response.ts";
export { gemma4, gemma4ResponseParserFor } from "./family.ts";
export { type Gemma4MmprojText, loadGemma4MmprojVision } from "./mmproj.ts";
