/**
 * The vision-encoder cache: soft tokens of an image (or a video frame) kept on the device by a hash of exactly
 * what the encoder reads (the preprocessed pixels and, for Gemma 4, the patch positions), so a conversation that
 * keeps sending the same image encodes it once. Bounded by bytes, least recently used out; an evicted entry's
 * tensor is disposed at once.
 *
 * A prompt's items are looked up together (`lookup`): hits are pinned for that prompt, the misses are encoded in
 * one batched pass by the caller, and only when the prefill has used them all does `commit` insert the new ones —
 * so an insertion can never evict a tensor the same prompt is still reading.
 * @module
 */
import { createHash } from "node:crypto";
import type { Tensor } from "./tensor.ts";

/** What the cache has done so far. */
export interface VisionCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  entries: number;
  /** Device bytes held by the entries. */
  bytes: number;
  maxBytes: number;
}

/** Default bound: 256 MiB of soft tokens (a Gemma 4 31B image at 280 tokens × 5376 × 4 B is ~6 MB). */
export const DEFAULT_VISION_CACHE_BYTES = 256 * 1024 * 1024;

/** sha-256 of the encoder's inputs for one item (all byte views hashed in order, with their lengths). */
export function visionKey(...parts: ArrayBufferView[]): string {
  const h = createHash("sha256");
  for (const p of parts) {
    const bytes = new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
    h.update(`${bytes.length}:`);
    h.update(bytes);
  }
  return h.digest("hex");
}

/** One prompt's soft tokens: per item, in order. `commit` must be called once the prefill is done with them. */
export interface VisionLookup {
  tensors: Tensor[];
  /** Inserts the newly encoded tensors (or disposes those the cache does not keep). Idempotent. */
  commit(): void;
}

export class VisionCache {
  readonly maxBytes: number;
  /** Insertion order is recency order: the first entry is the least recently used. */
  readonly #entries = new Map<string, Tensor>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(maxBytes = DEFAULT_VISION_CACHE_BYTES) {
    if (!(maxBytes >= 0) || !Number.isFinite(maxBytes)) throw new RangeError(`maxBytes=${maxBytes} must be >= 0`);
    this.maxBytes = maxBytes;
  }

  stats(): VisionCacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      entries: this.#entries.size,
      bytes: this.#bytes,
      maxBytes: this.maxBytes,
    };
  }

  /**
   * The soft tokens of items `keys` (in order): cached ones as they are, the others from `encode(missing)`, which
   * gets the indices of the misses (each distinct key once) and returns one tensor per index, in that order.
   */
  lookup(keys: readonly string[], encode: (missing: number[]) => Tensor[]): VisionLookup {
    const found = new Map<string, Tensor>();
    const missing: number[] = [];
    keys.forEach((key, i) => {
      if (found.has(key) || missing.some((m) => keys[m] === key)) return;
      const t = this.#entries.get(key);
      if (t) {
        // Refresh recency.
        this.#entries.delete(key);
        this.#entries.set(key, t);
        found.set(key, t);
        this.#hits++;
      } else {
        missing.push(i);
        this.#misses++;
      }
    });
    const fresh = missing.length > 0 ? encode(missing) : [];
    if (fresh.length !== missing.length) {
      for (const t of fresh) t.dispose();
      throw new Error(`the encoder returned ${fresh.length} tensors for ${missing.length} items`);
    }
    const added = new Map(missing.map((m, j) => [keys[m], fresh[j]]));
    let committed = false;
    return {
      tensors: keys.map((k) => found.get(k) ?? added.get(k)!),
      commit: () => {
        if (committed) return;
        committed = true;
        for (const [key, t] of added) this.#insert(key, t);
      },
    };
  }

  #insert(key: string, t: Tensor): void {
    if (t.byteLength > this.maxBytes || this.#entries.has(key)) {
      t.dispose();
      return;
    }
    while (this.#bytes + t.byteLength > this.maxBytes) {
      const [oldKey, old] = this.#entries.entries().next().value!;
      this.#entries.delete(oldKey);
      this.#bytes -= old.byteLength;
      old.dispose();
      this.#evictions++;
    }
    this.#entries.set(key, t);
    this.#bytes += t.byteLength;
  }

  /** Drops every entry (their device memory is freed); the counters stay. */
  clear(): void {
    for (const t of this.#entries.values()) t.dispose();
    this.#entries.clear();
    this.#bytes = 0;
  }

  dispose(): void {
    this.clear();
  }
}
