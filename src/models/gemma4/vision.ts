/**
 * Gemma 4's image encoder as transformers computes it for Gemma4ForConditionalGeneration: the vision tower
 * (patch embedder with its factored 2-D position table, encoder layers with 2-D RoPE, q/k/v norms, sandwich norms
 * and the gated MLP, the position-listed spatial pooler, standardize) and the multimodal embedder that projects
 * the soft tokens into the text width, composed from src/ops.
 * ref: transformers models/gemma4/modeling_gemma4.py — Gemma4VisionPatchEmbedder, Gemma4VisionEncoder(Layer),
 * Gemma4VisionAttention, Gemma4VisionMLP, Gemma4ClippableLinear, Gemma4VisionRotaryEmbedding,
 * apply_multidimensional_rope, Gemma4VisionPooler, Gemma4VisionModel, Gemma4MultimodalEmbedder.
 *
 * Images of any size are encoded together in one pass: the valid patches of every image are packed one after
 * another (padding patches never enter — they are masked out of attention and pooling in transformers, so the
 * valid rows do not depend on them), every linear and norm runs over all of them at once, and attention runs per
 * image over its own rows (transformers' key-padding mask, without the padding).
 * @module
 */
import { ShapeError } from "../../errors.ts";
import type { Backend } from "../../runtime/backend.ts";
import { FLOAT_DTYPES, MATMUL_WEIGHT_DTYPES } from "../../runtime/dtype.ts";
import { Tensor } from "../../runtime/tensor.ts";
import { Workspace } from "../../runtime/workspace.ts";
import {
  add,
  attentionPrefill,
  clamp,
  gatherSum,
  geluTanhMul,
  linear,
  mul,
  rmsNorm,
  ropeAxes,
  ropeInvFreq,
  scale,
} from "../../ops/mod.ts";
import type { WeightSpec } from "../common/weights.ts";
import { type Loaded, type ModelWeights, tableRows } from "../common/weight_table.ts";
import type { TraceHook } from "../common/step.ts";
import type { Gemma4VisionConfig } from "./vision_config.ts";

/** The vision weight table (tower + embedder), shapes from the config. */
export function gemma4VisionTable(v: Gemma4VisionConfig, textHidden: number): Gemma4VisionTable {
  const D = v.hiddenSize, I = v.intermediateSize, hd = v.headDim, p = v.patchSize;
  const [nH, nKV] = [v.numAttentionHeads, v.numKeyValueHeads];
  const tower = (name: string, shape: number[], matmul = false, loadAs?: "f32"): WeightSpec => ({
    name: `model.vision_tower.${name}`,
    shape,
    dtypes: matmul ? MATMUL_WEIGHT_DTYPES : FLOAT_DTYPES,
    aliases: [`vision_tower.${name}`],
    ...(loadAs ? { loadAs } : {}),
  });
  const norm = (name: string, size: number) => tower(`${name}.weight`, [size], false, "f32");
  /** Gemma4ClippableLinear: the linear, and its scalar bounds (read once on the host) when the config clips. */
  const clippable = (name: string, shape: number[]) => ({
    weight: tower(`${name}.linear.weight`, shape, true),
    bounds: v.useClippedLinears
      ? (["input_min", "input_max", "output_min", "output_max"] as const).map((b) =>
        tower(`${name}.${b}`, [], false, "f32")
      )
      : undefined,
  });
  return {
    inputProj: tower("patch_embedder.input_proj.weight", [D, 3 * p * p], true),
    // Gathered and added to f32 activations, so held in f32.
    positionEmbeddingTable: tower(
      "patch_embedder.position_embedding_table",
      [2, v.positionEmbeddingSize, D],
      false,
      "f32",
    ),
    standardize: v.standardize
      ? { bias: tower("std_bias", [D], false, "f32"), scale: tower("std_scale", [D], false, "f32") }
      : undefined,
    layers: Array.from({ length: v.numHiddenLayers }, (_, i) => {
      const l = `encoder.layers.${i}.`;
      return {
        inputLayernorm: norm(`${l}input_layernorm`, D),
        postAttentionLayernorm: norm(`${l}post_attention_layernorm`, D),
        preFeedforwardLayernorm: norm(`${l}pre_feedforward_layernorm`, D),
        postFeedforwardLayernorm: norm(`${l}post_feedforward_layernorm`, D),
        qNorm: norm(`${l}self_attn.q_norm`, hd),
        kNorm: norm(`${l}self_attn.k_norm`, hd),
        qProj: clippable(`${l}self_attn.q_proj`, [nH * hd, D]),
        kProj: clippable(`${l}self_attn.k_proj`, [nKV * hd, D]),
        vProj: clippable(`${l}self_attn.v_proj`, [nKV * hd, D]),
        oProj: clippable(`${l}self_attn.o_proj`, [D, nH * hd]),
        gateProj: clippable(`${l}mlp.gate_proj`, [I, D]),
        upProj: clippable(`${l}mlp.up_proj`, [I, D]),
        downProj: clippable(`${l}mlp.down_proj`, [D, I]),
      };
    }),
    embeddingProjection: {
      name: "model.embed_vision.embedding_projection.weight",
      shape: [textHidden, D],
      dtypes: MATMUL_WEIGHT_DTYPES,
      aliases: ["embed_vision.embedding_projection.weight"],
    } satisfies WeightSpec,
  };
}

