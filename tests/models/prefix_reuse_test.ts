/**
 * Prefix reuse at the model level: a prefill from an offset over a cached prefix gives the logits a fresh full
 * prefill gives (within 1e-4, f32 on CPU), for every architecture variant fixture — Gemma 3's mixed, legacy,
 * softcap and attention-cap layouts, Gemma 4's per-layer inputs with KV-shared layers, k_eq_v and MoE — and for
 * images and video. Prompts are far longer than the sliding windows (6-12), so the chunks start after the rings
 * have wrapped; one case writes past the reuse point first (an answer the next turn does not repeat). Where the
 * fixture holds transformers' logits for every position, the reused rows are checked against those too.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { RING_SLACK } from "../../src/runtime/kv_cache.ts";
import type { Tensor } from "../../src/runtime/tensor.ts";
import { loadGemma3Text } from "../../src/models/gemma3/load.ts";
import { loadGemma4Text } from "../../src/models/gemma4/load.ts";
import { loadGemma3Multimodal } from "../../src/models/gemma3/multimodal.ts";
import { loadGemma4Multimodal } from "../../src/models/gemma4/multimodal.ts";
import { loadExpected, promptImages, VISION_FIXTURE } from "./gemma3_vision_fixture.ts";
import { fixtureTensor, G4_VISION_FIXTURE, loadG4Expected, promptMedia } from "./gemma4_vision_fixture.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const TOLERANCE = 1e-4;

function expectClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>) {
  assert.equal(got.length, want.length, `${label}: length`);
  let diff = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= diff)) [diff, at] = [d, i];
  }
  assert.ok(diff <= TOLERANCE, `${label}: |Δlogit| ${diff.toExponential(2)} at ${at} exceeds ${TOLERANCE}`);
}

/** Rows a.. of logits f32 [T, vocab]. */
const rowsFrom = (all: Float32Array, a: number, vocab: number) => all.subarray(a * vocab);

/** A prefill that returns its logits as an array (all rows) and frees them. */
type Prefill = (ids: number[], start: number) => Tensor;
const run = (p: Prefill, ids: number[], start = 0) => {
  using t = p(ids, start);
  return t.toArray() as Float32Array;
};

/** Deterministic ids in [3, vocab) (no BOS, pad or EOS among them). */
function randomIds(n: number, vocab: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return 3 + (s % (vocab - 3));
  });
}

/** Every way a follow-up reuses the cache, checked against the full prefill's rows. */
function checkText(name: string, prefill: Prefill, vocab: number, window: number) {
  const ids = randomIds(200, vocab, 7);
  const full = run(prefill, ids);
  // A follow-up of one token, one inside the first window, and chunks after the rings wrapped.
  for (const a of [1, window - 1, 100, 199]) {
    run(prefill, ids.slice(0, a));
    expectClose(`${name}: reuse of ${a} tokens`, run(prefill, ids, a), rowsFrom(full, a, vocab));
  }
  // Turns in sequence: each prefill extends what the previous one left.
  run(prefill, ids.slice(0, 50));
  run(prefill, ids.slice(0, 120), 50);
  expectClose(`${name}: third turn`, run(prefill, ids, 120), rowsFrom(full, 120, vocab));
  // The cache was written past the reuse point (an answer the next prompt drops), within RING_SLACK.
  run(prefill, [...ids.slice(0, 120), ...randomIds(RING_SLACK, vocab, 9)]);
  expectClose(`${name}: reuse after a dropped answer`, run(prefill, ids, 120), rowsFrom(full, 120, vocab));
}

const TEXT = [
  ["gemma3-text-mixed", 3],
  ["gemma3-text-legacy", 3],
  ["gemma3-text-softcap", 3],
  ["gemma3-text-attncap", 3],
  ["gemma4-text-e", 4],
  ["gemma4-text-k-eq-v", 4],
  ["gemma4-text-moe", 4],
] as const;

for (const [fixture, family] of TEXT) {
  Deno.test(`prefix reuse: ${fixture} — a follow-up from the cache equals a full prefill`, () => {
    using backend = Backend.open({ backend: "cpu" });
    const dir = FIXTURES + fixture;
    using model = family === 3
      ? loadGemma3Text(backend, dir, { maxContext: 256 })
      : loadGemma4Text(backend, dir, { maxContext: 256 });
    const window = Math.max(...model.config.layers.map((l) => l.window));
    assert.equal(model.cache.rollback, RING_SLACK + 1, "the rings keep RING_SLACK rows past the window");
    const prefill: Prefill = (ids, start) => model.prefill(ids, "all", undefined, start);
    checkText(fixture, prefill, model.vocabSize, window);
    // And against transformers: the fixture prompt's logits, the second half computed over a cached first half.
    const e = JSON.parse(Deno.readTextFileSync(`${dir}/expected.json`)).plain;
    const a = Math.floor(e.input_ids.length / 2);
    run(prefill, e.input_ids.slice(0, a));
    expectClose(`${fixture}: transformers' logits after reuse`, run(prefill, e.input_ids, a), e.logits.slice(a).flat());
  });
}

