/**
 * Video through the server on the tiny Gemma 4 multimodal fixture with the committed clip (tests/fixtures/
 * gemma4-media/testsrc.mp4): vLLM's `{type: "video_url", video_url: {url}}` parts (data URLs; http(s) only when the
 * operator allows it) give the library's own answer for the same bytes, with vLLM's media_io_kwargs choosing the
 * frames; bad, oversized and refused videos are clear 4xx (also for streams) and the next request is served; the
 * temporary file ffmpeg reads is gone afterwards; and the vision-encoder cache's hits, misses, entries and bytes are
 * in /metrics and /health. Skipped, with the reason printed, when ffmpeg is not installed.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { findFfmpeg } from "../../src/vision/video.ts";
import { encodeBase64, json, ROOT, sseData } from "./helpers.ts";

const DIR = `${ROOT}tests/fixtures/gemma4-vision-tiny`;
const MP4 = Deno.readFileSync(`${ROOT}tests/fixtures/gemma4-media/testsrc.mp4`);
const PNG = Deno.readFileSync(`${DIR}/landscape.png`);
const dataUrl = (bytes: Uint8Array, type = "video/mp4") => `data:${type};base64,${encodeBase64(bytes)}`;
const FOUR = { media_io_kwargs: { video: { num_frames: 4 } } };

let noFfmpeg = "";
try {
  findFfmpeg();
} catch (e) {
  noFfmpeg = (e as Error).message;
  console.log(`server video tests skipped: ${noFfmpeg}`);
}
const suffix = noFfmpeg ? " (skipped: ffmpeg not installed)" : "";
const model = noFfmpeg ? undefined : await loadModel(DIR, { backend: "cpu", maxContext: 1024 });
const app = createApp({ model, modelId: "g4-vision-tiny" });

const ask = (
  parts: Record<string, unknown>[],
  extra: Record<string, unknown> = {},
  server: { request: typeof app.request } = app,
) =>
  server.request(
    "/v1/chat/completions",
    json({
      model: "g4-vision-tiny",
      messages: [{ role: "user", content: [...parts, { type: "text", text: "Describe" }] }],
      max_tokens: 4,
      temperature: 0,
      ...extra,
    }),
  );
const video = (url: string) => ({ type: "video_url", video_url: { url } });

/** Names in the temporary directory that the library's video files use. */
function videoTemps(): Set<string> {
  const dir = Deno.env.get("TMPDIR") || "/tmp";
  return new Set([...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("gemmakit-video-")));
}

/**
 * The video temp files that appeared since `before` and are still there after other test files' decodes (which run
 * in parallel and use the same temp directory) had time to finish: only a leaked file stays.
 */