/** Gemma4ClippableLinear: its linear, and [input_min, input_max, output_min, output_max] when the config clips. */
type ClippableTable = { weight: WeightSpec; bounds: WeightSpec[] | undefined };

/** The vision tower's and the embedder's tensors, named after transformers' modules. */
export type Gemma4VisionTable = {
  inputProj: WeightSpec;
  positionEmbeddingTable: WeightSpec;
  /** With standardize: std_bias and std_scale. */
  standardize: { bias: WeightSpec; scale: WeightSpec } | undefined;
  layers: {
    inputLayernorm: WeightSpec;
    postAttentionLayernorm: WeightSpec;
    preFeedforwardLayernorm: WeightSpec;
    postFeedforwardLayernorm: WeightSpec;
    qNorm: WeightSpec;
    kNorm: WeightSpec;
    qProj: ClippableTable;
    kProj: ClippableTable;
    vProj: ClippableTable;
    oProj: ClippableTable;
    gateProj: ClippableTable;
    upProj: ClippableTable;
    downProj: ClippableTable;
  }[];
  embeddingProjection: WeightSpec;
};
type Gemma4VisionWeights = Loaded<Gemma4VisionTable>;
type VisionLayerWeights = Gemma4VisionWeights["layers"][number];
type ClippableWeights = VisionLayerWeights["qProj"];

/** The vision table's rows, flat. */
export function gemma4VisionWeights(v: Gemma4VisionConfig, textHidden: number): WeightSpec[] {
  return tableRows(gemma4VisionTable(v, textHidden));
}

/**
 * Images (or video frames) as the Gemma 4 processor makes them: `count` items of `maxPatches` patches each.
 * Padding patches sit at position (-1, -1) and are left out.
 */
export interface VisionBatch {
  /** f32 [count, maxPatches, 3·patch²]: each patch in (py, px, c) order, values in [0, 1]. */
  pixelValues: Float32Array;
  /** [count, maxPatches, 2]: (x, y) patch coordinates, (-1, -1) for padding. */
  positionIds: ArrayLike<number>;
  count: number;
  maxPatches: number;
}

/** One item's packed patches and pooling cells, computed on the host from its position ids. */
interface ItemLayout {
  /** Indices (within the item) of its valid patches, in order. */
  valid: number[];
  /** Per kept cell, the packed-row offsets (within the item) of its patches, in patch order. */
  cells: number[][];
}

export class Gemma4VisionModel {
  readonly config: Gemma4VisionConfig;
  readonly backend: Backend;
  readonly textHidden: number;
  /** Sees each pass's named intermediates (`pooled`: the tower's pooled, standardized output); off by default. */
  trace: TraceHook | undefined;
  readonly #weights: ModelWeights<Gemma4VisionTable>;
  readonly #w: Gemma4VisionWeights;
  readonly #invFreq: Tensor;
  /** -std_bias, so that standardize is add then mul (exactly (x - b) · s). */
  readonly #negStdBias: Tensor | null;
  /** Clip bounds per clipped linear, read once: [inMin, inMax, outMin, outMax]. */
  readonly #clip = new Map<ClippableWeights, number[]>();

