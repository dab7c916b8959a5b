/**
 * The KV cache: allocated once per model for its context length. Each layer that owns a cache gets
 * f32 K and V of [capacity, kvHeads, headDim], position p in slot p % capacity — a ring buffer of the
 * window's size for sliding layers, the whole context for global ones. Geometry is per layer (Gemma 4's
 * full layers have another head dim and KV-head count than its sliding ones). A layer that shares
 * another's cache (Gemma 4's KV-shared layers) allocates nothing and reads its source's buffers.
 * @module
 */
import type { Backend } from "./backend.ts";
import { Tensor } from "./tensor.ts";

/**
 * Cache geometry of one layer; `capacity` 0 means the layer keeps no cache. `sharesWith` names an earlier
 * layer whose cache this one reads instead of owning one (the other fields are then ignored).
 */
export interface CacheSpec {
  capacity: number;
  kvHeads: number;
  headDim: number;
  sharesWith?: number;
}

export interface LayerCache {
  k: Tensor;
  v: Tensor;
  capacity: number;
}

export class KvCache {
  readonly layers: readonly (LayerCache | null)[];
  /** Total bytes of K and V across layers (shared caches counted once). */
  readonly bytes: number;
  readonly #owned: LayerCache[] = [];

  constructor(backend: Backend, specs: readonly CacheSpec[]) {
    const layers: (LayerCache | null)[] = [];
    try {
      for (const [i, s] of specs.entries()) {
        if (s.sharesWith !== undefined) {
          const source = layers[s.sharesWith];
          if (!(s.sharesWith < i) || !source) {
            throw new RangeError(`layer ${i} shares the cache of layer ${s.sharesWith}, which has none before it`);
          }
          layers.push(source);
          continue;
        }
        if (s.capacity === 0) {
          layers.push(null);
          continue;
        }
        const shape = [s.capacity, s.kvHeads, s.headDim];
        const k = Tensor.zeros(backend, shape);
        let v: Tensor;
        try {
          v = Tensor.zeros(backend, shape);
        } catch (e) {
          k.dispose();
          throw e;
        }
        const layer = { k, v, capacity: s.capacity };
        this.#owned.push(layer);
        layers.push(layer);
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
    this.layers = layers;
    this.bytes = this.#owned.reduce((sum, l) => sum + l.k.byteLength + l.v.byteLength, 0);
  }

  /** Bytes a cache of these specs allocates, without allocating it (f32 K and V). */
  static bytesFor(specs: readonly CacheSpec[]): number {
    return specs.reduce((n, s) => s.sharesWith === undefined ? n + 2 * 4 * s.capacity * s.kvHeads * s.headDim : n, 0);
  }

  /** Layer i's cache (a shared layer gets its source's). */
  layer(i: number): LayerCache {
    const l = this.layers[i];
    if (!l) throw new Error(`layer ${i} has no KV cache`);
    return l;
  }

  dispose(): void {
    for (const l of this.#owned) l.k.dispose(), l.v.dispose();
    this.#owned.length = 0;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