async function leftVideoTemps(before: Set<string>): Promise<string[]> {
  for (let waited = 0;; waited += 100) {
    const left = [...videoTemps()].filter((n) => !before.has(n));
    if (left.length === 0 || waited >= 15_000) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function metric(name: string): Promise<number> {
  const text = await (await app.request("/metrics")).text();
  const m = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  assert.ok(m, `/metrics has no ${name}`);
  return Number(m[1]);
}

Deno.test({
  name: `a video_url part gives the library's answer for the same bytes, streamed or not${suffix}`,
  ignore: !!noFfmpeg,
  fn: async () => {
    const before = videoTemps();
    const direct = await model!.generate({
      messages: [{ role: "user", content: [{ type: "video", bytes: MP4 }, { type: "text", text: "Describe" }] }],
    }, { maxTokens: 4, temperature: 0, videoLoading: { sampling: { doSampleFrames: true, numFrames: 4, fps: null } } });
    const r = await ask([video(dataUrl(MP4))], FOUR);
    assert.equal(r.status, 200, await r.clone().text());
    const body = await r.json();
    assert.equal(body.choices[0].message.content, direct.text);
    assert.equal(body.usage.prompt_tokens, direct.promptTokens, "each frame's soft tokens are counted");
    const streamed = (await sseData(await ask([video(dataUrl(MP4))], { ...FOUR, stream: true }))).slice(0, -1)
      .map((e) => JSON.parse(e));
    assert.equal(streamed.map((c) => c.choices[0].delta.content ?? "").join(""), direct.text);
    // ffmpeg read the bytes from a private temporary file: gone once the request is done.
    assert.deepEqual(await leftVideoTemps(before), []);
  },
});

Deno.test({
  name: `the vision cache's hits, misses, entries and bytes are in /metrics and /health${suffix}`,
  ignore: !!noFfmpeg,
  fn: async () => {
    const image = { type: "image_url", image_url: { url: dataUrl(PNG, "image/png") } };
    const s0 = model!.visionCacheStats()!;
    assert.equal(await metric("gemmakit_vision_cache_misses_total"), s0.misses);
    assert.equal((await ask([image])).status, 200);
    // Without this the second request would reuse the first's KV cache past the image and never ask the encoder.
    model!.resetCache();
    assert.equal((await ask([image])).status, 200);
    const s = model!.visionCacheStats()!;
    assert.equal(s.misses - s0.misses, 1, "the image was encoded once");
    assert.equal(s.hits - s0.hits, 1, "the second request reused it");
    assert.equal(await metric("gemmakit_vision_cache_hits_total"), s.hits);
    assert.equal(await metric("gemmakit_vision_cache_misses_total"), s.misses);
    assert.equal(await metric("gemmakit_vision_cache_entries"), s.entries);
    assert.equal(await metric("gemmakit_vision_cache_bytes"), s.bytes);
    assert.ok(s.bytes > 0);
    assert.equal(await metric("gemmakit_vision_cache_max_bytes"), s.maxBytes);
    const health = await (await app.request("/health")).json();
    assert.deepEqual(health.vision_cache, {
      hits: s.hits,
      misses: s.misses,
      evictions: s.evictions,
      entries: s.entries,
      bytes: s.bytes,
      max_bytes: s.maxBytes,
    });
    // A text-only model has no cache: nothing in /metrics, null in /health.
    using text = await loadModel(`${ROOT}tests/fixtures/gemma3-text-mixed`, { backend: "cpu" });
    const plain = createApp({ model: text, modelId: "t" });
    assert.doesNotMatch(await (await plain.request("/metrics")).text(), /vision_cache/);
    assert.equal((await (await plain.request("/health")).json()).vision_cache, null);
  },
});

Deno.test({
  name: `video errors: clear 4xx before anything streams, and the next request is served${suffix}`,
  ignore: !!noFfmpeg,
  fn: async () => {
    const before = videoTemps();
    const expect = async (r: Response, status: number, code: string | null, message?: RegExp) => {
      const text = await r.text();
      assert.equal(r.status, status, text);
      const e = JSON.parse(text).error;
      assert.equal(e.code, code, text);
      if (message) assert.match(e.message, message);
    };
    // Not a container at all: refused by its first bytes.
    await expect(await ask([video(dataUrl(new TextEncoder().encode("just some text")))]), 400, "invalid_video");
    // An MP4 cut in half: ffmpeg's failure, as the library's typed VideoError, even when streaming.
    await expect(
      await ask([video(dataUrl(MP4.slice(0, MP4.length >> 1)))], { ...FOUR, stream: true }),
      400,
      "invalid_video",
      /could not read the video|truncated/,
    );
    // Every frame (the checkpoint samples none): 40 frames are over the 1024-token context.
    await expect(await ask([video(dataUrl(MP4))], { stream: true }), 400, "context_length_exceeded");
    await expect(
      await ask([video(dataUrl(MP4))], { media_io_kwargs: { video: { num_frames: 65 } } }),
      400,
      null,
      /num_frames/,
    );
    await expect(
      await ask([video(dataUrl(MP4)), video(dataUrl(MP4)), video(dataUrl(MP4))]),
      400,
      null,
      /at most 2 videos/,
    );
    await expect(await ask([video("https://example.com/v.mp4")]), 400, "remote_videos_disabled");
    await expect(await ask([video("file:///etc/passwd")]), 400, "invalid_video_url");
    const small = createApp({ model, modelId: "g4-vision-tiny", limits: { maxVideoBytes: 1000 } });
    await expect(await ask([video(dataUrl(MP4))], FOUR, small), 413, "video_too_large");
    // A model that takes no video.
    const noVideo = createApp({ model, modelId: "g4-vision-tiny", acceptsVideo: false });
    await expect(await ask([video(dataUrl(MP4))], FOUR, noVideo), 400, "videos_not_supported");
    assert.equal((await ask([video(dataUrl(MP4))], FOUR)).status, 200);
    assert.deepEqual(await leftVideoTemps(before), []);
  },
});

Deno.test({
  name: `http(s) video URLs when the operator allows them, within the byte limit${suffix}`,
  ignore: !!noFfmpeg,
  fn: async () => {
    await using server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen() {} },
      () => new Response(MP4, { headers: { "content-type": "video/mp4" } }),
    );
    const url = `http://127.0.0.1:${server.addr.port}/clip.mp4`;
    // A loopback server is refused as any private address is, with the one uniform message...
    const strict = createApp({ model, modelId: "g4-vision-tiny", remoteVideos: { allow: true } });
    const refused = await (await ask([video(url)], FOUR, strict)).json();
    assert.match(refused.error.message, /the URL could not be fetched \(it is not public/);
    // ...and taken when a test allowlists its address.
    const allowed = { allow: true, unsafeAllowAddresses: ["127.0.0.1"] };
    const remote = createApp({ model, modelId: "g4-vision-tiny", remoteVideos: allowed });
    const r = await ask([video(url)], FOUR, remote);
    assert.equal(r.status, 200, await r.clone().text());
    const local = await (await ask([video(dataUrl(MP4))], FOUR)).json();
    assert.equal((await r.json()).choices[0].message.content, local.choices[0].message.content);
    const tight = createApp({
      model,
      modelId: "g4-vision-tiny",
      remoteVideos: allowed,
      limits: { maxVideoBytes: 1000 },
    });
    const big = await ask([video(url)], FOUR, tight);
    assert.equal(big.status, 413);
    assert.equal((await big.json()).error.code, "video_too_large");
  },
});

Deno.test({ name: "dispose the video model", ignore: !!noFfmpeg, fn: () => model?.dispose() });
