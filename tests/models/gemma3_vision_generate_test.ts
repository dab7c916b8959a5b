/**
 * Images through the whole API on the tiny Gemma3ForConditionalGeneration fixture: loadModel picks the
 * multimodal model, messages carry image parts (path, bytes, base64), the prompt is expanded as
 * Gemma3Processor expands it, and greedy generation reproduces transformers' continuation. Bad input gets
 * typed errors and leaves the model usable: an image for a text-only checkpoint, more images than the
 * context holds, placeholders that do not match the images, an image part without a source.
 */
import assert from "node:assert/strict";
import { ContextLengthError } from "../../src/errors.ts";
import { loadModel } from "../../src/models/load.ts";
import { ImageInputError } from "../../src/errors.ts";
import type { Model } from "../../src/generate/model.ts";
import type { ChatMessage } from "../../src/tokenizer/chat_template.ts";
import { loadExpected, promptImages, VISION_FIXTURE } from "./gemma3_vision_fixture.ts";

const TEXT_FIXTURE = new URL("../fixtures/gemma3-text-mixed", import.meta.url).pathname;
const img = (name: string) => `${VISION_FIXTURE}/${name}`;
const encodeBase64 = (bytes: Uint8Array) => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));

async function rejects<T extends Error>(p: Promise<unknown>, type: abstract new (...a: never[]) => T, re: RegExp) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e}`);
    assert.match((e as Error).message, re);
    return;
  }
  assert.fail(`expected ${type.name}, nothing was thrown`);
}

async function greedyIds(model: Model, messages: ChatMessage[], n: number) {
  const r = await model.generate({ messages }, { maxTokens: n, temperature: 0 });
  return r;
}

Deno.test("gemma3 vision: generate with image parts reproduces transformers' greedy continuation", async () => {
  const e = loadExpected();
  using model = await loadModel(VISION_FIXTURE, { backend: "cpu", maxContext: 256 });
  assert.equal(model.supportsImages, true);
  const stops = new Set(model.tokenizer.stopTokenIds);
  const upToStop = (ids: number[]) => {
    const i = ids.findIndex((id) => stops.has(id));
    return i < 0 ? ids : ids.slice(0, i + 1);
  };

  const one = await greedyIds(model, [
    { role: "user", content: [{ type: "image", path: img("landscape.png") }, { type: "text", text: "Describe" }] },
  ], e.one_image.greedy.ids.length);
  assert.equal(one.promptTokens, e.one_image.input_ids.length);
  assert.deepEqual(one.tokens, upToStop(e.one_image.greedy.ids));

  // Two images in two user turns; bytes and base64 sources.
  const portrait = Deno.readFileSync(img("portrait.png"));
  const two = await greedyIds(model, [
    {
      role: "user",
      content: [{ type: "image", bytes: Deno.readFileSync(img("landscape.png")) }, {
        type: "text",
        text: "What is this?",
      }],
    },
    { role: "assistant", content: "The keeper." },
    {
      role: "user",
      content: [{ type: "text", text: "And this one?" }, { type: "image", base64: encodeBase64(portrait) }],
    },
  ], e.two_images.greedy.ids.length);
  assert.equal(two.promptTokens, e.two_images.input_ids.length);
  assert.deepEqual(two.tokens, upToStop(e.two_images.greedy.ids));
});

Deno.test("gemma3 vision: prompt ids are the processor's expansion, pixels within one 8-bit level", async () => {
  const e = loadExpected();
  using model = await loadModel(VISION_FIXTURE, { backend: "cpu", maxContext: 256 });
  const { encodeImagePrompt, processorConfigFrom } = await import("../../src/models/gemma3/media.ts");
  const { parseGemma3VisionConfig } = await import("../../src/models/gemma3/vision_config.ts");
  const config = parseGemma3VisionConfig(JSON.parse(Deno.readTextFileSync(`${VISION_FIXTURE}/config.json`)));
  const processor = processorConfigFrom(
    JSON.parse(Deno.readTextFileSync(`${VISION_FIXTURE}/processor_config.json`)).image_processor,
    JSON.parse(Deno.readTextFileSync(`${VISION_FIXTURE}/processor_config.json`)),
    config,
  );
  const r = await encodeImagePrompt(
    model.tokenizer,
    [
      { role: "user", content: [{ type: "image", path: img("landscape.png") }, { type: "text", text: "Describe" }] },
    ],
    { addGenerationPrompt: true },
    { config, processor },
  );
  assert.deepEqual(r.ids, e.one_image.input_ids);
  assert.equal(r.images.count, 1);
  // Pixel values from our decoder + processor, against transformers' (one 8-bit level of rounding allowed).
  const want = promptImages(e, e.one_image).pixelValues;
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(r.images.pixelValues[i] - want[i]));
  assert.ok(worst <= 2 / 255 + 1e-6, `pixel values differ by ${worst}`);
});

Deno.test("gemma3 vision: bad image input is a typed error and the model stays usable", async () => {
  const describe: ChatMessage[] = [
    { role: "user", content: [{ type: "image", path: img("square.png") }, { type: "text", text: "Describe" }] },
  ];
  {
    using text = await loadModel(TEXT_FIXTURE, { backend: "cpu", maxContext: 128 });
    assert.equal(text.supportsImages, false);
    await rejects(text.generate({ messages: describe }, { maxTokens: 2 }), ImageInputError, /no vision tower/);
    const ok = await text.generate({ messages: [{ role: "user", content: "hi" }] }, { maxTokens: 2, temperature: 0 });
    assert.equal(ok.tokens.length, 2);
  }
  // 40 tokens of context: one image (16 soft tokens + markers) fits, three do not.
  using model = await loadModel(VISION_FIXTURE, { backend: "cpu", maxContext: 48 });
  const three: ChatMessage[] = [{
    role: "user",
    content: [
      { type: "image", path: img("square.png") },
      { type: "image", path: img("portrait.png") },
      { type: "image", path: img("landscape.png") },
      { type: "text", text: "Compare" },
    ],
  }];
  await rejects(model.generate({ messages: three }, { maxTokens: 2 }), ContextLengthError, /context limit/);
  await rejects(
    model.generate({
      messages: [{
        role: "user",
        content: [{ type: "image", path: img("square.png") }, { type: "text", text: "and <start_of_image> here" }],
      }],
    }, { maxTokens: 2 }),
    ImageInputError,
    /2 <start_of_image> placeholders but 1 image/,
  );
  await rejects(
    model.generate({ messages: [{ role: "user", content: [{ type: "image" }] }] }, { maxTokens: 2 }),
    ImageInputError,
    /without a source/,
  );
  const ok = await model.generate({ messages: describe }, { maxTokens: 3, temperature: 0 });
  assert.equal(ok.completionTokens, 3);
  assert.equal(model.backend.memoryStats().inUse > 0, true);
});

Deno.test("gemma3 vision: prefill refuses image counts that do not match the placeholders", async () => {
  const e = loadExpected();
  const { loadGemma3Multimodal } = await import("../../src/models/gemma3/multimodal.ts");
  const { Backend } = await import("../../src/runtime/backend.ts");
  using backend = Backend.open({ backend: "cpu" });
  using model = loadGemma3Multimodal(backend, VISION_FIXTURE, { maxContext: 256 });
  const two = promptImages(e, e.two_images);
  assert.throws(() => model.prefill(e.one_image.input_ids, two), ImageInputError);
  assert.throws(() => model.prefill(e.one_image.input_ids), ImageInputError);
  using ok = model.prefill(e.one_image.input_ids, promptImages(e, e.one_image));
  assert.deepEqual(ok.shape, [1, model.vocabSize]);
});
