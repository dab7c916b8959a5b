/**
 * Model benchmark: prefill tokens/s, decode tokens/s (through the recorded decode program), time to
 * first token and peak memory, with decode beside its bound (bytes read per token ÷ measured memory
 * bandwidth). `--model PATH` loads a checkpoint; `--synthetic NAME` builds a released Gemma 3
 * configuration with seeded random bf16 weights of the real shapes (speed does not depend on values).
 *
 *   deno task bench --synthetic gemma3-270m [--prompt-tokens 128] [--decode-tokens 64] [--backend cpu] [--json PATH]
 */
import { parseArgs } from "node:util";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { DecodeProgram } from "../../src/runtime/program.ts";
import { sample } from "../../src/ops/sample.ts";
import { linear } from "../../src/ops/linear.ts";
import { parseGemma3Config } from "../../src/models/gemma3/config.ts";
import { Gemma3TextModel } from "../../src/models/gemma3/model.ts";
import { gemma3TextWeights, rowName } from "../../src/models/gemma3/weights.ts";
import { loadGemma3Text } from "../../src/models/gemma3/load.ts";
import type { BackendChoice } from "../../src/ffi/library.ts";

/** The released text configurations (google/gemma-3-{270m,1b,4b}-it config.json, text part). */
const SYNTHETIC: Record<string, Record<string, unknown>> = {
  "gemma3-270m": {
    model_type: "gemma3_text",
    vocab_size: 262144,
    hidden_size: 640,
    intermediate_size: 2048,
    num_hidden_layers: 18,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 256,
    query_pre_attn_scalar: 256,
    sliding_window: 512,
    max_position_embeddings: 32768,
    rope_theta: 1e6,
    rope_local_base_freq: 1e4,
  },
  "gemma3-1b": {
    model_type: "gemma3_text",
    vocab_size: 262144,
    hidden_size: 1152,
    intermediate_size: 6912,
    num_hidden_layers: 26,
    num_attention_heads: 4,
    num_key_value_heads: 1,
    head_dim: 256,
    query_pre_attn_scalar: 256,
    sliding_window: 512,
    max_position_embeddings: 32768,
    rope_theta: 1e6,
    rope_local_base_freq: 1e4,
  },
  "gemma3-4b": {
    model_type: "gemma3_text",
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
};

/** Seeded random bf16 weights of the table's shapes: one random block, tiled (values do not affect speed). */
function syntheticModel(backend: Backend, name: string, maxContext: number): { model: Gemma3TextModel; bytes: number } {
  const config = parseGemma3Config(SYNTHETIC[name], name);
  const block = new Uint16Array(1 << 20);
  let s = 12345;
  for (let i = 0; i < block.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // bf16 with magnitude below ~0.03 and random sign: sane activations, no NaN.
    block[i] = 0x3c00 | ((s >>> 16) & 0x7f) | ((s & 1) << 15);
  }
  const blockBytes = new Uint8Array(block.buffer);
  const weights = new Map<string, Tensor>();
  let bytes = 0;
  for (const spec of gemma3TextWeights(config)) {
    const n = spec.shape.reduce((a, b) => a * b, 1) * 2;
    const data = new Uint8Array(n);
    for (let off = 0; off < n; off += blockBytes.length) {
      data.set(blockBytes.subarray(0, Math.min(blockBytes.length, n - off)), off);
    }
    weights.set(spec.name, Tensor.fromBytes(backend, data, spec.shape, "bf16"));
    bytes += n;
  }
  const model = new Gemma3TextModel(backend, config, (n) => weights.get(rowName(n))!, maxContext);
  const dispose = model.dispose.bind(model);
  model.dispose = () => (dispose(), weights.forEach((t) => t.dispose()));
  return { model, bytes };
}

/**
 * Memory bandwidth: the best of a 512 MiB device-to-device copy (read + write) and a 1 GiB streaming
 * read (a matrix-vector product over a bf16 matrix far larger than any cache). The CPU copy is single
 * threaded, so the streaming read is the better estimate there; on GPUs the copy is.
 */
function measureBandwidth(backend: Backend): number {
  const best = (fn: () => void) => {
    let ms = Infinity;
    for (let i = 0; i < 4; i++) {
      const t0 = performance.now();
      fn();
      backend.synchronize();
      ms = Math.min(ms, performance.now() - t0);
    }
    return ms / 1000;
  };
  const copyBytes = 512 * 2 ** 20;
  let copy: number;
  {
    using a = Tensor.zeros(backend, [copyBytes / 4]);
    using b = Tensor.zeros(backend, [copyBytes / 4]);
    copy = (2 * copyBytes) / best(() => backend.copy(b.pointer, a.pointer, copyBytes));
  }
  const [n, k] = [2 ** 18, 2048]; // 1 GiB of bf16
  using w = Tensor.zeros(backend, [n, k], "bf16");
  using x = Tensor.zeros(backend, [1, k]);
  using y = Tensor.empty(backend, [1, n]);
  const read = w.byteLength / best(() => linear(x, w, null, y));
  return Math.max(copy, read);
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    synthetic: { type: "string" },
    backend: { type: "string", default: "auto" },
    "prompt-tokens": { type: "string", default: "128" },
    "decode-tokens": { type: "string", default: "64" },
    json: { type: "string" },
  },
});
const promptTokens = Number(values["prompt-tokens"]), decodeTokens = Number(values["decode-tokens"]);
if (!values.model && !(values.synthetic && SYNTHETIC[values.synthetic])) {
  console.error(`model bench: give --model PATH or --synthetic ${Object.keys(SYNTHETIC).join("|")}`);
  Deno.exit(2);
}
using backend = Backend.open({ backend: values.backend as BackendChoice });
const maxContext = promptTokens + decodeTokens + 1;
const loadStart = performance.now();
const { model, bytes } = values.model
  ? (() => {
    const m = loadGemma3Text(backend, values.model!, { maxContext });
    return { model: m, bytes: backend.memoryStats().inUse - m.cache.bytes };
  })()
  : syntheticModel(backend, values.synthetic!, maxContext);
