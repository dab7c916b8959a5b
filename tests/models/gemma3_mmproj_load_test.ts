/**
 * A Gemma 3 text GGUF with its vision projector (mmproj) file through the library's entry points: the model
 * parts the family builds for the pair take an image prompt end to end (chat template, image processor, prefill
 * with the tower) and give transformers' tokens and logits; loadModel finds the mmproj beside the model or takes
 * the one named, and refuses — with a typed MmprojError naming the files — several candidates, a projector of
 * another family, a GGUF that is not a projector, and an mmproj with a checkpoint directory. A text-only GGUF
 * refuses images with a hint about --mmproj.
 *
 * The tiny fixture's text GGUF carries a "gpt2" vocabulary (the converter writes one for a checkpoint without
 * tokenizer.model), which gemmakit's GGUF tokenizer does not read; the end-to-end test therefore gives the Model
 * the checkpoint's own tokenizer.json (the same vocabulary), and the loadModel tests check what happens before
 * the tokenizer is built.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Backend } from "../../src/runtime/backend.ts";
import { openGguf } from "../../src/formats/gguf.ts";
import { Model } from "../../src/generate/model.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { loadModel } from "../../src/models/load.ts";
import { findMmproj } from "../../src/models/common/mmproj.ts";
import { loadGemma3Gguf } from "../../src/models/gemma3/load.ts";
import { loadGemma3MmprojParts } from "../../src/models/gemma3/mmproj.ts";
import type { Gemma3Multimodal, PromptImages } from "../../src/models/gemma3/multimodal.ts";
import { gemma3GgufTokenizer } from "../../src/models/gemma3/gguf_tokenizer.ts";
import { realGguf270m } from "./real_gguf.ts";
import { ImageInputError, MmprojError } from "../../src/errors.ts";
import { loadExpected, VISION_FIXTURE } from "./gemma3_vision_fixture.ts";

const DIR = new URL("../fixtures/gemma3-vision-gguf", import.meta.url).pathname;
const MODEL = join(DIR, "model-f32.gguf");
const MMPROJ = join(DIR, "mmproj-gemma3-f32.gguf");
const GEMMA4_MMPROJ = new URL("../fixtures/gemma4-vision-gguf/mmproj-gemma4-f32.gguf", import.meta.url).pathname;

/** A temporary folder holding links to `files` (name → target). */
function folder(files: Record<string, string>): string {
  const dir = Deno.makeTempDirSync({ prefix: "gemmakit-mmproj-" });
  for (const [name, target] of Object.entries(files)) Deno.symlinkSync(target, join(dir, name));
  return dir;
}

Deno.test("[cpu] gemma3 GGUF + mmproj: an image prompt end to end gives transformers' ids and logits", async () => {
  const e = loadExpected();
  const pair = JSON.parse(Deno.readTextFileSync(join(DIR, "expected.json")));
  const rec = e.one_image;
  using backend = Backend.open({ backend: "cpu" });
  using text = openGguf(MODEL);
  using mmproj = openGguf(MMPROJ);
  const tokenizer = await Tokenizer.fromFiles(VISION_FIXTURE);
  const parts = loadGemma3MmprojParts(backend, text, mmproj);
  using model = new Model({ ...parts, tokenizer, defaults: {} });
  assert.ok(model.supportsImages);
  const messages = [{
    role: "user" as const,
    content: [{ type: "image" as const, path: join(VISION_FIXTURE, rec.image_keys[0]) }, {
      type: "text" as const,
      text: "Describe",
    }],
  }];
  // The family's prompt layout: transformers' ids, and its pixel values (the image processor's, to f32 rounding).
  const encoded = await parts.media!.encode(tokenizer, messages, { addGenerationPrompt: true }, {});
  assert.deepEqual(encoded.ids, rec.input_ids);
  const pixels = (encoded.media as { pixelValues: Float32Array }).pixelValues;
  const want = e.images[rec.image_keys[0]].pixel_values;
  assert.ok(want.every((v, i) => Math.abs(v - pixels[i]) <= 1e-5), "pixel values");
  {
    using logits = (parts.lm as Gemma3Multimodal).prefill(encoded.ids, encoded.media as PromptImages);
    const got = logits.toArray();
    const d = pair.one_image.last_logits.reduce(
      (m: number, v: number, i: number) => Math.max(m, Math.abs(v - got[i])),
      0,
    );
    assert.ok(d <= 1e-4, `last logits |Δ| ${d}`); // the bound of tests/models/gemma3_mmproj_test.ts
  }
  // And through Model.generate: the greedy first token is transformers' argmax.
  const r = await model.generate({ messages }, { maxTokens: 1, temperature: 0 });
  assert.equal(r.promptTokens, rec.input_ids.length);
  assert.equal(r.tokens[0], pair.one_image.argmax);
});

