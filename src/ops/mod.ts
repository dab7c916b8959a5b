/**
 * Typed wrappers of the native kernels. Each checks shapes and dtypes, then makes one FFI call.
 * @module
 */
export { embedding } from "./embedding.ts";
export { layerNorm, rmsNorm, type RmsNormMode } from "./norm.ts";
export { greedyLogits, linear } from "./linear.ts";
export { repackForBackend } from "./repack.ts";
export { avgPool2d, patchExtract } from "./vision.ts";
export { rope, ropeAxes, ropeInvFreq, type RopeSpec } from "./rope.ts";
export { gatherSum } from "./gather.ts";
export { attentionDecode, type AttentionOptions, attentionPrefill, type PrefillOptions } from "./attention.ts";
export { kvCacheWrite } from "./kv_cache.ts";
export { copyRows } from "./copy.ts";
export { add, clamp, geluTanh, geluTanhMul, mul, scale, softcap } from "./elementwise.ts";
export { argmax, softmax } from "./reduce.ts";
export { MOE_MAX_TOP_K, moeExperts, moeRoute, moeScratchBytes } from "./moe.ts";
export {
  DECODE_STATE,
  logitsProcess,
  type LogitsProcessing,
  logprobs,
  LOGPROBS_MAX_TOP,
  packSamplingParams,
  sample,
  type SamplingParams,
} from "./sample.ts";
