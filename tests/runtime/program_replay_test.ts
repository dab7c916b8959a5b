/**
 * A recorded step with the sampler, replayed in chunks: back-to-back run(n) and runAsync(n) (a worker thread
 * launching the CUDA graph) must continue one sequence, token for token the one a single run gives, and CUDA must
 * draw the same tokens as the CPU (gk_sample is exact across backends). The toy step: logits = row `token` of a
 * fixed random table, then top-k/top-p/temperature sampling with a seeded RNG.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { DecodeProgram } from "../../src/runtime/program.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import * as ops from "../../src/ops/mod.ts";
import { DECODE_STATE } from "../../src/ops/mod.ts";
import { Rng } from "../ops/cases.ts";
import { cudaOrSkip } from "../helpers.ts";

const VOCAB = 2048, STEPS = 120;
const CHUNKS: [mode: "sync" | "async", n: number][] = [["sync", 3], ["sync", 1], ["async", 40], ["sync", 16], [
  "async",
  60,
]];
const PARAMS = { temperature: 0.9, topK: 50, topP: 0.95, minP: 0.01, repetitionPenalty: 1.1, seed: 4242 };

/** The history after STEPS steps, run as `chunks` (one run(STEPS) when absent). */
async function tokens(backend: Backend, chunks: typeof CHUNKS | null): Promise<number[]> {
  const table = new Rng(5).floats(VOCAB * VOCAB, -6, 6);
  using tableT = Tensor.fromArray(backend, table, [VOCAB, VOCAB]);
  using logits = Tensor.zeros(backend, [1, VOCAB]);
  using state = Tensor.fromArray(backend, [0, 10, 0, 0, 0, 0, 0, 0], [DECODE_STATE.fields], "i32");
  using history = Tensor.fromArray(backend, new Int32Array(STEPS + 8).fill(-1), [STEPS + 8], "i32");
  using program = DecodeProgram.record(backend, () => {
    ops.embedding(tableT, state.rows(DECODE_STATE.token, 1), 1, logits);
    ops.sample(logits, PARAMS, state, history);
  });
  for (const [mode, n] of chunks ?? [["sync", STEPS] as const]) {
    if (mode === "async") await program.runAsync(n);
    else program.run(n);
  }
  return Array.from(history.toArray()).slice(0, STEPS);
}

const cpuTokens = await (async () => {
  using cpu = Backend.open({ backend: "cpu" });
  return await tokens(cpu, null);
})();

Deno.test("[cpu] sampled replay in run/runAsync chunks continues one sequence", async () => {
  using cpu = Backend.open({ backend: "cpu" });
  assert.ok(cpuTokens.every((t) => t >= 0 && t < VOCAB), "every step drew a token");
  assert.ok(new Set(cpuTokens).size > 10, "the draws vary (the test would not see a skipped step otherwise)");
  assert.deepEqual(await tokens(cpu, CHUNKS), cpuTokens);
});

const { cuda, skip } = cudaOrSkip("CUDA sampled replay");
Deno.test({
  name: `[cuda] sampled graph replay in run/runAsync chunks draws the CPU's tokens${skip ? ` (skipped: ${skip})` : ""}`,
  ignore: !cuda,
  async fn() {
    const before = cuda!.memoryStats().inUse;
    assert.deepEqual(await tokens(cuda!, null), cpuTokens, "one run(n) on CUDA");
    assert.deepEqual(await tokens(cuda!, CHUNKS), cpuTokens, "run/runAsync chunks on CUDA");
    assert.equal(cuda!.memoryStats().inUse, before, "the test leaked device memory");
  },
});
