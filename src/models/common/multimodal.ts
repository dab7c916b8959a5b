/**
 * What every multimodal model shares: a text model and a vision tower, a vision-encoder cache, and the
 * decode step, which is the text model's (media only enter through prefill).
 * @module
 */
import type { Backend } from "../../runtime/backend.ts";
import type { Tensor } from "../../runtime/tensor.ts";
import type { Workspace } from "../../runtime/workspace.ts";
import type { KvCache } from "../../runtime/kv_cache.ts";
import { VisionCache } from "../../runtime/vision_cache.ts";
import type { LoadWeightsOptions } from "./weights.ts";
import type { WeightSource } from "../../formats/weight_source.ts";
import { buildOwning, ModelWeights, type WeightTree } from "./weight_table.ts";

/** The text side as a multimodal model uses it. */
export interface TextDecoder {
  readonly backend: Backend;
  readonly maxContext: number;
  readonly vocabSize: number;
  readonly config: unknown;
  readonly cache: KvCache;
  decodeStep(token: Tensor, position: Tensor, ws: Workspace, logits: Tensor): Tensor;
  dispose(): void;
}

/** The vision side: its parsed config and its weights' lifetime. */
export interface VisionTower {
  readonly config: unknown;
  dispose(): void;
}

export abstract class MultimodalModel<T extends TextDecoder, V extends VisionTower> {
  readonly text: T;
  readonly vision: V;
  /** Soft tokens by content hash of the preprocessed pixels: a multi-turn chat about one image encodes it once. */
  readonly visionCache: VisionCache;

  constructor(text: T, vision: V, cache: VisionCache = new VisionCache()) {
    this.text = text;
    this.vision = vision;
    this.visionCache = cache;
  }

  get backend(): Backend {
    return this.text.backend;
  }
  get maxContext(): number {
    return this.text.maxContext;
  }
  get vocabSize(): number {
    return this.text.vocabSize;
  }
  get config(): T["config"] {
    return this.text.config;
  }
  get visionConfig(): V["config"] {
    return this.vision.config;
  }

  decodeStep(token: Tensor, position: Tensor, ws: Workspace, logits: Tensor): Tensor {
    return this.text.decodeStep(token, position, ws, logits);
  }

  /** The KV cache (the text model's): media only enter it through prefill. */
  get cache(): KvCache {
    return this.text.cache;
  }

  /** A prefill from position `start` (0: the whole prompt) with the prompt's media, in the family's type. */
  abstract prefill(ids: ArrayLike<number>, media?: unknown, logitsRows?: "last" | "all", start?: number): Tensor;

  /** CausalLM: the prompt from `start` (the cache holds the positions before it), logits of its last position. */
  prefillFrom(ids: ArrayLike<number>, start: number, media?: unknown): Tensor {
    return this.prefill(ids, media, "last", start);
  }

  dispose(): void {
    this.visionCache.dispose();
    this.text.dispose();
    this.vision.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * What both multimodal loaders share: the text and vision weight tables checked together (one error lists every
 * problem), then the text model built (`buildText`) and the vision tower over its weights; a failing tower frees
 * the text model.
 */
export function buildTextAndVision<T extends TextDecoder, V extends VisionTower, VT extends WeightTree>(
  backend: Backend,
  ckpt: WeightSource,
  tables: { text: WeightTree; vision: VT },
  options: LoadWeightsOptions,
  buildText: () => T,
  buildVision: (weights: ModelWeights<VT>) => V,
): { text: T; vision: V } {
  ModelWeights.check(ckpt, tables.text, tables.vision);
  const text = buildText();
  try {
    const vision = buildOwning(ModelWeights.load(backend, ckpt, tables.vision, options), buildVision);
    return { text, vision };
  } catch (e) {
    text.dispose();
    throw e;
  }
}
