/**
 * `deno task bench --streams 1,2,4,8,16`: N concurrent streams on one model — aggregate decode throughput,
 * per-stream inter-token latency and time to first token — against llama-server (`--peer llama.cpp-src`,
 * llama.cpp built from source by tests/bench/llama_cpp_src.ts) doing the same with `-np N` slots.
 *
 *   deno task bench --streams 1,2,4,8,16 [--model FILE.gguf] [--peer llama.cpp-src] [--decode-tokens 128] \
 *     [--runs 3] [--threads 2] [--slot-context 512] [--backend cpu]
 *
 * For each N, ours: one model loaded with `parallel: N` (N KV slots; issue 16's continuous batching, where N
 * concurrent calls are decoded in one batched step) and N concurrent `model.stream` calls (a family without a
 * batched step takes them in turns, which the table then says). Peer: `llama-server -np N -c N×slot-context -t T -tb T --no-webui` on the same
 * GGUF, N concurrent streaming POSTs to /completion. Every stream is a distinct raw-text prompt (no chat
 * template) and generates exactly `--decode-tokens` tokens, greedily: ours with the stop tokens banned through
 * logitBias (-100), the peer with `ignore_eos`; `cache_prompt: false`. Rounds interleave (ours, peer, ours,
 * peer, …) with both engines resident and idle while the other runs; one short warm-up stream each first.
 *
 * Figures per round, then medians over rounds:
 *   aggregate tok/s  generated tokens of all N streams ÷ wall time from sending the N requests to the last token
 *   decode tok/s     the same without the prompts' prefill and the queueing before it: the tokens after each
 *                    stream's first ÷ the time from the first stream's first token to the last token (when the
 *                    first tokens come apart, the window takes in the later prompts' prefill: never above the
 *                    steady rate)
 *   ITL              gaps between successive text arrivals of a stream, pooled over the N streams: median, p90;
 *                    ours yields a decode chunk's tokens (`chunkSize` 16) together: a burst of k after a gap g
 *                    counts as k gaps of g/k (tokenGaps), the pace a reader sees, not the burst's 0 ms
 *   TTFT             from sending to the stream's first text, median over the N streams (queueing included)
 * and our scaling against our own single stream; with batching, rows / step (batchStats' rowsStepped ÷ steps over
 * the timed rounds: how many streams a decode step carried on average). Threads: OMP_NUM_THREADS for ours (bench.ts sets it from
 * --threads before the library loads), -t/-tb for llama-server; default all cores.
 */
import { parseArgs } from "node:util";
import { loadModel } from "../../src/models/load.ts";
import { ensureDefaultModel } from "../../src/models/registry.ts";
import type { Model } from "../../src/generate/model.ts";
import type { BackendChoice } from "../../src/ffi/library.ts";
import { buildLlamaCppSrc, type LlamaCppSrcBuild, type LlamaServer, startLlamaServer } from "./llama_cpp_src.ts";

/** Opening lines; stream i gets `SEEDS[i % n]` with its own number, so no two prompts are equal. */
const SEEDS = [
  "The lighthouse keeper climbed the stairs at dusk and looked out over the grey water, where",
  "In the spring of that year the river rose higher than anyone in the valley could remember, and",
  "The recipe had been in the family for four generations, written on a card that",
  "When the train stopped in the middle of the plain, the passengers stepped down and saw",
  "The old clockmaker opened his shop every morning at seven, and the first customer was",
  "Far to the north, beyond the last village on the map, the road turned into",
  "She found the letter in a book she had not opened since school, folded twice and",
  "The city council met on a Tuesday to decide what to do about the bridge, which",
];

export function prompts(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `${i + 1}. ${SEEDS[i % SEEDS.length]}`);
}

/** What one stream saw: arrival times (ms, performance.now) of each piece of text, and its token count. */
interface StreamTiming {
  arrivals: number[];
  tokens: number;
}

/** One round at N streams. */
export interface RoundFigures {
  aggregateTps: number;
  decodeTps: number;
  itlMedianMs: number;
  itlP90Ms: number;
  ttftMedianMs: number;
  tokens: number;
}

export function quantile(xs: number[], q: number): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
  return s[lo] + (s[hi] - s[lo]) * (pos - lo);
}
const median = (xs: number[]) => quantile(xs, 0.5);

