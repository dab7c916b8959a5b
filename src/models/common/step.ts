/**
 * The two ways a decoder forward runs — the whole prompt at once, or one decode step over the KV cache — and
 * the prefill set-up every text model shares (checks, ids and positions uploaded, logits allocated).
 * @module
 */
import { ContextLengthError, ShapeError } from "../../errors.ts";
import { copyRows } from "../../ops/copy.ts";
import { softcap } from "../../ops/elementwise.ts";
import { greedyLogits, linear } from "../../ops/linear.ts";
import { kvCacheWrite } from "../../ops/kv_cache.ts";
import { attentionDecode, type AttentionOptions, attentionPrefill } from "../../ops/attention.ts";
import type { Backend } from "../../runtime/backend.ts";
import type { KvCache, LayerCache } from "../../runtime/kv_cache.ts";
import { Tensor } from "../../runtime/tensor.ts";
import { Workspace } from "../../runtime/workspace.ts";
import type { GreedyHead } from "../../generate/batch.ts";
export type { GreedyHead };

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
  /** Position of the first token on the host (prefill only): the KV cache holds the positions before it. */
  start: number;
  /** i32 [tokens]: absolute positions (RoPE). */
  positions: Tensor;
  /** i32 [1]: position of the first token (KV cache slot; the decode query's position). */
  position0: Tensor;
  decode: boolean;
  /** The prompt's ids on the host (prefill only): a model may derive other index tensors from them. */
  hostIds?: ArrayLike<number>;
  /** i32 [tokens]: prefill only; keys and queries sharing a non-zero id attend bidirectionally (media spans). */
  spanIds?: Tensor;
  /** The same span ids on the host (prefill from an offset pads them with the cached keys' zeros). */
  hostSpanIds?: ArrayLike<number>;
  /** Prefill only: called with named intermediates (see TraceHook). */
  trace?: TraceHook;
  /**
   * A batched decode step: row r of the tokens is its own sequence, at the position in `rows[r].position`
   * (i32 [1], device) over its own KV cache. Absent: one sequence over the model's cache.
   */
  rows?: readonly BatchRow[];
  /**
   * A multi-sequence prefill: the token rows are several prompts' chunks one after another, each over its own KV
   * cache (see PrefillSegment). Absent: one prompt over the model's cache.
   */
  segments?: readonly PrefillSegment[];
  /** A decode step whose rows all draw greedily: the lm_head may leave out logits that cannot win (see lmHead). */
  greedy?: GreedyHead;
}

/** One prompt of a multi-sequence prefill: `tokens` rows from row `offset` of the step, at positions from `start`. */
export interface PrefillSegment {
  offset: number;
  tokens: number;
  /** Position of its first token: `cache` already holds positions 0..start-1 of this prompt. */
  start: number;
  cache: KvCache;
}

/** One prompt of a multi-sequence prefill as its caller gives it: the ids from `start` go into `cache`. */
export interface PrefillPart {
  /** The whole prompt (the cache holds ids 0..start-1 already). */
  ids: ArrayLike<number>;
  start: number;
  cache: KvCache;
}

/** One sequence of a batched decode step: where its token sits and the KV cache it reads and writes. */
export interface BatchRow {
  /** i32 [1], device memory: the position of this row's token (its decode state's position field). */
  position: Tensor;
  cache: KvCache;
}

/** The Step of one decode step: the token at the position in `position` (i32 [1], device memory). */
export function decodeStepOf(ws: Workspace, position: Tensor): Step {
  return { ws, tokens: 1, start: 0, positions: position, position0: position, decode: true };
}

/**
 * The Step of a batched decode step: row r at `positions[r]` (i32 [B], device memory) over `rows[r].cache`; `greedy`
 * when every row draws greedily.
 */
export function batchStepOf(ws: Workspace, positions: Tensor, rows: readonly BatchRow[], greedy?: GreedyHead): Step {
  return { ws, tokens: rows.length, start: 0, positions, position0: rows[0].position, decode: true, rows, greedy };
}

/**
 * The tied lm_head and the final logit softcap (`cap`, null: none) into `logits`. A step of greedy draws takes
 * greedyLogits: each row's argmax is the same, but logits that cannot be a row's maximum may be -inf, which spares
 * the CPU most of a batch's arithmetic-bound vocabulary product.
 */
