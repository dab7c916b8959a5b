/**
 * What generation calls take: the input (a prompt or a conversation) and the options of Model.stream /
 * generate / events and of ChatSession.
 * @module
 */
import type { ChatMessage } from "../tokenizer/chat_template.ts";
import type { ImageOptions, VideoOptions } from "./media.ts";
import type { GenerateOptions } from "./options.ts";
import type { GenerationResult, ResponseEvent } from "./result.ts";
import type { ToolCall, ToolSpec } from "./tools.ts";
import type { ToolCallParseError } from "../errors.ts";

/** A raw prompt (encoded as is, BOS added), or a conversation rendered with the chat template. */
export type GenerateInput = string | { prompt: string } | { messages: ChatMessage[] };

/**
 * What to do when a conversation does not fit the context: `"error"` throws ContextLengthError; `"drop-oldest"`
 * keeps the system messages and drops the oldest turns (a user message and
 * the answers and tool results after it) until it fits, and throws only when the last turn alone does not.
 */
export type ContextOverflow = "error" | "drop-oldest";

/** How a conversation is rendered (e.g. Gemma 4's template: the thinking switch and tool declarations). */
export interface ChatOptions {
  /** Let the model think first (`enable_thinking` of the chat template). Default: the template's (off). */
  thinking?: boolean;
  /** Tools the model may call; its calls come back in GenerationResult.toolCalls. */
  tools?: ToolSpec[];
  /**
   * A conversation over the context: `"error"` (the default for model calls) throws ContextLengthError when the
   * prompt does not fit; `"drop-oldest"` (ChatSession's default) drops turns until the prompt leaves room for
   * `maxTokens` of answer (at most half the context).
   */
  contextOverflow?: ContextOverflow;
}

export interface StreamOptions extends GenerateOptions, ChatOptions, ImageOptions, VideoOptions {
  /** Every piece of the answer as it streams (content, reasoning, tool calls); models with a response parser. */
  onEvent?: (event: ResponseEvent) => void;
  /** Called with the conversation as sent, once the overflow policy has dropped what it drops. */
  onMessages?: (messages: ChatMessage[]) => void;
}

export interface GenerateCallOptions extends StreamOptions {
  /** Called with each piece of text as it is generated (the content only, with a response parser). */
  onText?: (text: string) => void;
  /** Called with each piece of the model's reasoning (thought blocks), with a response parser. */
  onReasoning?: (text: string) => void;
  /** Called with each tool call once it has closed and parsed. */
  onToolCall?: (call: ToolCall) => void;
  /** Called with each tool call that did not parse. */
  onToolCallError?: (error: ToolCallParseError) => void;
}

/**
 * Runs a stream to its end, handing each piece to the call's callbacks (text, reasoning, tool calls): what
 * Model.generate and ChatSession.promptWithResult do with their own stream.
 */
export async function runToEnd(
  stream: (options: StreamOptions) => AsyncGenerator<string, GenerationResult>,
  options: GenerateCallOptions,
): Promise<GenerationResult> {
  const { onReasoning, onToolCall, onToolCallError, onEvent } = options;
  const it = stream({
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