const loadMs = performance.now() - loadStart;
const c = model.config.text;
const prompt = Array.from({ length: promptTokens }, (_, i) => 2 + ((i * 7919) % (c.vocabSize - 2)));

using ws = new Workspace(backend);
const state = ws.get("state", [8], "i32");
const history = ws.get("history", [maxContext], "i32");
history.write(Int32Array.from({ length: maxContext }, (_, i) => prompt[i] ?? 0));
state.write([promptTokens - 1, prompt.at(-1)!, promptTokens, 0, 0, 0, 0, 0]);
const logits = ws.get("logits", [1, c.vocabSize]);
const greedy = { temperature: 0 };
backend.resetPeak();

const t0 = performance.now();
{
  using first = model.prefill(prompt);
  sample(first, greedy, state, history, null);
}
backend.synchronize();
const ttftMs = performance.now() - t0;
const step = () => {
  model.decodeStep(state.rows(1, 1), state.rows(0, 1), ws, logits);
  sample(logits, greedy, state, history, null);
};
step(); // allocates the decode workspace
using program = DecodeProgram.record(backend, step);
const t1 = performance.now();
program.run(decodeTokens - 1);
const decodeMs = performance.now() - t1;
const decodeTps = (decodeTokens - 1) / (decodeMs / 1000);

// Bytes read per decode token: every weight once (the tied head reads the whole embedding table) plus
// the K/V the attention reads at the average position of the run.
const avgPos = promptTokens + decodeTokens / 2;
const kvPerToken = model.config.layers.reduce((sum, l) => {
  const keys = l.window > 0 ? Math.min(avgPos, l.window) : avgPos;
  return sum + 2 * keys * c.numKeyValueHeads * c.headDim * 4;
}, 0);
const bandwidth = measureBandwidth(backend);
const boundTps = bandwidth / (bytes + kvPerToken);
const row = {
  date: new Date().toISOString().slice(0, 10),
  backend: backend.kind,
  device: backend.deviceName,
  model: values.model ?? `${values.synthetic} (synthetic bf16)`,
  weightsGiB: bytes / 2 ** 30,
  loadMs,
  promptTokens,
  prefillTokensPerSecond: promptTokens / (ttftMs / 1000),
  ttftMs,
  decodeTokens,
  decodeTokensPerSecond: decodeTps,
  decodeBoundTokensPerSecond: boundTps,
  decodePercentOfBound: (100 * decodeTps) / boundTps,
  bandwidthGBs: bandwidth / 1e9,
  peakMemoryGiB: backend.memoryStats().peak / 2 ** 30,
  decodeCallsPerToken: 1 / (decodeTokens - 1),
};
console.log(
  "| model | backend | prompt | prefill tok/s | TTFT ms | decode tok/s | bound tok/s (% of bound) | peak GiB |",
);
console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
console.log(
  `| ${row.model} | ${row.backend} | ${promptTokens} | ${row.prefillTokensPerSecond.toFixed(1)} | ${
    ttftMs.toFixed(0)
  } | ` +
    `${decodeTps.toFixed(1)} | ${boundTps.toFixed(1)} (${row.decodePercentOfBound.toFixed(0)}%) | ` +
    `${row.peakMemoryGiB.toFixed(2)} |`,
);
console.log(
  `device: ${row.device}; measured memory bandwidth ${row.bandwidthGBs.toFixed(1)} GB/s; 1 native call per ${
    decodeTokens - 1
  } decode tokens`,
);
if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(row, null, 2));
model.dispose();
