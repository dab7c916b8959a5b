/**
 * The real Gemma 3 270M in every GGUF type, requantized by llama-quantize from the Q4_K_M file, against
 * transformers on each file's own weights dequantized by gguf-py (tests/fixtures/make_requant_270m.py writes both
 * into ~/.cache/gemmakit/requant-270m, or $GEMMAKIT_REQUANT_DIR; nothing is committed, since a requantized file is
 * reproducible only with the same llama.cpp build). Without those files the test is skipped and says why.
 *
 * For every position of the five fidelity prompts (tests/fixtures/gemma3-270m-gguf/expected.json: 126
 * positions), gemmakit's top-1 must be transformers' — except where transformers' own top-1/top-2 gap is below
 * 2·ATOL, a tie either side may break — and every one of transformers' top-20 logits must be within ATOL of ours.
 * ATOL = 2e-3, as tests/models/gemma3_gguf_fidelity_test.ts argues for the Q4_K_M file: both sides multiply the
 * same float32 numbers (blocks decoded exactly; activations float32), so only summation order differs, and that
 * does not grow with the quant type. Figures per type: docs/quantization.md.
 * @module
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Backend } from "../../src/runtime/backend.ts";
import { loadGemma3Gguf } from "../../src/models/gemma3/load.ts";

const DIR = Deno.env.get("GEMMAKIT_REQUANT_DIR") ?? join(Deno.env.get("HOME") ?? "", ".cache/gemmakit/requant-270m");
const TYPES = ["Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q5_K", "Q3_K", "Q2_K", "IQ4_NL", "IQ4_XS", "Q6_K", "Q8_0"];
/** llama-quantize --pure: the only files with Q2_K and Q3_K tensors (see make_requant_270m.py PURE_TYPES). */
const PURE = ["Q2_K", "Q3_K", "Q5_K", "Q6_K", "IQ4_XS"].map((t) => `${t}-pure`);
const ATOL = 2e-3;

interface Reference {
  gguf_sha256: string;
  tensor_types: Record<string, number>;
  prompts: { name: string; input_ids: number[]; argmax: number[]; top_ids: number[][]; top_logits: number[][] }[];
}

async function sha256File(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path) as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

for (const type of [...TYPES, ...PURE]) {
  const gguf = join(DIR, `gemma-3-270m.${type}.gguf`);
  const refPath = join(DIR, `gemma-3-270m.${type}.reference.json`);
  const present = existsSync(gguf) && existsSync(refPath);
  const why = `${gguf} and its reference.json are absent: run tests/fixtures/make_requant_270m.py (see its docstring)`;
  Deno.test({
    name: `requantized 270M ${type}: top-1 at every prompt position and top-20 logits match transformers` +
      (present ? "" : ` (skipped: ${why})`),
    ignore: !present,
    async fn() {
      const ref = JSON.parse(Deno.readTextFileSync(refPath)) as Reference;
      assert.equal(await sha256File(gguf), ref.gguf_sha256, "the reference was computed from this very file");
      using backend = Backend.open({ backend: "cpu" });
      using lm = loadGemma3Gguf(backend, gguf, { maxContext: 256 });
      let positions = 0, agree = 0, worst = 0;
      const disagreements: string[] = [];
      for (const p of ref.prompts) {
        using logits = lm.prefill(p.input_ids, "all");
        const all = logits.toArray() as Float32Array;
        const V = logits.shape[1];
        for (let t = 0; t < p.input_ids.length; t++) {
          const row = all.subarray(t * V, (t + 1) * V);
          let best = 0;
          for (let i = 1; i < V; i++) if (row[i] > row[best]) best = i;
          positions++;
          const gap = p.top_logits[t][0] - p.top_logits[t][1];
          if (best === p.argmax[t]) agree++;
          else if (gap >= 2 * ATOL) disagreements.push(`${p.name}@${t}: ours ${best}, transformers ${p.argmax[t]}`);
          p.top_ids[t].forEach((id, k) => worst = Math.max(worst, Math.abs(row[id] - p.top_logits[t][k])));
        }
      }
      console.log(
        `  ${type}: top-1 agreement ${agree}/${positions}, max |Δlogit| over transformers' top-20 ` +
          `${worst.toExponential(2)}; tensor types ${JSON.stringify(ref.tensor_types)}`,
      );
      assert.deepEqual(disagreements, []);
      assert.ok(worst <= ATOL, `max |Δlogit| ${worst} exceeds ${ATOL}`);
    },
  });
}
