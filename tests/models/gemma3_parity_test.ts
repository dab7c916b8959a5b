/**
 * Gemma 3 text against transformers: tiny random checkpoints that transformers wrote
 * (tests/fixtures/make_fixtures.py), with the logits of every prompt position and the greedy
 * continuations it produced. On CPU in f32 every logit must agree within 1e-4; on CUDA (when present)
 * the same checks run.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { Workspace } from "../../src/runtime/workspace.ts";
import { argmax } from "../../src/ops/reduce.ts";
import { loadGemma3Text } from "../../src/models/gemma3/load.ts";
import type { Gemma3TextModel } from "../../src/models/gemma3/model.ts";
import { cudaOrSkip } from "../helpers.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const TOLERANCE = 1e-4;

interface Expected {
  plain: {
    input_ids: number[];
    logits: number[][];
    greedy: { ids: number[]; step_logits: number[][] };
  };
  chat: { input_ids: number[]; last_logits: number[]; greedy: { ids: number[]; step_logits: number[][] } };
}

function maxAbsDiff(got: ArrayLike<number>, want: ArrayLike<number>): { diff: number; at: number } {
  assert.equal(got.length, want.length);
  let diff = 0, at = -1;
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    if (!(d <= diff)) [diff, at] = [d, i];
  }
  return { diff, at };
}

function expectClose(label: string, got: ArrayLike<number>, want: ArrayLike<number>) {
  const { diff, at } = maxAbsDiff(got, want);
  assert.ok(diff <= TOLERANCE, `${label}: |Δlogit| ${diff.toExponential(2)} at vocab ${at} exceeds ${TOLERANCE}`);
}

/** Prefill, then greedy decode steps one at a time; returns the tokens and each step's logits. */
function greedy(model: Gemma3TextModel, prompt: number[], steps: number) {
  const backend = model.backend;
  using ws = new Workspace(backend);
  using logits = Tensor.empty(backend, [1, model.config.text.vocabSize]);
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

const fixtureDirs = [...Deno.readDirSync(FIXTURES)]
  .filter((e) => e.isDirectory && e.name.startsWith("gemma3-text-"))
  .map((e) => e.name)
  .sort();

const { cuda, skip: cudaSkip } = cudaOrSkip("CUDA Gemma 3 parity");
cuda?.dispose();

for (const kind of ["cpu", "cuda"] as const) {
  for (const name of fixtureDirs) {
    const dir = `${FIXTURES}${name}`;
    Deno.test({
      name: `[${kind}] gemma3 parity: ${name}${kind === "cuda" && cudaSkip ? " (skipped: no CUDA device)" : ""}`,
      ignore: kind === "cuda" && cudaSkip !== "",
      fn() {
        const expected: Expected = JSON.parse(Deno.readTextFileSync(`${dir}/expected.json`));
        using backend = Backend.open({ backend: kind });
        const model = loadGemma3Text(backend, dir, { maxContext: 128 });
        try {
          // Every prompt position, in one full forward.
          const { input_ids, logits } = expected.plain;
          using all = model.prefill(input_ids, "all");
          const got = all.toArray();
          const V = model.config.text.vocabSize;
          logits.forEach((row, t) => expectClose(`${name} plain position ${t}`, got.subarray(t * V, (t + 1) * V), row));

          // Prefill then decode step by step: the greedy continuation and each step's logits.
          const plain = greedy(model, input_ids, expected.plain.greedy.ids.length);
          assert.deepEqual(plain.tokens, expected.plain.greedy.ids, `${name}: greedy continuation differs`);
          plain.stepLogits.forEach((row, i) =>
            expectClose(`${name} decode step ${i + 1}`, row, expected.plain.greedy.step_logits[i + 1])
          );

          // Prefill-then-decode equals one full forward over prompt + continuation.
          const full = [...input_ids, ...plain.tokens.slice(0, -1)];
          using fwd = model.prefill(full, "all");
          const fwdLogits = fwd.toArray();
          plain.stepLogits.forEach((row, i) => {
            const t = input_ids.length + i;
            expectClose(`${name} full forward vs decode step ${i + 1}`, row, fwdLogits.subarray(t * V, (t + 1) * V));
          });

          // A chat-template prompt.
          const chat = expected.chat;
          using last = model.prefill(chat.input_ids);
          expectClose(`${name} chat last position`, last.toArray(), chat.last_logits);
          const chatRun = greedy(model, chat.input_ids, chat.greedy.ids.length);
          assert.deepEqual(chatRun.tokens, chat.greedy.ids, `${name}: chat greedy continuation differs`);
        } finally {
          model.dispose();
        }
        assert.equal(backend.memoryStats().inUse, 0, "model.dispose() must free every weight and cache");
      },
    });
  }
}
