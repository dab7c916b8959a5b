/**
 * Gemma 4 images through the Model API on the tiny fixture (tests/fixtures/make_gemma4_vision_fixtures.py): image
 * parts in messages (decoded and preprocessed by src/vision), the vision-encoder cache (a second turn about the same
 * image does not run the tower again, and gives what an uncached model gives; eviction frees device memory; Gemma 3
 * uses it too), and bad input (media to a text-only checkpoint, more media than the context holds), after which the
 * next request is served.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../src/models/load.ts";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { ContextLengthError } from "../../src/errors.ts";
import { ImageInputError } from "../../src/errors.ts";
import { parseGemma4VisionConfig } from "../../src/models/gemma4/vision_config.ts";
import { VisionCache } from "../../src/runtime/vision_cache.ts";
import type { ChatMessage } from "../../src/tokenizer/chat_template.ts";
import { G4_VISION_FIXTURE, imageBatch, loadG4Expected } from "./gemma4_vision_fixture.ts";
import { encodeGemma4MediaPrompt } from "../../src/models/gemma4/media.ts";
import { Gemma4ImageProcessorConfig, Gemma4VideoProcessorConfig } from "../../src/models/gemma4/processor.ts";

const IMAGE = `${G4_VISION_FIXTURE}/landscape.png`;
const GREEDY = { maxTokens: 6, temperature: 0 };
/** The vision-cache tests prefill every turn from the start: reusing the KV cache past an image skips the encoder
 * and the cache alike (what the session tests check). */
const FULL_PREFILL = { ...GREEDY, reusePrefix: false };
const turn1: ChatMessage[] = [{
  role: "user",
  content: [{ type: "image", path: IMAGE }, { type: "text", text: "What is shown here?" }],
}];
const turn2 = (reply: string): ChatMessage[] => [
  ...turn1,
  { role: "assistant", content: reply },
  { role: "user", content: "And the colours?" },
];

Deno.test("gemma4 vision: an image prompt expands and preprocesses as transformers' processor does", async () => {
  const e = loadG4Expected();
  using model = await loadModel(G4_VISION_FIXTURE, { backend: "cpu", maxContext: 512 });
  assert.ok(model.supportsImages && model.supportsVideo);
  const config = parseGemma4VisionConfig(JSON.parse(Deno.readTextFileSync(`${G4_VISION_FIXTURE}/config.json`)));
  const proc = JSON.parse(Deno.readTextFileSync(`${G4_VISION_FIXTURE}/processor_config.json`));
  const support = {
    kind: "gemma4" as const,
    config,
    image: Gemma4ImageProcessorConfig.fromPreprocessorConfig({}, proc),
    video: Gemma4VideoProcessorConfig.fromProcessorConfig(proc, {}),
  };
  const chat = { addGenerationPrompt: true };
  const two: ChatMessage[] = [{
    role: "user",
    content: [
      { type: "image", path: IMAGE },
      { type: "image", path: `${G4_VISION_FIXTURE}/portrait.png` },
      { type: "text", text: "What is shown here?" },
    ],
  }];
  const { ids, media } = await encodeGemma4MediaPrompt(model.tokenizer, two, chat, support);
  assert.deepEqual(ids, e.two_images.input_ids);
  assert.equal(media.images!.count, 2);
  const want = imageBatch(["landscape", "portrait"]);
  assert.deepEqual(Array.from(media.images!.positionIds), Array.from(want.positionIds));
  let d = 0;
  for (let i = 0; i < want.pixelValues.length; i++) {
    d = Math.max(d, Math.abs(media.images!.pixelValues[i] - want.pixelValues[i]));
  }
  assert.ok(d < 2e-2, `pixel values differ from transformers' by ${d}`);
  const r = await model.generate({ messages: turn1 }, { ...GREEDY, maxTokens: e.one_image.greedy.max_new_tokens });
  assert.equal(r.promptTokens, e.one_image.input_ids.length);
  assert.ok(r.tokens.length > 0);
});

Deno.test("gemma4 vision cache: the second turn about the same image does not re-run the encoder", async () => {
  using model = await loadModel(G4_VISION_FIXTURE, { backend: "cpu", maxContext: 512 });
  using uncached = await loadModel(G4_VISION_FIXTURE, { backend: "cpu", maxContext: 512, visionCacheBytes: 0 });
  const cache = model.visionCache!;
  let encodes = 0;
  // Count tower passes through the cache's encode callback.
  const lookup = cache.lookup.bind(cache);
  cache.lookup = (keys, encode) => lookup(keys, (missing) => (encodes++, encode(missing)));
  const a = await model.generate({ messages: turn1 }, GREEDY);
  assert.equal(encodes, 1);
  assert.deepEqual({ ...model.visionCacheStats(), bytes: 0 }, {
    hits: 0,
    misses: 1,
    evictions: 0,
    entries: 1,
    bytes: 0,
    maxBytes: 256 * 1024 * 1024,
  });
  assert.ok(model.visionCacheStats()!.bytes > 0);
  const b = await model.generate({ messages: turn2(a.text) }, FULL_PREFILL);
  assert.equal(encodes, 1, "the second turn encoded the image again");
  assert.equal(model.visionCacheStats()!.hits, 1);
  // The cached soft tokens give exactly what a fresh encode gives.
  const a2 = await uncached.generate({ messages: turn1 }, GREEDY);
  const b2 = await uncached.generate({ messages: turn2(a2.text) }, FULL_PREFILL);
  assert.deepEqual(a.tokens, a2.tokens);
  assert.deepEqual(b.tokens, b2.tokens);
  assert.equal(uncached.visionCacheStats()!.entries, 0);
  assert.equal(uncached.visionCacheStats()!.misses, 2);
});

