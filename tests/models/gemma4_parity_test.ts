/**
 * Gemma 4 text against transformers: tiny random checkpoints that transformers wrote
 * (tests/fixtures/make_gemma4_fixtures.py: an E-type model with per-layer inputs, KV sharing and the
 * double-wide MLP; a 31B-type model with k_eq_v global layers; a 26B-A4B-type MoE model), with the logits
 * of every prompt position and the 32-token greedy continuation. Every prompt is longer than the sliding
 * window, so prefill drops keys and the decode ring buffer wraps. On CPU in f32 every logit must agree within
 * 1e-4 (the fixtures' own float32-vs-float64 error is below 3e-5, see expected.json "discrimination").
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { KvCache } from "../../src/runtime/kv_cache.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { DecodeProgram } from "../../src/runtime/program.ts";
import { argmax } from "../../src/ops/reduce.ts";
import { loadGemma4Text } from "../../src/models/gemma4/load.ts";
import { gemma4CacheSpecs, type Gemma4TextModel } from "../../src/models/gemma4/model.ts";
import { cudaOrSkip } from "../helpers.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const TOLERANCE = 1e-4;

interface Expected {
  plain: { input_ids: number[]; logits: number[][]; greedy: { ids: number[]; step_logits: number[][] } };
}

function expectClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>) {
  assert.equal(got.length, want.length, `${label}: length`);
  let diff = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= diff)) [diff, at] = [d, i];
  }
  assert.ok(diff <= TOLERANCE, `${label}: |Δlogit| ${diff.toExponential(2)} at vocab ${at} exceeds ${TOLERANCE}`);
}

/** Prefill, then greedy decode steps one at a time; returns the tokens and each step's logits. */
function greedy(model: Gemma4TextModel, prompt: number[], steps: number) {
  const backend = model.backend;
  using ws = new Workspace(backend);
  using logits = Tensor.empty(backend, [1, model.vocabSize]);
  using token = Tensor.empty(backend, [1], "i32");
  using position = Tensor.empty(backend, [1], "i32");
  const tokens: number[] = [];
  const stepLogits: Float32Array[] = [];
  {
    using first = model.prefill(prompt);
    using next = argmax(first);
    tokens.push(next.toArray()[0]);
  }
  for (let i = 1; i < steps; i++) {
    token.write([tokens.at(-1)!]);
    position.write([prompt.length + i - 1]);
    model.decodeStep(token, position, ws, logits);
    stepLogits.push(logits.toArray() as Float32Array);
    using next = argmax(logits);
    tokens.push(next.toArray()[0]);
  }
  return { tokens, stepLogits };
}

/** The same greedy decode through a recorded decode program (argmax into the next step's token). */
function greedyRecorded(model: Gemma4TextModel, prompt: number[], steps: number): number[] {
  const backend = model.backend;
  using ws = new Workspace(backend);
  using logits = Tensor.empty(backend, [1, model.vocabSize]);
  using position = Tensor.empty(backend, [1], "i32");
  using token = Tensor.empty(backend, [1], "i32");
  {
    using first = model.prefill(prompt);
    argmax(first, token);
  }
  const tokens = [token.toArray()[0]];
  const step = () => {
    model.decodeStep(token, position, ws, logits);
    argmax(logits, token);
  };
  position.write([prompt.length]);
  step(); // allocates the workspace
  tokens.push(token.toArray()[0]);
  using program = DecodeProgram.record(backend, step);
  for (let i = 2; i < steps; i++) {
    position.write([prompt.length + i - 1]);
    program.run(1);
    tokens.push(token.toArray()[0]);
  }
  return tokens;
}

const fixtureDirs = [...Deno.readDirSync(FIXTURES)]
  .filter((e) => e.isDirectory && e.name.startsWith("gemma4-text-"))
  .map((e) => e.name)
  .sort();

const { cuda, skip: cudaSkip } = cudaOrSkip("CUDA Gemma 4 parity");
cuda?.dispose();

for (const kind of ["cpu", "cuda"] as const) {
  for (const name of fixtureDirs) {
    const dir = `${FIXTURES}${name}`;
    Deno.test({
      name: `[${kind}] gemma4 parity: ${name}${kind === "cuda" && cudaSkip ? " (skipped: no CUDA device)" : ""}`,
      ignore: kind === "cuda" && cudaSkip !== "",
      fn() {
        const expected: Expected = JSON.parse(Deno.readTextFileSync(`${dir}/expected.json`));
        using backend = Backend.open({ backend: kind });
        const model = loadGemma4Text(backend, dir, { maxContext: 128 });
        try {
          // The cache holds what the layer plan says: nothing for KV-shared layers, a window ring for sliding ones.
          assert.equal(model.cache.bytes, KvCache.bytesFor(gemma4CacheSpecs(model.config, 128)));
          for (const l of model.config.layers) {
            if (l.kvShared) assert.equal(model.cache.layer(l.index), model.cache.layer(l.kvSource));
          }

          const { input_ids, logits } = expected.plain;
          using all = model.prefill(input_ids, "all");
          const got = all.toArray();
          const V = model.vocabSize;
          logits.forEach((row, t) => expectClose(`${name} position ${t}`, got.subarray(t * V, (t + 1) * V), row));
          // The last position alone (the last layer then carries one row past its attention).
          using last = model.prefill(input_ids);
          expectClose(`${name} last position alone`, last.toArray(), logits.at(-1)!);

          const run = greedy(model, input_ids, expected.plain.greedy.ids.length);
          assert.deepEqual(run.tokens, expected.plain.greedy.ids, `${name}: greedy continuation differs`);
          run.stepLogits.forEach((row, i) =>
            expectClose(`${name} decode step ${i + 1}`, row, expected.plain.greedy.step_logits[i + 1])
          );

          // Prefill-then-decode equals one full forward over prompt + continuation.
          const full = [...input_ids, ...run.tokens.slice(0, -1)];
          using fwd = model.prefill(full, "all");
          const fwdLogits = fwd.toArray();
          run.stepLogits.forEach((row, i) => {
            const t = input_ids.length + i;
            expectClose(`${name} full forward vs decode step ${i + 1}`, row, fwdLogits.subarray(t * V, (t + 1) * V));
          });

          // The recorded decode program produces the same continuation.
          const recorded = greedyRecorded(model, input_ids, expected.plain.greedy.ids.length);
          assert.deepEqual(recorded, expected.plain.greedy.ids, `${name}: recorded decode differs`);
        } finally {
          model.dispose();
        }
        assert.equal(backend.memoryStats().inUse, 0, "model.dispose() must free every weight and cache");
      },
    });
  }
}