export function lmHead(normed: Tensor, weight: Tensor, s: Step, cap: number | null, logits: Tensor): Tensor {
  if (s.greedy) return greedyLogits(normed, weight, { keepIds: s.greedy.keepIds, cap }, logits);
  linear(normed, weight, null, logits);
  if (cap !== null) softcap(logits, cap, logits);
  return logits;
}

/** A batched step's KV write: row r of `k` and `v` (f32 [rows, kvHeads, headDim]) into its own sequence's cache. */
export function writeRowsKv(rows: readonly BatchRow[], layer: number, k: Tensor, v: Tensor): void {
  rows.forEach((row, r) => {
    const cache = row.cache.layer(layer);
    kvCacheWrite(k.rows(r, 1), cache.k, row.position);
    kvCacheWrite(v.rows(r, 1), cache.v, row.position);
  });
}

/**
 * A batched step's attention: row r of `q` (f32 [rows, heads, headDim]) at its own position over layer `layer` of
 * its own sequence's cache, into row r of `out`.
 */
export function attendRows(
  rows: readonly BatchRow[],
  layer: number,
  q: Tensor,
  options: AttentionOptions,
  out: Tensor,
): void {
  const [, heads, headDim] = q.shape;
  rows.forEach((row, r) => {
    const cache = row.cache.layer(layer);
    const qr = q.rows(r, 1).reshape([heads, headDim]);
    attentionDecode(qr, cache.k, cache.v, row.position, options, out.rows(r, 1).reshape([heads, headDim]));
  });
}

/** A forward over `ids` (i32 [tokens]) writing logits of the last row or of every row into `logits`. */
export type Forward = (ids: Tensor, step: Step, logitsRows: "last" | "all", logits: Tensor) => Tensor;

/**
 * Runs `forward` over the prompt `ids` from position `start` (0: the whole prompt; else the KV cache already
 * holds positions 0..start-1 of these ids, and only the rest is computed: a follow-up turn). `spanIds` are the
 * whole prompt's. Returns logits of the last position (f32 [1, vocab]) or, with `all`, of every computed
 * position (f32 [T - start, vocab]); the caller disposes them.
 */
export function runPrefill(
  backend: Backend,
  ids: ArrayLike<number>,
  limits: { maxContext: number; vocabSize: number },
  logitsRows: "last" | "all",
  forward: Forward,
  extras: { spanIds?: ArrayLike<number>; trace?: TraceHook; start?: number } = {},
): Tensor {
  const { trace, start = 0 } = extras;
  checkPrompt(ids, start, limits, "the prompt");
  if (extras.spanIds && extras.spanIds.length !== ids.length) {
    throw new ShapeError("prefill", `${extras.spanIds.length} span ids for a prompt of ${ids.length} tokens`);
  }
  const chunk = Array.prototype.slice.call(ids, start) as number[];
  const spanIds = extras.spanIds && Array.prototype.slice.call(extras.spanIds, start) as number[];
  const T = chunk.length;
  using ws = new Workspace(backend);
  const idsT = ws.get("ids", [T], "i32");
  idsT.write(chunk);
  const positions = ws.get("positions", [T], "i32");
  positions.write(Int32Array.from({ length: T }, (_, i) => start + i));
  const step: Step = {
    ws,
    tokens: T,
    start,
    positions,
    position0: positions.rows(0, 1),
    decode: false,
    hostIds: chunk,
    trace,
  };
  if (spanIds?.some((id) => id !== 0)) {
    step.spanIds = ws.get("span_ids", [T], "i32");
    step.spanIds.write(spanIds);
    step.hostSpanIds = spanIds;
  }
  return intoLogits(
    backend,
    [logitsRows === "last" ? 1 : T, limits.vocabSize],
    (l) => forward(idsT, step, logitsRows, l),
  );
}

