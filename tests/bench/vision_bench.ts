/**
 * Vision benchmark: image encoding time (SigLIP tower + Gemma 3 projector) per image, and time to first
 * token of a chat prompt with one image (encode + prefill + first sample), and with that image already in the
 * vision-encoder cache (prefill + first sample), on one backend. Synthetic
 * weights of the real shapes, seeded, bf16 (the projector f32): the SigLIP-400M tower of Gemma 3 4B+
 * (1152 wide, 27 layers, 896 px, patch 14, 256 soft tokens) and the Gemma 3 4B text model.
 *
 *   deno task bench --synthetic gemma3-4b-vision [--backend cuda] [--runs 3] [--text-layers N] [--json PATH]
 *
 * --text-layers / --vision-layers shorten the models (the times then cover fewer layers; for a smoke run on a CPU).
 */
import { parseArgs } from "node:util";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { argmax } from "../../src/ops/reduce.ts";
import type { BackendChoice } from "../../src/ffi/library.ts";
import { parseGemma3Config } from "../../src/models/gemma3/config.ts";
import { Gemma3TextModel } from "../../src/models/gemma3/model.ts";
import { gemma3TextTable } from "../../src/models/gemma3/weights.ts";
import { ModelWeights, tableRows, type WeightTree } from "../../src/models/common/weight_table.ts";
import { parseGemma3VisionConfig } from "../../src/models/gemma3/vision_config.ts";
import { Gemma3VisionModel, gemma3VisionTable } from "../../src/models/gemma3/vision.ts";
import { Gemma3Multimodal } from "../../src/models/gemma3/multimodal.ts";
import { VisionCache } from "../../src/runtime/vision_cache.ts";

/** google/gemma-3-4b-it config.json (text and vision parts). */
const CONFIG = {
  model_type: "gemma3",
  mm_tokens_per_image: 256,
  boi_token_index: 255999,
  eoi_token_index: 256000,
  image_token_index: 262144,
  text_config: {
    vocab_size: 262208,
    hidden_size: 2560,
    intermediate_size: 10240,
    num_hidden_layers: 34,
    num_attention_heads: 8,
    num_key_value_heads: 4,
    head_dim: 256,
    query_pre_attn_scalar: 256,
    sliding_window: 1024,
    max_position_embeddings: 131072,
    rope_theta: 1e6,
    rope_local_base_freq: 1e4,
    rope_scaling: { rope_type: "linear", factor: 8 },
  },
  vision_config: {
    hidden_size: 1152,
    intermediate_size: 4304,
    num_hidden_layers: 27,
    num_attention_heads: 16,
    image_size: 896,
    patch_size: 14,
    vision_use_head: false,
  },
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    synthetic: { type: "string" },
    backend: { type: "string", default: "auto" },
    runs: { type: "string", default: "3" },
    "text-layers": { type: "string" },
    "vision-layers": { type: "string" },
    json: { type: "string" },
    threads: { type: "string" },
  },
});
const runs = Number(values.runs);
const json = structuredClone(CONFIG) as typeof CONFIG & { text_config: { num_hidden_layers: number } };
if (values["text-layers"]) json.text_config.num_hidden_layers = Number(values["text-layers"]);
if (values["vision-layers"]) json.vision_config.num_hidden_layers = Number(values["vision-layers"]);

/** Seeded bf16 (or f32) tensors of a table's shapes: one random block, tiled (values do not affect speed). */
function randomTensor(backend: Backend, shape: readonly number[], dtype: "bf16" | "f32"): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  if (dtype === "f32") {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = ((Math.imul(i + 1, 2654435761) >>> 0) / 2 ** 32 - 0.5) * 0.05;
    return Tensor.fromArray(backend, data, shape);
  }
  const data = new Uint16Array(n);
  let s = 12345;
  for (let i = 0; i < Math.min(n, 1 << 20); i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = 0x3c00 | ((s >>> 16) & 0x7f) | ((s & 1) << 15); // |x| < ~0.03, random sign
  }
  for (let off = 1 << 20; off < n; off += 1 << 20) data.copyWithin(off, 0, Math.min(1 << 20, n - off));
  return Tensor.fromBytes(backend, new Uint8Array(data.buffer), shape, "bf16");
}

using backend = Backend.open({ backend: values.backend as BackendChoice });
const config = parseGemma3Config(json, "gemma3-4b-vision");
const vconfig = parseGemma3VisionConfig(json, "gemma3-4b-vision");
/** Random weights for every row of a table (bf16, or f32 where the table loads f32). */
const random = <T extends WeightTree>(table: T) =>
  new ModelWeights(
    table,
    new Map(tableRows(table).map((s) => [s.name, randomTensor(backend, s.shape, s.loadAs === "f32" ? "f32" : "bf16")])),
  );
const text = new Gemma3TextModel(backend, config, random(gemma3TextTable(config)), 1024);
const vision = new Gemma3VisionModel(
  backend,
  vconfig,
  random(gemma3VisionTable(vconfig, config.text.hiddenSize)),
  config.text.hiddenSize,
);
// Without a cache every prefill runs the tower (TTFT uncached); with one, the warm-up fills it (TTFT cached).
const model = new Gemma3Multimodal(text, vision, new VisionCache(0));
const cachedModel = new Gemma3Multimodal(text, vision, new VisionCache());

const S = vconfig.imageSize, T = vconfig.mmTokensPerImage;
const pixelValues = new Float32Array(3 * S * S).map((_, i) => Math.sin(i) * 0.9);
const images = { pixelValues, count: 1 };
// A chat prompt around one image: <bos><start_of_turn>user\n\n\n<boi> 256 × image <eoi>\n\nDescribe…
const ids = [2, 105, 2364, 107, 108, 255999, ...Array(T).fill(262144), 256000, 108, 82858, 672, 2471, 106, 107, 105];

const best = (fn: () => void) => {
  fn(); // warm-up: allocations, kernel selection
  let ms = Infinity;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    fn();
    ms = Math.min(ms, performance.now() - t0);
  }
  return ms;
};
const encodeMs = best(() => {
  using features = model.encodeImages(images);
  features.toArray(); // waits for the device
});
const ttft = (m: Gemma3Multimodal) => () => {
  using logits = m.prefill(ids, images);
  using next = argmax(logits);
  next.toArray();
};
const ttftMs = best(ttft(model));
const ttftCachedMs = best(ttft(cachedModel));
if (cachedModel.visionCache.stats().hits < runs) throw new Error("the cached TTFT runs missed the vision cache");
const result = {
  model: "gemma3-4b-vision (synthetic bf16; projector f32)",
  backend: backend.kind,
  device: backend.deviceName,
  textLayers: config.text.numHiddenLayers,
  visionLayers: vconfig.numHiddenLayers,
  imageSize: S,
  softTokens: T,
  promptTokens: ids.length,
  visionEncodeMsPerImage: +encodeMs.toFixed(1),
  ttftOneImageMs: +ttftMs.toFixed(1),
  ttftOneCachedImageMs: +ttftCachedMs.toFixed(1),
  runs,
};
console.log(
  `[${result.backend}] ${result.model}: vision encode ${result.visionEncodeMsPerImage} ms/image, ` +
    `TTFT with one image (${ids.length} prompt tokens, ${result.textLayers} text layers) ${result.ttftOneImageMs} ms, ` +
    `with the image cached ${result.ttftOneCachedImageMs} ms`,
);
if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(result, null, 2) + "\n");
cachedModel.visionCache.dispose();
model.dispose(); // text and vision, with their weights
