/**
 * The op-parity table: one row per op and case. parity_test.ts runs every row on the CPU library
 * against reference.ts, and on CUDA against the CPU library when a GPU is present.
 *
 * Adding an op: declare it in kernels/include/gemmakit.h, validate it in kernels/common/validate.h,
 * write kernels/cpu/<op>.cpp and kernels/cuda/<op>.cu, add the symbol to src/ffi/symbols.ts and a
 * wrapper to src/ops/, a reference to reference.ts, and rows here: shapes that are odd and not
 * multiples of any tile, every weight dtype, every parameter that changes the arithmetic.
 *
 * Limits are NMSE = Σ(out − ref)² / Σ ref². Reference weights are the dtype-rounded values the kernel
 * reads, so a row measures kernel arithmetic, not bf16 storage. f32 accumulation over k terms gives
 * NMSE around k·ε² ≈ 1e-12; any indexing or masking mistake gives 1e-4 or worse.
 */
import type { Backend } from "../../src/runtime/backend.ts";
import {
  type DType,
  f32ToF16,
  QUANT_BLOCKS,
  QUANT_DTYPES,
  type QuantDType,
  type RepackableDType,
  roundTo,
} from "../../src/runtime/dtype.ts";
import { dequantize } from "../../src/runtime/quant.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import * as ops from "../../src/ops/mod.ts";
import * as ref from "./reference.ts";

export interface OpCase {
  op: string;
  /** Parameters, printed with every result. */
  name: string;
  /** NMSE limit against the reference (CPU) and, unless `cudaNmse` says otherwise, CUDA against CPU. */
  nmse: number;
  /** Looser CUDA-vs-CPU limit where the GPU path rounds differently on purpose (bf16 tensor cores). */
  cudaNmse?: number;
  /**
   * CUDA-vs-CPU limit on max|Δ| / rms(CPU output), default CUDA_MAX_REL. NMSE averages over every output, so a
   * tile that is wrong in a handful of elements can hide under a loose NMSE; this bounds each element.
   */
  cudaMaxRel?: number;
  /** Integer outputs: compared exactly. */
  exact?: boolean;
  /** Builds the inputs from a seeded generator. */
  setup(rng: Rng): Prepared;
}

export interface Prepared {
  reference(): ArrayLike<number>;
  run(backend: Backend): ArrayLike<number>;
}

