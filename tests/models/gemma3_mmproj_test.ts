/**
 * Gemma 3 from llama.cpp model + mmproj GGUF pairs: tests/fixtures/make_mmproj_fixtures.py ran llama.cpp's own
 * converter (the pinned source) on the tiny Gemma3ForConditionalGeneration checkpoint at --outtype f32, f16 and
 * q8_0, and each pair must give the logits transformers gives for the weights the files hold.
 *
 * Tolerance. At f32 the converter stores every tensor as the checkpoint's f32 except mm.input_projection.weight,
 * which it always stores as F16; at f16 every matrix is F16, at q8_0 Q8_0 (norms, biases, the patch and position
 * embeddings stay F32; the projection F16). The script reran transformers with exactly those parameters replaced by
 * the values the files hold (gguf-py's own rounding) and stored its logits (expected.json), so both sides compute
 * with the same weights in f32 arithmetic (gemmakit widens f16 weights exactly and decodes Q8_0 blocks to ggml's
 * values), as in the safetensors parity test: the same bound, 1e-4. The norms the converter
 * stores as 1 + w (text RMSNorms, the projector's soft-embedding norm) add one f32 rounding each (under 1.2e-7 for
 * |w| < 1), far below it. The script also applies the attention types llama.cpp reads from the file (no per-layer
 * types are written for gemma3: the period-6 pattern makes all three tiny layers sliding); "layer_types" records
 * them, and the test checks the loaded model agrees.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { openGguf } from "../../src/formats/gguf.ts";
import { loadGemma3GgufMultimodal } from "../../src/models/gemma3/mmproj.ts";
import { loadExpected, promptImages } from "./gemma3_vision_fixture.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const PAIRS = [
  { outtype: "f32", dir: `${FIXTURES}gemma3-vision-gguf`, featuresBound: 5e-3 },
  { outtype: "f16", dir: `${FIXTURES}gemma3-vision-gguf-f16`, featuresBound: 1e-2 },
  { outtype: "q8_0", dir: `${FIXTURES}gemma3-vision-gguf-q8_0`, featuresBound: 1e-1 },
] as const;
const TOLERANCE = 1e-4;

interface PairExpected {
  files: string[];
  not_f32: Record<string, string>;
  layer_types: string[];
  rounded_parameters: Record<string, string>;
  [prompt: string]: unknown;
}

function maxDiff(got: ArrayLike<number>, want: ArrayLike<number>): number {
  assert.equal(got.length, want.length);
  let d = 0;
  for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(got[i] - want[i]));
  return d;
}

for (const { outtype, dir, featuresBound } of PAIRS) {
  Deno.test(`[cpu] gemma3 model + mmproj GGUF at ${outtype} (llama.cpp's converter): image-prompt logits match transformers`, () => {
    const e = loadExpected();
    const pair = JSON.parse(Deno.readTextFileSync(`${dir}/expected.json`)) as PairExpected;
    // What the files hold, as the script found it: which tensors are f16, each matched to one parameter.
    assert.equal(Object.keys(pair.rounded_parameters).length, Object.keys(pair.not_f32).length);
    if (outtype === "f32") assert.deepEqual(pair.not_f32, { "mm.input_projection.weight": "F16" });
    else assert.equal(Object.keys(pair.not_f32).length, 35); // 7 matrices × 3 text layers, 6 × 2 tower, embed, proj
    if (outtype === "q8_0") assert.equal(pair.not_f32["v.blk.0.attn_q.weight"], "Q8_0"); // kept quantized here too
    using backend = Backend.open({ backend: "cpu" });
    using text = openGguf(`${dir}/${pair.files[0]}`);
    using mmproj = openGguf(`${dir}/${pair.files[1]}`);
    const { model, vision } = loadGemma3GgufMultimodal(backend, text, mmproj);
    try {
      assert.deepEqual(model.text.config.layers.map((l) => l.type), pair.layer_types);
      assert.equal(vision.config.mmTokensPerImage, 16); // clip.vision.projector.scale_factor 2: 8×8 patches → 4×4
      assert.deepEqual(
        [vision.config.boiTokenId, vision.config.eoiTokenId, vision.config.imageTokenId],
        [990, 991, 992], // from the text GGUF's vocabulary
      );
      // The tower and projector against the float32 checkpoint's image features, a sanity check of scale only: they
      // are apart by the rounding of the stored matrices (observed 1.0e-3 at f32, where only the projection is f16;
      // 1.7e-3 at f16; 4.0e-2 at q8_0, whose 8-bit blocks err up to absmax/254 per weight).
      const one = promptImages(e, e.one_image);
      {
        using features = model.encodeImages(one);
        assert.deepEqual(features.shape, e.vision.image_features_shape);
        const d = maxDiff(features.toArray(), e.vision.image_features);
        assert.ok(d <= featuresBound, `image features: |Δ| ${d.toExponential(2)} to the f32 checkpoint's`);
      }
      for (const key of ["one_image", "two_images", "pan_and_scan"] as const) {
        const want = pair[key] as { last_logits: number[]; argmax: number };
        using logits = model.prefill(e[key].input_ids, promptImages(e, e[key]));
        const got = logits.toArray();
        const d = maxDiff(got, want.last_logits);
        assert.ok(d <= TOLERANCE, `${key}: |Δ| ${d.toExponential(2)} exceeds ${TOLERANCE}`);
        assert.equal(got.indexOf(Math.max(...got)), want.argmax);
      }
    } finally {
      model.dispose();
    }
  });
}
