/**
 * A loaded model with its tokenizer: what users hold. It knows no family: the family that loaded it binds its
 * prompt layout for media and its response parser (src/models/registry.ts). Generation calls take turns (one
 * KV cache), or with `parallel` > 1 are batched over KV-cache slots (batch.ts).
 * @module
 */
import type { Backend } from "../runtime/backend.ts";
import type { VisionCache, VisionCacheStats } from "../runtime/vision_cache.ts";
import { ContextLengthError, GemmakitError, ImageInputError } from "../errors.ts";
import type { ChatMessage, ChatTemplateOptions } from "../tokenizer/chat_template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { generateTokens } from "./generator.ts";
import { hasImages, hasVideos, type MediaOptions } from "./media.ts";
import type { SamplingOptions } from "./options.ts";
import type { GenerationResult, ResponseEvent, ResponseParser } from "./result.ts";
import type { CausalLM } from "./token_loop.ts";
import {
  type ChatOptions,
  type GenerateCallOptions,
  type GenerateInput,
  runToEnd,
  type StreamOptions,
} from "./call_options.ts";
import { type CachedPrompt, type MediaSpan, reusablePrefix } from "./prefix.ts";
import { ChatSession, type ChatSessionOptions } from "./session.ts";
import { readSessionFile, type SessionState, writeSessionFile } from "./session_file.ts";
import { type ToolSpec, validateTools } from "./tools.ts";
import { compileConstraint, type ResponseFormat } from "./constraint.ts";
import { BatchScheduler, type BatchStats, canBatch } from "./batch.ts";
import { boundedInt } from "../runtime/bounds.ts";

export type { BatchStats } from "./batch.ts";
export type {
  ChatOptions,
  ContextOverflow,
  GenerateCallOptions,
  GenerateInput,
  StreamOptions,
} from "./call_options.ts";

/** A family's layout of conversations that carry media: the prompt ids and the media its prefill encodes. */
export interface MediaLayout<M = unknown> {
  /** Whether video parts are taken (images always are). */
  readonly video: boolean;
  /** Renders the conversation, loads and preprocesses its media, and expands the family's placeholders. */
  encode(
    tokenizer: Tokenizer,
    messages: readonly ChatMessage[],
    chat: ChatTemplateOptions,
    options: MediaOptions,
  ): Promise<{ ids: number[]; media: M; spans?: MediaSpan[] }>;
}

/** What a family binds into a Model. */
export interface ModelParts<M = unknown> {
  lm: CausalLM<M> & { dispose(): void };
  tokenizer: Tokenizer;
  /** Sampling the checkpoint asks for (generation_config.json), under the caller's options. */
  defaults: SamplingOptions;
  /** False for base checkpoints whose file says they are not chat models. Default true. */
  supportsChat?: boolean;
  /**
   * For a base checkpoint whose tokenizer still renders the family's turn format: conversations are taken (as
   * llama.cpp does), and this one-line note says so.
   */
  baseModelChatNote?: string;
  /** Media support; absent for text-only checkpoints (media parts are refused). */
  media?: MediaLayout<M>;
  /** Without media support: what to do to get it (the refusal's hint), when the family knows better than the default. */
  noMediaHint?: string;
  /** The family's response parser for one answer, when the checkpoint marks reasoning and tool calls. */
  responseParser?: (promptIds: readonly number[]) => ResponseParser;
  /**
   * The family's tool-call syntax as a grammar over `tools` (one of them: `name`): an answer constrained by it is
   * one call the response parser reads back, with arguments after the tool's parameter schema. What OpenAI's
   * tool_choice "required" or a named function asks for.
   */
  toolCallFormat?: (tools: readonly ToolSpec[], name?: string) => ResponseFormat;
  /** The vision-encoder cache of a model with a vision tower. */
  visionCache?: VisionCache;
  /** Resources disposed with the model after the model itself (a backend opened for it). */
  owned?: readonly Disposable[];
}

/** Most KV-cache slots (concurrent sequences) a model takes. */
export const MAX_PARALLEL = 256;

/** How a Model serves concurrent calls. */
export interface ModelOptions {
  /**
   * Sequences decoded at once (KV-cache slots, each a full cache of the context, allocated at load; fewer when the
   * device runs out of memory first — batchStats().slots says how many): concurrent generate/stream calls are
   * batched, and calls beyond the slots wait first come first served. Default 1: calls take turns. Families without
   * a batched decode step take turns regardless (see Model.parallelNote).
   */
  parallel?: number;
  /** Byte bound on the slots' KV caches together: fewer slots than `parallel` when they do not fit (at least 1). */
  kvCacheBytes?: number;
}

