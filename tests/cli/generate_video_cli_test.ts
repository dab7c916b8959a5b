/**
 * `deno task generate --video` end to end on the tiny Gemma 4 multimodal fixture with the committed clip
 * (tests/fixtures/gemma4-media/testsrc.mp4), in a child process: the prompt is the one the video path of the
 * Model API builds (tests/models/gemma4_video_file_test.ts checks those ids against transformers), errors exit as
 * --image's do. Skipped, with the reason printed, when ffmpeg is not installed.
 */
import assert from "node:assert/strict";
import { findFfmpeg } from "../../src/vision/video.ts";
import { loadModel } from "../../src/models/load.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const MODEL = `${ROOT}tests/fixtures/gemma4-vision-tiny`;
const VIDEO = `${ROOT}tests/fixtures/gemma4-media/testsrc.mp4`;
const TEXT_MODEL = `${ROOT}tests/fixtures/gemma4-text-e`;

let noFfmpeg = "";
try {
  findFfmpeg();
} catch (e) {
  noFfmpeg = (e as Error).message;
  console.log(`generate --video tests skipped: ${noFfmpeg}`);
}
const suffix = noFfmpeg ? " (skipped: ffmpeg not installed)" : "";

async function cli(args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}src/cli/generate.ts`, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { GEMMAKIT_BACKEND: "cpu" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test({
  name: `generate --video (repeatable) prompts with the committed clip's frames${suffix}`,
  ignore: !!noFfmpeg,
  fn: async () => {
    const sampling = { sampling: { doSampleFrames: true, numFrames: 4, fps: null } };
    using model = await loadModel(MODEL, { backend: "cpu" });
    const want = await model.generate({
      messages: [{ role: "user", content: [{ type: "video", path: VIDEO }, { type: "text", text: "Describe" }] }],
    }, { maxTokens: 4, temperature: 0, videoLoading: sampling });
    const one = await cli(
      [
        "--model",
        MODEL,
        "--video",
        VIDEO,
        "--video-frames",
        "4",
        "--max-tokens",
        "4",
        "--temperature",
        "0",
        "Describe",
      ],
    );
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stderr, new RegExp(`prompt ${want.promptTokens} tokens`));
    assert.match(one.stderr, new RegExp(`generated ${want.completionTokens} `));
    // An image and two videos, in that order before the text, as the Model API lays them out.
    const both = await model.generate({
      messages: [{
        role: "user",
        content: [
          { type: "image", path: `${MODEL}/landscape.png` },
          { type: "video", path: VIDEO },
          { type: "video", path: VIDEO },
          { type: "text", text: "Compare" },
        ],
      }],
    }, { maxTokens: 1, temperature: 0, videoLoading: sampling });
    const two = await cli([
      "--model",
      MODEL,
      "--image",
      `${MODEL}/landscape.png`,
      "--video",
      VIDEO,
      "--video",
      VIDEO,
      "--video-frames",
      "4",
      "--max-tokens",
      "2",
      "Compare",
    ]);
    assert.equal(two.code, 0, two.stderr);
    const n = Number(/prompt (\d+) tokens/.exec(two.stderr)![1]);
    assert.equal(n, both.promptTokens);
    assert.ok(n > 2 * want.promptTokens, `${n} prompt tokens`);
  },
});

Deno.test({
  name:
    `generate --video: a text-only model, an unreadable video, --raw and bad --video-frames are clear errors${suffix}`,
  ignore: !!noFfmpeg,
  fn: async () => {
    const text = await cli(["--model", TEXT_MODEL, "--video", VIDEO, "--prompt", "hi"]);
    assert.equal(text.code, 1);
    assert.match(text.stderr, /no vision tower|does not take video/);
    const missing = await cli(["--model", MODEL, "--video", `${MODEL}/nope.mp4`, "--prompt", "hi"]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /nope\.mp4/);
    const notVideo = await cli(["--model", MODEL, "--video", `${MODEL}/config.json`, "--prompt", "hi"]);
    assert.equal(notVideo.code, 1);
    assert.match(notVideo.stderr, /could not read the video/);
    const raw = await cli(["--model", MODEL, "--raw", "--video", VIDEO, "hi"]);
    assert.equal(raw.code, 2);
    const frames = await cli(["--model", MODEL, "--video", VIDEO, "--video-frames", "0", "hi"]);
    assert.equal(frames.code, 2);
    assert.match(frames.stderr, /--video-frames/);
  },
});
