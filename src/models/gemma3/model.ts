/**
 * Gemma 3 text (Gemma3ForCausalLM), as transformers computes it, composed from src/ops.
 * ref: transformers models/gemma3/modeling_gemma3.py — Gemma3TextModel, Gemma3DecoderLayer,
 * Gemma3Attention, Gemma3MLP, Gemma3RMSNorm (x·(1+w)), Gemma3TextScaledWordEmbedding.
 *
 * The same layer code serves prefill (all prompt tokens at once, attention over the fresh K/V) and the
 * decode step (one token at the position held in device memory, attention over the KV cache), so the
 * decode step can be recorded once and replayed natively.
 * @module
 */
import type { Backend } from "../../runtime/backend.ts";
import { blockOf, roundTo } from "../../runtime/dtype.ts";
import { KvCache, layerCacheSpec } from "../../runtime/kv_cache.ts";
import { Tensor } from "../../runtime/tensor.ts";
import type { Workspace } from "../../runtime/workspace.ts";
import {
  add,
  attentionDecode,
  embedding,
  geluTanhMul,
  kvCacheWrite,
  linear,
  rmsNorm,
  rope,
  ropeInvFreq,
} from "../../ops/mod.ts";
import type { Gemma3Model, LayerType } from "./config.ts";
import {
  attendPrefill,
  attendRows,
  type BatchRow,
  batchStepOf,
  decodeStepOf,
  type GreedyHead,
  lmHead,
  logitRows,
  prefillLayerKeys,
  type PrefillPart,
  runPrefill,
  runPrefillBatch,
  spliceRows,
  type Step,
  type TraceHook,
  writeRowsKv,
} from "../common/step.ts";
import type { ModelWeights } from "../common/weight_table.ts";
import { repackLinears } from "../common/repack.ts";
import type { Gemma3LayerWeights, Gemma3TextTable, Gemma3TextWeights } from "./weights.ts";

/**
 * What a multimodal prefill adds to the token ids (src/models/multimodal.ts builds it): embeddings that
 * replace the token embeddings at some positions (the image soft tokens, not scaled) and span ids for the
 * attention mask.
 */
export interface PrefillInjection {
  /** f32 [rows, hidden]: row r replaces the embedding at positions[r]. */
  embeds: Tensor;
  /** Prompt positions of the rows of `embeds`, ascending. */
  positions: readonly number[];
  /** [tokens]: keys and queries sharing a non-zero id see each other (transformers' image groups). */
  spanIds: Int32Array;
}

export class Gemma3TextModel {
  readonly config: Gemma3Model;
  readonly backend: Backend;
  readonly maxContext: number;
  /** The model's own KV cache: slot 0 of a batch, and the one sessions save and load. */
  readonly #ownCache: KvCache;
  /** The cache prefill and the one-row decode step write: the model's own, or a batch slot's (withCache). */
  #cache: KvCache;
  readonly #weights: ModelWeights<Gemma3TextTable>;
  readonly #w: Gemma3TextWeights;
  readonly #invFreq: Record<LayerType, Tensor>;
  readonly #embedScale: number;
  /** Sees each prefill's named intermediates (embeddings, per layer attn_norm, attn_out, mlp_norm, mlp_out,
   * hidden); off (undefined) by default. For locating a divergence from transformers layer by layer. */
  trace: TraceHook | undefined;

