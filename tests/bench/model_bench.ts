/**
 * Model benchmark: prefill tokens/s, decode tokens/s (through the recorded decode program), time to
 * first token and peak memory, with decode beside its bound (bytes read per token ÷ measured memory
 * bandwidth). `--model PATH` loads a checkpoint; `--synthetic NAME` builds a released Gemma 3
 * configuration with seeded random bf16 weights of the real shapes (speed does not depend on values).
 * A `.gguf` model runs through the GGUF loader (quantized weights kept quantized), and `--peer llama.cpp`
 * runs llama.cpp (node-llama-cpp, tests/bench/llama_cpp.ts) on the same file with the same prompt token ids,
 * thread count and token counts, and prints both engines' prefill and decode tokens/s and our ratio.
 * A Gemma 4 GGUF (general.architecture "gemma4", e.g. the synthetic E2B of tests/fixtures/make_synthetic_gguf.py)
 * loads through the Gemma 4 GGUF loader; its bound counts one row of the per-layer-input table per token.
 * `--peer llama.cpp-src` runs llama.cpp built from source with native flags (tests/bench/llama_cpp_src.ts:
 * llama-bench) instead, in interleaved rounds (ours at every length, then llama-bench at every length, --runs
 * times; within a round each engine repeats each length --reps times, ours taking the median and llama-bench its
 * mean, since one ~30 ms prefill of 16 tokens is at the mercy of a shared machine's next millisecond), and prints
 * medians over rounds, ratios, decode as a % of a read-only stream's bandwidth, and the load average.
 *
 *   deno task bench --synthetic gemma3-270m [--prompt-tokens 128] [--decode-tokens 64] [--backend cpu] [--json PATH]
 *   deno task bench --model /path/gemma-3-270m-q4_k_m.gguf --backend cpu --peer llama.cpp \
 *     [--prompt-tokens 6,32,128,512] [--decode-tokens 64] [--runs 3] [--threads 2]
 *   deno task bench --model /path/gemma-3-270m-q4_k_m.gguf --backend cpu --peer llama.cpp-src --threads 2 \
 *     --prompt-tokens 16,32,64,128,512 --decode-tokens 128 --runs 5
 *
 * --threads sets OMP_NUM_THREADS for gemmakit's CPU library (read by bench.ts before the library loads) and
 * llama.cpp's thread count; default: all cores.
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
import { gemma3TextTable } from "../../src/models/gemma3/weights.ts";
import { ModelWeights, tableRows } from "../../src/models/common/weight_table.ts";
import { loadGemma3Gguf, loadGemma3Text } from "../../src/models/gemma3/load.ts";
import { loadGemma4Gguf } from "../../src/models/gemma4/load.ts";
import { gemma4GgufTokenizer } from "../../src/models/gemma4/gguf_tokenizer.ts";
import type { Gemma4LayerSpec } from "../../src/models/gemma4/config.ts";
import type { LayerSpec } from "../../src/models/gemma3/config.ts";
import { openGguf } from "../../src/formats/gguf.ts";
import type { BackendChoice } from "../../src/ffi/library.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { gemma3Tokenizer } from "../../src/models/gemma3/tokenizer_files.ts";
import { PROMPT_TEXT, runLlamaCpp } from "./llama_cpp.ts";
import { buildLlamaCppSrc, llamaBenchRound } from "./llama_cpp_src.ts";
import { readBandwidth } from "./stream_read.ts";
import { GEMMA4_SYNTHETIC, syntheticGemma4 } from "./gemma4_synthetic.ts";
import type { Gemma3TextConfig } from "../../src/models/gemma3/config.ts";

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
  const table = gemma3TextTable(config);
  for (const spec of tableRows(table)) {
    const n = spec.shape.reduce((a, b) => a * b, 1) * 2;
    const data = new Uint8Array(n);
    for (let off = 0; off < n; off += blockBytes.length) {
      data.set(blockBytes.subarray(0, Math.min(blockBytes.length, n - off)), off);
    }
    weights.set(spec.name, Tensor.fromBytes(backend, data, spec.shape, "bf16"));
    bytes += n;
  }
  const model = new Gemma3TextModel(backend, config, new ModelWeights(table, weights), maxContext);
  return { model, bytes };
}

/**
 * A GPU's memory bandwidth: the best of a 512 MiB device-to-device copy (read + write) and a 1 GiB streaming read (a
 * matrix-vector product over a bf16 matrix far larger than any cache). On the CPU the bound is the read-only stream
 * at the run's thread count (stream_read.ts), as in the --peer llama.cpp-src rounds: a copy counts its writes, and
 * our own product is no yardstick for itself.
 */