export class Rng {
  #s: number;
  constructor(seed: number) {
    this.#s = seed >>> 0;
  }
  /** mulberry32 */
  next(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  floats(n: number, lo = -1, hi = 1): Float32Array {
    return Float32Array.from({ length: n }, () => lo + (hi - lo) * this.next());
  }
  ints(n: number, lo: number, hi: number): Int32Array {
    return Int32Array.from({ length: n }, () => lo + Math.floor((hi - lo) * this.next()));
  }
}

/** The f16 fields of each block format (byte offset, signed): block scales, mins, Q4_1/Q5_1's offset m. */
const QUANT_F16_FIELDS: Readonly<Record<QuantDType, [offset: number, signed: boolean][]>> = {
  q4_0: [[0, true]],
  q4_1: [[0, false], [2, true]],
  q5_0: [[0, true]],
  q5_1: [[0, false], [2, true]],
  q8_0: [[0, true]],
  q2_k: [[80, false], [82, false]],
  q3_k: [[108, true]],
  q4_k: [[0, false], [2, false]],
  q5_k: [[0, false], [2, false]],
  q6_k: [[208, true]],
  iq4_nl: [[0, true]],
  iq4_xs: [[0, true]],
  mxfp4: [],
};

/**
 * Valid GGUF blocks of `dtype` for a [rows, cols] tensor: random codes (every bit pattern of qs, qh and the
 * packed scales), f16 block scales of realistic size, log-uniform (K-quants reach f16 subnormals, as real
 * files do), never NaN or infinite.
 */
export function randomQuantBlocks(rng: Rng, dtype: QuantDType, rows: number, cols: number): Uint8Array {
  const { elems, bytes } = QUANT_BLOCKS[dtype];
  if (cols % elems !== 0) throw new RangeError(`randomQuantBlocks: cols=${cols} is not whole ${dtype} blocks`);
  const blocks = (rows * cols) / elems;
  const out = new Uint8Array(blocks * bytes);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(rng.next() * 256);
  const scale = (lo: number, hi: number, signed: boolean) =>
    (signed && rng.next() < 0.5 ? -1 : 1) * 10 ** (lo + (hi - lo) * rng.next());
  const put = (at: number, value: number) => {
    const h = f32ToF16([value])[0];
    out[at] = h & 0xff;
    out[at + 1] = h >> 8;
  };
  for (let b = 0; b < blocks; b++) {
    const at = b * bytes;
    for (const [offset, signed] of QUANT_F16_FIELDS[dtype]) {
      // K-quant super-block scales multiply 6-bit sub-scales, so they are smaller (down to f16 subnormals).
      put(at + offset, 256 === elems ? scale(-5, -2, signed) : scale(-3, -2, signed));
    }
    if (dtype === "mxfp4") out[at] = 120 + Math.floor(rng.next() * 10); // E8M0: 2^-8 .. 2^1, finite products
  }
  return out;
}

/** Tensors made during one run, all disposed at the end (so a leak shows in the memory check). */
class Scope {
  #made: Tensor[] = [];
  constructor(readonly backend: Backend) {}
  t(values: ArrayLike<number>, shape: number[], dtype: DType = "f32"): Tensor {
    return this.keep(Tensor.fromArray(this.backend, values, shape, dtype));
  }
  /** Raw bytes already in `dtype` (GGUF blocks). */
  raw(bytes: Uint8Array, shape: number[], dtype: DType): Tensor {
    return this.keep(Tensor.fromBytes(this.backend, bytes, shape, dtype));
  }
  keep(t: Tensor): Tensor {
    this.#made.push(t);
    return t;
  }
  [Symbol.dispose]() {
    for (const t of this.#made) t.dispose();
  }
}

function run(backend: Backend, body: (s: Scope) => Tensor): ArrayLike<number> {
  using s = new Scope(backend);
  return s.keep(body(s)).toArray();
}

const WEIGHT_DTYPES: DType[] = ["f32", "bf16", "f16"];

/**
 * The default per-element CUDA-vs-CPU bound (max|Δ| / rms). bf16 tensor-core rows land near 0.01 (x and W each
 * rounded by at most 2^-9, errors growing like √k as the outputs do); the f32 rows, whose NMSE limits are
 * ≤ 1e-9, are orders of magnitude below it.
 */
export const CUDA_MAX_REL = 0.05;

/**
 * NMSE of bf16 tensor-core rows against the f32 CPU path: about 3e-6 expected (x and W rounded to bf16), so 2e-5
 * leaves a margin of ~7× and still fails when a few outputs of a tile are wrong.
 */
const TENSOR_CORE_NMSE = 2e-5;
const cases: OpCase[] = [];
const add = (c: OpCase) => cases.push(c);

// ---- embedding ------------------------------------------------------------------------------------
for (const dtype of WEIGHT_DTYPES) {
  for (const [vocab, dim, n] of [[37, 19, 5], [1000, 640, 7]]) {
    const scale = Math.fround(Math.sqrt(dim));
    add({
      op: "embedding",
      name: `vocab=${vocab} dim=${dim} n=${n} ${dtype} scale=${scale.toFixed(3)}`,
      nmse: 1e-12,
      setup(rng) {
        const table = rng.floats(vocab * dim), ids = rng.ints(n, 0, vocab);
        ids[0] = vocab - 1;
        return {
          reference: () => ref.embedding(roundTo(table, dtype), dim, ids, scale),
          run: (b) => run(b, (s) => ops.embedding(s.t(table, [vocab, dim], dtype), s.t(ids, [n], "i32"), scale)),
        };
      },
    });
  }
}

// Quantized tables: the reference gathers from the dequantized table (src/runtime/quant.ts, checked
// against ggml's dequantize_row_* layouts), so a row measures the native block decoding.
for (const dtype of QUANT_DTYPES) {
  const elems = QUANT_BLOCKS[dtype].elems;
  for (const [vocab, dim, n] of [[37, elems, 5], [300, elems === 32 ? 640 : 512, 7]]) {
    add({
      op: "embedding",
      name: `vocab=${vocab} dim=${dim} n=${n} ${dtype} scale=25.298`,
      nmse: 1e-12,
      setup(rng) {
        const table = randomQuantBlocks(rng, dtype, vocab, dim), ids = rng.ints(n, 0, vocab);
        ids[0] = vocab - 1;
        const scale = Math.fround(Math.sqrt(640));
        return {
          reference: () => ref.embedding(dequantize(table, dtype), dim, ids, scale),
          run: (b) => run(b, (s) => ops.embedding(s.raw(table, [vocab, dim], dtype), s.t(ids, [n], "i32"), scale)),
        };
      },
    });
  }
}

// ---- rms_norm -------------------------------------------------------------------------------------
for (const mode of ["plain", "scale", "one_plus"] as const) {
  for (const dtype of mode === "plain" ? ["f32" as DType] : WEIGHT_DTYPES) {
    for (const [rows, dim] of [[3, 1], [5, 7], [33, 256], [4, 1152]]) {
      add({
        op: "rms_norm",
        name: `${mode} ${dtype} rows=${rows} dim=${dim}`,
        nmse: 1e-11,
        setup(rng) {
          const x = rng.floats(rows * dim, -3, 3), w = rng.floats(dim, -0.5, 0.5);
          const eps = 1e-6;
          return {
            reference: () => ref.rmsNorm(x, roundTo(w, dtype), mode, eps, dim),
            run: (b) =>
              run(
                b,
                (s) => ops.rmsNorm(s.t(x, [rows, dim]), mode === "plain" ? null : s.t(w, [dim], dtype), { mode, eps }),
              ),
          };
        },
      });
    }
  }
}

// ---- layer_norm -----------------------------------------------------------------------------------
for (const dtype of WEIGHT_DTYPES) {
  for (const [rows, dim, bias] of [[3, 7, true], [9, 1152, true], [2, 72, false]] as const) {
    add({
      op: "layer_norm",
      name: `${dtype} rows=${rows} dim=${dim} bias=${bias}`,
      nmse: 1e-11,
      setup(rng) {
        const x = rng.floats(rows * dim, -2, 4), w = rng.floats(dim, 0.5, 1.5), bb = rng.floats(dim);
        return {
          reference: () => ref.layerNorm(x, roundTo(w, dtype), bias ? roundTo(bb, dtype) : null, 1e-6, dim),
          run: (b) =>
            run(
              b,
              (s) =>
                ops.layerNorm(s.t(x, [rows, dim]), s.t(w, [dim], dtype), bias ? s.t(bb, [dim], dtype) : null, 1e-6),
            ),
        };
      },
    });
  }
}

// ---- vision: SigLIP patch im2col, Gemma 3 projector pooling -------------------------------------------
for (const [n, c, h, w, p] of [[1, 3, 8, 8, 4], [2, 3, 12, 20, 4], [1, 3, 28, 28, 14], [1, 1, 5, 5, 1]]) {
  add({
    op: "patch_extract",
    name: `n=${n} c=${c} ${h}x${w} patch=${p}`,
    nmse: 1e-13, // a pure copy: only the reference's f64 inputs differ from the stored f32
    setup(rng) {
      const px = rng.floats(n * c * h * w, -1, 1);
      return {
        reference: () => ref.patchExtract(px, n, c, h, w, p),
        run: (b) => run(b, (s) => ops.patchExtract(s.t(px, [n, c, h, w]), p)),
      };
    },
  });
}
for (const [n, gh, gw, c, k] of [[1, 8, 8, 32, 2], [2, 6, 9, 5, 3], [1, 64, 64, 72, 4], [1, 3, 3, 7, 1]]) {
  add({
    op: "avg_pool2d",
    name: `n=${n} grid=${gh}x${gw} c=${c} kernel=${k}`,
    nmse: 1e-12,
    setup(rng) {
      const x = rng.floats(n * gh * gw * c, -3, 3);
      return {
        reference: () => ref.avgPool2d(x, n, gh, gw, c, k),
        run: (b) => run(b, (s) => ops.avgPool2d(s.t(x, [n, gh * gw, c]), { gridH: gh, gridW: gw, kernel: k })),
      };
    },
  });
}

// ---- gather_sum: the factored position table (k = 2) and the position-listed pooler (k = 9) ---------------
for (
  const [rows, cols, outRows, k, scale] of [[20, 7, 5, 2, 1], [256, 32, 33, 9, 0.3], [9, 1, 4, 9, 1 / 9], [
    3,
    65,
    2,
    1,
    2,
  ]]
) {
  add({
    op: "gather_sum",
    name: `rows=${rows} cols=${cols} out_rows=${outRows} k=${k} scale=${scale.toPrecision(3)}`,
    nmse: 1e-12,
    setup(rng) {
      const x = rng.floats(rows * cols, -3, 3);
      // Ids past both ends (-1 padding, rows) are skipped; every fourth id is one of them.
      const idx = Int32Array.from(
        rng.ints(outRows * k, 0, rows),
        (v, i) => i % 4 === 3 ? (i % 8 === 3 ? -1 : rows) : v,
      );
      return {
        reference: () => ref.gatherSum(x, rows, cols, idx, outRows, k, scale),
        run: (b) => run(b, (s) => ops.gatherSum(s.t(x, [rows, cols]), s.t(idx, [outRows, k], "i32"), scale)),
      };
    },
  });
}

// ---- linear: m = 1 takes the matrix-vector path, m > 1 the tiled one ---------------------------------
const LINEAR_SHAPES: [m: number, n: number, k: number, bias: boolean][] = [
  [1, 1, 1, false],
  [1, 17, 33, true],
  [1, 1000, 257, false],
  [1, 2048, 640, false],
  [1, 513, 1152, true],
  [2, 3, 5, true],
  [3, 17, 33, false],
  [33, 65, 129, true],
  [64, 128, 256, false],
  [17, 1000, 257, false],
  [100, 640, 2048, true],
];
for (const dtype of WEIGHT_DTYPES) {
  for (const [m, n, k, bias] of LINEAR_SHAPES) {
    add({
      op: "linear",
      name: `m=${m} n=${n} k=${k} ${dtype}${bias ? " +bias" : ""}`,
      nmse: 1e-10,
      // On CUDA, bf16/f16 weights with m > 1 run on tensor cores with x (and an f16 W) rounded to bf16, as
      // transformers computes a bf16 model.
      cudaNmse: dtype !== "f32" && m > 1 ? TENSOR_CORE_NMSE : 1e-10,
      setup(rng) {
        const x = rng.floats(m * k), w = rng.floats(n * k, -0.2, 0.2), bb = rng.floats(n);
        return {
          reference: () => ref.linear(x, roundTo(w, dtype), bias ? roundTo(bb, dtype) : null, m, n, k),
          run: (b) =>
            run(b, (s) => ops.linear(s.t(x, [m, k]), s.t(w, [n, k], dtype), bias ? s.t(bb, [n], dtype) : null)),
        };
      },
    });
  }
}

// Gemma's activations exceed f16's range: the down_proj input gelu(gate)·up reaches ~1e5 in real checkpoints.
// The CPU multiplies in f32; the CUDA tensor-core path must not round such an x to f16 (±inf, then NaN logits).
// m = 1 (GEMV, f32 x) too, and one f32 row to show the reference itself is fine at that scale.
for (const dtype of WEIGHT_DTYPES) {
  for (const [m, n, k] of [[1, 65, 129], [33, 65, 129], [100, 300, 1152]]) {
    add({
      op: "linear",
      name: `m=${m} n=${n} k=${k} ${dtype} |x| up to 2e5 (down_proj input)`,
      nmse: 1e-10,
      cudaNmse: dtype !== "f32" && m > 1 ? TENSOR_CORE_NMSE : 1e-10,
      setup(rng) {
        const x = rng.floats(m * k, -2e5, 2e5), w = rng.floats(n * k, -0.2, 0.2);
        x[0] = 1.5e5; // past 65504 for certain
        return {
          reference: () => ref.linear(x, roundTo(w, dtype), null, m, n, k),
          run: (b) => run(b, (s) => ops.linear(s.t(x, [m, k]), s.t(w, [n, k], dtype), null)),
        };
      },
    });
  }
}

// Operands that are not 16-byte aligned (a view one element into its buffer, as a row view of an odd-length
// tensor can be): the CUDA GEMV and tensor-core GEMM fall back from vector loads to scalar ones. k keeps rows
// whole 16-byte chunks, so only the pointer decides; fresh buffers (every other row) are always aligned.
for (const dtype of WEIGHT_DTYPES) {
  for (const [m, n, k] of [[1, 300, 640], [33, 65, 128], [100, 130, 256]]) {
    add({
      op: "linear",
      name: `m=${m} n=${n} k=${k} ${dtype} x and W misaligned by one element`,
      nmse: 1e-10,
      cudaNmse: dtype !== "f32" && m > 1 ? TENSOR_CORE_NMSE : 1e-10,
      setup(rng) {
        const x = rng.floats(m * k), w = rng.floats(n * k, -0.2, 0.2);
        // One leading element, then the operand: the view starts 4 (f32) or 2 (16-bit) bytes past the buffer.
        const shifted = (s: Scope, v: Float32Array, shape: number[], dt: DType) =>
          s.t([0, ...v], [1 + v.length], dt).rows(1, v.length).reshape(shape);
        return {
          reference: () => ref.linear(x, roundTo(w, dtype), null, m, n, k),
          run: (b) => run(b, (s) => ops.linear(shifted(s, x, [m, k], "f32"), shifted(s, w, [n, k], dtype), null)),
        };
      },
    });
  }
}

// Quantized weights (GGUF blocks, bias f32): m <= 4 streams W decoding each block in registers, 5 <= m < 16
// streams it once per group of <= 8 rows of x (12: 6 + 6, 15: 7 + 8), 16 <= m <= 128 broadcasts decoded
// strips of 8 W rows against x^T in whole 16-row vectors plus dot-product tails (17, 31, 33, 63, 65 rows),
// m > 128 decodes panels into the tiled path. Odd n (strip tails), several blocks per row and k slabs past
// the 256-wide panel;
// the last rows are the real Gemma 3 270M shapes at decode (the Q8_0 lm_head cut to 4096 of its 262144
// rows to keep the reference quick). The reference multiplies by the dequantized W, which the kernels
// read exactly, so the limit is the float rows' f32-summation one.
const QUANT_LINEAR_SHAPES: Record<32 | 256, [m: number, n: number, k: number, bias: boolean][]> = {
  32: [
    [1, 1, 32, false],
    [1, 17, 96, true],
    [1, 300, 640, false],
    [2, 17, 640, true],
    [3, 300, 96, false],
    [4, 17, 320, false],
    [7, 17, 32, true],
    [7, 300, 640, false],
    [12, 300, 640, true],
    [15, 17, 96, false],
    [16, 300, 640, false],
    [33, 17, 640, false],
    [33, 300, 96, true],
  ],
  256: [
    [1, 1, 256, false],
    [1, 17, 512, true],
    [1, 300, 768, false],
    [2, 17, 256, true],
    [3, 300, 512, false],
    [4, 17, 768, false],
    [7, 17, 256, true],
    [7, 300, 768, false],
    [12, 300, 512, true],
    [15, 17, 256, false],
    [33, 17, 512, false],
    [33, 300, 256, true],
  ],
};
const QUANT_MODEL_SHAPES: [QuantDType, n: number, k: number][] = [
  ["q8_0", 4096, 640], // lm_head / tied embedding (262144 rows in the model)
  ["q4_k", 640, 1024], // o_proj
  ["q6_k", 640, 2048], // down_proj
  ["q5_0", 2048, 640], // gate_proj, up_proj
  ["q5_0", 1024, 640], // q_proj
  ["q8_0", 256, 640], // k_proj, v_proj
  // Many outputs: the CUDA quantized GEMV gives each warp R rows (R = 4 when n ≥ 8·4·2·SMs, 2 when
  // n ≥ 8·2·2·SMs, else 1), so on a 132-SM H200 n < 4224 runs R = 1, 4224 ≤ n < 8448 R = 2, larger R = 4.
  ["q8_0", 16384, 64],
  ["q4_k", 4096, 256],
  ["q4_k", 5000, 256], // R = 2 on an H200
  ["q8_0", 6912, 1152], // Gemma 3 1B gate_proj / up_proj: R = 2 on an H200
  // k past the GEMV's 8192-float x tile: x restaged per tile behind barriers. Gemma 3 4B down_proj (k = 10240),
  // and a partial last tile (8448 = 8192 + 256).
  ["q6_k", 64, 10240],
  ["q8_0", 70, 8448],
  // The other formats at 270M's decode shapes as llama.cpp writes them (the K-quants only where k is a whole
  // number of 256-blocks: 640 is not), and across the x tile.
  ["q4_0", 4096, 640], // Google's QAT Q4_0 lm_head
  ["q4_0", 2048, 640],
  ["q4_1", 2048, 640],
  ["q5_1", 1024, 640],
  ["iq4_nl", 2048, 640],
  ["mxfp4", 2048, 640],
  ["q2_k", 640, 2048],
  ["q3_k", 640, 2048],
  ["q5_k", 640, 1024],
  ["iq4_xs", 640, 2048],
  ["q5_k", 64, 10240],
  ["q4_0", 70, 8448],
];
const quantLinearRows: [QuantDType, m: number, n: number, k: number, bias: boolean][] = [
  ...QUANT_DTYPES.flatMap((dtype) =>
    QUANT_LINEAR_SHAPES[QUANT_BLOCKS[dtype].elems as 32 | 256].map(([m, n, k, bias]) =>
      [dtype, m, n, k, bias] as [QuantDType, number, number, number, boolean]
    )
  ),
  ...QUANT_MODEL_SHAPES.map(([dtype, n, k]) =>
    [dtype, 1, n, k, false] as [QuantDType, number, number, number, boolean]
  ),
  // Prefill-sized m around each vector boundary of the broadcast path, and past it (129: packed panels).
  ...QUANT_DTYPES.flatMap((dtype) =>
    [16, 17, 31, 32, 33, 63, 64, 65, 128, 129].map((m, i) =>
      [dtype, m, i % 2 ? 37 : 301, QUANT_BLOCKS[dtype].elems === 32 ? 640 : 768, i % 3 === 0] as [
        QuantDType,
        number,
        number,
        number,
        boolean,
      ]
    )
  ),
  // 270M's o_proj and down_proj at a 32-token prefill: k of 4 and 8 panel slabs.
  ["q4_k", 32, 640, 1024, false],
  ["q6_k", 33, 640, 2048, true],
  // Gemma 4 E2B's and Gemma 3 1B's down_proj (k = 6144, 6912) at short prefills: strips longer than a packing panel.
  ["q4_k", 16, 96, 6144, false],
  ["q6_k", 33, 40, 6912, true],
  // Gemma 3 1B's k at a 130-token prefill: 128×128 tensor-core tiles, partial in both m and n.
  ["q8_0", 130, 1000, 1152, false],
];
/**
 * x [m, k] · W [n, k]ᵀ with W random `dtype` blocks, against the exact product with the dequantized W; `repacked`
 * first hands W to repackForBackend (the backend's fastest layout, src/ops/repack.ts).
 */
function addQuantLinear(dtype: QuantDType, m: number, n: number, k: number, bias: boolean, repacked = false): void {
  add({
    op: "linear",
    name: `m=${m} n=${n} k=${k} ${dtype}${repacked ? " repacked for the backend" : ""}${bias ? " +bias f32" : ""}`,
    nmse: 1e-10,
    // As the float rows: the tiled CUDA path rounds x and the decoded W to bf16 for tensor cores.
    cudaNmse: m > 1 ? TENSOR_CORE_NMSE : 1e-10,
    setup(rng) {
      const x = rng.floats(m * k), w = randomQuantBlocks(rng, dtype, n, k), bb = rng.floats(n);
      const weight = (s: Scope) => {
        const stored = s.raw(w, [n, k], dtype);
        return repacked ? s.keep(ops.repackForBackend(stored)) : stored;
      };
      return {
        reference: () => ref.linear(x, dequantize(w, dtype), bias ? bb : null, m, n, k),
        run: (b) => run(b, (s) => ops.linear(s.t(x, [m, k]), weight(s), bias ? s.t(bb, [n]) : null)),
      };
    },
  });
}
for (const [dtype, m, n, k, bias] of quantLinearRows) addQuantLinear(dtype, m, n, k, bias);

// Q8_0, Q5_0, Q4_0, Q4_1, Q5_1, Q4_K, Q5_K and Q6_K weights in the layout the backend multiplies fastest
// (src/ops/repack.ts): on the CPU library with AVX512-VNNI, their 16-row layouts (q8_0x16 and kin: up to 15-40 rows
// of x as 24-bit integers per 32-element block, more through f32 panels or strips: linear.cpp's int_rows_max); on
// CUDA, as stored. Each dtype has rows on both sides of its threshold. The reference is the
// exact product with the stored weights, so a row measures the repack, the layout's reading and x's rounding
// (tests/ops/repack_test.ts checks that the layout was made).
for (
  const [dtype, m, n, k, bias] of [
    ["q8_0", 1, 4096, 640, false],
    ["q8_0", 2, 160, 640, true],
    ["q8_0", 8, 4096, 640, false],
    ["q8_0", 9, 48, 1152, false],
    ["q8_0", 17, 160, 640, true],
    ["q8_0", 45, 64, 640, false],
    ["q5_0", 1, 2048, 640, false],
    ["q5_0", 3, 64, 1152, false],
    ["q5_0", 8, 1024, 640, true],
    ["q5_0", 16, 256, 640, false],
    ["q5_0", 20, 160, 640, false],
    ["q5_0", 40, 64, 1152, true],
    ["q5_0", 64, 48, 640, false],
    ["q4_k", 1, 256, 1024, false],
    ["q4_k", 8, 64, 512, true],
    ["q4_k", 17, 48, 2048, false],
    ["q4_k", 64, 32, 512, true],
    ["q4_k", 130, 48, 512, false],
    ["q6_k", 1, 640, 2048, false],
    ["q6_k", 5, 32, 512, true],
    ["q6_k", 16, 64, 768, false],
    ["q6_k", 33, 48, 512, true],
    ["q4_0", 1, 512, 640, false],
    ["q4_0", 8, 64, 1152, true],
    ["q4_0", 20, 48, 640, false],
    ["q4_0", 48, 32, 640, true],
    ["q4_1", 1, 256, 640, true],
    ["q4_1", 12, 64, 640, false],
    ["q4_1", 24, 32, 1152, false],
    ["q4_1", 44, 48, 640, false],
    ["q5_1", 1, 1024, 640, false],
    ["q5_1", 9, 64, 640, true],
    ["q5_1", 64, 48, 640, false],
    ["q5_k", 1, 640, 2048, false],
    ["q5_k", 7, 64, 512, true],
    ["q5_k", 16, 48, 768, false],
    ["q5_k", 50, 32, 512, true],
  ] as [RepackableDType, number, number, number, boolean][]
) addQuantLinear(dtype, m, n, k, bias, true);
for (
  const [dtype, dim] of [
    ["q8_0", 640],
    ["q5_0", 640],
    ["q4_0", 640],
    ["q4_1", 640],
    ["q5_1", 640],
    ["q4_k", 512],
    ["q5_k", 512],
    ["q6_k", 768],
  ] as [RepackableDType, number][]
) {
  add({
    op: "repack",
    name: `${dtype} [48, ${dim}] for the backend, read back`,
    nmse: 0,
    setup(rng) {
      const w = randomQuantBlocks(rng, dtype, 48, dim);
      return {
        reference: () => dequantize(w, dtype),
        run: (b) => run(b, (s) => s.keep(ops.repackForBackend(s.raw(w, [48, dim], dtype)))),
      };
    },
  });
  add({
    op: "embedding",
    name: `vocab=64 dim=${dim} n=7 ${dtype} repacked for the backend scale=25.298`,
    nmse: 1e-12,
    setup(rng) {
      const [vocab, n] = [64, 7];
      const table = randomQuantBlocks(rng, dtype, vocab, dim), ids = rng.ints(n, 0, vocab);
      ids[0] = vocab - 1;
      const scale = Math.fround(Math.sqrt(640));
      return {
        reference: () => ref.embedding(dequantize(table, dtype), dim, ids, scale),
        run: (b) =>
          run(
            b,
            (s) => ops.embedding(ops.repackForBackend(s.raw(table, [vocab, dim], dtype)), s.t(ids, [n], "i32"), scale),
          ),
      };
    },
  });
}

// ---- rope -----------------------------------------------------------------------------------------
const ROPE_CASES: {
  label: string;
  tokens: number;
  heads: number;
  spec: ops.RopeSpec;
  rotaryDim?: number;
  pos0: number;
}[] = [
  { label: "tiny", tokens: 5, heads: 3, spec: { headDim: 8, theta: 10000 }, pos0: 0 },
  { label: "gemma3 local", tokens: 7, heads: 4, spec: { headDim: 256, theta: 10000 }, pos0: 3 },
  { label: "gemma3 global linear x8", tokens: 6, heads: 2, spec: { headDim: 256, theta: 1e6, factor: 8 }, pos0: 1000 },
  {
    label: "gemma4 global proportional 0.25",
    tokens: 4,
    heads: 2,
    spec: { headDim: 512, theta: 1e6, partialRotaryFactor: 0.25 },
    pos0: 70000,
  },
  { label: "rotary_dim < head_dim", tokens: 3, heads: 5, spec: { headDim: 64, theta: 10000 }, rotaryDim: 32, pos0: 11 },
  // Decode (one token): the CPU reuses a cos/sin row across calls at the same position and table contents, so
  // the same position with another table, and the next position with the first, must each get their own.
  { label: "decode q local", tokens: 1, heads: 4, spec: { headDim: 256, theta: 10000 }, pos0: 57 },
  { label: "decode k global", tokens: 1, heads: 1, spec: { headDim: 256, theta: 1e6, factor: 8 }, pos0: 57 },
  { label: "decode k local", tokens: 1, heads: 1, spec: { headDim: 256, theta: 10000 }, pos0: 57 },
  { label: "decode q local next", tokens: 1, heads: 4, spec: { headDim: 256, theta: 10000 }, pos0: 58 },
  { label: "decode partial", tokens: 1, heads: 2, spec: { headDim: 64, theta: 10000 }, rotaryDim: 32, pos0: 58 },
];
for (const c of ROPE_CASES) {
  const rot = c.rotaryDim ?? c.spec.headDim;
  add({
    op: "rope",
    name: `${c.label}: tokens=${c.tokens} heads=${c.heads} head_dim=${c.spec.headDim} rotary_dim=${rot} from ${c.pos0}`,
    // angle = pos·inv_freq is f32 by definition; cos/sin of large angles amplify libm's last ulp.
    nmse: 1e-11,
    setup(rng) {
      const { tokens, heads } = c, d = c.spec.headDim;
      const x = rng.floats(tokens * heads * d);
      const positions = Int32Array.from({ length: tokens }, (_, i) => c.pos0 + 2 * i);
      const invFreq = ops.ropeInvFreq({ ...c.spec, headDim: rot });
      return {
        reference: () => ref.rope(x, tokens, heads, d, rot, positions, invFreq),
        run: (b) =>
          run(
            b,
            (s) => ops.rope(s.t(x, [tokens, heads, d]), s.t(positions, [tokens], "i32"), s.t(invFreq, [rot / 2]), rot),
          ),
      };
    },
  });
}

// ---- rope_axes (2-D RoPE of Gemma 4's vision tower) and clamp ---------------------------------------------
for (const [tokens, heads, d, axes] of [[7, 2, 16, 2], [40, 12, 64, 2], [5, 3, 24, 3], [4, 1, 8, 1]]) {
  add({
    op: "rope_axes",
    name: `tokens=${tokens} heads=${heads} head_dim=${d} axes=${axes}`,
    nmse: 1e-11,
    setup(rng) {
      const x = rng.floats(tokens * heads * d);
      const positions = rng.ints(tokens * axes, -1, 70);
      // Gemma4VisionRotaryEmbedding: theta 100 over spatial_dim = head_dim / axes.
      const invFreq = ops.ropeInvFreq({ headDim: d / axes, theta: 100 });
      return {
        reference: () => ref.ropeAxes(x, tokens, heads, d, axes, positions, invFreq),
        run: (b) =>
          run(
            b,
            (s) =>
              ops.ropeAxes(
                s.t(x, [tokens, heads, d]),
                s.t(positions, [tokens, axes], "i32"),
                s.t(invFreq, [d / (2 * axes)]),
              ),
          ),
      };
    },
  });
}
for (const [n, lo, hi] of [[1000, -0.5, 0.25], [70000, -Infinity, 1.5], [33, -2, Infinity], [8, 0.1, 0.1]]) {
  add({
    op: "clamp",
    name: `n=${n} [${lo}, ${hi}]`,
    nmse: 0,
    setup(rng) {
      const x = rng.floats(n, -3, 3);
      return { reference: () => ref.clamp(x, lo, hi), run: (b) => run(b, (s) => ops.clamp(s.t(x, [n]), lo, hi)) };
    },
  });
}

// ---- attention (prefill) --------------------------------------------------------------------------
interface PrefillCase {
  label: string;
  qLen: number;
  kvLen: number;
  qHeads: number;
  kvHeads: number;
  headDim: number;
  causal?: boolean;
  window?: number;
  softcap?: number;
  /** [start, end) position ranges that attend bidirectionally, as an image's soft tokens. */
  spans?: [number, number][];
}
const PREFILL_CASES: PrefillCase[] = [
  { label: "causal GQA", qLen: 37, kvLen: 37, qHeads: 4, kvHeads: 2, headDim: 64 },
  { label: "causal MQA hd256", qLen: 19, kvLen: 19, qHeads: 4, kvHeads: 1, headDim: 256 },
  { label: "sliding window 8", qLen: 41, kvLen: 41, qHeads: 2, kvHeads: 1, headDim: 32, window: 8 },
  {
    label: "image spans (bidirectional blocks)",
    qLen: 30,
    kvLen: 30,
    qHeads: 2,
    kvHeads: 2,
    headDim: 16,
    spans: [[3, 12], [18, 25]],
  },
  {
    label: "image span + sliding window",
    qLen: 30,
    kvLen: 30,
    qHeads: 2,
    kvHeads: 1,
    headDim: 16,
    window: 4,
    spans: [[5, 20]],
  },
  {
    label: "bidirectional (vision tower) hd72",
    qLen: 23,
    kvLen: 23,
    qHeads: 3,
    kvHeads: 3,
    headDim: 72,
    causal: false,
  },
  { label: "queries at the end (chunk after a cached prefix)", qLen: 5, kvLen: 40, qHeads: 4, kvHeads: 2, headDim: 48 },
  { label: "softcap 50", qLen: 13, kvLen: 13, qHeads: 2, kvHeads: 1, headDim: 32, softcap: 50 },
  { label: "global hd512", qLen: 9, kvLen: 9, qHeads: 2, kvHeads: 1, headDim: 512 },
  { label: "odd head dim", qLen: 7, kvLen: 7, qHeads: 3, kvHeads: 1, headDim: 5 },
  // The CPU's tiled path (>= 16 queries; 64-key tiles): lengths that are not whole tiles, masks
  // that cut tiles, spans and windows crossing tile edges.
  { label: "tiled bidirectional hd72", qLen: 150, kvLen: 150, qHeads: 2, kvHeads: 2, headDim: 72, causal: false },
  { label: "tiled bidirectional GQA hd64", qLen: 130, kvLen: 130, qHeads: 4, kvHeads: 2, headDim: 64, causal: false },
  { label: "tiled causal MQA hd256", qLen: 100, kvLen: 100, qHeads: 8, kvHeads: 1, headDim: 256 },
  { label: "tiled causal hd512", qLen: 70, kvLen: 70, qHeads: 2, kvHeads: 1, headDim: 512 },
  { label: "tiled sliding window 50", qLen: 200, kvLen: 200, qHeads: 2, kvHeads: 1, headDim: 32, window: 50 },
  {
    label: "tiled bidirectional window 20",
    qLen: 100,
    kvLen: 100,
    qHeads: 1,
    kvHeads: 1,
    headDim: 40,
    window: 20,
    causal: false,
  },
  {
    label: "tiled image spans across tiles",
    qLen: 220,
    kvLen: 220,
    qHeads: 2,
    kvHeads: 1,
    headDim: 16,
    spans: [[10, 80], [100, 190]],
  },
  {
    label: "tiled image span + sliding window",
    qLen: 220,
    kvLen: 220,
    qHeads: 2,
    kvHeads: 1,
    headDim: 24,
    window: 40,
    spans: [[30, 170]],
  },
  { label: "tiled queries at the end", qLen: 70, kvLen: 300, qHeads: 4, kvHeads: 2, headDim: 48 },
  {
    label: "tiled queries at the end, span across the chunk edge",
    qLen: 70,
    kvLen: 200,
    qHeads: 2,
    kvHeads: 1,
    headDim: 32,
    spans: [[100, 180]],
  },
  { label: "tiled softcap 30", qLen: 90, kvLen: 90, qHeads: 2, kvHeads: 1, headDim: 32, softcap: 30 },
  { label: "tiled odd head dim", qLen: 80, kvLen: 80, qHeads: 3, kvHeads: 1, headDim: 5 },
  // The CUDA flash kernel's tiles at Gemma's head dims: several key tiles per query tile, GQA groups, windows
  // that start mid-tile, an image span past the causal bound, a chunk after a cached prefix.
  { label: "flash causal GQA hd256", qLen: 150, kvLen: 150, qHeads: 4, kvHeads: 2, headDim: 256 },
  {
    label: "flash sliding window 70 + span hd256",
    qLen: 260,
    kvLen: 260,
    qHeads: 2,
    kvHeads: 1,
    headDim: 256,
    window: 70,
    spans: [[40, 200]],
  },
  { label: "flash chunk after prefix hd512", qLen: 45, kvLen: 230, qHeads: 2, kvHeads: 1, headDim: 512 },
  {
    label: "flash bidirectional window hd512",
    qLen: 100,
    kvLen: 100,
    qHeads: 1,
    kvHeads: 1,
    headDim: 512,
    window: 33,
    causal: false,
  },
  { label: "flash softcap hd256", qLen: 97, kvLen: 97, qHeads: 2, kvHeads: 2, headDim: 256, softcap: 50 },
];
for (const c of PREFILL_CASES) {
  add({
    op: "attention_prefill",
    name: `${c.label}: q=${c.qLen} kv=${c.kvLen} heads=${c.qHeads}/${c.kvHeads} hd=${c.headDim}` +
      `${c.window ? ` window=${c.window}` : ""}${c.softcap ? ` softcap=${c.softcap}` : ""}`,
    nmse: 1e-10,
    setup(rng) {
      const q = rng.floats(c.qLen * c.qHeads * c.headDim, -2, 2);
      const k = rng.floats(c.kvLen * c.kvHeads * c.headDim, -2, 2);
      const v = rng.floats(c.kvLen * c.kvHeads * c.headDim);
      const spanIds = c.spans ? new Int32Array(c.kvLen) : null;
      c.spans?.forEach(([a, e], i) => spanIds!.fill(i + 1, a, e));
      const o = {
        qLen: c.qLen,
        kvLen: c.kvLen,
        qHeads: c.qHeads,
        kvHeads: c.kvHeads,
        headDim: c.headDim,
        qPos0: c.kvLen - c.qLen,
        causal: c.causal ?? true,
        window: c.window ?? 0,
        spanIds,
        scale: 1 / Math.sqrt(c.headDim),
        softcap: c.softcap ?? 0,
      };
      return {
        reference: () => ref.attentionPrefill(q, k, v, o),
        run: (b) =>
          run(b, (s) =>
            ops.attentionPrefill(
              s.t(q, [c.qLen, c.qHeads, c.headDim]),
              s.t(k, [c.kvLen, c.kvHeads, c.headDim]),
              s.t(v, [c.kvLen, c.kvHeads, c.headDim]),
              { ...o, spanIds: spanIds ? s.t(spanIds, [c.kvLen], "i32") : undefined },
            )),
      };
    },
  });
}

// ---- attention (decode over a KV cache) -------------------------------------------------------------
const DECODE_CASES = [
  { label: "full cache", qHeads: 4, kvHeads: 2, headDim: 64, capacity: 64, window: 0, position: 40 },
  { label: "first token", qHeads: 2, kvHeads: 1, headDim: 32, capacity: 16, window: 0, position: 0 },
  { label: "ring buffer, wrapped", qHeads: 4, kvHeads: 1, headDim: 256, capacity: 16, window: 16, position: 100 },
  { label: "window smaller than ring", qHeads: 2, kvHeads: 2, headDim: 40, capacity: 16, window: 8, position: 37 },
  {
    label: "global hd512 softcap",
    qHeads: 2,
    kvHeads: 1,
    headDim: 512,
    capacity: 48,
    window: 0,
    position: 47,
    softcap: 30,
  },
  // Long histories: every warp of a block (and every split of the split-K CUDA kernel) sees many keys, so the
  // online-softmax rescale and the cross-warp / cross-split merges are exercised at the real head dims.
  { label: "long global cache hd256", qHeads: 4, kvHeads: 1, headDim: 256, capacity: 4096, window: 0, position: 3000 },
  { label: "sliding ring 512 hd256", qHeads: 8, kvHeads: 4, headDim: 256, capacity: 512, window: 512, position: 5000 },
  { label: "window 100 in a 512 ring", qHeads: 2, kvHeads: 1, headDim: 256, capacity: 512, window: 100, position: 700 },
  {
    label: "long global hd512 softcap",
    qHeads: 2,
    kvHeads: 1,
    headDim: 512,
    capacity: 2048,
    window: 0,
    position: 1999,
    softcap: 50,
  },
  {
    label: "position 64 (one key past a split)",
    qHeads: 1,
    kvHeads: 1,
    headDim: 72,
    capacity: 128,
    window: 0,
    position: 64,
  },
];
for (const c of DECODE_CASES) {
  add({
    op: "attention_decode",
    name: `${c.label}: heads=${c.qHeads}/${c.kvHeads} hd=${c.headDim} capacity=${c.capacity} window=${c.window} ` +
      `position=${c.position}`,
    nmse: 1e-10,
    setup(rng) {
      const row = c.kvHeads * c.headDim;
      const q = rng.floats(c.qHeads * c.headDim, -2, 2);
      // The history of K/V rows for positions 0..position; the cache holds them at p % capacity.
      const kHist = rng.floats((c.position + 1) * row, -2, 2), vHist = rng.floats((c.position + 1) * row);
      const kCache = new Float32Array(c.capacity * row).fill(NaN),
        vCache = new Float32Array(c.capacity * row).fill(NaN);
      for (let p = 0; p <= c.position; p++) {
        kCache.set(kHist.subarray(p * row, (p + 1) * row), (p % c.capacity) * row);
        vCache.set(vHist.subarray(p * row, (p + 1) * row), (p % c.capacity) * row);
      }
      const o = { ...c, scale: 1 / Math.sqrt(c.headDim), softcap: c.softcap ?? 0 };
      return {
        reference: () => ref.attentionDecode(q, kHist, vHist, o),
        run: (b) =>
          run(b, (s) =>
            ops.attentionDecode(
              s.t(q, [c.qHeads, c.headDim]),
              s.t(kCache, [c.capacity, c.kvHeads, c.headDim]),
              s.t(vCache, [c.capacity, c.kvHeads, c.headDim]),
              s.t([c.position], [1], "i32"),
              o,
            )),
      };
    },
  });
}

// ---- kv cache write -------------------------------------------------------------------------------
for (const [tokens, capacity, position0] of [[5, 16, 3], [5, 16, 14], [40, 16, 3], [1, 8, 1000]]) {
  const row = 2 * 12;
  add({
    op: "kv_cache_write",
    name: `tokens=${tokens} capacity=${capacity} position0=${position0} row=${row}`,
    nmse: 0,
    setup(rng) {
      const cache = rng.floats(capacity * row), src = rng.floats(tokens * row);
      return {
        reference: () => ref.kvCacheWrite(cache, src, tokens, row, capacity, position0),
        run: (b) =>
          run(
            b,
            (s) =>
              ops.kvCacheWrite(s.t(src, [tokens, 2, 12]), s.t(cache, [capacity, 2, 12]), s.t([position0], [1], "i32")),
          ),
      };
    },
  });
}

// ---- elementwise ----------------------------------------------------------------------------------
for (const n of [1, 1001, 100003]) {
  const bn = n === 100003 ? 1 : n === 1001 ? 7 : 1;
  add({
    op: "add",
    name: `n=${n} b broadcast from ${bn}`,
    nmse: 0,
    setup(rng) {
      const a = rng.floats(n), b = rng.floats(bn);
      return {
        reference: () => Float32Array.from(ref.map2(a, b, (u, v) => u + v)),
        run: (be) => run(be, (s) => ops.add(s.t(a, [n / bn, bn]), s.t(b, [bn]))),
      };
    },
  });
  add({
    op: "add",
    name: `n=${n} same shape`,
    nmse: 0,
    setup(rng) {
      const a = rng.floats(n), b = rng.floats(n);
      return {
        reference: () => Float32Array.from(ref.map2(a, b, (u, v) => u + v)),
        run: (be) => run(be, (s) => ops.add(s.t(a, [n]), s.t(b, [n]))),
      };
    },
  });
  add({
    op: "mul",
    name: `n=${n} b broadcast from ${bn}`,
    nmse: 0,
    setup(rng) {
      const a = rng.floats(n), b = rng.floats(bn);
      return {
        reference: () => Float32Array.from(ref.map2(a, b, (u, v) => u * v)),
        run: (be) => run(be, (s) => ops.mul(s.t(a, [n / bn, bn]), s.t(b, [bn]))),
      };
    },
  });
  add({
    op: "scale",
    name: `n=${n} alpha=-0.7071`,
    nmse: 1e-14,
    setup(rng) {
      const x = rng.floats(n);
      return {
        reference: () => Float64Array.from(x, (v) => v * Math.fround(-0.7071)),
        run: (be) => run(be, (s) => ops.scale(s.t(x, [n]), -0.7071)),
      };
    },
  });
  add({
    op: "gelu_tanh",
    // Inputs stay in [-3, 3]: further out 1 + tanh(·) cancels in f32 (in torch too), and on a single
    // element that relative error is all NMSE sees.
    name: `n=${n} x in [-3, 3]`,
    nmse: 1e-9,
    setup(rng) {
      const x = rng.floats(n, -3, 3);
      return {
        reference: () => Float64Array.from(x, ref.geluTanh),
        run: (be) => run(be, (s) => ops.geluTanh(s.t(x, [n]))),
      };
    },
  });
  add({
    op: "gelu_tanh_mul",
    name: `n=${n} gate in [-3, 3]`,
    nmse: 1e-9,
    setup(rng) {
      const g = rng.floats(n, -3, 3), u = rng.floats(n, -3, 3);
      return {
        reference: () => ref.map2(g, u, (a, b) => ref.geluTanh(a) * b),
        run: (be) => run(be, (s) => ops.geluTanhMul(s.t(g, [n]), s.t(u, [n]))),
      };
    },
  });
  add({
    op: "softcap",
    name: `n=${n} cap=30 x in [-200, 200]`,
    nmse: 1e-12,
    setup(rng) {
      const x = rng.floats(n, -200, 200);
      return {
        reference: () => Float64Array.from(x, (v) => 30 * Math.tanh(v / 30)),
        run: (be) => run(be, (s) => ops.softcap(s.t(x, [n]), 30)),
      };
    },
  });
}

// ---- greedy_logits: the argmax of each row, and the values there, against the full product's ---------------------
// Its other entries may be -inf (the CPU's screen over its 16-row layouts) or the full product's (CUDA writes every
// value), so the row compares what a greedy draw reads: each row's argmax id, exactly, and its logit. The weights are
// repacked for the backend, so on an AVX512-VNNI CPU the screen runs; tests/ops/greedy_logits_test.ts checks every
// entry, ties and NaN.
for (
  const [dtype, m, n, k, cap] of [
    ["q8_0", 8, 4096, 640, 0],
    ["q8_0", 1, 4096, 640, 0],
    ["q6_k", 5, 2048, 512, 0],
    ["q8_0", 5, 2048, 512, 30],
    ["q5_0", 16, 1024, 640, 0],
    ["q4_k", 4, 512, 512, 0],
  ] as [RepackableDType, number, number, number, number][]
) {
  add({
    op: "greedy_logits",
    name: `m=${m} n=${n} k=${k} ${dtype}${cap ? ` softcap ${cap}` : ""}: argmax and its logit`,
    nmse: 1e-10,
    setup(rng) {
      const x = rng.floats(m * k), w = randomQuantBlocks(rng, dtype, n, k);
      const pick = (logits: ArrayLike<number>) => {
        const ids = ref.argmax(logits, n);
        return Array.from(ids).flatMap((id, r) => [id, logits[r * n + id]]);
      };
      return {
        reference: () => {
          const full = ref.linear(x, dequantize(w, dtype), null, m, n, k);
          return pick(cap ? full.map((v) => cap * Math.tanh(v / cap)) : full);
        },
        run: (b) =>
          pick(run(b, (s) => {
            const weight = s.keep(ops.repackForBackend(s.raw(w, [n, k], dtype)));
            return ops.greedyLogits(s.t(x, [m, k]), weight, { cap });
          })),
      };
    },
  });
}

// ---- softmax / argmax -----------------------------------------------------------------------------
for (const [rows, cols, spread] of [[3, 1, 1], [4, 7, 5], [2, 50000, 40]]) {
  add({
    op: "softmax",
    name: `rows=${rows} cols=${cols} logits in ±${spread}`,
    nmse: 1e-11,
    setup(rng) {
      const x = rng.floats(rows * cols, -spread, spread);
      return { reference: () => ref.softmax(x, cols), run: (b) => run(b, (s) => ops.softmax(s.t(x, [rows, cols]))) };
    },
  });
}
const ARGMAX_CASES: { label: string; rows: number; cols: number; edit?: (x: Float32Array, cols: number) => void }[] = [
  { label: "lm_head-sized rows", rows: 3, cols: 262144 },
  {
    label: "ties take the first",
    rows: 2,
    cols: 1001,
    edit: (x, cols) => {
      x[17] = x[900] = 5;
      x[cols + 1000] = x[cols + 3] = 5;
    },
  },
  {
    label: "NaN wins, -inf and +inf",
    rows: 3,
    cols: 64,
    edit: (x, cols) => {
      x[10] = NaN;
      x[40] = Infinity;
      x.fill(-Infinity, cols, 2 * cols);
      x[2 * cols + 63] = Infinity;
    },
  },
];
for (const c of ARGMAX_CASES) {
  add({
    op: "argmax",
    name: `${c.label}: rows=${c.rows} cols=${c.cols}`,
    nmse: 0,
    exact: true,
    setup(rng) {
      const x = rng.floats(c.rows * c.cols, -10, 10);
      c.edit?.(x, c.cols);
      return {
        reference: () => ref.argmax(x, c.cols),
        run: (b) => run(b, (s) => ops.argmax(s.t(x, [c.rows, c.cols]))),
      };
    },
  });
}

// ---- sample: the chosen token, the state, the history and the scaled logits, compared exactly ---------
interface SampleCase {
  label: string;
  vocab: number;
  params: ref.SampleRef;
  /** Logits drawn in [-spread, spread], then edited. */
  spread?: number;
  edit?: (logits: Float32Array, rng: Rng) => void;
  /** Initial history (its length is STATE_HISTORY) and capacity. */
  history?: number[];
  capacity?: number;
  stopIds?: number[];
  /** Initial STATE_STEP (the RNG position) and STATE_POSITION. */
  step?: number;
  /** Consecutive calls; before each call after the first the original logits are written back. */
  calls?: number;
  done?: boolean;
}
const SAMPLE_OFF: ref.SampleRef = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, seed: 0 };
const SAMPLE_CASES: SampleCase[] = [
  { label: "greedy", vocab: 1000, params: { ...SAMPLE_OFF, temperature: 0 } },
  {
    label: "greedy: ties take the lowest id",
    vocab: 1001,
    params: { ...SAMPLE_OFF, temperature: 0 },
    edit: (x) => {
      x[700] = x[12] = x[999] = 50;
    },
  },
  {
    label: "greedy: NaN wins, as torch.argmax",
    vocab: 300,
    params: { ...SAMPLE_OFF, temperature: -1 },
    edit: (x) => {
      x[200] = NaN;
      x[5] = Infinity;
    },
  },
  { label: "temperature 0.7", vocab: 5000, params: { ...SAMPLE_OFF, temperature: 0.7, seed: 7 }, step: 3 },
  { label: "temperature 1, 20 draws", vocab: 777, params: { ...SAMPLE_OFF, seed: 123 }, calls: 20, capacity: 64 },
  { label: "temperature 2.5, flat logits", vocab: 4096, spread: 0.01, params: { ...SAMPLE_OFF, temperature: 2.5 } },
  { label: "top-k 40", vocab: 3000, spread: 3, params: { ...SAMPLE_OFF, topK: 40, seed: 99 }, calls: 8 },
  {
    label: "top-k 5: ties at the k-th logit keep the lowest ids",
    vocab: 500,
    params: { ...SAMPLE_OFF, topK: 5, seed: 5 },
    edit: (x) => {
      x[400] = 30;
      x[10] = 29;
      x.fill(28, 100, 110); // the 3rd..5th places go to ids 100, 101, 102
    },
    calls: 16,
    capacity: 32,
  },
  { label: "top-k 1 is greedy", vocab: 2000, params: { ...SAMPLE_OFF, topK: 1, seed: 1 }, calls: 4 },
  { label: "top-p 0.9", vocab: 3000, spread: 6, params: { ...SAMPLE_OFF, topP: 0.9, seed: 31 }, calls: 8 },
  {
    label: "top-p 0.5: equal logits at the boundary",
    vocab: 64,
    spread: 0.5,
    params: { ...SAMPLE_OFF, topP: 0.5, seed: 77 },
    edit: (x) => {
      x.fill(4, 20, 30);
    },
    calls: 12,
    capacity: 16,
  },
  { label: "top-p tiny keeps one token", vocab: 900, params: { ...SAMPLE_OFF, topP: 1e-6, seed: 4 }, calls: 3 },
  { label: "min-p 0.05", vocab: 3000, spread: 5, params: { ...SAMPLE_OFF, minP: 0.05, seed: 11 }, calls: 8 },
  { label: "min-p 1 keeps the maxima", vocab: 300, params: { ...SAMPLE_OFF, minP: 1, seed: 12 }, calls: 3 },
  {
    label: "repetition penalty 1.3, greedy: a repeated top token loses",
    vocab: 400,
    params: { ...SAMPLE_OFF, temperature: 0, repetitionPenalty: 1.3 },
    edit: (x) => {
      x[17] = 6; // top, but in the history (twice: penalised once)
      x[18] = 5;
      x[19] = -2; // negative: multiplied
    },
    history: [17, 3, 17, 19, 399, 0],
    capacity: 16,
  },
  {
    label: "repetition penalty 0.8 with sampling",
    vocab: 1000,
    spread: 4,
    params: { ...SAMPLE_OFF, repetitionPenalty: 0.8, seed: 3 },
    history: [1, 2, 3, 3, 500, 999],
    calls: 10,
    capacity: 32,
  },
  {
    label: "all combined",
    vocab: 20000,
    spread: 8,
    params: { temperature: 0.8, topK: 50, topP: 0.95, minP: 0.02, repetitionPenalty: 1.2, seed: 2024 },
    history: [5, 6, 7, 8, 9, 10, 11, 12],
    calls: 6,
    capacity: 100,
    step: 1000,
  },
  {
    label: "stop token: done is set and later calls do nothing",
    vocab: 200,
    params: { ...SAMPLE_OFF, temperature: 0 },
    edit: (x) => {
      x[42] = 20;
    },
    stopIds: [1, 42],
    calls: 3,
  },
  {
    label: "history full after this token",
    vocab: 200,
    params: { ...SAMPLE_OFF, seed: 8 },
    history: [1, 2, 3],
    capacity: 4,
    calls: 2,
  },
  { label: "history already full: no append, done", vocab: 200, params: SAMPLE_OFF, history: [1, 2], capacity: 2 },
  { label: "done already: nothing changes", vocab: 200, params: SAMPLE_OFF, done: true },
  {
    label: "only -inf and NaN: greedy's choice",
    vocab: 50,
    params: { ...SAMPLE_OFF, topK: 3 },
    edit: (x) => {
      x.fill(-Infinity);
      x[30] = NaN;
    },
  },
  {
    label: "+inf logits share the mass",
    vocab: 50,
    params: { ...SAMPLE_OFF, seed: 9 },
    edit: (x) => {
      x[3] = x[20] = x[44] = Infinity;
    },
    calls: 10,
    capacity: 16,
  },
  {
    // Uniform weights over 256 ids: R = u24 · 2^24 and id i ends at (i + 1) · 2^40. Seed 107511 draws
    // u24 = 120 · 2^16 at step 0, exactly on the end of id 119: "exceeds" picks id 120.
    label: "draw exactly on a boundary",
    vocab: 256,
    params: { ...SAMPLE_OFF, seed: 107511 },
    edit: (x) => {
      x.fill(0);
    },
  },
  {
    label: "top-p reached exactly: two of four equal tokens",
    vocab: 4,
    params: { ...SAMPLE_OFF, topP: 0.5, seed: 21 },
    edit: (x) => {
      x.fill(1);
    },
    calls: 24,
    capacity: 32,
  },
  { label: "vocab 262144, temperature 1", vocab: 262144, spread: 12, params: { ...SAMPLE_OFF, seed: 42 }, calls: 3 },
  {
    label: "vocab 262144, all combined",
    vocab: 262144,
    spread: 15,
    params: { temperature: 0.7, topK: 64, topP: 0.9, minP: 0.01, repetitionPenalty: 1.1, seed: 0xdeadbeef },
    history: [0, 1, 2, 262143, 100000],
    calls: 3,
    capacity: 16,
  },
  // The CUDA sampler splits a vocabulary of more than 8192 ids over a cluster of up to 8 blocks (32768 ids each at
  // 262144) and selects top-k/top-p thresholds by radix over the value bits, then by id within a tied value. These
  // rows put maxima, boundary values, ties, history ids, NaN and -inf on both sides of the block boundaries, and
  // values one ulp apart (only the last radix digit tells them apart).
  {
    label: "vocab 262144, top-k 1: tied maxima in three blocks keep the lowest id",
    vocab: 262144,
    params: { ...SAMPLE_OFF, topK: 1, seed: 17 },
    edit: (x) => {
      x[200001] = x[98304] = x[32769] = 25;
    },
    calls: 3,
  },
  {
    label: "vocab 262144, top-k 64: the boundary value shared by ids in every block",
    vocab: 262144,
    spread: 12,
    params: { ...SAMPLE_OFF, topK: 64, seed: 64 },
    edit: (x) => {
      for (let i = 0; i < 50; i++) x[i * 5000 + 7] = 20; // 50 clear winners
      for (let i = 0; i < 40; i++) x[262143 - i * 6553] = 19.5; // 14 of these 40 survive, the lowest ids
    },
    calls: 6,
    capacity: 16,
  },
  {
    label: "vocab 262144, top-k = vocab is off",
    vocab: 262144,
    spread: 6,
    params: { ...SAMPLE_OFF, topK: 262144, seed: 3 },
    calls: 2,
  },
  {
    label: "vocab 262144, top-p 0.95 over a flat distribution (most of the vocabulary survives)",
    vocab: 262144,
    spread: 2,
    params: { ...SAMPLE_OFF, topP: 0.95, seed: 95 },
    calls: 3,
  },
  {
    label: "vocab 262144, top-k 64 with top-p 1 (off)",
    vocab: 262144,
    spread: 15,
    params: { ...SAMPLE_OFF, topK: 64, topP: 1, seed: 641 },
    calls: 3,
  },
  {
    label: "vocab 262144, near-ties: values one ulp apart at the top-k and top-p boundaries",
    vocab: 262144,
    spread: 10,
    params: { ...SAMPLE_OFF, topK: 290, topP: 0.6, seed: 1234 },
    edit: (x) => {
      // 400 ids in all blocks at 11, 11 + 1 ulp, ..., 11 + 19 ulp (20 tokens per value): the 290th key and
      // the top-p boundary both fall inside runs of equal values that differ from their neighbours in bit 0.
      const bits = new Uint32Array(1), f = new Float32Array(bits.buffer);
      f[0] = 11;
      const base = bits[0];
      for (let i = 0; i < 400; i++) {
        bits[0] = base + (i % 20);
        x[(i * 655 + 3) % 262144] = f[0];
      }
    },
    calls: 8,
    capacity: 16,
  },
  {
    label: "vocab 262144, logits rounded to 1/8: ties everywhere, top-p 0.9",
    vocab: 262144,
    spread: 8,
    params: { ...SAMPLE_OFF, topP: 0.9, seed: 808 },
    edit: (x) => {
      for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i] * 8) / 8;
    },
    calls: 4,
    capacity: 16,
  },
  {
    label: "vocab 262144, min-p 0.1",
    vocab: 262144,
    spread: 6,
    params: { ...SAMPLE_OFF, minP: 0.1, seed: 10 },
    calls: 3,
  },
  {
    label: "vocab 262144, repetition penalty 1.3 on history ids at the block boundaries",
    vocab: 262144,
    spread: 4,
    params: { ...SAMPLE_OFF, temperature: 0.9, topK: 40, repetitionPenalty: 1.3, seed: 13 },
    edit: (x) => {
      for (const i of [0, 32767, 32768, 65535, 131072, 262143]) x[i] = 9; // top tokens, all penalised
      x[98303] = -3; // negative: multiplied
    },
    history: [0, 32767, 32768, 65535, 131072, 262143, 32768, 98303, 0, -1, 262144],
    calls: 5,
    capacity: 32,
  },
  {
    label: "vocab 262144, repetition penalty 1.5, greedy: the penalised maximum loses",
    vocab: 262144,
    params: { ...SAMPLE_OFF, temperature: 0, repetitionPenalty: 1.5 },
    edit: (x) => {
      x[163840] = 30;
      x[229376] = 25;
    },
    history: [163840, 5, 163840],
    capacity: 8,
  },
  {
    label: "vocab 262144, all logits equal: top-k 1000 and top-p 0.5 cut inside one value",
    vocab: 262144,
    params: { ...SAMPLE_OFF, topK: 1000, topP: 0.5, seed: 1000 },
    edit: (x) => {
      x.fill(0.25);
    },
    calls: 6,
    capacity: 16,
  },
  {
    label: "vocab 262144, all logits equal, temperature only: uniform over every block",
    vocab: 262144,
    params: { ...SAMPLE_OFF, temperature: 0.5, seed: 262144 },
    edit: (x) => {
      x.fill(-1);
    },
    calls: 6,
    capacity: 16,
  },
  {
    label: "vocab 262144, NaN and -inf rows: top-k 64, top-p 0.95",
    vocab: 262144,
    spread: 10,
    params: { ...SAMPLE_OFF, topK: 64, topP: 0.95, seed: 4242 },
    edit: (x, rng) => {
      for (let i = 0; i < x.length; i += 3) x[i] = -Infinity;
      for (let i = 1; i < x.length; i += 7) x[i] = NaN;
      x[Math.floor(rng.next() * x.length)] = NaN;
    },
    calls: 4,
    capacity: 16,
  },
  {
    label: "vocab 262144, top-k larger than the finite logits: NaN and -inf fill the count",
    vocab: 262144,
    params: { ...SAMPLE_OFF, topK: 5000, seed: 5000 },
    edit: (x) => {
      x.fill(-Infinity);
      x.fill(NaN, 100000, 101000);
      for (let i = 0; i < 20; i++) x[i * 13000 + 1] = i / 4;
    },
    calls: 6,
    capacity: 16,
  },
  {
    label: "vocab 262144, only -inf and NaN: greedy's choice (the first NaN, in a later block)",
    vocab: 262144,
    params: { ...SAMPLE_OFF, topK: 64, topP: 0.9 },
    edit: (x) => {
      x.fill(-Infinity);
      x[200000] = NaN;
      x[150000] = NaN;
    },
  },
  {
    label: "vocab 262144, +inf in several blocks shares the mass",
    vocab: 262144,
    params: { ...SAMPLE_OFF, topP: 0.7, seed: 77 },
    edit: (x) => {
      x[1] =
        x[70000] =
        x[140000] =
        x[262000] =
          Infinity;
    },
    calls: 8,
    capacity: 16,
  },
  {
    label: "vocab 40001 (uneven blocks), all combined",
    vocab: 40001,
    spread: 9,
    params: { temperature: 1.2, topK: 100, topP: 0.8, minP: 0.05, repetitionPenalty: 1.2, seed: 40001 },
    history: [40000, 8000, 8001, 16002, 39999],
    calls: 6,
    capacity: 32,
  },
];
for (const c of SAMPLE_CASES) {
  add({
    op: "sample",
    name: `${c.label}: vocab=${c.vocab} ${JSON.stringify(c.params)}`,
    nmse: 0,
    exact: true,
    setup(rng) {
      const spread = c.spread ?? 10;
      const logits = rng.floats(c.vocab, -spread, spread);
      c.edit?.(logits, rng);
      const capacity = c.capacity ?? 8;
      const history = new Int32Array(capacity).fill(-7);
      history.set(c.history ?? []);
      const state = new Int32Array(8);
      state[ref.STATE_POSITION] = 100 + (c.history?.length ?? 0);
      state[ref.STATE_TOKEN] = c.history?.at(-1) ?? 0;
      state[ref.STATE_HISTORY] = c.history?.length ?? 0;
      state[ref.STATE_DONE] = c.done ? 1 : 0;
      state[ref.STATE_STEP] = c.step ?? 0;
      const stops = c.stopIds ?? [];
      const calls = c.calls ?? 1;
      // NaN never equals itself: compared as a sentinel.
      const result = (st: ArrayLike<number>, hist: ArrayLike<number>, lg: ArrayLike<number>) => [
        ...Array.from(st),
        ...Array.from(hist),
        ...Array.from(lg, (v) => Number.isNaN(v) ? -12345 : v),
      ];
      return {
        reference: () => {
          const lg = Float32Array.from(logits), st = Int32Array.from(state), hist = Int32Array.from(history);
          for (let i = 0; i < calls; i++) {
            if (i > 0) lg.set(logits);
            ref.sample(lg, c.params, st, hist, stops);
          }
          return result(st, hist, lg);
        },
        run: (b) => {
          using s = new Scope(b);
          const lg = s.t(logits, [c.vocab]), st = s.t(state, [8], "i32"), hist = s.t(history, [capacity], "i32");
          const stopIds = stops.length ? s.t(stops, [stops.length], "i32") : null;
          for (let i = 0; i < calls; i++) {
            if (i > 0) lg.write(logits);
            ops.sample(lg, c.params, st, hist, stopIds);
          }
          return result(st.toArray(), hist.toArray(), lg.toArray());
        },
      };
    },
  });
}

