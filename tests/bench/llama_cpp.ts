/**
 * llama.cpp baseline: prefill and decode tokens/s of llama.cpp on a GGUF, to print beside gemmakit's own
 * model bench (tests/bench/model_bench.ts). llama.cpp comes from the npm package node-llama-cpp, which ships
 * prebuilt llama.cpp binaries as npm packages (here the CPU build for linux-x64, @node-llama-cpp/linux-x64).
 *
 *   deno run -A tests/bench/llama_cpp.ts --gguf /tmp/gguf/gemma-3-270m-q4_k_m.gguf \
 *     [--threads 2] [--prompt-tokens 128] [--decode-tokens 64] [--runs 5] [--flash-attention auto|on|off] [--json PATH]
 *
 *   import { runLlamaCpp } from "./tests/bench/llama_cpp.ts";
 *   const r = await runLlamaCpp({ gguf, threads: 2, promptTokens: 128, decodeTokens: 64 });
 *
 * What works (Deno 2.9.6, Linux x64): node-llama-cpp runs under Deno itself; no node and no .mjs driver are
 * needed. Its llama.cpp addon loads through Deno's Node-API support; the prebuilt binary is used as is
 * (`build: "never"`; Deno skips the package's install script, which only matters for source builds).
 * - node-llama-cpp is pinned to 3.21.1: 3.22.1 (the newest) lists @node-llama-cpp/linux-riscv64@3.22.1 as an
 *   optional dependency, that version was never published, and Deno refuses to resolve the package at all.
 * - The first run downloads the package and all its Linux prebuilt binaries into Deno's npm cache, the CUDA
 *   and Vulkan ones too (about 700 MB; Deno fetches every optional dependency whose os/cpu match). No GPU is
 *   used: `gpu: false`.
 * - The measurement runs in a child Deno process started with `--no-config --no-lock`, so neither deno.json
 *   nor deno.lock of this repository is read or written, and importing this module pulls in no npm package.
 *
 * Measurement, the same definitions as model_bench.ts: the prompt is <bos> + a fixed English text repeated,
 * tokenized by the GGUF's own vocabulary and cut to --prompt-tokens; one context of
 * prompt + decode + 16 tokens, batch size >= the prompt (one prefill batch), --threads for both prefill and
 * decode (getLlama maxThreads too). prefill tok/s = prompt tokens / time to the first greedy token (prefill +
 * one sample); decode tok/s = (decode tokens - 1) / time for the remaining decode tokens (each one forward of
 * the previous token + a greedy sample; <eos>/<end_of_turn> do not stop it). One warm-up run, then --runs
 * timed runs on the same sequence (history cleared in between); the median and the best are reported.
 * Everything else is llama.cpp's default through node-llama-cpp: f16 KV cache, flash attention "auto", mmap.
 */
import { parseArgs } from "node:util";

/** The pinned package (see above for why not the newest). */
export const NODE_LLAMA_CPP = "npm:node-llama-cpp@3.21.1";

/** Repeated to make the prompt; any fixed text would do (speed does not depend on it). */
export const PROMPT_TEXT = "The old lighthouse keeper walked down to the harbor every morning. He counted the boats, " +
  "listened to the gulls, and wrote the weather in a small blue notebook before the fog rolled in from the sea. ";

export interface LlamaCppOptions {
  /** Path of the GGUF file. */
  gguf: string;
  /** CPU threads for prefill and decode (default 2, as gemmakit's default). */
  threads?: number;
  /** Prompt length in tokens, <bos> included (default 128). */
  promptTokens?: number;
  /**
   * The prompt's token ids (then `promptTokens` is their count): the same ids gemmakit's bench prefills, so
   * both engines see identical input. Default: <bos> + PROMPT_TEXT repeated, tokenized by the GGUF.
   */
  tokens?: number[];
  /** Greedy tokens to generate (default 64); the first comes from prefill. */
  decodeTokens?: number;
  /** Timed runs after one warm-up (default 5). */
  runs?: number;
  /** llama.cpp flash attention: "auto" (default, llama.cpp decides), true or false. */
  flashAttention?: "auto" | boolean;
}

export interface LlamaCppRun {
  ttftMs: number;
  prefillTokensPerSecond: number;
  decodeMs: number;
  decodeTokensPerSecond: number;
}

