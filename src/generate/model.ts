/**
 * A loaded model with its tokenizer: what users hold. Generation calls take turns (one KV cache).
 * @module
 */
import type { Backend } from "../runtime/backend.ts";
import { GemmakitError } from "../ffi/errors.ts";
import type { ChatMessage } from "../tokenizer/chat_template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { type CausalLM, generateTokens, type GenerationResult } from "./generator.ts";
import type { GenerateOptions, SamplingOptions } from "./options.ts";

/** A raw prompt (encoded as is, BOS added), or a conversation rendered with the chat template. */
export type GenerateInput = string | { prompt: string } | { messages: ChatMessage[] };

export interface GenerateCallOptions extends GenerateOptions {
  /** Called with each piece of text as it is generated. */
  onText?: (text: string) => void;
}

export class Model {
  readonly backend: Backend;
  readonly tokenizer: Tokenizer;
  readonly #lm: CausalLM & { dispose(): void };
  readonly #defaults: SamplingOptions;
  #queue: Promise<void> = Promise.resolve();
  #disposed = false;

  /**
   * Whether the checkpoint is meant for conversations (has a chat template). Base (pretrained) models are
   * not: give them plain prompts.
   */
  readonly supportsChat: boolean;

  constructor(
    lm: CausalLM & { dispose(): void },
    tokenizer: Tokenizer,
    defaults: SamplingOptions,
    options: { supportsChat?: boolean } = {},
  ) {
    this.#lm = lm;
    this.backend = lm.backend;
    this.tokenizer = tokenizer;
    this.#defaults = defaults;
    this.supportsChat = (options.supportsChat ?? true) && tokenizer.chatTemplate !== undefined;
  }

  /** Context length the KV cache holds (prompt + generated tokens). */
  get maxContext(): number {
    return this.#lm.maxContext;
  }

  /** Token ids of an input, as generation will see them. */
  encode(input: GenerateInput): number[] {
    if (typeof input === "string") return this.tokenizer.encode(input);
    if ("prompt" in input) return this.tokenizer.encode(input.prompt);
    if (!this.supportsChat) {
      throw new GemmakitError(
        "generate",
        "this checkpoint is not a chat model (no chat template); pass a prompt string",
      );
    }
    return this.tokenizer.encodeChat(input.messages, { addGenerationPrompt: true });
  }

  /**
   * Streams generated text. `for await (const text of model.stream(...))`; the generator's return value
   * (from a manual `next()`) is the GenerationResult.
   */
  async *stream(input: GenerateInput, options: GenerateOptions = {}): AsyncGenerator<string, GenerationResult> {
    if (this.#disposed) throw new GemmakitError("generate", "the model was disposed");
    const ids = this.encode(input);
    let release!: () => void;
    const previous = this.#queue;
    this.#queue = new Promise((r) => (release = r));
    await previous;
    try {
      return yield* generateTokens(this.#lm, this.tokenizer, ids, this.tokenizer.stopTokenIds, options, this.#defaults);
    } finally {
      release();
    }
  }

  /** Generates to the end and returns the text with token counts and timings. */
  async generate(input: GenerateInput, options: GenerateCallOptions = {}): Promise<GenerationResult> {
    const it = this.stream(input, options);
    while (true) {
      const r = await it.next();
      if (r.done) return r.value;
      options.onText?.(r.value);
    }
  }

  /** Frees weights, cache and buffers. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#lm.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
