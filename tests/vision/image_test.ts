/**
 * Image decoding against Pillow (the transformers load_image route: open, exif_transpose, convert("RGB")),
 * from tests/fixtures/images (tests/fixtures/make_image_fixtures.py), and every bad-input case as a typed error.
 */
import assert from "node:assert/strict";
import { decodeImage, ImageError, type ImageErrorKind, loadImage, probeImage } from "../../src/vision/mod.ts";
import { expected, fixtureBytes, fixturePath, gunzipFixture, pilRgb, rejected } from "./fixtures.ts";

/**
 * JPEG tolerance. jpeg-js's IDCT is not libjpeg-turbo's (Pillow's): the 1-component JPEG shows the IDCT alone
 * differs by at most 1 level. Colour adds libjpeg's YCbCr -> RGB, which multiplies a 1-level chroma step by up
 * to 1.772 (B from Cb) on top of Y's own step: at most 3 levels (measured: 3 on every colour fixture, mean
 * 0.13-0.17 per sample). After /127.5 normalisation that is < 0.024, far below what moves a vision tower.
 */
const JPEG_MAX_DIFF = 3;
const JPEG_MEAN_DIFF = 0.25;

function diff(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  assert.equal(a.length, b.length);
  let max = 0, sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (d > max) max = d;
    sum += d;
  }
  return { max, mean: sum / a.length };
}

for (const [name, f] of Object.entries(expected.images)) {
  if (!f.rgb) continue;
  Deno.test(`loadImage ${name} (${f.covers}) matches Pillow`, async () => {
    const img = await loadImage(fixturePath(f.file));
    const ref = pilRgb(name);
    assert.deepEqual([img.width, img.height], [ref.width, ref.height]);
    const d = diff(img.data, ref.data);
    if (f.format === "JPEG") {
      const maxAllowed = f.pilMode === "L" ? 1 : JPEG_MAX_DIFF;
      assert.ok(d.max <= maxAllowed && d.mean <= JPEG_MEAN_DIFF, `${name}: max ${d.max}, mean ${d.mean.toFixed(3)}`);
    } else {
      assert.equal(d.max, 0, `${name}: PNG/GIF decoding must be pixel-exact with Pillow`);
    }
  });
}

Deno.test("EXIF orientation: applied by default (6 turns 40x24 into 24x40), stored layout with the option off", async () => {
  const file = fixturePath(expected.images.exif6_jpeg.file);
  const upright = await loadImage(file);
  assert.deepEqual([upright.width, upright.height], [24, 40]);
  const stored = await loadImage(file, { applyExifOrientation: false });
  assert.deepEqual([stored.width, stored.height], [40, 24]);
  // Rotating 90 degrees clockwise: upright (x, y) shows stored (y, H - 1 - x).
  for (const [x, y] of [[0, 0], [5, 17], [23, 39]]) {
    const u = (y * 24 + x) * 3, s = (((24 - 1 - x) * 40) + y) * 3;
    assert.deepEqual([...upright.data.subarray(u, u + 3)], [...stored.data.subarray(s, s + 3)]);
  }
});

Deno.test("alpha: dropped by default (as transformers), composited onto alphaBackground like Pillow's alpha_composite", async () => {
  const file = fixturePath(expected.images.rgba_png.file);
  const onWhite = await loadImage(file, { alphaBackground: expected.rgbaOnWhite.background });
  assert.equal(diff(onWhite.data, gunzipFixture(expected.rgbaOnWhite.rgb)).max, 0);
  assert.notDeepEqual(onWhite.data, (await loadImage(file)).data);
});

Deno.test("every source shape gives the same image", async () => {
  const file = fixturePath(expected.images.palette_png.file);
  const bytes = fixtureBytes(expected.images.palette_png.file);
  const b64 = btoa(String.fromCharCode(...bytes));
  const want = pilRgb("palette_png").data;
  const sources = [
    file,
    { path: file },
    bytes,
    bytes.slice().buffer,
    { bytes },
    { base64: b64 },
    { base64: b64.replace(/(.{60})/g, "$1\n") }, // MIME line breaks
    `data:image/png;base64,${b64}`,
    { url: `data:image/png;base64,${b64}` },
    { base64: `data:image/png;base64,${b64}` },
    { url: new URL(`file://${file}`).href },
  ];
  for (const s of sources) assert.deepEqual((await loadImage(s)).data, want);
});

Deno.test("probeImage reads size from the header only", () => {
  assert.deepEqual(probeImage(fixtureBytes(expected.images.rgb_jpeg.file)), { format: "jpeg", width: 64, height: 48 });
  assert.deepEqual(probeImage(fixtureBytes(expected.images.wide_png.file)), { format: "png", width: 150, height: 50 });
});