  /** Takes ownership of `weights` (disposed with the model). */
  constructor(
    backend: Backend,
    config: Gemma4VisionConfig,
    weights: ModelWeights<Gemma4VisionTable>,
    textHidden: number,
  ) {
    this.backend = backend;
    this.config = config;
    this.textHidden = textHidden;
    this.#weights = weights;
    this.#w = weights.tensors;
    for (const l of this.#w.layers) {
      for (const proj of [l.qProj, l.kProj, l.vProj, l.oProj, l.gateProj, l.upProj, l.downProj]) {
        if (proj.bounds) this.#clip.set(proj, proj.bounds.map((b) => b.toArray()[0]));
      }
    }
    // Gemma4VisionRotaryEmbedding: inv_freq over spatial_dim = head_dim / 2, shared by the x and y halves.
    this.#invFreq = Tensor.fromArray(backend, ropeInvFreq({ headDim: config.headDim / 2, theta: config.ropeTheta }), [
      config.headDim / 4,
    ]);
    this.#negStdBias = null;
    if (config.standardize) {
      try {
        const bias = this.#w.standardize!.bias.toArray().map((b) => -b);
        this.#negStdBias = Tensor.fromArray(backend, bias, [config.hiddenSize]);
      } catch (e) {
        this.#invFreq.dispose();
        throw e;
      }
    }
  }

  /** Gemma4RMSNorm: x·w, or weightless when `weight` is null. */
  #norm(x: Tensor, weight: Tensor | null, out: Tensor): Tensor {
    return rmsNorm(x, weight, { mode: weight === null ? "plain" : "scale", eps: this.config.rmsNormEps }, out);
  }

  /** Gemma4ClippableLinear: clamp(input) → linear → clamp(output); infinite bounds are skipped (identity). */
  #linear(w: ClippableWeights, x: Tensor, out: Tensor, ws: Workspace): Tensor {
    const bounds = this.#clip.get(w);
    let input = x;
    if (bounds && (bounds[0] > -Infinity || bounds[1] < Infinity)) {
      input = clamp(x, bounds[0], bounds[1], ws.get(`clip.${x.shape[1]}`, x.shape));
    }
    linear(input, w.weight, null, out);
    if (bounds && (bounds[2] > -Infinity || bounds[3] < Infinity)) clamp(out, bounds[2], bounds[3], out);
    return out;
  }

  /** Gemma4VisionAttention over the packed rows; each item attends to its own rows only. */
  #attention(w: VisionLayerWeights, x: Tensor, pos: Tensor, spans: number[][], ws: Workspace): Tensor {
    const c = this.config, N = x.shape[0], hd = c.headDim;
    const [nH, nKV] = [c.numAttentionHeads, c.numKeyValueHeads];
    const q = this.#linear(w.qProj, x, ws.get("q", [N, nH * hd]), ws).reshape([N, nH, hd]);
    this.#norm(q, w.qNorm, q);
    ropeAxes(q, pos, this.#invFreq);
    const k = this.#linear(w.kProj, x, ws.get("k", [N, nKV * hd]), ws).reshape([N, nKV, hd]);
    this.#norm(k, w.kNorm, k);
    ropeAxes(k, pos, this.#invFreq);
    const v = this.#linear(w.vProj, x, ws.get("v", [N, nKV * hd]), ws).reshape([N, nKV, hd]);
    this.#norm(v, null, v);
    const attn = ws.get("attn", [N, nH, hd]);
    // scaling 1.0, bidirectional; transformers masks the padding keys, which are not packed here.
    for (const [start, n] of spans) {
      attentionPrefill(
        q.rows(start, n),
        k.rows(start, n),
        v.rows(start, n),
        { scale: 1, causal: false },
        attn.rows(start, n),
      );
    }
    return this.#linear(w.oProj, attn.reshape([N, nH * hd]), ws.get("o", [N, c.hiddenSize]), ws);
  }

  /** Gemma4VisionEncoderLayer: sandwich norms around attention and the gated MLP, each added to h. */
  #layer(w: VisionLayerWeights, h: Tensor, pos: Tensor, spans: number[][], ws: Workspace): void {
    const c = this.config, N = h.shape[0];
    const x = this.#norm(h, w.inputLayernorm, ws.get("x", h.shape));
    const attn = this.#attention(w, x, pos, spans, ws);
    add(h, this.#norm(attn, w.postAttentionLayernorm, attn), h);
    this.#norm(h, w.preFeedforwardLayernorm, x);
    const gate = this.#linear(w.gateProj, x, ws.get("gate", [N, c.intermediateSize]), ws);
    const up = this.#linear(w.upProj, x, ws.get("up", [N, c.intermediateSize]), ws);
    geluTanhMul(gate, up, gate);
    const down = this.#linear(w.downProj, gate, ws.get("down", h.shape), ws);
    add(h, this.#norm(down, w.postFeedforwardLayernorm, down), h);
  }

  /**
   * Valid patches and pooling cells of one item (Gemma4VisionPooler._avg_pool_by_positions): cell
   * floor(x/k) + (W/k)·floor(y/k) with W = max(x) + 1, cells in index order, empty ones dropped.
   */
  #layout(positionIds: ArrayLike<number>, item: number, maxPatches: number): ItemLayout {
    const c = this.config, S = c.positionEmbeddingSize;
    const length = Math.floor(maxPatches / c.poolingKernelSize ** 2);
    const k = Math.floor(Math.sqrt(Math.floor(maxPatches / Math.max(1, length))));
    if (length < 1 || k * k * length !== maxPatches) {
      throw new ShapeError("encodeVision", `cannot pool ${maxPatches} patches to ${length} soft tokens`);
    }
    const valid: number[] = [];
    let maxX = 0;
    for (let j = 0; j < maxPatches; j++) {
      const x = positionIds[(item * maxPatches + j) * 2], y = positionIds[(item * maxPatches + j) * 2 + 1];
      if (x === -1 && y === -1) continue;
      if (!Number.isInteger(x) || !Number.isInteger(y) || x < 0 || y < 0 || x >= S || y >= S) {
        throw new ShapeError(
          "encodeVision",
          `item ${item} patch ${j} has position (${x}, ${y}) outside the ${S}x${S} position table`,
        );
      }
      valid.push(j);
      maxX = Math.max(maxX, x);
    }
    if (valid.length === 0) throw new ShapeError("encodeVision", `item ${item} has no patches (all padding)`);
    const perRow = Math.floor((maxX + 1) / k);
    const members = new Map<number, number[]>();
    valid.forEach((j, r) => {
      const x = positionIds[(item * maxPatches + j) * 2], y = positionIds[(item * maxPatches + j) * 2 + 1];
      const cell = Math.floor(x / k) + perRow * Math.floor(y / k);
      if (cell >= length) {
        throw new ShapeError("encodeVision", `item ${item}: patch (${x}, ${y}) falls in cell ${cell} of ${length}`);
      }
      const list = members.get(cell) ?? [];
      list.push(r);
      members.set(cell, list);
    });
    return { valid, cells: [...members.keys()].sort((a, b) => a - b).map((cell) => members.get(cell)!) };
  }

  /** Soft tokens each item of a batch becomes (without running the tower). */
  softTokenCounts(batch: VisionBatch): number[] {
    return Array.from(
      { length: batch.count },
      (_, n) => this.#layout(batch.positionIds, n, batch.maxPatches).cells.length,
    );
  }

  /**
   * Gemma4VisionModel + Gemma4MultimodalEmbedder on every item of `batch` in one pass. Returns, per item, its soft
   * tokens f32 [n_i, textHidden] (the caller disposes them). `trace` sees the tower's pooled, standardized output
   * f32 [Σ n_i, hidden] as `pooled`.
   */
  encode(batch: VisionBatch): Tensor[] {
    const c = this.config,
      D = c.hiddenSize,
      pp = 3 * c.patchSize ** 2,
      M = batch.maxPatches,
      S = c.positionEmbeddingSize;
    if (
      !Number.isInteger(batch.count) || batch.count < 1 || !Number.isInteger(M) || M < 1 ||
      batch.pixelValues.length !== batch.count * M * pp || batch.positionIds.length !== batch.count * M * 2
    ) {
      throw new ShapeError(
        "encodeVision",
        `${batch.pixelValues.length} pixel values and ${batch.positionIds.length} position ids for ${batch.count} ` +
          `items of ${M} patches of ${pp} values (patch ${c.patchSize})`,
      );
    }
    const layouts = Array.from({ length: batch.count }, (_, n) => this.#layout(batch.positionIds, n, M));
    const N = layouts.reduce((s, l) => s + l.valid.length, 0);
    const cells = layouts.reduce((s, l) => s + l.cells.length, 0);
    const K = Math.max(...layouts.flatMap((l) => l.cells.map((m) => m.length)));
    // Host-side packing: pixels mapped to [-1, 1] (2·(x - 0.5), exact in f32), x/y table rows, rope positions,
    // each item's row span, and each cell's member rows.
    const pixels = new Float32Array(N * pp);
    const tableRows = new Int32Array(N * 2), pos = new Int32Array(N * 2), members = new Int32Array(cells * K).fill(-1);
    const spans: number[][] = [];
    let row = 0, cell = 0;
    layouts.forEach((l, n) => {
      spans.push([row, l.valid.length]);
      for (const j of l.valid) {
        const src = (n * M + j) * pp;
        for (let e = 0; e < pp; e++) pixels[row * pp + e] = 2 * (batch.pixelValues[src + e] - 0.5);
        const x = batch.positionIds[(n * M + j) * 2], y = batch.positionIds[(n * M + j) * 2 + 1];
        [pos[2 * row], pos[2 * row + 1]] = [x, y];
        [tableRows[2 * row], tableRows[2 * row + 1]] = [x, S + y];
        row++;
      }
      for (const m of l.cells) {
        m.forEach((r, e) => (members[cell * K + e] = spans[n][0] + r));
        cell++;
      }
    });
    using ws = new Workspace(this.backend);
    const px = ws.get("pixels", [N, pp]);
    px.write(pixels);
    const posT = ws.get("pos", [N, 2], "i32");
    posT.write(pos);
    const rowsT = ws.get("table_rows", [N, 2], "i32");
    rowsT.write(tableRows);
    // Gemma4VisionPatchEmbedder: input_proj, plus table[0][x] + table[1][y].
    const h = linear(px, this.#w.inputProj, null, ws.get("h", [N, D]));
    const table = this.#w.positionEmbeddingTable;
    add(h, gatherSum(table.reshape([2 * S, D]), rowsT, 1, ws.get("pe", [N, D])), h);
    this.trace?.("embeddings", -1, h);
    this.#w.layers.forEach((layer, i) => {
      this.#layer(layer, h, posT, spans, ws);
      this.trace?.("hidden", i, h);
    });
    // Gemma4VisionPooler: the mean of each cell's patches (1/k² each, padding counted as zeros), times sqrt(hidden).
    const k = Math.floor(Math.sqrt(Math.floor(M / Math.floor(M / c.poolingKernelSize ** 2))));
    const membersT = ws.get("cells", [cells, K], "i32");
    membersT.write(members);
    const pooled = gatherSum(h, membersT, 1 / (k * k), ws.get("pooled", [cells, D]));
    scale(pooled, Math.sqrt(D), pooled);
    if (this.#negStdBias) {
      add(pooled, this.#negStdBias, pooled);
      mul(pooled, this.#w.standardize!.scale, pooled);
    }
    this.trace?.("pooled", -1, pooled);
    // Gemma4MultimodalEmbedder: weightless RMSNorm, then the projection into the text width.
    this.#norm(pooled, null, pooled);
    const out: Tensor[] = [];
    try {
      let at = 0;
      for (const l of layouts) {
        const t = Tensor.empty(this.backend, [l.cells.length, this.textHidden]);
        out.push(t);
        linear(pooled.rows(at, l.cells.length), this.#w.embeddingProjection, null, t);
        at += l.cells.length;
      }
      return out;
    } catch (e) {
      for (const t of out) t.dispose();
      throw e;
    }
  }

  dispose(): void {
    this.#invFreq.dispose();
    this.#negStdBias?.dispose();
    this.#weights.dispose();
  }
}
