/**
 * Byte-fallback decoding as the Rust `tokenizers` crate does it, patched into @huggingface/tokenizers.
 *
 * SentencePiece-style BPE (Gemma) spells characters missing from the vocabulary as byte tokens `<0xE2>`.
 * The ByteFallback decoder joins each run of consecutive byte tokens and decodes it as UTF-8. The two
 * libraries disagree when a run is not valid UTF-8:
 * - Rust (tokenizers/src/decoders/byte_fallback.rs) writes one U+FFFD per byte of the run, even when the run
 *   starts with a valid character: `<0xE2><0x82><0xAC><0xE2>` → "����".
 * - @huggingface/tokenizers 0.2 uses a non-fatal TextDecoder, which keeps valid characters and writes one
 *   U+FFFD per maximal invalid subpart: the same run → "€�".
 * transformers decodes through the Rust crate, so we swap the JS decoder's TextDecoder for one with Rust's
 * rule. The reference fixture (tests/fixtures/tokenizer/reference_tokenizers.json) pins the behaviour.
 * @module
 */
import { ByteFallbackDecoder, type Decoder, SequenceDecoder } from "@huggingface/tokenizers";

/** A byte token's text, as the ByteFallback decoders of both libraries recognise it. */
const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;

/** True when `token` is a byte-fallback token such as `<0xE2>`. */
export function isByteToken(token: string | undefined): boolean {
  return token !== undefined && BYTE_TOKEN.test(token);
}

/** A TextDecoder whose invalid input becomes one U+FFFD per byte, the Rust crate's rule for a byte run. */
class RunDecoder extends TextDecoder {
  readonly #strict = new TextDecoder("utf-8", { fatal: true });

  override decode(input?: AllowSharedBufferSource, options?: TextDecodeOptions): string {
    try {
      return this.#strict.decode(input, options);
    } catch {
      const length = input === undefined ? 0 : input.byteLength;
      return "\uFFFD".repeat(length);
    }
  }
}

/**
 * Finds the ByteFallback decoders in a decoder tree (a Sequence nests them), gives each the Rust rule, and
 * says whether there was one: only then are byte tokens held back by the stream decoder.
 *
 * @example
 * ```ts
 * const usesByteFallback = patchByteFallback(hfTokenizer.decoder);
 * ```
 */
export function patchByteFallback(decoder: Decoder | null): boolean {
  if (decoder instanceof ByteFallbackDecoder) {
    decoder.text_decoder = new RunDecoder();
    return true;
  }
  if (decoder instanceof SequenceDecoder) {
    let found = false;
    for (const inner of decoder.decoders) found = patchByteFallback(inner) || found;
    return found;
  }
  return false;
}
