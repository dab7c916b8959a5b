/**
 * `imagesOffThread`: decoding and the family's processor in a worker give the same prompt and answer as on the
 * caller's thread (both families), and a broken image is the same typed ImageError (class, kind, name) after
 * crossing back.
 */
import assert from "node:assert/strict";
import { ImageError, loadModel } from "../../mod.ts";
import { findFfmpeg } from "../../src/vision/video.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

for (
  const [family, dir, image, maxContext] of [
    ["Gemma 3", "tests/fixtures/gemma3-vision-tiny", "square.png", 64],
    ["Gemma 4", "tests/fixtures/gemma4-vision-tiny", "landscape.png", 512],
  ] as const
) {
  Deno.test(`imagesOffThread (${family}): same answer as on this thread; typed errors cross back`, async () => {
    const model = await loadModel(`${ROOT}${dir}`, { backend: "cpu", maxContext });
    try {
      const ask = (bytes: Uint8Array) => ({
        messages: [{
          role: "user" as const,
          content: [{ type: "text" as const, text: "Describe" }, { type: "image" as const, bytes }],
        }],
      });
      const png = Deno.readFileSync(`${ROOT}${dir}/${image}`);
      const here = await model.generate(ask(png), { maxTokens: 6, temperature: 0 });
      const there = await model.generate(ask(png), { maxTokens: 6, temperature: 0, imagesOffThread: true });
      assert.equal(there.text, here.text);
      assert.equal(there.promptTokens, here.promptTokens);
      await assert.rejects(
        model.generate(ask(png.slice(0, 40)), { maxTokens: 2, imagesOffThread: true }),
        (e: unknown) => e instanceof ImageError && e.name === "ImageError" && e.kind === "truncated",
      );
    } finally {
      model.dispose();
    }
  });
}

let noFfmpeg = "";
try {
  findFfmpeg();
} catch (e) {
  noFfmpeg = (e as Error).message;
  console.log(`imagesOffThread video test skipped: ${noFfmpeg}`);
}

Deno.test({
  name: `imagesOffThread (Gemma 4 video): frames preprocessed in the worker give the same answer${
    noFfmpeg ? " (skipped: ffmpeg not installed)" : ""
  }`,
  ignore: !!noFfmpeg,
  fn: async () => {
    using model = await loadModel(`${ROOT}tests/fixtures/gemma4-vision-tiny`, { backend: "cpu", maxContext: 1024 });
    const bytes = Deno.readFileSync(`${ROOT}tests/fixtures/gemma4-media/testsrc.mp4`);
    const ask = {
      messages: [{
        role: "user" as const,
        content: [{ type: "video" as const, bytes }, { type: "text" as const, text: "Describe" }],
      }],
    };
    const videoLoading = { sampling: { doSampleFrames: true, numFrames: 4 } };
    const here = await model.generate(ask, { maxTokens: 4, temperature: 0, videoLoading });
    const there = await model.generate(ask, { maxTokens: 4, temperature: 0, videoLoading, imagesOffThread: true });
    assert.equal(there.promptTokens, here.promptTokens);
    assert.equal(there.text, here.text);
  },
});
