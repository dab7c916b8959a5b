/**
 * Attention on non-finite scores, which the parity table cannot state (its NMSE has no NaN): as torch's
 * softmax, a query whose scores include NaN (NaN in q) or +inf (inf in a visible key) gets NaN in every output
 * element, and the other queries are untouched. A -inf score weighs 0 among finite ones, and a query whose visible
 * scores are all -inf gets NaN (softmax of an all -inf row), not zeros. Prefill is checked on both CPU paths (per query
 * below 16 queries, tiled above), decode with one slice and with several (CPU; one block and a split-K cluster on
 * CUDA), and on CUDA when a GPU answers.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { attentionDecode, attentionPrefill } from "../../src/ops/attention.ts";
import { cudaOrSkip } from "../helpers.ts";
import { Rng } from "./cases.ts";
import { attentionDecode as referenceDecode, attentionPrefill as reference } from "./reference.ts";

const { cuda, skip } = cudaOrSkip("CUDA attention NaN rows");
const HD = 16;
const NAN_QUERY = 3; // q[3] holds a NaN
const INF_KEY = 7; // k[7] holds +inf: every causal query from 7 on sees it

function check(backend: Backend, n: number): void {
  const rng = new Rng(n);
  const q = rng.floats(n * HD, -1, 1), k = rng.floats(n * HD, -1, 1), v = rng.floats(n * HD, -1, 1);
  for (let i = 0; i < n; i++) q[i * HD] = 0.5; // so q·k[INF_KEY] = +inf, not -inf
  q[NAN_QUERY * HD + 2] = NaN;
  k[INF_KEY * HD] = Infinity;
  const o = {
    qLen: n,
    kvLen: n,
    qHeads: 1,
    kvHeads: 1,
    headDim: HD,
    qPos0: 0,
    causal: true,
    window: 0,
    spanIds: null,
    scale: 0.25,
    softcap: 0,
  };
  using tq = Tensor.fromArray(backend, q, [n, 1, HD]);
  using tk = Tensor.fromArray(backend, k, [n, 1, HD]);
  using tv = Tensor.fromArray(backend, v, [n, 1, HD]);
  using out = attentionPrefill(tq, tk, tv, { scale: o.scale, causal: true });
  const got = out.toArray() as Float32Array;
  const want = reference(q, k, v, o);
  for (let i = 0; i < n; i++) {
    const row = got.subarray(i * HD, (i + 1) * HD);
    if (i === NAN_QUERY || i >= INF_KEY) {
      assert.ok(row.every(Number.isNaN), `query ${i}: expected all NaN, got ${Array.from(row.subarray(0, 4))}…`);
    } else {
      for (let d = 0; d < HD; d++) {
        assert.ok(Math.abs(row[d] - want[i * HD + d]) < 1e-5, `query ${i} dim ${d}: ${row[d]} vs ${want[i * HD + d]}`);
      }
    }
  }
}

for (const n of [10, 150]) {
  Deno.test(`[cpu] attention_prefill: NaN / +inf scores make their rows NaN (q=kv=${n})`, () => {
    using cpu = Backend.open({ backend: "cpu" });
    check(cpu, n);
  });
  Deno.test({
    name: `[cuda] attention_prefill: NaN / +inf scores make their rows NaN (q=kv=${n})${
      skip ? ` (skipped: ${skip})` : ""
    }`,
    ignore: !cuda,
    fn: () => check(cuda!, n),
  });
}

/** Compares rows of width HD with the reference: all NaN where `nanRow(i)`, else within 1e-5. */
function expectRows(
  got: Float32Array,
  want: ArrayLike<number>,
  rows: number,
  hd: number,
  nanRow: (i: number) => boolean,
) {
  for (let i = 0; i < rows; i++) {
    const row = got.subarray(i * hd, (i + 1) * hd);
    if (nanRow(i)) {
      assert.ok(row.every(Number.isNaN), `row ${i}: expected all NaN, got ${Array.from(row.subarray(0, 4))}…`);
      continue;
    }
    for (let d = 0; d < hd; d++) {
      const w = want[i * hd + d];
      assert.ok(Math.abs(row[d] - w) < 1e-5, `row ${i} dim ${d}: ${row[d]} vs ${w}`);
    }
  }
}

