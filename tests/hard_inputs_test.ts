/**
 * Issue 14's hostile inputs, each a regression test: every one is refused with a typed error, quickly, without
 * the allocation or the work its numbers ask for.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { BoundsError, ConfigError, FormatError, ImageError, VideoError } from "../src/errors.ts";
import { openSafetensorsDir } from "../src/formats/safetensors.ts";
import { parseGemma3Config } from "../src/models/gemma3/config.ts";
import { parseGemma4Config } from "../src/models/gemma4/config.ts";
import { Gemma3ImageProcessorConfig } from "../src/models/gemma3/processor.ts";
import { ropeInvFreq } from "../src/ops/rope.ts";
import { decodeImage, loadImage } from "../src/vision/image.ts";
import { resizeBilinearAntialias } from "../src/vision/resize.ts";
import { ChatTemplate } from "../src/tokenizer/chat_template.ts";
import { decodeDataUrl } from "../src/runtime/bounds.ts";
import { decodeVideo } from "../src/vision/video.ts";
import { pngWithRaw, tinyGif, tinyJpeg } from "./vision/hostile_images.ts";

function quick<T>(ms: number, fn: () => T): T {
  const t = performance.now();
  const out = fn();
  assert.ok(performance.now() - t < ms, `took ${Math.round(performance.now() - t)} ms, over ${ms}`);
  return out;
}

Deno.test("a shard name with a NUL byte or over 255 bytes is a FormatError, not a TypeError from stat", () => {
  const dir = Deno.makeTempDirSync();
  try {
    for (const shard of ["a\0b.safetensors", "x".repeat(300) + ".safetensors"]) {
      Deno.writeTextFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: { w: shard } }));
      assert.throws(() => openSafetensorsDir(dir), FormatError);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("config integers past their bound are ConfigErrors naming the field, before any array is sized", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ model_type: "gemma3_text", num_hidden_layers: 1_000_000 }, /num_hidden_layers must be an integer in 1\.\.1024/],
    [{ model_type: "gemma3_text", sliding_window: 2 ** 31 }, /sliding_window must be an integer/],
    [{ model_type: "gemma3_text", head_dim: 2 ** 40 }, /head_dim/],
  ];
  for (const [cfg, re] of cases) {
    const e = quick(200, () => assert.throws(() => parseGemma3Config(cfg), ConfigError) as unknown);
    void e;
    try {
      parseGemma3Config(cfg);
    } catch (err) {
      assert.match((err as ConfigError).message, re);
    }
  }
  assert.throws(
    () => parseGemma4Config({ model_type: "gemma4_text", num_hidden_layers: 1e6, vocab_size: 10, hidden_size: 8 }),
    ConfigError,
  );
});

Deno.test("ropeInvFreq refuses a huge head dim (BoundsError) instead of spinning", () => {
  assert.throws(() => quick(50, () => ropeInvFreq({ headDim: 2 ** 40, theta: 1e4 })), BoundsError);
});

Deno.test("malformed data URLs and base64 are typed errors (no URIError / DOMException)", async () => {
  for (const url of ["data:image/png,%E0%A4%A", "data:image/png;base64,@@@", "data:,", "data:image/png;base64"]) {
    await assert.rejects(loadImage(url), ImageError);
  }
  assert.throws(() => decodeDataUrl("data:text/plain,%zz", 10), { name: "DataUrlError" });
  assert.throws(() => decodeDataUrl("data:;base64," + "A".repeat(100), 10), { name: "DataUrlError" });
});

Deno.test("a processor size of 2^53 is refused as bad_config", () => {
  assert.throws(
    () => Gemma3ImageProcessorConfig.fromPreprocessorConfig({ size: { height: 2 ** 53, width: 2 ** 53 } }),
    ImageError,
  );
});

Deno.test("decoders honour the limits before allocating: PNG inflate bomb, tiny GIF and JPEG with huge sizes", () => {
  const bomb = pngWithRaw(100, 100, 64 << 20); // 64 MiB of zeros behind a 100x100 header
  for (const bytes of [bomb, tinyGif(7000, 7000), tinyGif(10, 10, 60000, 60000), tinyJpeg(7000, 7000)]) {
    const before = Deno.memoryUsage().rss;
    assert.throws(() => quick(1000, () => decodeImage(bytes)), ImageError);
    assert.ok(Deno.memoryUsage().rss - before < 200 << 20, "allocated over 200 MB");
  }
});

Deno.test("resizing a 1x4,000,000 image is refused by the work bound, not run for a minute", () => {
  const src = { width: 1, height: 4_000_000, channels: 3, data: new Uint8Array(12_000_000) };
  const e = quick(100, () => assert.throws(() => resizeBilinearAntialias(src, 896, 896), ImageError) as unknown);
  void e;
});

Deno.test("image bytes never enter the template: a 9 MB image part renders in milliseconds", () => {
  const t = new ChatTemplate("{% for m in messages %}{% for p in m.content %}[{{ p.type }}]{% endfor %}{% endfor %}");
  const bytes = new Uint8Array(9 << 20);
  const text = quick(
    500,
    () => t.render([{ role: "user", content: [{ type: "image", bytes }, { type: "text", text: "x" }] }]),
  );
  assert.equal(text, "[image][text]");
});

Deno.test("a video given as bytes that is an HLS playlist is refused; ffmpeg opens no other file", async (t) => {
  try {
    new Deno.Command("ffprobe", { args: ["-version"], stdout: "null", stderr: "null" }).outputSync();
  } catch {
    return void t.step({ name: "skipped: no ffmpeg", ignore: true, fn() {} });
  }
  const playlist = new TextEncoder().encode(
    "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n/etc/hostname\n#EXT-X-ENDLIST\n",
  );
  const err = await decodeVideo({ bytes: playlist }).catch((e) => e);
  assert.ok(err instanceof VideoError, String(err));
  assert.doesNotMatch(err.message, /gemmakit-video-|\/tmp\//, "the temp path is not echoed");
});
