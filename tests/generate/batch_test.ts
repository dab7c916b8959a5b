/**
 * Continuous batching (loadModel({ parallel })): concurrent calls on one model answer exactly as each alone
 * (greedy ids, seeded samples, stop strings, logit processors, logprobs, constraints), while sequences join
 * (those arriving together prefilled in one forward), leave, wait for a slot, abort, and wrap their sliding-window
 * rings; the shared prefix cache reuses a cached prompt across requests (in place or copied from a busy slot);
 * memory is back to what load left afterwards.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../src/models/load.ts";
import { BoundsError, NativeError } from "../../src/errors.ts";
import { KvSlots } from "../../src/generate/batch_slots.ts";
import { KvCache } from "../../src/runtime/kv_cache.ts";
import { type BatchedCausalLM, PREFILL_CHUNK } from "../../src/generate/batch.ts";
import { Model } from "../../src/generate/model.ts";
import { Backend } from "../../src/runtime/backend.ts";
import { loadGemma3Text } from "../../src/models/gemma3/load.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import type { CausalLM } from "../../src/generate/token_loop.ts";
import { FIXTURE, GREEDY, PROMPTS, serialAnswers } from "./batch_fixtures.ts";

const MIXED = FIXTURE("gemma3-text-mixed");

/** Resolves after `n` text pieces of a call have streamed. */
function afterPieces(n: number) {
  let resolve!: () => void, seen = 0;
  const reached = new Promise<void>((r) => (resolve = r));
  return { reached, onText: () => ++seen === n && resolve() };
}

Deno.test("batched greedy answers equal each answer alone: joins, leaves, a queue, ring wrap, an abort", async () => {
  // sliding_window 12 → rings of 76 rows in a 160-token context: answers of up to 120 tokens wrap them.
  const maxContext = 160;
  const calls = PROMPTS.map((prompt, i) => ({
    prompt,
    options: { ...GREEDY, maxTokens: 20 + 20 * i, chunkSize: 1 + (i % 4) * 5 },
  }));
  const want = await serialAnswers(MIXED, maxContext, calls);
  assert.ok(want.some((r) => r.promptTokens + r.tokens.length > 76 + 12), "some answer wraps its rings");
  using model = await loadModel(MIXED, { backend: "cpu", maxContext, parallel: 3 });
  const baseline = model.backend.memoryStats().inUse;
  // Two start together; the rest join as the first ones stream (and wait for a slot: 3 slots, 6 calls).
  const first = afterPieces(3);
  let queuedSeen = 0;
  const results: Promise<Awaited<ReturnType<Model["generate"]>>>[] = [];
  results.push(model.generate(calls[0].prompt, {
    ...calls[0].options,
    onText: () => {
      first.onText();
      queuedSeen = Math.max(queuedSeen, model.batchStats().queued);
    },
  }));
  results.push(model.generate(calls[1].prompt, calls[1].options));
  await first.reached;
  for (const c of calls.slice(2)) results.push(model.generate(c.prompt, c.options));
  // One more that aborts mid-stream.
  const controller = new AbortController();
  const fourth = afterPieces(4);
  const aborted = model.generate(calls[1].prompt, {
    ...calls[1].options,
    signal: controller.signal,
    onText: fourth.onText,
  });
  fourth.reached.then(() => controller.abort());
  // Between chunks the event loop runs: sample the queue until every call has ended.
  let ended = false;
  const all = Promise.all([...results, aborted]).finally(() => (ended = true));
  while (!ended) {
    queuedSeen = Math.max(queuedSeen, model.batchStats().queued);
    await new Promise((r) => setTimeout(r, 1));
  }
  await all;
  const got = await Promise.all(results);
  for (const [i, r] of got.entries()) {
    assert.deepEqual(r.tokens, want[i].tokens, `call ${i} (${calls[i].prompt})`);
    assert.equal(r.finishReason, want[i].finishReason);
    assert.equal(r.text, want[i].text);
  }
  const a = await aborted;
  assert.equal(a.finishReason, "abort");
  assert.ok(a.tokens.length < want[1].tokens.length, `${a.tokens.length} tokens before the abort`);
  assert.deepEqual(a.tokens, want[1].tokens.slice(0, a.tokens.length));
  assert.ok(queuedSeen > 0, "some calls waited for a slot");
  const stats = model.batchStats();
  assert.equal(stats.slots, 3);
  assert.equal(stats.active, 0);
  assert.equal(stats.queued, 0);
  assert.ok(stats.rowsStepped > stats.steps, `${stats.rowsStepped} rows in ${stats.steps} steps: rows were batched`);
  assert.equal(model.backend.memoryStats().inUse, baseline, "memory back to what load left");
});

