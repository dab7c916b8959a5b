import { ShapeError } from "../errors.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectRank, expectSameBackend, expectShape, run } from "./check.ts";

/**
 * Fields of the decode state, an i32 [DECODE_STATE.fields] tensor in device memory that gk_sample (and a
 * recorded decode step) reads and writes; kernels/include/gemmakit.h GK_STATE_*.
 */
export const DECODE_STATE = {
  /** Position of `token`, i.e. of the next step's input. */
  position: 0,
  /** The next step's input token (the last one sampled). */
  token: 1,
  /** Valid entries of the history buffer (prompt + sampled tokens). */
  history: 2,
  /** 1 once a stop token was sampled or the history is full: later samples do nothing. */
  done: 3,
  /** Samples drawn so far: the position of the RNG stream. */
  step: 4,
  /** Length of the state tensor. */
  fields: 8,
} as const;

/** Sampling parameters; each defaults to "off" except `temperature` (1). */
export interface SamplingParams {
  /** <= 0: greedy (argmax, ties to the lowest id). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens (ties to the lowest ids); 0: off. */
  topK?: number;
  /** Keep the smallest most-likely set with probability mass >= topP; >= 1: off. */
  topP?: number;
  /** Drop tokens less likely than minP × the most likely; 0: off. */
  minP?: number;
  /** Tokens in the history: logit / p when positive, logit · p otherwise; 1: off. */
  repetitionPenalty?: number;
  /** RNG seed (u32): the draw of step s is hash(seed, s), the same on every backend. */
  seed?: number;
}

/** The 24-byte gk_sampling struct: f32 temperature, i32 top_k, f32 top_p, f32 min_p, f32 penalty, u32 seed. */
export function packSamplingParams(params: SamplingParams): Uint8Array {
  const op = "sample";
  const p = {
    temperature: params.temperature ?? 1,
    topK: params.topK ?? 0,
    topP: params.topP ?? 1,
    minP: params.minP ?? 0,
    repetitionPenalty: params.repetitionPenalty ?? 1,
    seed: params.seed ?? 0,
  };
  for (const [name, v] of Object.entries(p)) {
    if (!Number.isFinite(v)) throw new ShapeError(op, `${name}=${v} must be a finite number`);
  }
  if (!Number.isInteger(p.topK) || p.topK < 0 || p.topK > 0x7fffffff) {
    throw new ShapeError(op, `topK=${p.topK} must be an integer >= 0 (0: off)`);
  }
  if (!(Math.fround(p.topP) > 0)) throw new ShapeError(op, `topP=${p.topP} must be > 0 (>= 1: off)`);
  if (!(p.minP >= 0 && p.minP <= 1)) throw new ShapeError(op, `minP=${p.minP} must be in [0, 1] (0: off)`);
  if (!(Math.fround(p.repetitionPenalty) > 0)) {
    throw new ShapeError(op, `repetitionPenalty=${p.repetitionPenalty} must be > 0 (1: off)`);
  }
  if (!Number.isInteger(p.seed) || p.seed < 0 || p.seed > 0xffffffff) {
    throw new ShapeError(op, `seed=${p.seed} must be an integer in [0, 2^32)`);
  }
  const bytes = new Uint8Array(24);
  const view = new DataView(bytes.buffer);
  view.setFloat32(0, p.temperature, true);
  view.setInt32(4, p.topK, true);
  view.setFloat32(8, p.topP, true);
  view.setFloat32(12, p.minP, true);
  view.setFloat32(16, p.repetitionPenalty, true);
  view.setUint32(20, p.seed, true);
  return bytes;
}