Deno.test("vision cache: least recently used out, bounded by bytes, evicted tensors freed", () => {
  using backend = Backend.open({ backend: "cpu" });
  const before = backend.memoryStats().inUse;
  const cache = new VisionCache(3 * 64 * 4);
  const make = (v: number) => () => [Tensor.fromArray(backend, new Float32Array(64).fill(v), [64])];
  for (const k of ["a", "b", "c"]) cache.lookup([k], make(1)).commit();
  assert.equal(cache.stats().bytes, 3 * 256);
  cache.lookup(["a"], make(2)).commit(); // a is now the most recent
  cache.lookup(["d"], make(3)).commit(); // evicts b
  assert.deepEqual(cache.lookup(["a", "c", "d"], () => []).tensors.length, 3);
  assert.equal(cache.stats().evictions, 1);
  assert.equal(cache.stats().entries, 3);
  assert.equal(backend.memoryStats().inUse - before, 3 * 256);
  // The same key twice in one prompt is encoded once; a tensor larger than the bound is used, then freed.
  let n = 0;
  const big = cache.lookup(["e", "e"], () => (n++, [Tensor.empty(backend, [4096])]));
  assert.equal(n, 1);
  assert.equal(big.tensors[0], big.tensors[1]);
  big.commit();
  assert.equal(backend.memoryStats().inUse - before, 3 * 256);
  cache.dispose();
  assert.equal(backend.memoryStats().inUse, before);
});

Deno.test("gemma3 vision cache: a repeated image is a hit, with the same output", async () => {
  const dir = new URL("../fixtures/gemma3-vision-tiny", import.meta.url).pathname;
  using model = await loadModel(dir, { backend: "cpu" });
  const msgs: ChatMessage[] = [{
    role: "user",
    content: [{ type: "image", path: `${dir}/square.png` }, { type: "text", text: "hi" }],
  }];
  const a = await model.generate({ messages: msgs }, GREEDY);
  const b = await model.generate({ messages: msgs }, FULL_PREFILL);
  assert.equal(a.text, b.text);
  assert.deepEqual([model.visionCacheStats()!.misses, model.visionCacheStats()!.hits], [1, 1]);
});

Deno.test("gemma4 vision bad input: media to a text-only checkpoint, more media than the context holds", async () => {
  const textOnly = new URL("../fixtures/gemma4-text-e", import.meta.url).pathname;
  {
    using model = await loadModel(textOnly, { backend: "cpu" });
    await assert.rejects(model.generate({ messages: turn1 }, GREEDY), ImageInputError);
    await assert.rejects(
      model.generate({ messages: [{ role: "user", content: [{ type: "video", path: "x.mp4" }] }] }, GREEDY),
      ImageInputError,
    );
    const ok = await model.generate({ messages: [{ role: "user", content: "hello" }] }, GREEDY);
    assert.equal(ok.completionTokens, GREEDY.maxTokens);
  }
  // Two images are 160 prompt tokens: over a 128-token context.
  using model = await loadModel(G4_VISION_FIXTURE, { backend: "cpu", maxContext: 128 });
  const two: ChatMessage[] = [{
    role: "user",
    content: [
      { type: "image", path: IMAGE },
      { type: "image", path: `${G4_VISION_FIXTURE}/portrait.png` },
      { type: "text", text: "Compare." },
    ],
  }];
  await assert.rejects(model.generate({ messages: two }, GREEDY), ContextLengthError);
  assert.equal(model.visionCacheStats()!.misses, 0, "the tower ran for a prompt that cannot fit");
  const ok = await model.generate({ messages: turn1 }, { ...GREEDY, maxTokens: 4 });
  assert.equal(ok.completionTokens, 4);
});

Deno.test("generate --image runs on the tiny Gemma 4 multimodal fixture", async () => {
  const ROOT = new URL("../../", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--config",
      `${ROOT}deno.json`,
      `${ROOT}src/cli/generate.ts`,
      "--model",
      G4_VISION_FIXTURE,
      "--image",
      IMAGE,
      "--prompt",
      "Describe",
      "--max-tokens",
      "5",
      "--temperature",
      "0",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { GEMMAKIT_BACKEND: "cpu" },
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.match(stderr, /prompt \d+ tokens/);
});