/**
 * A stream's inter-token gaps as its reader sees them: pieces arriving within `burstMs` of each other are one
 * burst (ours delivers a decode chunk's tokens together), and a burst of k pieces after a gap g counts as k
 * gaps of g/k. One piece per event, as llama-server sends, gives the plain gaps.
 */
export function tokenGaps(arrivals: number[], burstMs = 1): number[] {
  const gaps: number[] = [];
  let prev = arrivals[0], i = 1;
  while (i < arrivals.length) {
    let j = i + 1;
    while (j < arrivals.length && arrivals[j] - arrivals[j - 1] < burstMs) j++;
    const k = j - i, g = (arrivals[j - 1] - prev) / k;
    for (let m = 0; m < k; m++) gaps.push(g);
    prev = arrivals[j - 1];
    i = j;
  }
  return gaps;
}

/** A stream's tokens after its first piece of text (and the pieces within `burstMs` of it: one burst). */
export function tokensAfterFirst(s: StreamTiming, burstMs = 1): number {
  let burst = Math.min(1, s.arrivals.length);
  while (burst < s.arrivals.length && s.arrivals[burst] - s.arrivals[burst - 1] < burstMs) burst++;
  return s.arrivals.length ? s.tokens * (s.arrivals.length - burst) / s.arrivals.length : 0;
}

/** The round's figures from its streams, all sent at `t0`. */
export function figures(t0: number, streams: StreamTiming[]): RoundFigures {
  const tokens = streams.reduce((a, s) => a + s.tokens, 0);
  const end = Math.max(...streams.map((s) => s.arrivals.at(-1) ?? t0));
  const firstText = Math.min(...streams.map((s) => s.arrivals[0] ?? end));
  const gaps = streams.flatMap((s) => tokenGaps(s.arrivals));
  return {
    aggregateTps: tokens / ((end - t0) / 1000),
    decodeTps: end > firstText
      ? streams.reduce((a, s) => a + tokensAfterFirst(s), 0) / ((end - firstText) / 1000)
      : NaN,
    itlMedianMs: median(gaps),
    itlP90Ms: quantile(gaps, 0.9),
    ttftMedianMs: median(streams.map((s) => (s.arrivals[0] ?? NaN) - t0)),
    tokens,
  };
}

/** One of our streams: `tokens` greedy tokens of `prompt`, stop tokens banned. */
async function oursStream(model: Model, prompt: string, tokens: number): Promise<StreamTiming> {
  const ban = Object.fromEntries(model.tokenizer.stopTokenIds.map((id) => [id, -100]));
  const it = model.stream(prompt, { maxTokens: tokens, temperature: 0, logitBias: ban, reusePrefix: false });
  const arrivals: number[] = [];
  while (true) {
    const r = await it.next();
    if (r.done) {
      if (r.value.completionTokens !== tokens) {
        throw new Error(`ours: ${r.value.completionTokens} tokens, not ${tokens} (${r.value.finishReason})`);
      }
      return { arrivals, tokens: r.value.completionTokens };
    }
    arrivals.push(performance.now());
  }
}

/** One of the peer's streams: POST /completion, SSE, one `data:` event per token. */
async function peerStream(server: LlamaServer, prompt: string, tokens: number): Promise<StreamTiming> {
  const res = await fetch(`${server.url}/completion`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      prompt,
      n_predict: tokens,
      ignore_eos: true,
      cache_prompt: false,
      temperature: 0,
      stream: true,
    }),
  });
  if (!res.ok || !res.body) throw new Error(`llama-server: ${res.status} ${await res.text()}`);
  const arrivals: number[] = [];
  let buf = "", predicted = -1;
  for await (const text of res.body.pipeThrough(new TextDecoderStream())) {
    const now = performance.now();
    buf += text;
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, cut).trim();
      buf = buf.slice(cut + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const data = JSON.parse(event.slice(6));
      if (typeof data.content === "string" && data.content !== "") arrivals.push(now);
      if (data.stop) predicted = data.tokens_predicted ?? data.timings?.predicted_n ?? -1;
    }
  }
  if (predicted !== tokens) throw new Error(`llama-server: ${predicted} tokens, not ${tokens}`);
  return { arrivals, tokens: predicted };
}

