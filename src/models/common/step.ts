/**
 * The two ways a decoder forward runs — the whole prompt at once, or one decode step over the KV cache — and
 * the prefill set-up every text model shares (checks, ids and positions uploaded, logits allocated).
 * @module
 */
import { ContextLengthError, ShapeError } from "../../errors.ts";
import { copyRows } from "../../ops/copy.ts";
import type { Backend } from "../../runtime/backend.ts";
import { Tensor } from "../../runtime/tensor.ts";
import { Workspace } from "../../runtime/workspace.ts";

/**
 * Sees named intermediates of a prefill as they are computed (`attn_norm`, `mlp_out`, `hidden`, ... of layer
 * `layer`; -1 for what comes before the layers), so a divergence from transformers can be found layer by layer.
 * The tensor is a workspace buffer: read it (`toArray()`) inside the call, it is overwritten later. Off by
 * default, and never part of a recorded decode step.
 */
export type TraceHook = (name: string, layer: number, tensor: Tensor) => void;

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
  /** i32 [tokens]: prefill only; keys and queries sharing a non-zero id attend bidirectionally (media spans). */
  spanIds?: Tensor;
  /** Prefill only: called with named intermediates (see TraceHook). */
  trace?: TraceHook;
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
  extras: { spanIds?: ArrayLike<number>; trace?: TraceHook } = {},
): Tensor {
  const { spanIds, trace } = extras;
  const T = ids.length;
  if (T < 1) throw new ShapeError("prefill", "the prompt is empty");
  if (T > limits.maxContext) throw new ContextLengthError("prefill", T, limits.maxContext);
  if (spanIds && spanIds.length !== T) {
    throw new ShapeError("prefill", `${spanIds.length} span ids for a prompt of ${T} tokens`);
  }
  using ws = new Workspace(backend);
  const idsT = ws.get("ids", [T], "i32");
  idsT.write(ids);
  const positions = ws.get("positions", [T], "i32");
  positions.write(Int32Array.from({ length: T }, (_, i) => i));
  const step: Step = { ws, tokens: T, positions, position0: positions.rows(0, 1), decode: false, hostIds: ids, trace };
  if (spanIds) {
    step.spanIds = ws.get("span_ids", [T], "i32");
    step.spanIds.write(spanIds);
  }
  const logits = Tensor.empty(backend, [logitsRows === "last" ? 1 : T, limits.vocabSize]);
  try {
    return forward(idsT, step, logitsRows, logits);
  } catch (e) {
    logits.dispose();
    throw e;
  }
}

/**
 * masked_scatter of the multimodal forwards: copies row r of `embeds` (f32 [rows, hidden]) over row
 * `positions[r]` of the token embeddings `h` (f32 [tokens, hidden]), one copy per run of consecutive positions.
 */
export function spliceRows(h: Tensor, embeds: Tensor, positions: readonly number[]): void {
  const [T, H] = h.shape;
  if (embeds.dtype !== "f32" || embeds.shape.length !== 2 || embeds.shape[1] !== H) {
    throw new ShapeError("prefill", `injected embeddings are ${embeds.dtype}[${embeds.shape}], expected f32[*, ${H}]`);
  }
  if (positions.length !== embeds.shape[0]) {
    throw new ShapeError("prefill", `${positions.length} placeholder positions for ${embeds.shape[0]} injected rows`);
  }
  for (let r = 0; r < positions.length;) {
    let n = 1;
    while (r + n < positions.length && positions[r + n] === positions[r] + n) n++;
    const at = positions[r];
    if (!Number.isInteger(at) || at < 0 || at + n > T || (r > 0 && at <= positions[r - 1])) {
      throw new ShapeError("prefill", `placeholder positions must ascend inside [0, ${T}), got ${at}`);
    }
    copyRows(embeds.rows(r, n), h, at);
    r += n;
  }
}
