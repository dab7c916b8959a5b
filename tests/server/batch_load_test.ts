/**
 * Issue 16's load test: the example server as a user starts it (examples/server/main.ts, a subprocess) with
 * `--parallel 8` KV slots, 64 concurrent chat clients — streaming and not, varied prompts and max_tokens,
 * greedy — a quarter of them aborting at random moments (before the answer, or mid-stream). Every answer that
 * completes must be exactly the one the same request got when it ran alone beforehand (greedy top-1 equality:
 * batching changes no token), aborted clients must break nobody else, the server stays healthy, and afterwards
 * /metrics shows no slot decoding or prefilling, nothing queued, KV bytes held and native memory at their baselines.
 *
 * The RNG is seeded (printed; LOAD_SEED=N repeats a run).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { random, readSseUntil } from "./helpers.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = "examples/server/main.ts";
const MODEL = "tests/fixtures/gemma3-text-mixed";
const MODEL_ID = "gemma3-text-mixed";
const SLOTS = 8;
const CLIENTS = 64;

const PROMPTS = [
  "The keeper",
  "A lamp in the window",
  "Once upon a time",
  "Rivers and roads",
  "The north wind said",
  "Seven bridges",
  "Write a list of three colours",
  "Why is the sea salty?",
];
const MAX_TOKENS = [3, 12, 40];

interface Request {
  /** Key of the reference answer: the same messages and max_tokens (streaming or not gives the same text). */
  key: string;
  messages: { role: string; content: string }[];
  maxTokens: number;
}

function request(i: number): Request {
  const p = PROMPTS[i % PROMPTS.length], maxTokens = MAX_TOKENS[Math.floor(i / PROMPTS.length) % MAX_TOKENS.length];
  // Every third prompt with a system message: conversations of different lengths share the slots.
  const messages = i % 3 === 0
    ? [{ role: "system", content: "Answer briefly." }, { role: "user", content: p }]
    : [{ role: "user", content: p }];
  return { key: JSON.stringify([messages, maxTokens]), messages, maxTokens };
}

interface Answer {
  text: string;
  completionTokens: number;
  finishReason: string;
}

