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
 * Rows a sliding layer's ring keeps beyond its window. A follow-up request keeps the cached positions before the
 * first token it changes; the ring must still hold the window before that point, so it may not have been written
 * more than `capacity - window + 1` positions past it (decode chunks run past a stop string; an answer
 * re-tokenizes a little differently in the next turn's prompt). Costs RING_SLACK rows per sliding layer.
 */
export const RING_SLACK = 64;

/**
 * Cache geometry of one layer; `capacity` 0 means the layer keeps no cache. `sharesWith` names an earlier
 * layer whose cache this one reads instead of owning one (the other fields are then ignored). `window`: the
 * layer's sliding window when its cache is a ring (capacity below the context), for prefix reuse.
 */
export interface CacheSpec {
  capacity: number;
  kvHeads: number;
  headDim: number;
  sharesWith?: number;
  window?: number;
}

export interface LayerCache {
  k: Tensor;
  v: Tensor;
  capacity: number;
  /** The sliding window when this cache is a ring (capacity below the context). */
  window?: number;
}

/** The capacity of a layer's cache: a ring of the window (plus RING_SLACK) for sliding layers, else the context. */
export function cacheCapacity(window: number, maxContext: number): number {
  return window > 0 ? Math.min(window + RING_SLACK, maxContext) : maxContext;
}

/** A CacheSpec for an owning layer of sliding window `window` (0: global) in a context of `maxContext`. */
export function layerCacheSpec(window: number, maxContext: number, kvHeads: number, headDim: number): CacheSpec {
  const capacity = cacheCapacity(window, maxContext);
  return { capacity, kvHeads, headDim, ...(window > 0 && capacity < maxContext ? { window } : {}) };
}

export class KvCache {
  readonly layers: readonly (LayerCache | null)[];
  /** Total bytes of K and V across layers (shared caches counted once). */
  readonly bytes: number;
  /**
   * How many positions past a reuse point the cache may have been written while every ring still holds the
   * window before that point (Infinity without rings). See RING_SLACK.
   */
  readonly rollback: number;
  readonly #owned: LayerCache[] = [];

  constructor(backend: Backend, specs: readonly CacheSpec[]) {
    const layers: (LayerCache | null)[] = [];
    this.rollback = specs.reduce(
      (r, s) => s.sharesWith === undefined && s.window ? Math.min(r, s.capacity - s.window + 1) : r,
      Infinity,
    );
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
        const layer = { k, v, capacity: s.capacity, ...(s.window ? { window: s.window } : {}) };
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

  /** The owned layers' geometry, `capacity x kvHeads x headDim` each: what a saved cache must match. */
  get geometry(): string[] {
    return this.#owned.map((l) => l.k.shape.join("x"));
  }

  /**
   * K then V of every owned layer, the slots positions 0..positions-1 occupy (all of a ring's once it wrapped), as
   * raw f32 bytes: a session file's cache.
   */
  read(positions: number): Uint8Array[] {
    return this.#owned.flatMap((l) => {
      const n = Math.min(positions, l.capacity);
      return [l.k.rows(0, n).toBytes(), l.v.rows(0, n).toBytes()];
    });
  }

  /** Writes back what read(positions) returned (same geometry; the caller checks the sizes first). */
  load(positions: number, data: readonly Uint8Array[]): void {
    if (data.length !== 2 * this.#owned.length) {
      throw new RangeError(`${data.length} blocks for ${this.#owned.length} layers`);
    }
    this.#owned.forEach((l, i) => {
      const n = Math.min(positions, l.capacity);
      for (const [j, t] of [l.k, l.v].entries()) {
        const rows = t.rows(0, n), bytes = data[2 * i + j];
        if (bytes.byteLength !== rows.byteLength) {
          throw new RangeError(`block ${2 * i + j}: ${bytes.byteLength} bytes, expected ${rows.byteLength}`);
        }
        t.backend.upload(rows.pointer, bytes);
      }
    });
  }

  /**
   * Makes this cache hold what `src` (same geometry) holds for positions 0..prefix-1, when `src` was written up to
   * `written` (>= prefix): a full layer's first `prefix` rows, a ring's every slot written (the window before
   * `prefix` lies among them while `written - prefix` is within `rollback`). Device to device, in stream order.
   */
  copyPrefix(src: KvCache, prefix: number, written: number): void {
    const from = src.#owned;
    if (from.length !== this.#owned.length || src.geometry.join() !== this.geometry.join()) {
      throw new RangeError(`cache geometry ${src.geometry} differs from ${this.geometry}`);
    }
    if (!Number.isInteger(prefix) || prefix < 1 || !(written >= prefix)) {
      throw new RangeError(`prefix=${prefix} must be an integer in [1, written=${written}]`);
    }
    this.#owned.forEach((l, i) => {
      const n = Math.min(l.window ? written : prefix, l.capacity);
      const bytes = (l.k.byteLength / l.capacity) * n;
      l.k.backend.copy(l.k.pointer, from[i].k.pointer, bytes);
      l.v.backend.copy(l.v.pointer, from[i].v.pointer, bytes);
    });
  }

  dispose(): void {
    for (const l of this.#owned) l.k.dispose(), l.v.dispose();
    this.#owned.length = 0;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