Deno.test("findMmproj: the one mmproj*.gguf beside the model; none; several is an MmprojError listing them", () => {
  const one = folder({ "model.gguf": MODEL, "mmproj-model-f16.gguf": MMPROJ, "notes.gguf": MMPROJ });
  const none = folder({ "model.gguf": MODEL });
  const two = folder({ "model.gguf": MODEL, "mmproj-a.gguf": MMPROJ, "MMPROJ-b.GGUF": MMPROJ });
  try {
    assert.equal(findMmproj(join(one, "model.gguf")), join(one, "mmproj-model-f16.gguf"));
    assert.equal(findMmproj(join(none, "model.gguf")), undefined);
    assert.throws(() => findMmproj(join(two, "model.gguf")), (err: unknown) => {
      assert.ok(err instanceof MmprojError);
      assert.equal(err.kind, "ambiguous");
      assert.deepEqual(err.files.candidates, [join(two, "MMPROJ-b.GGUF"), join(two, "mmproj-a.gguf")]);
      assert.match(err.message, /MMPROJ-b\.GGUF, mmproj-a\.gguf/);
      assert.match(err.hint!, /--mmproj FILE/);
      return true;
    });
  } finally {
    for (const d of [one, none, two]) Deno.removeSync(d, { recursive: true });
  }
});

Deno.test("loadModel: mmproj errors name the files (ambiguous, another family's, not a projector, HF, as the model)", async () => {
  const two = folder({ "model.gguf": MODEL, "mmproj-a.gguf": MMPROJ, "mmproj-b.gguf": MMPROJ });
  try {
    const reject = (promise: Promise<unknown>, kind: string, pattern: RegExp) =>
      assert.rejects(promise, (err: unknown) => {
        assert.ok(err instanceof MmprojError, String(err));
        assert.equal(err.kind, kind);
        assert.match(err.message, pattern);
        return true;
      });
    await reject(loadModel(join(two, "model.gguf"), { backend: "cpu" }), "ambiguous", /2 vision projector files/);
    await reject(
      loadModel(MODEL, { backend: "cpu", mmproj: GEMMA4_MMPROJ }),
      "mismatch",
      /mmproj-gemma4-f32\.gguf is a vision projector of type "gemma4v", but the model .*model-f32\.gguf is Gemma 3/,
    );
    await reject(
      loadModel(MODEL, { backend: "cpu", mmproj: MODEL }),
      "not_mmproj",
      /general\.architecture is "gemma3"/,
    );
    await reject(loadModel(VISION_FIXTURE, { backend: "cpu", mmproj: MMPROJ }), "unsupported", /checkpoint directory/);
    await reject(loadModel(MMPROJ, { backend: "cpu" }), "projector_as_model", /is a vision projector \(mmproj\) file/);
  } finally {
    Deno.removeSync(two, { recursive: true });
  }
});

Deno.test("[cpu] a text-only Gemma 3 GGUF refuses images with a hint about --mmproj", async () => {
  using backend = Backend.open({ backend: "cpu" });
  const tokenizer = await Tokenizer.fromFiles(VISION_FIXTURE);
  using model = new Model({
    lm: loadGemma3Gguf(backend, MODEL),
    tokenizer,
    defaults: {},
    noMediaHint: "give its vision projector file with --mmproj FILE",
  });
  await assert.rejects(
    model.generate({
      messages: [{ role: "user", content: [{ type: "image", path: join(VISION_FIXTURE, "square.png") }] }],
    }, { maxTokens: 1 }),
    (err: unknown) => err instanceof ImageInputError && /--mmproj/.test(err.message),
  );
});

Deno.test("gemma3 GGUF tokenizer with a projector: <image_soft_token> (past llama.cpp's vocabulary) is one token", async () => {
  // llama.cpp's Gemma 3 GGUFs carry the 262,144 SentencePiece pieces only; transformers' tokenizer.json adds the
  // image soft token as id 262144, which the prompt layout repeats once per soft token.
  const { path, skip } = await realGguf270m();
  if (skip) return console.log(`skipped: ${skip}`);
  using gguf = openGguf(path!);
  const text = "<start_of_image><image_soft_token><image_soft_token><end_of_image> hi";
  assert.ok(gemma3GgufTokenizer(gguf).encode(text, { addSpecialTokens: false }).length > 5);
  const t = gemma3GgufTokenizer(gguf, { imageTokenId: 262144 });
  assert.deepEqual(t.encode(text, { addSpecialTokens: false }).slice(0, 4), [255999, 262144, 262144, 256000]);
  assert.equal(t.idToToken(262144), "<image_soft_token>");
  assert.equal(t.decode([262144], { skipSpecialTokens: true }), "");
});
