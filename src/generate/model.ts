/**
 * A loaded model with its tokenizer: what users hold. Generation calls take turns (one KV cache).
 * @module
 */
import type { Backend } from "../runtime/backend.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { GemmakitError } from "../ffi/errors.ts";
import { ImageInputError } from "../models/multimodal.ts";
import type { ChatMessage } from "../tokenizer/chat_template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { type CausalLM, generateTokens, type GenerationResult } from "./generator.ts";
import type { GenerateOptions, SamplingOptions } from "./options.ts";
import { encodeImagePrompt, hasImages, type ImageOptions, type VisionSupport } from "./images.ts";
import type { PromptImages } from "../models/multimodal.ts";
import type { Gemma4PromptMedia } from "../models/gemma4/multimodal.ts";
import { encodeGemma4MediaPrompt, type Gemma4VisionSupport, hasVideos, type VideoOptions } from "./gemma4_media.ts";
import type { VisionCache, VisionCacheStats } from "./vision_cache.ts";
import {
  Gemma4ResponseParser,
  type Gemma4ResponseTokens,
  gemma4ResponseTokens,
  type ResponseEvent,
} from "./parsers/gemma4_response.ts";
import { type ToolCall, type ToolCallParseError, type ToolSpec, validateTools } from "./parsers/tool_calls.ts";

/** A raw prompt (encoded as is, BOS added), or a conversation rendered with the chat template. */
export type GenerateInput = string | { prompt: string } | { messages: ChatMessage[] };

/** How a conversation is rendered (Gemma 4's template: the `<|think|>` switch and tool declarations). */
export interface ChatOptions {
  /** Let the model think first (`enable_thinking` of the chat template). Default: the template's (off). */
  thinking?: boolean;
  /** Tools the model may call; its calls come back in GenerationResult.toolCalls. */
  tools?: ToolSpec[];
}

export interface StreamOptions extends GenerateOptions, ChatOptions, ImageOptions, VideoOptions {
  /** Gemma 4: every piece of the answer as it streams (content, reasoning, tool calls); not called for others. */
  onEvent?: (event: ResponseEvent) => void;
}

export interface GenerateCallOptions extends StreamOptions {
  /** Called with each piece of text as it is generated (the content only, for Gemma 4). */
  onText?: (text: string) => void;
  /** Gemma 4: called with each piece of the model's reasoning (thought blocks). */
  onReasoning?: (text: string) => void;
  /** Gemma 4: called with each tool call once it has closed and parsed. */
  onToolCall?: (call: ToolCall) => void;
  /** Gemma 4: called with each tool call that did not parse. */
  onToolCallError?: (error: ToolCallParseError) => void;
}

