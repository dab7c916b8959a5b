/**
 * GGUF block formats on the host: dequantization to f32 (Tensor.toArray of a quantized tensor, and the
 * reference the op-parity tests hold the native kernels to).
 *
 * Each format is decoded as ggml's dequantize_row_* defines it (little-endian blocks, f16 scales, f32
 * products), one plain loop per format. kernels/cpu/quant.h decodes the same layouts natively.
 * @module
 */

/** GGUF block-quantized weight types, stored as in the file (kernels/include/gemmakit.h). */
export type QuantDType =
  | "q4_0"
  | "q4_1"
  | "q5_0"
  | "q5_1"
  | "q8_0"
  | "q2_k"
  | "q3_k"
  | "q4_k"
  | "q5_k"
  | "q6_k"
  | "iq4_nl"
  | "iq4_xs"
  | "mxfp4";

/** Block geometry of the quantized dtypes: `elems` values stored in `bytes` bytes (kernels/common/dtype.h). */
export const QUANT_BLOCKS: Readonly<Record<QuantDType, { elems: number; bytes: number }>> = {
  q4_0: { elems: 32, bytes: 18 },
  q4_1: { elems: 32, bytes: 20 },
  q5_0: { elems: 32, bytes: 22 },
  q5_1: { elems: 32, bytes: 24 },
  q8_0: { elems: 32, bytes: 34 },
  q2_k: { elems: 256, bytes: 84 },
  q3_k: { elems: 256, bytes: 110 },
  q4_k: { elems: 256, bytes: 144 },
  q5_k: { elems: 256, bytes: 176 },
  q6_k: { elems: 256, bytes: 210 },
  iq4_nl: { elems: 32, bytes: 18 },
  iq4_xs: { elems: 256, bytes: 136 },
  mxfp4: { elems: 32, bytes: 17 },
};

export const QUANT_DTYPES: readonly QuantDType[] = Object.keys(QUANT_BLOCKS) as QuantDType[];
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

/** ggml's kvalues_iq4nl: the IQ4_NL / IQ4_XS codebook. */
const IQ4NL_VALUES = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];
/** ggml's kvalues_mxfp4: e2m1 values doubled (the E8M0 scale is halved to match). */
const MXFP4_VALUES = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/** Element j < 16 of a 32-element group is the low nibble of qs[j], element j + 16 its high nibble. */
function nibble(b: Uint8Array, qs: number, j: number): number {
  return j < 16 ? b[qs + j] & 0xf : b[qs + j - 16] >> 4;
}

const u32At = (b: Uint8Array, at: number) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;

/** Q4_0: {f16 d; u8 qs[16]}: x = (q4 - 8) * d. */
function q4_0(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at);
  for (let j = 0; j < 32; j++) out[o + j] = (nibble(b, at + 2, j) - 8) * d;
}

/** Q4_1: {f16 d; f16 m; u8 qs[16]}: x = q4 * d + m, rounded once (q4 * d is exact). */
function q4_1(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at), m = f16At(b, at + 2);
  for (let j = 0; j < 32; j++) out[o + j] = nibble(b, at + 4, j) * d + m;
}

/** Q5_1: {f16 d; f16 m; u8 qh[4]; u8 qs[16]}: bit j of qh is element j's fifth bit; x = q5 * d + m. */
function q5_1(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at), m = f16At(b, at + 2), qh = u32At(b, at + 4);
  for (let j = 0; j < 32; j++) out[o + j] = (nibble(b, at + 8, j) | (((qh >>> j) & 1) << 4)) * d + m;
}

/** IQ4_NL: {f16 d; u8 qs[16]}: x = d * kvalues_iq4nl[q4]. */
function iq4_nl(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at);
  for (let j = 0; j < 32; j++) out[o + j] = d * IQ4NL_VALUES[nibble(b, at + 2, j)];
}

/** MXFP4: {u8 e; u8 qs[16]}: x = kvalues_mxfp4[q4] * 2^(e - 128). */
function mxfp4(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = 2 ** (b[at] - 128); // ggml's GGML_E8M0_TO_FP32_HALF (e < 2: f32 subnormals, as there)
  for (let j = 0; j < 32; j++) out[o + j] = MXFP4_VALUES[nibble(b, at + 1, j)] * d;
}

/**
 * Q2_K: {u8 scales[16]; u8 qs[64]; f16 d; f16 dmin}, two halves of 128. In half h, element 32t + l (t < 4)
 * is bits 2t, 2t + 1 of qs[32h + l]; scales[8h + 2t + l / 16] holds its 4-bit scale (low nibble) and min.
 * x = (d * sc) * q2 - (dmin * m), products in f32.
 */
