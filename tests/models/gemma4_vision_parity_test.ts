/**
 * Gemma 4 with images and video against transformers: the tiny random Gemma4ForConditionalGeneration checkpoint
 * that tests/fixtures/make_gemma4_vision_fixtures.py wrote (clipped linears, standardize, 2-D RoPE, per-layer
 * inputs, use_bidirectional_attention "vision"), fed transformers' own pixel values and position ids. Checked: the
 * tower's pooled output and the embedder's soft tokens for two images of different aspect ratios encoded in one
 * batched pass; the logits at every position of a one-image, a two-image and a 3-frame video prompt (within 1e-4
 * on CPU in f32); and each prompt's greedy continuation (prefill with media, then decode steps). The CUDA rows run
 * the same checks when a GPU answers.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { argmax } from "../../src/ops/reduce.ts";
import {
  type Gemma4Multimodal,
  type Gemma4PromptMedia,
  loadGemma4Multimodal,
  mediaSpans,
} from "../../src/models/gemma4/multimodal.ts";
import { cudaOrSkip } from "../helpers.ts";
import { fixtureTensor, G4_VISION_FIXTURE, imageBatch, loadG4Expected, promptMedia } from "./gemma4_vision_fixture.ts";

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

/** Prefill with media, then greedy decode steps one at a time. */
export function greedyG4(model: Gemma4Multimodal, prompt: number[], media: Gemma4PromptMedia, steps: number) {
  const backend = model.backend;
  using ws = new Workspace(backend);
  using logits = Tensor.empty(backend, [1, model.vocabSize]);
  using token = Tensor.empty(backend, [1], "i32");
  using position = Tensor.empty(backend, [1], "i32");
  const tokens: number[] = [];
  const stepLogits: Float32Array[] = [];
  {
    using first = model.prefill(prompt, media);
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

Deno.test("mediaSpans: each run of image or video tokens is one block, as mm_token_type_ids → block ids", () => {
  const e = loadG4Expected();
  const media = [e.token_ids["<|image|>"], e.token_ids["<|video|>"]];
  for (const rec of [e.one_image, e.two_images, e.video]) {
    const spans = mediaSpans(rec.input_ids, media);
    assert.deepEqual([...spans].map((s) => (s > 0 ? 1 : 0)), rec.mm_token_type_ids.map((t) => (t > 0 ? 1 : 0)));
    assert.equal(Math.max(...spans), rec.image_keys.length + rec.video_frames);
  }
  assert.deepEqual([...mediaSpans([5, 9, 9, 5, 8, 9, 5], [9, 8])], [0, 1, 1, 0, 2, 2, 0]);
});

const { cuda, skip: cudaSkip } = cudaOrSkip("CUDA Gemma 4 vision parity");
cuda?.dispose();

for (const kind of ["cpu", "cuda"] as const) {
  Deno.test({
    name: `[${kind}] gemma4 vision parity: tower, embedder, logits and greedy with images and video` +
      `${kind === "cuda" && cudaSkip ? " (skipped: no CUDA device)" : ""}`,
    ignore: kind === "cuda" && cudaSkip !== "",
    fn() {
      const e = loadG4Expected();
      using backend = Backend.open({ backend: kind });
      using model = loadGemma4Multimodal(backend, G4_VISION_FIXTURE, { maxContext: 512, visionCacheBytes: 0 });
      // Two images of different sizes (60 and 66 soft tokens) in one pass.
      const batch = imageBatch(["landscape", "portrait"]);
      assert.deepEqual([e.images.landscape.num_soft_tokens, e.images.portrait.num_soft_tokens], [60, 66]);
      assert.deepEqual(model.vision.softTokenCounts(batch), [60, 66]);
      let tower: Float32Array | undefined;
      model.vision.trace = (name, _layer, t) => {
        if (name === "pooled") tower = t.toArray() as Float32Array;
      };
      const soft = model.vision.encode(batch);
      try {
        expectClose("tower output (pooled, standardized)", tower!, fixtureTensor("images.tower_output"));
        const got = new Float32Array(soft.reduce((s, t) => s + t.size, 0));
        let at = 0;
        for (const t of soft) {
          got.set(t.toArray() as Float32Array, at);
          at += t.size;
        }
        expectClose("soft tokens (embed_vision)", got, fixtureTensor("images.soft_tokens"));
      } finally {
        for (const t of soft) t.dispose();
      }
      for (const key of ["one_image", "two_images", "video"] as const) {
        const rec = e[key];
        const media = promptMedia(rec);
        {
          using logits = model.prefill(rec.input_ids, media, "all");
          expectClose(`${key}: logits at every position`, logits.toArray(), fixtureTensor(`${key}.logits`));
        }
        const g = greedyG4(model, rec.input_ids, media, rec.greedy.max_new_tokens);
        assert.deepEqual(g.tokens, rec.greedy.ids, `${key}: greedy continuation`);
        const steps = fixtureTensor(`${key}.greedy_step_logits`);
        g.stepLogits.forEach((l, i) =>
          expectClose(`${key}: greedy step ${i}`, l, steps.subarray(i * l.length, (i + 1) * l.length))
        );
      }
    },
  });
}
