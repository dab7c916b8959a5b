/** Child of linear_q8act_test.ts: prints {vnni, rows: [{name, nmse}]} as JSON on its last line. */
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { linear } from "../../src/ops/linear.ts";
import { dequantize } from "../../src/runtime/quant.ts";
import type { QuantDType } from "../../src/runtime/dtype.ts";
import { randomQuantBlocks, Rng } from "./cases.ts";

using backend = Backend.open({ backend: "cpu" });
const cpuinfo = (() => {
  try {
    return Deno.readTextFileSync("/proc/cpuinfo");
  } catch {
    return "";
  }
})();
const vnni = /\bavx512_vnni\b/.test(cpuinfo) && /\bavx512bw\b/.test(cpuinfo) && /\bavx512vl\b/.test(cpuinfo);
const rng = new Rng(19);
const rows: { name: string; nmse: number }[] = [];
for (const dtype of ["q8_0", "q5_0", "q4_k", "q6_k"] as QuantDType[]) {
  for (const k of dtype.endsWith("_k") ? [512] : [640]) {
    const n = 37; // not a multiple of the 4-row blocks nor of the threads' 16-row chunks
    const wb = randomQuantBlocks(rng, dtype, n, k);
    const wf = dequantize(wb, dtype);
    using w = Tensor.fromBytes(backend, wb, [n, k], dtype);
    for (const m of [1, 2, 3, 8]) {
      const xs = Float32Array.from({ length: m * k }, () => rng.next() * 2 - 1);
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
      rows.push({ name: `${dtype} m=${m} n=${n} k=${k}`, nmse: e2 / r2 });
    }
  }
}
// A NaN in x reaches the outputs of its row (and only its row), as on the f32 path.
{
  const n = 8, k = 640;
  using w = Tensor.fromBytes(backend, randomQuantBlocks(rng, "q8_0", n, k), [n, k], "q8_0");
  const xs = Float32Array.from({ length: 2 * k }, () => rng.next() * 2 - 1);
  xs[k + 100] = NaN;
  using x = Tensor.fromArray(backend, xs, [2, k]);
  using y = Tensor.empty(backend, [2, n]);
  linear(x, w, null, y);
  const got = y.toArray() as Float32Array;
  const nanRow = got.subarray(n).every(Number.isNaN), cleanRow = got.subarray(0, n).every(Number.isFinite);
  rows.push({ name: "q8_0 NaN in row 1 of x", nmse: nanRow && cleanRow ? 1e-5 : 1 });
}
console.log(JSON.stringify({ vnni, rows }));