/** Checks ModelOptions' numbers (loadModel does so before loading weights). */
export function checkModelOptions(options: ModelOptions): void {
  boundedInt("loadModel", "parallel", options.parallel ?? 1, 1, MAX_PARALLEL);
  if (options.kvCacheBytes !== undefined) {
    boundedInt("loadModel", "kvCacheBytes", options.kvCacheBytes, 0, Number.MAX_SAFE_INTEGER);
  }
}

export class Model {
  readonly backend: Backend;
  readonly tokenizer: Tokenizer;
  readonly #parts: ModelParts;
  #queue: Promise<void> = Promise.resolve();
  #disposed = false;
  /** What the KV cache holds (undefined: nothing known, e.g. after a failed prefill). */
  #cached: CachedPrompt | undefined;
  /** Continuous batching over KV-cache slots (parallel > 1 on a family that batches); else calls take turns. */
  readonly #batch: BatchScheduler | undefined;
  /** Without a batch: calls waiting for their turn and running, and the prefix reuse of the one cache. */
  #serial = { waiting: 0, running: 0, prefixHits: 0, prefixMisses: 0, prefixTokensReused: 0 };

  /** Why `parallel` was not honoured (a family without a batched decode step); undefined otherwise. */
  readonly parallelNote: string | undefined;

  /**
   * Whether the checkpoint is meant for conversations (has a chat template). Base (pretrained) models are
   * not: give them plain prompts.
   */
  readonly supportsChat: boolean;

  constructor(parts: ModelParts, options: ModelOptions = {}) {
    this.#parts = parts;
    this.backend = parts.lm.backend;
    checkModelOptions(options);
    const parallel = options.parallel ?? 1, lm = parts.lm;
    if (parallel > 1 && canBatch(lm)) {
      const budget = options.kvCacheBytes ?? Infinity;
      const slots = Math.max(1, Math.min(parallel, Math.floor(budget / lm.cache.bytes)));
      this.#batch = new BatchScheduler(lm, slots);
    } else if (parallel > 1) {
      this.parallelNote = "this model's family has no batched decode step: concurrent calls take turns (parallel 1)";
    }
    this.tokenizer = parts.tokenizer;
    this.supportsChat = (parts.supportsChat ?? true) && parts.tokenizer.chatTemplate !== undefined;
    this.chatNote = this.supportsChat || !parts.tokenizer.chatTemplate ? undefined : parts.baseModelChatNote;
  }

  /**
   * A one-line note when conversations run on a base model in the family's turn format (its checkpoint has no
   * chat template); undefined for chat models.
   */
  readonly chatNote: string | undefined;

  /** Whether conversations ({messages}) are taken: a chat model, or a base model in its family's turn format. */
  get canChat(): boolean {
    return this.supportsChat || this.chatNote !== undefined;
  }

  /** True when answers are split into content, reasoning and tool calls (see events()). */
  get parsesResponses(): boolean {
    return this.#parts.responseParser !== undefined;
  }

  /**
   * A responseFormat that makes the answer one tool call (to `name`, or any of `tools`), or undefined when the
   * family has no tool-call syntax to constrain to.
   */
  toolCallFormat(tools: readonly ToolSpec[], name?: string): ResponseFormat | undefined {
    if (!this.#parts.toolCallFormat) return undefined;
    validateTools(tools);
    return this.#parts.toolCallFormat(tools, name);
  }

  /** Whether messages may carry image parts ({type: "image", path | bytes | base64 | url}). */
  get supportsImages(): boolean {
    return this.#parts.media !== undefined;
  }

  /** Whether messages may carry video parts ({type: "video", path | bytes}). */
  get supportsVideo(): boolean {
    return this.#parts.media?.video ?? false;
  }

  /** The vision-encoder cache (soft tokens by image content), for models with a vision tower. */
  get visionCache(): VisionCache | undefined {
    return this.#parts.visionCache;
  }

  /** The vision-encoder cache's hits, misses, evictions, entries and bytes; undefined without a vision tower. */
  visionCacheStats(): VisionCacheStats | undefined {
    return this.visionCache?.stats();
  }

  /** Context length the KV cache holds (prompt + generated tokens). */
  get maxContext(): number {
    return this.#parts.lm.maxContext;
  }

  /**
   * Refuses an input whose text alone is more tokens than the context holds, from its length, before it is
   * templated or tokenized (a 19 MB prompt would otherwise hold the event loop for minutes). Normalization may
   * shorten text (NFKC folds some pairs into one character), hence the factor of 2 in the input's favour.
   */
  #checkPromptLength(input: GenerateInput, chat: ChatOptions): void {
    const chars = typeof input === "string"
      ? input.length
      : "prompt" in input
      ? String(input.prompt ?? "").length
      : messageChars(input.messages) + textChars(chat.tools);
    const atLeast = Math.floor(chars / (2 * this.tokenizer.maxTokenChars));
    if (atLeast > this.maxContext) throw new ContextLengthError("generate", atLeast, this.maxContext, true);
  }

