/**
 * gemmakit: Gemma 3 and Gemma 4 on CUDA kernels (and their C++ CPU twins), from Deno.
 *
 * This module only re-exports. The foundation layers are available today: backends (device contexts),
 * device tensors, and the kernel ops the model graphs are built from.
 *
 * @example
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
export { Backend, type BackendOptions, defaultBackend, type MemoryStats } from "./src/runtime/backend.ts";
export { Tensor } from "./src/runtime/tensor.ts";
export { DecodeProgram } from "./src/runtime/program.ts";
export { type DType, DTYPE_BYTES } from "./src/runtime/dtype.ts";
export { type BackendChoice, type BackendKind, libraryDir } from "./src/ffi/library.ts";
export {
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
