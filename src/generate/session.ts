/**
 * A chat session: a conversation held over one model, in the shape node-llama-cpp's LlamaChatSession has. Each
 * prompt sends the whole history; the model's prefix reuse makes that cost only the new turn. Sessions save to
 * and load from a file (history, cached token ids and the KV cache).
 * @module
 */
import { GemmakitError } from "../errors.ts";
import type { ChatContentPart, ChatMessage } from "../tokenizer/chat_template.ts";
import {
  type ContextOverflow,
  type GenerateCallOptions,
  type GenerateInput,
  runToEnd,
  type StreamOptions,
} from "./call_options.ts";
import type { GenerationResult } from "./result.ts";

/** What a session needs of its model (Model has it; model.chat() makes the session). */
export interface ChatModel {
  readonly canChat: boolean;
  stream(input: GenerateInput, options?: StreamOptions): AsyncGenerator<string, GenerationResult>;
  /** `like`: the conversation's ids, which pick the cache to save when the model has several (batch slots). */
  saveState(path: string, extra?: Record<string, unknown>, like?: readonly number[]): Promise<void>;
  /** Token ids of a conversation (optional: without it a batched model saves the cache it used last). */
  encode?(input: GenerateInput): number[];
  loadState(path: string): Promise<Record<string, unknown>>;
}

export interface ChatSessionOptions {
  /** A system prompt, kept when the overflow policy drops old turns. */
  system?: string;
  /** Default `"drop-oldest"`: a long conversation loses its oldest turns, never the system prompt. */
  contextOverflow?: ContextOverflow;
  /** Options every prompt starts from (sampling, maxTokens, thinking, ...); a prompt's own options win. */
  defaults?: StreamOptions;
}

/** What a user turn says: text, or parts (text, image, video) as in ChatMessage content. */
export type UserContent = string | ChatContentPart[];

/**
 * A conversation with a model.
 *
 * @example
 * ```ts
 * const chat = model.chat({ system: "Answer briefly." });
 * for await (const text of chat.stream("Hello!")) Deno.stdout.writeSync(new TextEncoder().encode(text));
 * await chat.prompt("And again?", { signal: AbortSignal.timeout(10_000) });
 * await chat.save("chat.gksession");
 * ```
 */
export class ChatSession {
  readonly model: ChatModel;
  readonly #options: ChatSessionOptions;
  #history: ChatMessage[] = [];

  constructor(model: ChatModel, options: ChatSessionOptions = {}) {
    if (!model.canChat) {
      throw new GemmakitError("chat", "this checkpoint is not a chat model and has no turn format to fall back on", {
        hint: "use model.generate with a prompt string",
      });
    }
    this.model = model;
    this.#options = { ...options };
  }

  /** The conversation so far (user and model turns, without the system prompt). */
  get history(): readonly ChatMessage[] {
    return this.#history;
  }

  /** The messages a prompt sends: the system prompt, the history, the new turn. */
  #messages(content: UserContent): ChatMessage[] {
    const system: ChatMessage[] = this.#options.system ? [{ role: "system", content: this.#options.system }] : [];
    return [...system, ...this.#history, { role: "user", content }];
  }

  /**
   * Sends a user turn and streams the answer; the generator's return value is the GenerationResult. The turn and
   * the answer join the history when the answer ends (an aborted answer joins as far as it got; a failed one
   * leaves the history as it was).
   */
  async *stream(content: UserContent, options: StreamOptions = {}): AsyncGenerator<string, GenerationResult> {
    let sent: ChatMessage[] | undefined;
    const merged: StreamOptions = {
      contextOverflow: this.#options.contextOverflow ?? "drop-oldest",
      ...this.#options.defaults,
      ...options,
      onMessages: (m) => {
        sent = m;
        options.onMessages?.(m);
      },
    };
    const it = this.model.stream({ messages: this.#messages(content) }, merged);
    let text = "";
    let result: GenerationResult | undefined;
    try {
      while (true) {
        const r = await it.next();
        if (r.done) {
          result = r.value;
          break;
        }
        text += r.value;
        yield r.value;
      }
    } finally {
      // A consumer that breaks off still leaves a turn: what it saw of the answer.
      if (sent) {
        const system = this.#options.system ? 1 : 0;
        this.#history = [...sent.slice(system), { role: "assistant", content: result?.text ?? text }];
      }
    }
    return result!;
  }

  /** Sends a user turn and returns the answer's text (callbacks as for Model.generate). */
  async prompt(content: UserContent, options: GenerateCallOptions = {}): Promise<string> {
    return (await this.promptWithResult(content, options)).text;
  }

  /** Sends a user turn and returns the whole GenerationResult. */
  async promptWithResult(content: UserContent, options: GenerateCallOptions = {}): Promise<GenerationResult> {
    return await runToEnd((o) => this.stream(content, o), options);
  }

  /** Forgets the history (the system prompt stays). */
  reset(): void {
    this.#history = [];
  }

  /** Saves the history, the system prompt and the model's KV cache to a session file. */
  async save(path: string): Promise<void> {
    // A batched model holds several caches: the conversation's ids pick this session's.
    let like: number[] | undefined;
    if (this.#history.length) {
      const system = this.#options.system;
      const messages = [...(system ? [{ role: "system" as const, content: system }] : []), ...this.#history];
      try {
        like = this.model.encode?.({ messages });
      } catch { /* media parts or a template error: the slot used last */ }
    }
    await this.model.saveState(path, { chat: { system: this.#options.system ?? null, history: this.#history } }, like);
  }

  /**
   * Restores a session file into this session and the model's KV cache; the next prompt prefills only its new
   * turn. Throws SessionFileError when the file does not fit this model.
   */
  async load(path: string): Promise<void> {
    const extra = await this.model.loadState(path);
    const chat = extra.chat as { system?: string | null; history?: ChatMessage[] } | undefined;
    if (!chat || !Array.isArray(chat.history)) {
      throw new GemmakitError("session", `${path} holds no chat history`, { hint: "save it with ChatSession.save()" });
    }
    this.#history = chat.history;
    if (chat.system !== undefined) this.#options.system = chat.system ?? undefined;
  }
}
