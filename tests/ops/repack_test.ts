/**
 * The CPU library's 16-row layouts q8_0x16 .. q6_kx16 (kernels/cpu/repack.cpp, src/ops/repack.ts): made in place
 * where the build can read them, the same values as the Q8_0 / Q5_0 / Q4_0 / Q4_1 / Q5_1 / Q4_K / Q5_K / Q6_K weight
 * they came from (read back on the host through the layout's own reference decoder, gathered by embedding), products
 * within f32 rounding of the exact one for every row count (the integer kernel up to 15-40 rows, f32 panels and strips
 * beyond), and a NaN or infinity in x reaching every output as on the f32 path.
 * The op-parity table (tests/ops/cases.ts) holds the same products against CUDA when a GPU is present.
 * @module
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { CPU_VNNI } from "../helpers.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { dequantize } from "../../src/runtime/quant.ts";
import { embedding, linear, repackForBackend } from "../../src/ops/mod.ts";
import { ShapeError } from "../../src/errors.ts";
import { randomQuantBlocks, Rng } from "./cases.ts";
import * as ref from "./reference.ts";

const vnni = CPU_VNNI;

function nmse(got: ArrayLike<number>, want: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < want.length; i++) num += (got[i] - want[i]) ** 2, den += want[i] ** 2;
  return num / den;
}

for (
  const [file, layout, k] of [
    ["q8_0", "q8_0x16", 640],
    ["q5_0", "q5_0x16", 640],
    ["q4_0", "q4_0x16", 640],
    ["q4_1", "q4_1x16", 640],
    ["q5_1", "q5_1x16", 640],
    ["q4_k", "q4_kx16", 512],
    ["q5_k", "q5_kx16", 512],
    ["q6_k", "q6_kx16", 512],
  ] as const
) {
  const name = `${layout}: repacked on an AVX512-VNNI CPU, the ${file} weight's values, products within f32 rounding`;
  Deno.test(name, () => {
    if (!vnni) {
      console.log(`ignoring: this CPU has no AVX512-VNNI, so the CPU library keeps ${file} weights as stored`);
      return;
    }
    using backend = Backend.open({ backend: "cpu" });
    const rng = new Rng(7);
    const n = 64;
    const bytes = randomQuantBlocks(rng, file, n, k);
    using w = Tensor.fromBytes(backend, bytes, [n, k], file);
    const x16 = repackForBackend(w);
    assert.equal(x16.dtype, layout);
    assert.deepEqual(x16.shape, [n, k]);
    assert.equal(
      Deno.UnsafePointer.value(x16.pointer),
      Deno.UnsafePointer.value(w.pointer),
      "rewritten in place: the weight's memory",
    );
    const values = dequantize(bytes, file);
    assert.deepEqual(x16.toArray(), values, `the repacked bytes read back as the ${file} values`);
    assert.notDeepEqual(x16.toBytes(), bytes, "the bytes were reordered");

    // Every row count the integer kernel takes in one pass (1..8), more (passes of <= 8 rows, up to 15-40 rows by
    // format: linear.cpp's int_rows_max) and the f32 panels (to 47 rows) and strips (48 on) past it, with an outlier
    // per row and a block of zeros and one of subnormal-small values (which go in as 0).
    for (const m of [1, 2, 3, 5, 8, 9, 16, 17, 33, 44, 48]) {
      const x = rng.floats(m * k);
      for (let i = 0; i < m; i++) {
        x[i * k + 7 * i] = 300;
        x.fill(0, i * k + 64, i * k + 96);
        for (let j = 96; j < 128; j++) x[i * k + j] = 1e-35 * (j - 100);
      }
      using xt = Tensor.fromArray(backend, x, [m, k]);
      using y = linear(xt, x16);
      const e = nmse(y.toArray(), ref.linear(x, values, null, m, n, k));
      assert.ok(e < 1e-10, `m=${m}: NMSE ${e}`);
    }

    // A non-finite x reaches every output of its row, and no other row's.
    for (const bad of [NaN, Infinity]) {
      const x = rng.floats(2 * k);
      x[k + 100] = bad;
      using xt = Tensor.fromArray(backend, x, [2, k]);
      using y = linear(xt, x16);
      const out = y.toArray();
      assert.ok(out.slice(0, n).every(Number.isFinite), `${bad}: row 0 is finite`);
      assert.ok(out.slice(n).every(Number.isNaN), `${bad}: row 1 is NaN throughout, as x · W is`);
    }

    // The embedding gather reads the layout: exactly the file's rows, scaled.
    const ids = Int32Array.from([0, 15, 16, 63, 5]);
    using idt = Tensor.fromArray(backend, ids, [ids.length], "i32");
    using rows = embedding(x16, idt, 2);
    assert.deepEqual(rows.toArray(), Float32Array.from(ref.embedding(values, k, ids, 2)));
  });
}

Deno.test("repack: what cannot take a layout stays as it was, and the layouts' shapes are checked", () => {
  using backend = Backend.open({ backend: "cpu" });
  const rng = new Rng(3);
  // 24 rows: not a whole number of 16-row groups.
  using odd = Tensor.fromBytes(backend, randomQuantBlocks(rng, "q8_0", 24, 64), [24, 64], "q8_0");
  assert.equal(repackForBackend(odd), odd);
  using q3k = Tensor.fromBytes(backend, randomQuantBlocks(rng, "q3_k", 16, 256), [16, 256], "q3_k");
  assert.equal(repackForBackend(q3k), q3k, "a format with no layout");
  assert.throws(() => Tensor.empty(backend, [24, 64], "q8_0x16"), ShapeError);
  assert.throws(() => Tensor.empty(backend, [24, 64], "q5_0x16"), ShapeError);
  if (!vnni) return;
  using w = Tensor.fromBytes(backend, randomQuantBlocks(rng, "q8_0", 32, 64), [32, 64], "q8_0");
  const x16 = repackForBackend(w);
  assert.equal(x16.dtype, "q8_0x16");
  assert.throws(() => x16.rows(8, 16), ShapeError);
  assert.deepEqual(x16.rows(16, 16).shape, [16, 64]);
});
