/**
 * Decode speed per GGUF type: every `*.gguf` in a folder (e.g. the real 270M requantized into each type by
 * tests/fixtures/make_requant_270m.py), loaded through the registry (either family), then greedy decode through
 * the recorded decode program after a short prompt — the same loop as model_bench.ts's decode column. Files run
 * one after another in interleaved rounds (every file once per round, `--runs` rounds), so a change of machine load
 * spreads over all types instead of landing on one; the table gives each file's median, and the 1-minute load
 * average is printed per round.
 *
 *   deno task bench --quant-sweep ~/.cache/gemmakit/requant-270m [--prompt-tokens 32] [--decode-tokens 64] \
 *     [--runs 3] [--threads 2] [--backend cpu] [--json PATH]
 */
import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import { Backend } from "../../src/runtime/backend.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { DecodeProgram } from "../../src/runtime/program.ts";
import { sample } from "../../src/ops/sample.ts";
import { openGguf } from "../../src/formats/gguf.ts";
import { familyFor } from "../../src/models/registry.ts";
import { ggufCheckpoint } from "../../src/models/load.ts";
import type { BackendChoice } from "../../src/ffi/library.ts";
import type { Tensor } from "../../src/runtime/tensor.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "quant-sweep": { type: "string" },
    backend: { type: "string", default: "cpu" },
    "prompt-tokens": { type: "string", default: "32" },
    "decode-tokens": { type: "string", default: "64" },
    runs: { type: "string", default: "3" },
    threads: { type: "string" },
    json: { type: "string" },
  },
});
const dir = values["quant-sweep"]!;
const promptTokens = Number(values["prompt-tokens"]), decodeTokens = Number(values["decode-tokens"]);
const runs = Number(values.runs);
const files = [...Deno.readDirSync(dir)].filter((e) => e.isFile && e.name.endsWith(".gguf")).map((e) => e.name)
  .sort();
if (files.length === 0) {
  console.error(`quant sweep: no .gguf files in ${dir}`);
  Deno.exit(2);
}

interface DecodeLm {
  vocabSize: number;
  prefill(ids: ArrayLike<number>): Tensor;
  decodeStep(token: Tensor, position: Tensor, ws: Workspace, logits: Tensor): Tensor;
  dispose(): void;
}

using backend = Backend.open({ backend: values.backend as BackendChoice });
const maxContext = promptTokens + decodeTokens + 1;

/** The file's types, most frequent first among the quantized ones (what "the type" of a requantized file is). */
function typesOf(path: string): string {
  using g = openGguf(path);
  const counts = new Map<string, number>();
  for (const t of g.tensors) counts.set(t.dtype, (counts.get(t.dtype) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t}×${n}`).join(" ");
}

/** One prefill, then `decodeTokens - 1` greedy steps through a recorded program; decode tok/s. */
async function decodeOnce(path: string): Promise<number> {
  const checkpoint = ggufCheckpoint(path);
  using _file = checkpoint.file;
  const parts = await familyFor(checkpoint).load(checkpoint, backend, { maxContext });
  const lm = parts.lm as unknown as DecodeLm;
  try {
    const V = lm.vocabSize;
    const prompt = Array.from({ length: promptTokens }, (_, i) => i === 0 ? 2 : 3 + ((i * 7919) % (V - 3)));
    using ws = new Workspace(backend);
    const state = ws.get("state", [8], "i32");
    const history = ws.get("history", [maxContext], "i32");
    const logits = ws.get("logits", [1, lm.vocabSize]);
    const greedy = { temperature: 0 };
    history.write(Int32Array.from({ length: maxContext }, (_, i) => prompt[i] ?? 0));
    state.write([promptTokens - 1, prompt.at(-1)!, promptTokens, 0, 0, 0, 0, 0]);
    {
      using first = lm.prefill(prompt);
      sample(first, greedy, state, history, null);
    }
    const step = () => {
      lm.decodeStep(state.rows(1, 1), state.rows(0, 1), ws, logits);
      sample(logits, greedy, state, history, null);
    };
    step(); // allocates the decode workspace
    using program = DecodeProgram.record(backend, step);
    backend.synchronize();
    const t0 = performance.now();
    program.run(decodeTokens - 2);
    backend.synchronize();
    return (decodeTokens - 2) / ((performance.now() - t0) / 1000);
  } finally {
    lm.dispose();
  }
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = new Map<string, number[]>(files.map((f) => [f, []]));
const loads: number[][] = [Deno.loadavg()];
for (const f of files) await decodeOnce(join(dir, f)); // warm-up: page cache, library
for (let r = 0; r < runs; r++) {
  for (const f of files) results.get(f)!.push(await decodeOnce(join(dir, f)));
  loads.push(Deno.loadavg());
  console.error(`round ${r + 1}/${runs}; load ${Deno.loadavg().map((x) => x.toFixed(2)).join(" ")}`);
}
const oneMinute = loads.map((l) => l[0]);
const threads = values.threads ?? String(navigator.hardwareConcurrency);
console.log(
  `quant sweep ${dir}: backend ${backend.kind} (${backend.deviceName}), ${threads} threads, ${promptTokens}-token ` +
    `prompt, ${decodeTokens - 2} timed greedy decode tokens, medians of ${runs} interleaved rounds; 1-min load ` +
    `average ${Math.min(...oneMinute).toFixed(2)}–${Math.max(...oneMinute).toFixed(2)} ` +
    `(${navigator.hardwareConcurrency} CPUs)`,
);
console.log("| file | MiB | tensor types | decode tok/s (median) | min–max |");
console.log("| --- | ---: | --- | ---: | ---: |");
const rows = [];
for (const f of files) {
  const xs = results.get(f)!;
  const mib = Deno.statSync(join(dir, f)).size / 2 ** 20;
  const types = typesOf(join(dir, f));
  console.log(
    `| ${basename(f)} | ${mib.toFixed(0)} | ${types} | ${median(xs).toFixed(1)} | ` +
      `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)} |`,
  );
  rows.push({ file: f, mib, types, decodeTokensPerSecond: xs });
}
if (values.json) {
  Deno.writeTextFileSync(values.json, JSON.stringify({ date: new Date().toISOString(), loads, rows }, null, 2));
}