/**
 * Draws the next token from f32 `logits` [vocab] (or [1, vocab]) into the decode `state`
 * (i32 [DECODE_STATE.fields]): repetition penalty over `history` (i32 [capacity], its first
 * state[history] entries), temperature, top-k, top-p, min-p, then the seeded draw. Writes state[token],
 * appends to the history, advances position and step, and sets state[done] when the token is one of
 * `stopIds` (i32 [n]) or the history is full; does nothing once state[done] is set. `logits` is modified
 * in place (penalty, temperature). Nothing is read back: read the state when you need the token, or
 * record this in a DecodeProgram.
 */
export function sample(
  logits: Tensor,
  params: SamplingParams,
  state: Tensor,
  history: Tensor,
  stopIds?: Tensor | null,
): void {
  const op = "sample";
  const backend = expectSameBackend(op, { logits, state, history, stopIds: stopIds ?? undefined });
  expectDType(op, "logits", logits, ["f32"]);
  const vocab = logits.shape.at(-1)!;
  if (logits.size !== vocab) {
    throw new ShapeError(op, `logits is f32[${logits.shape.join(", ")}]; expected one row: [vocab] or [1, vocab]`);
  }
  if (vocab >= 2 ** 24) throw new ShapeError(op, `vocab=${vocab} must be below 2^24`);
  expectDType(op, "state", state, ["i32"]);
  expectShape(op, "state", state, [DECODE_STATE.fields]);
  expectDType(op, "history", history, ["i32"]);
  expectRank(op, "history", history, 1);
  if (stopIds) {
    expectDType(op, "stopIds", stopIds, ["i32"]);
    expectRank(op, "stopIds", stopIds, 1);
  }
  const packed = packSamplingParams(params);
  run(op, backend, state, false, () =>
    backend.symbols.gk_sample(
      backend.stream,
      logits.pointer,
      vocab,
      packed,
      state.pointer,
      history.pointer,
      history.shape[0],
      stopIds ? stopIds.pointer : null,
      stopIds ? stopIds.shape[0] : 0,
    ));
}

/** What `logitsProcess` does to the logits before `sample`; every part is optional. */
export interface LogitsProcessing {
  /** OpenAI's frequency_penalty: logit -= count × f for ids in history[penaltyStart, state[history]). */
  frequencyPenalty?: number;
  /** OpenAI's presence_penalty: logit -= p for each id present there. */
  presencePenalty?: number;
  /** The first history entry the penalties count: the prompt's length, so only generated tokens count. */
  penaltyStart?: number;
  /** Logit bias: i32 [n] ids (distinct) and f32 [n] values added to their logits. */
  biasIds?: Tensor;
  biasValues?: Tensor;
  /** The allowed-token bitmask, u32 words as i32 [ceil(vocab / 32)]: a clear bit sets the logit to -inf. */
  allowed?: Tensor;
  /** i32 [vocab] device scratch, needed by the penalties. */
  scratch?: Tensor;
}

/**
 * The logit processors that come before `sample` (kernels/include/gemmakit.h gk_logits_process): logit bias,
 * frequency and presence penalties over the generated ids, then the constraint mask. In place; reads the
 * decode `state` and `history` on the device (recordable); does nothing once state[done] is set.
 */