function q2_k(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at + 80), dmin = f16At(b, at + 82);
  for (let h = 0; h < 2; h++) {
    for (let t = 0; t < 4; t++) {
      for (let l = 0; l < 32; l++) {
        const s = b[at + 8 * h + 2 * t + (l >> 4)];
        const q = (b[at + 16 + 32 * h + l] >> (2 * t)) & 3;
        out[o + 128 * h + 32 * t + l] = Math.fround(d * (s & 0xf)) * q - Math.fround(dmin * (s >> 4));
      }
    }
  }
}

/**
 * Q3_K: {u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d}. Element 32g + l (g = 4h + t < 8) is bits 2t, 2t + 1
 * of qs[32h + l] with bit g of hmask[l] as its third bit; its 6-bit scale i = 2g + l / 16 is nibble i / 8 of
 * scales[i % 8] with bits 2(i / 4) of scales[8 + i % 4] on top, biased by 32. x = (d * (sc - 32)) * (q3 - 4).
 */
function q3_k(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at + 108), s = at + 96;
  for (let g = 0; g < 8; g++) {
    for (let l = 0; l < 32; l++) {
      const i = 2 * g + (l >> 4);
      const sc = (((b[s + (i & 7)] >> (4 * (i >> 3))) & 0xf) | (((b[s + 8 + (i & 3)] >> (2 * (i >> 2))) & 3) << 4)) -
        32;
      const q = ((b[at + 32 + 32 * (g >> 2) + l] >> (2 * (g & 3))) & 3) | (((b[at + l] >> g) & 1) << 2);
      out[o + 32 * g + l] = Math.fround(d * sc) * (q - 4);
    }
  }
}

/**
 * Q5_K: {f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]}: Q4_K's layout with a fifth bit, bit g of
 * qh[l] for element l of sub-block g. x = (d * sc) * q5 - (dmin * m).
 */
function q5_k(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at), dmin = f16At(b, at + 2);
  for (let g = 0; g < 8; g++) {
    const [sc, m] = scaleMinK4(b, at + 4, g);
    const dl = Math.fround(d * sc), ml = Math.fround(dmin * m);
    for (let l = 0; l < 32; l++) {
      const q = ((b[at + 48 + 32 * (g >> 1) + l] >> (4 * (g & 1))) & 0xf) | (((b[at + 16 + l] >> g) & 1) << 4);
      out[o + 32 * g + l] = dl * q - ml;
    }
  }
}

/**
 * IQ4_XS: {f16 d; u16 scales_h; u8 scales_l[4]; u8 qs[128]}: 8 groups of 32 laid out as IQ4_NL blocks; group g's
 * 6-bit scale is nibble g % 2 of scales_l[g / 2] with bits 2g, 2g + 1 of scales_h on top, biased by 32.
 * x = (d * (ls - 32)) * kvalues_iq4nl[q4].
 */
function iq4_xs(b: Uint8Array, at: number, out: Float32Array, o: number): void {
  const d = f16At(b, at), sh = b[at + 2] | (b[at + 3] << 8);
  for (let g = 0; g < 8; g++) {
    const ls = ((b[at + 4 + (g >> 1)] >> (4 * (g & 1))) & 0xf) | (((sh >> (2 * g)) & 3) << 4);
    const dl = Math.fround(d * (ls - 32));
    for (let j = 0; j < 32; j++) out[o + 32 * g + j] = dl * IQ4NL_VALUES[nibble(b, at + 8 + 16 * g, j)];
  }
}

const DECODERS: Readonly<Record<QuantDType, typeof q8_0>> = {
  q4_0,
  q4_1,
  q5_0,
  q5_1,
  q8_0,
  q2_k,
  q3_k,
  q4_k,
  q5_k,
  q6_k,
  iq4_nl,
  iq4_xs,
  mxfp4,
};

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

/** Each repacked layout: the file format's block (columns, bytes a row) and the stored codes' offset above q. */
const X16_FORMATS = {
  q8_0x16: { cols: 32, rowBytes: 34, offset: 128 },
  q5_0x16: { cols: 32, rowBytes: 22, offset: 16 },
  q4_0x16: { cols: 32, rowBytes: 18, offset: 8 },
  q4_1x16: { cols: 32, rowBytes: 20, offset: 0 },
  q5_1x16: { cols: 32, rowBytes: 24, offset: 0 },
  q4_kx16: { cols: 256, rowBytes: 144, offset: 0 },
  q5_kx16: { cols: 256, rowBytes: 176, offset: 0 },
  q6_kx16: { cols: 256, rowBytes: 210, offset: 32 },
} as const;