function measureDeviceBandwidth(backend: Backend): number {
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
    runs: { type: "string", default: "3" },
    reps: { type: "string", default: "3" },
    peer: { type: "string" },
    threads: { type: "string" },
    json: { type: "string" },
  },
});
const promptLengths = values["prompt-tokens"].split(",").map(Number);
const decodeTokens = Number(values["decode-tokens"]), runs = Number(values.runs), reps = Number(values.reps);
if (!(Number.isInteger(reps) && reps >= 1 && reps <= 20)) throw new RangeError(`--reps ${values.reps}: 1 to 20`);
const gemma4Synthetic = values.synthetic !== undefined && GEMMA4_SYNTHETIC[values.synthetic] !== undefined;
if (!values.model && !(values.synthetic && (SYNTHETIC[values.synthetic] || gemma4Synthetic))) {
  const names = [...Object.keys(SYNTHETIC), ...Object.keys(GEMMA4_SYNTHETIC)];
  console.error(`model bench: give --model PATH or --synthetic ${names.join("|")}`);
  Deno.exit(2);
}
if (!promptLengths.every((n) => Number.isInteger(n) && n >= 2) || !(decodeTokens >= 2) || !(runs >= 1)) {
  console.error("model bench: --prompt-tokens N[,N...] (each >= 2), --decode-tokens >= 2, --runs >= 1");
  Deno.exit(2);
}
const gguf = values.model?.endsWith(".gguf") ?? false;
if (values.peer !== undefined && (!["llama.cpp", "llama.cpp-src"].includes(values.peer) || !gguf)) {
  console.error("model bench: --peer llama.cpp|llama.cpp-src needs --model FILE.gguf (the file both engines run)");
  Deno.exit(2);
}
using backend = Backend.open({ backend: values.backend as BackendChoice });
const maxContext = Math.max(...promptLengths) + decodeTokens + 1;
const loadStart = performance.now();
const g4 = gemma4Synthetic ? syntheticGemma4(backend, values.synthetic!, maxContext) : undefined;
/** A GGUF's architecture, and its per-layer-input table (Gemma 4 E2B/E4B): decode reads one row of it per token. */
const ggufInfo = gguf
  ? (() => {
    using f = openGguf(values.model!);
    const ple = f.get("per_layer_token_embd.weight");
    return {
      arch: f.getString("general.architecture"),
      pleBytes: ple?.bytes ?? 0,
      pleRows: ple?.shape[0] ?? 1,
      fileBytes: f.tensors.reduce((sum, t) => sum + t.bytes, 0),
    };
  })()
  : undefined;
const { model, bytes } = g4 ? g4 : values.model
  ? (() => {
    const m = ggufInfo?.arch === "gemma4"
      ? loadGemma4Gguf(backend, values.model!, { maxContext })
      : (gguf ? loadGemma3Gguf : loadGemma3Text)(backend, values.model!, { maxContext });
    return { model: m, bytes: backend.memoryStats().inUse - m.cache.bytes };
  })()
  : syntheticModel(backend, values.synthetic!, maxContext);
/**
 * Weight bytes one decode token reads (a --model file): all of them but the per-layer-input table's other rows. For a
 * GGUF, the file's tensors as stored: what any engine must read. Not our memory in use, which holds more than the
 * weights (and a layout that made them larger must not make the bound larger).
 */
const readBytes = ggufInfo ? ggufInfo.fileBytes - ggufInfo.pleBytes + ggufInfo.pleBytes / ggufInfo.pleRows : bytes;
const loadMs = performance.now() - loadStart;
const c = model.config.text;

/**
 * The prompt: for a real model, <bos> + an English text repeated, tokenized by the Gemma 3 tokenizer (the
 * ids llama.cpp also gets with --peer); for synthetic weights, spread-out ids (speed does not depend on them).
 */
