/**
 * Gemma 4's tokenizer from a GGUF file's own metadata (`tokenizer.ggml.model` "gemma4"): the vocabulary and the
 * merges the converter stored (conversion/gemma.py `Gemma4Model.set_vocab`: LlamaHfVocab + SpecialVocab with
 * merges) rebuilt into a tokenizer.json (src/tokenizer/gguf_vocab.ts) with the sections of Gemma 4's real
 * tokenizer.json (tests/fixtures/gemma4-tokenizer): the same normalizer, pre-tokenizer and decoder as Gemma 3's.
 * BOS follows the file's `add_bos_token` (true), as in llama.cpp and as transformers' GemmaTokenizer adds it.
 * @module
 */
import type { GgufFile } from "../../formats/gguf.ts";
import {
  GEMMA_BPE_SECTIONS,
  GGUF_TOKEN_TYPE,
  tokenizerConfigFromGguf,
  tokenizerJsonFromGguf,
} from "../../tokenizer/gguf_vocab.ts";
import { Tokenizer, type TokenizerJson } from "../../tokenizer/tokenizer.ts";
import { readGgufVocab } from "../common/gguf_tokenizer.ts";

/**
 * Tokens the converter writes as user-defined so that llama.cpp renders them (`visible_tokens` in
 * `Gemma4Model.set_vocab`), though tokenizer.json marks them special.
 */
const VISIBLE_SPECIAL = new Set([
  "<|channel>",
  "<channel|>",
  "<|tool_call>",
  "<tool_call|>",
  "<|tool_response>",
  "<tool_response|>",
  '<|"|>',
]);

/**
 * Gemma 4's markers: `<|turn>`, `<turn|>`, `<|think|>`, `<|image|>`… (a pipe at one or both ends). LlamaHfVocab
 * writes an added token that is also in the base vocabulary as NORMAL unless it is a named special token
 * (bos, eos, the image tokens), so the file marks `<|turn>` like any piece; tokenizer.json has all of these as
 * special added tokens (llama.cpp too singles them out by text, llama-vocab.cpp).
 */
const MARKER = /^<\|[^<>|\s]*\|?>$|^<[^<>|\s]*\|>$/;
/** Added tokens tokenizer.json does not mark special: `<unusedN>` and `[multimodal]`. */
const PLAIN_ADDED = /^<unused\d+>$|^\[multimodal\]$/;

/** Gemma 4's named special tokens beyond bos/eos/unk/pad (tokenizer_config.json). */
const EXTRA_SPECIAL_TOKENS = {
  "audio_token": "<|audio|>",
  "boa_token": "<|audio>",
  "boi_token": "<|image>",
  "eoa_token": "<audio|>",
  "eoi_token": "<image|>",
  "image_token": "<|image|>",
};

const SECTIONS = {
  ...GEMMA_BPE_SECTIONS,
  isAdded: (content: string, _id: number, type: number) =>
    type === GGUF_TOKEN_TYPE.control || type === GGUF_TOKEN_TYPE.userDefined || type === GGUF_TOKEN_TYPE.unknown ||
    MARKER.test(content) || PLAIN_ADDED.test(content),
  isSpecial: (content: string, _id: number, type: number) =>
    type === GGUF_TOKEN_TYPE.control || VISIBLE_SPECIAL.has(content) || MARKER.test(content),
};

/** True when the file's vocabulary is Gemma 4's kind (a BPE with stored merges). */
export function isGemma4GgufVocab(gguf: GgufFile): boolean {
  return gguf.has("tokenizer.ggml.merges") && gguf.getString("tokenizer.ggml.model") === "gemma4";
}

/** The tokenizer.json a Gemma 4 GGUF's metadata rebuilds (what gemma4GgufTokenizer runs). */
export function gemma4GgufTokenizerJson(gguf: GgufFile): TokenizerJson {
  return tokenizerJsonFromGguf(readGgufVocab(gguf), SECTIONS);
}

/** The tokenizer of a Gemma 4 GGUF, with the file's chat template (none for a converted base model). */
export function gemma4GgufTokenizer(gguf: GgufFile): Tokenizer {
  const vocab = readGgufVocab(gguf);
  const config = {
    ...tokenizerConfigFromGguf(vocab),
    tokenizer_class: "GemmaTokenizer",
    mask_token: "<mask>",
    extra_special_tokens: EXTRA_SPECIAL_TOKENS,
  };
  return Tokenizer.fromJSON(tokenizerJsonFromGguf(vocab, SECTIONS), config, { chatTemplate: vocab.chatTemplate });
}
