/**
 * The Gemma 4 image processor against transformers 5.17's `Gemma4ImageProcessor` (torchvision backend, the
 * default) on committed images of several aspect ratios (tests/fixtures/gemma4-media, see
 * make_gemma4_media_fixtures.py).
 *
 * Tolerance: none. Given the same RGB8 input, the bicubic resize is torch's integer arithmetic reproduced
 * exactly and the rescale is one correctly rounded float32 op, so pixel values must be bit-identical (checked
 * by sha256 of the whole padded float32 tensor; three cases also element by element, to say how far off a
 * failure is). The inputs are Pillow's RGB8 (PNG, or a JPEG as Pillow decoded it), so JPEG decoding, which is
 * allowed a few levels (jpeg.ts), is not part of this comparison.
 */
import assert from "node:assert/strict";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { ImageError } from "../../src/errors.ts";
import {
  expandGemma4Prompt,
  formatGemma4Timestamp,
  Gemma4ImageProcessorConfig,
  gemma4ImagePromptIds,
  gemma4ImagePromptText,
  gemma4NumSoftTokens,
  gemma4SampleFrameIndices,
  gemma4TargetSize,
  Gemma4VideoProcessorConfig,
  preprocessGemma4,
} from "../../src/models/gemma4/processor.ts";
import { loadImage } from "../../src/vision/image.ts";
import { resizeBicubicAntialias } from "../../src/vision/resize.ts";
import { caseRgb, maxLevelDiff, media, mediaGunzip, mediaPath, sha256Hex } from "./gemma4_fixtures.ts";

const TOKENIZER_DIR = new URL("../fixtures/gemma4-tokenizer/", import.meta.url).pathname;
const config = Gemma4ImageProcessorConfig.fromPreprocessorConfig({}, media.processorConfig);

Deno.test("gemma4 config: processor_config.json as transformers 5.17 writes it", () => {
  assert.equal(config.maxSoftTokens, 70);
  assert.equal(config.patchSize, 16);
  assert.equal(config.poolingKernelSize, 3);
  assert.equal(config.maxPatches, 630);
  assert.equal(config.doNormalize, false);
  const d = Gemma4ImageProcessorConfig.gemma4Default();
  assert.equal(d.maxSoftTokens, 280);
  assert.equal(d.maxPatches, 2520);
  // preprocessor_config.json (top-level fields) wins over the nested copy
  assert.equal(
    Gemma4ImageProcessorConfig.fromPreprocessorConfig({ max_soft_tokens: 560 }, media.processorConfig)
      .maxSoftTokens,
    560,
  );
  const v = Gemma4VideoProcessorConfig.fromProcessorConfig(media.processorConfig);
  assert.deepEqual([v.maxSoftTokens, v.numFrames, v.fps, v.doSampleFrames, v.doNormalize], [70, 32, null, true, true]);
  for (const bad of [{ max_soft_tokens: 100 }, { resample: 2 }, { patch_size: 0 }, { image_std: [1, 0, 1] }]) {
    assert.throws(() => Gemma4ImageProcessorConfig.fromPreprocessorConfig(bad), (e) => {
      return e instanceof ImageError && e.kind === "bad_config";
    });
  }
  assert.throws(() => Gemma4VideoProcessorConfig.fromProcessorConfig({}, { fps: 1 }), ImageError); // with num_frames
});

for (const c of media.images) {
  Deno.test(`gemma4 processor vs transformers: ${c.case} (${c.width}x${c.height}, ${c.maxSoftTokens} tokens)`, async () => {
    const rgb = await caseRgb(c.image);
    assert.deepEqual([rgb.width, rgb.height], [c.width, c.height]);
    const out = preprocessGemma4([rgb], config, { maxSoftTokens: c.maxSoftTokens });
    assert.deepEqual(out.shape, [1, ...c.shape]); // the fixture holds image 0 of the batch: [maxPatches, 768]
    assert.deepEqual(out.positionShape, [1, c.shape[0], 2]);
    assert.deepEqual(out.numSoftTokens, c.numSoftTokens);
    assert.deepEqual([out.resized[0].height, out.resized[0].width], c.resized);
    assert.equal(
      gemma4NumSoftTokens(c.height, c.width, config.with({ maxSoftTokens: c.maxSoftTokens })),
      c.numSoftTokens[0],
    );
    // positions: (x, y) row-major over the patch grid, then (-1, -1)
    const [hp, wp] = c.patchGrid;
    const p = out.positionIds;
    assert.deepEqual([p[0], p[1], p[2 * (wp - 1)], p[2 * wp + 1]], [0, 0, wp - 1, hp > 1 ? 1 : -1]);
    assert.deepEqual(
      [p[2 * c.numValidPatches], p[2 * c.numValidPatches + 1]],
      c.numValidPatches < c.shape[0] ? [-1, -1] : [undefined, undefined],
    );
    assert.equal(await sha256Hex(out.positionIds), c.positionSha256, "position ids differ from transformers'");
    if (c.validU8) {
      const theirs = mediaGunzip(c.validU8);
      assert.deepEqual(maxLevelDiff(out.pixelValues, theirs), { max: 0, count: 0 });
    }
    assert.equal(await sha256Hex(out.pixelValues), c.pixelSha256, "pixel values differ from transformers'");
  });
}

