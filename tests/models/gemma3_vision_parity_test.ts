/**
 * Gemma 3 with images against transformers: the tiny random Gemma3ForConditionalGeneration checkpoint that
 * tests/fixtures/make_gemma3_vision_fixtures.py wrote, fed transformers' own pixel values (preprocessing is
 * tested on its own in tests/vision). Checked: the SigLIP tower's last_hidden_state and the projector's
 * image features, the logits of every position of a one-image prompt and the last position of a two-image
 * and a pan-and-scan prompt (within 1e-4 on CPU in f32), and each prompt's greedy continuation (prefill with
 * images, then the text model's decode steps). The CUDA rows run the same checks when a GPU answers.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { argmax } from "../../src/ops/reduce.ts";
import {
  type Gemma3Multimodal,
  imageSpans,
  loadGemma3Multimodal,
  type PromptImages,
} from "../../src/models/gemma3/multimodal.ts";
import { cudaOrSkip } from "../helpers.ts";
import { loadExpected, promptImages, VISION_FIXTURE } from "./gemma3_vision_fixture.ts";

const TOLERANCE = 1e-4;

function expectClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>, tol = TOLERANCE) {
  assert.equal(got.length, want.length, `${label}: ${got.length} values, expected ${want.length}`);
  let diff = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= diff)) [diff, at] = [d, i];
  }
  assert.ok(diff <= tol, `${label}: |Δ| ${diff.toExponential(2)} at ${at} exceeds ${tol}`);
}

/** Prefill with images, then greedy decode steps one at a time. */
function greedy(model: Gemma3Multimodal, prompt: number[], images: PromptImages, steps: number) {
  const backend = model.backend;
  using ws = new Workspace(backend);
  using logits = Tensor.empty(backend, [1, model.vocabSize]);
  using token = Tensor.empty(backend, [1], "i32");
  using position = Tensor.empty(backend, [1], "i32");
  const tokens: number[] = [];
  const stepLogits: Float32Array[] = [];
  {
    using first = model.prefill(prompt, images);
    stepLogits.push(first.toArray() as Float32Array);
    using next = argmax(first);
    tokens.push(next.toArray()[0]);
  }
  for (let i = 1; i < steps; i++) {
    token.write([tokens.at(-1)!]);
    position.write([prompt.length + i - 1]);
    model.decodeStep(token, position, ws, logits);
    stepLogits.push(logits.toArray() as Float32Array);
    using next = argmax(logits);
    tokens.push(next.toArray()[0]);
  }
  return { tokens, stepLogits };
}

Deno.test("imageSpans: each run of image tokens is one group, as token_type_ids → block ids", () => {
  const e = loadExpected();
  for (const rec of [e.one_image, e.two_images, e.pan_and_scan]) {
    const imageId = rec.input_ids[rec.token_type_ids.indexOf(1)];
    const { positions, spanIds } = imageSpans(rec.input_ids, imageId);
    assert.deepEqual(positions, rec.token_type_ids.flatMap((t, i) => (t === 1 ? [i] : [])));
    assert.equal(Math.max(...spanIds), rec.pixel_values_shape[0]);
  }
  assert.deepEqual([...imageSpans([5, 9, 9, 5, 9, 5], 9).spanIds], [0, 1, 1, 0, 2, 0]);
});

const { cuda, skip: cudaSkip } = cudaOrSkip("CUDA Gemma 3 vision parity");
cuda?.dispose();

for (const kind of ["cpu", "cuda"] as const) {
  Deno.test({
    name: `[${kind}] gemma3 vision parity: tower, projector, logits and greedy with images` +
      `${kind === "cuda" && cudaSkip ? " (skipped: no CUDA device)" : ""}`,
    ignore: kind === "cuda" && cudaSkip !== "",
    fn() {
      const e = loadExpected();
      using backend = Backend.open({ backend: kind });
      const model = loadGemma3Multimodal(backend, VISION_FIXTURE, { maxContext: 256 });
      try {
        // The tower and the projector on the one-image prompt's pixels.
        const one = promptImages(e, e.one_image);
        {
          using ws = new Workspace(backend);
          const c = model.visionConfig;
          const pixels = ws.get("px", [1, c.numChannels, c.imageSize, c.imageSize]);
          pixels.write(one.pixelValues);
          const hidden = ws.get("hidden", e.vision.tower_last_hidden_state_shape);
          model.vision.tower(pixels, hidden, ws);
          expectClose("tower last_hidden_state", hidden.toArray(), e.vision.tower_last_hidden_state);
          using features = model.encodeImages(one);
          assert.deepEqual(features.shape, e.vision.image_features_shape);
          expectClose("projector image features", features.toArray(), e.vision.image_features);
        }

        // Every position of the one-image prompt.
        const V = model.vocabSize;
        {
          using all = model.prefill(e.one_image.input_ids, one, "all");
          const got = all.toArray();
          e.one_image.logits!.forEach((row, t) =>
            expectClose(`one image, position ${t}`, got.subarray(t * V, (t + 1) * V), row)
          );
        }

        for (
          const [label, rec] of [["one image", e.one_image], ["two images", e.two_images], [
            "pan and scan",
            e.pan_and_scan,
          ]] as const
        ) {
          const images = promptImages(e, rec);
          const run = greedy(model, rec.input_ids, images, rec.greedy.ids.length);
          expectClose(`${label}: last prompt position`, run.stepLogits[0], rec.last_logits);
          assert.deepEqual(run.tokens, rec.greedy.ids, `${label}: greedy continuation differs`);
          rec.greedy.step_logits.forEach((row, i) => expectClose(`${label}: step ${i}`, run.stepLogits[i], row));
        }
      } finally {
        model.dispose();
      }
      assert.equal(backend.memoryStats().inUse, 0, "model.dispose() must free every weight and cache");
    },
  });
}
