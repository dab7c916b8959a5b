/**
 * gk_greedy_logits (src/ops/linear.ts greedyLogits): every entry is either -inf or exactly what `linear` (then
 * `softcap`) gives, the keep ids always the latter, and each row's argmax — ties to the lower id, NaN first — is the
 * full product's. On an AVX512-VNNI CPU the 16-row layouts it screens must also drop most of the vocabulary (the point
 * of the op); elsewhere (file layouts, Q4_K's mins, one row of x, past the integer kernel) it writes every value.
 * @module
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { CPU_VNNI } from "../helpers.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { argmax, greedyLogits, linear, repackForBackend, softcap } from "../../src/ops/mod.ts";
import { DTypeError, ShapeError } from "../../src/errors.ts";
import { dequantize, QUANT_BLOCKS, type QuantDType } from "../../src/runtime/quant.ts";
import { randomQuantBlocks, Rng } from "./cases.ts";

const vnni = CPU_VNNI;

const N = 4096, K = 512;

/** Checks one product; returns the share of -inf entries. */
function check(
  backend: Backend,
  w: Tensor,
  x: Float32Array,
  m: number,
  o: { cap?: number; keep?: number[] },
  label: string,
): number {
  using xt = Tensor.fromArray(backend, x, [m, K]);
  using full = linear(xt, w);
  if (o.cap) softcap(full, o.cap, full);
  using keep = o.keep ? Tensor.fromArray(backend, Int32Array.from(o.keep), [o.keep.length], "i32") : null;
  using g = greedyLogits(xt, w, { keepIds: keep, cap: o.cap });
  const want = full.toArray() as Float32Array, got = g.toArray() as Float32Array;
  let dropped = 0;
  for (let i = 0; i < want.length; i++) {
    if (got[i] === -Infinity && want[i] !== -Infinity) {
      dropped++;
      continue;
    }
    assert.ok(Object.is(got[i], want[i]), `${label}: [${Math.floor(i / N)}, ${i % N}] = ${got[i]}, want ${want[i]}`);
  }
  for (let r = 0; r < m; r++) {
    for (const id of o.keep ?? []) {
      assert.ok(Object.is(got[r * N + id], want[r * N + id]), `${label}: keep id ${id} of row ${r} not computed`);
    }
  }
  using am = argmax(full), ag = argmax(g);
  assert.deepEqual(ag.toArray(), am.toArray(), `${label}: argmax`);
  return dropped / want.length;
}

for (const file of ["q8_0", "q5_0", "q4_0", "q6_k", "q4_k"] as const) {
  Deno.test(`greedyLogits over ${file}: -inf or the full product's value, the same argmax (ties, NaN, softcap)`, () => {
    using backend = Backend.open({ backend: "cpu" });
    const rng = new Rng(11);
    const bytes = randomQuantBlocks(rng, file as QuantDType, N, K);
    // The row of largest norm (a) again at row b, 37 below (another group): x along it makes a and b the maximum of
    // every row of x (Cauchy-Schwarz), tied, so the lower id, b, must win.
    const rowBytes = (K / QUANT_BLOCKS[file].elems) * QUANT_BLOCKS[file].bytes;
    const all = dequantize(bytes, file);
    const norms = Array.from({ length: N }, (_, r) => all.subarray(r * K, r * K + K).reduce((s, v) => s + v * v, 0));
    const a = norms.indexOf(Math.max(...norms.slice(37)), 37), b = a - 37;
    bytes.copyWithin(b * rowBytes, a * rowBytes, (a + 1) * rowBytes);
    using stored = Tensor.fromBytes(backend, bytes, [N, K], file);
    using again = Tensor.fromBytes(backend, bytes, [N, K], file);
    const layout = repackForBackend(again);
    // The screen runs from 2 rows of x to the integer kernel's limit (kernels/cpu/linear.cpp int_rows_max).
    const screenedUpTo = !vnni || layout.dtype === file || file === "q4_k" ? 0 : file === "q6_k" ? 15 : 40;
    for (const [w, name] of [[stored, file], [layout, layout.dtype]] as const) {
      for (const m of [1, 2, 3, 8, 9, 17]) {
        const x = rng.floats(m * K);
        const dropped = check(backend, w, x, m, {}, `${name} ${m} rows`);
        if (w === layout && m >= 2 && m <= screenedUpTo) {
          assert.ok(dropped > 0.9, `${name} ${m} rows: only ${(100 * dropped).toFixed(1)}% screened out`);
        }
        if (w === stored || m === 1) assert.equal(dropped, 0, `${name} ${m} rows: every value written`);
      }
      // With a softcap (which rounds large logits closer together) and keep ids too.
      const x = rng.floats(4 * K);
      const values = all.subarray(a * K, a * K + K);
      for (let r = 0; r < 4; r++) for (let i = 0; i < K; i++) x[r * K + i] = 0.1 * x[r * K + i] + values[i] * (r + 1);
      x[3 * K + 5] = NaN; // row 3: every logit NaN, argmax 0
      for (const cap of [0, 30, 0.5]) {
        check(backend, w, x, 4, { cap, keep: [7, 4095, 1000, 99999, -3] }, `${name} tie, cap ${cap}`);
      }
      using xt = Tensor.fromArray(backend, x, [4, K]);
      using g = greedyLogits(xt, w, {});
      using am = argmax(g);
      assert.deepEqual(Array.from(am.toArray()), [b, b, b, 0], `${name}: the tie goes to the lower id`);
    }
  });
}

Deno.test("greedyLogits: a typed error for bad arguments", () => {
  using backend = Backend.open({ backend: "cpu" });
  using w = Tensor.fromArray(backend, new Float32Array(16 * 32), [16, 32]);
  using x = Tensor.fromArray(backend, new Float32Array(2 * 32), [2, 32]);
  using bad = Tensor.fromArray(backend, new Float32Array(2 * 31), [2, 31]);
  assert.throws(() => greedyLogits(bad, w, {}), ShapeError);
  assert.throws(() => greedyLogits(x, w, { cap: -1 }), ShapeError);
  using ids = Tensor.fromArray(backend, new Float32Array(3), [3]);
  assert.throws(() => greedyLogits(x, w, { keepIds: ids }), DTypeError);
});