/** A prefill's prompt (`name` in messages) from `start`: not empty, within the context, `start` inside it. */
function checkPrompt(
  ids: ArrayLike<number>,
  start: number,
  limits: { maxContext: number },
  name: string,
): void {
  if (ids.length < 1) throw new ShapeError("prefill", `${name} is empty`);
  if (ids.length > limits.maxContext) throw new ContextLengthError("prefill", ids.length, limits.maxContext);
  if (!Number.isInteger(start) || start < 0 || start >= ids.length) {
    throw new ShapeError("prefill", `${name}: start=${start} must be an integer in [0, ${ids.length})`);
  }
}

/** New logits of `shape` that `fill` writes and returns; disposed when it throws. */
function intoLogits(backend: Backend, shape: number[], fill: (logits: Tensor) => Tensor): Tensor {
  const logits = Tensor.empty(backend, shape);
  try {
    return fill(logits);
  } catch (e) {
    logits.dispose();
    throw e;
  }
}

/**
 * Runs `forward` over several prompts at once (text only), each from its own `start` over its own cache: their
 * chunks are the rows of one step, so every linear runs over all of them (one GEMM per weight, where a prompt
 * alone is a few rows), and attention runs per prompt over its own cache. Returns f32 [parts, vocab]: row j is
 * the logits of part j's last position, as `runPrefill(parts[j].ids, ..., { start })` over its cache gives them.
 */
export function runPrefillBatch(
  backend: Backend,
  parts: readonly PrefillPart[],
  limits: { maxContext: number; vocabSize: number },
  forward: Forward,
): Tensor {
  if (parts.length < 1) throw new ShapeError("prefill", "no prompts to prefill");
  const chunk: number[] = [], positions: number[] = [];
  const segments = parts.map(({ ids, start, cache }, j): PrefillSegment => {
    checkPrompt(ids, start, limits, `prompt ${j}`);
    const offset = chunk.length;
    for (let p = start; p < ids.length; p++) {
      chunk.push(ids[p]);
      positions.push(p);
    }
    return { offset, tokens: ids.length - start, start, cache };
  });
  const T = chunk.length;
  using ws = new Workspace(backend);
  const idsT = ws.get("ids", [T], "i32");
  idsT.write(chunk);
  const positionsT = ws.get("positions", [T], "i32");
  positionsT.write(Int32Array.from(positions));
  const step: Step = {
    ws,
    tokens: T,
    start: 0,
    positions: positionsT,
    position0: positionsT.rows(0, 1),
    decode: false,
    hostIds: chunk,
    segments,
  };
  return intoLogits(backend, [parts.length, limits.vocabSize], (l) => forward(idsT, step, "last", l));
}

/**
 * The rows whose logits a forward computes: every row (`all`), the last row, or the last row of each prompt of a
 * multi-sequence prefill (gathered into f32 [prompts, hidden]).
 */
