/**
 * Gemma 4's vision tower from a llama.cpp mmproj GGUF: tests/fixtures/make_mmproj_fixtures.py ran llama.cpp's own
 * converter (the pinned source) on the tiny Gemma4ForConditionalGeneration checkpoint with --mmproj. The tower and
 * embedder loaded from that file, joined to the checkpoint's text model, must give transformers' soft tokens and
 * image/video-prompt logits (the fixture's own references, tests/models/gemma4_vision_parity_test.ts).
 *
 * Tolerance: the converter stored every tensor of the file as f32 (expected.json's not_f32 is empty; the patch
 * embedding only permuted, the clip bounds only reshaped, both undone exactly), so the weights are bit-identical
 * to the checkpoint's and the bound is the safetensors parity test's, 1e-4.
 *
 * The last test loads both halves of the pair as files (model-f32.gguf through the Gemma 4 text GGUF reader, the
 * family's GGUF path); only the tokenizer is the checkpoint's, as the tiny BPE vocabulary is written by the converter
 * as a "gpt2" one that the Gemma 4 GGUF tokenizer does not read.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { openGguf } from "../../src/formats/gguf.ts";
import { readConfig, readOptionalJson } from "../../src/models/common/config.ts";
import { loadGemma4Text } from "../../src/models/gemma4/load.ts";
import {
  gemma4VisionConfigFromMmproj,
  loadGemma4MmprojParts,
  loadGemma4MmprojVision,
} from "../../src/models/gemma4/mmproj.ts";
import { Gemma4Multimodal, type Gemma4PromptMedia } from "../../src/models/gemma4/multimodal.ts";
import { Gemma4ImageProcessorConfig } from "../../src/models/gemma4/processor.ts";
import { Model, type ModelParts } from "../../src/generate/model.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { parseGemma4VisionConfig } from "../../src/models/gemma4/vision_config.ts";
import { VisionCache } from "../../src/runtime/vision_cache.ts";
import { MmprojError } from "../../src/errors.ts";
import { loadGemma4GgufParts } from "../../src/models/gemma4/family.ts";
import { fixtureTensor, G4_VISION_FIXTURE, imageBatch, loadG4Expected, promptMedia } from "./gemma4_vision_fixture.ts";

const DIR = new URL("../fixtures/gemma4-vision-gguf", import.meta.url).pathname;
const MMPROJ = `${DIR}/mmproj-gemma4-f32.gguf`;
const GEMMA3_MMPROJ = new URL("../fixtures/gemma3-vision-gguf/mmproj-gemma3-f32.gguf", import.meta.url).pathname;
const TOLERANCE = 1e-4;

function maxDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let d = 0;
  for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
  return d;
}

/** What the checkpoint's config.json says the text model gives the projector. */
function textOf() {
  const json = readConfig(G4_VISION_FIXTURE) as Record<string, unknown>;
  const t = json.text_config as Record<string, unknown>;
  return {
    path: G4_VISION_FIXTURE,
    hiddenSize: t.hidden_size as number,
    tokenIds: {
      boi: json.boi_token_id as number,
      eoi: json.eoi_token_id as number,
      image: json.image_token_id as number,
      video: json.video_token_id as number,
      audio: json.audio_token_id as number,
    },
    useBidirectionalAttention: (t.use_bidirectional_attention ?? null) as string | null,
  };
}

/**
 * The one-image chat prompt through a loaded multimodal model: transformers' prompt ids, every position's logits and
 * the first greedy ids (the fixture's record `rec`).
 */
