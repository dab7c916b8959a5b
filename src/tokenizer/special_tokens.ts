/**
 * The named special tokens of a checkpoint (bos_token, eos_token, image_token, ...) and the ids generation
 * stops on, read from tokenizer_config.json, special_tokens_map.json and generation_config.json.
 * @module
 */

/** The keys of tokenizer_config.json (and special_tokens_map.json) this module reads; others pass through. */
export interface TokenizerConfig {
  /** transformers' class, e.g. "GemmaTokenizer"; picks the defaults of unnamed special tokens. */
  tokenizer_class?: string;
  /** Written first by the post-processor of Gemma's tokenizer.json: `<bos>`. */
  bos_token?: TokenSpec | null;
  /** `<eos>`, or `<end_of_turn>` in instruction-tuned Gemma 3 files. */
  eos_token?: TokenSpec | null;
  /** `<pad>` for Gemma. */
  pad_token?: TokenSpec | null;
  /** `<unk>` for Gemma. */
  unk_token?: TokenSpec | null;
  /** transformers 4's list of unnamed special tokens. */
  additional_special_tokens?: TokenSpec[];
  /** Model-specific names, e.g. `{image_token: "<image_soft_token>"}`; a list is the unnamed form. */
  extra_special_tokens?: Record<string, TokenSpec> | TokenSpec[];
  /** One Jinja template, or named ones. */
  chat_template?: string | { name: string; template: string }[];
  /** WordPiece-era space clean-up on decode; false (the default) for Gemma. */
  clean_up_tokenization_spaces?: boolean;
  /** Its presence marks a current config, which makes special_tokens_map.json a legacy file. */
  added_tokens_decoder?: Record<string, unknown>;
  /** Everything else (model_max_length, padding_side, boi_token, image_token, ...). */
  [key: string]: unknown;
}

/** A token as the configs spell it: the text, or a serialized AddedToken `{content, ...}`. */
export type TokenSpec = string | { content: string; [key: string]: unknown };

/** The text of a TokenSpec, or undefined when the value is not one (null, a number, ...). */
export function tokenText(spec: unknown): string | undefined {
  if (typeof spec === "string") return spec;
  if (spec && typeof spec === "object" && typeof (spec as { content?: unknown }).content === "string") {
    return (spec as { content: string }).content;
  }
  return undefined;
}

/**
 * Named special tokens of tokenizer classes, used where the config leaves a name out. transformers 5
 * `GemmaTokenizer.__init__` (models/gemma/tokenization_gemma.py) defaults these; so `<mask>` (id 4), a plain
 * added token in Gemma 3's tokenizer.json, is special there and skipped by `skip_special_tokens`.
 */
const CLASS_DEFAULTS: Record<string, Record<string, string>> = {
  GemmaTokenizer: {
    unk_token: "<unk>",
    bos_token: "<bos>",
    eos_token: "<eos>",
    pad_token: "<pad>",
    mask_token: "<mask>",
  },
};
CLASS_DEFAULTS.GemmaTokenizerFast = CLASS_DEFAULTS.GemmaTokenizer;

/** The special tokens the configs name, as transformers 5 resolves them. */
export interface SpecialTokens {
  /** name → token text: bos/eos/unk/pad/mask and model-specific names such as image_token, boi_token. */
  named: Record<string, string>;
  /** Unnamed extras (`extra_special_tokens` as a list, `additional_special_tokens`); also skipped by decode. */
  extra: string[];
}

/**
 * Every named special token: the tokenizer class's defaults, then the config's `*_token` keys and its
 * `extra_special_tokens` object. special_tokens_map.json is read, and wins, only when tokenizer_config.json
 * has no `added_tokens_decoder`: transformers 5 treats it as a legacy file (tokenization_utils_base.py,
 * `_from_pretrained`).
 *
 * @example
 * ```ts
 * resolveSpecialTokens({ bos_token: "<bos>", extra_special_tokens: { image_token: "<image_soft_token>" } });
 * // { named: { bos_token: "<bos>", image_token: "<image_soft_token>" }, extra: [] }
 * ```
 */
export function resolveSpecialTokens(config: TokenizerConfig, specialTokensMap?: TokenizerConfig): SpecialTokens {
  const className = typeof config.tokenizer_class === "string" ? config.tokenizer_class : "";
  const named: Record<string, string> = { ...CLASS_DEFAULTS[className] };
  const extra: string[] = [];
  const sources = specialTokensMap && config.added_tokens_decoder === undefined ? [config, specialTokensMap] : [config];
  for (const source of sources) {
    for (const [key, value] of Object.entries(source)) {
      const text = tokenText(value);
      if (key.endsWith("_token") && text !== undefined) named[key] = text;
    }
    const moreNamed = source.extra_special_tokens;
    if (moreNamed && !Array.isArray(moreNamed)) {
      for (const [key, value] of Object.entries(moreNamed)) {
        const text = tokenText(value);
        if (text !== undefined) named[key] = text;
      }
    }
    for (const list of [source.additional_special_tokens, Array.isArray(moreNamed) ? moreNamed : undefined]) {
      for (const spec of list ?? []) {
        const text = tokenText(spec);
        if (text !== undefined) extra.push(text);
      }
    }
  }
  return { named, extra };
}

/**
 * Turn-end markers that end a chat reply. Gemma 3's generation config lists only `<eos>` in some checkpoints
 * while the instruction-tuned model ends each turn with `<end_of_turn>` (id 106), so a caller that stops on
 * eos alone runs on into a made-up next turn; Gemma 4's equivalent is `<turn|>`.
 * ref: gemma-architecture.md §6; transformers' Gemma 4 weight converter pairs eos_token_id=[1, 106].
 */
const TURN_END_TOKENS = ["<eos>", "<end_of_turn>", "<turn|>"] as const;

/**
 * The ids generation stops on: the config's eos, every `eos_token_id` of generation_config.json (a number or
 * a list), and the turn-end markers of {@link TURN_END_TOKENS} that the vocabulary has as special tokens.
 *
 * @example
 * ```ts
 * stopIds({ eosId: 1, generationConfig: { eos_token_id: [1, 106] }, specialId: () => undefined }); // [1, 106]
 * ```
 */
export function stopIds(args: {
  eosId: number | undefined;
  generationConfig?: { eos_token_id?: unknown };
  specialId: (token: string) => number | undefined;
}): number[] {
  const ids = new Set<number>();
  if (args.eosId !== undefined) ids.add(args.eosId);
  const fromGeneration = args.generationConfig?.eos_token_id;
  for (const id of Array.isArray(fromGeneration) ? fromGeneration : [fromGeneration]) {
    if (Number.isInteger(id) && id >= 0) ids.add(id);
  }
  for (const token of TURN_END_TOKENS) {
    const id = args.specialId(token);
    if (id !== undefined) ids.add(id);
  }
  return [...ids];
}
