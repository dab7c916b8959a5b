/**
 * Element types of device tensors and host-side conversions between them.
 * @module
 */
import { dequantize, dequantizeX16, QUANT_BLOCKS, QUANT_DTYPES, type QuantDType } from "./quant.ts";

export { QUANT_BLOCKS, QUANT_DTYPES, type QuantDType };

/** Float element types: activations are f32; weights may be f32, f16 or bf16. */
export type FloatDType = "f32" | "f16" | "bf16";
/**
 * A layout the CPU library makes from a weight for its own kernels (gk_repack; src/ops/repack.ts): Q8_0, Q5_0, Q4_0,
 * Q4_1, Q5_1, Q4_K, Q5_K or Q6_K with 16 rows interleaved, the same bytes reordered (kernels/include/gemmakit.h). Never
 * in a file; only linear and embedding read it.
 */
export type RepackedDType =
  | "q8_0x16"
  | "q5_0x16"
  | "q4_0x16"
  | "q4_1x16"
  | "q5_1x16"
  | "q4_kx16"
  | "q5_kx16"
  | "q6_kx16";
/** The file formats a layout is made from. */
export type RepackableDType = "q8_0" | "q5_0" | "q4_0" | "q4_1" | "q5_1" | "q4_k" | "q5_k" | "q6_k";
/** Each repacked layout and the file format it is made from. */
export const REPACKED_FROM: Readonly<Record<RepackedDType, RepackableDType>> = {
  q8_0x16: "q8_0",
  q5_0x16: "q5_0",
  q4_0x16: "q4_0",
  q4_1x16: "q4_1",
  q5_1x16: "q5_1",
  q4_kx16: "q4_k",
  q5_kx16: "q5_k",
  q6_kx16: "q6_k",
};
/** Element type of a tensor. */
export type DType = FloatDType | "i32" | QuantDType | RepackedDType;

/** The gk_dtype code of kernels/include/gemmakit.h (quantized codes are ggml's type ids but for Q4_0, Q4_1). */
export const DTYPE_CODE: Readonly<Record<DType, number>> = {
  f32: 0,
  f16: 1,
  bf16: 2,
  i32: 3,
  q4_0: 102, // ggml's 2 and 3 are BF16 and I32 here (kernels/include/gemmakit.h)
  q4_1: 103,
  q5_0: 6,
  q5_1: 7,
  q8_0: 8,
  q2_k: 10,
  q3_k: 11,
  q4_k: 12,
  q5_k: 13,
  q6_k: 14,
  iq4_nl: 20,
  iq4_xs: 23,
  mxfp4: 39,
  q8_0x16: 208,
  q5_0x16: 209,
  q4_kx16: 210,
  q6_kx16: 211,
  q4_0x16: 212,
  q5_kx16: 213,
  q4_1x16: 214,
  q5_1x16: 215,
};

/** Bytes per element of the unquantized dtypes. */
export const DTYPE_BYTES: Readonly<Record<FloatDType | "i32", number>> = { f32: 4, f16: 2, bf16: 2, i32: 4 };

/** Weight dtypes the kernels read directly. */
export const FLOAT_DTYPES: readonly DType[] = ["f32", "f16", "bf16"];
/** Weights a matrix product or embedding gather reads as stored. */
export const MATMUL_WEIGHT_DTYPES: readonly DType[] = [...FLOAT_DTYPES, ...QUANT_DTYPES];
/** What linear and embedding take: the stored dtypes and the CPU library's repacked layouts. */
export const KERNEL_WEIGHT_DTYPES: readonly DType[] = [
  ...MATMUL_WEIGHT_DTYPES,
  ...(Object.keys(REPACKED_FROM) as RepackedDType[]),
];

/** Rows per interleaved group of a repacked matrix. */
export const REPACK_ROWS = 16;

export function isRepacked(dtype: DType): dtype is RepackedDType {
  return dtype in REPACKED_FROM;
}

export function isQuantized(dtype: DType): dtype is QuantDType {
  return dtype in QUANT_BLOCKS;
}

