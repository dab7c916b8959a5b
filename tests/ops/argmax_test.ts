/**
 * The CPU's vectorised argmax (kernels/cpu/simd.h, behind gk_argmax and greedy gk_sample) against torch's rule —
 * the first maximum, the first NaN beats every number — on the rows where a lane-parallel search can go wrong:
 * ties in different lanes and in the scalar tail, +0 against -0, ±inf, all -inf, NaN in the vector part or the
 * tail, and lengths around the vector widths. The parity table's random rows almost never tie.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { argmax } from "../../src/ops/reduce.ts";
import { DECODE_STATE, sample } from "../../src/ops/sample.ts";
import { Rng } from "./cases.ts";

function reference(x: Float32Array): number {
  let best = 0;
  for (let j = 1; j < x.length && !Number.isNaN(x[best]); j++) {
    if (Number.isNaN(x[j]) || x[j] > x[best]) best = j;
  }
  return best;
}

function rows(): Float32Array[] {
  const rng = new Rng(19);
  const out: Float32Array[] = [];
  for (const n of [1, 2, 15, 16, 17, 31, 32, 33, 47, 48, 63, 64, 65, 100, 1000, 4099]) {
    const small = () => Float32Array.from({ length: n }, () => Math.floor(rng.floats(1, 0, 4)[0]));
    out.push(small()); // ties everywhere
    out.push(Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -0 : 0)));
    out.push(new Float32Array(n).fill(-Infinity));
    for (const at of [0, n >> 1, n - 1]) {
      const nan = small();
      nan[at] = NaN;
      out.push(nan);
      const inf = small();
      inf[at] = Infinity;
      inf[n - 1 - ((at * 7) % n)] = Infinity; // a second +inf: the first one wins
      out.push(inf);
      const tie = rng.floats(n, -5, 5);
      tie[at] = 9;
      tie[Math.min(n - 1, at + 17)] = 9;
      tie[n - 1] = 9; // the same maximum again in the tail
      out.push(tie);
    }
  }
  return out;
}

Deno.test("[cpu] argmax: first maximum, first NaN, on ties across lanes and the tail", () => {
  using cpu = Backend.open({ backend: "cpu" });
  for (const x of rows()) {
    using t = Tensor.fromArray(cpu, x, [1, x.length]);
    using y = argmax(t);
    assert.equal((y.toArray() as Int32Array)[0], reference(x), `n=${x.length} [${Array.from(x.subarray(0, 8))}…]`);
  }
});

Deno.test("[cpu] greedy sample over a 262144 vocabulary: the same token as torch.argmax", () => {
  using cpu = Backend.open({ backend: "cpu" });
  const vocab = 262144, rng = new Rng(7);
  for (const plant of [[5], [262143], [100, 262140], [7, 8, 9], [262130, 40000]]) {
    for (const withNaN of [false, true]) {
      const x = rng.floats(vocab, -10, 10);
      for (const p of plant) x[p] = 12; // ties of the maximum: the lowest id
      if (withNaN) x[plant[0] + 3] = NaN;
      using logits = Tensor.fromArray(cpu, x, [vocab]);
      using state = Tensor.fromArray(cpu, new Int32Array(DECODE_STATE.fields), [DECODE_STATE.fields], "i32");
      using history = Tensor.fromArray(cpu, new Int32Array(4), [4], "i32");
      sample(logits, { temperature: 0 }, state, history);
      const token = (state.toArray() as Int32Array)[DECODE_STATE.token];
      assert.equal(token, reference(x), `plant ${plant} NaN ${withNaN}`);
    }
  }
});
