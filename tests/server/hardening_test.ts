/**
 * The server under attack (issue 14), on the tiny Gemma 3 fixture behind the connection guard (serve.ts): many
 * connections trickling bodies and half-sent headers, an oversized image and a 19 MB prompt, while `/health` must
 * answer within 100 ms and a normal request must complete; then each attacker gets its bound (408, closed, 503).
 */
import assert from "node:assert/strict";
import { ContextLengthError, loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { serveBounded } from "../../examples/server/serve.ts";
import { encodeBase64, MODEL_ID, TEXT_MODEL } from "./helpers.ts";

const model = await loadModel(TEXT_MODEL, { backend: "cpu", maxContext: 64 });

/** A PNG whose header declares width x height: IHDR and IEND, no pixels (the header is all the server reads). */
function pngHeader(width: number, height: number): Uint8Array {
  const b = new Uint8Array(8 + 25 + 12);
  b.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const v = new DataView(b.buffer);
  v.setUint32(8, 13);
  b.set([0x49, 0x48, 0x44, 0x52], 12);
  v.setUint32(16, width);
  v.setUint32(20, height);
  b.set([8, 2, 0, 0, 0], 24);
  b.set([0x49, 0x45, 0x4e, 0x44], 33 + 4); // IEND, length 0
  return b;
}

/** A raw connection that sends `head` now and then `chunk` every `everyMs` until stopped; records what came back. */
async function trickle(port: number, head: string, chunk: string, everyMs: number) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const enc = new TextEncoder();
  let stopped = false, answer = "", closed = false;
  await conn.write(enc.encode(head));
  const sender = (async () => {
    while (!stopped) {
      await new Promise((r) => setTimeout(r, everyMs));
      if (stopped) break;
      try {
        await conn.write(enc.encode(chunk));
      } catch {
        break;
      }
    }
  })();
  const reader = (async () => {
    const buf = new Uint8Array(4096);
    try {
      for (let n; (n = await conn.read(buf)) !== null;) answer += new TextDecoder().decode(buf.subarray(0, n));
    } catch { /* reset */ }
    closed = true;
  })();
  return {
    get answer() {
      return answer;
    },
    get closed() {
      return closed;
    },
    async stop() {
      stopped = true;
      try {
        conn.close();
      } catch { /* closed by the server */ }
      await Promise.all([sender, reader]);
    },
  };
}

async function timed(url: string, init?: RequestInit): Promise<{ ms: number; response: Response }> {
  const t0 = performance.now();
  const response = await fetch(url, init);
  return { ms: performance.now() - t0, response };
}

Deno.test("a 19 MB prompt is refused from its length, before templating: ContextLengthError in well under a second", async () => {
  const text = "word ".repeat(19e6 / 5);
  for (const input of [{ messages: [{ role: "user" as const, content: text }] }, { prompt: text }]) {
    const t0 = performance.now();
    await assert.rejects(() => model.generate(input, { maxTokens: 1 }), (e) => {
      assert.ok(e instanceof ContextLengthError, String(e));
      assert.match(e.message, /at least \d+ tokens/);
      return true;
    });
    const ms = performance.now() - t0;
    assert.ok(ms < 1000, `refused in ${ms.toFixed(0)} ms`);
  }
});