/** A PNG whose IHDR claims another size (CRC not fixed: the header check must refuse it before decoding). */
function pngWithSize(width: number, height: number): Uint8Array {
  const b = fixtureBytes(expected.images.gray_png.file).slice();
  const v = new DataView(b.buffer);
  v.setUint32(16, width);
  v.setUint32(20, height);
  return b;
}

function jpegWithSize(width: number, height: number): Uint8Array {
  const b = fixtureBytes(expected.images.rgb_jpeg.file).slice();
  for (let i = 2; i < b.length - 9; i++) {
    if (b[i] === 0xff && b[i + 1] === 0xc0) {
      new DataView(b.buffer).setUint16(i + 5, height);
      new DataView(b.buffer).setUint16(i + 7, width);
      return b;
    }
  }
  throw new Error("no SOF0 in fixture");
}

const good = fixtureBytes(expected.images.rgb_jpeg.file);
const goodPng = fixtureBytes(expected.images.rgba_png.file);
const badInputs: [string, () => Promise<unknown>, ImageErrorKind, RegExp][] = [
  [
    "text is not an image",
    () => loadImage(new TextEncoder().encode("hello, I am not an image")),
    "not_an_image",
    /not a PNG, JPEG or GIF/,
  ],
  ["empty bytes", () => loadImage(new Uint8Array(0)), "not_an_image", /empty/],
  ["truncated JPEG", () => loadImage(good.slice(0, Math.floor(good.length * 0.6))), "truncated", /cut short|ends/],
  ["JPEG cut inside its headers", () => loadImage(good.slice(0, 40)), "truncated", /ends/],
  ["truncated PNG", () => loadImage(goodPng.slice(0, Math.floor(goodPng.length * 0.7))), "truncated", /IEND|cut short/],
  ["PNG cut inside IHDR", () => loadImage(goodPng.slice(0, 20)), "truncated", /header/],
  ["truncated GIF", () => loadImage(fixtureBytes(expected.images.anim_gif.file).slice(0, 200)), "truncated", /GIF/],
  ["zero-width PNG", () => loadImage(pngWithSize(0, 27)), "zero_size", /0x27/],
  ["zero-height JPEG", () => loadImage(jpegWithSize(64, 0)), "zero_size", /64x0/],
  [
    "PNG over the pixel limit",
    () => loadImage(pngWithSize(100_000, 100_000)),
    "too_large",
    /over the limit of 50000000/,
  ],
  ["JPEG over the pixel limit", () => loadImage(jpegWithSize(65_000, 65_000)), "too_large", /pixels is over/],
  ["maxPixels option", () => loadImage(goodPng, { maxPixels: 100 }), "too_large", /limit of 100\b/],
  [
    "WebP is unsupported",
    () => loadImage(fixturePath(expected.images.webp_unsupported.file)),
    "unsupported_format",
    /WebP/,
  ],
  ["BMP is unsupported", () => loadImage(new Uint8Array([0x42, 0x4d, 1, 2, 3, 4])), "unsupported_format", /BMP/],
  ["bad base64", () => loadImage({ base64: "not base64 at all!!" }), "bad_source", /base64/],
  ["data URL without data", () => loadImage("data:image/png;base64"), "bad_source", /','/],
  ["remote URL", () => loadImage({ url: "https://example.com/cat.png" }), "bad_source", /remote/],
  ["missing file", () => loadImage("/nonexistent/dir/cat.png"), "io", /no such file/],
  ["a directory", () => loadImage(fixturePath("")), "io", /not a file/],
  ["not a source", () => loadImage({ foo: 1 } as never), "bad_source", /path, bytes/],
];

for (const [label, run, kind, message] of badInputs) {
  Deno.test(`bad input: ${label} -> ImageError(${kind}), then the next image still loads`, async () => {
    const e = await rejected(run(), ImageError);
    assert.equal(e.kind, kind, e.message);
    assert.match(e.message, message);
    assert.equal(e.op, "loadImage");
    const next = await loadImage(good);
    assert.deepEqual([next.width, next.height], [64, 48]);
  });
}

Deno.test("decodeImage refuses a corrupt PNG (bad CRC) as corrupt", () => {
  const b = goodPng.slice();
  b[40] ^= 0xff; // inside IDAT data
  try {
    decodeImage(b);
    assert.fail("expected an ImageError");
  } catch (e) {
    assert.ok(e instanceof ImageError, String(e));
    assert.ok(e.kind === "corrupt" || e.kind === "truncated", e.kind);
  }
});
