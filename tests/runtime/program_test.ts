/**
 * Decode programs: a recorded step replayed n times equals the same ops called n times; nothing runs at
 * record time; failures name the step; a failed recording leaves the stream usable. Every test runs on
 * the CPU library and, when a GPU answers, on the CUDA library (otherwise reported as ignored, with the
 * reason printed once).
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { DecodeProgram } from "../../src/runtime/program.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { DisposedError, GemmakitError, NativeError } from "../../src/errors.ts";
import * as ops from "../../src/ops/mod.ts";
import { DECODE_STATE, type SamplingParams } from "../../src/ops/mod.ts";
import { sampleU24 } from "../ops/reference.ts";
import { Rng } from "../ops/cases.ts";
import { cudaOrSkip, thrown } from "../helpers.ts";

const cpu = Backend.open({ backend: "cpu" });
const { cuda } = cudaOrSkip("CUDA decode-program tests");

/** Registers `fn` once per backend; the CUDA one is ignored (with the reason in its name) without a GPU. */
function test(name: string, fn: (backend: Backend) => void, options: { cpuOnly?: string } = {}) {
  Deno.test({ name: `[cpu] ${name}`, fn: () => checkNoLeak(cpu, fn) });
  const skip = options.cpuOnly ?? (cuda ? undefined : "no CUDA device");
  Deno.test({
    name: `[cuda] ${name}${skip ? ` (skipped: ${skip})` : ""}`,
    ignore: skip !== undefined,
    fn: () => checkNoLeak(cuda!, fn),
  });
}

function checkNoLeak(backend: Backend, fn: (backend: Backend) => void) {
  const before = backend.memoryStats().inUse;
  fn(backend);
  assert.equal(backend.recording, false, "the test left the stream recording");
  assert.equal(backend.memoryStats().inUse, before, "the test leaked device memory");
}

/**
 * A toy decode step: the embedding of state[token], normalised, written to a ring cache at
 * state[position], projected to logits by a linear head, soft-capped, then sampled back into the state.
 */
class ToyStep {
  static readonly VOCAB = 512;
  static readonly DIM = 48;
  static readonly CAPACITY = 64;
  readonly table: Tensor;
  readonly norm: Tensor;
  readonly head: Tensor;
  readonly hidden: Tensor;
  readonly logits: Tensor;
  readonly cache: Tensor;
  readonly state: Tensor;
  readonly history: Tensor;
  readonly stopIds: Tensor | null;
  readonly #made: Tensor[];

  constructor(readonly backend: Backend, readonly params: SamplingParams, stop: number[] = [3]) {
    const v = ToyStep.VOCAB, d = ToyStep.DIM, rng = new Rng(7);
    this.table = Tensor.fromArray(backend, rng.floats(v * d), [v, d], "bf16");
    this.norm = Tensor.fromArray(backend, rng.floats(d, -0.3, 0.3), [d]);
    this.head = Tensor.fromArray(backend, rng.floats(v * d, -0.6, 0.6), [v, d], "bf16");
    this.hidden = Tensor.zeros(backend, [1, d]);
    this.logits = Tensor.zeros(backend, [1, v]);
    this.cache = Tensor.zeros(backend, [5, d]);
    this.state = Tensor.zeros(backend, [DECODE_STATE.fields], "i32");
    this.history = Tensor.zeros(backend, [ToyStep.CAPACITY], "i32");
    this.stopIds = stop.length ? Tensor.fromArray(backend, stop, [stop.length], "i32") : null;
    this.#made = [this.table, this.norm, this.head, this.hidden, this.logits, this.cache, this.state, this.history];
    if (this.stopIds) this.#made.push(this.stopIds);
    this.reset();
  }

  /** A prompt of 4 tokens; the last one is the next step's input at position 3. */
  reset(): void {
    const prompt = [10, 200, 31, 77];
    const state = new Int32Array(DECODE_STATE.fields);
    state[DECODE_STATE.position] = prompt.length - 1;
    state[DECODE_STATE.token] = prompt.at(-1)!;
    state[DECODE_STATE.history] = prompt.length;
    this.state.write(state);
    const history = new Int32Array(ToyStep.CAPACITY);
    history.set(prompt);
    this.history.write(history);
    this.hidden.write(new Float32Array(ToyStep.DIM).fill(-1));
    this.logits.write(new Float32Array(ToyStep.VOCAB).fill(-1));
    this.cache.write(new Float32Array(this.cache.size));
  }

  step(): void {
    const token = this.state.rows(DECODE_STATE.token, 1), position = this.state.rows(DECODE_STATE.position, 1);
    ops.embedding(this.table, token, Math.sqrt(ToyStep.DIM), this.hidden);
    ops.rmsNorm(this.hidden, this.norm, { mode: "one_plus", eps: 1e-6 }, this.hidden);
    ops.kvCacheWrite(this.hidden, this.cache, position);
    ops.linear(this.hidden, this.head, null, this.logits);
    ops.softcap(this.logits, 30, this.logits);
    ops.sample(this.logits, this.params, this.state, this.history, this.stopIds);
  }

