/**
 * Gemma 4 vision benchmark: encode time per image (the vision tower + embedder, preprocessing timed apart) at
 * max_soft_tokens 70 / 140 / 280 on a square image and at 280 on a wide one, and time to first token of a chat prompt
 * with one image, uncached (tower + prefill + first sample) and with the image's soft tokens already in the
 * vision-encoder cache (prefill + first sample), and video frames/s through the tower (`--frames` 1280x720 frames at
 * the video budget of 70 soft tokens, one batch; decoding and preprocessing are video_bench.ts'), on one backend.
 *
 *   deno task bench --synthetic gemma4-e2b-vision [--backend cpu|cuda] [--runs 2] [--vision-layers N]
 *       [--text-layers N] [--budgets 70,140,280] [--frames 8] [--json PATH]
 *
 * Synthetic, seeded bf16 weights (f32 where the checkpoint loader holds f32: norms, the position table, clip
 * bounds). The vision tower is Gemma 4 E2B's (Hv 768, I 3072, 16 layers, 12 heads, hd 64, patch 16, pool 3, position
 * table 10240, clipped linears). The text model keeps E2B's widths (hidden 1536, MLP 6144, 8 query heads / 1 KV
 * head, head_dim 256 / 512 global, per-layer inputs 256, vocab 262144) but has only `--text-layers` layers (default
 * 5: four sliding, one full, E2B's 4:1 pattern) and no KV sharing, so it fits 2 CPU cores; TTFT then covers those
 * layers only. `--vision-layers` shortens the tower the same way (say so when quoting the figures).
 * @module
 */
import { parseArgs } from "node:util";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { argmax } from "../../src/ops/reduce.ts";
import type { BackendChoice } from "../../src/ffi/library.ts";
import { parseGemma4Config } from "../../src/models/gemma4/config.ts";
import { Gemma4TextModel } from "../../src/models/gemma4/model.ts";
import { gemma4TextTable } from "../../src/models/gemma4/weights.ts";
import { ModelWeights, tableRows } from "../../src/models/common/weight_table.ts";
import { parseGemma4VisionConfig } from "../../src/models/gemma4/vision_config.ts";
import { Gemma4VisionModel, gemma4VisionTable, type VisionBatch } from "../../src/models/gemma4/vision.ts";
import { Gemma4Multimodal } from "../../src/models/gemma4/multimodal.ts";
import { VisionCache } from "../../src/runtime/vision_cache.ts";
import { Gemma4ImageProcessorConfig, preprocessGemma4 } from "../../src/models/gemma4/processor.ts";
import type { RgbImage } from "../../src/vision/image.ts";
import { GEMMA4_SYNTHETIC, randomBf16Weights } from "./gemma4_synthetic.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    synthetic: { type: "string" },
    backend: { type: "string", default: "auto" },
    runs: { type: "string", default: "2" },
    "text-layers": { type: "string", default: "5" },
    "vision-layers": { type: "string", default: "16" },
    budgets: { type: "string", default: "70,140,280" },
    frames: { type: "string", default: "8" },
    json: { type: "string" },
    threads: { type: "string" },
  },
});
const runs = Number(values.runs);
const textLayers = Number(values["text-layers"]);
const visionLayers = Number(values["vision-layers"]);
const budgets = values.budgets.split(",").map(Number);
for (const [k, v] of [["runs", runs], ["text-layers", textLayers], ["vision-layers", visionLayers]] as const) {
  if (!(Number.isInteger(v) && v > 0)) throw new Error(`--${k} must be a positive integer`);
}

/** E2B's text widths, shortened (see the module doc), with E2B's vision tower. */
const text = GEMMA4_SYNTHETIC["gemma4-e2b"];
const CONFIG = {
  model_type: "gemma4",
  text_config: {
    ...text,
    num_hidden_layers: textLayers,
    layer_types: Array.from({ length: textLayers }, (_, i) => (i + 1) % 5 ? "sliding_attention" : "full_attention"),
    num_kv_shared_layers: 0,
  },
  vision_config: {
    hidden_size: 768,
    intermediate_size: 3072,
    num_hidden_layers: visionLayers,
    num_attention_heads: 12,
    head_dim: 64,
    patch_size: 16,
    pooling_kernel_size: 3,
    position_embedding_size: 10240,
    use_clipped_linears: true,
  },
};
const BOI = 255999, IMAGE = 258880, EOI = 258882;

/** Seeded f32 values: norms near 1 would be as good; only the clip bounds need care (wide, so nothing clips). */
function f32Tensor(backend: Backend, name: string, shape: readonly number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  if (/_min$/.test(name)) data.fill(-1e4);
  else if (/_max$/.test(name)) data.fill(1e4);
  else for (let i = 0; i < n; i++) data[i] = ((Math.imul(i + 1, 2654435761) >>> 0) / 2 ** 32 - 0.5) * 0.05;
  return Tensor.fromArray(backend, data, shape);
}

using backend = Backend.open({ backend: values.backend as BackendChoice });
const config = parseGemma4Config(CONFIG.text_config, "gemma4-e2b-vision (text)");
const vconfig = parseGemma4VisionConfig(CONFIG, "gemma4-e2b-vision");
const textTable = gemma4TextTable(config);
const visionTable = gemma4VisionTable(vconfig, config.text.hiddenSize);
const visionSpecs = tableRows(visionTable);
const visionWeights = randomBf16Weights(backend, visionSpecs.filter((s) => s.loadAs !== "f32"));
for (const s of visionSpecs) if (s.loadAs === "f32") visionWeights.set(s.name, f32Tensor(backend, s.name, s.shape));
const textModel = new Gemma4TextModel(
  backend,
  config,
  new ModelWeights(textTable, randomBf16Weights(backend, tableRows(textTable))),
  2048,
);
const vision = new Gemma4VisionModel(
  backend,
  vconfig,
  new ModelWeights(visionTable, visionWeights),
  config.text.hiddenSize,
);
// Two views of one model: no cache (every prefill runs the tower) and the default cache.
const uncached = new Gemma4Multimodal(textModel, vision, new VisionCache(0));
const cached = new Gemma4Multimodal(textModel, vision, new VisionCache());