async function checkOneImagePrompt(
  model: Model,
  parts: Pick<ModelParts, "lm" | "media">,
  tokenizer: Tokenizer,
  // deno-lint-ignore no-explicit-any
  rec: any,
): Promise<void> {
  assert.ok(model.supportsImages && model.supportsVideo);
  const messages = [{
    role: "user" as const,
    content: [
      { type: "image" as const, path: `${G4_VISION_FIXTURE}/${rec.image_keys[0]}.png` },
      { type: "text" as const, text: "What is shown here?" },
    ],
  }];
  const encoded = await parts.media!.encode(tokenizer, messages, { addGenerationPrompt: true }, {});
  assert.deepEqual(encoded.ids, rec.input_ids);
  using logits = (parts.lm as Gemma4Multimodal).prefill(encoded.ids, encoded.media as Gemma4PromptMedia, "all");
  const d = maxDiff(logits.toArray(), fixtureTensor("one_image.logits"));
  assert.ok(d <= TOLERANCE, `logits |Δ| ${d.toExponential(2)}`);
  const r = await model.generate({ messages }, { maxTokens: 3, temperature: 0 });
  assert.deepEqual(r.tokens, rec.greedy.ids.slice(0, 3));
}

Deno.test("gemma4 mmproj: the vision config from clip metadata and tensor shapes equals config.json's", () => {
  using mmproj = openGguf(MMPROJ);
  const fromFile = gemma4VisionConfigFromMmproj(mmproj, textOf());
  const fromJson = parseGemma4VisionConfig(readConfig(G4_VISION_FIXTURE));
  assert.deepEqual(fromFile, fromJson);
});

Deno.test("gemma4 mmproj: a Gemma 3 projector, or another width, is an MmprojError naming both files", () => {
  using g3 = openGguf(GEMMA3_MMPROJ);
  assert.throws(() => gemma4VisionConfigFromMmproj(g3, textOf()), (e: unknown) => {
    assert.ok(e instanceof MmprojError && e.kind === "mismatch");
    assert.match(e.message, /type "gemma3", but the model .* is Gemma 4, whose projector type is "gemma4v"/);
    return true;
  });
  using g4 = openGguf(MMPROJ);
  assert.throws(
    () => gemma4VisionConfigFromMmproj(g4, { ...textOf(), hiddenSize: 64 }),
    (e: unknown) => e instanceof MmprojError && /width 32 .* has width 64/.test(e.message),
  );
});

Deno.test("[cpu] gemma4 mmproj (llama.cpp's converter): soft tokens and media-prompt logits match transformers", () => {
  const pair = JSON.parse(Deno.readTextFileSync(`${DIR}/expected.json`));
  assert.deepEqual(pair.not_f32, {});
  const e = loadG4Expected();
  using backend = Backend.open({ backend: "cpu" });
  using mmproj = openGguf(MMPROJ);
  const vision = loadGemma4MmprojVision(backend, mmproj, textOf());
  let text;
  try {
    text = loadGemma4Text(backend, G4_VISION_FIXTURE, { maxContext: 512 });
  } catch (err) {
    vision.dispose();
    throw err;
  }
  using model = new Gemma4Multimodal(text, vision, new VisionCache(0));
  const soft = model.vision.encode(imageBatch(["landscape", "portrait"]));
  try {
    const got = new Float32Array(soft.reduce((s, t) => s + t.size, 0));
    let at = 0;
    for (const t of soft) {
      got.set(t.toArray() as Float32Array, at);
      at += t.size;
    }
    const d = maxDiff(got, fixtureTensor("images.soft_tokens"));
    assert.ok(d <= TOLERANCE, `soft tokens |Δ| ${d.toExponential(2)}`);
  } finally {
    for (const t of soft) t.dispose();
  }
  for (const key of ["one_image", "two_images", "video"] as const) {
    const rec = e[key];
    using logits = model.prefill(rec.input_ids, promptMedia(rec), "all");
    const d = maxDiff(logits.toArray(), fixtureTensor(`${key}.logits`));
    assert.ok(d <= TOLERANCE, `${key}: logits |Δ| ${d.toExponential(2)}`);
  }
});