async function round(n: number, one: (prompt: string) => Promise<StreamTiming>): Promise<RoundFigures> {
  const t0 = performance.now();
  return figures(t0, await Promise.all(prompts(n).map(one)));
}

const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : "—");
const load = (l: number[]) => l.map((x) => x.toFixed(2)).join(" ");

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      streams: { type: "string", default: "1,2,4,8,16" },
      model: { type: "string" },
      peer: { type: "string" },
      "decode-tokens": { type: "string", default: "128" },
      runs: { type: "string", default: "3" },
      threads: { type: "string" },
      "slot-context": { type: "string", default: "512" },
      backend: { type: "string", default: "cpu" },
    },
  });
  const counts = values.streams.split(",").map(Number);
  if (!counts.every((n) => Number.isInteger(n) && n >= 1)) throw new Error(`--streams: ${values.streams}`);
  if (values.peer !== undefined && values.peer !== "llama.cpp-src") {
    throw new Error(`--peer: only llama.cpp-src (llama-server) runs batched streams, got ${values.peer}`);
  }
  const tokens = Number(values["decode-tokens"]), runs = Number(values.runs);
  const slotContext = Number(values["slot-context"]);
  const threads = Number(values.threads ?? navigator.hardwareConcurrency);
  const gguf = values.model ?? await ensureDefaultModel();
  const build: LlamaCppSrcBuild | undefined = values.peer ? await buildLlamaCppSrc() : undefined;
  const loadBefore = Deno.loadavg();
  console.error(`load average before: ${load(loadBefore)}`);

  /** meanRows: batchStats' rowsStepped ÷ steps over the timed rounds — how many rows a step decoded. */
  type Row = { n: number; ours: RoundFigures[]; peer: RoundFigures[]; batched: boolean; meanRows: number };
  const rows: Row[] = [];
  for (const n of counts) {
    using model = await loadModel(gguf, {
      backend: values.backend as BackendChoice,
      maxContext: slotContext,
      parallel: n,
    });
    const batched = model.parallelNote === undefined;
    // Why a model decodes its calls in turns despite `parallel` (a family without a batched step).
    if (model.parallelNote) console.error(`  N=${n}: ${model.parallelNote}`);
    const server = build ? await startLlamaServer(build, { gguf, threads, parallel: n, slotContext }) : undefined;
    try {
      const row: Row = { n, ours: [], peer: [], batched, meanRows: NaN };
      await oursStream(model, prompts(1)[0], 16); // warm-up: the decode program, the pool, the page cache
      if (server) await peerStream(server, prompts(1)[0], 16);
      const s0 = model.batchStats();
      for (let r = 0; r < runs; r++) {
        row.ours.push(await round(n, (p) => oursStream(model, p, tokens)));
        if (server) row.peer.push(await round(n, (p) => peerStream(server, p, tokens)));
        const last = (f?: RoundFigures) => f ? `${fmt(f.aggregateTps)} tok/s` : "";
        console.error(
          `  N=${n} round ${r + 1}/${runs}: ours ${last(row.ours.at(-1))}` +
            (server ? `, llama-server ${last(row.peer.at(-1))}` : "") + `; load ${load(Deno.loadavg())}`,
        );
      }
      const s1 = model.batchStats();
      if (s1.steps > s0.steps) row.meanRows = (s1.rowsStepped - s0.rowsStepped) / (s1.steps - s0.steps);
      rows.push(row);
    } finally {
      await server?.close();
    }
  }
  const loadAfter = Deno.loadavg();

  const med = (fs: RoundFigures[], k: keyof RoundFigures) => median(fs.map((f) => f[k]));
  const single = rows.find((r) => r.n === 1);
  const oursSingle = single ? med(single.ours, "aggregateTps") : NaN;
  const peerSingle = single && build ? med(single.peer, "aggregateTps") : NaN;
  const oursDecodeSingle = single ? med(single.ours, "decodeTps") : NaN;
  const peerDecodeSingle = single && build ? med(single.peer, "decodeTps") : NaN;
  const decodeCell = (fs: RoundFigures[], one: number) =>
    `${fmt(med(fs, "decodeTps"))} (${fmt(med(fs, "decodeTps") / one, 2)}x)`;
  const allBatched = rows.every((r) => r.batched);
  console.log(
    `\n### Concurrent streams — \`deno task bench --streams ${values.streams}${
      values.peer ? " --peer llama.cpp-src" : ""
    }` +
      ` --decode-tokens ${tokens} --runs ${runs} --threads ${threads}\`\n`,
  );
  console.log(`- model: ${gguf}; ${tokens} greedy tokens per stream (EOS ignored), distinct raw-text prompts`);
  console.log(
    `- gemmakit: ${values.backend}, OMP_NUM_THREADS=${Deno.env.get("OMP_NUM_THREADS") ?? "(unset)"}, ` +
      (allBatched
        ? "`parallel: N` (batched decode)"
        : "**calls taken in turns**: the model's family has no batched decode step (Model.parallelNote)"),
  );
  if (build) {
    console.log(
      `- llama-server: ${build.version}; -t ${threads} -tb ${threads} -np N -c N×${slotContext} --no-kv-unified`,
    );
  }
  console.log(
    `- ${runs} interleaved rounds, medians; load average before ${load(loadBefore)}, after ${load(loadAfter)}\n`,
  );
  const head = [
    "streams",
    "gemmakit tok/s",
    "× its 1 stream",
    ...(build ? ["llama-server tok/s", "× its 1 stream", "ratio"] : []),
    "gemmakit decode tok/s (× 1 stream)",
    ...(build ? ["llama-server decode tok/s (× 1 stream)"] : []),
    "gemmakit ITL med / p90 ms",
    ...(build ? ["llama-server ITL med / p90 ms"] : []),
    "gemmakit TTFT ms",
    ...(build ? ["llama-server TTFT ms"] : []),
    ...(allBatched ? ["gemmakit rows / step"] : []),
  ];
  console.log(`| ${head.join(" | ")} |`);
  console.log(`| ${head.map(() => "---:").join(" | ")} |`);
  for (const r of rows) {
    const o = med(r.ours, "aggregateTps"), p = build ? med(r.peer, "aggregateTps") : NaN;
    const cells = [
      String(r.n),
      fmt(o),
      `${fmt(o / oursSingle, 2)}x`,
      ...(build ? [fmt(p), `${fmt(p / peerSingle, 2)}x`, `${fmt(o / p, 2)}x`] : []),
      decodeCell(r.ours, oursDecodeSingle),
      ...(build ? [decodeCell(r.peer, peerDecodeSingle)] : []),
      `${fmt(med(r.ours, "itlMedianMs"))} / ${fmt(med(r.ours, "itlP90Ms"))}`,
      ...(build ? [`${fmt(med(r.peer, "itlMedianMs"))} / ${fmt(med(r.peer, "itlP90Ms"))}`] : []),
      fmt(med(r.ours, "ttftMedianMs"), 0),
      ...(build ? [fmt(med(r.peer, "ttftMedianMs"), 0)] : []),
      ...(allBatched ? [fmt(r.meanRows, 2)] : []),
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
  // Issue 16's goals.
  const at8 = rows.find((r) => r.n === 8);
  if (at8 && single) {
    const x = med(at8.ours, "aggregateTps") / oursSingle, d = med(at8.ours, "decodeTps") / oursDecodeSingle;
    console.log(
      `\ngoal: 8 streams ≥ 4× single-stream throughput — aggregate ${fmt(x, 2)}x: ${x >= 4 ? "met" : "NOT met"}; ` +
        `decode alone ${fmt(d, 2)}x: ${d >= 4 ? "met" : "NOT met"}`,
    );
  }
  if (build) {
    const verdict = (k: "aggregateTps" | "decodeTps") => {
      const behind = rows.filter((r) => med(r.ours, k) < med(r.peer, k)).map((r) => r.n);
      return behind.length ? `NOT met at N = ${behind.join(", ")}` : "met";
    };
    console.log(
      `goal: ≥ llama-server at every N — aggregate ${verdict("aggregateTps")}; decode alone ${verdict("decodeTps")}`,
    );
  }
}

// Run directly or through bench.ts's dynamic import (where import.meta.main is false).
if (import.meta.main || Deno.mainModule.endsWith("/tests/bench/bench.ts")) await main();
