/**
 * A large valid image (16 MP, the server's default maxImagePixels) is decoded and resized in a worker (issue 14):
 * on the event loop those take over a second, and `/health` would wait for them. Probed every ~50 ms while the
 * request runs, each `/health` must answer within 100 ms, and the request must give the library's own answer.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { serveBounded } from "../../examples/server/serve.ts";
import { encodeBase64, ROOT } from "./helpers.ts";

const DIR = `${ROOT}tests/fixtures/gemma3-vision-tiny`;
const SIDE = 4000; // 16,000,000 pixels

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** An RGB8 PNG of side x side with a pattern that varies along both axes in 16-pixel blocks (so resizing has real work). */
async function bigPng(side: number): Promise<Uint8Array> {
  const raw = new Uint8Array(side * (1 + 3 * side));
  for (let y = 0; y < side; y++) {
    const row = y * (1 + 3 * side); // filter byte 0 (none), then the pixels
    for (let x = 0; x < side; x++) {
      // 16x16 blocks: rows repeat within a band, so deflate keeps the body a few MB while decoding still
      // inflates and unfilters all 48 MB.
      raw[row + 1 + 3 * x] = ((x >> 4) * 9) & 255;
      raw[row + 2 + 3 * x] = ((y >> 4) * 13) & 255;
      raw[row + 3 + 3 * x] = (((x >> 6) ^ (y >> 6)) * 29) & 255;
    }
  }
  // CompressionStream("deflate") writes the zlib format PNG's IDAT takes.
  const idat = new Uint8Array(
    await new Response(new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"))).arrayBuffer(),
  );
  const ihdr = new Uint8Array(13);
  new DataView(ihdr.buffer).setUint32(0, side);
  new DataView(ihdr.buffer).setUint32(4, side);
  ihdr.set([8, 2, 0, 0, 0], 8); // 8-bit RGB, deflate, adaptive filters, no interlace
  const parts = [
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
}

Deno.test("server: /health answers within 100 ms while a 16 MP image is decoded and resized", async () => {
  const model = await loadModel(DIR, { backend: "cpu", maxContext: 64 });
  const png = await bigPng(SIDE);
  assert.ok(png.length < 10 << 20, `${png.length} bytes: over the server's default maxImageBytes`);
  const question = <T>(image: T) => [{ role: "user" as const, content: [{ type: "text", text: "Describe" }, image] }];
  // The library's answer for the same image, decoded on this thread (before the server runs).
  const direct = await model.generate({
    messages: [{ role: "user", content: [{ type: "text", text: "Describe" }, { type: "image", bytes: png }] }],
  }, {
    maxTokens: 6,
    temperature: 0,
  });
  const app = createApp({ model, modelId: "vision-tiny", limits: { maxImagePixels: SIDE * SIDE } });
  const server = await serveBounded(app.fetch, { port: 0 });
  const base = `http://127.0.0.1:${server.addr.port}`;
  try {
    let running = true;
    const started = performance.now();
    const request = fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "vision-tiny",
        messages: question({ type: "image_url", image_url: { url: `data:image/png;base64,${encodeBase64(png)}` } }),
        max_tokens: 6,
        temperature: 0,
      }),
    }).then(async (r) => ({ status: r.status, body: await r.json(), ms: performance.now() - started }))
      .finally(() => (running = false));
    const probes: number[] = [];
    while (running) {
      const t0 = performance.now();
      const h = await fetch(`${base}/health`);
      await h.body?.cancel();
      probes.push(performance.now() - t0);
      assert.equal(h.status, 200);
      await new Promise((r) => setTimeout(r, 50));
    }
    const done = await request;
    assert.equal(done.status, 200, JSON.stringify(done.body));
    assert.equal(done.body.choices[0].message.content, direct.text);
    assert.equal(done.body.usage.prompt_tokens, direct.promptTokens);
    // The decode alone takes well over a second here: enough probes ran during it to mean something.
    assert.ok(probes.length >= 5, `only ${probes.length} probes in ${done.ms.toFixed(0)} ms`);
    // The goal is 100 ms per probe. Decoding on the event loop shows as seconds (the test fails so with the worker
    // off); a 2-core machine loaded by other processes may stall one probe for a scheduling slice, so one probe in
    // twenty may reach 250 ms while the others stay under 100 ms.
    const sorted = [...probes].sort((a, b) => a - b), shown = probes.map((p) => p.toFixed(0)).join(", ");
    const allowedSlow = Math.floor(probes.length / 20) + 1;
    assert.ok(sorted.at(-1)! < 250, `/health took ${shown} ms`);
    assert.ok(sorted.at(-1 - allowedSlow)! < 100, `/health took ${shown} ms`);
  } finally {
    await server.shutdown();
    model.dispose();
  }
});
