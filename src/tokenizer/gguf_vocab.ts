/**
 * A tokenizer.json built in memory from a GGUF file's `tokenizer.ggml.*` metadata, so a GGUF model needs no
 * tokenizer files beside it. Family-free: a family passes the pre/post-processing sections its real
 * tokenizer.json has (see {@link GgufTokenizerSections}); this module rebuilds the vocabulary, the BPE merges and
 * the added tokens, which are the parts that depend on the file.
 *
 * `tokenizer.ggml.model` "llama" (SentencePiece-style BPE with byte fallback, which Gemma 3 uses) is read, and
 * any BPE whose file stores `tokenizer.ggml.merges` (a tokenizer.json BPE's, e.g. Gemma 4's) with those merges.
 * A "llama" file does not store merges; they are rebuilt from the scores as transformers' GGUF loader and
 * tokenizers' SentencePieceExtractor do: every split of a normal or user-defined token into two vocabulary
 * entries is a merge, ranked by the token's score. Ties are broken by the lengths of the left, then the right
 * piece, longest first, and user-defined tokens score 0 (llama.cpp writes -1000 for them); with these two rules
 * the 514,906 merges of Gemma 3's real tokenizer.json come out in exactly its order (checked by
 * tests/tokenizer/gguf_vocab_test.ts against the real 270M GGUF).
 * @module
 */
import { GemmakitError } from "../errors.ts";
import type { TokenizerConfig } from "./special_tokens.ts";
import type { TokenizerJson } from "./tokenizer.ts";

/** llama.cpp's `tokenizer.ggml.token_type` values (llama_token_attr's SentencePiece types). */
export const GGUF_TOKEN_TYPE = Object.freeze(
  {
    normal: 1,
    unknown: 2,
    control: 3,
    userDefined: 4,
    unused: 5,
    byte: 6,
  } as const,
);

/** The `tokenizer.ggml.*` metadata of a GGUF file, as plain values. */
export interface GgufVocab {
  /** `tokenizer.ggml.model`: "llama" for SentencePiece-style vocabularies. */
  model: string;
  /** `tokenizer.ggml.tokens`, by id. */
  tokens: readonly string[];
  /** `tokenizer.ggml.scores`, by id (SentencePiece log-probabilities; the merge ranks). */
  scores: ArrayLike<number>;
  /** `tokenizer.ggml.token_type`, by id ({@link GGUF_TOKEN_TYPE}). */
  tokenTypes: ArrayLike<number>;
  bosId?: number;
  eosId?: number;
  unkId?: number;
  padId?: number;
  /** `tokenizer.ggml.add_bos_token` (llama.cpp's default for "llama" vocabularies is true). */
  addBos?: boolean;
  /** `tokenizer.ggml.add_eos_token`. */
  addEos?: boolean;
  /** `tokenizer.ggml.add_space_prefix` (SentencePiece's add_dummy_prefix; llama.cpp's default is true). */
  addSpacePrefix?: boolean;
  /** `tokenizer.chat_template`, when the converter copied one. */
  chatTemplate?: string;
  /**
   * `tokenizer.ggml.merges` ("left right", best first), when the file stores them (vocabularies converted from a
   * tokenizer.json BPE); without them the merges are rebuilt from the scores.
   */
  merges?: readonly string[];
}

/** What a family's real tokenizer.json has around the vocabulary; each left out gets the SentencePiece default. */
export interface GgufTokenizerSections {
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  decoder?: unknown;
  /** The post-processor; default: BOS/EOS as the file's add_bos_token / add_eos_token ask. */
  post_processor?: unknown;
  /**
   * Which tokens are added tokens (matched whole in the text before the BPE runs). Default: unknown, control and
   * user-defined ones. A family whose converter writes some added tokens as normal extends this.
   */
  isAdded?: (content: string, id: number, type: number) => boolean;
  /** Added tokens (control, user-defined) that transformers marks `special` (skipped by decode). Default: control. */
  isSpecial?: (content: string, id: number, type: number) => boolean;
}

/**
 * The sections of Gemma's tokenizer.json (Gemma 3 and Gemma 4 alike) around a byte-fallback BPE: spaces become "▁"
 * before a split that keeps each space with the piece before it, and the decoder undoes both.
 */
