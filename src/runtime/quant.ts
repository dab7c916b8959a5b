/**
 * GGUF block formats on the host: dequantization to f32 (Tensor.toArray of a quantized tensor, and the
 * reference the op-parity tests hold the native kernels to).
 *
 * Each format is decoded as ggml's dequantize_row_* defines it (little-endian blocks, f16 scales, f32
 * products), one plain loop per format. kernels/cpu/quant.h decodes the same layouts natively.
 * @module
 */

/** GGUF block-quantized weight types, stored as in the file (kernels/include/gemmakit.h). */
export type QuantDType = "q5_0" | "q8_0" | "q4_k" | "q6_k";

/** Block geometry of the quantized dtypes: `elems` values stored in `bytes` bytes (kernels/common/dtype.h). */
export const QUANT_BLOCKS: Readonly<Record<QuantDType, { elems: number; bytes: number }>> = {
  q5_0: { elems: 32, bytes: 22 },
  q8_0: { elems: 32, bytes: 34 },
  q4_k: { elems: 256, bytes: 144 },
  q6_k: { elems: 256, bytes: 210 },
};

export const QUANT_DTYPES: readonly QuantDType[] = ["q5_0", "q8_0", "q4_k", "q6_k"];
const BLOCK = QUANT_BLOCKS;

/** IEEE binary16 (little-endian at `at`) → number, exact (subnormals, infinities and NaN included). */
function f16At(b: Uint8Array, at: number): number {
  const h = b[at] | (b[at + 1] << 8);
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 0x1f) return man ? NaN : sign * Infinity;
  return sign * (1 + man / 1024) * 2 ** (exp - 15);
}

const i8 = (v: number) => (v << 24) >> 24;

/** Q8_0: {f16 d; i8 qs[32]}: x[i] = d * qs[i]. */
function q8_0(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at);
  for (let i = 0; i < 32; i++) out[o + i] = d * i8(b[at + 2 + i]);
}

/**
 * Q5_0: {f16 d; u8 qh[4]; u8 qs[16]}. Element j < 16 is the low nibble of qs[j] with bit j of qh as its
 * fifth bit; element j + 16 the high nibble with bit j + 16. x = (q5 - 16) * d.
 */
function q5_0(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at);
  const qh = (b[at + 2] | (b[at + 3] << 8) | (b[at + 4] << 16) | (b[at + 5] << 24)) >>> 0;
  for (let j = 0; j < 16; j++) {
    const q = b[at + 6 + j];
    const lo = (q & 0xf) | (((qh >>> j) & 1) << 4);
    const hi = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
    out[o + j] = (lo - 16) * d;
    out[o + j + 16] = (hi - 16) * d;
  }
}

/** Scale and min of Q4_K sub-block j (0..7) from the 12 packed 6-bit pairs at `s` (ggml's get_scale_min_k4). */
function scaleMinK4(b: Uint8Array, s: number, j: number): [number, number] {
  if (j < 4) return [b[s + j] & 63, b[s + j + 4] & 63];
  return [(b[s + j + 4] & 0xf) | ((b[s + j - 4] >> 6) << 4), (b[s + j + 4] >> 4) | ((b[s + j] >> 6) << 4)];
}

/**
 * Q4_K: {f16 d; f16 dmin; u8 scales[12]; u8 qs[128]}: 8 sub-blocks of 32. Sub-blocks 2p and 2p + 1 are
 * the low and high nibbles of qs[32p .. 32p + 32). x = (d * sc) * q - (dmin * m), products in f32.
 */
function q4_k(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at), dmin = f16At(b, at + 2);
  for (let p = 0; p < 4; p++) {
    const [sc0, m0] = scaleMinK4(b, at + 4, 2 * p), [sc1, m1] = scaleMinK4(b, at + 4, 2 * p + 1);
    const d0 = Math.fround(d * sc0), min0 = Math.fround(dmin * m0);
    const d1 = Math.fround(d * sc1), min1 = Math.fround(dmin * m1);
    for (let l = 0; l < 32; l++) {
      const q = b[at + 16 + 32 * p + l];
      out[o + 64 * p + l] = d0 * (q & 0xf) - min0;
      out[o + 64 * p + 32 + l] = d1 * (q >> 4) - min1;
    }
  }
}

/**
 * Q6_K: {u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d}, two halves of 128. In half h, element 32t + l
 * (t < 4, l < 32) takes its low 4 bits from ql[64h + l + 32(t & 1)] (low nibble for t < 2, else high)
 * and its top 2 bits from bits 2t, 2t + 1 of qh[32h + l]; its scale is scales[8h + 2t + l / 16].
 * x = (d * scale) * (q6 - 32), products in f32.
 */
function q6_k(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at + 208);
  for (let h = 0; h < 2; h++) {
    for (let t = 0; t < 4; t++) {
      for (let l = 0; l < 32; l++) {
        const ql = b[at + 64 * h + l + 32 * (t & 1)];
        const low = t < 2 ? ql & 0xf : ql >> 4;
        const high = (b[at + 128 + 32 * h + l] >> (2 * t)) & 3;
        const scale = i8(b[at + 192 + 8 * h + 2 * t + (l >> 4)]);
        out[o + 128 * h + 32 * t + l] = Math.fround(d * scale) * ((low | (high << 4)) - 32);
      }
    }
  }
}

const DECODERS: Readonly<Record<QuantDType, typeof q8_0>> = { q5_0, q8_0, q4_k, q6_k };

/** Dequantizes whole blocks of `dtype` to f32 (a tensor's bytes in row-major order). */
export function dequantize(bytes: Uint8Array, dtype: QuantDType): Float32Array {
  const { elems, bytes: size } = BLOCK[dtype];
  if (bytes.byteLength % size !== 0) {
    throw new RangeError(`dequantize: ${bytes.byteLength} bytes are not whole ${dtype} blocks of ${size} bytes`);
  }
  const blocks = bytes.byteLength / size;
  const out = new Float32Array(blocks * elems);
  const decode = DECODERS[dtype];
  for (let i = 0; i < blocks; i++) decode(bytes, i * size, out, i * elems);
  return out;
}
