/**
 * `deno task bench --fidelity [--model FILE.gguf]`: how closely the CPU backend's logits follow transformers' on the
 * real Gemma 3 270M fidelity fixture (tests/fixtures/gemma3-270m-gguf: 126 prompt positions, greedy decode steps with
 * transformers' own tokens fed back, full last-position vectors of two prompts), in the default mode, with the
 * default's integer paths switched off (`GEMMAKIT_CPU_REPACK=0`, `GEMMAKIT_CPU_X24_ACTIVATIONS=0`) and with
 * `GEMMAKIT_CPU_Q8_ACTIVATIONS=1` (the opt-in int8 activations; the switches are read once when the library loads:
 * each mode runs in its own process). Prints top-1 agreement, KL(transformers ‖ ours) over transformers' top 20 plus
 * the rest as one outcome (exact over all logits for the full vectors) and the largest top-20 logit error — the table of
 * docs/benchmarks.md. The pass/fail bounds live in tests/models/gemma3_gguf_fidelity_test.ts.
 * @module
 */
import { parseArgs } from "node:util";
import { Backend } from "../../src/runtime/backend.ts";
import { type Positions, readFidelityExpected, readLastLogits, V } from "../models/gemma3_270m_fidelity_fixture.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { loadGemma3Gguf } from "../../src/models/gemma3/load.ts";
import { ensureDefaultModel } from "../../src/models/registry.ts";

/** Per-row figures against transformers' top-20 records. */
class Tally {
  rows = 0;
  top1 = 0;
  klSum = 0;
  klMax = 0;
  maxErr = 0;

  add(row: Float32Array, ref: Positions, t: number): void {
    let top = 0, max = -Infinity;
    for (let i = 0; i < V; i++) {
      if (row[i] > row[top]) top = i;
      max = Math.max(max, row[i]);
    }
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    const lse = max + Math.log(sum);
    const ids = ref.top_ids[t], want = ref.top_logits[t];
    let kl = 0, pRest = 1, qRest = 1;
    for (let k = 0; k < ids.length; k++) {
      const p = Math.exp(want[k] - ref.logsumexp[t]), q = Math.exp(row[ids[k]] - lse);
      kl += p * Math.log(p / q);
      pRest -= p;
      qRest -= q;
      this.maxErr = Math.max(this.maxErr, Math.abs(row[ids[k]] - want[k]));
    }
    if (pRest > 1e-12 && qRest > 1e-12) kl += pRest * Math.log(pRest / qRest);
    this.rows++;
    if (top === ref.argmax[t]) this.top1++;
    this.klSum += kl;
    this.klMax = Math.max(this.klMax, kl);
  }

  toString(): string {
    const e = (x: number) => x.toExponential(1);
    return `${this.top1}/${this.rows} | ${e(this.klSum / this.rows)} / ${e(this.klMax)}`;
  }
}

/** Exact KL(p ‖ q) of two logit vectors. */
function fullKl(want: Float32Array, got: Float32Array): number {
  const lse = (v: Float32Array) => {
    let m = -Infinity, s = 0;
    for (const x of v) m = Math.max(m, x);
    for (const x of v) s += Math.exp(x - m);
    return m + Math.log(s);
  };
  const [lp, lq] = [lse(want), lse(got)];
  let kl = 0;
  for (let i = 0; i < V; i++) {
    const a = want[i] - lp;
    kl += Math.exp(a) * (a - (got[i] - lq));
  }
  return kl;
}

function measure(path: string): string {
  const expected = readFidelityExpected();
  using backend = Backend.open({ backend: "cpu" });
  const lm = loadGemma3Gguf(backend, path, { maxContext: 128 });
  try {
    const prefill = new Tally(), decode = new Tally();
    const full: string[] = [];
    for (const p of expected.prompts) {
      using logits = lm.prefill(p.input_ids, "all");
      const all = logits.toArray() as Float32Array;
      for (let t = 0; t < p.input_ids.length; t++) prefill.add(all.subarray(t * V, (t + 1) * V), p.positions, t);
      if (p.last_logits_file) {
        const want = readLastLogits(p.last_logits_file);
        full.push(`${p.name} ${fullKl(want, all.subarray((p.input_ids.length - 1) * V)).toExponential(1)}`);
      }
      if (!p.greedy) continue;
      // Decode step by step with transformers' own tokens (the decode step's few-row products).
      const g = p.greedy, T = p.input_ids.length;
      using ws = new Workspace(backend);
      const token = ws.get("token", [1], "i32"), position = ws.get("position", [1], "i32");
      const out = ws.get("logits", [1, V]);
      decode.add(all.subarray((T - 1) * V, T * V), g.steps, 0);
      for (let k = 1; k < g.ids.length; k++) {
        token.write([g.ids[k - 1]]);
        position.write([T + k - 1]);
        lm.decodeStep(token, position, ws, out);
        decode.add(out.toArray() as Float32Array, g.steps, k);
      }
    }
    const maxErr = Math.max(prefill.maxErr, decode.maxErr);
    return `| ${prefill} | ${decode} | ${full.join(", ")} | ${maxErr.toExponential(1)} |`;
  } finally {
    lm.dispose();
  }
}

const { values } = parseArgs({
  args: Deno.args,
  options: { model: { type: "string" }, fidelity: { type: "boolean" }, child: { type: "boolean" } },
  strict: false,
});
const path = (values.model as string | undefined) ?? await ensureDefaultModel();
if (values.child) {
  console.log(measure(path));
} else {
  console.log(
    "| mode | prefill top-1 | prefill KL mean / max | decode top-1 | decode KL mean / max | full KL | largest top-20 logit error |",
  );
  console.log("| --- | ---: | --- | ---: | --- | --- | ---: |");
  const modes: [string, Record<string, string>][] = [
    ["default (24-bit x in decode products, quantized weights in 16-row layouts)", {
      GEMMAKIT_CPU_Q8_ACTIVATIONS: "0",
    }],
    ["`GEMMAKIT_CPU_REPACK=0` (weights as stored)", { GEMMAKIT_CPU_Q8_ACTIVATIONS: "0", GEMMAKIT_CPU_REPACK: "0" }],
    ["`GEMMAKIT_CPU_X24_ACTIVATIONS=0 GEMMAKIT_CPU_REPACK=0` (f32 x)", {
      GEMMAKIT_CPU_Q8_ACTIVATIONS: "0",
      GEMMAKIT_CPU_X24_ACTIVATIONS: "0",
      GEMMAKIT_CPU_REPACK: "0",
    }],
    ["`GEMMAKIT_CPU_Q8_ACTIVATIONS=1`", { GEMMAKIT_CPU_Q8_ACTIVATIONS: "1" }],
  ];
  for (const [mode, env] of modes) {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", import.meta.filename!, "--child", "--model", path],
      env,
      stdout: "piped",
      stderr: "inherit",
    }).output();
    if (!r.success) throw new Error(`the ${mode} run failed`);
    const row = new TextDecoder().decode(r.stdout).trim().split("\n").at(-1)!;
    console.log(`| ${mode} ${row}`);
  }
}
