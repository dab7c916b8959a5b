/**
 * Continuous batching on the real default model (Gemma 3 270M, Q4_K_M: quantized GEMMs over the rows): many
 * concurrent chat requests, some aborted, some with a logit bias, answer exactly as each alone; memory is back to what
 * load left. Where the CPU reads the 16-row layouts (AVX512-VNNI), a batch of greedy rows takes the screened lm_head
 * (gk_greedy_logits), whose logit-bias ids must be computed whatever they are: +30 on id 1000 makes it every answer.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../src/models/load.ts";
import { realGguf270m } from "../models/real_gguf.ts";

const TOPICS = ["rain", "bread", "the moon", "rivers", "chess", "owls", "glass", "maps", "tea", "bees", "salt", "iron"];

Deno.test("real 270M: 16 concurrent requests with random aborts answer as alone; memory back to baseline", async (t) => {
  const { path, skip } = await realGguf270m();
  if (!path) return void (await t.step({ name: skip!, ignore: true, fn: () => {} }));
  const calls = Array.from({ length: 16 }, (_, i) => ({
    input: { messages: [{ role: "user" as const, content: `Say one thing about ${TOPICS[i % TOPICS.length]}.` }] },
    maxTokens: 6 + (i * 5) % 11,
    abortAfter: i % 5 === 3 ? 2 : 0,
    logitBias: (i % 4 === 1 ? { 1000: 30 } : i % 4 === 2 ? { 1000: 3, 107: -100 } : undefined) as
      | Record<number, number>
      | undefined,
  }));
  const want: number[][] = [];
  {
    using serial = await loadModel(path, { backend: "cpu", maxContext: 512 });
    for (const c of calls) {
      want.push(
        (await serial.generate(c.input, { temperature: 0, maxTokens: c.maxTokens, logitBias: c.logitBias }))
          .tokens,
      );
    }
  }
  using model = await loadModel(path, { backend: "cpu", maxContext: 512, parallel: 8 });
  const baseline = model.backend.memoryStats().inUse;
  const got = await Promise.all(calls.map((c) => {
    const controller = new AbortController();
    let n = 0;
    return model.generate(c.input, {
      temperature: 0,
      maxTokens: c.maxTokens,
      logitBias: c.logitBias,
      chunkSize: 4,
      signal: controller.signal,
      onText: () => c.abortAfter && ++n === c.abortAfter && controller.abort(),
    });
  }));
  assert.ok(want[1].every((id) => id === 1000), "a +30 bias on id 1000 decides every token");
  got.forEach((r, i) => {
    if (r.finishReason === "abort") assert.deepEqual(r.tokens, want[i].slice(0, r.tokens.length), `call ${i}`);
    else assert.deepEqual(r.tokens, want[i], `call ${i}`);
  });
  const stats = model.batchStats();
  assert.ok(stats.rowsStepped / stats.steps > 2, `${(stats.rowsStepped / stats.steps).toFixed(1)} rows per step`);
  assert.ok(stats.prefixHits > 0, "the chat template's common prefix came from a slot");
  assert.equal(model.backend.memoryStats().inUse, baseline);
});
