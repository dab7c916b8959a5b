/**
 * The two ways a decoder forward runs — the whole prompt at once, or one decode step over the KV cache — and
 * the prefill set-up every text model shares (checks, ids and positions uploaded, logits allocated).
 * @module
 */
import { ContextLengthError, ShapeError } from "../../ffi/errors.ts";
import type { Backend } from "../../runtime/backend.ts";
import { Tensor } from "../../runtime/tensor.ts";
import { Workspace } from "../../runtime/workspace.ts";

/** Where a forward pass runs: the whole prompt, or one decode step. */
export interface Step {
  ws: Workspace;
  tokens: number;
  /** i32 [tokens]: absolute positions (RoPE). */
  positions: Tensor;
  /** i32 [1]: position of the first token (KV cache slot; the decode query's position). */
  position0: Tensor;
  decode: boolean;
  /** The prompt's ids on the host (prefill only): a model may derive other index tensors from them. */
  hostIds?: ArrayLike<number>;
}

/** A forward over `ids` (i32 [tokens]) writing logits of the last row or of every row into `logits`. */
export type Forward = (ids: Tensor, step: Step, logitsRows: "last" | "all", logits: Tensor) => Tensor;

/**
 * Runs `forward` over a whole prompt from position 0. Returns logits of the last position (f32 [1, vocab]) or,
 * with `all`, of every position (f32 [T, vocab]); the caller disposes them.
 */
export function runPrefill(
  backend: Backend,
  ids: ArrayLike<number>,
  limits: { maxContext: number; vocabSize: number },
  logitsRows: "last" | "all",
  forward: Forward,
): Tensor {
  const T = ids.length;
  if (T < 1) throw new ShapeError("prefill", "the prompt is empty");
  if (T > limits.maxContext) throw new ContextLengthError("prefill", T, limits.maxContext);
  using ws = new Workspace(backend);
  const idsT = ws.get("ids", [T], "i32");
  idsT.write(ids);
  const positions = ws.get("positions", [T], "i32");
  positions.write(Int32Array.from({ length: T }, (_, i) => i));
  const step: Step = { ws, tokens: T, positions, position0: positions.rows(0, 1), decode: false, hostIds: ids };
  const logits = Tensor.empty(backend, [logitsRows === "last" ? 1 : T, limits.vocabSize]);
  try {
    return forward(idsT, step, logitsRows, logits);
  } catch (e) {
    logits.dispose();
    throw e;
  }
}
