/**
 * Prefill attention on non-finite scores, which the parity table cannot state (its NMSE has no NaN): as torch's
 * softmax, a query whose scores include NaN (NaN in q) or +inf (inf in a visible key) gets NaN in every output
 * element, and the other queries are untouched. Checked on both CPU paths (per query below 16 queries, tiled
 * above) and on CUDA when a GPU answers.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { attentionPrefill } from "../../src/ops/attention.ts";
import { cudaOrSkip } from "../helpers.ts";
import { Rng } from "./cases.ts";
import { attentionPrefill as reference } from "./reference.ts";

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