Deno.test("[cpu] gemma4 mmproj parts: an image prompt end to end (template, processor, tower) gives transformers' logits", async () => {
  const e = loadG4Expected();
  const rec = e.one_image;
  using backend = Backend.open({ backend: "cpu" });
  using mmproj = openGguf(MMPROJ);
  const tokenizer = await Tokenizer.fromFiles(G4_VISION_FIXTURE);
  const pre = readOptionalJson(`${G4_VISION_FIXTURE}/processor_config.json`) ?? {};
  const parts = loadGemma4MmprojParts(
    backend,
    loadGemma4Text(backend, G4_VISION_FIXTURE, { maxContext: 512 }),
    mmproj,
    textOf(),
    {
      processors: { image: Gemma4ImageProcessorConfig.fromPreprocessorConfig({}, pre) },
    },
  );
  using model = new Model({ ...parts, tokenizer, defaults: {} });
  await checkOneImagePrompt(model, parts, tokenizer, rec);
});

Deno.test("[cpu] gemma4 mmproj at f16: soft tokens and image-prompt logits match transformers on the same weights", () => {
  // Every matrix of the file is F16 (the patch embedding too: loaded back to f32 in (py, px, c) order); the script
  // reran transformers with exactly those parameters rounded as stored, so both sides hold the same weights and
  // compute in f32: the f32 bound, 1e-4.
  const dir = new URL("../fixtures/gemma4-vision-gguf-f16", import.meta.url).pathname;
  const want = JSON.parse(Deno.readTextFileSync(`${dir}/expected.json`));
  assert.equal(Object.keys(want.not_f32).length, 16);
  assert.equal(want.not_f32["v.patch_embd.weight"], "F16");
  const e = loadG4Expected();
  using backend = Backend.open({ backend: "cpu" });
  using mmproj = openGguf(`${dir}/mmproj-gemma4-f16.gguf`);
  const vision = loadGemma4MmprojVision(backend, mmproj, textOf());
  let text;
  try {
    text = loadGemma4Text(backend, G4_VISION_FIXTURE, { maxContext: 512 });
  } catch (err) {
    vision.dispose();
    throw err;
  }
  using model = new Gemma4Multimodal(text, vision, new VisionCache(0));
  const soft = model.vision.encode(imageBatch(["landscape", "portrait"]));
  try {
    const got = new Float32Array(soft.reduce((s, t) => s + t.size, 0));
    let at = 0;
    for (const t of soft) {
      got.set(t.toArray() as Float32Array, at);
      at += t.size;
    }
    const d = maxDiff(got, want.soft_tokens);
    assert.ok(d <= TOLERANCE, `soft tokens |Δ| ${d.toExponential(2)}`);
  } finally {
    for (const t of soft) t.dispose();
  }
  using logits = model.prefill(e.one_image.input_ids, promptMedia(e.one_image));
  const got = logits.toArray();
  const d = maxDiff(got, want.one_image.last_logits);
  assert.ok(d <= TOLERANCE, `one_image last logits |Δ| ${d.toExponential(2)}`);
  assert.equal(got.indexOf(Math.max(...got)), want.one_image.argmax);
});

Deno.test("[cpu] gemma4 text GGUF + mmproj through the family's GGUF path: transformers' image-prompt logits and greedy ids", async () => {
  const rec = loadG4Expected().one_image;
  using backend = Backend.open({ backend: "cpu" });
  using gguf = openGguf(`${DIR}/model-f32.gguf`);
  using mmproj = openGguf(MMPROJ);
  const tokenizer = await Tokenizer.fromFiles(G4_VISION_FIXTURE);
  // The checkpoint's processor settings (its reference ids used them; a GGUF pair carries none: Gemma 4's shipped).
  const pre = readOptionalJson(`${G4_VISION_FIXTURE}/processor_config.json`) ?? {};
  const parts = loadGemma4GgufParts(backend, gguf, `${DIR}/model-f32.gguf`, tokenizer, {
    mmproj,
    maxContext: 512,
    processors: { image: Gemma4ImageProcessorConfig.fromPreprocessorConfig({}, pre) },
  });
  using model = new Model(parts);
  await checkOneImagePrompt(model, parts, tokenizer, rec);
});