Deno.test("gemma4 processor: a batch of two sizes, and the prompt ids of Gemma4Processor", async () => {
  const b = media.imageBatch;
  const imgs = await Promise.all(b.images.map(caseRgb));
  const out = preprocessGemma4(imgs, config);
  assert.deepEqual(out.numSoftTokens, b.numSoftTokens);
  assert.equal(await sha256Hex(out.pixelValues), b.pixelSha256);
  assert.equal(await sha256Hex(out.positionIds), b.positionSha256);
  const tokenizer = await Tokenizer.fromFiles(TOKENIZER_DIR);
  const text = expandGemma4Prompt(b.text, { images: out.numSoftTokens });
  assert.equal(text.split(gemma4ImagePromptText(out.numSoftTokens[0])).length, 2);
  const ids = tokenizer.encode(text);
  assert.deepEqual(ids, b.inputIds);
  // the id-level expansion of one image is the same run of ids
  const boi = tokenizer.tokenToId("<|image>")!, img = tokenizer.tokenToId("<|image|>")!;
  const eoi = tokenizer.tokenToId("<image|>")!;
  const one = gemma4ImagePromptIds(out.numSoftTokens[0], { boiTokenId: boi, imageTokenId: img, eoiTokenId: eoi });
  const at = ids.indexOf(boi);
  assert.deepEqual(ids.slice(at, at + one.length), one);
  // mm_token_type_ids: 1 exactly at the image soft tokens
  assert.deepEqual(ids.map((t) => (t === img ? 1 : 0)), b.mmTokenTypeIds);
});

Deno.test("gemma4 prompt expansion: placeholders in order, counts checked", () => {
  const t = expandGemma4Prompt("a <|video|> b <|image|> c", {
    images: [2],
    videos: [{ numSoftTokens: 1, timestamps: [0, 61.5] }],
  });
  assert.equal(
    t,
    "a 00:00 <|image><|video|><image|> 01:01 <|image><|video|><image|> b <|image><|image|><|image|><image|> c",
  );
  assert.throws(() => expandGemma4Prompt("<|image|><|image|>", { images: [1] }), (e) => e instanceof ImageError);
  assert.throws(() => expandGemma4Prompt("no placeholder", { images: [1] }), (e) => e instanceof ImageError);
  assert.equal(formatGemma4Timestamp(59.999), "00:59");
  assert.equal(formatGemma4Timestamp(60), "01:00");
  assert.equal(formatGemma4Timestamp(6000.5), "100:00");
});

Deno.test("gemma4 target size: the 1:100 edge case and the budget", () => {
  assert.deepEqual(gemma4TargetSize(10, 1000, 16, 630, 3), { height: 48, width: 3360 });
  assert.deepEqual(gemma4TargetSize(1000, 10, 16, 630, 3), { height: 3360, width: 48 });
  for (const [h, w] of [[1, 1], [1, 5000], [4000, 3000], [48, 48], [17, 1023]]) {
    for (const budget of [70, 280, 1120]) {
      const t = gemma4TargetSize(h, w, 16, budget * 9, 3);
      assert.ok(t.height % 48 === 0 && t.width % 48 === 0 && (t.height / 16) * (t.width / 16) <= budget * 9);
    }
  }
});

Deno.test("gemma4 frame sampling: torch's float32 arange, extra index included", () => {
  for (const c of media.sampleTable) {
    assert.deepEqual(
      gemma4SampleFrameIndices(c.total, { numFrames: c.numFrames, fps: null }),
      c.indices,
      `${c.total}/${c.numFrames}`,
    );
  }
  assert.throws(() => gemma4SampleFrameIndices(10, { numFrames: 32, fps: null }), ImageError); // as transformers
  assert.equal(gemma4SampleFrameIndices(10, { numFrames: 32, fps: null, clampToTotal: true }).length, 10);
  assert.deepEqual(
    gemma4SampleFrameIndices(40, { numFrames: null, fps: 2, videoFps: 8 }),
    media.video.sampling.fps2.frameIndices,
  );
});

Deno.test("gemma4 bicubic resize: identity size is a copy", () => {
  const src = { width: 3, height: 2, channels: 3, data: Uint8Array.from({ length: 18 }, (_, i) => i * 13) };
  const out = resizeBicubicAntialias(src, 3, 2);
  assert.deepEqual(out.data, src.data);
  assert.notEqual(out.data, src.data);
  assert.throws(() => resizeBicubicAntialias(src, 0, 2), ImageError);
});

Deno.test("gemma4 processor: bad input is a typed error and the next call works", async () => {
  const good = await caseRgb("very_wide_png");
  const kinds: [unknown, string][] = [
    [{ width: 0, height: 5, data: new Uint8Array(0) }, "zero_size"],
    [{ width: 4, height: 4, data: new Uint8Array(5) }, "bad_source"],
  ];
  for (const [img, kind] of kinds) {
    assert.throws(() => preprocessGemma4([img as never], config), (e) => e instanceof ImageError && e.kind === kind);
    assert.equal(preprocessGemma4([good], config).numSoftTokens[0], 49);
  }
  assert.throws(() => preprocessGemma4([], config), (e) => e instanceof ImageError);
  assert.throws(() => preprocessGemma4([good], config, { maxSoftTokens: 71 }), (e) => e instanceof ImageError);
  assert.throws(() => preprocessGemma4([good], config, { doResize: false }), (e) => e instanceof ImageError);
  // over the pixel limit: refused from the header, then the same file loads
  const path = mediaPath("very_wide_png.png");
  await assert.rejects(loadImage(path, { maxPixels: 1000 }), (e) => e instanceof ImageError && e.kind === "too_large");
  assert.equal((await loadImage(path)).width, 700);
});
