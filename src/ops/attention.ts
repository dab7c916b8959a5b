import { ShapeError } from "../errors.ts";
import { boundedInt, I32_MAX } from "../runtime/bounds.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectRank, expectSameBackend, expectShape, fmt, output, run } from "./check.ts";

/** Parameters shared by prefill and decode attention. */
export interface AttentionOptions {
  /** Multiplier of q·k (Gemma 3: query_pre_attn_scalar^-0.5; Gemma 4: 1). */
  scale: number;
  /** Sliding window: a query sees keys at positions > p - window. 0 or absent = unlimited. */
  window?: number;
  /** cap·tanh(score/cap) before softmax when > 0. */
  softcap?: number;
}

export interface PrefillOptions extends AttentionOptions {
  /** Causal mask (default true). False gives full bidirectional attention (vision towers). */
  causal?: boolean;
  /** Position of the first query; queries are the last q_len of the kv_len keys. Default kv_len - q_len. */
  qPos0?: number;
  /**
   * i32 [kvLen]: keys and queries sharing a non-zero id see each other regardless of the causal and
   * window terms (an image's soft tokens attend bidirectionally).
   */
  spanIds?: Tensor;
}

function checkHeads(op: string, qHeads: number, kvHeads: number, headDim: number): void {
  if (qHeads % kvHeads !== 0) {
    throw new ShapeError(op, `${qHeads} query heads are not a multiple of ${kvHeads} kv heads`);
  }
  if (headDim > 512) throw new ShapeError(op, `head dim ${headDim} exceeds 512`);
}

function checkOptions(op: string, o: AttentionOptions): void {
  if (!Number.isFinite(o.scale)) throw new ShapeError(op, `scale=${o.scale} must be finite`);
  // The window crosses FFI as an i32: anything larger is refused here, not by the FFI layer's TypeError.
  if (o.window !== undefined) boundedInt(op, "window", o.window, 0, I32_MAX);
  if (o.softcap !== undefined && !(o.softcap >= 0)) throw new ShapeError(op, `softcap=${o.softcap} must be >= 0`);
}

/**
 * Attention over a whole prompt: q f32 [qLen, qHeads, headDim], k, v f32 [kvLen, kvHeads, headDim]
 * → f32 [qLen, qHeads, headDim]. Grouped-query heads share kv heads in order.
 */
export function attentionPrefill(q: Tensor, k: Tensor, v: Tensor, options: PrefillOptions, out?: Tensor): Tensor {
  const op = "attentionPrefill";
  const backend = expectSameBackend(op, { q, k, v, spanIds: options.spanIds, out });
  for (const [name, t] of [["q", q], ["k", k], ["v", v]] as const) {
    expectDType(op, name, t, ["f32"]);
    expectRank(op, name, t, 3);
  }
  const [qLen, qHeads, headDim] = q.shape;
  const [kvLen, kvHeads] = k.shape;
  expectShape(op, "k", k, [kvLen, kvHeads, headDim]);
  expectShape(op, "v", v, [kvLen, kvHeads, headDim]);
  checkHeads(op, qHeads, kvHeads, headDim);
  checkOptions(op, options);
  const qPos0 = options.qPos0 ?? kvLen - qLen;
  if (!Number.isInteger(qPos0) || qPos0 < 0 || qPos0 + qLen > kvLen) {
    throw new ShapeError(op, `queries at ${qPos0}..${qPos0 + qLen - 1} fall outside the ${kvLen} keys of k ${fmt(k)}`);
  }
  if (options.spanIds) {
    expectDType(op, "spanIds", options.spanIds, ["i32"]);
    expectShape(op, "spanIds", options.spanIds, [kvLen]);
  }
  const y = output(op, backend, q.shape, "f32", out);
  return run(op, backend, y, !out, () =>
    backend.symbols.gk_attention_prefill(
      backend.stream,
      q.pointer,
      k.pointer,
      v.pointer,
      y.pointer,
      qLen,
      kvLen,
      qHeads,
      kvHeads,
      headDim,
      qPos0,
      options.causal === false ? 0 : 1,
      options.window ?? 0,
      options.spanIds?.pointer ?? null,
      options.scale,
      options.softcap ?? 0,
    ));
}

/**
 * One decode query q f32 [qHeads, headDim] over caches f32 [capacity, kvHeads, headDim], at the position
 * held in `position` (i32 [1], device memory, so a recorded step can be replayed).
 */
export function attentionDecode(
  q: Tensor,
  kCache: Tensor,
  vCache: Tensor,
  position: Tensor,
  options: AttentionOptions,
  out?: Tensor,
): Tensor {
  const op = "attentionDecode";
  const backend = expectSameBackend(op, { q, kCache, vCache, position, out });
  expectDType(op, "q", q, ["f32"]);
  expectRank(op, "q", q, 2);
  const [qHeads, headDim] = q.shape;
  expectDType(op, "kCache", kCache, ["f32"]);
  expectRank(op, "kCache", kCache, 3);
  const [capacity, kvHeads] = kCache.shape;
  expectShape(op, "kCache", kCache, [capacity, kvHeads, headDim]);
  expectDType(op, "vCache", vCache, ["f32"]);
  expectShape(op, "vCache", vCache, [capacity, kvHeads, headDim]);
  expectDType(op, "position", position, ["i32"]);
  expectShape(op, "position", position, [1]);
  checkHeads(op, qHeads, kvHeads, headDim);
  checkOptions(op, options);
  const y = output(op, backend, q.shape, "f32", out);
  return run(op, backend, y, !out, () =>
    backend.symbols.gk_attention_decode(
      backend.stream,
      q.pointer,
      kCache.pointer,
      vCache.pointer,
      y.pointer,
      qHeads,
      kvHeads,
      headDim,
      capacity,
      options.window ?? 0,
      position.pointer,
      options.scale,
      options.softcap ?? 0,
    ));
}
