/**
 * A video FILE end to end on the tiny Gemma 4 multimodal fixture: the committed clip (tests/fixtures/gemma4-media/
 * testsrc.mp4) goes through loadVideo (ffmpeg) → the video processor → the prompt expansion → generate.
 *
 * What transformers said about this clip (tests/fixtures/gemma4-media/expected.json, Gemma4Processor with its default
 * video processor: 32 frames sampled uniformly, 70 soft tokens per frame, patch 16) is matched by sampling the same
 * way: the tiny checkpoint's own processor samples nothing (do_sample_frames false) and has patch 4, but its soft
 * token count per frame is the same (the budget is in patches, and 64x48 keeps its aspect in either), so the
 * frame indices, timestamps and the expanded prompt ids must be transformers' exactly. With the checkpoint's own
 * settings (every frame) the ids must be what preprocessGemma4Video + expandGemma4Prompt make of the decoded frames,
 * and greedy generation from the file must equal feeding the same frames (transformers' decode, committed as
 * testsrc.rgb.gz) as arrays to the model's prefill. A bad video is a VideoError, and the next request is served.
 * Skipped, with the reason printed, when ffmpeg is not installed.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../src/models/load.ts";
import { loadGemma4Multimodal } from "../../src/models/gemma4/multimodal.ts";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { argmax } from "../../src/ops/reduce.ts";
import { ContextLengthError } from "../../src/errors.ts";
import { findFfmpeg } from "../../src/vision/video.ts";
import { VideoError } from "../../src/errors.ts";
import { loadVideo } from "../../src/models/gemma4/video.ts";
import {
  expandGemma4Prompt,
  Gemma4VideoProcessorConfig,
  preprocessGemma4Video,
} from "../../src/models/gemma4/processor.ts";
import { parseGemma4VisionConfig } from "../../src/models/gemma4/vision_config.ts";
import { encodeGemma4MediaPrompt } from "../../src/models/gemma4/media.ts";
import type { ChatMessage } from "../../src/tokenizer/chat_template.ts";
import type { RgbImage } from "../../src/vision/image.ts";
import { committedFrames, media, mediaPath } from "../vision/gemma4_fixtures.ts";
import { G4_VISION_FIXTURE } from "./gemma4_vision_fixture.ts";

const MP4 = mediaPath(media.video.file);
const proc = JSON.parse(Deno.readTextFileSync(`${G4_VISION_FIXTURE}/processor_config.json`));
const tinyVideo = Gemma4VideoProcessorConfig.fromProcessorConfig(proc, {});
/** transformers' default sampling, as the media fixture used it. */
const DEFAULT_SAMPLING = { doSampleFrames: true, numFrames: 32 };

let noFfmpeg = "";
try {
  findFfmpeg();
} catch (e) {
  noFfmpeg = (e as Error).message;
  console.log(`video file tests skipped: ${noFfmpeg}`);
}
const suffix = noFfmpeg ? " (skipped: ffmpeg not installed)" : "";

const ask = (video: Record<string, unknown>): ChatMessage[] => [{
  role: "user",
  content: [{ type: "video", ...video }, { type: "text", text: "Describe" }],
}];

function support() {
  const config = parseGemma4VisionConfig(JSON.parse(Deno.readTextFileSync(`${G4_VISION_FIXTURE}/config.json`)));
  return { kind: "gemma4" as const, config, image: undefined as never, video: tinyVideo };
}

Deno.test({
  name: `gemma4 video file: sampled as transformers' processor does, prompt ids equal the fixture's${suffix}`,
  ignore: !!noFfmpeg,
  fn: async () => {
    const want = media.video.sampling.default;
    const v = await loadVideo(MP4, { config: tinyVideo, sampling: DEFAULT_SAMPLING });
    assert.deepEqual(v.frameIndices, want.frameIndices);
    assert.deepEqual(v.timestamps, want.timestamps);
    const p = preprocessGemma4Video(v.frames, tinyVideo);
    assert.equal(p.shape[0], want.frameIndices.length);
    assert.deepEqual(p.numSoftTokens.slice(0, 1), want.numSoftTokens);
    using model = await loadModel(G4_VISION_FIXTURE, { backend: "cpu", maxContext: 1024 });
    // The fixture's raw processor text, expanded with what we measured, tokenized by the same tokenizer.
    const expanded = expandGemma4Prompt(media.video.prompt.text, {
      videos: [{ numSoftTokens: p.numSoftTokens[0], timestamps: v.timestamps }],
    });
    assert.equal(expanded, media.video.prompt.expandedText);
    assert.deepEqual(model.tokenizer.encode(expanded, { addSpecialTokens: false }), media.video.prompt.inputIds);
    // Through the Model API: the rendered chat with the same frames, and a generation over exactly that prompt.
    const msgs = ask({ path: MP4 });
    const { ids, media: m } = await encodeGemma4MediaPrompt(model.tokenizer, msgs, { addGenerationPrompt: true }, {
      ...support(),
      video: tinyVideo.with(DEFAULT_SAMPLING),
    });
    const chat = model.tokenizer.applyChatTemplate(msgs, { addGenerationPrompt: true });
    const wantIds = model.tokenizer.encode(
      expandGemma4Prompt(chat, { videos: [{ numSoftTokens: want.numSoftTokens[0], timestamps: want.timestamps }] }),
      { addSpecialTokens: false },
    );
    assert.deepEqual(ids, wantIds);
    assert.equal(m.videoFrames!.count, 32);
    // 32 frames of 63 soft tokens are over the tiny model's 1024 positions: refused before the tower runs.
    await assert.rejects(
      model.generate({ messages: msgs }, {
        maxTokens: 3,
        temperature: 0,
        videoLoading: { sampling: DEFAULT_SAMPLING },
      }),
      ContextLengthError,
    );
    assert.equal(model.visionCacheStats()!.misses, 0);
  },
});