/** How many media runs lie wholly before position a. */
const runsBefore = (ids: number[], a: number, isMedia: (id: number) => boolean) =>
  ids.slice(0, a).filter((id, i, head) => isMedia(id) && !isMedia(head[i + 1] ?? -1)).length;

/** The first k items of a batch of equal-size items. */
function firstItems<B extends { pixelValues: Float32Array; count: number; positionIds?: ArrayLike<number> }>(
  b: B,
  k: number,
): B {
  const px = b.pixelValues.length / b.count;
  const out = { ...b, count: k, pixelValues: b.pixelValues.slice(0, k * px) };
  if (b.positionIds) {
    const pos = b.positionIds.length / b.count;
    out.positionIds = Int32Array.from({ length: k * pos }, (_, j) => b.positionIds![j]);
  }
  return out;
}

/** Start positions around a prompt's media runs: before the first, between runs, after the last. */
function splitsAround(ids: number[], isMedia: (id: number) => boolean): number[] {
  const starts = ids.flatMap((id, i) => (isMedia(id) && !isMedia(ids[i - 1]) ? [i] : []));
  const ends = ids.flatMap((id, i) => (isMedia(id) && !isMedia(ids[i + 1]) ? [i + 1] : []));
  return [...new Set([starts[0] - 1, ...ends.slice(0, -1).map((e) => e + 1), ends.at(-1)! + 2, ids.length - 1])]
    .filter((a) => a > 0 && a < ids.length);
}

Deno.test("prefix reuse: gemma3-vision-tiny — images in the chunk or in the cached prefix", () => {
  using backend = Backend.open({ backend: "cpu" });
  using model = loadGemma3Multimodal(backend, VISION_FIXTURE, { maxContext: 256 });
  const e = loadExpected();
  const vocab = model.vocabSize;
  for (const key of ["two_images", "pan_and_scan"] as const) {
    const rec = e[key];
    const images = promptImages(e, rec);
    const prefill: Prefill = (ids, start) => model.prefill(ids, images, "all", start);
    const full = run(prefill, rec.input_ids);
    expectClose(`${key}: full prefill vs transformers`, full.subarray(full.length - vocab), rec.last_logits);
    const image = model.visionConfig.imageTokenId;
    const isImage = (id: number) => id === image;
    for (const a of splitsAround(rec.input_ids, isImage)) {
      // The turn before: its prompt and the images in it. The encoder cache starts empty, so the chunk encodes
      // its own images (the full prefill above had cached them all).
      model.visionCache.clear();
      const k = runsBefore(rec.input_ids, a, isImage);
      run((ids) => model.prefill(ids, k ? firstItems(images, k) : undefined), rec.input_ids.slice(0, a));
      expectClose(`${key}: reuse of ${a} tokens`, run(prefill, rec.input_ids, a), rowsFrom(full, a, vocab));
    }
  }
});

Deno.test("prefix reuse: gemma4-vision-tiny — images and video frames, against transformers' logits", () => {
  using backend = Backend.open({ backend: "cpu" });
  using model = loadGemma4Multimodal(backend, G4_VISION_FIXTURE, { maxContext: 512 });
  const e = loadG4Expected();
  const vocab = model.vocabSize;
  const v = model.visionConfig;
  for (const key of ["two_images", "video"] as const) {
    const rec = e[key];
    const media = promptMedia(rec);
    const prefill: Prefill = (ids, start) => model.prefill(ids, media, "all", start);
    const want = fixtureTensor(`${key}.logits`) as Float32Array;
    const isImage = (id: number) => id === v.imageTokenId, isVideo = (id: number) => id === v.videoTokenId;
    for (const a of splitsAround(rec.input_ids, (id) => isImage(id) || isVideo(id))) {
      // The turn before: its prompt and the media in it; the encoder cache starts empty, as above.
      model.visionCache.clear();
      const ki = runsBefore(rec.input_ids, a, isImage), kv = runsBefore(rec.input_ids, a, isVideo);
      const before = {
        ...(ki ? { images: firstItems(media.images!, ki) } : {}),
        ...(kv ? { videoFrames: firstItems(media.videoFrames!, kv) } : {}),
      };
      run((ids) => model.prefill(ids, before), rec.input_ids.slice(0, a));
      expectClose(`${key}: reuse of ${a} tokens`, run(prefill, rec.input_ids, a), rowsFrom(want, a, vocab));
    }
  }
});

Deno.test("prefix reuse: a prefill cannot start inside a media run", () => {
  using backend = Backend.open({ backend: "cpu" });
  using model = loadGemma3Multimodal(backend, VISION_FIXTURE, { maxContext: 256 });
  const e = loadExpected();
  const rec = e.two_images;
  const inside = rec.input_ids.indexOf(model.visionConfig.imageTokenId) + 3;
  assert.throws(() => model.prefill(rec.input_ids, promptImages(e, rec), "last", inside), /falls inside image 0/);
});