// ---- logits_process / logprobs: OpenAI's logit_bias, frequency/presence penalties, constraint masks ---------
// The processed logits are compared exactly (one shared rounded expression per logit); -inf (masked) is a sentinel.
const LOGITS_PROCESS_CASES: {
  label: string;
  vocab: number;
  start: number;
  frequency: number;
  presence: number;
  history: number[];
  bias?: [number, number][];
  /** Every id allowed with this probability; undefined: no mask. */
  allow?: number;
  done?: boolean;
}[] = [
  {
    label: "bias only (out-of-range id ignored)",
    vocab: 37,
    start: 0,
    frequency: 0,
    presence: 0,
    history: [],
    bias: [[3, 2.5], [36, -100], [40, 1]],
  },
  {
    label: "penalties over generated ids",
    vocab: 100,
    start: 2,
    frequency: 0.7,
    presence: 0.3,
    history: [5, 9, 9, 9, 17, 5, 99, 120, -1],
  },
  {
    label: "negative penalties, repeated id",
    vocab: 1000,
    start: 0,
    frequency: -0.5,
    presence: 1.25,
    history: [7, 7, 7, 7, 7, 999],
  },
  {
    label: "mask and bias",
    vocab: 70,
    start: 0,
    frequency: 0,
    presence: 0,
    history: [1, 2],
    bias: [[0, 1]],
    allow: 0.3,
  },
  {
    label: "everything, vocab 262144",
    vocab: 262144,
    start: 3,
    frequency: 0.4,
    presence: 0.6,
    history: [1, 2, 3, 262143, 4, 262143, 70000],
    bias: [[262143, -3], [5, 4]],
    allow: 0.5,
  },
  {
    label: "done: nothing changes",
    vocab: 50,
    start: 0,
    frequency: 1,
    presence: 1,
    history: [1, 1],
    bias: [[1, 5]],
    allow: 0.5,
    done: true,
  },
];
for (const c of LOGITS_PROCESS_CASES) {
  add({
    op: "logits_process",
    name: `${c.label}: vocab=${c.vocab}`,
    nmse: 0,
    exact: true,
    setup(rng) {
      const logits = rng.floats(c.vocab, -8, 8);
      const capacity = c.history.length + 3;
      const history = new Int32Array(capacity).fill(2);
      history.set(c.history);
      const state = new Int32Array(8);
      state[ref.STATE_HISTORY] = c.history.length;
      state[ref.STATE_DONE] = c.done ? 1 : 0;
      const words = Math.ceil(c.vocab / 32);
      const allowed = c.allow === undefined ? undefined : Uint32Array.from({ length: words }, () => {
        let w = 0;
        for (let b = 0; b < 32; b++) if (rng.next() < c.allow!) w |= 1 << b;
        return w >>> 0;
      });
      const bias = c.bias ?? [];
      const out = (lg: ArrayLike<number>) => Array.from(lg, (v) => (v === -Infinity ? -12345 : v));
      return {
        reference: () => {
          const lg = Float32Array.from(logits);
          ref.logitsProcess(lg, state, history, {
            start: c.start,
            frequency: c.frequency,
            presence: c.presence,
            bias,
            allowed,
          });
          return out(lg);
        },
        run: (b) => {
          using s = new Scope(b);
          const lg = s.t(logits, [c.vocab]);
          const penalties = c.frequency !== 0 || c.presence !== 0;
          ops.logitsProcess(lg, s.t(state, [8], "i32"), s.t(history, [capacity], "i32"), {
            frequencyPenalty: c.frequency,
            presencePenalty: c.presence,
            penaltyStart: c.start,
            ...(bias.length && {
              biasIds: s.t(bias.map(([id]) => id), [bias.length], "i32"),
              biasValues: s.t(bias.map(([, v]) => v), [bias.length]),
            }),
            ...(allowed && { allowed: s.t(new Int32Array(allowed.buffer), [words], "i32") }),
            ...(penalties && { scratch: s.t(new Int32Array(c.vocab).fill(-5), [c.vocab], "i32") }),
          });
          return out(lg.toArray());
        },
      };
    },
  });
}