Deno.test("other Gemma 3 variants (softcaps, legacy config) batch to the same greedy answers", async () => {
  for (const name of ["gemma3-text-softcap", "gemma3-text-attncap", "gemma3-text-legacy"]) {
    const calls = PROMPTS.slice(0, 4).map((prompt, i) => ({ prompt, options: { ...GREEDY, maxTokens: 30 + 7 * i } }));
    const want = await serialAnswers(FIXTURE(name), 128, calls);
    using model = await loadModel(FIXTURE(name), { backend: "cpu", maxContext: 128, parallel: 4 });
    const got = await Promise.all(calls.map((c) => model.generate(c.prompt, c.options)));
    got.forEach((r, i) => assert.deepEqual(r.tokens, want[i].tokens, `${name} call ${i}`));
    // They arrived together: their prompts went in one multi-sequence forward.
    const stats = model.batchStats();
    assert.ok(stats.prefillsBatched >= 2, `${name}: ${stats.prefillsBatched} prompts prefilled together`);
    assert.ok(stats.prefillForwards < calls.length, `${name}: ${stats.prefillForwards} prefill forwards`);
  }
});

Deno.test("per-request sampling, seeds, stop strings, logit processors and logprobs hold in a batch", async () => {
  const base = { maxTokens: 24 };
  const greedyText =
    (await serialAnswers(MIXED, 128, [{ prompt: PROMPTS[1], options: { ...GREEDY, maxTokens: 24 } }]))[0]
      .text;
  const stop = greedyText.slice(Math.floor(greedyText.length / 2), Math.floor(greedyText.length / 2) + 3);
  const calls = [
    { prompt: PROMPTS[0], options: { ...base, temperature: 1, topK: 40, seed: 7 } },
    { prompt: PROMPTS[0], options: { ...base, temperature: 1, topK: 40, seed: 8 } },
    { prompt: PROMPTS[1], options: { ...base, ...GREEDY, stop: [stop] } },
    { prompt: PROMPTS[2], options: { ...base, temperature: 0.8, topP: 0.9, minP: 0.05, seed: 3, chunkSize: 3 } },
    { prompt: PROMPTS[3], options: { ...base, ...GREEDY, logitBias: { 17: 5, 42: -100 }, frequencyPenalty: 1.5 } },
    { prompt: PROMPTS[4], options: { ...base, ...GREEDY, topLogprobs: 3, repetitionPenalty: 1.3 } },
  ];
  const want = await serialAnswers(MIXED, 128, calls);
  assert.notDeepEqual(want[0].tokens, want[1].tokens, "seeds differ");
  assert.equal(want[2].finishReason, "stop");
  using model = await loadModel(MIXED, { backend: "cpu", maxContext: 128, parallel: 6 });
  // Twice: the seeded answers do not depend on which requests share the batch.
  for (const order of [[0, 1, 2, 3, 4, 5], [5, 3, 1]]) {
    const got = await Promise.all(order.map((i) => model.generate(calls[i].prompt, calls[i].options)));
    got.forEach((r, j) => {
      const i = order[j];
      assert.deepEqual(r.tokens, want[i].tokens, `call ${i}`);
      assert.equal(r.text, want[i].text, `call ${i}`);
      assert.equal(r.finishReason, want[i].finishReason, `call ${i}`);
    });
  }
  const lp = await Promise.all([
    model.generate(calls[5].prompt, calls[5].options),
    model.generate(calls[0].prompt, calls[0].options),
  ]);
  assert.equal(lp[0].logprobs!.length, want[5].logprobs!.length);
  lp[0].logprobs!.forEach((e, k) => {
    assert.equal(e.id, want[5].logprobs![k].id);
    assert.ok(Math.abs(e.logprob - want[5].logprobs![k].logprob) < 1e-4);
    assert.deepEqual(e.top.map((t) => t.id), want[5].logprobs![k].top.map((t) => t.id));
  });
  assert.equal(lp[1].logprobs, undefined);
});

