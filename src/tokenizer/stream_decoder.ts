/**
 * Streaming detokenization: text out as tokens come in, never half a character, and the pieces joined are
 * exactly `tokenizer.decode(allIds)`.
 *
 * Why text cannot simply be decoded token by token:
 * - A character missing from the vocabulary arrives as byte tokens (`<0xE2><0x82><0xAC>` = "€"), and the
 *   ByteFallback decoder decodes a whole *run* of byte tokens at once: an invalid run becomes one U+FFFD per
 *   byte, even its valid start. So nothing of a run can be emitted until a non-byte token ends it.
 * - Special tokens skipped by `skipSpecialTokens`, and ids the vocabulary lacks, vanish before the decoder
 *   sees the ids, so a byte run continues across them.
 * - Decoders such as Strip or Metaspace treat the first token of a text differently, so each step decodes
 *   the new ids after one already-emitted token and keeps only what follows that token's text (the
 *   prefix/offset scheme of transformers' TextStreamer and tokenizers' DecodeStream).
 * Each step decodes only the held ids plus one, so a token costs O(1) amortised.
 * @module
 */
import { GemmakitError } from "../errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** What a StreamDecoder needs of a tokenizer. */
export type StreamDecodable = Pick<Tokenizer, "decode" | "idToToken" | "isByteFallbackId" | "isSpecialId">;

/** Options of {@link StreamDecoder}. */
export interface StreamDecoderOptions {
  /** Leave out special tokens, as `decode(ids, {skipSpecialTokens: true})` does. Default false. */
  skipSpecialTokens?: boolean;
}

/**
 * A text that ends in U+FFFD may be a byte-level character cut in two (GPT-2 style decoders); such text is
 * held for at most this many tokens (a UTF-8 character has at most 4 bytes) before it is let through.
 */
const MAX_REPLACEMENT_HOLD = 8;

/**
 * Turns generated token ids into text as they arrive.
 *
 * @example
 * ```ts
 * const stream = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
 * for (const id of generatedIds) Deno.stdout.writeSync(new TextEncoder().encode(stream.push(id)));
 * console.log(stream.flush());
 * ```
 */
export class StreamDecoder {
  readonly #tokenizer: StreamDecodable;
  readonly #skipSpecial: boolean;
  /** The last emitted id, decoded again with new ids so position-dependent decoders see a context. */
  #context: number[] = [];
  #contextText = "";
  /** Ids whose text has not been emitted yet. */
  #pending: number[] = [];

  /** A decoder for one stream of ids of `tokenizer`. */
  constructor(tokenizer: StreamDecodable, options: StreamDecoderOptions = {}) {
    this.#tokenizer = tokenizer;
    this.#skipSpecial = options.skipSpecialTokens ?? false;
  }

  /** Adds one token id; returns the text it completes (often "", e.g. inside a byte-fallback run). */
  push(id: number): string {
    if (!Number.isInteger(id) || id < 0) {
      throw new GemmakitError("stream_decoder", `token id ${id} is not an integer ≥ 0`);
    }
    this.#pending.push(id);
    if (this.#tokenizer.isByteFallbackId(id) || this.#invisible(id)) return "";
    const text = this.#decode([...this.#context, ...this.#pending]);
    if (text.endsWith("\uFFFD") && this.#pending.length < MAX_REPLACEMENT_HOLD) return "";
    return this.#emit(text);
  }

  /** Returns the held text (an incomplete byte run reads as U+FFFD) and resets for a new stream. */
  flush(): string {
    const out = this.#pending.length ? this.#emit(this.#decode([...this.#context, ...this.#pending])) : "";
    this.#context = [];
    this.#contextText = "";
    return out;
  }

  #emit(text: string): string {
    // The context's own text is a prefix unless a decoder rewrites across tokens; then the held ids alone
    // are the best we have.
    const out = text.startsWith(this.#contextText) ? text.slice(this.#contextText.length) : this.#decode(this.#pending);
    const last = this.#pending[this.#pending.length - 1];
    this.#pending = [];
    this.#context = [last];
    this.#contextText = this.#decode(this.#context);
    return out;
  }

  /** Ids that decode drops before its decoder runs: skipped specials, and ids the vocabulary lacks. */
  #invisible(id: number): boolean {
    return (this.#skipSpecial && this.#tokenizer.isSpecialId(id)) || this.#tokenizer.idToToken(id) === undefined;
  }

  #decode(ids: number[]): string {
    return this.#tokenizer.decode(ids, { skipSpecialTokens: this.#skipSpecial });
  }
}
