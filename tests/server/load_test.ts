/**
 * Load on loopback: 64 concurrent clients, a quarter of them aborting at random points (while queued,
 * mid-stream, mid-generation). Afterwards the server still answers, native memory is back to its
 * baseline, the queue is empty, and every response that completed is intact — the model's exact greedy
 * answer for its prompt, in well-formed SSE when streamed.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { MODEL_ID, random, readSseUntil, TEXT_MODEL } from "./helpers.ts";

const CLIENTS = 64;
const MAX_TOKENS = 8;
const PROMPTS = ["The keeper", "A lamp", "Once upon", "Rivers and", "The north wind", "Seven"];

Deno.test("load: 64 concurrent clients, a quarter aborting; the server recovers whole", async () => {
  const seed = Number(Deno.env.get("LOAD_SEED") ?? Date.now() % 100000);
  console.log(`load test seed ${seed} (LOAD_SEED=${seed} repeats it)`);
  const rand = random(seed);
  using model = await loadModel(TEXT_MODEL, { backend: "cpu", maxContext: 64 });
  const expected = new Map<string, { text: string; completion: number }>();
  for (const p of PROMPTS) {
    const r = await model.generate({ messages: [{ role: "user", content: p }] }, {
      maxTokens: MAX_TOKENS,
      temperature: 0,
    });
    expected.set(p, { text: r.text, completion: r.completionTokens });
  }
  const baseline = model.backend.memoryStats().inUse;
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    createApp({ model, modelId: MODEL_ID, limits: { maxQueue: CLIENTS } }).fetch,
  );
  const url = `http://127.0.0.1:${server.addr.port}`;
  try {
    const results = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
      const prompt = PROMPTS[i % PROMPTS.length];
      const stream = i % 2 === 0;
      const aborts = rand() < 0.25;
      const controller = new AbortController();
      // Abort points: before the answer (queued or generating), or after some streamed events.
      const abortAfterEvents = aborts && stream && rand() < 0.5 ? 1 + Math.floor(rand() * 4) : -1;
      if (aborts && abortAfterEvents < 0) setTimeout(() => controller.abort(), rand() * 300);
      try {
        const response = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: MODEL_ID,
            messages: [{ role: "user", content: prompt }],
            max_tokens: MAX_TOKENS,
            temperature: 0,
            stream,
            stream_options: stream ? { include_usage: true } : undefined,
          }),
          signal: controller.signal,
        });
        assert.equal(response.status, 200);
        if (!stream) return { prompt, aborted: false, body: await response.json() };
        const sse = await readSseUntil(response, controller, abortAfterEvents);
        return sse === "aborted" ? { prompt, aborted: true } : { prompt, aborted: false, sse };
      } catch (e) {
        if (controller.signal.aborted) return { prompt, aborted: true };
        throw e;
      }
    }));

    const completed = results.filter((r) => !r.aborted);
    console.log(`${completed.length} completed, ${CLIENTS - completed.length} aborted`);
    assert.ok(completed.length >= CLIENTS / 2);
    for (const r of completed) {
      const want = expected.get(r.prompt)!;
      if ("body" in r) {
        assert.equal(r.body.choices[0].message.content, want.text, `non-streamed answer to ${r.prompt}`);
        assert.equal(r.body.usage.completion_tokens, want.completion);
      } else {
        const events = r.sse!.split("\n\n").filter((e) => e);
        assert.ok(events.every((e) => e.startsWith("data: ")), "only data events");
        assert.equal(events.at(-1), "data: [DONE]");
        const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
        assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
        const text = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
        assert.equal(text, want.text, `streamed answer to ${r.prompt}`);
        assert.equal(chunks.at(-1).usage.completion_tokens, want.completion);
      }
    }

    // Aborted generations may still be finishing their last chunk: wait for the model to go idle.
    for (let i = 0; i < 200; i++) {
      const h = await (await fetch(`${url}/health`)).json();
      if (!h.queue.busy && h.queue.depth === 0) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const health = await (await fetch(`${url}/health`)).json();
    assert.deepEqual(health.queue, { depth: 0, busy: false });
    assert.equal(model.backend.memoryStats().inUse, baseline, "native memory back to its baseline");
    const after = await (await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({
        model: MODEL_ID,
        messages: [{ role: "user", content: PROMPTS[0] }],
        max_tokens: MAX_TOKENS,
        temperature: 0,
      }),
    })).json();
    assert.equal(after.choices[0].message.content, expected.get(PROMPTS[0])!.text, "still answers, correctly");
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /^gemmakit_queue_depth 0$/m);
    assert.match(metrics, /^gemmakit_requests_in_flight 0$/m);
    assert.equal(model.backend.memoryStats().inUse, baseline);
  } finally {
    await server.shutdown();
  }
});