  snapshot() {
    return {
      state: Array.from(this.state.toArray()),
      history: Array.from(this.history.toArray()),
      hidden: Array.from(this.hidden.toArray()),
      logits: Array.from(this.logits.toArray()),
      cache: Array.from(this.cache.toArray()),
    };
  }

  [Symbol.dispose](): void {
    for (const t of this.#made) t.dispose();
  }
}

const SAMPLING: SamplingParams = {
  temperature: 0.9,
  topK: 40,
  topP: 0.95,
  minP: 0.01,
  repetitionPenalty: 1.1,
  seed: 5,
};

test("run(n) equals the same ops called n times", (backend) => {
  const n = 12;
  using toy = new ToyStep(backend, SAMPLING, []);
  for (let i = 0; i < n; i++) toy.step();
  const direct = toy.snapshot();
  assert.equal(direct.state[DECODE_STATE.step], n);
  assert.equal(direct.state[DECODE_STATE.history], 4 + n);
  assert.equal(direct.state[DECODE_STATE.position], 3 + n);
  assert.equal(new Set(direct.history.slice(4, 4 + n)).size > 1, true, "the toy should not sample one token only");

  toy.reset();
  using program = DecodeProgram.record(backend, () => toy.step());
  program.run(5);
  program.run(0);
  program.run(n - 5);
  assert.deepEqual(toy.snapshot(), direct);
});

test("a recorded program runs nothing at record time", (backend) => {
  using toy = new ToyStep(backend, SAMPLING);
  const before = toy.snapshot();
  using program = DecodeProgram.record(backend, () => {
    toy.step();
    toy.step();
  });
  assert.deepEqual(toy.snapshot(), before);
  program.run(1); // two recorded steps
  assert.equal(toy.snapshot().state[DECODE_STATE.step], 2);
});

test("sampling stops at a stop token: later steps sample nothing", (backend) => {
  // The stop id is whatever the sampler draws third (or earlier, if it drew that token before).
  using probe = new ToyStep(backend, SAMPLING, []);
  for (let i = 0; i < 3; i++) probe.step();
  const drawn = probe.snapshot().history.slice(4, 7);
  const stopAt = drawn.indexOf(drawn[2]) + 1;
  using toy = new ToyStep(backend, SAMPLING, [drawn[2]]);
  using program = DecodeProgram.record(backend, () => toy.step());
  program.run(10);
  const { state, history } = toy.snapshot();
  assert.equal(state[DECODE_STATE.done], 1);
  assert.equal(state[DECODE_STATE.step], stopAt);
  assert.equal(state[DECODE_STATE.token], drawn[2]);
  assert.equal(state[DECODE_STATE.history], 4 + stopAt);
  assert.equal(state[DECODE_STATE.position], 3 + stopAt);
  assert.deepEqual(history.slice(4, 4 + stopAt), drawn.slice(0, stopAt));
  assert.deepEqual(history.slice(4 + stopAt), new Array(ToyStep.CAPACITY - 4 - stopAt).fill(0));
});

test("the RNG is the documented hash: uniform draws return its bits", (backend) => {
  // Equal logits over 2^b ids: the draw is id floor(u24 · 2^b / 2^24), the top b bits of the hash.
  // Over 2^24 - 1 ids (the most gk_sample takes) it is u24 - 1 (0 for u24 = 0): all 24 bits.
  const run = (bits: number, seed: number, steps: number) => {
    const vocab = bits === 24 ? 2 ** 24 - 1 : 2 ** bits;
    using logits = Tensor.zeros(backend, [vocab]);
    using state = Tensor.zeros(backend, [DECODE_STATE.fields], "i32");
    using history = Tensor.zeros(backend, [steps], "i32");
    using program = DecodeProgram.record(backend, () => ops.sample(logits, { seed }, state, history));
    program.run(steps);
    const want = Array.from({ length: steps }, (_, step) => {
      const u24 = sampleU24(seed, step);
      return bits === 24 ? Math.max(u24 - 1, 0) : u24 >>> (24 - bits);
    });
    assert.deepEqual(Array.from(history.toArray()), want, `seed ${seed}, vocab 2^${bits}`);
  };
  for (const seed of [0, 1, 12345, 0x9e3779b9, 0xffffffff]) run(12, seed, 2000);
  for (const seed of [0, 42]) run(24, seed, 2); // all 24 bits
});

test("a failing recorded op stops the run and names the step", (backend) => {
  // Rows of an embedding table [vocab/2, vocab] peak at the next id: greedy walks 253, 254, 255, then 256,
  // which the table does not have.
  const v = 512, rows = v / 2;
  const table = new Float32Array(rows * v);
  for (let t = 0; t < rows; t++) table[t * v + t + 1] = 1;
  using tableT = Tensor.fromArray(backend, table, [rows, v]);
  using logits = Tensor.zeros(backend, [1, v]);
  using state = Tensor.fromArray(backend, [0, rows - 3, 0, 0, 0, 0, 0, 0], [DECODE_STATE.fields], "i32");
  using history = Tensor.zeros(backend, [16], "i32");
  using program = DecodeProgram.record(backend, () => {
    ops.embedding(tableT, state.rows(DECODE_STATE.token, 1), 1, logits);
    ops.sample(logits, { temperature: 0 }, state, history);
  });
  const err = thrown(() => program.run(5), NativeError);
  assert.match(err.message, /gk_program_run: step 3 of 5, recorded op 0: gk_embedding: id 256 at index 0/);
  assert.deepEqual(Array.from(history.toArray()).slice(0, 4), [254, 255, 256, 0]);
}, { cpuOnly: "CUDA kernels do not fail per step (an out-of-range id embeds as zeros)" });

test("a throwing body ends the recording and leaves the stream usable", (backend) => {
  using x = Tensor.fromArray(backend, [1, 2, 3], [3]);
  assert.throws(() =>
    DecodeProgram.record(backend, () => {
      ops.scale(x, 2, x);
      throw new Error("boom");
    }), /boom/);
  assert.equal(backend.recording, false);
  // A native refusal inside the body (a host copy) is rethrown the same way.
  const err = thrown(() => DecodeProgram.record(backend, () => x.write([4, 5, 6])), NativeError);
  assert.match(err.message, /gk_memcpy_h2d: not allowed while recording a program/);
  // Allocation is refused in TypeScript, with a hint.
  const alloc = thrown(() => DecodeProgram.record(backend, () => Tensor.zeros(backend, [4])), GemmakitError);
  assert.match(alloc.message, /alloc: not allowed while recording a decode program\n {2}hint: allocate every tensor/);
  // Nothing recorded ran, and the stream runs ops again.
  ops.scale(x, 10, x);
  assert.deepEqual(Array.from(x.toArray()), [10, 20, 30]);
  using program = DecodeProgram.record(backend, () => ops.scale(x, 0.5, x));
  program.run(2);
  assert.deepEqual(Array.from(x.toArray()), [2.5, 5, 7.5]);
});

test("recording twice, running while recording and running a disposed program are errors", (backend) => {
  using x = Tensor.fromArray(backend, [1, 2], [2]);
  using inner = DecodeProgram.record(backend, () => ops.scale(x, 2, x));
  assert.throws(
    () =>
      DecodeProgram.record(backend, () => {
        backend.beginRecording();
      }),
    /gk_program_begin: the stream is already recording a program/,
  );
  assert.throws(
    () => DecodeProgram.record(backend, () => inner.run(1)),
    /gk_program_run: the stream is recording a program/,
  );
  assert.throws(() => inner.run(-1), /steps=-1 must be an integer/);
  inner.run(1);
  inner.dispose();
  inner.dispose();
  assert.throws(() => inner.run(1), DisposedError);
  assert.deepEqual(Array.from(x.toArray()), [2, 4]);
  assert.throws(() => backend.endRecording(), /gk_program_end: the stream is not recording/);
});

test("an empty recording is a program that does nothing", (backend) => {
  using program = DecodeProgram.record(backend, () => {});
  program.run(3);
});

Deno.test("[cpu] runAsync continues the same sequence as run() and carries a failure's message back", async () => {
  const backend = cpu;
  const v = 512, rows = v / 2;
  const table = new Float32Array(rows * v);
  for (let t = 0; t < rows; t++) table[t * v + t + 1] = 1;
  using tableT = Tensor.fromArray(backend, table, [rows, v]);
  using logits = Tensor.zeros(backend, [1, v]);
  using state = Tensor.fromArray(backend, [0, 10, 0, 0, 0, 0, 0, 0], [DECODE_STATE.fields], "i32");
  using history = Tensor.zeros(backend, [300], "i32");
  using program = DecodeProgram.record(backend, () => {
    ops.embedding(tableT, state.rows(DECODE_STATE.token, 1), 1, logits);
    ops.sample(logits, { temperature: 0 }, state, history);
  });
  await program.runAsync(3);
  program.run(2);
  await program.runAsync(200);
  // Greedy walks 11, 12, ... : the async and sync runs continued one sequence.
  assert.deepEqual(Array.from(history.toArray()).slice(0, 5), [11, 12, 13, 14, 15]);
  const err = await program.runAsync(100).then(() => undefined, (e) => e);
  assert.ok(err instanceof NativeError, String(err));
  assert.match(err.message, /gk_program_run: step \d+ of 100, recorded op 0: gk_embedding: id 256 at index 0/);
});
