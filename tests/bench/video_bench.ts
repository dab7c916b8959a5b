/**
 * Video input benchmark: frames per second through ffmpeg decoding + the Gemma 4 video processor (resize,
 * rescale, patchify), on a synthetic clip ffmpeg makes (testsrc, H.264). CPU only (no kernels involved).
 *
 *   deno task bench --synthetic video [--size 1280x720] [--fps 30] [--seconds 10] [--frames 32] [--runs 3]
 *       [--tokens 70] [--json PATH]
 *
 * Reports the best of `runs` for: decode (loadVideo: probe + decode + select of the sampled frames), preprocess
 * (preprocessGemma4Video of those frames), and both; frames/s counts sampled frames.
 */
import { parseArgs } from "node:util";
import { Gemma4VideoProcessorConfig, preprocessGemma4Video } from "../../src/models/gemma4/processor.ts";
import { findFfmpeg } from "../../src/vision/video.ts";
import { loadVideo } from "../../src/models/gemma4/video.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    synthetic: { type: "string" }, // "video", from bench.ts
    threads: { type: "string" },
    size: { type: "string", default: "1280x720" },
    fps: { type: "string", default: "30" },
    seconds: { type: "string", default: "10" },
    frames: { type: "string", default: "32" },
    runs: { type: "string", default: "3" },
    tokens: { type: "string", default: "70" },
    json: { type: "string" },
  },
});
const { ffmpeg } = findFfmpeg();
const dir = await Deno.makeTempDir({ prefix: "gemmakit-video-bench-" });
try {
  const file = `${dir}/clip.mp4`;
  const gen = await new Deno.Command(ffmpeg, {
    args: [
      "-v",
      "error",
      "-f",
      "lavfi",
      "-i",
      `testsrc2=size=${values.size}:rate=${values.fps}:duration=${values.seconds}`,
      "-c:v",
      "libx264",
      "-preset",
      "veryfast",
      "-pix_fmt",
      "yuv420p",
      file,
    ],
  }).output();
  if (!gen.success) throw new Error(`ffmpeg could not make the clip: ${new TextDecoder().decode(gen.stderr)}`);
  const config = Gemma4VideoProcessorConfig.gemma4Default().with({
    numFrames: Number(values.frames),
    maxSoftTokens: Number(values.tokens),
  });
  let best = { decode: Infinity, preprocess: Infinity, total: Infinity };
  let frames = 0;
  for (let r = 0; r < Number(values.runs); r++) {
    const t0 = performance.now();
    const v = await loadVideo(file, { config });
    const t1 = performance.now();
    preprocessGemma4Video(v.frames, config);
    const t2 = performance.now();
    frames = v.frames.length;
    best = {
      decode: Math.min(best.decode, t1 - t0),
      preprocess: Math.min(best.preprocess, t2 - t1),
      total: Math.min(best.total, t2 - t0),
    };
  }
  const result = {
    clip: `${values.size} @ ${values.fps} fps, ${values.seconds} s, H.264`,
    sampledFrames: frames,
    maxSoftTokens: Number(values.tokens),
    decodeMs: +best.decode.toFixed(1),
    preprocessMs: +best.preprocess.toFixed(1),
    framesPerSecond: {
      decode: +(frames / best.decode * 1000).toFixed(1),
      preprocess: +(frames / best.preprocess * 1000).toFixed(1),
      decodeAndPreprocess: +(frames / best.total * 1000).toFixed(1),
    },
  };
  console.log(JSON.stringify(result, null, 2));
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(result, null, 2) + "\n");
} finally {
  await Deno.remove(dir, { recursive: true });
}