export interface LlamaCppResult {
  /** Median over the timed runs. */
  prefillTokensPerSecond: number;
  /** Median over the timed runs. */
  decodeTokensPerSecond: number;
  /** e.g. "llama.cpp v0.4.0 (ggml-org/llama.cpp) via node-llama-cpp 3.21.1, prebuilt linux-x64 CPU". */
  version: string;
  bestPrefillTokensPerSecond: number;
  bestDecodeTokensPerSecond: number;
  medianTtftMs: number;
  runs: LlamaCppRun[];
  threads: number;
  promptTokens: number;
  decodeTokens: number;
  flashAttention: "auto" | boolean;
  contextSize: number;
  batchSize: number;
  /** llama.cpp's system info line (the CPU features its CPU backend uses). */
  systemInfo: string;
  /** The greedy continuation of the last run (a sanity check that the model ran). */
  sampleText: string;
  loadMs: number;
  gguf: string;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/**
 * Runs llama.cpp on `gguf` in a child Deno process and returns its speed (medians of `runs` timed runs).
 * Rejects when the child fails (its stderr is passed through).
 */
export async function runLlamaCpp(options: LlamaCppOptions): Promise<LlamaCppResult> {
  const opts = {
    gguf: await Deno.realPath(options.gguf),
    threads: options.threads ?? 2,
    promptTokens: options.promptTokens ?? 128,
    decodeTokens: options.decodeTokens ?? 64,
    runs: options.runs ?? 5,
    flashAttention: options.flashAttention ?? "auto",
    tokens: options.tokens ?? null,
  };
  if (opts.tokens) opts.promptTokens = opts.tokens.length;
  if (!(opts.promptTokens >= 2 && opts.decodeTokens >= 2 && opts.threads >= 1 && opts.runs >= 1)) {
    throw new Error(`runLlamaCpp: bad options ${JSON.stringify(opts)}`);
  }
  const self = import.meta.filename;
  if (!self) throw new Error("runLlamaCpp: this module must be loaded from a local file");
  const dir = await Deno.makeTempDir({ prefix: "gemmakit-llama-cpp-" });
  try {
    const out = `${dir}/result.json`;
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", "--no-config", "--no-lock", "--quiet", self, "--child", JSON.stringify(opts), out],
      cwd: dir, // no package.json / deno.json above it to pick up
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    });
    const { code } = await child.output();
    if (code !== 0) throw new Error(`runLlamaCpp: child exited with ${code}`);
    return JSON.parse(await Deno.readTextFile(out)) as LlamaCppResult;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------------------------------------
// The child: loads node-llama-cpp and measures.
// ---------------------------------------------------------------------------------------------------------

// deno-lint-ignore no-explicit-any
type Any = any;

async function measure(
  opts: Required<Omit<LlamaCppOptions, "tokens">> & { tokens: number[] | null },
  outPath: string,
): Promise<void> {
  // A non-literal specifier: type checking or linting this file never resolves (or downloads) the package.
  const spec: string = NODE_LLAMA_CPP;
  const { getLlama, LlamaLogLevel } = await import(spec) as Any;
  const loadStart = performance.now();
  const llama = await getLlama({
    gpu: false,
    build: "never",
    maxThreads: opts.threads,
    logLevel: LlamaLogLevel.error,
  });
  const model = await llama.loadModel({ modelPath: opts.gguf, gpuLayers: 0 });
  const contextSize = opts.promptTokens + opts.decodeTokens + 16;
  const batchSize = Math.max(512, opts.promptTokens);
  const context = await model.createContext({
    contextSize,
    batchSize,
    sequences: 1,
    threads: { ideal: opts.threads, min: opts.threads },
    flashAttention: opts.flashAttention,
  });
  const loadMs = performance.now() - loadStart;
  const sequence = context.getSequence();

  const textTokens: number[] = [];
  const piece: number[] = Array.from(model.tokenize(PROMPT_TEXT, false));
  while (textTokens.length < opts.promptTokens) textTokens.push(...piece);
  const prompt = opts.tokens ?? [model.tokens.bos, ...textTokens].slice(0, opts.promptTokens);

  const runs: LlamaCppRun[] = [];
  let sampleText = "";
  for (let r = 0; r <= opts.runs; r++) {
    await sequence.clearHistory();
    const generated: number[] = [];
    const t0 = performance.now();
    let t1 = 0;
    for await (const token of sequence.evaluate(prompt, { temperature: 0, yieldEogToken: true })) {
      if (generated.length === 0) t1 = performance.now();
      generated.push(token);
      if (generated.length >= opts.decodeTokens) break;
    }
    const t2 = performance.now();
    if (generated.length !== opts.decodeTokens) throw new Error(`generated ${generated.length} tokens`);
    if (r === 0) continue; // warm-up
    const ttftMs = t1 - t0, decodeMs = t2 - t1;
    runs.push({
      ttftMs,
      prefillTokensPerSecond: opts.promptTokens / (ttftMs / 1000),
      decodeMs,
      decodeTokensPerSecond: (opts.decodeTokens - 1) / (decodeMs / 1000),
    });
    sampleText = model.detokenize(generated, true);
  }

  const { repo, release } = llama.llamaCppRelease;
  const pkg = NODE_LLAMA_CPP.replace(/^npm:/, "").replace(/@([^@]+)$/, " $1");
  const result: LlamaCppResult = {
    prefillTokensPerSecond: median(runs.map((r) => r.prefillTokensPerSecond)),
    decodeTokensPerSecond: median(runs.map((r) => r.decodeTokensPerSecond)),
    version:
      `llama.cpp ${release} (${repo}) via ${pkg}, ${llama.buildType} generic (not -march=native) ${Deno.build.os}-${
        Deno.build.arch === "x86_64" ? "x64" : Deno.build.arch
      } CPU`,
    bestPrefillTokensPerSecond: Math.max(...runs.map((r) => r.prefillTokensPerSecond)),
    bestDecodeTokensPerSecond: Math.max(...runs.map((r) => r.decodeTokensPerSecond)),
    medianTtftMs: median(runs.map((r) => r.ttftMs)),
    runs,
    threads: opts.threads,
    promptTokens: opts.promptTokens,
    decodeTokens: opts.decodeTokens,
    flashAttention: context.flashAttention,
    contextSize: context.contextSize,
    batchSize: context.batchSize,
    systemInfo: String(llama.systemInfo).trim(),
    sampleText,
    loadMs,
    gguf: opts.gguf,
  };
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  await Deno.writeTextFile(outPath, JSON.stringify(result));
}

// ---------------------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------------------

function flashAttentionArg(v: string): "auto" | boolean {
  if (v === "auto") return "auto";
  if (v === "on" || v === "true") return true;
  if (v === "off" || v === "false") return false;
  throw new Error(`--flash-attention auto|on|off, not ${v}`);
}

async function main(): Promise<void> {
  if (Deno.args[0] === "--child") {
    await measure(JSON.parse(Deno.args[1]), Deno.args[2]);
    return;
  }
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      gguf: { type: "string" },
      threads: { type: "string", default: "2" },
      "prompt-tokens": { type: "string", default: "128" },
      "decode-tokens": { type: "string", default: "64" },
      runs: { type: "string", default: "5" },
      "flash-attention": { type: "string", default: "auto" },
      json: { type: "string" },
    },
  });
  const gguf = values.gguf ?? Deno.env.get("GEMMA3_GGUF");
  if (!gguf) {
    console.error("llama.cpp bench: give --gguf PATH (or $GEMMA3_GGUF)");
    Deno.exit(2);
  }
  const r = await runLlamaCpp({
    gguf,
    threads: Number(values.threads),
    promptTokens: Number(values["prompt-tokens"]),
    decodeTokens: Number(values["decode-tokens"]),
    runs: Number(values.runs),
    flashAttention: flashAttentionArg(values["flash-attention"]),
  });
  const name = gguf.split("/").at(-1);
  console.log(
    "| engine | model | threads | prompt | prefill tok/s (median / best) | TTFT ms | decode tok/s (median / best) |",
  );
  console.log("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
  console.log(
    `| llama.cpp | ${name} | ${r.threads} | ${r.promptTokens} | ${r.prefillTokensPerSecond.toFixed(1)} / ${
      r.bestPrefillTokensPerSecond.toFixed(1)
    } | ${r.medianTtftMs.toFixed(0)} | ${r.decodeTokensPerSecond.toFixed(1)} / ${
      r.bestDecodeTokensPerSecond.toFixed(1)
    } |`,
  );
  console.log(
    `${r.version}; ${r.runs.length} timed runs after a warm-up, ${r.decodeTokens} greedy tokens; flash attention ${r.flashAttention}`,
  );
  console.log(`sample: ${JSON.stringify(r.sampleText.slice(0, 120))}`);
  if (values.json) {
    await Deno.writeTextFile(
      values.json,
      JSON.stringify({ date: new Date().toISOString().slice(0, 10), engine: "llama.cpp", model: gguf, ...r }, null, 2) +
        "\n",
    );
  }
}

if (import.meta.main) await main();
