/**
 * Text ⇄ token ids for Gemma checkpoints, from the Hugging Face tokenizer files.
 *
 * The BPE itself comes from `@huggingface/tokenizers` (tokenizers.js), a zero-dependency port of the Rust
 * crate by Hugging Face that also backs transformers.js. It runs in Deno as is and reads Gemma's
 * tokenizer.json directly: the Replace(" " → "▁") normalizer, BPE with byte_fallback, the 6,415 added
 * tokens (specials, `<unusedN>`, runs of "\n", "\t" and "▁", HTML tags) and the TemplateProcessing that
 * writes `<bos>`. Its encodings equal the Rust crate's on every string of the reference fixture. We do not
 * use @huggingface/transformers: it wraps this same library and adds onnxruntime and sharp.
 * Where tokenizers.js differs from the Rust crate we correct it here, so that our output is transformers':
 * - invalid byte-fallback runs decode to one U+FFFD per byte (see byte_fallback.ts);
 * - ids the vocabulary lacks are dropped by decode (tokenizers.js writes `<unk>`; Rust skips them);
 * - decode of [] is "" (tokenizers.js throws);
 * - the configs' named special tokens (and the tokenizer class's defaults, e.g. `<mask>`) count as special
 *   for `skipSpecialTokens`, as transformers 5 registers them (see special_tokens.ts).
 * BOS/EOS: the tokenizer.json post-processor alone decides (Gemma 3: TemplateProcessing `<bos> $A`).
 * transformers 5 drops tokenizer_config.json's add_bos_token / add_eos_token whenever tokenizer.json exists
 * (tokenization_utils_base.py `_from_pretrained`: "init_kwargs.pop('add_bos_token')"), and we always load
 * tokenizer.json, so those flags have no effect here either.
 * @module
 */
import { join } from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { GemmakitError } from "../errors.ts";
import { isByteToken, patchByteFallback } from "./byte_fallback.ts";
import { type ChatMessage, ChatTemplate, type ChatTemplateOptions, type NamedTemplate } from "./chat_template.ts";
import { resolveSpecialTokens, stopIds, type TokenizerConfig } from "./special_tokens.ts";
import { SegmentEncoder } from "./segments.ts";

/** tokenizer.json as the Hugging Face `tokenizers` library writes it (only the keys we look at are typed). */
export interface TokenizerJson {
  /** The model section: `{type: "BPE", vocab, merges, byte_fallback, ...}` for Gemma. */
  model: { type: string; [key: string]: unknown };
  /** Tokens matched before the model runs (specials, `<unusedN>`, whitespace runs); `special` marks skippable ones. */
  added_tokens?: { id: number; content: string; special?: boolean; [key: string]: unknown }[];
  /** normalizer, pre_tokenizer, post_processor, decoder, ... */
  [key: string]: unknown;
}

/** The optional companions of tokenizer.json and tokenizer_config.json in a checkpoint directory. */
export interface TokenizerExtras {
  /** chat_template.jinja (text), or chat_template.json's template; wins over tokenizer_config.json's. */
  chatTemplate?: string | NamedTemplate[];
  /** special_tokens_map.json; read only when tokenizer_config.json lacks added_tokens_decoder (transformers 5). */
  specialTokensMap?: TokenizerConfig;
  /** generation_config.json; its `eos_token_id` (number or list) joins {@link Tokenizer.stopTokenIds}. */
  generationConfig?: { eos_token_id?: number | number[]; [key: string]: unknown };
}

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Write the BOS (and EOS) of the tokenizer.json post-processor. Default true. */
  addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Leave out special tokens (`<bos>`, `<end_of_turn>`, ...). Default false. */
  skipSpecialTokens?: boolean;
}

/**
 * A checkpoint's tokenizer: encode, decode, the special tokens, the stop ids and the chat template.
 *
 * @example
 * ```ts
 * const tokenizer = await Tokenizer.fromFiles("models/gemma-3-270m-it");
 * const ids = tokenizer.encode("Hello"); // [2, 9259]: <bos> first, as the checkpoint asks
 * tokenizer.decode(ids, { skipSpecialTokens: true }); // "Hello"
 * const prompt = tokenizer.encodeChat([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
 * ```
 */
export class Tokenizer {
  /** Number of token ids (highest id + 1): 262,145 for Gemma 3 (262,144 + `<image_soft_token>`). */
  readonly vocabSize: number;
  /** Id of the config's bos_token (2 for Gemma). */
  readonly bosId: number | undefined;
  /** Id of the config's eos_token: 1 (`<eos>`), or 106 (`<end_of_turn>`) in files that name it. */
  readonly eosId: number | undefined;
  /** Id of the config's pad_token (0 for Gemma). */
  readonly padId: number | undefined;
  /** Id of the config's unk_token (3 for Gemma). */
  readonly unkId: number | undefined;
  /** Ids generation stops on: eos, generation_config's eos_token_id, and `<eos>`/`<end_of_turn>`/`<turn|>`. */
  readonly stopTokenIds: readonly number[];
  /** The configs' named special tokens, e.g. `{bos_token: "<bos>", image_token: "<image_soft_token>"}`. */
  readonly specialTokens: Readonly<Record<string, string>>;
  /** The checkpoint's chat template, when it has one. */
  readonly chatTemplate: ChatTemplate | undefined;

