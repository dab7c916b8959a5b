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
// Loading and generation.
export { loadModel, type LoadModelOptions } from "./src/models/load.ts";
export { findMmproj } from "./src/models/common/mmproj.ts";
export { type Checkpoint, FAMILIES, type Family, familyFor } from "./src/models/registry.ts";
export {
  type BatchStats,
  type ChatOptions,
  type GenerateCallOptions,
  type GenerateInput,
  MAX_PARALLEL,
  type MediaLayout,
  Model,
  type ModelOptions,
  type ModelParts,
  type StreamOptions,
} from "./src/generate/model.ts";
export type { FinishReason, GenerationResult, ResponseEvent, ResponseParser } from "./src/generate/result.ts";
export type { GenerateOptions, SamplingOptions } from "./src/generate/options.ts";
export type { ResponseFormat } from "./src/generate/constraint.ts";
export type { TokenLogprob } from "./src/generate/result.ts";
export type { ImageOptions, MediaOptions, VideoOptions } from "./src/generate/media.ts";
export { type ToolCall, type ToolSpec, type ToolValue } from "./src/generate/tools.ts";
export { type ChatMessage, StreamDecoder, Tokenizer } from "./src/tokenizer/mod.ts";

// Errors: every one gemmakit throws.
export {
  BoundsError,
  ConfigError,
  ConstraintError,
  ContextLengthError,
  DataUrlError,
  type DataUrlErrorKind,
  DisposedError,
  DTypeError,
  FormatError,
  GemmakitError,
  ImageError,
  type ImageErrorKind,
  ImageInputError,
  LibraryError,
  MmprojError,
  type MmprojErrorKind,
  NativeError,
  RemoteMediaError,
  type RemoteMediaErrorKind,
  ShapeError,
  type StatusName,
  ToolCallParseError,
  VideoError,
  type VideoErrorKind,
  WeightsError,
} from "./src/errors.ts";

// Families: each one's config, text model, loader and processors.
export * from "./src/models/gemma3/mod.ts";
export * from "./src/models/gemma4/mod.ts";

// Media input shared by the families.
export {
  decodeImage,
  decodeVideo,
  fetchRemoteMedia,
  type ImageSource,
  isPublicAddress,
  loadImage,
  type LoadImageOptions,
  probeImage,
  type RemoteFetchOptions,
  type RemoteImageOptions,
  type RgbImage,
  type VideoSource,
} from "./src/vision/mod.ts";

// The layers below: backends, device tensors, kernel ops, decode programs.
export { Backend, type BackendOptions, defaultBackend, type MemoryStats } from "./src/runtime/backend.ts";
export type { VisionCacheStats } from "./src/runtime/vision_cache.ts";
export { Tensor } from "./src/runtime/tensor.ts";
export { type DataUrl, decodeBase64, decodeDataUrl } from "./src/runtime/bounds.ts";
export { DecodeProgram } from "./src/runtime/program.ts";
export { type DType, DTYPE_BYTES } from "./src/runtime/dtype.ts";
export { type BackendChoice, type BackendKind, libraryDir } from "./src/ffi/library.ts";
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
