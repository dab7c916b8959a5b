/**
 * llama.cpp's vision projector (mmproj) files read by src/formats/gguf_clip.ts, on the files llama.cpp's converter
 * wrote for the tiny fixtures (tests/fixtures/make_mmproj_fixtures.py): the `clip.vision.*` hyperparameters and
 * projector types as written, a model GGUF refused as a projector, renamed listings with host-side layout fixes,
 * and token ids from a model's vocabulary.
 */
import assert from "node:assert/strict";
import { FormatError } from "../../src/errors.ts";
import { openGguf } from "../../src/formats/gguf.ts";
import {
  clipProjectorType,
  clipWeightSource,
  ggufTokenId,
  isMmprojGguf,
  readClipVision,
} from "../../src/formats/gguf_clip.ts";
import { Backend } from "../../src/runtime/backend.ts";
import { thrown } from "../helpers.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const G3 = `${FIXTURES}gemma3-vision-gguf`;
const G4_MMPROJ = `${FIXTURES}gemma4-vision-gguf/mmproj-gemma4-f32.gguf`;

Deno.test("readClipVision: the clip.vision.* keys as the converter wrote them; projector types old and new", () => {
  using g3 = openGguf(`${G3}/mmproj-gemma3-f32.gguf`);
  assert.ok(isMmprojGguf(g3));
  assert.equal(clipProjectorType(g3), "gemma3"); // the older clip.projector_type key
  assert.deepEqual(readClipVision(g3), {
    imageSize: 32,
    patchSize: 4,
    hiddenSize: 32,
    intermediateSize: 64,
    numHiddenLayers: 2,
    numAttentionHeads: 4,
    projectionDim: 64,
    layerNormEps: 1e-6, // stored as f32 9.99999997e-7: the shortest decimal back
    scaleFactor: 2,
    imageMean: [0.5, 0.5, 0.5],
    imageStd: [0.5, 0.5, 0.5],
  });
  using g4 = openGguf(G4_MMPROJ);
  assert.equal(clipProjectorType(g4), "gemma4v"); // clip.vision.projector_type
  assert.equal(readClipVision(g4).scaleFactor, undefined);
});

Deno.test("readClipVision: a model GGUF is not a projector (FormatError naming its architecture)", () => {
  using model = openGguf(`${G3}/model-f32.gguf`);
  assert.ok(!isMmprojGguf(model));
  const e = thrown(() => readClipVision(model), FormatError);
  assert.match(e.message, /general\.architecture is "gemma3", not "clip"/);
});

Deno.test("clipWeightSource: renamed listing; fixed tensors listed and loaded as f32 in their new shape", () => {
  using g4 = openGguf(G4_MMPROJ);
  const source = clipWeightSource(g4, (n) => n.startsWith("v.blk.0.") ? `layer0/${n.slice(8)}` : undefined, {
    "v.blk.0.attn_q.input_max": { shape: [], apply: (v) => v.map((x) => 2 * x) },
  });
  assert.equal(source.tensors.length, g4.tensors.length);
  const bound = source.tensors.find((t) => t.name === "layer0/attn_q.input_max")!;
  assert.deepEqual([bound.shape, bound.dtype], [[], "f32"]);
  assert.ok(source.tensors.some((t) => t.name === "mm.input_projection.weight")); // unmapped: its GGUF name
  using backend = Backend.open({ backend: "cpu" });
  using raw = g4.loadTensor(backend, "v.blk.0.attn_q.input_max");
  using fixed = source.loadTensor(backend, "layer0/attn_q.input_max");
  assert.deepEqual(fixed.shape, []);
  assert.equal(fixed.toArray()[0], 2 * raw.toArray()[0]);
  assert.throws(() => source.loadTensor(backend, "v.blk.0.attn_q.input_max"), FormatError);
});

Deno.test("ggufTokenId: a token's id in a model's vocabulary, undefined when absent or without one", () => {
  using model = openGguf(`${G3}/model-f32.gguf`);
  assert.equal(ggufTokenId(model, "<start_of_image>"), 990);
  assert.equal(ggufTokenId(model, "<no such token>"), undefined);
  using mmproj = openGguf(`${G3}/mmproj-gemma3-f32.gguf`);
  assert.equal(ggufTokenId(mmproj, "<start_of_image>"), undefined);
});