/** Prefill with the media, then greedy decode steps: the model without the Model API's decoding of files. */
function greedy(frames: RgbImage[], ids: number[], steps: number): number[] {
  using backend = Backend.open({ backend: "cpu" });
  const model = loadGemma4Multimodal(backend, G4_VISION_FIXTURE, { maxContext: 1024 });
  try {
    const p = preprocessGemma4Video(frames, tinyVideo);
    const videoFrames = {
      pixelValues: p.pixelValues,
      positionIds: p.positionIds,
      count: p.shape[0],
      maxPatches: p.shape[1],
    };
    using ws = new Workspace(backend);
    using logits = Tensor.empty(backend, [1, model.vocabSize]);
    using token = Tensor.empty(backend, [1], "i32");
    using position = Tensor.empty(backend, [1], "i32");
    const out: number[] = [];
    {
      using first = model.prefill(ids, { videoFrames });
      using next = argmax(first);
      out.push(next.toArray()[0]);
    }
    for (let i = 1; i < steps; i++) {
      token.write([out.at(-1)!]);
      position.write([ids.length + i - 1]);
      model.decodeStep(token, position, ws, logits);
      using next = argmax(logits);
      out.push(next.toArray()[0]);
    }
    return out;
  } finally {
    model.dispose();
  }
}

Deno.test({
  name: `gemma4 video file: generation from the file equals feeding the same frames as arrays${suffix}`,
  ignore: !!noFfmpeg,
  fn: async () => {
    using model = await loadModel(G4_VISION_FIXTURE, { backend: "cpu", maxContext: 1024 });
    const msgs = ask({ path: MP4 });
    // The checkpoint samples nothing (all 40 frames: over its 1024 positions); 7 frames, as the fixture's nf7 case.
    const nf7 = media.video.sampling.nf7;
    const videoLoading = { sampling: { doSampleFrames: true, numFrames: 7 } };
    const v = await loadVideo(MP4, { config: tinyVideo, ...videoLoading });
    assert.deepEqual(v.frameIndices, nf7.frameIndices);
    assert.deepEqual(v.timestamps, nf7.timestamps);
    const p = preprocessGemma4Video(v.frames, tinyVideo);
    const chat = model.tokenizer.applyChatTemplate(msgs, { addGenerationPrompt: true });
    const ids = model.tokenizer.encode(
      expandGemma4Prompt(chat, { videos: [{ numSoftTokens: p.numSoftTokens[0], timestamps: v.timestamps }] }),
      { addSpecialTokens: false },
    );
    const got = await encodeGemma4MediaPrompt(model.tokenizer, msgs, { addGenerationPrompt: true }, support(), {
      videoLoading,
    });
    assert.deepEqual(got.ids, ids);
    const steps = 6;
    const r = await model.generate({ messages: msgs }, { maxTokens: steps, temperature: 0, videoLoading });
    assert.equal(r.promptTokens, ids.length);
    // transformers' decode of the clip (byte-exact with Debian 12's ffmpeg 5.1, which the fixture was made with).
    const all = committedFrames();
    const committed = nf7.frameIndices.map((i) => all[i]);
    const sameFfmpeg = v.frames.every((f, i) => f.data.every((b, j) => b === committed[i].data[j]));
    const frames = sameFfmpeg ? committed : v.frames;
    if (!sameFfmpeg) console.log("another ffmpeg decodes differently: feeding the frames loadVideo decoded instead");
    const want = greedy(frames, ids, steps);
    assert.deepEqual(r.tokens, want.slice(0, r.tokens.length));
    assert.ok(r.tokens.length > 0);
    // The same file as bytes gives the same answer.
    // A full prefill (no KV reuse), so the frames go through the encoder cache.
    const b = await model.generate({ messages: ask({ bytes: Deno.readFileSync(MP4) }) }, {
      maxTokens: steps,
      temperature: 0,
      videoLoading,
      reusePrefix: false,
    });
    assert.deepEqual(b.tokens, r.tokens);
    // The cache is keyed by each frame's pixels: the bytes decoded to the very same 7 frames.
    assert.deepEqual([model.visionCacheStats()!.misses, model.visionCacheStats()!.hits], [7, 7]);
  },
});

Deno.test({
  name: `gemma4 video file: a bad video is a VideoError, and the next request is served${suffix}`,
  ignore: !!noFfmpeg,
  fn: async () => {
    using model = await loadModel(G4_VISION_FIXTURE, { backend: "cpu", maxContext: 1024 });
    const mp4 = Deno.readFileSync(MP4);
    const bad: [string, Record<string, unknown>, string][] = [
      ["text bytes", { bytes: new TextEncoder().encode("not a video") }, "not_a_video"],
      ["truncated", { bytes: mp4.slice(0, mp4.length >> 1) }, "corrupt"],
      ["missing file", { path: `${G4_VISION_FIXTURE}/nope.mp4` }, "io"],
      ["a still image", { path: `${G4_VISION_FIXTURE}/landscape.png` }, "not_a_video"],
    ];
    for (const [what, src, kind] of bad) {
      await assert.rejects(
        model.generate({ messages: ask(src) }, { maxTokens: 2, temperature: 0 }),
        (e) => e instanceof VideoError && e.kind === kind,
        what,
      );
    }
    assert.equal(model.visionCacheStats()!.misses, 0, "the tower ran for a refused video");
    const ok = await model.generate({ messages: ask({ path: MP4 }) }, {
      maxTokens: 2,
      temperature: 0,
      videoLoading: { sampling: { numFrames: 4, doSampleFrames: true } },
    });
    assert.ok(ok.completionTokens > 0);
  },
});