/** A smooth synthetic photo (values do not change the work; sizes do). */
function image(width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0, i = 0; y < height; y++) {
    for (let x = 0; x < width; x++, i += 3) {
      data[i] = (x * 255 / width) | 0;
      data[i + 1] = (y * 255 / height) | 0;
      data[i + 2] = (x ^ y) & 255;
    }
  }
  return { width, height, data };
}

function best(fn: () => void, warmup = true): number {
  if (warmup) fn(); // allocations, kernel selection
  let ms = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
}

function batchOf(img: RgbImage, maxSoftTokens: number): { batch: VisionBatch; softTokens: number; ms: number } {
  const proc = Gemma4ImageProcessorConfig.gemma4Default();
  let p = preprocessGemma4([img], proc, { maxSoftTokens });
  const ms = best(() => void (p = preprocessGemma4([img], proc, { maxSoftTokens })), false);
  return {
    batch: { pixelValues: p.pixelValues, positionIds: p.positionIds, count: 1, maxPatches: p.shape[1] },
    softTokens: p.numSoftTokens[0],
    ms,
  };
}

const square = image(896, 896), wide = image(1280, 400);
const cases = [
  ...budgets.map((b) => ({ name: `square 896x896 @ ${b}`, img: square, budget: b })),
  { name: "wide 1280x400 @ 280", img: wide, budget: 280 },
];
const encode: Record<string, unknown>[] = [];
for (const c of cases) {
  const { batch, softTokens, ms: preprocessMs } = batchOf(c.img, c.budget);
  const encodeMs = best(() => {
    for (const t of vision.encode(batch)) {
      t.toArray(); // waits for the device
      t.dispose();
    }
  });
  encode.push({
    image: c.name,
    maxSoftTokens: c.budget,
    softTokens,
    patches: batch.maxPatches,
    preprocessMs: +preprocessMs.toFixed(1),
    encodeMs: +encodeMs.toFixed(1),
  });
  console.log(
    `[${backend.kind}] encode ${c.name}: ${softTokens} soft tokens, preprocess ${preprocessMs.toFixed(1)} ms, ` +
      `tower+embedder ${encodeMs.toFixed(1)} ms`,
  );
}

// Video: `--frames` frames at the video processor's 70-token budget, encoded as one batch (as a prompt's video is).
const frameCount = Number(values.frames);
const one = batchOf(image(1280, 720), 70);
const P = one.batch.pixelValues.length, Q = one.batch.positionIds.length;
const framePixels = new Float32Array(P * frameCount), framePositions = new Int32Array(Q * frameCount);
for (let f = 0; f < frameCount; f++) {
  framePixels.set(one.batch.pixelValues, f * P);
  framePositions.set(one.batch.positionIds, f * Q);
}
const frames: VisionBatch = {
  pixelValues: framePixels,
  positionIds: framePositions,
  count: frameCount,
  maxPatches: one.batch.maxPatches,
};
const framesMs = best(() => {
  for (const t of vision.encode(frames)) {
    t.toArray();
    t.dispose();
  }
});
const video = {
  frames: frameCount,
  frameSize: "1280x720",
  softTokensPerFrame: one.softTokens,
  encodeMs: +framesMs.toFixed(1),
  framesPerSecond: +(frameCount / framesMs * 1000).toFixed(2),
};
console.log(
  `[${backend.kind}] video: ${frameCount} frames of 1280x720 @ 70 (${one.softTokens} soft tokens each) in one batch: ` +
    `${video.encodeMs} ms, ${video.framesPerSecond} frames/s through the tower`,
);

// A chat prompt around one 280-token image: <bos><|turn>user\n<|image> 280 × <|image|> <image|>Describe…<turn|>…
const { batch, softTokens } = batchOf(square, 280);
const ids = [2, 105, 2364, 107, BOI, ...Array(softTokens).fill(IMAGE), EOI, 82858, 672, 2471, 106, 107, 105, 4368, 107];
const media = { images: batch };
const ttft = (m: Gemma4Multimodal) => () => {
  using logits = m.prefill(ids, media);
  using next = argmax(logits);
  next.toArray();
};
const ttftUncachedMs = best(ttft(uncached));
const ttftCachedMs = best(ttft(cached)); // the warm-up run fills the cache; the timed runs hit it
const stats = cached.visionCache.stats();
if (stats.hits < runs) throw new Error(`the cached runs missed the cache (${JSON.stringify(stats)})`);

const result = {
  model: "gemma4-e2b-vision (synthetic bf16: E2B vision tower; E2B-wide text model, shortened)",
  backend: backend.kind,
  device: backend.deviceName,
  visionLayers,
  textLayers,
  runs,
  encode,
  video,
  ttft: {
    promptTokens: ids.length,
    softTokens,
    uncachedMs: +ttftUncachedMs.toFixed(1),
    cachedMs: +ttftCachedMs.toFixed(1),
  },
};
console.log(
  `[${backend.kind}] TTFT with one ${softTokens}-token image (${ids.length} prompt tokens, ${textLayers} text layers, ` +
    `${visionLayers} vision layers): uncached ${result.ttft.uncachedMs} ms, cached ${result.ttft.cachedMs} ms`,
);
if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(result, null, 2) + "\n");
cached.visionCache.dispose();
uncached.dispose(); // text, vision (and their weights) and the (empty) uncached cache