export const GEMMA_BPE_SECTIONS = Object.freeze({
  normalizer: { "type": "Replace", "pattern": { "String": " " }, "content": "▁" },
  pre_tokenizer: { "type": "Split", "pattern": { "String": " " }, "behavior": "MergedWithPrevious", "invert": false },
  decoder: {
    "type": "Sequence",
    "decoders": [{ "type": "Replace", "pattern": { "String": "▁" }, "content": " " }, { "type": "ByteFallback" }, {
      "type": "Fuse",
    }],
  },
});

const LLAMA_MODEL = "llama";

function fail(message: string, hint?: string): GemmakitError {
  return new GemmakitError("tokenizer.gguf", message, { hint });
}

/** Checks the metadata's shape once, so the builders below can index freely. */
function checkVocab(v: GgufVocab): void {
  if (v.model !== LLAMA_MODEL && v.merges === undefined) {
    throw fail(
      `tokenizer.ggml.model is ${JSON.stringify(v.model)} without tokenizer.ggml.merges; only "llama" ` +
        "(SentencePiece-style BPE) or a BPE with stored merges is supported",
      "load the checkpoint directory with its tokenizer.json instead of the GGUF",
    );
  }
  const n = v.tokens.length;
  if (n === 0) throw fail("tokenizer.ggml.tokens is empty");
  if (v.scores.length !== n || v.tokenTypes.length !== n) {
    throw fail(
      `tokenizer.ggml.tokens has ${n} entries but scores has ${v.scores.length} and token_type ${v.tokenTypes.length}`,
      "the file's tokenizer metadata is inconsistent; re-convert it with llama.cpp's convert_hf_to_gguf.py",
    );
  }
  for (const [name, id] of [["bos", v.bosId], ["eos", v.eosId], ["unknown", v.unkId], ["padding", v.padId]] as const) {
    if (id !== undefined && !(Number.isInteger(id) && id >= 0 && id < n)) {
      throw fail(`tokenizer.ggml.${name}_token_id is ${id}, outside the ${n}-token vocabulary`);
    }
  }
}

/**
 * The tokens as the original tokenizer spells them. llama.cpp's converter "pre-normalizes" user-defined tokens,
 * writing SentencePiece's "▁" as a space (convert_hf_to_gguf.py `_create_vocab_sentencepiece`); Gemma's real
 * vocabulary has "▁▁" (id 138), which the normalizer's " " → "▁" lets a run of spaces reach.
 */
function originalTokens(v: GgufVocab): string[] {
  return v.tokens.map((t, id) => v.tokenTypes[id] === GGUF_TOKEN_TYPE.userDefined ? t.replaceAll(" ", "▁") : t);
}

/** The BPE merges, best first, rebuilt from the scores (see the module comment for the ranking). */
export function mergesFromScores(tokens: readonly string[], scores: ArrayLike<number>, types: ArrayLike<number>) {
  const ids = new Map<string, number>();
  tokens.forEach((t, id) => {
    if (!ids.has(t)) ids.set(t, id);
  });
  const left: string[] = [];
  const right: string[] = [];
  const score: number[] = [];
  for (let id = 0; id < tokens.length; id++) {
    const type = types[id];
    if (type !== GGUF_TOKEN_TYPE.normal && type !== GGUF_TOKEN_TYPE.userDefined) continue;
    const s = type === GGUF_TOKEN_TYPE.userDefined ? 0 : scores[id];
    const t = tokens[id];
    for (let k = 1; k < t.length; k++) {
      const l = t.slice(0, k);
      if (!ids.has(l)) continue;
      const r = t.slice(k);
      if (!ids.has(r)) continue;
      left.push(l);
      right.push(r);
      score.push(s);
    }
  }
  const order = Array.from(left.keys());
  // Array.prototype.sort is stable, so equal keys keep the token order, as Python's sorted does.
  order.sort((a, b) => score[b] - score[a] || left[b].length - left[a].length || right[b].length - right[a].length);
  return order.map((i) => [left[i], right[i]] as [string, string]);
}

/** `tokenizer.ggml.merges` as pairs: each entry is "left right" (BPE pieces hold no plain space). */
function storedMerges(merges: readonly string[]): [string, string][] {
  return merges.map((m, i) => {
    const at = m.indexOf(" ");
    if (at <= 0 || at === m.length - 1 || m.indexOf(" ", at + 1) >= 0) {
      throw fail(`tokenizer.ggml.merges[${i}] is ${JSON.stringify(m)}, not "left right"`);
    }
    return [m.slice(0, at), m.slice(at + 1)];
  });
}

