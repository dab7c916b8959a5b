/**
 * Gemma 3's image encoder as transformers computes it for Gemma3ForConditionalGeneration: the SigLIP vision
 * tower (no pooling head) and the Gemma3MultiModalProjector, composed from src/ops.
 * ref: transformers models/siglip/modeling_siglip.py — SiglipVisionEmbeddings, SiglipEncoderLayer,
 * SiglipAttention, SiglipMLP, SiglipVisionTransformer; models/gemma3/modeling_gemma3.py —
 * Gemma3MultiModalProjector, Gemma3Model.get_image_features.
 * @module
 */
import { ShapeError } from "../../errors.ts";
import type { Backend } from "../../runtime/backend.ts";
import { FLOAT_DTYPES, MATMUL_WEIGHT_DTYPES } from "../../runtime/dtype.ts";
import { Tensor } from "../../runtime/tensor.ts";
import { Workspace } from "../../runtime/workspace.ts";
import { add, attentionPrefill, avgPool2d, geluTanh, layerNorm, linear, patchExtract, rmsNorm } from "../../ops/mod.ts";
import type { WeightSpec } from "../common/weights.ts";
import { type Loaded, type ModelWeights, tableRows } from "../common/weight_table.ts";
import type { Gemma3VisionConfig } from "./vision_config.ts";

/**
 * The vision weight table. Names as transformers 5 holds them in memory; the aliases are what checkpoints
 * store: Google's converter writes `vision_tower.vision_model.…` and `multi_modal_projector.…`, and
 * transformers 5.17's save_pretrained writes `vision_tower.…` (no `vision_model`). The encoder's linear weights
 * may also be GGUF-quantized (llama.cpp's mmproj files: `linear` decodes the blocks, with an f32 bias).
 */
export function gemma3VisionTable(v: Gemma3VisionConfig, textHidden: number): Gemma3VisionTable {
  const D = v.hiddenSize, I = v.intermediateSize, p = v.patchSize, P = v.patchesPerSide ** 2;
  const tower = (name: string, shape: number[], loadAs?: "f32", dtypes = FLOAT_DTYPES): WeightSpec => ({
    name: `model.vision_tower.vision_model.${name}`,
    shape,
    dtypes,
    aliases: [`vision_tower.vision_model.${name}`, `vision_tower.${name}`, `model.vision_tower.${name}`],
    ...(loadAs ? { loadAs } : {}),
  });
  const projector = (name: string, shape: number[], loadAs?: "f32"): WeightSpec => ({
    name: `model.multi_modal_projector.${name}`,
    shape,
    dtypes: FLOAT_DTYPES,
    aliases: [`multi_modal_projector.${name}`],
    ...(loadAs ? { loadAs } : {}),
  });
  /** An nn.Linear or nn.LayerNorm: weight and bias. */
  const affine = (name: string, weight: number[]) => ({
    weight: tower(`${name}.weight`, weight),
    bias: tower(`${name}.bias`, [weight[0]]),
  });
  /** An nn.Linear of the encoder layers. */
  const dense = (name: string, weight: number[]) => ({
    weight: tower(`${name}.weight`, weight, undefined, MATMUL_WEIGHT_DTYPES),
    bias: tower(`${name}.bias`, [weight[0]]),
  });
  return {
    patchEmbedding: affine("embeddings.patch_embedding", [D, v.numChannels, p, p]),
    // Added to f32 activations, so held in f32.
    positionEmbedding: tower("embeddings.position_embedding.weight", [P, D], "f32"),
    layers: Array.from({ length: v.numHiddenLayers }, (_, i) => {
      const l = `encoder.layers.${i}.`;
      return {
        layerNorm1: affine(`${l}layer_norm1`, [D]),
        qProj: dense(`${l}self_attn.q_proj`, [D, D]),
        kProj: dense(`${l}self_attn.k_proj`, [D, D]),
        vProj: dense(`${l}self_attn.v_proj`, [D, D]),
        outProj: dense(`${l}self_attn.out_proj`, [D, D]),
        layerNorm2: affine(`${l}layer_norm2`, [D]),
        fc1: dense(`${l}mlp.fc1`, [I, D]),
        fc2: dense(`${l}mlp.fc2`, [D, I]),
      };
    }),
    postLayernorm: affine("post_layernorm", [D]),
    mmSoftEmbNorm: projector("mm_soft_emb_norm.weight", [D]),
    // Stored [in, out] (a plain matmul, pitfall 12); transposed once at load for `linear`.
    mmInputProjection: projector("mm_input_projection_weight", [D, textHidden], "f32"),
  };
}