const LOGPROBS_CASES: {
  label: string;
  vocab: number;
  topN: number;
  step: number;
  capacity: number;
  edit?: (x: Float32Array) => void;
}[] = [
  { label: "no alternatives", vocab: 33, topN: 0, step: 1, capacity: 2 },
  { label: "top 5, slot 2", vocab: 1000, topN: 5, step: 3, capacity: 4 },
  {
    label: "ties go to the lower id, -inf and NaN last",
    vocab: 300,
    topN: 8,
    step: 1,
    capacity: 1,
    edit: (x) => {
      x[10] = x[20] = x[5] = 9;
      x.fill(-Infinity, 100, 200);
      x[250] = NaN;
    },
  },
  { label: "top 20 of 65537", vocab: 65537, topN: 20, step: 2, capacity: 3 },
  { label: "step outside the capacity: nothing written", vocab: 64, topN: 3, step: 5, capacity: 2 },
];
for (const c of LOGPROBS_CASES) {
  add({
    op: "logprobs",
    name: `${c.label}: vocab=${c.vocab} topN=${c.topN}`,
    nmse: 1e-12,
    setup(rng) {
      const logits = rng.floats(c.vocab, -10, 10);
      c.edit?.(logits);
      const state = new Int32Array(8);
      state[ref.STATE_STEP] = c.step;
      state[ref.STATE_TOKEN] = 7;
      const size = c.capacity * (1 + c.topN);
      // ids as numbers next to the logprobs: an id off by one is far outside the NMSE limit.
      const out = (ids: ArrayLike<number>, lp: ArrayLike<number>) => [...Array.from(ids), ...Array.from(lp)];
      return {
        reference: () => {
          const ids = new Int32Array(size).fill(-1), lp = new Float32Array(size).fill(1);
          ref.logprobs(logits, state, c.topN, ids, lp);
          return out(ids, lp);
        },
        run: (b) => {
          using s = new Scope(b);
          const ids = s.t(new Int32Array(size).fill(-1), [c.capacity, 1 + c.topN], "i32");
          const lp = s.t(new Float32Array(size).fill(1), [c.capacity, 1 + c.topN]);
          ops.logprobs(s.t(logits, [c.vocab]), s.t(state, [8], "i32"), c.topN, ids, lp);
          return out(ids.toArray(), lp.toArray());
        },
      };
    },
  });
}