/**
 * A matrix in one of the CPU library's 16-row layouts (kernels/include/gemmakit.h) of rows `k` long → f32 [rows, k]:
 * the host-side reference the CPU kernels are held to, written from the header's description. A group of 16 rows holds,
 * per block of its file format, their scales and then, per 32 columns, the codes of elements 4t .. 4t + 3 for t < 8
 * (row j's at 4j of a 64-byte vector): Q8_0 q + 128 whole; the others' low 4 bits as nibbles (t < 4 low, t >= 4 high,
 * of 4 vectors), Q5_0's, Q5_1's and Q5_K's bit 4 in a u64 mask per t after them, Q6_K's top 2 bits in 2 vectors after
 * them (bits 2(t % 4) of vector t / 4).
 */
export function dequantizeX16(bytes: Uint8Array, dtype: keyof typeof X16_FORMATS, k: number): Float32Array {
  const f = X16_FORMATS[dtype], blockBytes = 16 * f.rowBytes;
  const blocks = k / f.cols, groupBytes = blocks * blockBytes;
  if (!Number.isInteger(blocks) || blocks < 1 || bytes.byteLength % groupBytes !== 0) {
    throw new RangeError(`dequantize: ${bytes.byteLength} bytes are not whole ${dtype} groups of 16 rows of ${k}`);
  }
  const nibble = (at: number, t: number) => (bytes[at + 64 * (t % 4)] >> (t < 4 ? 0 : 4)) & 0xf;
  /** Stored code of row j, element 4t + e of the chunk (32 columns) whose codes start at `at`. */
  const code = (at: number, j: number, t: number, e: number): number => {
    const lane = 4 * j + e;
    switch (dtype) {
      case "q8_0x16":
        return bytes[at + 64 * t + lane];
      case "q5_0x16":
      case "q5_1x16":
      case "q5_kx16":
        return nibble(at + lane, t) | (((bytes[at + 256 + 8 * t + (lane >> 3)] >> (lane & 7)) & 1) << 4);
      case "q4_0x16":
      case "q4_1x16":
      case "q4_kx16":
        return nibble(at + lane, t);
      case "q6_kx16":
        return nibble(at + lane, t) | (((bytes[at + 256 + 64 * (t >> 2) + lane] >> (2 * (t % 4))) & 3) << 4);
    }
  };
  const rows = (bytes.byteLength / groupBytes) * 16;
  const out = new Float32Array(rows * k);
  for (let r = 0; r < rows; r++) {
    const j = r % 16;
    for (let b = 0; b < blocks; b++) {
      const at = Math.floor(r / 16) * groupBytes + b * blockBytes, d = f16At(bytes, at + 2 * j);
      for (let c = 0; c < f.cols / 32; c++) {
        // Per 16-element half: value = scale · (code − offset) − min.
        let scale = [d, d], min = 0, codes = at + 32;
        if (dtype === "q4_kx16" || dtype === "q5_kx16") {
          const packed = Uint8Array.from({ length: 12 }, (_, i) => bytes[at + 64 + 64 * (i >> 2) + 4 * j + (i & 3)]);
          const [sc, m] = c < 4
            ? [packed[c] & 63, packed[c + 4] & 63]
            : [(packed[c + 4] & 0xf) | ((packed[c - 4] >> 6) << 4), (packed[c + 4] >> 4) | ((packed[c] >> 6) << 4)];
          scale = [d * sc, d * sc].map(Math.fround);
          min = Math.fround(f16At(bytes, at + 32 + 2 * j) * m);
          codes = at + 256 + (dtype === "q4_kx16" ? 256 : 320) * c;
        } else if (dtype === "q6_kx16") {
          scale = [0, 1].map((h) => Math.fround(d * i8(bytes[at + 32 + 16 * (2 * c + h) + j])));
          codes = at + 288 + 384 * c;
        } else if (dtype === "q4_1x16" || dtype === "q5_1x16") {
          min = -f16At(bytes, at + 32 + 2 * j);
          codes = at + 64;
        }
        for (let t = 0; t < 8; t++) {
          for (let e = 0; e < 4; e++) {
            out[r * k + b * f.cols + 32 * c + 4 * t + e] = scale[t >> 2] * (code(codes, j, t, e) - f.offset) - min;
          }
        }
      }
    }
  }
  return out;
}
