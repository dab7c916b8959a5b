/**
 * Gemma 3 from a llama.cpp model + mmproj GGUF pair: tests/fixtures/make_mmproj_fixtures.py ran llama.cpp's own
 * converter (the pinned source) on the tiny Gemma3ForConditionalGeneration checkpoint, and the pair must give the
 * logits transformers gives for the weights the files hold.
 *
 * Tolerance: the converter stores every tensor as f32 (bit-identical to the checkpoint's) except
 * mm.input_projection.weight, which it always stores as F16; the script reran transformers with that tensor
 * dequantized and stored those logits (tests/fixtures/gemma3-vision-gguf/expected.json), so the comparison is of
 * the same weights in f32 on both sides, like the safetensors parity test: 1e-4, the same bound. The norms the
 * converter stores as 1 + w (text RMSNorms and the projector's soft-embedding norm) add one f32 rounding each
 * (|w| < 1, so under 1.2e-7 absolute), far below it.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { openGguf } from "../../src/formats/gguf.ts";
import { loadGemma3GgufMultimodal } from "../../src/models/gemma3/mmproj.ts";
import { loadExpected, promptImages } from "./gemma3_vision_fixture.ts";

const DIR = new URL("../fixtures/gemma3-vision-gguf", import.meta.url).pathname;
export const GEMMA3_GGUF_PAIR = { model: `${DIR}/model-f32.gguf`, mmproj: `${DIR}/mmproj-gemma3-f32.gguf`, dir: DIR };
const TOLERANCE = 1e-4;

interface PairExpected {
  not_f32: Record<string, string>;
  [prompt: string]: unknown;
}

function maxDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let d = 0;
  for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
  return d;
}

Deno.test("[cpu] gemma3 model + mmproj GGUF (llama.cpp's converter): image-prompt logits match transformers", () => {
  const e = loadExpected();
  const pair = JSON.parse(Deno.readTextFileSync(`${DIR}/expected.json`)) as PairExpected;
  assert.deepEqual(pair.not_f32, { "mm.input_projection.weight": "F16" });
  using backend = Backend.open({ backend: "cpu" });
  using text = openGguf(GEMMA3_GGUF_PAIR.model);
  using mmproj = openGguf(GEMMA3_GGUF_PAIR.mmproj);
  const { model, vision } = loadGemma3GgufMultimodal(backend, text, mmproj);
  try {
    assert.equal(vision.config.mmTokensPerImage, 16);
    assert.equal(vision.config.imageTokenId, 992);
    assert.equal(vision.config.boiTokenId, 990);
    // The tower (all f32 in the file) equals the checkpoint's exactly as the safetensors parity test checks it;
    // the projected features differ from the float32 checkpoint's only by the F16 projection: each feature is a
    // 32-term dot product with weights rounded by at most 2^-11 relatively (observed 1.0e-3; bound 5e-3).
    const one = promptImages(e, e.one_image);
    {
      using features = model.encodeImages({
        pixelValues: one.pixelValues.subarray(0, one.pixelValues.length / one.count),
        count: 1,
      });
      assert.deepEqual(features.shape, e.vision.image_features_shape);
      const d = maxDiff(features.toArray(), e.vision.image_features);
      assert.ok(d <= 5e-3, `image features: |Δ| ${d.toExponential(2)} to the f32 checkpoint's`);
    }
    for (const key of ["one_image", "two_images", "pan_and_scan"] as const) {
      const rec = e[key];
      const want = (pair[key] as { last_logits: number[] }).last_logits;
      using logits = model.prefill(rec.input_ids, promptImages(e, rec));
      const got = logits.toArray();
      const d = maxDiff(got, want);
      assert.ok(d <= TOLERANCE, `${key}: |Δ| ${d.toExponential(2)} exceeds ${TOLERANCE}`);
      assert.equal(got.indexOf(Math.max(...got)), (pair[key] as { argmax: number }).argmax);
    }
  } finally {
    model.dispose();
  }
});
