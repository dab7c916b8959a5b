/**
 * Prefix reuse: what the KV cache holds (the token ids of positions 0.., and a content key per media span), and
 * how much of a new prompt it already covers. A follow-up turn's prompt repeats the conversation so far, so only
 * the tokens from the first difference on are prefilled.
 * @module
 */

/** A run of media placeholder tokens [start, end) whose soft tokens are `key`'s content (a hash of the pixels). */
export interface MediaSpan {
  start: number;
  end: number;
  key: string;
}

/** What a model's KV cache holds. */
export interface CachedPrompt {
  /** Ids of positions 0..ids.length-1 as they were computed. */
  ids: readonly number[];
  /** The media spans among them. */
  spans: readonly MediaSpan[];
  /** Positions 0..written-1 may have been written (ring caches lose what a later position overwrote). */
  written: number;
}

/**
 * Media spans of a prompt: each maximal run of a token in `tokenIds` is one item, the runs in order keyed by
 * `keys` (one per run; fewer keys than runs keys the rest by `fallback`, which must change with any media).
 */
export function mediaSpansOf(
  ids: readonly number[],
  tokenIds: readonly number[],
  keys: readonly string[],
  fallback: string,
): MediaSpan[] {
  const spans: MediaSpan[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (!tokenIds.includes(ids[i])) continue;
    let end = i + 1;
    while (end < ids.length && ids[end] === ids[i]) end++;
    spans.push({ start: i, end, key: keys[spans.length] ?? `${fallback}:${spans.length}` });
    i = end - 1;
  }
  return spans;
}

/**
 * How many leading positions of `ids` the cache can keep: up to the first differing id, cut back to the start
 * of a media span whose content differs or that the cut would split (a span attends to itself both ways), and
 * to at most ids.length - 1 (the last token is always run: its logits start the answer). 0 when the rings of
 * sliding layers no longer hold the window before that point (`rollback`, see KvCache.rollback).
 */
export function reusablePrefix(
  cached: CachedPrompt | undefined,
  ids: readonly number[],
  spans: readonly MediaSpan[],
  rollback: number,
): number {
  if (!cached) return 0;
  const n = Math.min(cached.ids.length, ids.length - 1);
  let p = 0;
  while (p < n && cached.ids[p] === ids[p]) p++;
  for (const s of spans) {
    if (s.start >= p) break;
    const same = cached.spans.some((c) => c.start === s.start && c.end === s.end && c.key === s.key);
    if (!same || s.end > p) {
      p = s.start;
      break;
    }
  }
  // A cached span the new prompt cuts (its ids match up to p but the new prompt has no span there) is cut back too.
  for (const c of cached.spans) if (c.start < p && c.end > p) p = c.start;
  return cached.written - p <= rollback ? p : 0;
}