// ---- moe_route / moe_experts (Gemma 4 mixture of experts) -------------------------------------------
// Router rows check the chosen ids exactly and, separately, the weights. Ties (equal logits, hence equal
// probabilities) go to the lower expert id on every backend; the last case straddles the top-k boundary.
const MOE_ROUTE_CASES: {
  label: string;
  tokens: number;
  experts: number;
  topK: number;
  scale: DType | null;
  edit?: (x: Float32Array) => void;
}[] = [
  { label: "26B-A4B decode", tokens: 1, experts: 128, topK: 8, scale: "f32" },
  { label: "26B-A4B prefill", tokens: 5, experts: 128, topK: 8, scale: "bf16" },
  { label: "all experts, no scale", tokens: 4, experts: 7, topK: 7, scale: null },
  {
    label: "ties",
    tokens: 3,
    experts: 16,
    topK: 4,
    scale: "f16",
    edit: (x) => {
      x.fill(0, 0, 16); // row 0: all equal
      for (const j of [9, 2, 14, 5, 7]) x[16 + j] = 5; // row 1: five equal maxima
      x.fill(-3, 32, 48); // row 2: three clear winners, then three equal for the last slot (id 4 wins)
      x.set([4, 3.5, 3], 32 + 10);
      for (const j of [13, 4, 8]) x[32 + j] = 2.5;
    },
  },
  {
    // Logits one ulp apart near 0.01 have one f32 probability (exp of a 1e-9 difference rounds to 1): ranked by
    // probability they would tie and go by id (10, 11, ...); ranked by logit, as every backend does, the larger
    // logits win (19, 18, ...), as the f64 reference's probabilities say.
    label: "near-ties one ulp apart",
    tokens: 2,
    experts: 64,
    topK: 6,
    scale: "f32",
    edit: (x) => {
      const bits = new Uint32Array(1), f = new Float32Array(bits.buffer);
      for (const row of [0, 1]) {
        x.fill(row === 0 ? -1 : 0.0099, row * 64, row * 64 + 64);
        for (let j = 10; j < 20; j++) {
          f[0] = 0.01;
          bits[0] += j - 10;
          x[row * 64 + j] = f[0];
        }
      }
    },
  },
];
for (const c of MOE_ROUTE_CASES) {
  for (const part of ["ids", "weights"] as const) {
    add({
      op: "moe_route",
      name: `${c.label}: tokens=${c.tokens} experts=${c.experts} top_k=${c.topK} scale=${c.scale ?? "none"} (${part})`,
      nmse: 1e-12,
      exact: part === "ids",
      setup(rng) {
        const logits = rng.floats(c.tokens * c.experts, -4, 4), scale = rng.floats(c.experts, 0.5, 1.5);
        c.edit?.(logits);
        return {
          reference: () => {
            const r = ref.moeRoute(logits, c.scale ? roundTo(scale, c.scale) : null, c.experts, c.topK);
            return part === "ids" ? r.ids : r.weights;
          },
          run: (b) => {
            using s = new Scope(b);
            const sc = c.scale ? s.t(scale, [c.experts], c.scale) : null;
            const r = ops.moeRoute(s.t(logits, [c.tokens, c.experts]), sc, c.topK);
            s.keep(r.ids);
            s.keep(r.weights);
            return (part === "ids" ? r.ids : r.weights).toArray();
          },
        };
      },
    });
  }
}

