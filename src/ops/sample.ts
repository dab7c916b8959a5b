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