  /** Takes ownership of `weights` (disposed with the model). */
  constructor(backend: Backend, config: Gemma3Model, weights: ModelWeights<Gemma3TextTable>, maxContext: number) {
    const c = config.text;
    this.backend = backend;
    this.config = config;
    this.#weights = weights;
    // The matrices in the layout this backend multiplies fastest (the CPU library's 16-row layouts for Q8_0, Q5_0,
    // Q4_0, Q4_1, Q5_1, Q4_K, Q5_K and Q6_K); a tied head is the embedding table too, which reads the new layout as
    // well.
    const t = weights.tensors;
    repackLinears(weights, [
      t.lmHead ?? t.embedTokens,
      ...t.layers.flatMap((l) => [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj]),
    ]);
    this.#w = weights.tensors;
    this.maxContext = maxContext;
    // sqrt(hidden) is cast to the embedding dtype before the multiply (55.4256 -> 55.5 in bf16); a
    // quantized table is dequantized to f32 first (as transformers loads a GGUF), so f32 rounding then.
    const embedDType = this.#w.embedTokens.dtype;
    this.#embedScale = roundTo([Math.sqrt(c.hiddenSize)], blockOf(embedDType) ? "f32" : embedDType)[0];
    const freq = (t: LayerType) =>
      ropeInvFreq({ headDim: c.headDim, theta: c.rope[t].theta, factor: c.rope[t].factor });
    this.#invFreq = {
      sliding_attention: Tensor.fromArray(backend, freq("sliding_attention"), [c.headDim / 2]),
      full_attention: Tensor.fromArray(backend, freq("full_attention"), [c.headDim / 2]),
    };
    this.#ownCache = this.#cache = this.createCache();
  }

  /** The KV cache prefill and decode write (a batch slot's inside withCache). */
  get cache(): KvCache {
    return this.#cache;
  }

  /** A new KV cache of this model's geometry (a batch slot; the caller disposes it). */
  createCache(): KvCache {
    const c = this.config.text;
    return new KvCache(
      this.backend,
      this.config.layers.map((l) => layerCacheSpec(l.window, this.maxContext, c.numKeyValueHeads, c.headDim)),
    );
  }

  /** Runs `f` (synchronous: a prefill) with `cache` as the cache it reads and writes. */
  withCache<T>(cache: KvCache, f: () => T): T {
    const before = this.#cache;
    this.#cache = cache;
    try {
      return f();
    } finally {
      this.#cache = before;
    }
  }

  get vocabSize(): number {
    return this.config.text.vocabSize;
  }

  #norm(x: Tensor, weight: Tensor, out: Tensor): Tensor {
    return rmsNorm(x, weight, { mode: this.config.normMode, eps: this.config.text.rmsNormEps }, out);
  }

  /** Gemma3Attention: q/k norms, RoPE, cache write, attention, o_proj. Returns the o_proj output. */
  #attention(i: number, w: Gemma3LayerWeights, x: Tensor, s: Step): Tensor {
    const c = this.config.text, spec = this.config.layers[i], T = s.tokens;
    const [nH, nKV, hd] = [c.numAttentionHeads, c.numKeyValueHeads, c.headDim];
    const q = linear(x, w.qProj, null, s.ws.get("q", [T, nH * hd])).reshape([T, nH, hd]);
    const k = linear(x, w.kProj, null, s.ws.get("k", [T, nKV * hd])).reshape([T, nKV, hd]);
    const v = linear(x, w.vProj, null, s.ws.get("v", [T, nKV * hd])).reshape([T, nKV, hd]);
    this.#norm(q, w.qNorm, q);
    this.#norm(k, w.kNorm, k);
    rope(q, s.positions, this.#invFreq[spec.type]);
    rope(k, s.positions, this.#invFreq[spec.type]);
    const cache = this.cache.layer(i);
    // Gemma 3 scales scores by query_pre_attn_scalar^-0.5 and applies no attention softcap.
    const options = { scale: c.queryPreAttnScalar ** -0.5, window: spec.window };
    const attn = s.ws.get("attn", [T, nH, hd]);
    if (s.rows) {
      // A batched step: each row writes and attends over its own sequence's cache at its own position.
      writeRowsKv(s.rows, i, k, v);
      attendRows(s.rows, i, q, options, attn);
    } else if (s.decode) {
      kvCacheWrite(k, cache.k, s.position0);
      kvCacheWrite(v, cache.v, s.position0);
      attentionDecode(q.reshape([nH, hd]), cache.k, cache.v, s.position0, options, attn.reshape([nH, hd]));
    } else {
      // A prefill: each prompt (one, or each of a multi-sequence prefill) over its own cache.
      attendPrefill(s, prefillLayerKeys(s, this.cache, i, spec.window, k, v, "ctx"), q, options, attn);
    }
    return linear(attn.reshape([T, nH * hd]), w.oProj, null, s.ws.get("o", [T, c.hiddenSize]));
  }

  /** Gemma3MLP: down_proj(gelu_tanh(gate_proj(x)) * up_proj(x)), over x's rows (workspace buffers `prefix`…). */
  #mlp(w: Gemma3LayerWeights, x: Tensor, s: Step, prefix = ""): Tensor {
    const c = this.config.text, T = x.shape[0];
    const gate = linear(x, w.gateProj, null, s.ws.get(`${prefix}gate`, [T, c.intermediateSize]));
    const up = linear(x, w.upProj, null, s.ws.get(`${prefix}up`, [T, c.intermediateSize]));
    geluTanhMul(gate, up, gate);
    return linear(gate, w.downProj, null, s.ws.get(`${prefix}down`, [T, c.hiddenSize]));
  }

  /**
   * Gemma3DecoderLayer: the sandwich norms around attention and MLP, each added to the residual h. Returns the rows of
   * h it carried through the MLP: all of them, or with `outputRows` only the rows whose logits are asked for (each
   * prompt's last; a view of h's last row, or a copy per segment).
   */
  #layer(i: number, h: Tensor, s: Step, outputRows = false): Tensor {
    const H = this.config.text.hiddenSize, w = this.#w.layers[i];
    const x = this.#norm(h, w.inputLayernorm, s.ws.get("x", [s.tokens, H]));
    s.trace?.("attn_norm", i, x);
    let attn = this.#attention(i, w, x, s);
    s.trace?.("attn_out", i, attn);
    let rows = h, mlpIn = x, prefix = "";
    if (outputRows) {
      rows = logitRows(h, s, "last", "out_h");
      attn = logitRows(attn, s, "last", "out_attn");
      mlpIn = s.ws.get("out_x", rows.shape);
      prefix = "out_";
    }
    add(rows, this.#norm(attn, w.postAttentionLayernorm, attn), rows);
    this.#norm(rows, w.preFeedforwardLayernorm, mlpIn);
    s.trace?.("mlp_norm", i, mlpIn);
    const mlp = this.#mlp(w, mlpIn, s, prefix);
    s.trace?.("mlp_out", i, mlp);
    add(rows, this.#norm(mlp, w.postFeedforwardLayernorm, mlp), rows);
    s.trace?.("hidden", i, rows);
    return rows;
  }

  /** Embeddings → layers → final norm → tied lm_head (→ softcap). Logits f32 [rows, vocab]. */
  #forward(ids: Tensor, s: Step, logitsRows: "last" | "all", logits: Tensor, inject?: PrefillInjection): Tensor {
    const c = this.config.text, T = s.tokens;
    const h = embedding(this.#w.embedTokens, ids, this.#embedScale, s.ws.get("h", [T, c.hiddenSize]));
    // Injection positions are the whole prompt's; a prefill from an offset splices those at or after it.
    if (inject) spliceRows(h, inject.embeds, inject.positions.map((p) => p - s.start));
    s.trace?.("embeddings", -1, h);
    // Past its attention, the last layer carries only the rows whose logits are asked for, as llama.cpp's
    // inp_out_ids do: the others feed no later layer, and their keys and values are in the cache by then (a 16-token
    // prefill of the 270M skips 15 rows of one MLP in 18). A trace sees every row.
    const outputRows = logitsRows === "last" && !s.trace;
    let last = h;
    for (let i = 0; i < c.numHiddenLayers; i++) last = this.#layer(i, h, s, outputRows && i === c.numHiddenLayers - 1);
    if (!outputRows) last = logitRows(h, s, logitsRows);
    const normed = this.#norm(last, this.#w.norm, s.ws.get("final", last.shape));
    return lmHead(normed, this.#w.lmHead ?? this.#w.embedTokens, s, c.finalLogitSoftcapping, logits);
  }

  /**
   * Runs the prompt from position `start` (default 0, the whole prompt), filling the KV cache; from an offset,
   * the cache must hold positions 0..start-1 of these same ids (a follow-up turn). Returns logits of the last
   * position (f32 [1, vocab]) or, with `all`, of every computed position (f32 [T - start, vocab]). The caller
   * disposes them. `inject` splices embeddings (image soft tokens, at prompt positions >= start) over the token
   * embeddings and sets the span mask (span ids of the whole prompt).
   */
  prefill(ids: ArrayLike<number>, logitsRows: "last" | "all" = "last", inject?: PrefillInjection, start = 0): Tensor {
    const limits = { maxContext: this.maxContext, vocabSize: this.config.text.vocabSize };
    return runPrefill(
      this.backend,
      ids,
      limits,
      logitsRows,
      (i, s, rows, out) => this.#forward(i, s, rows, out, inject),
      { spanIds: inject?.spanIds, trace: this.trace, start },
    );
  }

  /** CausalLM: the prompt from `start` (the cache holds the positions before it), logits of its last position. */
  prefillFrom(ids: ArrayLike<number>, start: number): Tensor {
    return this.prefill(ids, "last", undefined, start);
  }

  /**
   * Prefills several prompts (text only) in one forward, each from its `start` over its own `cache`: logits f32
   * [parts, vocab], row j for part j's last position (what prefillFrom gives for it alone). The caller disposes them.
   */
  prefillBatch(parts: readonly PrefillPart[]): Tensor {
    const limits = { maxContext: this.maxContext, vocabSize: this.config.text.vocabSize };
    return runPrefillBatch(this.backend, parts, limits, (i, s, rows, out) => this.#forward(i, s, rows, out));
  }

  /**
   * One decode step for the token in `token` (i32 [1]) at the position in `position` (i32 [1]), both in
   * device memory, writing f32 [1, vocab] into `logits`. Allocates only on its first call (`ws`).
   */
  decodeStep(token: Tensor, position: Tensor, ws: Workspace, logits: Tensor): Tensor {
    return this.#forward(token, decodeStepOf(ws, position), "all", logits);
  }

  /**
   * One decode step for B sequences at once: `tokens` and `positions` (i32 [B], device) hold each row's input
   * token and position, `rows[r]` its position (i32 [1]) and KV cache; writes f32 [B, vocab] into `logits`. The
   * linears run over [B, hidden] (one GEMM per weight); attention runs per row over that row's cache.
   */
  decodeStepBatch(
    tokens: Tensor,
    positions: Tensor,
    rows: readonly BatchRow[],
    ws: Workspace,
    logits: Tensor,
    greedy?: GreedyHead,
  ): Tensor {
    return this.#forward(tokens, batchStepOf(ws, positions, rows, greedy), "all", logits);
  }

  dispose(): void {
    this.#ownCache.dispose();
    this.#invFreq.full_attention.dispose();
    this.#invFreq.sliding_attention.dispose();
    this.#weights.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
