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
import { FLOAT_DTYPES } from "../../runtime/dtype.ts";
import { Tensor } from "../../runtime/tensor.ts";
import { Workspace } from "../../runtime/workspace.ts";
import { add, attentionPrefill, avgPool2d, geluTanh, layerNorm, linear, patchExtract, rmsNorm } from "../../ops/mod.ts";
import { forLayers, type WeightSpec } from "../common/weights.ts";
import type { Gemma3VisionConfig } from "./vision_config.ts";

/** Tower tensors under `model.vision_tower.vision_model.` (transformers 5 in memory). */
const TOWER = "model.vision_tower.vision_model.";
/** Projector tensors under `model.multi_modal_projector.`. */
const PROJECTOR = "model.multi_modal_projector.";

/**
 * The vision weight table. Names as transformers 5 holds them in memory; the aliases are what checkpoints
 * store: Google's converter writes `vision_tower.vision_model.…` and `multi_modal_projector.…`, and
 * transformers 5.17's save_pretrained writes `vision_tower.…` (no `vision_model`).
 */
export function gemma3VisionWeights(v: Gemma3VisionConfig, textHidden: number): WeightSpec[] {
  const D = v.hiddenSize, I = v.intermediateSize, p = v.patchSize, P = v.patchesPerSide ** 2;
  const tower = (name: string, shape: number[], loadAs?: "f32"): WeightSpec => ({
    name: TOWER + name,
    shape,
    dtypes: FLOAT_DTYPES,
    aliases: [`vision_tower.vision_model.${name}`, `vision_tower.${name}`, `model.vision_tower.${name}`],
    ...(loadAs ? { loadAs } : {}),
  });
  const projector = (name: string, shape: number[], loadAs?: "f32"): WeightSpec => ({
    name: PROJECTOR + name,
    shape,
    dtypes: FLOAT_DTYPES,
    aliases: [`multi_modal_projector.${name}`],
    ...(loadAs ? { loadAs } : {}),
  });
  return [
    tower("embeddings.patch_embedding.weight", [D, v.numChannels, p, p]),
    tower("embeddings.patch_embedding.bias", [D]),
    // Added to f32 activations, so held in f32.
    tower("embeddings.position_embedding.weight", [P, D], "f32"),
    ...forLayers(v.numHiddenLayers, [
      tower("encoder.layers.{i}.layer_norm1.weight", [D]),
      tower("encoder.layers.{i}.layer_norm1.bias", [D]),
      ...["q", "k", "v", "out"].flatMap((n) => [
        tower(`encoder.layers.{i}.self_attn.${n}_proj.weight`, [D, D]),
        tower(`encoder.layers.{i}.self_attn.${n}_proj.bias`, [D]),
      ]),
      tower("encoder.layers.{i}.layer_norm2.weight", [D]),
      tower("encoder.layers.{i}.layer_norm2.bias", [D]),
      tower("encoder.layers.{i}.mlp.fc1.weight", [I, D]),
      tower("encoder.layers.{i}.mlp.fc1.bias", [I]),
      tower("encoder.layers.{i}.mlp.fc2.weight", [D, I]),
      tower("encoder.layers.{i}.mlp.fc2.bias", [D]),
    ]),
    tower("post_layernorm.weight", [D]),
    tower("post_layernorm.bias", [D]),
    projector("mm_soft_emb_norm.weight", [D]),
    // Stored [in, out] (a plain matmul, pitfall 12); transposed once at load for `linear`.
    projector("mm_input_projection_weight", [D, textHidden], "f32"),
  ];
}

/** Weights by their name under the tower (`embeddings.…`, `encoder.layers.0.…`) or projector (`mm_…`). */
export type VisionWeightLookup = (name: string) => Tensor;

/** The SigLIP tower and the Gemma 3 projector: pixel values in, soft-token embeddings in the text width out. */
export class Gemma3VisionModel {
  readonly config: Gemma3VisionConfig;
  readonly backend: Backend;
  readonly textHidden: number;
  readonly #w: VisionWeightLookup;
  /** mm_input_projection_weight transposed to [textHidden, D] (nn.Linear layout), f32. */
  readonly #projection: Tensor;

  constructor(backend: Backend, config: Gemma3VisionConfig, weights: (name: string) => Tensor, textHidden: number) {
    this.backend = backend;
    this.config = config;
    this.textHidden = textHidden;
    this.#w = (name) => weights(name.startsWith("mm_") ? PROJECTOR + name : TOWER + name);
    const stored = this.#w("mm_input_projection_weight").toArray();
    const D = config.hiddenSize, H = textHidden;
    const t = new Float32Array(D * H);
    for (let i = 0; i < D; i++) for (let o = 0; o < H; o++) t[o * D + i] = stored[i * H + o];
    this.#projection = Tensor.fromArray(backend, t, [H, D]);
  }