Deno.test("a constrained request runs in the batch beside free ones", async () => {
  const schema = {
    type: "object",
    properties: { ok: { type: "boolean" }, color: { enum: ["red", "green", "blue"] } },
    required: ["ok", "color"],
    additionalProperties: false,
  };
  const calls = [
    {
      prompt: "json:",
      options: { temperature: 0.9, seed: 5, maxTokens: 60, responseFormat: { type: "json_schema" as const, schema } },
    },
    { prompt: PROMPTS[1], options: { ...GREEDY, maxTokens: 30 } },
    { prompt: PROMPTS[2], options: { ...GREEDY, maxTokens: 30 } },
    // A stop string breaks this one off mid-batch: its constraint is disposed while the others still decode.
    {
      prompt: "json:",
      options: { temperature: 0, maxTokens: 60, stop: [":"], responseFormat: { type: "json_schema" as const, schema } },
    },
  ];
  const want = await serialAnswers(MIXED, 128, calls);
  using model = await loadModel(MIXED, { backend: "cpu", maxContext: 128, parallel: 4 });
  const got = await Promise.all(calls.map((c) => model.generate(c.prompt, c.options)));
  got.forEach((r, i) => assert.deepEqual(r.tokens, want[i].tokens, `call ${i}`));
  assert.equal(got[3].finishReason, "stop");
  assert.deepEqual(Object.keys(JSON.parse(got[0].text)).sort(), ["color", "ok"]);
});

Deno.test("prefix cache: a shared system prompt is reused across requests, in place or from a busy slot", async () => {
  const system = "You are a careful assistant who answers in short sentences about lamps, keys and stones. ".repeat(3);
  const q = (s: string) => ({
    messages: [{ role: "system" as const, content: system }, { role: "user" as const, content: s }],
  });
  const questions = ["Where is the key?", "What lights the room?", "Count the stones."];
  using serial = await loadModel(MIXED, { backend: "cpu", maxContext: 256 });
  const want = [];
  for (const s of questions) want.push(await serial.generate(q(s), { ...GREEDY, maxTokens: 16, reusePrefix: false }));
  using model = await loadModel(MIXED, { backend: "cpu", maxContext: 256, parallel: 2 });
  const first = await model.generate(q(questions[0]), { ...GREEDY, maxTokens: 16 });
  assert.deepEqual(first.tokens, want[0].tokens);
  assert.equal(first.cachedTokens, 0);
  assert.deepEqual(model.batchStats().prefixMisses, 1);
  // The idle slot holds the system prompt: the next request starts there.
  const second = await model.generate(q(questions[1]), { ...GREEDY, maxTokens: 16 });
  assert.deepEqual(second.tokens, want[1].tokens);
  assert.ok(second.cachedTokens >= 40, `${second.cachedTokens} prompt tokens reused of ${second.promptTokens}`);
  let stats = model.batchStats();
  assert.equal(stats.prefixHits, 1);
  assert.equal(stats.prefixTokensReused, second.cachedTokens);
  // While one request holds the slot with the prefix, another copies it into the other slot.
  const gate = afterPieces(2);
  const busy = model.generate(q(questions[0]), { ...GREEDY, maxTokens: 16, onText: gate.onText });
  await gate.reached;
  const copied = await model.generate(q(questions[2]), { ...GREEDY, maxTokens: 16 });
  assert.deepEqual((await busy).tokens, want[0].tokens);
  assert.deepEqual(copied.tokens, want[2].tokens);
  assert.ok(copied.cachedTokens >= 40, `${copied.cachedTokens} reused from the busy slot`);
  stats = model.batchStats();
  assert.equal(stats.prefixHits, 3);
  // reusePrefix: false prefills everything.
  const cold = await model.generate(q(questions[1]), { ...GREEDY, maxTokens: 16, reusePrefix: false });
  assert.equal(cold.cachedTokens, 0);
  assert.deepEqual(cold.tokens, want[1].tokens);
});

Deno.test("a request aborted while it waits for a slot leaves at once, with nothing generated", async () => {
  using model = await loadModel(MIXED, { backend: "cpu", maxContext: 256, parallel: 2 });
  const gate = afterPieces(1);
  const running = [
    model.generate(PROMPTS[0], { ...GREEDY, maxTokens: 200, chunkSize: 1, onText: gate.onText }),
    model.generate(PROMPTS[1], { ...GREEDY, maxTokens: 200, chunkSize: 1 }),
  ];
  await gate.reached;
  const controller = new AbortController();
  const waiting = model.generate(PROMPTS[2], { ...GREEDY, maxTokens: 8, signal: controller.signal });
  while (model.batchStats().queued === 0) await new Promise((r) => setTimeout(r, 1));
  controller.abort();
  const r = await waiting;
  assert.equal(r.finishReason, "abort");
  assert.equal(r.tokens.length, 0);
  assert.equal(model.batchStats().queued, 0);
  assert.equal(model.batchStats().active, 2, "the others still run");
  await Promise.all(running);
});

