/**
 * Video input (src/vision/video.ts, ffmpeg as a subprocess) and the Gemma 4 video processor against
 * transformers 5.17 (tests/fixtures/gemma4-media, see make_gemma4_media_fixtures.py): transformers was given the
 * frames our ffmpeg command decodes plus the probed metadata, so sampling, resizing, values and the prompt
 * layout are compared exactly (same reasoning as gemma4_processor_test.ts: no tolerance is needed).
 * The decode itself is compared with the committed frames: byte-exact under the ffmpeg the fixtures were made
 * with (Debian 12's 5.1); another ffmpeg may round the YUV->RGB conversion differently, so there it may differ
 * by a few levels (max 4, mean < 0.5).
 * Tests that run ffmpeg are skipped, with the reason printed, when it is not installed.
 */
import assert from "node:assert/strict";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import {
  expandGemma4Prompt,
  Gemma4VideoProcessorConfig,
  gemma4VideoPromptText,
  preprocessGemma4Video,
} from "../../src/models/gemma4/processor.ts";
import { findFfmpeg } from "../../src/vision/video.ts";
import { VideoError } from "../../src/errors.ts";
import { loadVideo } from "../../src/models/gemma4/video.ts";
import { committedFrames, maxLevelDiff, media, mediaGunzip, mediaPath, sha256Hex } from "./gemma4_fixtures.ts";

const TOKENIZER_DIR = new URL("../fixtures/gemma4-tokenizer/", import.meta.url).pathname;
const MP4 = mediaPath(media.video.file);
const config = Gemma4VideoProcessorConfig.fromProcessorConfig(media.processorConfig);

let ffmpegVersion: string | undefined;
try {
  const { ffmpeg } = findFfmpeg();
  const out = new Deno.Command(ffmpeg, { args: ["-version"], stdout: "piped", stderr: "null" }).outputSync();
  ffmpegVersion = new TextDecoder().decode(out.stdout).split("\n")[0];
} catch (e) {
  console.log(`ffmpeg tests skipped: ${(e as Error).message}`);
}
const noFfmpeg = ffmpegVersion === undefined;
const sameFfmpeg =
  ffmpegVersion?.split(" ")[2]?.split(".")[0] === media.video.ffmpegVersion.split(" ")[2]?.split(".")[0];
const suffix = noFfmpeg ? " (skipped: ffmpeg not installed)" : "";

function compareFrames(ours: Uint8Array, theirs: Uint8Array, what: string) {
  assert.equal(ours.length, theirs.length);
  let max = 0, sum = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i] - theirs[i]);
    sum += d;
    if (d > max) max = d;
  }
  if (sameFfmpeg) assert.equal(max, 0, `${what}: decoded frames differ (same ffmpeg major version)`);
  else assert.ok(max <= 4 && sum / ours.length < 0.5, `${what}: max ${max}, mean ${sum / ours.length}`);
}

Deno.test({
  name: `gemma4 video: decode with ffmpeg, every frame${suffix}`,
  ignore: noFfmpeg,
  fn: async () => {
    const v = await loadVideo(MP4, { sampling: { doSampleFrames: false } });
    assert.deepEqual([v.totalNumFrames, v.fps, v.width, v.height], [40, 8, 64, 48]);
    assert.equal(v.duration, 5);
    const frames = committedFrames();
    v.frames.forEach((f, i) => compareFrames(f.data, frames[i].data, `frame ${i}`));
  },
});

Deno.test({
  name: `gemma4 video: default sampling (32 of 40 frames), timestamps, selected frames${suffix}`,
  ignore: noFfmpeg,
  fn: async () => {
    const v = await loadVideo(MP4, { config });
    const s = media.video.sampling.default;
    assert.deepEqual(v.frameIndices, s.frameIndices);
    assert.deepEqual(v.timestamps, s.timestamps);
    const frames = committedFrames(); // the select filter must not change a pixel
    v.frames.forEach((f, k) => compareFrames(f.data, frames[s.frameIndices[k]].data, `sampled frame ${k}`));
    const fps = await loadVideo({ bytes: Deno.readFileSync(MP4) }, { sampling: { numFrames: null, fps: 2 } });
    assert.deepEqual(fps.frameIndices, media.video.sampling.fps2.frameIndices);
    assert.deepEqual(
      (await loadVideo(MP4, { sampling: { numFrames: 7 } })).frameIndices,
      media.video.sampling.nf7.frameIndices,
    );
    // a clip shorter than num_frames: every frame (transformers would refuse), or refused when asked
    assert.equal((await loadVideo(MP4, { sampling: { numFrames: 64 } })).frames.length, 40);
    await assert.rejects(
      loadVideo(MP4, { sampling: { numFrames: 64 }, clampToTotal: false }),
      (e) => e instanceof VideoError && e.kind === "bad_source",
    );
  },
});