/** Block geometry of a block-quantized dtype, a repacked one included (its file format's); undefined for the rest. */
export function blockOf(dtype: DType): { elems: number; bytes: number } | undefined {
  if (isRepacked(dtype)) return QUANT_BLOCKS[REPACKED_FROM[dtype]];
  return isQuantized(dtype) ? QUANT_BLOCKS[dtype] : undefined;
}

/**
 * Bytes a tensor of `dtype` and `shape` occupies, or undefined when a quantized tensor's innermost
 * dimension is not a whole number of blocks.
 */
export function byteLengthOf(dtype: DType, shape: readonly number[]): number | undefined {
  const count = shape.reduce((a, b) => a * b, 1);
  const block = blockOf(dtype);
  if (!block) return count * DTYPE_BYTES[dtype as FloatDType | "i32"];
  const inner = shape.at(-1) ?? 1;
  if (isRepacked(dtype) && (count / inner) % REPACK_ROWS !== 0) return undefined;
  return inner % block.elems === 0 ? (count / block.elems) * block.bytes : undefined;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** f32 → bf16 bits, round to nearest even (as torch's `.to(torch.bfloat16)`); NaN stays NaN. */
export function f32ToBf16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i];
    const bits = u32[0];
    if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) {
      out[i] = (bits >>> 16) | 0x40; // quiet NaN
    } else {
      out[i] = (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

/** bf16 bits → f32 (exact). */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

/** IEEE half bits → f32 (exact, subnormals included). */
export function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const man = h & 0x3ff;
    if (exp === 0) out[i] = sign * man * 2 ** -24;
    else if (exp === 0x1f) out[i] = man ? NaN : sign * Infinity;
    else out[i] = sign * (1 + man / 1024) * 2 ** (exp - 15);
  }
  return out;
}

/** f32 → IEEE half bits, round to nearest even; overflow goes to infinity. */
export function f32ToF16(src: ArrayLike<number>): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let man = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (man ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      man |= 0x800000;
      const shift = 14 - e;
      const half = 1 << (shift - 1);
      const rest = man & ((1 << shift) - 1);
      let h = man >>> shift;
      if (rest > half || (rest === half && (h & 1))) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (man >>> 13);
    const rest = man & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // a carry into the exponent rounds correctly
    out[i] = sign | h;
  }
  return out;
}

/** Values in `dtype` as the bytes a tensor of that dtype holds (not for quantized dtypes: quantizing is lossy). */
export function encode(values: ArrayLike<number>, dtype: DType): Uint8Array {
  if (isQuantized(dtype) || isRepacked(dtype)) {
    throw new TypeError(`encode: cannot quantize to ${dtype}; upload GGUF blocks with Tensor.fromBytes`);
  }
  switch (dtype) {
    case "f32":
      return new Uint8Array(Float32Array.from(values).buffer);
    case "i32":
      return new Uint8Array(Int32Array.from(values).buffer);
    case "bf16":
      return new Uint8Array(f32ToBf16(values).buffer);
    case "f16":
      return new Uint8Array(f32ToF16(values).buffer);
  }
}

/**
 * Bytes of a tensor of `dtype` as numbers (f32 for float and quantized dtypes); `inner`, the last dimension, is
 * needed for the repacked layouts (their rows are interleaved).
 */
export function decode(bytes: Uint8Array, dtype: DType, inner?: number): Float32Array | Int32Array {
  if (isRepacked(dtype)) {
    if (inner === undefined) throw new TypeError(`decode: a ${dtype} matrix needs its row length`);
    return dequantizeX16(bytes, dtype, inner);
  }
  if (isQuantized(dtype)) return dequantize(bytes, dtype);
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  switch (dtype) {
    case "f32":
      return new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
    case "i32":
      return new Int32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
    case "bf16":
      return bf16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
    case "f16":
      return f16ToF32(new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2));
  }
}

/** Rounds values to what `dtype` can hold, back as f32 (what a kernel will read from such a weight). */
export function roundTo(values: ArrayLike<number>, dtype: DType): Float32Array {
  return Float32Array.from(decode(encode(values, dtype), dtype));
}
