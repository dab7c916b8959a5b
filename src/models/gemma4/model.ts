/**
 * Gemma 4 text (Gemma4ForCausalLM), as transformers computes it, composed from src/ops.
 * ref: transformers models/gemma4/modeling_gemma4.py — Gemma4TextModel (get_per_layer_inputs,
 * project_per_layer_inputs), Gemma4TextDecoderLayer, Gemma4TextAttention, Gemma4TextMLP, Gemma4RMSNorm (x·w).
 *
 * Every architectural variant is data the layers read (config.ts's per-layer facts), not a fork: per-layer
 * inputs when hidden_size_per_layer_input > 0, KV-shared layers reading their source's K/V, k_eq_v full
 * layers, the double-wide MLP, the MoE block beside the dense MLP. As in Gemma 3, the same layer code serves
 * prefill and the recorded decode step.
 * @module
 */
import type { Backend } from "../../runtime/backend.ts";
import { blockOf, REPACK_ROWS, roundTo } from "../../runtime/dtype.ts";
import { type CacheSpec, KvCache, layerCacheSpec } from "../../runtime/kv_cache.ts";
import { Tensor } from "../../runtime/tensor.ts";
import type { Workspace } from "../../runtime/workspace.ts";
import {
  add,
  attentionDecode,
  embedding,
  gatherSum,
  geluTanhMul,
  kvCacheWrite,
  linear,
  rmsNorm,
  rope,
  ropeInvFreq,
  scale,
} from "../../ops/mod.ts";
import {
  attendPrefill,
  attendRows,
  type BatchRow,
  batchStepOf,
  decodeStepOf,
  type GreedyHead,
  lmHead,
  logitRows,
  type PrefillKeys,
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
import type { Gemma4LayerSpec, Gemma4Model, LayerType } from "./config.ts";
import { gemma4MoeExperts } from "./moe.ts";
import type { Gemma4LayerWeights, Gemma4TextTable, Gemma4TextWeights } from "./weights.ts";

/**
 * What a multimodal prefill adds to the token ids (src/models/gemma4/multimodal.ts builds it): soft tokens that
 * replace the token embeddings at their positions (masked_scatter, before the per-layer inputs' projection), and
 * span ids that make each media run attend bidirectionally on sliding layers (use_bidirectional_attention "vision").
 */
export interface Gemma4PrefillInjection {
  /** Each part: f32 [rows, hidden] whose row r replaces the embedding at positions[r] (ascending). */
  parts: { embeds: Tensor; positions: readonly number[] }[];
  /** [tokens]: keys and queries sharing a non-zero id see each other on sliding layers; absent: plain masks. */
  spanIds?: Int32Array;
}

/** The KV cache each layer gets: a ring of the window for sliding layers, nothing of its own when shared. */
export function gemma4CacheSpecs(config: Gemma4Model, maxContext: number): CacheSpec[] {
  return config.layers.map((l) =>
    l.kvShared
      ? { capacity: 0, kvHeads: l.kvHeads, headDim: l.headDim, sharesWith: l.kvSource }
      : layerCacheSpec(l.window, maxContext, l.kvHeads, l.headDim)
  );
}

const dtypeOf = (t: Tensor) => blockOf(t.dtype) ? "f32" : t.dtype;

export class Gemma4TextModel {
  readonly config: Gemma4Model;
  readonly backend: Backend;
  readonly maxContext: number;
  /** The model's own KV cache: slot 0 of a batch, and the one sessions save and load. */
  readonly #ownCache: KvCache;
  /** The cache prefill and the one-row decode step write: the model's own, or a batch slot's (withCache). */
  #cache: KvCache;
  /** Sees each prefill's named intermediates (embeddings, per_layer_inputs, per layer attn_norm, attn_out,
   * mlp_norm, mlp_out, hidden); off (undefined) by default. For locating a divergence layer by layer. */
  trace: TraceHook | undefined;
  readonly #weights: ModelWeights<Gemma4TextTable>;
  readonly #w: Gemma4TextWeights;
  readonly #invFreq: Partial<Record<LayerType, Tensor>> = {};
  readonly #embedScale: number;
  readonly #perLayerEmbedScale: number;
  /** layer_scalar of each layer: a constant buffer, read once. */
  readonly #layerScalar: number[];
  /**
   * Per layer type, the keys the current prefill's last non-shared layer attended over, one entry per prompt
   * (for KV-shared layers).
   */
  readonly #prefillKeys = new Map<LayerType, PrefillKeys[]>();

  /** Takes ownership of `weights` (disposed with the model). */
  constructor(backend: Backend, config: Gemma4Model, weights: ModelWeights<Gemma4TextTable>, maxContext: number) {
    const c = config.text;
    this.backend = backend;
    this.config = config;
    this.#weights = weights;
    // The matrices in the layout this backend multiplies fastest (the CPU library's 16-row layouts for Q8_0, Q5_0,
    // Q4_0, Q4_1, Q5_1, Q4_K, Q5_K and Q6_K); a tied head is the embedding table too, which reads the new layout as
    // well. (MoE experts go through their own kernel and keep the file's layout.)
    const t = weights.tensors;
    repackLinears(weights, [
      t.lmHead ?? t.embedTokens,
      // (Read in per-layer slices of P rows, which a 16-row layout allows when they are whole groups.)
      config.text.hiddenSizePerLayerInput % REPACK_ROWS === 0 ? t.perLayer?.modelProjection : undefined,
      ...t.layers.flatMap((l) => [
        l.qProj,
        l.kProj,
        l.vProj,
        l.oProj,
        l.gateProj,
        l.upProj,
        l.downProj,
        l.perLayerInput?.gate,
        l.perLayerInput?.projection,
      ]),
    ]);
    this.#w = weights.tensors;
    this.maxContext = maxContext;
    // Gemma4TextScaledWordEmbedding: the scale is cast to the table's dtype before the multiply.
    const scaleDtype = (t: Tensor) => config.embedScaleDtype ?? dtypeOf(t);
    this.#embedScale = roundTo([Math.sqrt(c.hiddenSize)], scaleDtype(this.#w.embedTokens))[0];
    const P = c.hiddenSizePerLayerInput, perLayer = this.#w.perLayer;
    this.#perLayerEmbedScale = perLayer ? roundTo([Math.sqrt(P)], scaleDtype(perLayer.embedTokens))[0] : 1;
    this.#layerScalar = this.#w.layers.map((l) => l.layerScalar.toArray()[0]);
    try {
      // Each layer type has one head dim, so one inv_freq table (proportional rope: zeros past the rotated part).
      for (const l of config.layers) {
        if (this.#invFreq[l.type]) continue;
        const r = l.rope;
        const freq = ropeInvFreq({
          headDim: l.headDim,
          theta: r.theta,
          factor: r.factor,
          partialRotaryFactor: r.partialRotaryFactor,
        });
        this.#invFreq[l.type] = Tensor.fromArray(backend, freq, [l.headDim / 2]);
      }
      this.#ownCache = this.#cache = this.createCache();
    } catch (e) {
      for (const t of Object.values(this.#invFreq)) t.dispose();
      throw e;
    }
  }

  get vocabSize(): number {
    return this.config.text.vocabSize;
  }

  /** The KV cache prefill and decode write (a batch slot's inside withCache). */
  get cache(): KvCache {
    return this.#cache;
  }

  /** A new KV cache of this model's geometry (a batch slot; the caller disposes it). */
  createCache(): KvCache {
    return new KvCache(this.backend, gemma4CacheSpecs(this.config, this.maxContext));
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

  /** Gemma4RMSNorm: x·w ("scale"), or without a weight ("plain") when `weight` is null. */
  #norm(x: Tensor, weight: Tensor | null, out: Tensor): Tensor {
    const eps = this.config.text.rmsNormEps;
    return rmsNorm(x, weight, { mode: weight === null ? "plain" : "scale", eps }, out);
  }

  /**
   * Gemma4TextModel.get_per_layer_inputs + project_per_layer_inputs, laid out [L, T, P] so that layer i's
   * inputs are the contiguous rows i·T .. i·T+T (transformers holds [T, L, P] and slices [:, :, i, :]).
   */
  #perLayerInputs(ids: Tensor, embeds: Tensor, s: Step): Tensor {
    const c = this.config.text, T = s.tokens;
    const [L, P, H] = [c.numHiddenLayers, c.hiddenSizePerLayerInput, c.hiddenSize];
    const w = this.#w.perLayer!;
    const table = w.embedTokens;
    const tokenPart = s.ws.get("ple_tokens", [L * T, P]);
    if (s.decode && T === 1) {
      // One token: its packed row [L·P] is already [L, 1, P].
      embedding(table, ids, this.#perLayerEmbedScale, tokenPart.reshape([1, L * P]));
    } else if (s.decode) {
      // A batched step: the ids are on the device, so gather the packed rows [T, L, P], then reorder them into
      // [L, T, P] with a fixed row index (row i·T + t takes row t·L + i), written before the step is recorded.
      const packed = embedding(table, ids, this.#perLayerEmbedScale, s.ws.get("ple_packed", [T, L * P]));
      const order = s.ws.get("ple_order", [L * T, 1], "i32");
      if (!this.backend.recording) {
        order.write(Int32Array.from({ length: L * T }, (_, j) => (j % T) * L + Math.floor(j / T)));
      }
      gatherSum(packed.reshape([T * L, P]), order, 1, tokenPart);
    } else {
      // Row id·L + i of the table viewed as [V·L, P] is layer i's slice of token id: gather in [L, T, P] order.
      const hostIds = s.hostIds!;
      const idx = s.ws.get("ple_ids", [L * T], "i32");
      idx.write(Int32Array.from({ length: L * T }, (_, j) => hostIds[j % T] * L + Math.floor(j / T)));
      embedding(table.reshape([table.shape[0] * L, P]), idx, this.#perLayerEmbedScale, tokenPart);
    }
    const proj = s.ws.get("ple", [L * T, P]);
    for (let i = 0; i < L; i++) linear(embeds, w.modelProjection.rows(i * P, P), null, proj.rows(i * T, T));
    scale(proj, H ** -0.5, proj);
    this.#norm(proj, w.projectionNorm, proj);
    add(proj, tokenPart, proj);
    return scale(proj, 2 ** -0.5, proj);
  }

  /** Gemma4TextAttention. Returns the o_proj output. */
  #attention(l: Gemma4LayerSpec, w: Gemma4LayerWeights, x: Tensor, s: Step): Tensor {
    const c = this.config.text, T = s.tokens;
    const [nH, nKV, hd] = [c.numAttentionHeads, l.kvHeads, l.headDim];
    const invFreq = this.#invFreq[l.type]!;
    const q = linear(x, w.qProj, null, s.ws.get(`q.${hd}`, [T, nH * hd])).reshape([T, nH, hd]);
    this.#norm(q, w.qNorm, q);
    rope(q, s.positions, invFreq);
    // K/V of the whole prompt per layer type: a KV-shared layer's prefill reads what its source attended over
    // (the last non-shared layer of its type wrote it), since a sliding cache keeps only the window.
    const k = s.ws.get(`k.${l.type}`, [T, nKV, hd]);
    const v = s.ws.get(`v.${l.type}`, [T, nKV, hd]);
    const cache = this.cache.layer(l.index);
    let keys: PrefillKeys[] | undefined;
    if (w.kProj && w.kNorm) {
      linear(x, w.kProj, null, k.reshape([T, nKV * hd]));
      // attention_k_eq_v: V is the raw K projection, before k_norm and RoPE.
      if (!w.vProj) this.#norm(k, null, v);
      else {
        linear(x, w.vProj, null, v.reshape([T, nKV * hd]));
        this.#norm(v, null, v);
      }
      this.#norm(k, w.kNorm, k);
      rope(k, s.positions, invFreq);
      if (s.rows) {
        // A batched step: each row writes its own sequence's cache at its own position.
        writeRowsKv(s.rows, l.index, k, v);
      } else if (s.decode) {
        kvCacheWrite(k, cache.k, s.position0);
        kvCacheWrite(v, cache.v, s.position0);
      } else {
        keys = prefillLayerKeys(s, this.cache, l.index, l.window, k, v, `ctx.${l.type}`);
        this.#prefillKeys.set(l.type, keys);
      }
    } else if (!s.decode) keys = this.#prefillKeys.get(l.type);
    // Gemma 4 scales scores by 1.0 and applies no attention softcap.
    const options = { scale: 1, window: l.window };
    const attn = s.ws.get(`attn.${hd}`, [T, nH, hd]);
    if (s.rows) {
      // Each row attends over its own cache (a KV-shared layer: its source's in that row's cache).
      attendRows(s.rows, l.index, q, options, attn);
    } else if (s.decode) {
      attentionDecode(q.reshape([nH, hd]), cache.k, cache.v, s.position0, options, attn.reshape([nH, hd]));
    } else {
      // create_masks_for_vision_model: the media blocks open up on sliding layers only; full layers stay causal.
      attendPrefill(s, keys!, q, options, attn, l.type === "sliding_attention");
    }
    return linear(attn.reshape([T, nH * hd]), w.oProj, null, s.ws.get("o", [T, c.hiddenSize]));
  }

  /** Gemma4TextMLP: down_proj(gelu_tanh(gate_proj(x)) * up_proj(x)), at this layer's width, over x's rows. */
  #mlp(l: Gemma4LayerSpec, w: Gemma4LayerWeights, x: Tensor, s: Step, prefix = ""): Tensor {
    const T = x.shape[0], I = l.intermediateSize;
    const gate = linear(x, w.gateProj, null, s.ws.get(`${prefix}gate.${I}`, [T, I]));
    const up = linear(x, w.upProj, null, s.ws.get(`${prefix}up.${I}`, [T, I]));
    geluTanhMul(gate, up, gate);
    return linear(gate, w.downProj, null, s.ws.get(`${prefix}down`, [T, this.config.text.hiddenSize]));
  }

  /** The MoE branch: post_feedforward_layernorm_2(experts(pre_feedforward_layernorm_2(r), router(r))). */
  #moe(w: NonNullable<Gemma4LayerWeights["moe"]>, r: Tensor, s: Step): Tensor {
    const c = this.config.text, moe = c.moe!;
    const x2 = this.#norm(r, w.preFeedforwardLayernorm2, s.ws.get("x2", r.shape));
    const cfg = {
      topK: moe.topK,
      eps: c.rmsNormEps,
      hiddenSize: c.hiddenSize,
      numExperts: moe.numExperts,
      moeIntermediateSize: moe.moeIntermediateSize,
    };
    const out = gemma4MoeExperts(r, x2, w, cfg, s.ws);
    return this.#norm(out, w.postFeedforwardLayernorm2, out);
  }

  /**
   * Gemma4TextDecoderLayer: sandwich norms, MoE beside the MLP, per-layer input, layer_scalar. Returns the rows of h it
   * carried past attention: all of them, or with `outputRows` (a layer without MoE) only the rows whose logits are
   * asked for (each prompt's last; a view of h's last row, or a copy per segment).
   */
  #layer(l: Gemma4LayerSpec, h: Tensor, s: Step, perLayerInput: Tensor | null, outputRows = false): Tensor {
    const c = this.config.text, T = s.tokens, w = this.#w.layers[l.index];
    const x = this.#norm(h, w.inputLayernorm, s.ws.get("x", [T, c.hiddenSize]));
    s.trace?.("attn_norm", l.index, x);
    let attn = this.#attention(l, w, x, s);
    s.trace?.("attn_out", l.index, attn);
    let rows = h, mlpIn = x, ple = perLayerInput, prefix = "";
    if (outputRows) {
      rows = logitRows(h, s, "last", "out_h");
      attn = logitRows(attn, s, "last", "out_attn");
      mlpIn = s.ws.get("out_x", rows.shape);
      ple = perLayerInput && logitRows(perLayerInput, s, "last", "out_ple");
      prefix = "out_";
    }
    const R = rows.shape[0];
    add(rows, this.#norm(attn, w.postAttentionLayernorm, attn), rows);
    this.#norm(rows, w.preFeedforwardLayernorm, mlpIn);
    s.trace?.("mlp_norm", l.index, mlpIn);
    const mlp = this.#mlp(l, w, mlpIn, s, prefix);
    if (w.moe) {
      // The router and experts read the residual h (not the MLP's normed input); both branches are normed, summed.
      this.#norm(mlp, w.moe.postFeedforwardLayernorm1, mlp);
      add(mlp, this.#moe(w.moe, rows, s), mlp);
    }
    s.trace?.("mlp_out", l.index, mlp);
    add(rows, this.#norm(mlp, w.postFeedforwardLayernorm, mlp), rows);
    if (ple && w.perLayerInput) {
      const P = c.hiddenSizePerLayerInput, pl = w.perLayerInput;
      const g = linear(rows, pl.gate, null, s.ws.get(`${prefix}ple_gate`, [R, P]));
      geluTanhMul(g, ple, g);
      const y = linear(g, pl.projection, null, s.ws.get(`${prefix}ple_out`, [R, c.hiddenSize]));
      add(rows, this.#norm(y, pl.postNorm, y), rows);
    }
    if (this.#layerScalar[l.index] !== 1) scale(rows, this.#layerScalar[l.index], rows);
    s.trace?.("hidden", l.index, rows);
    return rows;
  }

  /** Embeddings (+ per-layer inputs) → layers → final norm → tied lm_head → softcap. Logits f32 [rows, vocab]. */
  #forward(
    ids: Tensor,
    s: Step,
    logitsRows: "last" | "all",
    logits: Tensor,
    inject?: Gemma4PrefillInjection,
  ): Tensor {
    const c = this.config.text, T = s.tokens;
    const h = embedding(this.#w.embedTokens, ids, this.#embedScale, s.ws.get("h", [T, c.hiddenSize]));
    // Injection positions are the whole prompt's; a prefill from an offset splices those at or after it.
    for (const part of inject?.parts ?? []) spliceRows(h, part.embeds, part.positions.map((p) => p - s.start));
    s.trace?.("embeddings", -1, h);
    const perLayer = c.hiddenSizePerLayerInput ? this.#perLayerInputs(ids, h, s) : null;
    if (perLayer) s.trace?.("per_layer_inputs", -1, perLayer);
    // Past its attention, the last layer carries only the rows whose logits are asked for, as llama.cpp's
    // inp_out_ids do: the others feed no later layer, and their keys and values are in the cache by then. Not past
    // an MoE block (its workspace is sized by the step's rows); a trace sees every row.
    const layers = this.config.layers, final = layers[layers.length - 1];
    const outputRows = logitsRows === "last" && !s.trace && !this.#w.layers[final.index].moe;
    let last = h;
    for (const l of layers) {
      last = this.#layer(l, h, s, perLayer?.rows(l.index * T, T) ?? null, outputRows && l === final);
    }
    if (!outputRows) last = logitRows(h, s, logitsRows);
    const normed = this.#norm(last, this.#w.norm, s.ws.get("final", last.shape));
    return lmHead(normed, this.#w.lmHead ?? this.#w.embedTokens, s, c.finalLogitSoftcapping, logits);
  }

  /**
   * Runs the prompt from position `start` (default 0, the whole prompt), filling the KV cache; from an offset,
   * the cache must hold positions 0..start-1 of these same ids (a follow-up turn). Returns logits of the last
   * position (f32 [1, vocab]) or, with `all`, of every computed position (f32 [T - start, vocab]). The caller
   * disposes them. Injected parts sit at prompt positions >= start; span ids are the whole prompt's.
   */
  prefill(
    ids: ArrayLike<number>,
    logitsRows: "last" | "all" = "last",
    inject?: Gemma4PrefillInjection,
    start = 0,
  ): Tensor {
    const limits = { maxContext: this.maxContext, vocabSize: this.vocabSize };
    try {
      return runPrefill(
        this.backend,
        ids,
        limits,
        logitsRows,
        (i, s, rows, out) => this.#forward(i, s, rows, out, inject),
        { spanIds: inject?.spanIds, trace: this.trace, start },
      );
    } finally {
      this.#prefillKeys.clear();
    }
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
    const limits = { maxContext: this.maxContext, vocabSize: this.vocabSize };
    try {
      return runPrefillBatch(this.backend, parts, limits, (i, s, rows, out) => this.#forward(i, s, rows, out));
    } finally {
      this.#prefillKeys.clear();
    }
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
   * linears (and the MoE block) run over [B, hidden]; attention runs per row over that row's cache.
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
    for (const t of Object.values(this.#invFreq)) t.dispose();
    this.#weights.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