export function logitRows(h: Tensor, s: Step, logitsRows: "last" | "all", buffer = "last_rows"): Tensor {
  if (logitsRows === "all") return h;
  if (!s.segments) return h.rows(s.tokens - 1, 1);
  const last = s.ws.get(buffer, [s.segments.length, h.shape[1]]);
  s.segments.forEach((seg, j) => copyRows(h.rows(seg.offset + seg.tokens - 1, 1), last, j));
  return last;
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

/** The keys a prefill's queries attend over, and the index of the first query among them. */
export interface PrefillKeys {
  k: Tensor;
  v: Tensor;
  qPos0: number;
  /** i32 [keys]: the span ids of those keys (zeros for cached ones), when the prompt has spans. */
  spanIds?: Tensor;
}

/**
 * Writes a prefill's K and V (f32 [tokens, kvHeads, headDim]) into a layer's cache and returns what its queries
 * attend over. From position 0 that is the fresh K/V. From an offset (a follow-up over a cached prefix) it is
 * the cached keys the queries can still see — every earlier position for a full cache (a view of it), the window
 * before the offset for a ring, copied out in position order before the new rows overwrite its slots — then the
 * fresh ones, with the queries at the end. Relative order is all the causal and window masks read, so the keys
 * need not start at position 0. `name` keys the workspace buffers (a KV-shared layer reuses its source's).
 */
export function prefillKeys(
  s: Step,
  cache: LayerCache,
  window: number,
  k: Tensor,
  v: Tensor,
  name: string,
): PrefillKeys {
  const T = s.tokens, start = s.start, C = cache.capacity;
  if (start === 0) {
    kvCacheWrite(k, cache.k, s.position0);
    kvCacheWrite(v, cache.v, s.position0);
    return { k, v, qPos0: 0, spanIds: s.spanIds };
  }
  // Cached keys the first query can see: positions lo..start-1.
  const lo = window > 0 ? Math.max(0, start - window + 1) : 0;
  const P = start - lo;
  const spanIds = s.hostSpanIds ? spanTensor(s, P) : undefined;
  if (start + T <= C) {
    // No slot is reused (a full cache, or a ring that has not wrapped): the cache rows are the keys in order.
    kvCacheWrite(k, cache.k, s.position0);
    kvCacheWrite(v, cache.v, s.position0);
    return { k: cache.k.rows(lo, P + T), v: cache.v.rows(lo, P + T), qPos0: P, spanIds };
  }
  const [, kvHeads, headDim] = k.shape;
  const out = {
    k: s.ws.get(`${name}.k`, [P + T, kvHeads, headDim]),
    v: s.ws.get(`${name}.v`, [P + T, kvHeads, headDim]),
  };
  for (const [src, dst, fresh] of [[cache.k, out.k, k], [cache.v, out.v, v]] as const) {
    // Slots of positions lo..start-1, which wrap around the end of the ring at most once.
    const a = lo % C, first = Math.min(P, C - a);
    if (first > 0) copyRows(src.rows(a, first), dst, 0);
    if (P > first) copyRows(src.rows(0, P - first), dst, first);
    copyRows(fresh, dst, P);
  }
  kvCacheWrite(k, cache.k, s.position0);
  kvCacheWrite(v, cache.v, s.position0);
  return { ...out, qPos0: P, spanIds };
}

/**
 * A prefill layer's K/V write, for each prompt of the step: prefillKeys over the model's `cache` (one prompt), or
 * per segment of a multi-sequence prefill, over that segment's rows and its own cache. One entry per prompt.
 */
export function prefillLayerKeys(
  s: Step,
  cache: KvCache,
  layer: number,
  window: number,
  k: Tensor,
  v: Tensor,
  name: string,
): PrefillKeys[] {
  if (!s.segments) return [prefillKeys(s, cache.layer(layer), window, k, v, name)];
  return s.segments.map((seg, j) => {
    const rows = (t: Tensor) => t.rows(seg.offset, seg.tokens);
    // The segment's own step: its rows, its start, and positions[offset] as the first cache slot it writes.
    const positions = rows(s.positions);
    const own: Step = {
      ...s,
      tokens: seg.tokens,
      start: seg.start,
      positions,
      position0: positions.rows(0, 1),
      segments: undefined,
    };
    return prefillKeys(own, seg.cache.layer(layer), window, rows(k), rows(v), `${name}.${j}`);
  });
}

/**
 * A prefill layer's causal attention of `q` (f32 [tokens, heads, headDim]) into `out`, each prompt's queries over
 * the keys prefillLayerKeys returned for it. `spans`: whether the prompt's span ids open up the mask (media).
 */
export function attendPrefill(
  s: Step,
  keys: readonly PrefillKeys[],
  q: Tensor,
  options: AttentionOptions,
  out: Tensor,
  spans = true,
): void {
  const segments = s.segments ?? [{ offset: 0, tokens: s.tokens }];
  segments.forEach((seg, j) => {
    const { k, v, qPos0, spanIds } = keys[j];
    const rows = (t: Tensor) => s.segments ? t.rows(seg.offset, seg.tokens) : t;
    attentionPrefill(
      rows(q),
      k,
      v,
      { ...options, causal: true, qPos0, spanIds: spans ? spanIds : undefined },
      rows(out),
    );
  });
}

/** i32 [P + tokens]: P zeros (cached keys belong to no span of this chunk), then the chunk's span ids. */
function spanTensor(s: Step, P: number): Tensor {
  const t = s.ws.get(`span_ids.${P}`, [P + s.tokens], "i32");
  const ids = new Int32Array(P + s.tokens);
  ids.set(Array.from(s.hostSpanIds!), P);
  t.write(ids);
  return t;
}