  /** Number of soft tokens each image becomes. */
  get tokensPerImage(): number {
    return this.config.mmTokensPerImage;
  }

  #attention(i: number, x: Tensor, ws: Workspace): Tensor {
    const c = this.config, P = c.patchesPerSide ** 2, p = `encoder.layers.${i}.self_attn.`;
    const proj = (n: string, name: string) =>
      linear(x, this.#w(`${p}${n}_proj.weight`), this.#w(`${p}${n}_proj.bias`), ws.get(name, [P, c.hiddenSize]))
        .reshape([P, c.numAttentionHeads, c.headDim]);
    const q = proj("q", "q"), k = proj("k", "k"), v = proj("v", "v");
    // SiglipAttention: no mask (every patch sees every patch), scale head_dim^-0.5, softmax in f32.
    const attn = attentionPrefill(q, k, v, { scale: c.headDim ** -0.5, causal: false }, ws.get("attn", q.shape));
    return linear(
      attn.reshape([P, c.hiddenSize]),
      this.#w(`${p}out_proj.weight`),
      this.#w(`${p}out_proj.bias`),
      ws.get("o", [P, c.hiddenSize]),
    );
  }

  /** SiglipEncoderLayer: pre-LayerNorm attention and MLP, each added to the residual h. */
  #layer(i: number, h: Tensor, ws: Workspace): void {
    const c = this.config, P = c.patchesPerSide ** 2, p = `encoder.layers.${i}.`, eps = c.layerNormEps;
    const x = layerNorm(
      h,
      this.#w(`${p}layer_norm1.weight`),
      this.#w(`${p}layer_norm1.bias`),
      eps,
      ws.get("x", h.shape),
    );
    add(h, this.#attention(i, x, ws), h);
    layerNorm(h, this.#w(`${p}layer_norm2.weight`), this.#w(`${p}layer_norm2.bias`), eps, x);
    const up = linear(
      x,
      this.#w(`${p}mlp.fc1.weight`),
      this.#w(`${p}mlp.fc1.bias`),
      ws.get("fc1", [P, c.intermediateSize]),
    );
    geluTanh(up, up);
    add(h, linear(up, this.#w(`${p}mlp.fc2.weight`), this.#w(`${p}mlp.fc2.bias`), ws.get("fc2", h.shape)), h);
  }

  /**
   * SiglipVisionTransformer on one image: pixels f32 [1, C, S, S] → last_hidden_state f32 [patches, D]
   * written to `out`.
   */
  tower(pixels: Tensor, out: Tensor, ws: Workspace): Tensor {
    const c = this.config, D = c.hiddenSize, P = c.patchesPerSide ** 2;
    // SiglipVisionEmbeddings: Conv2d(kernel = stride = patch) as im2col + linear, then + position_embedding.
    const patches = patchExtract(pixels, c.patchSize, ws.get("patches", [1, P, c.numChannels * c.patchSize ** 2]));
    const weight = this.#w("embeddings.patch_embedding.weight");
    linear(
      patches.reshape([P, patches.shape[2]]),
      weight.reshape([D, patches.shape[2]]),
      this.#w("embeddings.patch_embedding.bias"),
      out,
    );
    add(out, this.#w("embeddings.position_embedding.weight"), out);
    for (let i = 0; i < c.numHiddenLayers; i++) this.#layer(i, out, ws);
    return layerNorm(out, this.#w("post_layernorm.weight"), this.#w("post_layernorm.bias"), c.layerNormEps, out);
  }

  /**
   * Gemma3MultiModalProjector on one image's tower output [patches, D] → f32 [mmTokensPerImage, textHidden]
   * into `out`: AvgPool2d over the patch grid, Gemma3RMSNorm (1 + w) with the vision eps, then the projection.
   */
  project(hidden: Tensor, out: Tensor, ws: Workspace): Tensor {
    const c = this.config, T = c.mmTokensPerImage, side = c.patchesPerSide;
    const pooled = avgPool2d(
      hidden.reshape([1, side * side, c.hiddenSize]),
      { gridH: side, gridW: side, kernel: c.poolKernel },
      ws.get("pooled", [1, T, c.hiddenSize]),
    ).reshape([T, c.hiddenSize]);
    rmsNorm(pooled, this.#w("mm_soft_emb_norm.weight"), { mode: "one_plus", eps: c.layerNormEps }, pooled);
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
  }
}