Deno.test("a long prompt is prefilled in chunks while other streams keep decoding", async () => {
  const long = "stone key lamp mill path ".repeat(45); // ~590 tokens: three prefill chunks
  const calls = [
    { prompt: PROMPTS[1], options: { ...GREEDY, maxTokens: 300, chunkSize: 1 } },
    { prompt: long, options: { ...GREEDY, maxTokens: 8 } },
  ];
  const want = await serialAnswers(MIXED, 1024, calls);
  assert.ok(want[1].promptTokens > 2 * PREFILL_CHUNK);
  using model = await loadModel(MIXED, { backend: "cpu", maxContext: 1024, parallel: 2 });
  const gate = afterPieces(1);
  let during = 0;
  const a = model.generate(calls[0].prompt, {
    ...calls[0].options,
    onText: () => {
      gate.onText();
      if (model.batchStats().prefilling) during++;
    },
  });
  await gate.reached;
  const b = model.generate(calls[1].prompt, calls[1].options);
  const [ra, rb] = await Promise.all([a, b]);
  assert.deepEqual(ra.tokens, want[0].tokens);
  assert.deepEqual(rb.tokens, want[1].tokens);
  assert.ok(during >= 1, `the first stream got ${during} pieces while the long prompt was going in`);
});

Deno.test("sessions on a batched model reuse their history and save and load their own cache", async () => {
  using model = await loadModel(MIXED, { backend: "cpu", maxContext: 256, parallel: 2 });
  const defaults = { ...GREEDY, maxTokens: 10 };
  const chat = model.chat({ system: "Be brief.", defaults });
  const other = model.chat({ system: "Speak at length about anything at all.", defaults });
  const first = await chat.promptWithResult("Hello there, how are you today?");
  const second = await chat.promptWithResult("And what about tomorrow?");
  assert.ok(second.cachedTokens >= first.promptTokens, `${second.cachedTokens} cached`);
  // Another session's turn comes last: saving `chat` still writes its own slot.
  await other.promptWithResult("Tell me about stones.");
  const path = await Deno.makeTempFile({ suffix: ".gksession" });
  try {
    await chat.save(path);
    using restoredModel = await loadModel(MIXED, { backend: "cpu", maxContext: 256, parallel: 2 });
    const restored = restoredModel.chat({ defaults });
    await restored.load(path);
    const [a, b] = [await chat.promptWithResult("Bye."), await restored.promptWithResult("Bye.")];
    assert.deepEqual(b.tokens, a.tokens);
    assert.ok(b.cachedTokens >= second.promptTokens, `${b.cachedTokens} cached after load`);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("64 concurrent requests with random aborts answer as alone; memory back to baseline", async () => {
  const rng = (() => {
    let x = 12345;
    return () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  })();
  const calls = Array.from({ length: 64 }, (_, i) => ({
    prompt: `${PROMPTS[i % PROMPTS.length]} ${i}`,
    options: { ...GREEDY, maxTokens: 4 + Math.floor(rng() * 40) },
    abortAfter: rng() < 0.2 ? 1 + Math.floor(rng() * 3) : 0,
  }));
  const want = await serialAnswers(MIXED, 128, calls);
  using model = await loadModel(MIXED, { backend: "cpu", maxContext: 128, parallel: 8 });
  const baseline = model.backend.memoryStats().inUse;
  const got = await Promise.all(calls.map((c) => {
    const controller = new AbortController();
    let n = 0;
    return model.generate(c.prompt, {
      ...c.options,
      chunkSize: 4,
      signal: controller.signal,
      onText: () => c.abortAfter && ++n === c.abortAfter && controller.abort(),
    });
  }));
  let aborted = 0;
  got.forEach((r, i) => {
    if (r.finishReason === "abort") {
      aborted++;
      assert.deepEqual(r.tokens, want[i].tokens.slice(0, r.tokens.length), `call ${i} (aborted)`);
    } else assert.deepEqual(r.tokens, want[i].tokens, `call ${i}`);
  });
  assert.ok(aborted > 0, "some were aborted");
  const stats = model.batchStats();
  assert.ok(stats.rowsStepped / stats.steps > 2, `${stats.rowsStepped / stats.steps} rows per step on average`);
  assert.ok(stats.prefillsBatched >= 8, `${stats.prefillsBatched} prompts prefilled beside others`);
  assert.equal(stats.active + stats.queued, 0);
  assert.equal(model.backend.memoryStats().inUse, baseline);
});

Deno.test("Gemma 4 (per-layer inputs, KV-shared layers, k_eq_v, MoE) batches to the same greedy answers", async () => {
  // sliding_window 8 → rings of 72 rows: answers of 70 tokens past prompts of 10+ wrap them.
  for (const name of ["gemma4-text-e", "gemma4-text-k-eq-v", "gemma4-text-moe"]) {
    const calls = PROMPTS.slice(0, 5).map((prompt, i) => ({
      prompt,
      options: { ...GREEDY, maxTokens: 20 + 15 * i, chunkSize: 2 + 3 * i },
    }));
    const want = await serialAnswers(FIXTURE(name), 128, calls);
    using model = await loadModel(FIXTURE(name), { backend: "cpu", maxContext: 128, parallel: 4 });
    const baseline = model.backend.memoryStats().inUse;
    assert.equal(model.parallelNote, undefined);
    const got = await Promise.all(calls.map((c) => model.generate(c.prompt, c.options)));
    got.forEach((r, i) => assert.deepEqual(r.tokens, want[i].tokens, `${name} call ${i}`));
    assert.ok(model.batchStats().rowsStepped > model.batchStats().steps, `${name}: rows were batched`);
    assert.ok(model.batchStats().prefillsBatched >= 2, `${name}: prompts were prefilled together`);
    assert.equal(model.backend.memoryStats().inUse, baseline);
  }
});

Deno.test("an image prompt is prefilled with its media and joins the batch; its prefix is reused with the image", async () => {
  const VISION = FIXTURE("gemma3-vision-tiny");
  const image = (name: string) => ({ type: "image" as const, path: `${VISION}${name}` });
  const conv = (name: string, text: string) => ({
    messages: [{ role: "user" as const, content: [image(name), { type: "text" as const, text }] }],
  });
  const inputs = [
    conv("landscape.png", "Describe"),
    conv("landscape.png", "What else?"),
    conv("portrait.png", "Describe"),
  ];
  using serial = await loadModel(VISION, { backend: "cpu", maxContext: 256 });
  const want = [];
  for (const input of inputs) want.push(await serial.generate(input, { ...GREEDY, maxTokens: 12, reusePrefix: false }));
  using model = await loadModel(VISION, { backend: "cpu", maxContext: 256, parallel: 2 });
  const text = model.generate(PROMPTS[1], { ...GREEDY, maxTokens: 30 });
  const first = await model.generate(inputs[0], { ...GREEDY, maxTokens: 12 });
  assert.deepEqual(first.tokens, want[0].tokens);
  // Same image, another question: the image's soft tokens come from the cached prefix.
  const [second, third] = await Promise.all([
    model.generate(inputs[1], { ...GREEDY, maxTokens: 12 }),
    model.generate(inputs[2], { ...GREEDY, maxTokens: 12 }),
  ]);
  assert.deepEqual(second.tokens, want[1].tokens);
  assert.deepEqual(third.tokens, want[2].tokens);
  assert.ok(second.cachedTokens > 0, "the image prefix was reused");
  await text;
});

Deno.test("parallel is bounded; a family without a batched step takes turns and says so", async () => {
  await assert.rejects(loadModel(MIXED, { backend: "cpu", parallel: 0 }), BoundsError);
  await assert.rejects(loadModel(MIXED, { backend: "cpu", parallel: 1e6 }), BoundsError);
  // A model that has only the single-sequence step (as a new family might).
  using backend = Backend.open({ backend: "cpu" });
  const lm = loadGemma3Text(backend, MIXED, { maxContext: 128 });
  const single: CausalLM & { dispose(): void } = {
    backend,
    maxContext: lm.maxContext,
    vocabSize: lm.vocabSize,
    cache: lm.cache,
    prefillFrom: (ids, start) => lm.prefillFrom(ids, start),
    decodeStep: (token, position, ws, logits) => lm.decodeStep(token, position, ws, logits),
    dispose: () => lm.dispose(),
  };
  using model = new Model({ lm: single, tokenizer: await Tokenizer.fromFiles(MIXED), defaults: {} }, { parallel: 4 });
  assert.match(model.parallelNote ?? "", /take turns/);
  const [a, b] = await Promise.all([
    model.generate("Hi", { ...GREEDY, maxTokens: 6 }),
    model.generate("Hi", { ...GREEDY, maxTokens: 6 }),
  ]);
  assert.deepEqual(a.tokens, b.tokens);
  const stats = model.batchStats();
  assert.equal(stats.slots, 1);
  assert.equal(stats.prefixHits + stats.prefixMisses, 2, "the one cache's reuse is counted too");
  assert.equal(stats.active + stats.queued, 0);
  // A KV budget smaller than two slots leaves one.
  using small = await loadModel(MIXED, { backend: "cpu", maxContext: 128, parallel: 4, kvCacheBytes: 1 });
  assert.equal(small.batchStats().slots, 1);
});

Deno.test("a failed multi-sequence prefill ends every sequence in it with the error; the model serves on", async () => {
  using backend = Backend.open({ backend: "cpu" });
  const lm = loadGemma3Text(backend, MIXED, { maxContext: 128 });
  let fail = true;
  const failing: BatchedCausalLM & { dispose(): void } = {
    backend,
    maxContext: lm.maxContext,
    vocabSize: lm.vocabSize,
    cache: lm.cache,
    createCache: () => lm.createCache(),
    withCache: (cache, f) => lm.withCache(cache, f),
    prefillFrom: (ids, start) => lm.prefillFrom(ids, start),
    prefillBatch: (parts) => {
      if (fail) throw new NativeError("gk_linear", 2, "out of memory");
      return lm.prefillBatch(parts);
    },
    decodeStep: (token, position, ws, logits) => lm.decodeStep(token, position, ws, logits),
    decodeStepBatch: (tokens, positions, rows, ws, logits) => lm.decodeStepBatch(tokens, positions, rows, ws, logits),
    dispose: () => lm.dispose(),
  };
  using model = new Model({ lm: failing, tokenizer: await Tokenizer.fromFiles(MIXED), defaults: {} }, { parallel: 3 });
  const calls = PROMPTS.slice(0, 3).map((prompt) => model.generate(prompt, { ...GREEDY, maxTokens: 6 }));
  for (const r of await Promise.allSettled(calls)) {
    assert.equal(r.status, "rejected");
    assert.ok(r.reason instanceof NativeError, `${r.reason}`);
  }
  const stats = model.batchStats();
  assert.equal(stats.active + stats.queued, 0, "their slots are free again");
  assert.equal(stats.prefillsBatched, 0);
  fail = false;
  const again = PROMPTS.slice(0, 3).map((prompt) => ({ prompt, options: { ...GREEDY, maxTokens: 6 } }));
  const want = await serialAnswers(MIXED, 128, again);
  const got = await Promise.all(again.map((c) => model.generate(c.prompt, c.options)));
  got.forEach((r, i) => assert.deepEqual(r.tokens, want[i].tokens, `call ${i}`));
  assert.equal(model.batchStats().prefillsBatched, 3);
});

Deno.test("slots: as many as fit when the device runs out of memory; other failures are errors", () => {
  using backend = Backend.open({ backend: "cpu" });
  const spec = [{ capacity: 4, kvHeads: 1, headDim: 2 }];
  using own = new KvCache(backend, spec);
  const made: KvCache[] = [];
  const lm = (fail: Error) => ({
    cache: own,
    createCache: () => {
      if (made.length >= 2) throw fail;
      const c = new KvCache(backend, spec);
      made.push(c);
      return c;
    },
  });
  const slots = new KvSlots(lm(new NativeError("gk_malloc", 2, "out of memory")), 8);
  assert.equal(slots.count, 3);
  slots.dispose();
  assert.ok(made.every((c) => c.layers.every((l) => l === null || l.k.disposed)));
  made.length = 0;
  assert.throws(() => new KvSlots(lm(new NativeError("gk_malloc", 3, "device lost")), 8), NativeError);
  assert.ok(made.every((c) => c.layers.every((l) => l === null || l.k.disposed)), "the slots made so far are freed");
});
