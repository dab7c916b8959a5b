/**
 * The KV-cache slots of a batched model and the shared prefix cache over them: slot 0 is the model's own cache,
 * the others are allocated at load (as many as fit in device memory). Each free slot remembers what its cache holds; a new sequence takes the free
 * slot with the longest reusable prefix of its prompt, or — when a busy slot holds a longer one — the least
 * recently used free slot with that prefix copied in (copyPrefix respects the rings' rollback bound, as
 * single-model reuse does).
 * @module
 */
import { NativeError } from "../errors.ts";
import type { KvCache } from "../runtime/kv_cache.ts";
import type { BatchSequence } from "./batch_sequence.ts";
import { type CachedPrompt, reusablePrefix } from "./prefix.ts";

export class KvSlots {
  readonly count: number;
  readonly bytesPerSlot: number;
  readonly #caches: KvCache[];
  readonly #contents: (CachedPrompt | undefined)[];
  readonly #holders: (BatchSequence | undefined)[];
  readonly #lastUsed: number[];
  #clock = 0;

  constructor(lm: { cache: KvCache; createCache(): KvCache }, count: number) {
    this.#caches = [lm.cache];
    try {
      while (this.#caches.length < count) this.#caches.push(lm.createCache());
    } catch (e) {
      // Out of device memory: as many slots as fit (requests beyond them wait); anything else is a failure.
      if (!(e instanceof NativeError && e.statusName === "out_of_memory")) {
        for (const c of this.#caches.slice(1)) c.dispose();
        throw e;
      }
    }
    this.count = this.#caches.length;
    this.bytesPerSlot = lm.cache.bytes;
    this.#contents = Array(this.count).fill(undefined);
    this.#holders = Array(this.count).fill(undefined);
    this.#lastUsed = Array(this.count).fill(0);
  }

  hasFree(): boolean {
    return this.#holders.some((h) => h === undefined);
  }

  cache(slot: number): KvCache {
    return this.#caches[slot];
  }

  /** What a free slot's cache holds (undefined: unknown, or the slot is busy). */
  contents(slot: number): CachedPrompt | undefined {
    return this.#contents[slot];
  }

  /** Records what a free slot's cache holds (a loaded session); it becomes the most recently used. */
  setContents(slot: number, contents: CachedPrompt | undefined): void {
    this.#contents[slot] = contents;
    this.#lastUsed[slot] = ++this.#clock;
  }

  /** The free slot used last (whose contents a session saves), or 0. */
  mostRecent(): number {
    let best = 0;
    this.#lastUsed.forEach((t, i) => {
      if (this.#holders[i] === undefined && t > this.#lastUsed[best]) best = i;
    });
    return best;
  }

  /** The free slot whose cached ids share the longest prefix with `ids` (ties: the one used last), or mostRecent(). */
  closest(ids: readonly number[]): number {
    let best = this.mostRecent(), bestLength = -1;
    this.#contents.forEach((c, i) => {
      if (!c || this.#holders[i] !== undefined) return;
      let n = 0;
      while (n < c.ids.length && n < ids.length && c.ids[n] === ids[n]) n++;
      if (n > bestLength || (n === bestLength && this.#lastUsed[i] > this.#lastUsed[best])) [best, bestLength] = [i, n];
    });
    return best;
  }

  /** Forgets what every free slot holds. */
  forget(): void {
    this.#contents.fill(undefined);
  }

  /**
   * Gives `s` a free slot (there must be one) and the number of its prompt's positions that slot's cache holds
   * now: a free slot's own prefix, or one copied from a busy slot (`active`) that holds a longer one.
   */
  take(s: BatchSequence, active: readonly BatchSequence[]): { slot: number; start: number } {
    const free = this.#holders.flatMap((h, i) => (h === undefined ? [i] : []));
    const rollback = this.#caches[0].rollback;
    let best = { slot: -1, start: 0 };
    let copy: { from: number; start: number; written: number } | undefined;
    if (s.reuse) {
      for (const i of free) {
        const p = reusablePrefix(this.#contents[i], s.promptIds, s.spans, rollback);
        if (p > best.start) best = { slot: i, start: p };
      }
      for (const a of active) {
        const live = liveContents(a);
        const p = reusablePrefix(live, s.promptIds, s.spans, rollback);
        if (p > Math.max(best.start, copy?.start ?? 0)) copy = { from: a.slot!, start: p, written: live.written };
      }
    }
    let slot = best.slot, start = best.start;
    if (copy) {
      slot = this.#leastRecent(free);
      this.#caches[slot].copyPrefix(this.#caches[copy.from], copy.start, copy.written);
      start = copy.start;
    } else if (slot < 0) slot = this.#leastRecent(free);
    this.#holders[slot] = s;
    this.#contents[slot] = undefined; // overwritten from here on
    return { slot, start };
  }

  /** Frees a slot; `contents` is what its cache holds now (undefined: unknown). */
  release(slot: number, contents: CachedPrompt | undefined): void {
    this.#holders[slot] = undefined;
    this.setContents(slot, contents);
  }

  /** An empty free slot first, else the one used longest ago. */
  #leastRecent(free: readonly number[]): number {
    const empty = free.find((i) => this.#contents[i] === undefined);
    if (empty !== undefined) return empty;
    return free.reduce((a, b) => (this.#lastUsed[b] < this.#lastUsed[a] ? b : a));
  }

  /** Frees the caches this object allocated (slot 0 is the model's). */
  dispose(): void {
    for (const c of this.#caches.splice(1)) c.dispose();
  }
}

/** What a busy slot's cache holds now: the prompt so far, or the prompt and the ids sampled before the last. */
function liveContents(a: BatchSequence): CachedPrompt {
  const T = a.promptIds.length;
  const ids = a.phase === "decode"
    ? [...a.promptIds, ...a.produced].slice(0, T + a.produced.length - 1)
    : a.promptIds.slice(0, a.prefilled);
  const written = a.phase === "decode" ? T + a.produced.length : a.prefilled;
  return { ids, spans: a.spans.filter((s) => s.end <= ids.length), written };
}
