/**
 * GGUF block formats on the host: dequantization to f32 (Tensor.toArray of a quantized tensor, and the
 * reference the op-parity tests hold the native kernels to).
 * @module
 */
import type { QuantDType } from "./dtype.ts";

/** Dequantizes whole blocks of `dtype` to f32. (Implemented per format below.) */
export function dequantize(_bytes: Uint8Array, dtype: QuantDType): Float32Array {
  throw new TypeError(`dequantize: ${dtype} is not implemented yet`);
}