export function logitsProcess(logits: Tensor, state: Tensor, history: Tensor, p: LogitsProcessing): void {
  const op = "logitsProcess";
  const backend = expectSameBackend(op, {
    logits,
    state,
    history,
    biasIds: p.biasIds,
    biasValues: p.biasValues,
    allowed: p.allowed,
    scratch: p.scratch,
  });
  expectDType(op, "logits", logits, ["f32"]);
  const vocab = logits.shape.at(-1)!;
  if (logits.size !== vocab) throw new ShapeError(op, `logits must be one row: [vocab] or [1, vocab]`);
  expectDType(op, "state", state, ["i32"]);
  expectShape(op, "state", state, [DECODE_STATE.fields]);
  expectDType(op, "history", history, ["i32"]);
  expectRank(op, "history", history, 1);
  const frequency = p.frequencyPenalty ?? 0, presence = p.presencePenalty ?? 0, start = p.penaltyStart ?? 0;
  if (!Number.isFinite(frequency) || !Number.isFinite(presence)) {
    throw new ShapeError(op, `frequencyPenalty=${frequency} and presencePenalty=${presence} must be finite`);
  }
  if (!Number.isInteger(start) || start < 0) throw new ShapeError(op, `penaltyStart=${start} must be an integer >= 0`);
  const penalties = frequency !== 0 || presence !== 0;
  if (penalties) {
    if (!p.scratch) throw new ShapeError(op, "the penalties need an i32 [vocab] scratch tensor");
    expectDType(op, "scratch", p.scratch, ["i32"]);
    expectShape(op, "scratch", p.scratch, [vocab]);
  }
  let nBias = 0;
  if (p.biasIds || p.biasValues) {
    if (!p.biasIds || !p.biasValues) throw new ShapeError(op, "biasIds and biasValues come together");
    expectDType(op, "biasIds", p.biasIds, ["i32"]);
    expectDType(op, "biasValues", p.biasValues, ["f32"]);
    expectRank(op, "biasIds", p.biasIds, 1);
    expectShape(op, "biasValues", p.biasValues, [p.biasIds.shape[0]]);
    nBias = p.biasIds.shape[0];
  }
  if (p.allowed) {
    expectDType(op, "allowed", p.allowed, ["i32"]);
    expectShape(op, "allowed", p.allowed, [Math.ceil(vocab / 32)]);
  }
  run(op, backend, logits, false, () =>
    backend.symbols.gk_logits_process(
      backend.stream,
      logits.pointer,
      vocab,
      state.pointer,
      history.pointer,
      history.shape[0],
      start,
      frequency,
      presence,
      nBias ? p.biasIds!.pointer : null,
      nBias ? p.biasValues!.pointer : null,
      nBias,
      p.allowed ? p.allowed.pointer : null,
      penalties ? p.scratch!.pointer : null,
    ));
}

/** Most top alternatives `logprobs` returns per step (gk_logprobs' limit; OpenAI's top_logprobs is at most 20). */
export const LOGPROBS_MAX_TOP = 64;

/**
 * After `sample`: the sampled token's log-softmax under `logits` (f32 [vocab], the processed logits before
 * temperature) and the `topN` most likely ids with theirs, into row state[step] - 1 of `ids` (i32) and
 * `logprobs` (f32), both [capacity, 1 + topN]: column 0 the sampled token, then the alternatives in order.
 */
export function logprobs(logits: Tensor, state: Tensor, topN: number, ids: Tensor, logprobs: Tensor): void {
  const op = "logprobs";
  const backend = expectSameBackend(op, { logits, state, ids, logprobs });
  expectDType(op, "logits", logits, ["f32"]);
  const vocab = logits.shape.at(-1)!;
  if (logits.size !== vocab) throw new ShapeError(op, `logits must be one row: [vocab] or [1, vocab]`);
  if (!Number.isInteger(topN) || topN < 0 || topN > Math.min(LOGPROBS_MAX_TOP, vocab)) {
    throw new ShapeError(op, `topN=${topN} must be an integer in [0, ${Math.min(LOGPROBS_MAX_TOP, vocab)}]`);
  }
  expectDType(op, "state", state, ["i32"]);
  expectShape(op, "state", state, [DECODE_STATE.fields]);
  expectDType(op, "ids", ids, ["i32"]);
  expectDType(op, "logprobs", logprobs, ["f32"]);
  expectRank(op, "ids", ids, 2);
  expectShape(op, "ids", ids, [ids.shape[0], 1 + topN]);
  expectShape(op, "logprobs", logprobs, ids.shape);
  run(op, backend, ids, false, () =>
    backend.symbols.gk_logprobs(
      backend.stream,
      logits.pointer,
      vocab,
      state.pointer,
      topN,
      ids.shape[0],
      ids.pointer,
      logprobs.pointer,
    ));
}