/** An nn.Linear or nn.LayerNorm of the tower. */
type Affine = { weight: WeightSpec; bias: WeightSpec };

/** The SigLIP tower's and the projector's tensors, named after transformers' modules. */
export type Gemma3VisionTable = {
  patchEmbedding: Affine;
  positionEmbedding: WeightSpec;
  layers: {
    layerNorm1: Affine;
    qProj: Affine;
    kProj: Affine;
    vProj: Affine;
    outProj: Affine;
    layerNorm2: Affine;
    fc1: Affine;
    fc2: Affine;
  }[];
  postLayernorm: Affine;
  mmSoftEmbNorm: WeightSpec;
  mmInputProjection: WeightSpec;
};
type Gemma3VisionWeights = Loaded<Gemma3VisionTable>;
type SiglipLayerWeights = Gemma3VisionWeights["layers"][number];

/** The vision table's rows, flat. */
export function gemma3VisionWeights(v: Gemma3VisionConfig, textHidden: number): WeightSpec[] {
  return tableRows(gemma3VisionTable(v, textHidden));
}

/** The SigLIP tower and the Gemma 3 projector: pixel values in, soft-token embeddings in the text width out. */
export class Gemma3VisionModel {
  readonly config: Gemma3VisionConfig;
  readonly backend: Backend;
  readonly textHidden: number;
  readonly #weights: ModelWeights<Gemma3VisionTable>;
  readonly #w: Gemma3VisionWeights;
  /** mm_input_projection_weight transposed to [textHidden, D] (nn.Linear layout), f32. */
  readonly #projection: Tensor;
  /** How mm_soft_emb_norm applies its weight: (1 + w) as transformers holds it, or w when stored as 1 + w. */
  readonly #softEmbNormMode: "one_plus" | "scale";

  /**
   * Takes ownership of `weights` (disposed with the model). `options.softEmbNormOffset`: mm_soft_emb_norm's
   * weight is stored as 1 + w (llama.cpp's mmproj files), so it scales as stored.
   */
  constructor(
    backend: Backend,
    config: Gemma3VisionConfig,
    weights: ModelWeights<Gemma3VisionTable>,
    textHidden: number,
    options: { softEmbNormOffset?: boolean } = {},
  ) {
    this.#softEmbNormMode = options.softEmbNormOffset ? "scale" : "one_plus";
    this.backend = backend;
    this.config = config;
    this.textHidden = textHidden;
    this.#weights = weights;
    this.#w = weights.tensors;
    const stored = this.#w.mmInputProjection.toArray();
    const D = config.hiddenSize, H = textHidden;
    const t = new Float32Array(D * H);
    for (let i = 0; i < D; i++) for (let o = 0; o < H; o++) t[o * D + i] = stored[i * H + o];
    this.#projection = Tensor.fromArray(backend, t, [H, D]);
  }

  /** Number of soft tokens each image becomes. */
  get tokensPerImage(): number {
    return this.config.mmTokensPerImage;
  }

