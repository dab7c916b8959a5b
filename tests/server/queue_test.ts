/**
 * The server's queue and disconnect handling, driven step by step with a scripted stand-in model: one
 * generation at a time, waiters served first come first served, a full line refused with 503 +
 * Retry-After, and a client that goes away — queued, mid-generation, or mid-stream — aborts its work.
 */
import assert from "node:assert/strict";
import { Backend, loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { FairQueue } from "../../examples/server/queue.ts";
import { json, MODEL_ID, ScriptedModel, TEXT_MODEL } from "./helpers.ts";

const tick = () => new Promise((r) => setTimeout(r, 5));
const prompt = (i: number) => ({ model: "m", prompt: `request ${i}`, max_tokens: 4 });
const labelOf = (input: unknown) => (input as string).split(" ")[1];

Deno.test("one at a time, first come first served, 503 with Retry-After past the bound", async () => {
  using backend = Backend.open({ backend: "cpu" });
  const model = new ScriptedModel(backend, ["a", "b"]);
  const app = createApp({ model, modelId: "m", limits: { maxQueue: 2 } });
  const first = app.request("/v1/completions", json(prompt(0)));
  await model.started(1);
  const waiting = [1, 2].map((i) => app.request("/v1/completions", json(prompt(i))));
  await tick();
  assert.equal(model.calls.length, 1, "the others wait");
  const health = await (await app.request("/health")).json();
  assert.deepEqual(health.queue, { depth: 2, busy: true });
  assert.match(await (await app.request("/metrics")).text(), /^gemmakit_queue_depth 2$/m);
  const refused = await app.request("/v1/completions", json(prompt(3)));
  assert.equal(refused.status, 503);
  assert.ok(Number(refused.headers.get("retry-after")) >= 1, `Retry-After: ${refused.headers.get("retry-after")}`);
  const err = (await refused.json()).error;
  assert.equal(err.type, "overloaded_error");
  assert.match(err.message, /at capacity \(2 requests waiting\)/);
  while (model.calls.length < 3 || !model.calls.every((c) => c.done)) {
    model.step();
    await tick();
  }
  const bodies = await Promise.all([first, ...waiting].map(async (r) => (await r).json()));
  assert.deepEqual(bodies.map((b) => b.choices[0].text), ["ab", "ab", "ab"]);
  assert.deepEqual(model.calls.map((c) => labelOf(c.input)), ["0", "1", "2"], "served in arrival order");
  assert.equal(model.calls.filter((c) => c.done).length, 3);
  assert.equal((await (await app.request("/health")).json()).queue.busy, false);
});

Deno.test("a client that disconnects while queued leaves the line; one that disconnects mid-generation aborts it", async () => {
  using backend = Backend.open({ backend: "cpu" });
  const model = new ScriptedModel(backend, ["a", "b", "c", "d"]);
  const app = createApp({ model, modelId: "m", limits: { maxQueue: 4 } });
  const running = new AbortController();
  const first = app.request("/v1/completions", { ...json(prompt(0)), signal: running.signal });
  await model.started(1);
  const gone = new AbortController();
  const queued = app.request("/v1/completions", { ...json(prompt(1)), signal: gone.signal });
  const last = app.request("/v1/completions", json(prompt(2)));
  await tick();
  assert.equal((await (await app.request("/health")).json()).queue.depth, 2);
  gone.abort();
  assert.equal((await queued).status, 499);
  assert.equal((await (await app.request("/health")).json()).queue.depth, 1, "the aborted waiter left");
  model.step(); // first generation yields "a"
  await tick();
  running.abort(); // its client goes away mid-generation
  model.step();
  await tick();
  assert.equal((await first).status, 499);
  assert.equal(model.calls[0].signal?.aborted, true);
  assert.equal(model.calls[0].done, true, "the generator ran to its end (and released the model)");
  while (!model.calls[1]?.done) {
    model.step();
    await tick();
  }
  assert.equal((await (await last).json()).choices[0].text, "abcd");
  assert.deepEqual(model.calls.map((c) => labelOf(c.input)), ["0", "2"], "the request that left was never run");
});

Deno.test("cancelling a stream aborts its generation and frees the model", async () => {
  using backend = Backend.open({ backend: "cpu" });
  const model = new ScriptedModel(backend, ["a", "b", "c", "d"]);
  const app = createApp({ model, modelId: "m" });
  const pending = app.request(
    "/v1/chat/completions",
    json({ model: "m", messages: [{ role: "user", content: "x" }], stream: true }),
  );
  await model.started(1);
  model.step(); // the answer's headers go out with its first piece
  const reader = (await pending).body!.getReader();
  assert.match(new TextDecoder().decode((await reader.read()).value), /"role":"assistant"/);
  assert.match(new TextDecoder().decode((await reader.read()).value), /"content":"a"/);
  await reader.cancel();
  model.step();
  await tick();
  assert.equal(model.calls[0].signal?.aborted, true);
  assert.equal(model.calls[0].done, true);
  const next = app.request("/v1/completions", json(prompt(1)));
  await model.started(2);
  for (let i = 0; i < 4; i++) model.step(), await tick();
  assert.equal((await (await next).json()).choices[0].text, "abcd");
});

Deno.test("FairQueue: grants in order, skips waiters that aborted, releases once", async () => {
  const q = new FairQueue(8);
  const order: number[] = [];
  const r0 = await q.acquire();
  const aborted = new AbortController();
  const waits = [1, 2, 3].map((i) =>
    q.acquire(i === 2 ? aborted.signal : undefined).then((release) => {
      order.push(i);
      return release;
    })
  );
  aborted.abort(new Error("gone"));
  await assert.rejects(waits[1], /gone/);
  assert.equal(q.depth, 2);
  r0();
  r0(); // a second call hands nothing on
  (await waits[0])();
  (await waits[2])();
  assert.deepEqual(order, [1, 3]);
  assert.equal(q.busy, false);
  await assert.rejects(q.acquire(AbortSignal.abort(new Error("already"))), /already/);
});

Deno.test("FairQueue with slots: that many run at once, the rest wait in order", async () => {
  const q = new FairQueue(8, 3);
  const held = await Promise.all([q.acquire(), q.acquire(), q.acquire()]);
  assert.equal(q.running, 3);
  let granted = false;
  const fourth = q.acquire().then((release) => ((granted = true), release));
  await tick();
  assert.equal(granted, false, "the fourth waits for a slot");
  assert.equal(q.depth, 1);
  held[1]();
  (await fourth)();
  assert.equal(q.running, 2);
  held[0](), held[2]();
  assert.equal(q.running, 0);
  assert.equal(q.busy, false);
});

Deno.test("--parallel model: requests run together and /metrics shows the batch, KV use and prefix hits", async () => {
  using model = await loadModel(TEXT_MODEL, { backend: "cpu", maxContext: 256, parallel: 3 });
  const app = createApp({ model, modelId: MODEL_ID });
  const metric = async (name: string) => {
    const text = await (await app.request("/metrics")).text();
    const m = text.match(new RegExp(`^${name} (\\d+)$`, "m"));
    assert.ok(m, `${name} in /metrics`);
    return Number(m[1]);
  };
  assert.equal(await metric("gemmakit_batch_slots"), 3);
  assert.equal(await metric("gemmakit_kv_cache_bytes_budget"), model.batchStats().kvBytesBudget);
  assert.equal(await metric("gemmakit_decode_steps_total"), 0);
  const system = "You answer in one short sentence about lamps and keys and the mill by the river. ".repeat(2);
  const body = (q: string) => ({
    model: MODEL_ID,
    messages: [{ role: "system", content: system }, { role: "user", content: q }],
    max_tokens: 24,
    temperature: 0,
    stream: true,
  });
  // Three streams at once: while they run, the batch holds them all.
  const responses = await Promise.all(
    ["a?", "b?", "c?"].map((q) => app.request("/v1/chat/completions", json(body(q)))),
  );
  let sawBatch = 0;
  const readers = responses.map(async (r) => {
    const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
    while (!(await reader.read()).done) sawBatch = Math.max(sawBatch, await metric("gemmakit_batch_size"));
  });
  await Promise.all(readers);
  assert.ok(sawBatch >= 2, `batch size seen: ${sawBatch}`);
  assert.ok(await metric("gemmakit_decode_steps_total") > 0);
  assert.ok(await metric("gemmakit_decode_rows_total") > await metric("gemmakit_decode_steps_total"));
  assert.equal(await metric("gemmakit_kv_cache_bytes_used"), 0);
  const hits = await metric("gemmakit_prefix_cache_hits_total");
  const done = await app.request("/v1/chat/completions", json({ ...body("d?"), stream: false }));
  assert.equal(done.status, 200);
  assert.equal(await metric("gemmakit_prefix_cache_hits_total"), hits + 1, "the system prompt came from a slot");
  assert.ok(await metric("gemmakit_prefix_cache_tokens_total") > 0);
  assert.equal(await metric("gemmakit_requests_in_flight"), 0);
  const health = await (await app.request("/health")).json();
  assert.equal(health.batch.slots, 3);
  assert.equal(health.batch.prefix_hits, hits + 1);
});
