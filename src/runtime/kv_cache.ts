/**
 * The KV cache: allocated once per model for its context length. Each layer that owns a cache gets
 * f32 K and V of [capacity, kvHeads, headDim], position p in slot p % capacity — a ring buffer of the
 * window's size for sliding layers, the whole context for global ones.
 * @module
 */
import type { Backend } from "./backend.ts";
import { Tensor } from "./tensor.ts";

/** Cache geometry of one layer; `capacity` 0 means the layer keeps no cache of its own. */
export interface CacheSpec {
  capacity: number;
  kvHeads: number;
  headDim: number;
}

export interface LayerCache {
  k: Tensor;
  v: Tensor;
  capacity: number;
}

export class KvCache {
  readonly layers: readonly (LayerCache | null)[];
  /** Total bytes of K and V across layers. */
  readonly bytes: number;

  constructor(backend: Backend, specs: readonly CacheSpec[]) {
    const made: LayerCache[] = [];
    try {
      this.layers = specs.map((s) => {
        if (s.capacity === 0) return null;
        const shape = [s.capacity, s.kvHeads, s.headDim];
        const layer = { k: Tensor.zeros(backend, shape), v: Tensor.zeros(backend, shape), capacity: s.capacity };
        made.push(layer);
        return layer;
      });
    } catch (e) {
      for (const l of made) l.k.dispose(), l.v.dispose();
      throw e;
    }
    this.bytes = made.reduce((sum, l) => sum + l.k.byteLength + l.v.byteLength, 0);
  }

  layer(i: number): LayerCache {
    const l = this.layers[i];
    if (!l) throw new Error(`layer ${i} has no KV cache of its own`);
    return l;
  }

  dispose(): void {
    for (const l of this.layers) l?.k.dispose(), l?.v.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
