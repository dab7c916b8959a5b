/**
 * Encoding long texts piece by piece between special tokens, with the pieces remembered.
 *
 * A conversation's prompt grows by a turn at a time, and tokenizers.js takes time superlinear in the text (an
 * 8,000-token prompt: ~380 ms, four times 2,000 tokens: ~200 ms), so re-encoding the whole history each turn made
 * the time to first token grow with the history even when the KV cache was reused. The tokenizer splits the text
 * at every added token before the model sees it, and Gemma's special tokens strip nothing around them (no
 * lstrip/rstrip) and are not normalized, so the ids of the text are exactly the ids of its pieces between special
 * tokens, with each special token's own id in between. Pieces seen before (the earlier turns) come from the cache.
 * @module
 */

/** Pieces shorter than this are encoded each time (the cache would cost more than it saves). */
const MIN_CACHED_CHARS = 256;
/** Characters of cached piece text kept, least recently used out: a few long conversations. */
const MAX_CACHED_CHARS = 8 << 20;

export class SegmentEncoder {
  readonly #split: RegExp | undefined;
  readonly #ids: ReadonlyMap<string, number>;
  readonly #encodePiece: (text: string) => number[];
  readonly #cache = new Map<string, readonly number[]>();
  #cachedChars = 0;

  /**
   * `specials`: the special tokens' texts and ids (those the tokenizer matches before normalizing, stripping
   * nothing around them); `encodePiece`: the tokenizer's own encoding of a text without special tokens added.
   */
  constructor(specials: ReadonlyMap<string, number>, encodePiece: (text: string) => number[]) {
    this.#ids = specials;
    this.#encodePiece = encodePiece;
    // Longest first, as the tokenizer's matcher prefers the longest token at a position.
    const alternatives = [...specials.keys()].filter((s) => s.length > 0).sort((a, b) => b.length - a.length)
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    this.#split = alternatives.length ? new RegExp(`(${alternatives.join("|")})`) : undefined;
  }

  /** The ids of `text`, encoded without the post-processor's special tokens (BOS/EOS). */
  encode(text: string): number[] {
    if (!this.#split) return this.#encodePiece(text);
    const out: number[] = [];
    // split() with a capturing group alternates pieces (even indices) and special tokens (odd indices).
    text.split(this.#split).forEach((part, i) => {
      if (i % 2 === 1) out.push(this.#ids.get(part)!);
      else if (part) { for (const id of this.#piece(part)) out.push(id); }
    });
    return out;
  }

  #piece(text: string): readonly number[] {
    if (text.length < MIN_CACHED_CHARS) return this.#encodePiece(text);
    const hit = this.#cache.get(text);
    if (hit) {
      this.#cache.delete(text); // re-inserted: most recently used last
      this.#cache.set(text, hit);
      return hit;
    }
    const ids = this.#encodePiece(text);
    this.#cache.set(text, ids);
    this.#cachedChars += text.length;
    for (const [key] of this.#cache) {
      if (this.#cachedChars <= MAX_CACHED_CHARS) break;
      this.#cache.delete(key);
      this.#cachedChars -= key.length;
    }
    return ids;
  }
}