/** One chat completion; `abort` is called with the controller to schedule the client's abort, if any. */
async function chat(
  url: string,
  r: Request,
  stream: boolean,
  abort?: { afterMs?: number; afterEvents?: number },
): Promise<Answer | "aborted"> {
  const controller = new AbortController();
  const timer = abort?.afterMs !== undefined ? setTimeout(() => controller.abort(), abort.afterMs) : undefined;
  try {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: MODEL_ID,
        messages: r.messages,
        max_tokens: r.maxTokens,
        temperature: 0,
        stream,
        stream_options: stream ? { include_usage: true } : undefined,
      }),
      signal: controller.signal,
    });
    if (response.status !== 200) assert.fail(`status ${response.status}: ${await response.text()}`);
    if (!stream) {
      const body = await response.json();
      return {
        text: body.choices[0].message.content,
        completionTokens: body.usage.completion_tokens,
        finishReason: body.choices[0].finish_reason,
      };
    }
    const sse = await readSseUntil(response, controller, abort?.afterEvents ?? -1);
    if (sse === "aborted") return "aborted";
    const frames = sse.split("\n\n").filter((e) => e);
    assert.ok(frames.every((e) => e.startsWith("data: ")), "only data events");
    assert.equal(frames.at(-1), "data: [DONE]");
    const chunks = frames.slice(0, -1).map((e) => JSON.parse(e.slice(6)));
    assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
    return {
      text: chunks.map((c) => c.choices[0]?.delta.content ?? "").join(""),
      completionTokens: chunks.at(-1).usage.completion_tokens,
      finishReason: chunks.findLast((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason,
    };
  } catch (e) {
    if (controller.signal.aborted) return "aborted";
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** The value of an unlabelled sample (`name value`) in Prometheus text, or undefined when absent. */
function gauge(metrics: string, name: string): number | undefined {
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(metrics);
  return m ? Number(m[1]) : undefined;
}

/** The server subprocess: started on a free port, its stdout/stderr drained (kept for a failure message). */
async function startServer(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--model", MODEL, "--backend", "cpu", "--port", "0", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  let resolveUrl!: (u: string) => void;
  const url = new Promise<string>((r) => (resolveUrl = r));
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) {
      log += t;
      const m = /at (http:\/\/[^\s/]+)\//.exec(log);
      if (m) resolveUrl(m[1]);
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const exited = child.status.then((s) => {
    throw new Error(`the server exited (${s.code}) before listening:\n${log}`);
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the server did not start in 60 s:\n${log}`)), 60_000);
  });
  try {
    return {
      url: await Promise.race([url, exited, timeout]),
      log: () => log,
      async stop(): Promise<number> {
        child.kill("SIGINT"); // main.ts: shut the server down, dispose of the model, exit 0
        const { code } = await child.status;
        await drained;
        return code;
      },
    };
  } catch (e) {
    child.kill("SIGKILL");
    await child.status;
    await drained;
    throw e;
  } finally {
    clearTimeout(timer);
    exited.catch(() => {});
  }
}

Deno.test({
  name: "batch load: 64 clients on --parallel 8, a quarter aborting; answers equal the unbatched ones",
  // The subprocess's timers and pipes are awaited in stop(); the race's losers are left to settle.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const seed = Number(Deno.env.get("LOAD_SEED") ?? Date.now() % 100000);
    console.log(`batch load test seed ${seed} (LOAD_SEED=${seed} repeats it)`);
    const rand = random(seed);

    const server = await startServer([
      "--parallel",
      String(SLOTS),
      "--max-queue",
      String(CLIENTS),
      "--max-context",
      "128",
    ]);
    let stopped = false;
    try {
      const url = server.url;
      const requests = Array.from({ length: CLIENTS }, (_, i) => request(i));

      // Each distinct request alone first: the unbatched greedy answer.
      const expected = new Map<string, Answer>();
      for (const r of requests) {
        if (expected.has(r.key)) continue;
        const a = await chat(url, r, false);
        assert.notEqual(a, "aborted");
        expected.set(r.key, a as Answer);
      }
      const before = await (await fetch(`${url}/metrics`)).text();
      const baselineMemory = gauge(before, "gemmakit_native_memory_bytes");
      assert.ok(baselineMemory !== undefined && baselineMemory > 0, "native memory is reported");

      const started = performance.now();
      // /health answers all through the load (polled every 50 ms until the clients are done).
      let loading = true, polls = 0;
      const poller = (async () => {
        while (loading) {
          const res = await fetch(`${url}/health`);
          assert.equal(res.status, 200, "healthy during the load");
          assert.equal((await res.json()).status, "ok");
          polls++;
          await new Promise((res) => setTimeout(res, 50));
        }
      })();
      const results = await Promise.all(requests.map(async (r, i) => {
        const stream = rand() < 0.5;
        const aborts = rand() < 0.25;
        // Abort points: a timer (queued, prefilling or generating) or, when streaming, after a few events.
        const abort = !aborts
          ? undefined
          : stream && rand() < 0.5
          ? { afterEvents: 1 + Math.floor(rand() * 4) }
          : { afterMs: rand() * 400 };
        // Staggered arrivals: slots fill and free while others join.
        await new Promise((res) => setTimeout(res, rand() * 50));
        return { r, i, stream, answer: await chat(url, r, stream, abort) };
      }));
      loading = false;
      await poller;
      assert.ok(polls > 0);
      const done = results.filter((x) => x.answer !== "aborted");
      console.log(
        `${done.length} completed, ${CLIENTS - done.length} aborted in ${
          ((performance.now() - started) / 1000).toFixed(1)
        } s`,
      );
      assert.ok(done.length >= CLIENTS / 2, "most clients were not meant to abort");
      for (const { r, i, stream, answer } of done) {
        assert.deepEqual(answer, expected.get(r.key), `client ${i} (${stream ? "streamed" : "whole"}) ${r.key}`);
      }

      // Aborted generations may still be ending their step: wait for the model to go idle, then look.
      let health: { status: string; queue: { depth: number; busy: boolean } } | undefined;
      for (let t = 0; t < 500; t++) {
        const res = await fetch(`${url}/health`);
        assert.equal(res.status, 200, "healthy throughout");
        health = await res.json();
        if (health!.queue.depth === 0 && !health!.queue.busy) break;
        await new Promise((res) => setTimeout(res, 10));
      }
      assert.equal(health!.status, "ok");
      assert.deepEqual(health!.queue, { depth: 0, busy: false });

      const after = await (await fetch(`${url}/metrics`)).text();
      assert.equal(gauge(after, "gemmakit_queue_depth"), 0);
      assert.equal(gauge(after, "gemmakit_requests_in_flight"), 0);
      assert.equal(gauge(after, "gemmakit_native_memory_bytes"), baselineMemory, "native memory at its baseline");
      // The batch gauges the server exports from model.batchStats() (examples/server/metrics.ts):
      // gemmakit_batch_slots, _batch_size (decoding rows), _batch_prefilling, _batch_queued (waiting for a
      // slot in the library), gemmakit_kv_cache_bytes_used (slots held by active sequences) and _budget.
      {
        assert.equal(gauge(after, "gemmakit_batch_slots"), SLOTS);
        assert.equal(gauge(after, "gemmakit_batch_size"), 0, "no slot decoding");
        assert.equal(gauge(after, "gemmakit_batch_prefilling"), 0, "no slot prefilling");
        assert.equal(gauge(after, "gemmakit_batch_queued"), 0, "nothing waiting for a slot");
        const budget = gauge(before, "gemmakit_kv_cache_bytes_budget");
        assert.ok(budget !== undefined && budget > 0, "KV budget reported");
        assert.equal(gauge(after, "gemmakit_kv_cache_bytes_budget"), budget, "the KV allocation unchanged");
        assert.equal(
          gauge(after, "gemmakit_kv_cache_bytes_used"),
          gauge(before, "gemmakit_kv_cache_bytes_used"),
          "KV bytes held back to the baseline (no slot left held by an aborted client)",
        );
      }

      // Still answers, and correctly.
      const again = await chat(url, requests[0], false);
      assert.deepEqual(again, expected.get(requests[0].key), "answers after the load");
      stopped = true;
      assert.equal(await server.stop(), 0, "clean exit on SIGINT");
    } finally {
      if (!stopped) await server.stop();
    }
  },
});
