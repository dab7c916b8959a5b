/**
 * Images through the server on the tiny Gemma 3 vision fixture: an OpenAI image_url part (data URL) gives
 * the library's own answer for the same image; errors the library finds once images are decoded and
 * expanded (a broken image, a prompt over the context) keep their status even when streaming.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { encodeBase64, json, ROOT, sseData } from "./helpers.ts";

const DIR = `${ROOT}tests/fixtures/gemma3-vision-tiny`;
const model = await loadModel(DIR, { backend: "cpu", maxContext: 64 });
const app = createApp({ model, modelId: "vision-tiny" });
const square = Deno.readFileSync(`${DIR}/square.png`);
const dataUrl = (bytes: Uint8Array, type = "image/png") => `data:${type};base64,${encodeBase64(bytes)}`;
const ask = (urls: string[], extra: Record<string, unknown> = {}) =>
  app.request(
    "/v1/chat/completions",
    json({
      model: "vision-tiny",
      messages: [{
        role: "user",
        content: [
          { type: "text", text: "Describe" },
          ...urls.map((url) => ({ type: "image_url", image_url: { url } })),
        ],
      }],
      max_tokens: 8,
      temperature: 0,
      ...extra,
    }),
  );

Deno.test("an image_url part gives the library's answer for the same image, streamed or not", async () => {
  const direct = await model.generate({
    messages: [{ role: "user", content: [{ type: "text", text: "Describe" }, { type: "image", bytes: square }] }],
  }, { maxTokens: 8, temperature: 0 });
  const r = await ask([dataUrl(square)]);
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.choices[0].message.content, direct.text);
  assert.equal(body.usage.prompt_tokens, direct.promptTokens, "the image's soft tokens are counted");
  const streamed = (await sseData(await ask([dataUrl(square)], { stream: true }))).slice(0, -1).map((e) =>
    JSON.parse(e)
  );
  assert.equal(streamed.map((c) => c.choices[0].delta.content ?? "").join(""), direct.text);
});

Deno.test("image errors found by the library: clear 400s, also for streams, and the next request is served", async () => {
  // Over the context only once each image becomes its soft tokens: refused before the stream's 200.
  const over = await ask([dataUrl(square), dataUrl(square)], { stream: true });
  assert.equal(over.status, 400);
  const err = (await over.json()).error;
  assert.equal(err.code, "context_length_exceeded");
  assert.match(err.message, /maximum context length is \d+ tokens, but the prompt is \d+ tokens/);
  // A PNG signature with nothing behind it: the decoder's typed error, named.
  const broken = await ask([dataUrl(square.slice(0, 40))]);
  assert.equal(broken.status, 400);
  const b = (await broken.json()).error;
  assert.equal(b.code, "invalid_image");
  assert.match(b.message, /png|PNG|truncated|image/);
  assert.equal((await ask([dataUrl(square)])).status, 200);
});

Deno.test({ name: "dispose the vision model", fn: () => model.dispose() });
