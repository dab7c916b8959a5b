/**
 * gemmakit: Gemma 3 and Gemma 4 on CUDA kernels (and their C++ CPU twins), from Deno.
 *
 * This module only re-exports: models and generation, the tokenizer, and the layers they are built
 * from (backends, device tensors, kernel ops, decode programs).
 *
 * @example Generate text
 * ```ts
 * import { loadModel } from "@gemmakit/gemmakit";
 *
 * using model = await loadModel("path/to/gemma-3-checkpoint", { backend: "auto" });
 * for await (const text of model.stream({ messages: [{ role: "user", content: "Why is the sky blue?" }] })) {
 *   Deno.stdout.writeSync(new TextEncoder().encode(text));
 * }
 * const r = await model.generate("Once upon a time", { maxTokens: 64, temperature: 0.7, seed: 1 });
 * console.log(r.text, r.completionTokens, r.timings.decodeTokensPerSecond);
 * ```
 *
 * @example Kernels directly
 * ```ts
 * import { Backend, linear, Tensor } from "@gemmakit/gemmakit";
 *
 * using backend = Backend.open(); // CUDA when a GPU answers, else CPU (GEMMAKIT_BACKEND=cpu|cuda forces one)
 * using x = Tensor.fromArray(backend, [1, 2, 3], [1, 3]);
 * using w = Tensor.fromArray(backend, [1, 0, 0, 0, 1, 0], [2, 3], "bf16");
 * using y = linear(x, w);
 * console.log(y.toArray()); // Float32Array(2) [1, 2]
 * ```
 * @module
 */
export { loadModel, type LoadModelOptions } from "./src/models/load.ts";
export { type GenerateCallOptions, type GenerateInput, Model } from "./src/generate/model.ts";
export type { FinishReason, GenerationResult } from "./src/generate/generator.ts";
export type { GenerateOptions, SamplingOptions } from "./src/generate/options.ts";
export type { ChatOptions, StreamOptions } from "./src/generate/model.ts";
export type { ResponseEvent } from "./src/generate/parsers/gemma4_response.ts";
export { type ToolCall, ToolCallParseError, type ToolSpec, type ToolValue } from "./src/generate/parsers/tool_calls.ts";
export { type ChatMessage, StreamDecoder, Tokenizer } from "./src/tokenizer/mod.ts";
export { ConfigError } from "./src/models/gemma3/config.ts";
export {
  type Gemma4LayerSpec,
  type Gemma4Model,
  type Gemma4MoeSpec,
  type Gemma4TextConfig,
  parseGemma4Config,
} from "./src/models/gemma4/config.ts";
export { Gemma4TextModel } from "./src/models/gemma4/model.ts";
export { type LoadGemma4Options, loadGemma4Text } from "./src/models/gemma4/load.ts";
export { WeightsError } from "./src/models/weights.ts";
export { FormatError } from "./src/formats/errors.ts";
export {
  decodeImage,
  GEMMA3_IMAGE_TOKENS,
  Gemma3ImageProcessorConfig,
  gemma3ImagePromptText,
  type Gemma3PixelValues,
  type Gemma3ProcessorOverrides,
  ImageError,
  type ImageErrorKind,
  type ImageSource,
  loadImage,
  type LoadImageOptions,
  panAndScanCrops,
  preprocessGemma3,
  type RgbImage,
} from "./src/vision/mod.ts";
export { Backend, type BackendOptions, defaultBackend, type MemoryStats } from "./src/runtime/backend.ts";
export { Tensor } from "./src/runtime/tensor.ts";
export { DecodeProgram } from "./src/runtime/program.ts";
export { type DType, DTYPE_BYTES } from "./src/runtime/dtype.ts";
export { type BackendChoice, type BackendKind, libraryDir } from "./src/ffi/library.ts";
export {
  ContextLengthError,
  DisposedError,
  DTypeError,
  GemmakitError,
  LibraryError,
  NativeError,
  ShapeError,
  type StatusName,
} from "./src/ffi/errors.ts";
export {
  add,
  argmax,
  attentionDecode,
  type AttentionOptions,
  attentionPrefill,
  DECODE_STATE,
  embedding,
  geluTanh,
  geluTanhMul,
  kvCacheWrite,
  layerNorm,
  linear,
  mul,
  type PrefillOptions,
  rmsNorm,
  type RmsNormMode,
  rope,
  ropeInvFreq,
  type RopeSpec,
  sample,
  type SamplingParams,
  scale,
  softcap,
  softmax,
} from "./src/ops/mod.ts";