// Key 0 holds -inf (q·k = -inf, since every q has 0.5 where k has -inf): query 0 sees only key 0, so all its visible
// scores are -inf (NaN); every later query sees it among finite scores (weight 0).
function checkNegInfPrefill(backend: Backend, n: number): void {
  const rng = new Rng(n + 1);
  const q = rng.floats(n * HD, -1, 1), k = rng.floats(n * HD, -1, 1), v = rng.floats(n * HD, -1, 1);
  for (let i = 0; i < n; i++) q[i * HD] = 0.5;
  k[0] = -Infinity;
  const o = {
    qLen: n,
    kvLen: n,
    qHeads: 1,
    kvHeads: 1,
    headDim: HD,
    qPos0: 0,
    causal: true,
    window: 0,
    spanIds: null,
    scale: 0.25,
    softcap: 0,
  };
  using tq = Tensor.fromArray(backend, q, [n, 1, HD]);
  using tk = Tensor.fromArray(backend, k, [n, 1, HD]);
  using tv = Tensor.fromArray(backend, v, [n, 1, HD]);
  using out = attentionPrefill(tq, tk, tv, { scale: o.scale, causal: true });
  expectRows(out.toArray() as Float32Array, reference(q, k, v, o), n, HD, (i) => i === 0);
}

// Decode at position 3000 (CPU: several 256+-key slices; CUDA sm_90+: a split-K cluster) over 3001 keys of which
// the first `negInf` hold -inf: with 2000 of them whole slices are -inf while others are finite (weight 0, finite
// output); with all 3001 every visible score is -inf (NaN).
function checkNegInfDecode(backend: Backend, negInf: number): void {
  const capacity = 4096, position = 3000, qHeads = 2, kvHeads = 1, hd = 64;
  const rng = new Rng(negInf);
  const q = rng.floats(qHeads * hd, -1, 1), k = rng.floats(capacity * kvHeads * hd, -1, 1);
  const v = rng.floats(capacity * kvHeads * hd, -1, 1);
  q[0] = q[hd] = 0.5;
  for (let p = 0; p < negInf; p++) k[p * kvHeads * hd] = -Infinity;
  const o = { qHeads, kvHeads, headDim: hd, capacity, window: 0, position, scale: 0.125, softcap: 0 };
  using tq = Tensor.fromArray(backend, q, [qHeads, hd]);
  using tk = Tensor.fromArray(backend, k, [capacity, kvHeads, hd]);
  using tv = Tensor.fromArray(backend, v, [capacity, kvHeads, hd]);
  using pos = Tensor.fromArray(backend, [position], [1], "i32");
  using out = attentionDecode(tq, tk, tv, pos, { scale: o.scale });
  expectRows(out.toArray() as Float32Array, referenceDecode(q, k, v, o), qHeads, hd, () => negInf > position);
}

for (const kind of ["cpu", "cuda"] as const) {
  const ignore = kind === "cuda" && !cuda;
  const suffix = ignore ? ` (skipped: ${skip})` : "";
  const on = (fn: (b: Backend) => void) => () => {
    if (kind === "cuda") return fn(cuda!);
    using cpu = Backend.open({ backend: "cpu" });
    fn(cpu);
  };
  for (const n of [10, 150]) {
    Deno.test({
      name:
        `[${kind}] attention_prefill: all visible scores -inf is NaN, -inf among finite weighs 0 (q=kv=${n})${suffix}`,
      ignore,
      fn: on((b) => checkNegInfPrefill(b, n)),
    });
  }
  for (const negInf of [2000, 3001]) {
    Deno.test({
      name: `[${kind}] attention_decode: ${negInf} of 3001 keys score -inf${suffix}`,
      ignore,
      fn: on((b) => checkNegInfDecode(b, negInf)),
    });
  }
}
