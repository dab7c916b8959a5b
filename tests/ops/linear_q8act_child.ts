/**
 * Child of linear_q8act_test.ts: prints {vnni, avx2, rows: [{name, nmse, hash}], alone: [{name, same}]} as JSON on its
 * last line (hash: of y's bytes, so that two modes' products can be told apart; same: whether every row of an m-row
 * product equals that row of x multiplied alone, bit for bit).
 */
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { linear } from "../../src/ops/linear.ts";
import { dequantize } from "../../src/runtime/quant.ts";
import type { QuantDType } from "../../src/runtime/dtype.ts";
import { randomQuantBlocks, Rng } from "./cases.ts";
import { CPU_VNNI } from "../helpers.ts";

using backend = Backend.open({ backend: "cpu" });
const cpuinfo = (() => {
  try {
    return Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    return "";
  }
})();
const vnni = CPU_VNNI;
// Without VNNI, an AVX2 + FMA build has its own decode paths (kernels/cpu/linear_x24_avx2.cpp) for Q5_0 / Q4_K / Q6_K.
const avx2 = !vnni && /\bavx2\b/.test(cpuinfo) && /\bfma\b/.test(cpuinfo);
const rng = new Rng(19);
const rows: { name: string; nmse: number; hash?: string }[] = [];
const hash = (y: Float32Array) => {
  let h = 2166136261;
  for (const b of new Uint8Array(y.buffer, y.byteOffset, y.byteLength)) h = Math.imul(h ^ b, 16777619) >>> 0;
  return h.toString(16);
};
for (const dtype of ["q8_0", "q5_0", "q4_k", "q6_k"] as QuantDType[]) {
  for (const k of dtype.endsWith("_k") ? [512] : [640]) {
    const n = 37; // not a multiple of the 4-row blocks nor of the threads' 16-row chunks
    const wb = randomQuantBlocks(rng, dtype, n, k);
    const wf = dequantize(wb, dtype);
    using w = Tensor.fromBytes(backend, wb, [n, k], dtype);
    for (const m of [1, 2, 3, 8]) {
      const xs = Float32Array.from({ length: m * k }, () => rng.next() * 2 - 1);
      // Lanes the 24-bit form scales on their own: an outlier (Gemma's activations have a few), zeros, subnormals.
      if (m === 1) xs.set([300, 0, 0, 0, 0, 1e-40, -1e-40, 0], 64);
      using x = Tensor.fromArray(backend, xs, [m, k]);
      using y = Tensor.empty(backend, [m, n]);
      linear(x, w, null, y);
      const got = y.toArray() as Float32Array;
      let e2 = 0, r2 = 0;
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let c = 0; c < k; c++) s += xs[i * k + c] * wf[j * k + c];
          e2 += (got[i * n + j] - s) ** 2;
          r2 += s * s;
        }
      }
      rows.push({ name: `${dtype} m=${m} n=${n} k=${k}`, nmse: e2 / r2, hash: hash(got) });
    }
  }
}
// A NaN in x reaches the outputs of its row (and only its row), as on the f32 path (Q4_K: the int8 path's rows with
// the option, on AVX2 too).
for (const [dtype, k] of [["q8_0", 640], ["q4_k", 512]] as [QuantDType, number][]) {
  const n = 8;
  using w = Tensor.fromBytes(backend, randomQuantBlocks(rng, dtype, n, k), [n, k], dtype);
  const xs = Float32Array.from({ length: 2 * k }, () => rng.next() * 2 - 1);
  xs[k + 100] = NaN;
  using x = Tensor.fromArray(backend, xs, [2, k]);
  using y = Tensor.empty(backend, [2, n]);
  linear(x, w, null, y);
  const got = y.toArray() as Float32Array;
  const nanRow = got.subarray(n).every(Number.isNaN), cleanRow = got.subarray(0, n).every(Number.isFinite);
  rows.push({ name: `${dtype} NaN in row 1 of x`, nmse: nanRow && cleanRow ? 1e-5 : 1 });
}
// One row of x (decode: the 24-bit path for Q5_0 / Q4_K / Q6_K): a NaN or an infinity in x makes every output
// non-finite, as on the f32 path.
for (const dtype of ["q5_0", "q4_k", "q6_k"] as QuantDType[]) {
  for (const bad of [NaN, Infinity]) {
    const n = 8, k = 512;
    using w = Tensor.fromBytes(backend, randomQuantBlocks(rng, dtype, n, k), [n, k], dtype);
    const xs = Float32Array.from({ length: k }, () => rng.next() * 2 - 1);
    xs[300] = bad;
    using x = Tensor.fromArray(backend, xs, [1, k]);
    using y = Tensor.empty(backend, [1, n]);
    linear(x, w, null, y);
    const all = (y.toArray() as Float32Array).every((v) => !Number.isFinite(v));
    rows.push({ name: `${dtype} ${bad} in the one row of x`, nmse: all ? 1e-5 : 1 });
  }
}
// Whether each row of an m-row product equals the same row of x multiplied alone, bit for bit (what a batched decode
// step's rows get against single-stream decoding).
const alone: { name: string; same: boolean }[] = [];
for (const dtype of ["q5_0", "q4_k", "q6_k"] as QuantDType[]) {
  const n = 37, k = 512;
  using w = Tensor.fromBytes(backend, randomQuantBlocks(rng, dtype, n, k), [n, k], dtype);
  const xs = Float32Array.from({ length: 8 * k }, () => rng.next() * 2 - 1);
  const product = (first: number, m: number) => {
    using x = Tensor.fromArray(backend, xs.slice(first * k, (first + m) * k), [m, k]);
    using y = Tensor.empty(backend, [m, n]);
    linear(x, w, null, y);
    return y.toArray() as Float32Array;
  };
  const single = Array.from({ length: 8 }, (_, i) => product(i, 1));
  for (const m of [2, 3, 4, 8]) {
    const y = product(0, m);
    const same = single.slice(0, m).every((one, i) => one.every((v, j) => Object.is(v, y[i * n + j])));
    alone.push({ name: `${dtype} m=${m}`, same });
  }
}
console.log(JSON.stringify({ vnni, avx2, rows, alone }));