for (const [label, s] of Object.entries(media.video.sampling)) {
  Deno.test(`gemma4 video processor vs transformers: ${label} (${s.frameIndices.length} frames)`, async () => {
    const frames = committedFrames();
    const out = preprocessGemma4Video(s.frameIndices.map((i) => frames[i]), config);
    assert.deepEqual(out.shape, s.shape);
    assert.deepEqual([...new Set(out.numSoftTokens)], s.numSoftTokens);
    if (s.frame0U8) {
      const theirs = mediaGunzip(s.frame0U8);
      assert.deepEqual(maxLevelDiff(out.pixelValues, theirs), { max: 0, count: 0 });
    }
    assert.equal(await sha256Hex(out.positionIds), s.positionSha256, "position ids differ from transformers'");
    assert.equal(await sha256Hex(out.pixelValues), s.pixelSha256, "pixel values differ from transformers'");
  });
}

Deno.test("gemma4 video prompt: per-frame mm:ss text and ids as Gemma4Processor lays them out", async () => {
  const p = media.video.prompt, s = media.video.sampling.default;
  const text = expandGemma4Prompt(p.text, {
    videos: [{ numSoftTokens: s.numSoftTokens[0], timestamps: s.timestamps }],
  });
  assert.equal(text, p.expandedText);
  assert.ok(text.startsWith("Describe 00:00 <|image><|video|>"));
  assert.ok(text.includes(gemma4VideoPromptText(s.numSoftTokens[0], [s.timestamps[31]])));
  const tokenizer = await Tokenizer.fromFiles(TOKENIZER_DIR);
  const ids = tokenizer.encode(text);
  assert.deepEqual(ids, p.inputIds);
  const video = tokenizer.tokenToId("<|video|>")!;
  assert.deepEqual(ids.map((t) => (t === video ? 2 : 0)), p.mmTokenTypeIds);
});

function tempLeftovers(): string[] {
  const dir = Deno.env.get("TMPDIR") ?? "/tmp";
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.startsWith("gemmakit-video-"));
}

Deno.test({
  name: `gemma4 video: bad input is a typed error and the next call works${suffix}`,
  ignore: noFfmpeg,
  fn: async () => {
    const before = tempLeftovers().length;
    const mp4 = Deno.readFileSync(MP4);
    const next = async () => assert.equal((await loadVideo(MP4, { sampling: { numFrames: 4 } })).frames.length, 4);
    const cases: [string, () => Promise<unknown>, string][] = [
      ["a PNG", () => loadVideo(mediaPath("very_wide_png.png")), "not_a_video"],
      ["text bytes", () => loadVideo(new TextEncoder().encode("not a video at all, just text")), "not_a_video"],
      ["truncated", () => loadVideo(mp4.slice(0, mp4.length >> 1)), "corrupt"],
      ["empty", () => loadVideo(new Uint8Array(0)), "not_a_video"],
      ["missing file", () => loadVideo("/nonexistent/video.mp4"), "io"],
      ["a URL", () => loadVideo("https://example.com/v.mp4"), "bad_source"],
      ["ffmpeg pseudo-protocol", () => loadVideo("pipe:0"), "bad_source"],
      ["over the pixel limit", () => loadVideo(MP4, { maxPixels: 1000 }), "too_large"],
      ["over the duration limit", () => loadVideo(MP4, { maxDurationSeconds: 2 }), "too_long"],
      ["timeout", () => loadVideo(MP4, { timeoutMs: 1 }), "timeout"],
      ["aborted", () => loadVideo(MP4, { signal: AbortSignal.abort() }), "aborted"],
      ["bad ffmpeg option", () => loadVideo(MP4, { ffmpeg: "/nonexistent/ffmpeg" }), "ffmpeg_missing"],
    ];
    for (const [what, call, kind] of cases) {
      await assert.rejects(call(), (e) => {
        if (!(e instanceof VideoError)) throw new Error(`${what}: not a VideoError: ${e}`);
        assert.equal(e.kind, kind, `${what}: ${e.message}`);
        return true;
      }, what);
      await next();
    }
    // $FFMPEG pointing to a bad path: refused with the fix named, then served again once it is unset
    const saved = Deno.env.get("FFMPEG");
    Deno.env.set("FFMPEG", "/nonexistent/bin/ffmpeg");
    try {
      await assert.rejects(loadVideo(MP4), (e) => {
        return e instanceof VideoError && e.kind === "ffmpeg_missing" && /FFMPEG/.test(e.message) &&
          /apt-get install ffmpeg/.test(e.hint ?? "");
      });
    } finally {
      if (saved === undefined) Deno.env.delete("FFMPEG");
      else Deno.env.set("FFMPEG", saved);
    }
    await next();
    assert.equal(tempLeftovers().length, before, "temporary video files were left behind");
  },
});
