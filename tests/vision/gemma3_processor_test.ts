/**
 * The Gemma 3 image processor against transformers' Gemma3ImageProcessor (torchvision backend, the default),
 * on Pillow-decoded pixels so decoding and preprocessing are tested apart.
 *
 * Tolerance: exact. The reference pipeline is integer until its last step (uint8 antialiased resize with int16
 * weights, then one float32 subtract and divide), and we reproduce each step bit for bit; any resize
 * disagreement would show as a whole level, 1/127.5 = 0.0078, so no tolerance would hide a bug.
 */
import assert from "node:assert/strict";
import { decodeImage, ImageError, loadImage } from "../../src/vision/mod.ts";
import {
  Gemma3ImageProcessorConfig,
  gemma3ImagePromptText,
  panAndScanCrops,
  preprocessGemma3,
} from "../../src/models/gemma3/mod.ts";
import { expected, f32Fixture, fixtureBytes, fixturePath, pilRgb } from "./fixtures.ts";

const config = Gemma3ImageProcessorConfig.fromPreprocessorConfig(expected.preprocessorConfig);

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function overridesOf(size: number, o: Record<string, unknown>) {
  return {
    imageSize: size,
    doPanAndScan: o.do_pan_and_scan as boolean | undefined,
    panAndScanMinCropSize: o.pan_and_scan_min_crop_size as number | undefined,
    panAndScanMaxNumCrops: o.pan_and_scan_max_num_crops as number | undefined,
  };
}

for (const c of expected.processor) {
  Deno.test(`preprocessGemma3 ${c.case}: pixel_values and num_crops equal transformers'`, () => {
    const r = preprocessGemma3(c.images.map(pilRgb), config, overridesOf(c.size, c.options));
    assert.deepEqual(r.shape, c.shape);
    assert.deepEqual(r.numCrops, c.numCrops);
    assert.equal(maxDiff(r.pixelValues, f32Fixture(c.file)), 0);
  });
}

Deno.test("preprocessGemma3 at Gemma 3's 896x896: sha256 of the float32 bytes equals transformers'", async () => {
  const r = preprocessGemma3([pilRgb(expected.full896.image)], config);
  assert.deepEqual(r.shape, expected.full896.shape);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", r.pixelValues.slice().buffer));
  assert.equal([...digest].map((b) => b.toString(16).padStart(2, "0")).join(""), expected.full896.sha256);
});

Deno.test("file -> loadImage -> preprocessGemma3: within the JPEG decode tolerance of transformers", async () => {
  const c = expected.processor.find((p) => p.case === "exif6_jpeg_32")!;
  const img = await loadImage(fixturePath(expected.images.exif6_jpeg.file));
  const r = preprocessGemma3([img], config, overridesOf(c.size, c.options));
  // 3 levels (image_test.ts) / 127.5; the resize averages, so it cannot grow.
  assert.ok(maxDiff(r.pixelValues, f32Fixture(c.file)) <= 3 / 127.5 + 1e-6);
  const png = decodeImage(fixtureBytes(expected.images.palette_png.file));
  const p = expected.processor.find((x) => x.case === "palette_png_32")!;
  assert.equal(maxDiff(preprocessGemma3([png], config, { imageSize: 32 }).pixelValues, f32Fixture(p.file)), 0);
});

Deno.test("panAndScanCrops: the same boxes as pan_and_scan_batched for a table of sizes and settings", () => {
  for (const row of expected.panAndScanCrops) {
    const got = panAndScanCrops(row.width, row.height, {
      minCropSize: row.minCropSize,
      maxNumCrops: row.maxNumCrops,
      minRatioToActivate: row.minRatioToActivate,
    });
    assert.deepEqual(got, row.crops, `${row.width}x${row.height} ${JSON.stringify(row)}`);
  }
});

Deno.test("gemma3ImagePromptText equals Gemma3Processor.replace_image_token", () => {
  for (const t of expected.promptTexts) assert.equal(gemma3ImagePromptText(t.numCrops, t.imageSeqLength), t.text);
});

Deno.test("Gemma3ImageProcessorConfig: the shipped config's nulls take transformers' defaults", () => {
  assert.deepEqual(config.size, { height: 896, width: 896 });
  assert.equal(config.doPanAndScan, false);
  assert.equal(config.panAndScanMinCropSize, 256);
  assert.equal(config.panAndScanMaxNumCrops, 4);
  assert.equal(config.panAndScanMinRatioToActivate, 1.2);
  assert.equal(config.imageSeqLength, 256);
  const viaProcessor = Gemma3ImageProcessorConfig.fromPreprocessorConfig({}, {
    image_seq_length: 64,
    image_processor: { size: { height: 448, width: 448 }, do_pan_and_scan: true },
  });
  assert.deepEqual([viaProcessor.size.height, viaProcessor.imageSeqLength, viaProcessor.doPanAndScan], [448, 64, true]);
});

Deno.test("bad processor config and inputs are ImageErrors", () => {
  const kinds: [() => unknown, string][] = [
    [() => Gemma3ImageProcessorConfig.fromPreprocessorConfig({ resample: 3 }), "bad_config"],
    [() => Gemma3ImageProcessorConfig.fromPreprocessorConfig({ size: { shortest_edge: 5 } }), "bad_config"],
    [() => Gemma3ImageProcessorConfig.fromPreprocessorConfig({ image_std: [0, 1, 1] }), "bad_config"],
    [() => config.with({ panAndScanMaxNumCrops: 1 }), "bad_config"],
    [() => preprocessGemma3([], config), "bad_source"],
    [() => preprocessGemma3([{ width: 0, height: 4, data: new Uint8Array(0) }], config), "zero_size"],
    [() => preprocessGemma3([{ width: 2, height: 2, data: new Uint8Array(5) }], config), "bad_source"],
  ];
  for (const [fn, kind] of kinds) {
    try {
      fn();
      assert.fail(`expected ImageError(${kind})`);
    } catch (e) {
      assert.ok(e instanceof ImageError, String(e));
      assert.equal(e.kind, kind, e.message);
    }
  }
  // and the processor still works afterwards
  assert.deepEqual(preprocessGemma3([pilRgb("gray_png")], config, { imageSize: 8 }).shape, [1, 3, 8, 8]);
});