Deno.test("server: slow bodies, half-sent headers, an oversized image and a 19 MB prompt do not block /health", async () => {
  const app = createApp({
    model,
    modelId: MODEL_ID,
    acceptsImages: true,
    limits: { bodyTimeoutMs: 3000, maxInflightBodyBytes: 160 << 10, maxImagePixels: 4_000_000, maxTokens: 8 },
  });
  const server = await serveBounded(app.fetch, {
    port: 0,
    limits: { maxConnections: 40, headerTimeoutMs: 1500, idleTimeoutMs: 5000 },
  });
  const port = server.addr.port;
  const base = `http://127.0.0.1:${port}`;
  const attackers: Awaited<ReturnType<typeof trickle>>[] = [];
  try {
    // 20 bodies of a declared 1 MB trickling 512 bytes every 100 ms: past ~2 s together they pass the 160 KiB in
    // flight (the latecomers get 503, the rest hold on until the 3 s body deadline, 408).
    const head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n" +
      "content-length: 1000000\r\n\r\n";
    for (let i = 0; i < 20; i++) attackers.push(await trickle(port, head, " ".repeat(512), 100));
    // 8 connections sending their header block one byte every 100 ms.
    const slowloris: typeof attackers = [];
    for (let i = 0; i < 8; i++) slowloris.push(await trickle(port, "GET /health HTTP/1.1\r\n", "X", 100));
    attackers.push(...slowloris);
    await new Promise((r) => setTimeout(r, 300));

    const post = (body: unknown) => ({
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    // An image whose header says 10000x10000: refused from the header, nothing decoded.
    const big = `data:image/png;base64,${encodeBase64(pngHeader(10_000, 10_000))}`;
    const oversized = fetch(
      `${base}/v1/chat/completions`,
      post({
        model: MODEL_ID,
        messages: [{ role: "user", content: [{ type: "image_url", image_url: { url: big } }] }],
      }),
    );
    const healthTimes: number[] = [];
    for (let i = 0; i < 5; i++) {
      const { ms, response } = await timed(`${base}/health`);
      assert.equal(response.status, 200);
      await response.body?.cancel();
      healthTimes.push(ms);
      await new Promise((r) => setTimeout(r, 50));
    }
    const refusedImage = await oversized;
    assert.equal(refusedImage.status, 413);
    assert.equal((await refusedImage.json()).error.code, "image_too_large");

    // A normal request completes meanwhile.
    const normal = await fetch(
      `${base}/v1/chat/completions`,
      post({ model: MODEL_ID, messages: [{ role: "user", content: "Hi" }], max_tokens: 3, temperature: 0 }),
    );
    assert.equal(normal.status, 200);
    assert.equal((await normal.json()).object, "chat.completion");
    const { ms, response } = await timed(`${base}/health`);
    await response.body?.cancel();
    healthTimes.push(ms);
    // The goal is 100 ms. A blocked event loop shows as seconds; a 2-core machine that other processes load can
    // stall one probe for a scheduling slice, so one probe may reach 250 ms while the median stays under 100 ms.
    const sorted = [...healthTimes].sort((x, y) => x - y), shown = healthTimes.map((t) => t.toFixed(0)).join(", ");
    assert.ok(sorted[Math.floor(sorted.length / 2)] < 100, `/health median over 100 ms: ${shown} ms`);
    assert.ok(sorted.at(-1)! < 250 && sorted.at(-2)! < 100, `/health took ${shown} ms`);

    // Past the deadlines: every slow body answered (408, or 503 for those past the bytes in flight), every
    // half-sent header block closed.
    await new Promise((r) => setTimeout(r, 3500));
    const bodies = attackers.slice(0, 20).map((a) => /^HTTP\/1\.1 (\d+)/.exec(a.answer)?.[1]);
    assert.ok(bodies.every((s) => s === "408" || s === "503"), `slow bodies got ${bodies}`);
    // Which bound a trickling body meets first (the deadline, 408, or the bytes in flight, 503) depends on the
    // machine's timing; each bound is checked on its own in body_test.ts.
    assert.equal(bodies.length, 20, `every slow body was answered: ${bodies}`);
    assert.ok(slowloris.every((a) => a.closed && a.answer === ""), "half-sent headers are closed without an answer");
  } finally {
    await Promise.all(attackers.map((a) => a.stop()));
    await server.shutdown();
  }
});

Deno.test("server: a 19 MB prompt gets 400 context_length_exceeded quickly and /health answers meanwhile", async () => {
  const app = createApp({
    model,
    modelId: MODEL_ID,
    limits: { maxBodyBytes: 24 << 20, maxInflightBodyBytes: 64 << 20 },
  });
  const server = await serveBounded(app.fetch, { port: 0 });
  const base = `http://127.0.0.1:${server.addr.port}`;
  // The client is another process: building and sending 19 MB is its work, not the server's event loop's.
  const client = `const body = JSON.stringify({ model: ${JSON.stringify(MODEL_ID)}, ` +
    `messages: [{ role: "user", content: "word ".repeat(19e6 / 5) }] });` +
    `const t0 = performance.now();` +
    `const r = await fetch("${base}/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body });` +
    `console.log(JSON.stringify({ status: r.status, body: await r.json(), ms: performance.now() - t0 }));`;
  try {
    const child = new Deno.Command(Deno.execPath(), { args: ["eval", client], stdout: "piped", stderr: "inherit" })
      .output();
    let done = false;
    child.finally(() => (done = true));
    const healthTimes: number[] = [];
    while (!done) {
      const { ms, response } = await timed(`${base}/health`);
      await response.body?.cancel();
      healthTimes.push(ms);
      await new Promise((r) => setTimeout(r, 20));
    }
    const { status, body, ms } = JSON.parse(new TextDecoder().decode((await child).stdout));
    assert.equal(status, 400);
    assert.equal(body.error.code, "context_length_exceeded");
    assert.ok(ms < 3000, `answered in ${ms.toFixed(0)} ms`);
    assert.ok(healthTimes.length > 0);
    // Not blocked: JSON.parse of the 19 MB body is the one step left on the event loop (25 ms alone, up to ~120 ms
    // on two loaded cores); templating and tokenizing, which took 115 s, never start.
    assert.ok(Math.max(...healthTimes) < 250, `/health took ${healthTimes.map((t) => t.toFixed(0)).join(", ")} ms`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("serveBounded: one connection past the cap gets 503 and is closed; the cap frees as connections close", async () => {
  const app = createApp({ model, modelId: MODEL_ID });
  const server = await serveBounded(app.fetch, { port: 0, limits: { maxConnections: 3, headerTimeoutMs: 5000 } });
  const port = server.addr.port;
  const held = [];
  try {
    for (let i = 0; i < 3; i++) held.push(await trickle(port, "GET /health HTTP/1.1\r\n", "", 1000));
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.connections, 3);
    const r = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(r.status, 503);
    assert.equal((await r.json()).error.code, "busy");
    await Promise.all(held.map((h) => h.stop()));
    await new Promise((r) => setTimeout(r, 100));
    const ok = await fetch(`http://127.0.0.1:${port}/health`);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await Promise.all(held.map((h) => h.stop()));
    await server.shutdown();
  }
});