export class Model {
  readonly backend: Backend;
  readonly tokenizer: Tokenizer;
  readonly #lm: CausalLM & { dispose(): void };
  readonly #defaults: SamplingOptions;
  /** Gemma 4's response markers, when the tokenizer has them: then answers are parsed into parts. */
  readonly #responseTokens: Gemma4ResponseTokens | undefined;
  /** The vision tower's config and the checkpoint's image processor settings; absent for text-only models. */
  readonly #vision: VisionSupport | Gemma4VisionSupport | undefined;
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
    options: { supportsChat?: boolean; vision?: VisionSupport | Gemma4VisionSupport } = {},
  ) {
    this.#lm = lm;
    this.backend = lm.backend;
    this.tokenizer = tokenizer;
    this.#defaults = defaults;
    this.supportsChat = (options.supportsChat ?? true) && tokenizer.chatTemplate !== undefined;
    this.#vision = options.vision;
    this.#responseTokens = gemma4ResponseTokens(tokenizer);
  }

  /** True for Gemma 4 checkpoints: answers are split into content, reasoning and tool calls (see events()). */
  get parsesResponses(): boolean {
    return this.#responseTokens !== undefined;
  }

  /** Whether messages may carry image parts ({type: "image", path | bytes | base64 | url}). */
  get supportsImages(): boolean {
    return this.#vision !== undefined;
  }

  /** Whether messages may carry video parts ({type: "video", path | bytes}): Gemma 4 checkpoints with vision. */
  get supportsVideo(): boolean {
    return this.#vision !== undefined && "kind" in this.#vision;
  }

  /** The vision-encoder cache (soft tokens by image content), for models with a vision tower. */
  get visionCache(): VisionCache | undefined {
    return (this.#lm as { visionCache?: VisionCache }).visionCache;
  }

  /** The vision-encoder cache's hits, misses, evictions, entries and bytes; undefined without a vision tower. */
  visionCacheStats(): VisionCacheStats | undefined {
    return this.visionCache?.stats();
  }

  /** Context length the KV cache holds (prompt + generated tokens). */
  get maxContext(): number {
    return this.#lm.maxContext;
  }

  /** Token ids of an input, as generation will see them. */
  encode(input: GenerateInput, chat: ChatOptions = {}): number[] {
    if (typeof input === "string" || "prompt" in input) {
      if (chat.thinking !== undefined || chat.tools !== undefined) {
        throw new GemmakitError(
          "generate",
          "thinking and tools apply to a conversation: pass {messages}, not a prompt",
        );
      }
      return this.tokenizer.encode(typeof input === "string" ? input : input.prompt);
    }
    if (chat.tools !== undefined) validateTools(chat.tools);
    if (!this.supportsChat) {
      throw new GemmakitError(
        "generate",
        "this checkpoint is not a chat model (no chat template); pass a prompt string",
      );
    }
    return this.tokenizer.encodeChat(input.messages, {
      addGenerationPrompt: true,
      tools: chat.tools,
      variables: chat.thinking === undefined ? undefined : { enable_thinking: chat.thinking },
    });
  }

  /**
   * Streams generated text. `for await (const text of model.stream(...))`; the generator's return value
   * (from a manual `next()`) is the GenerationResult.
   */
  async *stream(input: GenerateInput, options: StreamOptions = {}): AsyncGenerator<string, GenerationResult> {
    if (this.#disposed) throw new GemmakitError("generate", "the model was disposed");
    // Images: decoded, preprocessed and expanded into the prompt here; encoded by the model's prefill.
    let ids: number[], images: PromptMedia | undefined;
    if (typeof input === "object" && "messages" in input && (hasImages(input.messages) || hasVideos(input.messages))) {
      if (!this.supportsChat) this.encode(input, options); // the same refusal as for text
      const chat = {
        addGenerationPrompt: true,
        tools: options.tools,
        variables: options.thinking === undefined ? undefined : { enable_thinking: options.thinking },
      };
      const vision = this.#vision;
      if (vision && "kind" in vision) {
        ({ ids, media: images } = await encodeGemma4MediaPrompt(this.tokenizer, input.messages, chat, vision, options));
      } else {
        if (hasVideos(input.messages)) {
          throw new ImageInputError("generate", "this checkpoint does not take video", {
            hint: "video parts need a Gemma 4 checkpoint with a vision tower",
          });
        }
        ({ ids, images } = await encodeImagePrompt(this.tokenizer, input.messages, chat, vision, options));
      }
    } else {
      ids = this.encode(input, options);
    }
    const rt = this.#responseTokens;
    const response = rt
      ? { parser: new Gemma4ResponseParser(this.tokenizer, rt, { promptIds: ids }), onEvent: options.onEvent }
      : undefined;
    let release!: () => void;
    const previous = this.#queue;
    this.#queue = new Promise((r) => (release = r));
    await previous;
    try {
      return yield* generateTokens(
        images ? withImages(this.#lm, images) : this.#lm,
        this.tokenizer,
        ids,
        this.tokenizer.stopTokenIds,
        options,
        this.#defaults,
        response,
      );
    } finally {
      release();
    }
  }

  /** Generates to the end and returns the text with token counts and timings. */
  async generate(input: GenerateInput, options: GenerateCallOptions = {}): Promise<GenerationResult> {
    const { onReasoning, onToolCall, onToolCallError, onEvent } = options;
    const it = this.stream(input, {
      ...options,
      onEvent: (e) => {
        onEvent?.(e);
        if (e.type === "reasoning") onReasoning?.(e.text);
        else if (e.type === "tool_call") onToolCall?.(e.call);
        else if (e.type === "tool_call_error") onToolCallError?.(e.error);
      },
    });
    while (true) {
      const r = await it.next();
      if (r.done) return r.value;
      options.onText?.(r.value);
    }
  }

  /**
   * Streams the answer as events: `{type: "content" | "reasoning", text}`, `{type: "tool_call", call}`,
   * `{type: "tool_call_error", error}` (models without a response parser give content only). The
   * generator's return value is the GenerationResult.
   */
  async *events(input: GenerateInput, options: StreamOptions = {}): AsyncGenerator<ResponseEvent, GenerationResult> {
    const queue: ResponseEvent[] = [];
    const parsed = this.#responseTokens !== undefined;
    const it = this.stream(input, {
      ...options,
      onEvent: (e) => {
        options.onEvent?.(e);
        queue.push(e);
      },
    });
    while (true) {
      const r = await it.next();
      // Without a parser there are no events: the yielded text is the content.
      if (!parsed && !r.done && r.value) queue.push({ type: "content", text: r.value });
      while (queue.length) yield queue.shift()!;
      if (r.done) return r.value;
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

/** The media of one prompt, as the multimodal models' prefill takes them. */
type PromptMedia = PromptImages | Gemma4PromptMedia;

/**
 * The model with this prompt's media bound into its prefill (the decode step is untouched). Only a model
 * with vision support gets media (the constructor's `vision` option comes with a multimodal model).
 */
function withImages(lm: CausalLM, media: PromptMedia): CausalLM {
  const prefill = lm.prefill as (ids: ArrayLike<number>, media?: PromptMedia) => Tensor;
  return {
    backend: lm.backend,
    maxContext: lm.maxContext,
    vocabSize: lm.vocabSize,
    prefill: (ids) => prefill.call(lm, ids, media),
    decodeStep: (token, position, ws, logits) => lm.decodeStep(token, position, ws, logits),
  };
}