async function promptIds(length: number): Promise<number[]> {
  if (!values.model) return Array.from({ length }, (_, i) => 2 + ((i * 7919) % (c.vocabSize - 2)));
  const tokenizer = ggufInfo?.arch === "gemma4"
    ? (() => {
      using f = openGguf(values.model!);
      return gemma4GgufTokenizer(f);
    })()
    : gguf
    ? await gemma3Tokenizer()
    : await Tokenizer.fromFiles(values.model);
  const piece = tokenizer.encode(PROMPT_TEXT, { addSpecialTokens: false });
  const ids = [c.bosTokenId];
  while (ids.length < length) ids.push(...piece);
  return ids.slice(0, length);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** One warm-up, then `timedRuns` runs of prefill + greedy decode; medians, as llama_cpp.ts measures. */
function measure(prompt: number[], timedRuns = runs) {
  const promptTokens = prompt.length;
  using ws = new Workspace(backend);
  const state = ws.get("state", [8], "i32");
  const history = ws.get("history", [maxContext], "i32");
  const logits = ws.get("logits", [1, c.vocabSize]);
  const greedy = { temperature: 0 };
  const reset = () => {
    history.write(Int32Array.from({ length: maxContext }, (_, i) => prompt[i] ?? 0));
    state.write([promptTokens - 1, prompt.at(-1)!, promptTokens, 0, 0, 0, 0, 0]);
  };
  const step = () => {
    model.decodeStep(state.rows(1, 1), state.rows(0, 1), ws, logits);
    sample(logits, greedy, state, history, null);
  };
  let program: DecodeProgram | undefined;
  const ttft: number[] = [], decode: number[] = [];
  backend.resetPeak();
  try {
    for (let r = 0; r <= timedRuns; r++) {
      reset();
      const t0 = performance.now();
      {
        using first = model.prefill(prompt);
        sample(first, greedy, state, history, null);
      }
      backend.synchronize();
      const t1 = performance.now();
      if (!program) {
        step(); // allocates the decode workspace; the warm-up run's decode is not timed
        program = DecodeProgram.record(backend, step);
        continue;
      }
      program.run(decodeTokens - 1);
      backend.synchronize();
      const t2 = performance.now();
      if (r === 0) continue;
      ttft.push(t1 - t0);
      decode.push(t2 - t1);
    }
  } finally {
    program?.dispose();
  }
  const ttftMs = median(ttft);
  return {
    promptTokens,
    ttftMs,
    prefillTokensPerSecond: median(ttft.map((ms) => promptTokens / (ms / 1000))),
    decodeTokensPerSecond: median(decode.map((ms) => (decodeTokens - 1) / (ms / 1000))),
    bestPrefillTokensPerSecond: Math.max(...ttft.map((ms) => promptTokens / (ms / 1000))),
    bestDecodeTokensPerSecond: Math.max(...decode.map((ms) => (decodeTokens - 1) / (ms / 1000))),
    sampleIds: Array.from(history.rows(promptTokens, decodeTokens).toArray()),
  };
}

const threads = values.threads ? Number(values.threads) : navigator.hardwareConcurrency;
if (values.peer === "llama.cpp-src") {
  await srcPeerRounds();
  model.dispose();
  Deno.exit(0);
}
const bandwidth = backend.kind === "cpu" ? await readBandwidth(threads) : measureDeviceBandwidth(backend);
const modelName = values.model ?? `${values.synthetic} (synthetic bf16)`;
const rows = [];
console.log(
  `model ${modelName}, backend ${backend.kind} (${backend.deviceName}), ${threads} threads, ${decodeTokens} greedy ` +
    `tokens, medians of ${runs} runs after a warm-up; load ${loadMs.toFixed(0)} ms; KV cache ` +
    `${(model.cache.bytes / 2 ** 20).toFixed(1)} MiB for ${maxContext} tokens; ` +
    (backend.kind === "cpu" ? `read-only stream bandwidth (${threads} threads) ` : "memory bandwidth ") +
    `${(bandwidth / 1e9).toFixed(1)} GB/s`,
);
const header = values.peer
  ? "| prompt | gemmakit prefill tok/s | llama.cpp prefill tok/s | ratio | gemmakit decode tok/s | llama.cpp decode tok/s | ratio | bound tok/s |"
  : "| prompt | prefill tok/s | TTFT ms | decode tok/s | bound tok/s (% of bound) | peak GiB |";
console.log(header);
console.log(header.replace(/[^|]+/g, (cell) => (cell.includes("prompt") ? " --- " : " ---: ")));
for (const length of promptLengths) {
  const prompt = await promptIds(length);
  const ours = measure(prompt);
  // Bytes read per decode token: every weight once (the tied head reads the whole embedding table) plus
  // the K/V the attention reads at the average position of the run.
  const avgPos = length + decodeTokens / 2;
  // Gemma 4 reads only top_k experts and one row of the per-layer-input table per token.
  const boundTps = bandwidth / (g4 ? g4.decodeReadBytes(avgPos) : readBytes + kvReadBytes(avgPos, 4));
  const peer = values.peer
    ? await runLlamaCpp({ gguf: values.model!, threads, tokens: prompt, decodeTokens, runs })
    : undefined;
  const row = {
    date: new Date().toISOString().slice(0, 10),
    backend: backend.kind,
    device: backend.deviceName,
    model: modelName,
    threads,
    weightsGiB: bytes / 2 ** 30,
    kvCacheBytes: model.cache.bytes,
    loadMs,
    decodeTokens,
    runs,
    ...ours,
    decodeBoundTokensPerSecond: boundTps,
    decodePercentOfBound: (100 * ours.decodeTokensPerSecond) / boundTps,
    bandwidthGBs: bandwidth / 1e9,
    peakMemoryGiB: backend.memoryStats().peak / 2 ** 30,
    peer: peer && {
      version: peer.version,
      prefillTokensPerSecond: peer.prefillTokensPerSecond,
      decodeTokensPerSecond: peer.decodeTokensPerSecond,
      bestPrefillTokensPerSecond: peer.bestPrefillTokensPerSecond,
      bestDecodeTokensPerSecond: peer.bestDecodeTokensPerSecond,
      medianTtftMs: peer.medianTtftMs,
      flashAttention: peer.flashAttention,
      sampleText: peer.sampleText,
    },
  };
  rows.push(row);
  const f = (x: number) => x.toFixed(1);
  if (peer) {
    console.log(
      `| ${length} | ${f(ours.prefillTokensPerSecond)} | ${f(peer.prefillTokensPerSecond)} | ${
        (ours.prefillTokensPerSecond / peer.prefillTokensPerSecond).toFixed(2)
      }x | ${f(ours.decodeTokensPerSecond)} | ${f(peer.decodeTokensPerSecond)} | ${
        (ours.decodeTokensPerSecond / peer.decodeTokensPerSecond).toFixed(2)
      }x | ${f(boundTps)} |`,
    );
  } else {
    console.log(
      `| ${length} | ${f(ours.prefillTokensPerSecond)} | ${ours.ttftMs.toFixed(0)} | ${
        f(ours.decodeTokensPerSecond)
      } | ` +
        `${f(boundTps)} (${row.decodePercentOfBound.toFixed(0)}%) | ${row.peakMemoryGiB.toFixed(2)} |`,
    );
  }
}
if (values.peer) console.log(`peer: ${rows[0].peer!.version}; flash attention ${rows[0].peer!.flashAttention}`);
if (values.json) Deno.writeTextFileSync(values.json, JSON.stringify(rows.length === 1 ? rows[0] : rows, null, 2));
model.dispose();

/** Bytes of the KV cache the attention reads per decode token at `avgPos`, for `bytesPerValue` (4 ours, 2 f16). */
function kvReadBytes(avgPos: number, bytesPerValue: number): number {
  const t = c as Gemma3TextConfig;
  const layers: readonly (LayerSpec | Gemma4LayerSpec)[] = model.config.layers;
  return layers.reduce((sum, l) => {
    const keys = l.window > 0 ? Math.min(avgPos, l.window) : avgPos;
    const width = "kvHeads" in l ? l.kvHeads * l.headDim : t.numKeyValueHeads * t.headDim; // Gemma 4: per layer
    return sum + 2 * keys * width * bytesPerValue;
  }, 0);
}

/**
 * --peer llama.cpp-src: `runs` interleaved rounds; each runs ours at every prompt length (one warm-up, one
 * timed run) and then llama-bench at every length, so both see the same machine load. Medians over rounds.
 */
async function srcPeerRounds(): Promise<void> {
  const build = await buildLlamaCppSrc();
  // The stream is measured every round, beside the runs it bounds: on a shared machine the bandwidth moves by a
  // quarter from minute to minute, and one figure from before the first round favoured or penalised every row.
  const bandwidths: number[] = [];
  const loads: number[][] = [Deno.loadavg()];
  const ours = new Map<number, { prefill: number[]; decode: number[] }>();
  const peer = new Map<number, { prefill: number[]; decode: number[] }>();
  for (const p of promptLengths) ours.set(p, { prefill: [], decode: [] }), peer.set(p, { prefill: [], decode: [] });
  const prompts = new Map<number, number[]>();
  for (const p of promptLengths) prompts.set(p, await promptIds(p));
  let cpuInfo = "";
  for (let round = 0; round < runs; round++) {
    bandwidths.push(await readBandwidth(threads));
    for (const p of promptLengths) {
      const r = measure(prompts.get(p)!, reps);
      ours.get(p)!.prefill.push(r.prefillTokensPerSecond);
      ours.get(p)!.decode.push(r.decodeTokensPerSecond);
    }
    const l = await llamaBenchRound(build, {
      gguf: values.model!,
      threads,
      prompts: promptLengths,
      decodeTokens,
      reps,
    });
    cpuInfo = l.cpuInfo;
    for (const p of promptLengths) {
      peer.get(p)!.prefill.push(l.prefill.get(p) ?? NaN);
      peer.get(p)!.decode.push(l.decode.get(p) ?? NaN);
    }
    loads.push(Deno.loadavg());
    console.error(`round ${round + 1}/${runs} done; load ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  }
  const f = (x: number) => x.toFixed(1);
  const oneMinute = loads.map((l) => l[0]);
  const bw = median(bandwidths);
  console.log(
    `model ${values.model}, ${threads} threads, ${decodeTokens} decode tokens, medians of ${runs} interleaved ` +
      `rounds of ${reps} repetitions; ` +
      `CPU ${cpuInfo}; read-only stream bandwidth ${(bw / 1e9).toFixed(1)} GB/s (${threads} threads; median of ` +
      `one per round, ${(Math.min(...bandwidths) / 1e9).toFixed(1)}–${(Math.max(...bandwidths) / 1e9).toFixed(1)}); ` +
      `1-min load average ${Math.min(...oneMinute).toFixed(2)}–${Math.max(...oneMinute).toFixed(2)} ` +
      `(${navigator.hardwareConcurrency} CPUs)`,
  );
  console.log(`peer: ${build.version}`);
  const header = "| prompt | gemmakit prefill tok/s | llama.cpp prefill tok/s | ratio | gemmakit decode tok/s | " +
    "llama.cpp decode tok/s | ratio | gemmakit % of bound | llama.cpp % of bound |";
  console.log(header);
  console.log(header.replace(/[^|]+/g, (cell) => (cell.includes("prompt") ? " ---: " : " ---: ")));
  const rows = [];
  for (const p of promptLengths) {
    const o = ours.get(p)!, q = peer.get(p)!;
    const [op, od, qp, qd] = [median(o.prefill), median(o.decode), median(q.prefill), median(q.decode)];
    const avgPos = p + decodeTokens / 2;
    const oursBound = bw / (readBytes + kvReadBytes(avgPos, 4));
    const peerBound = bw / (readBytes + kvReadBytes(avgPos, 2));
    console.log(
      `| ${p} | ${f(op)} | ${f(qp)} | ${(op / qp).toFixed(2)}x | ${f(od)} | ${f(qd)} | ${(od / qd).toFixed(2)}x | ` +
        `${(100 * od / oursBound).toFixed(0)}% | ${(100 * qd / peerBound).toFixed(0)}% |`,
    );
    rows.push({ prompt: p, ours: o, peer: q, oursBoundTps: oursBound, peerBoundTps: peerBound });
  }
  if (values.json) {
    Deno.writeTextFileSync(
      values.json,
      JSON.stringify(
        { date: new Date().toISOString(), peer: build.version, bandwidth: bw, bandwidths, loads, rows },
        null,
        2,
      ),
    );
  }
}