  readonly #hf: HfTokenizer;
  readonly #vocab: readonly string[];
  readonly #specialIds: ReadonlySet<number>;
  readonly #byteFallback: boolean;
  readonly #cleanUpSpaces: boolean;
  /** Long texts without BOS/EOS (chat prompts) encode piece by piece between special tokens, pieces cached. */
  readonly #segments: SegmentEncoder | undefined;

  private constructor(tokenizerJson: TokenizerJson, config: TokenizerConfig, extras: TokenizerExtras) {
    if (!tokenizerJson || typeof tokenizerJson !== "object" || typeof tokenizerJson.model !== "object") {
      throw new GemmakitError("tokenizer", "tokenizer.json has no model", { hint: "pass the parsed tokenizer.json" });
    }
    try {
      this.#hf = new HfTokenizer(tokenizerJson, config);
    } catch (cause) {
      throw new GemmakitError("tokenizer", `tokenizer.json is not supported: ${(cause as Error)?.message}`, { cause });
    }
    this.#byteFallback = patchByteFallback(this.#hf.decoder);
    this.#vocab = this.#hf.model?.vocab ?? [];
    this.vocabSize = this.#vocab.length;

    const { named, extra } = resolveSpecialTokens(config, extras.specialTokensMap);
    this.specialTokens = Object.freeze(named);
    const special = new Set<number>();
    for (const token of this.#hf.get_added_tokens_decoder().values()) if (token.special) special.add(token.id);
    // transformers adds a named token missing from the vocabulary as a new id; we cannot grow the embedding
    // table, so such a name is simply left without an id.
    for (const text of [...Object.values(named), ...extra]) {
      const id = this.tokenToId(text);
      if (id !== undefined) special.add(id);
    }
    this.#specialIds = special;
    // Splitting at special tokens is exact only for tokens matched on the raw text that strip nothing around them.
    const splitters = new Map<string, number>();
    let exact = true;
    for (const t of tokenizerJson.added_tokens ?? []) {
      if (!t.special) continue;
      if (t.lstrip || t.rstrip || t.single_word || t.normalized) exact = false;
      splitters.set(t.content, t.id);
    }
    this.#segments = exact
      ? new SegmentEncoder(splitters, (text) => this.#hf.encode(text, { add_special_tokens: false }).ids)
      : undefined;

    this.bosId = this.#namedId("bos_token");
    this.eosId = this.#namedId("eos_token");
    this.padId = this.#namedId("pad_token");
    this.unkId = this.#namedId("unk_token");
    this.stopTokenIds = Object.freeze(stopIds({
      eosId: this.eosId,
      generationConfig: extras.generationConfig,
      specialId: (token) => {
        const id = this.tokenToId(token);
        return id !== undefined && special.has(id) ? id : undefined;
      },
    }));

    // transformers 5 defaults this to false and ignores it for BPE models, where it would eat real spaces
    // before punctuation (tokenization_utils_tokenizers.py `_decode`); tokenizers.js defaults it to true.
    this.#cleanUpSpaces = (config.clean_up_tokenization_spaces ?? false) && tokenizerJson.model.type !== "BPE";

    const template = extras.chatTemplate ?? config.chat_template;
    this.chatTemplate = template === undefined || template === null
      ? undefined
      : new ChatTemplate(template, this.specialTokens as Record<string, string>);
  }

  /**
   * Reads a checkpoint directory: tokenizer.json and tokenizer_config.json, and when present
   * chat_template.jinja (or chat_template.json), special_tokens_map.json and generation_config.json.
   *
   * @example
   * ```ts
   * const tokenizer = await Tokenizer.fromFiles("models/gemma-3-1b-it");
   * tokenizer.stopTokenIds; // [1, 106]
   * ```
   */
  static async fromFiles(dir: string): Promise<Tokenizer> {
    const tokenizerJson = await readJson<TokenizerJson>(dir, "tokenizer.json", true);
    const config = await readJson<TokenizerConfig>(dir, "tokenizer_config.json", true);
    const jinja = await readText(dir, "chat_template.jinja");
    const templateJson = await readJson<{ chat_template?: string | NamedTemplate[] }>(dir, "chat_template.json");
    return new Tokenizer(tokenizerJson!, config!, {
      chatTemplate: jinja ?? templateJson?.chat_template,
      specialTokensMap: await readJson<TokenizerConfig>(dir, "special_tokens_map.json"),
      generationConfig: await readJson(dir, "generation_config.json"),
    });
  }

  /**
   * Builds a tokenizer from parsed JSON, e.g. files bundled with an application.
   *
   * @example
   * ```ts
   * const tokenizer = Tokenizer.fromJSON(JSON.parse(tokenizerText), JSON.parse(configText));
   * ```
   */
  static fromJSON(
    tokenizerJson: TokenizerJson,
    tokenizerConfig: TokenizerConfig = {},
    extras: TokenizerExtras = {},
  ): Tokenizer {
    return new Tokenizer(tokenizerJson, tokenizerConfig, extras);
  }

  /** Token ids of `text`. Special-token texts in it (`<start_of_turn>`) become their ids, as in transformers. */
  encode(text: string, options: EncodeOptions = {}): number[] {
    if (typeof text !== "string") {
      throw new GemmakitError("tokenizer.encode", `text must be a string, got ${typeof text}`);
    }
    const addSpecial = options.addSpecialTokens ?? true;
    if (!addSpecial && this.#segments && text.length >= 1024) return this.#segments.encode(text);
    return this.#hf.encode(text, { add_special_tokens: addSpecial }).ids;
  }

  /** The text of `ids`. Ids outside the vocabulary are dropped, as the Rust tokenizers crate does. */
  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const kept: number[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0) {
        throw new GemmakitError("tokenizer.decode", `ids[${i}] is ${id}; token ids are integers ≥ 0`);
      }
      if (id >= this.vocabSize || this.#vocab[id] === undefined) continue;
      if (options.skipSpecialTokens && this.#specialIds.has(id)) continue;
      kept.push(id);
    }
    if (kept.length === 0) return "";
    return this.#hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.#cleanUpSpaces });
  }

  /** The id of a token's text (`"<end_of_turn>"` → 106), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#hf.token_to_id(token);
  }

  /** The text of a token id (106 → `"<end_of_turn>"`; byte tokens read `"<0xE2>"`), or undefined. */
  idToToken(id: number): string | undefined {
    return this.#vocab[id];
  }

  /** True for ids of special tokens, the ones `skipSpecialTokens` leaves out. */
  isSpecialId(id: number): boolean {
    return this.#specialIds.has(id);
  }

  /**
   * True for byte-fallback tokens (`<0xE2>`) of a tokenizer whose decoder joins them into characters;
   * {@link StreamDecoder} holds these back until their run ends.
   */
  isByteFallbackId(id: number): boolean {
    return this.#byteFallback && isByteToken(this.#vocab[id]);
  }

  /** The id of a named special token of the configs (`"image_token"` → 262144 for Gemma 3), or undefined. */
  specialTokenId(name: string): number | undefined {
    const text = this.specialTokens[name];
    return text === undefined ? undefined : this.tokenToId(text);
  }

  /**
   * Most characters (UTF-16 units) of text one token can stand for: the longest vocabulary entry. A text of n
   * characters is at least n / maxTokenChars tokens, which lets generation refuse a prompt far over the context
   * before spending time templating and tokenizing it.
   */
  get maxTokenChars(): number {
    if (this.#maxTokenChars === undefined) {
      let most = 1;
      for (const t of this.#vocab) if (typeof t === "string" && t.length > most) most = t.length;
      for (const t of this.#hf.get_added_tokens_decoder().values()) most = Math.max(most, t.content.length);
      this.#maxTokenChars = most;
    }
    return this.#maxTokenChars;
  }
  #maxTokenChars: number | undefined;

  /** The chat template's prompt text for `messages`; see {@link ChatTemplate.render}. */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (!this.chatTemplate) {
      throw new GemmakitError("chat_template", "this tokenizer has no chat template", {
        hint: "base (non -it) checkpoints have none; pass plain text to encode() instead",
      });
    }
    return this.chatTemplate.render(messages, options);
  }

  /**
   * The prompt ids for `messages`. The template writes `<bos>` itself, so the text is encoded without
   * special tokens, as transformers' `apply_chat_template(tokenize=True)` does.
   */
  encodeChat(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): number[] {
    return this.encode(this.applyChatTemplate(messages, options), { addSpecialTokens: false });
  }

  #namedId(name: string): number | undefined {
    const text = this.specialTokens[name];
    return text === undefined ? undefined : this.tokenToId(text);
  }
}

async function readText(dir: string, name: string, required = false): Promise<string | undefined> {
  const path = join(dir, name);
  try {
    return await Deno.readTextFile(path);
  } catch (cause) {
    if (!required && cause instanceof Deno.errors.NotFound) return undefined;
    throw new GemmakitError("tokenizer.load", `cannot read ${path}: ${(cause as Error).message}`, {
      cause,
      hint: required ? `a checkpoint directory has ${name} next to config.json` : undefined,
    });
  }
}

async function readJson<T>(dir: string, name: string, required = false): Promise<T | undefined> {
  const text = await readText(dir, name, required);
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch (cause) {
    throw new GemmakitError("tokenizer.load", `${join(dir, name)} is not valid JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
}