  #attention(w: SiglipLayerWeights, x: Tensor, ws: Workspace): Tensor {
    const c = this.config, P = c.patchesPerSide ** 2;
    const proj = (l: { weight: Tensor; bias: Tensor }, name: string) =>
      linear(x, l.weight, l.bias, ws.get(name, [P, c.hiddenSize])).reshape([P, c.numAttentionHeads, c.headDim]);
    const q = proj(w.qProj, "q"), k = proj(w.kProj, "k"), v = proj(w.vProj, "v");
    // SiglipAttention: no mask (every patch sees every patch), scale head_dim^-0.5, softmax in f32.
    const attn = attentionPrefill(q, k, v, { scale: c.headDim ** -0.5, causal: false }, ws.get("attn", q.shape));
    return linear(attn.reshape([P, c.hiddenSize]), w.outProj.weight, w.outProj.bias, ws.get("o", [P, c.hiddenSize]));
  }

  /** SiglipEncoderLayer: pre-LayerNorm attention and MLP, each added to the residual h. */
  #layer(w: SiglipLayerWeights, h: Tensor, ws: Workspace): void {
    const c = this.config, P = c.patchesPerSide ** 2, eps = c.layerNormEps;
    const x = layerNorm(h, w.layerNorm1.weight, w.layerNorm1.bias, eps, ws.get("x", h.shape));
    add(h, this.#attention(w, x, ws), h);
    layerNorm(h, w.layerNorm2.weight, w.layerNorm2.bias, eps, x);
    const up = linear(x, w.fc1.weight, w.fc1.bias, ws.get("fc1", [P, c.intermediateSize]));
    geluTanh(up, up);
    add(h, linear(up, w.fc2.weight, w.fc2.bias, ws.get("fc2", h.shape)), h);
  }

  /**
   * SiglipVisionTransformer on one image: pixels f32 [1, C, S, S] → last_hidden_state f32 [patches, D]
   * written to `out`.
   */
  tower(pixels: Tensor, out: Tensor, ws: Workspace): Tensor {
    const c = this.config, D = c.hiddenSize, P = c.patchesPerSide ** 2;
    // SiglipVisionEmbeddings: Conv2d(kernel = stride = patch) as im2col + linear, then + position_embedding.
    const patches = patchExtract(pixels, c.patchSize, ws.get("patches", [1, P, c.numChannels * c.patchSize ** 2]));
    const embed = this.#w.patchEmbedding;
    linear(patches.reshape([P, patches.shape[2]]), embed.weight.reshape([D, patches.shape[2]]), embed.bias, out);
    add(out, this.#w.positionEmbedding, out);
    for (const layer of this.#w.layers) this.#layer(layer, out, ws);
    const post = this.#w.postLayernorm;
    return layerNorm(out, post.weight, post.bias, c.layerNormEps, out);
  }

  /**
   * Gemma3MultiModalProjector on one image's tower output [patches, D] → f32 [mmTokensPerImage, textHidden]
   * into `out`: AvgPool2d over the patch grid, Gemma3RMSNorm (1 + w; w as stored for an mmproj file) with the
   * vision eps, then the projection.
   */
  project(hidden: Tensor, out: Tensor, ws: Workspace): Tensor {
    const c = this.config, T = c.mmTokensPerImage, side = c.patchesPerSide;
    const pooled = avgPool2d(
      hidden.reshape([1, side * side, c.hiddenSize]),
      { gridH: side, gridW: side, kernel: c.poolKernel },
      ws.get("pooled", [1, T, c.hiddenSize]),
    ).reshape([T, c.hiddenSize]);
    rmsNorm(pooled, this.#w.mmSoftEmbNorm, { mode: this.#softEmbNormMode, eps: c.layerNormEps }, pooled);
    return linear(pooled, this.#projection, null, out);
  }

  /**
   * Image features for `count` images whose pixel values (f32 [count, C, S, S], as the Gemma 3 processor
   * makes them) are in `pixelValues`: f32 [count · mmTokensPerImage, textHidden], in image order. Images are
   * encoded one at a time, so scratch memory does not grow with their number. The caller disposes the result.
   */
  encode(pixelValues: Float32Array, count: number): Tensor {
    const c = this.config, S = c.imageSize, plane = c.numChannels * S * S;
    if (!Number.isInteger(count) || count < 1 || pixelValues.length !== count * plane) {
      throw new ShapeError(
        "encodeImages",
        `${pixelValues.length} pixel values for ${count} images of [${c.numChannels}, ${S}, ${S}] (${plane} each)`,
      );
    }
    const T = c.mmTokensPerImage;
    const features = Tensor.empty(this.backend, [count * T, this.textHidden]);
    try {
      using ws = new Workspace(this.backend);
      const pixels = ws.get("pixels", [1, c.numChannels, S, S]);
      const hidden = ws.get("hidden", [c.patchesPerSide ** 2, c.hiddenSize]);
      for (let n = 0; n < count; n++) {
        pixels.write(pixelValues.subarray(n * plane, (n + 1) * plane));
        this.project(this.tower(pixels, hidden, ws), features.rows(n * T, T), ws);
      }
      return features;
    } catch (e) {
      features.dispose();
      throw e;
    }
  }

  dispose(): void {
    this.#projection.dispose();
    this.#weights.dispose();
  }
}