  /** Token ids of an input, as generation will see them. */
  encode(input: GenerateInput, chat: ChatOptions = {}): number[] {
    this.#checkPromptLength(input, chat);
    if (typeof input === "string" || "prompt" in input) {
      if (chat.thinking !== undefined || chat.tools !== undefined) {
        throw new GemmakitError(
          "generate",
          "thinking and tools apply to a conversation: pass {messages}, not a prompt",
        );
      }
      return this.tokenizer.encode(typeof input === "string" ? input : input.prompt);
    }
    return this.tokenizer.encodeChat(input.messages, this.#chatOptions(chat));
  }

  #chatOptions(chat: ChatOptions): ChatTemplateOptions {
    if (chat.tools !== undefined) validateTools(chat.tools);
    if (!this.canChat) {
      throw new GemmakitError(
        "generate",
        "this checkpoint is not a chat model (no chat template); pass a prompt string",
      );
    }
    return {
      addGenerationPrompt: true,
      tools: chat.tools,
      variables: chat.thinking === undefined ? undefined : { enable_thinking: chat.thinking },
    };
  }

  /**
   * Prompt ids, media and media spans of an input, fitted to the context by the overflow policy (a
   * conversation only: a plain prompt over the context is the token loop's ContextLengthError).
   */
  async #fitted(
    input: GenerateInput,
    options: StreamOptions,
  ): Promise<{ ids: number[]; media?: unknown; spans?: MediaSpan[]; messages?: ChatMessage[] }> {
    const first = await this.#layout(input, options);
    if (typeof input === "string" || "prompt" in input) return first;
    // "error" leaves the check to the token loop: a prompt that fits runs, and its answer ends at the context.
    if ((options.contextOverflow ?? "error") === "error") return { ...first, messages: input.messages };
    const limit = this.maxContext - Math.min(options.maxTokens ?? 256, Math.floor(this.maxContext / 2));
    if (first.ids.length <= limit) return { ...first, messages: input.messages };
    let messages = input.messages;
    while (true) {
      const dropped = dropOldestTurn(messages);
      if (!dropped) throw new ContextLengthError("generate", first.ids.length, limit);
      messages = dropped;
      const next = await this.#layout({ messages }, options);
      if (next.ids.length <= limit) return { ...next, messages };
    }
  }

  /** Prompt ids and media of an input: media parts go through the family's layout. */
  async #layout(
    input: GenerateInput,
    options: StreamOptions,
  ): Promise<{ ids: number[]; media?: unknown; spans?: MediaSpan[] }> {
    if (typeof input === "string" || "prompt" in input) return { ids: this.encode(input, options) };
    this.#checkPromptLength(input, options);
    const images = hasImages(input.messages), videos = hasVideos(input.messages);
    if (!images && !videos) return { ids: this.encode(input, options) };
    const chat = this.#chatOptions(options);
    const layout = this.#parts.media;
    if (!layout) {
      throw new ImageInputError("generate", "this checkpoint has no vision tower: it does not take images", {
        hint: this.#parts.noMediaHint ??
          "send text only, or load a checkpoint with a vision tower (Gemma 3 4B and up, Gemma 4)",
      });
    }
    if (videos && !layout.video) {
      throw new ImageInputError("generate", "this checkpoint does not take video", {
        hint: "video parts need a Gemma 4 checkpoint with a vision tower",
      });
    }
    return await layout.encode(this.tokenizer, input.messages, chat, options);
  }

  /**
   * Streams generated text. `for await (const text of model.stream(...))`; the generator's return value
   * (from a manual `next()`) is the GenerationResult.
   */
  async *stream(input: GenerateInput, options: StreamOptions = {}): AsyncGenerator<string, GenerationResult> {
    if (this.#disposed) throw new GemmakitError("generate", "the model was disposed");
    // Media are decoded, preprocessed and expanded into the prompt here; encoded by the model's prefill.
    const { ids, media, spans = [], messages } = await this.#fitted(input, options);
    const parser = this.#parts.responseParser?.(ids);
    const constraint = options.responseFormat
      ? await compileConstraint(this.tokenizer, this.#parts.lm.vocabSize, options.responseFormat)
      : undefined;
    const batch = this.#batch;
    if (batch) {
      // The scheduler picks the slot and the cached prefix when a slot is free, and prefills from there.
      try {
        if (messages) options.onMessages?.(messages);
        const reuse = options.reusePrefix !== false;
        return yield* generateTokens(this.#parts.lm, this.tokenizer, ids, {
          stopTokenIds: this.tokenizer.stopTokenIds,
          options,
          defaults: this.#parts.defaults,
          response: parser ? { parser, onEvent: options.onEvent } : undefined,
          constraint,
          stream: (o) => batch.sequence(ids, media, spans, reuse, o),
        });
      } finally {
        constraint?.dispose();
      }
    }
    let release!: () => void;
    const previous = this.#queue;
    this.#queue = new Promise((r) => (release = r));
    this.#serial.waiting++;
    try {
      await previous;
    } finally {
      this.#serial.waiting--;
    }
    this.#serial.running++;
    try {
      if (messages) options.onMessages?.(messages);
      const lm = this.#parts.lm;
      const start = options.reusePrefix === false ? 0 : reusablePrefix(this.#cached, ids, spans, lm.cache.rollback);
      if (start > 0) this.#serial.prefixHits++, this.#serial.prefixTokensReused += start;
      else this.#serial.prefixMisses++;
      // From here the cache is being overwritten: it holds nothing known until the loop reports what it wrote.
      this.#cached = undefined;
      return yield* generateTokens(lm, this.tokenizer, ids, {
        stopTokenIds: this.tokenizer.stopTokenIds,
        options,
        defaults: this.#parts.defaults,
        response: parser ? { parser, onEvent: options.onEvent } : undefined,
        media,
        start,
        onCached: (c) => (this.#cached = { ...c, spans: spans.filter((s) => s.end <= c.ids.length) }),
        constraint,
      });
    } finally {
      this.#serial.running--;
      constraint?.dispose();
      release();
    }
  }

  /**
   * The batch now and counters since load: slots, active and queued sequences, KV bytes, prefix-cache hits,
   * decode steps. Without batching: one slot, the running call and those waiting for their turn, the prefix reuse
   * of the one cache, and no step or prefill counts (they stay 0).
   */
  batchStats(): BatchStats {
    if (this.#batch) return this.#batch.stats();
    const bytes = this.#parts.lm.cache.bytes;
    return {
      slots: 1,
      active: this.#serial.running,
      queued: this.#serial.waiting,
      prefilling: 0,
      kvBytesUsed: this.#serial.running * bytes,
      kvBytesBudget: bytes,
      prefixHits: this.#serial.prefixHits,
      prefixMisses: this.#serial.prefixMisses,
      prefixTokensReused: this.#serial.prefixTokensReused,
      steps: 0,
      rowsStepped: 0,
      prefillForwards: 0,
      prefillsBatched: 0,
    };
  }

  /** Forgets what the KV cache holds: the next call prefills its whole prompt. */
  resetCache(): void {
    this.#cached = undefined;
    this.#batch?.slots.forget();
  }

  /** A chat session over this model: history, streaming, aborts, save and load (see ChatSession). */
  chat(options: ChatSessionOptions = {}): ChatSession {
    return new ChatSession(this, options);
  }

  /** Token ids the KV cache holds now (a copy; empty when nothing is known). */
  get cachedTokens(): readonly number[] {
    const b = this.#batch;
    return (b ? b.slots.contents(b.slots.mostRecent()) : this.#cached)?.ids ?? [];
  }

  /**
   * Writes the KV cache and what it holds (ids, media spans), with `extra` (a session's history), to a
   * versioned session file; waits for a running generation to end first. A batched model (parallel > 1) has a
   * cache per slot: it writes the one whose ids share the longest prefix with `like` (the conversation's ids), or
   * without it the one used last.
   */
  async saveState(path: string, extra: Record<string, unknown> = {}, like?: readonly number[]): Promise<void> {
    await this.#exclusive(async () => {
      // With a batch: the slot whose cache is closest to `like` (a session's conversation), else the one used last.
      const b = this.#batch, slot = b ? (like ? b.slots.closest(like) : b.slots.mostRecent()) : 0;
      const cache = b ? b.slots.cache(slot) : this.#parts.lm.cache;
      const cached = (b ? b.slots.contents(slot) : this.#cached) ?? { ids: [], spans: [], written: 0 };
      const state: SessionState = { ids: [...cached.ids], spans: [...cached.spans], written: cached.written, extra };
      await writeSessionFile(path, this.#fingerprint(), state, cache.read(cached.written));
    });
  }

  /**
   * Loads a session file written by saveState into the KV cache; returns its `extra`. Throws SessionFileError
   * when the file is not a session file, has another version, or was written by another model or context size.
   */
  async loadState(path: string): Promise<Record<string, unknown>> {
    return await this.#exclusive(async () => {
      const cache = this.#parts.lm.cache;
      const { state, blocks } = await readSessionFile(
        path,
        this.#fingerprint(),
        (positions) =>
          cache.geometry.flatMap((g) => {
            const [capacity, ...row] = g.split("x").map(Number);
            const bytes = 4 * Math.min(positions, capacity) * row.reduce((a, b) => a * b, 1);
            return [bytes, bytes];
          }),
      );
      this.#cached = undefined;
      this.#batch?.slots.setContents(0, undefined);
      cache.load(state.written, blocks);
      this.#cached = { ids: state.ids, spans: state.spans, written: state.written };
      // With a batch the model's own cache is slot 0: the next call finds the session's prefix there.
      this.#batch?.slots.setContents(0, this.#cached);
      return state.extra;
    });
  }

  /** What a session file must match: the cache geometry, context, vocabulary and tokenizer. */
  #fingerprint(): Record<string, unknown> {
    const t = this.tokenizer;
    return {
      maxContext: this.maxContext,
      vocabSize: this.#parts.lm.vocabSize,
      cache: this.#parts.lm.cache.geometry,
      tokenizer: { size: t.vocabSize, bos: t.bosId ?? null, eos: t.eosId ?? null, stop: [...t.stopTokenIds] },
    };
  }

  /** Runs `f` when no generation is running, holding off others until it ends. */
  async #exclusive<T>(f: () => Promise<T>): Promise<T> {
    if (this.#disposed) throw new GemmakitError("generate", "the model was disposed");
    if (this.#batch) return await this.#batch.exclusive(f);
    let release!: () => void;
    const previous = this.#queue;
    this.#queue = new Promise((r) => (release = r));
    await previous;
    try {
      return await f();
    } finally {
      release();
    }
  }

  /** Generates to the end and returns the text with token counts and timings. */
  async generate(input: GenerateInput, options: GenerateCallOptions = {}): Promise<GenerationResult> {
    return await runToEnd((o) => this.stream(input, o), options);
  }

  /**
   * Streams the answer as events: `{type: "content" | "reasoning", text}`, `{type: "tool_call", call}`,
   * `{type: "tool_call_error", error}` (models without a response parser give content only). The
   * generator's return value is the GenerationResult.
   */
  async *events(input: GenerateInput, options: StreamOptions = {}): AsyncGenerator<ResponseEvent, GenerationResult> {
    const queue: ResponseEvent[] = [];
    const parsed = this.parsesResponses;
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

  /** Frees weights, cache and buffers (and a backend opened for this model). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    try {
      this.#batch?.dispose();
      this.#parts.lm.dispose();
    } finally {
      for (const r of this.#parts.owned ?? []) r[Symbol.dispose]();
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** Characters of the strings in a value (keys included); byte arrays count nothing. */
function textChars(value: unknown, depth = 0): number {
  if (typeof value === "string") return value.length;
  if (!value || typeof value !== "object" || depth > 64 || ArrayBuffer.isView(value)) return 0;
  let n = 0;
  if (Array.isArray(value)) { for (const v of value) n += textChars(v, depth + 1); }
  else for (const [k, v] of Object.entries(value)) n += k.length + textChars(v, depth + 1);
  return n;
}

/** Characters of a conversation's text: string contents, text parts, other message fields (tool calls, ...);
 * media parts count nothing, as their sources (data URLs, base64) become soft tokens, not text. */
function messageChars(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of Array.isArray(messages) ? messages : []) {
    if (!m || typeof m !== "object") continue;
    for (const [k, v] of Object.entries(m)) {
      if (k !== "content") n += textChars(v);
      else if (Array.isArray(v)) { for (const p of v) n += p?.type === "text" ? textChars(p.text) : 0; }
      else n += textChars(v);
    }
  }
  return n;
}

/**
 * The conversation without its oldest turn (the first non-system message and every message up to the next user
 * message), or undefined when only the last user turn is left.
 */
export function dropOldestTurn(messages: readonly ChatMessage[]): ChatMessage[] | undefined {
  const first = messages.findIndex((m) => m.role !== "system");
  if (first < 0) return undefined;
  let end = first + 1;
  while (end < messages.length && messages[end].role !== "user") end++;
  if (end >= messages.length) return undefined;
  return [...messages.slice(0, first), ...messages.slice(end)];
}
