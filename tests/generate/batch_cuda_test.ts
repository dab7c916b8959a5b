/**
 * Continuous batching on CUDA (skipped without a device): the batched step is one captured graph replayed per
 * step over the rows; greedy answers of concurrent calls equal each answer alone on the CPU (Gemma 3, and Gemma 4
 * with per-layer inputs and KV-shared layers), and memory is back to what load left. In tests/gpu_check.ts.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../src/models/load.ts";
import { FIXTURE, GREEDY, PROMPTS, serialAnswers } from "./batch_fixtures.ts";
import { cudaOrSkip } from "../helpers.ts";

const { cuda, skip: noCuda } = cudaOrSkip("CUDA batched decode");
cuda?.dispose();

Deno.test({
  name: `[cuda] batched greedy (one graph replay per step over the rows) equals each answer alone${
    noCuda ? " (skipped: no CUDA device)" : ""
  }`,
  ignore: noCuda !== "",
  async fn() {
    for (const name of ["gemma3-text-mixed", "gemma4-text-e"]) {
      const calls = PROMPTS.map((prompt, i) => ({
        prompt,
        options: { ...GREEDY, maxTokens: 20 + 12 * i, chunkSize: 1 + 4 * (i % 3) },
      }));
      const want = await serialAnswers(FIXTURE(name), 160, calls);
      using model = await loadModel(FIXTURE(name), { backend: "cuda", maxContext: 160, parallel: 4 });
      const baseline = model.backend.memoryStats().inUse;
      const got = await Promise.all(calls.map((c) => model.generate(c.prompt, c.options)));
      got.forEach((r, i) => assert.deepEqual(r.tokens, want[i].tokens, `${name} call ${i}: CUDA batch vs CPU alone`));
      assert.ok(model.batchStats().rowsStepped > model.batchStats().steps);
      assert.equal(model.backend.memoryStats().inUse, baseline);
    }
  },
});