// Experts: tokens <= 4 take the per-(token, slot) path on CUDA, more the expert-grouped GEMMs; shapes off every
// tile; 26B-A4B's E=128, k=8 with hidden/inter cut from 2816/704 to 128/48 to keep the reference quick. Tokens share
// experts (the grouped path's several rows per expert).
const MOE_EXPERT_SHAPES: [tokens: number, experts: number, topK: number, hidden: number, inter: number][] = [
  [1, 4, 2, 19, 7],
  [1, 128, 8, 128, 48],
  [3, 128, 8, 128, 48],
  [9, 6, 3, 33, 17],
  [40, 8, 2, 72, 24],
];
function moeIds(rng: Rng, tokens: number, experts: number, topK: number): Int32Array {
  const ids = new Int32Array(tokens * topK);
  for (let t = 0; t < tokens; t++) {
    // Every other token reuses half of the previous token's experts.
    const pool = Array.from({ length: experts }, (_, j) => j);
    const chosen: number[] = t % 2 === 1 ? Array.from(ids.subarray((t - 1) * topK, (t - 1) * topK + (topK >> 1))) : [];
    const free = pool.filter((j) => !chosen.includes(j));
    while (chosen.length < topK) chosen.push(free.splice(Math.floor(rng.next() * free.length), 1)[0]);
    ids.set(chosen, t * topK);
  }
  return ids;
}
type MoeExpertRow = [
  gateUp: DType,
  down: DType,
  tokens: number,
  experts: number,
  topK: number,
  hidden: number,
  inter: number,
];
const moeExpertRows: MoeExpertRow[] = [
  ...WEIGHT_DTYPES.flatMap((d) => MOE_EXPERT_SHAPES.map((s): MoeExpertRow => [d, d, ...s])),
  ["q8_0", "q8_0", 3, 8, 2, 64, 32],
  ["q5_0", "q5_0", 6, 5, 3, 96, 64],
  ["q4_k", "q4_k", 5, 4, 2, 256, 256],
  ["q6_k", "q6_k", 1, 4, 2, 256, 512],
  // gate_up and down in different types, as llama-quantize's mixes store them: a _M mix's Q6_K down beside Q4_K
  // gate/up; a down whose rows (inter) fit no K block falling back to Q8_0 (26B-A4B's inter 704 = 2.75 blocks of
  // 256); the fixtures' Q4_0 / Q8_0 gate/up beside an F16 or F32 down that fits no block at all; float pairs.
  ["q4_k", "q6_k", 5, 4, 2, 256, 256],
  ["q4_k", "q6_k", 1, 4, 2, 256, 256],
  ["q4_k", "q8_0", 3, 8, 2, 256, 96],
  ["q4_0", "f16", 6, 4, 2, 32, 16],
  ["q8_0", "f32", 9, 6, 3, 64, 17],
  ["f16", "q5_0", 2, 5, 2, 33, 64],
  ["bf16", "f16", 1, 4, 2, 19, 7],
  ["bf16", "f16", 40, 8, 2, 72, 24],
];
for (const [guType, dnType, tokens, experts, topK, hidden, inter] of moeExpertRows) {
  add({
    op: "moe_experts",
    name: `tokens=${tokens} experts=${experts} top_k=${topK} hidden=${hidden} inter=${inter} ${
      guType === dnType ? guType : `gate_up=${guType} down=${dnType}`
    }`,
    nmse: 1e-10,
    setup(rng) {
      const x = rng.floats(tokens * hidden), ids = moeIds(rng, tokens, experts, topK);
      const weights = rng.floats(tokens * topK, 0, 1);
      const isQuant = (d: DType) => QUANT_DTYPES.includes(d as QuantDType);
      // One projection's weights [experts · rows, cols] in dtype: raw blocks, or floats rounded to dtype.
      const make = (dtype: DType, rows: number, cols: number) => {
        const w = isQuant(dtype)
          ? randomQuantBlocks(rng, dtype as QuantDType, experts * rows, cols)
          : rng.floats(experts * rows * cols, -0.2, 0.2);
        return {
          values: () =>
            isQuant(dtype) ? dequantize(w as Uint8Array, dtype as QuantDType) : roundTo(w as Float32Array, dtype),
          tensor: (s: Scope) =>
            isQuant(dtype)
              ? s.raw(w as Uint8Array, [experts, rows, cols], dtype)
              : s.t(w as Float32Array, [experts, rows, cols], dtype),
        };
      };
      const gu = make(guType, 2 * inter, hidden), dn = make(dnType, hidden, inter);
      return {
        reference: () => ref.moeExperts(x, ids, weights, gu.values(), dn.values(), topK, hidden, inter),
        run: (b) =>
          run(b, (s) =>
            ops.moeExperts(
              s.t(x, [tokens, hidden]),
              s.t(ids, [tokens, topK], "i32"),
              s.t(weights, [tokens, topK]),
              gu.tensor(s),
              dn.tensor(s),
            )),
      };
    },
  });
}

export const OP_CASES: readonly OpCase[] = cases;