/** A TemplateProcessing writing BOS/EOS as the file's add_bos_token / add_eos_token ask (the pair form repeats it). */
function postProcessor(v: GgufVocab, tokens: readonly string[]): unknown {
  const bos = v.addBos ?? true ? v.bosId : undefined;
  const eos = v.addEos ? v.eosId : undefined;
  if (bos === undefined && eos === undefined) return null;
  const special = (id: number | undefined, typeId: number) =>
    id === undefined ? [] : [{ SpecialToken: { id: tokens[id], type_id: typeId } }];
  const part = (name: string, typeId: number) => [
    ...special(bos, typeId),
    { Sequence: { id: name, type_id: typeId } },
    ...special(eos, typeId),
  ];
  const specialTokens: Record<string, unknown> = {};
  for (const id of [bos, eos]) {
    if (id !== undefined) specialTokens[tokens[id]] = { id: tokens[id], ids: [id], tokens: [tokens[id]] };
  }
  return {
    type: "TemplateProcessing",
    single: part("A", 0),
    pair: [...part("A", 0), ...part("B", 1)],
    special_tokens: specialTokens,
  };
}

/**
 * tokenizer.json for a GGUF vocabulary: BPE with byte fallback, the rebuilt merges, the control, unknown and
 * user-defined tokens as added tokens, and the family's sections (SentencePiece defaults where it gives none).
 */
export function tokenizerJsonFromGguf(v: GgufVocab, sections: GgufTokenizerSections = {}): TokenizerJson {
  checkVocab(v);
  const tokens = originalTokens(v);
  const vocab: Record<string, number> = {};
  for (let id = 0; id < tokens.length; id++) {
    // The first id wins, as in the merges: a repeated spelling could never be produced by the BPE twice.
    if (!Object.hasOwn(vocab, tokens[id])) vocab[tokens[id]] = id;
  }
  const isSpecial = sections.isSpecial ?? ((_c: string, _id: number, type: number) => type === GGUF_TOKEN_TYPE.control);
  const addedTypes: readonly number[] = [GGUF_TOKEN_TYPE.unknown, GGUF_TOKEN_TYPE.control, GGUF_TOKEN_TYPE.userDefined];
  const isAdded = sections.isAdded ?? ((_c: string, _id: number, type: number) => addedTypes.includes(type));
  const added = [];
  for (let id = 0; id < tokens.length; id++) {
    const type = v.tokenTypes[id];
    if (!isAdded(tokens[id], id, type)) continue;
    added.push({
      id,
      content: tokens[id],
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: isSpecial(tokens[id], id, type),
    });
  }
  const prefix = v.addSpacePrefix ?? true;
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: sections.normalizer !== undefined ? sections.normalizer : {
      type: "Sequence",
      normalizers: [
        ...(prefix ? [{ type: "Prepend", prepend: "▁" }] : []),
        { type: "Replace", pattern: { String: " " }, content: "▁" },
      ],
    },
    pre_tokenizer: sections.pre_tokenizer !== undefined ? sections.pre_tokenizer : null,
    post_processor: sections.post_processor !== undefined ? sections.post_processor : postProcessor(v, tokens),
    decoder: sections.decoder !== undefined ? sections.decoder : {
      type: "Sequence",
      decoders: [
        { type: "Replace", pattern: { String: "▁" }, content: " " },
        { type: "ByteFallback" },
        { type: "Fuse" },
        ...(prefix ? [{ type: "Strip", content: " ", start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: v.unkId === undefined ? null : tokens[v.unkId],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: v.merges ? storedMerges(v.merges) : mergesFromScores(tokens, v.scores, v.tokenTypes),
    },
  };
}

/** tokenizer_config.json's special-token names and chat template, from the GGUF's ids. */
export function tokenizerConfigFromGguf(v: GgufVocab): TokenizerConfig {
  checkVocab(v);
  const tokens = originalTokens(v);
  const text = (id: number | undefined) => id === undefined ? undefined : tokens[id];
  const config: TokenizerConfig = {};
  for (
    const [key, id] of [["bos_token", v.bosId], ["eos_token", v.eosId], ["unk_token", v.unkId], ["pad_token", v.padId]]
  ) {
    const t = text(id as number | undefined);
    if (t !== undefined) config[key as string] = t;
  }
  if (v.chatTemplate !== undefined) config.chat_template = v.chatTemplate;
  return config;
}
