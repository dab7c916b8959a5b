/**
 * What generation gives back, typed in one place: the streamed response events, a family's response parser,
 * and the final result with its timings.
 * @module
 */
import type { ToolCallParseError } from "../errors.ts";
import type { ToolCall } from "./tools.ts";

/** One piece of a streamed answer. */
export type ResponseEvent =
  | { type: "reasoning"; text: string }
  | { type: "content"; text: string }
  | { type: "tool_call"; call: ToolCall }
  | { type: "tool_call_error"; error: ToolCallParseError };

/** What the whole answer parsed into, once the parser's `finish` has run. */
export interface ParsedResponse {
  content: string;
  reasoning: string;
  toolCalls: ToolCall[];
  toolCallErrors: ToolCallParseError[];
}

/**
 * A family's response parser: splits generated ids, one at a time as they stream, into content, reasoning and
 * tool calls. A family whose checkpoints mark these with special tokens provides one (src/models/registry.ts).
 */
export interface ResponseParser {
  push(id: number): ResponseEvent[];
  finish(): ResponseEvent[];
  readonly result: ParsedResponse;
}

export type FinishReason = "stop" | "length" | "abort";

export interface GenerationResult {
  /** The answer. With a response parser: the content only, without reasoning or tool calls. */
  text: string;
  /** The reasoning (thought blocks, trimmed, joined with "\n") a response parser split off; absent without one. */
  reasoning?: string;
  /** The tool calls the model made, in order. Absent for models without a response parser. */
  toolCalls?: ToolCall[];
  /** Tool calls that did not parse (or were cut off); never executed. Absent for models without a parser. */
  toolCallErrors?: ToolCallParseError[];
  /** Generated token ids (a final stop token included). */
  tokens: number[];
  /** With `topLogprobs`: each generated token's log-probability and alternatives (a final stop token excluded). */
  logprobs?: TokenLogprob[];
  finishReason: FinishReason;
  promptTokens: number;
  /** Prompt tokens whose KV came from the cache (the prefix shared with what the model last processed). */
  cachedTokens: number;
  completionTokens: number;
  timings: {
    /** Prompt processing (of the tokens not cached), up to and including the first sampled token. */
    prefillMs: number;
    decodeMs: number;
    prefillTokensPerSecond: number;
    decodeTokensPerSecond: number;
    /** Native decode-program calls: one per chunk of tokens. */
    decodeCalls: number;
  };
}

/** OpenAI's frequency/presence penalties and logit bias, resolved. */
export interface LogitProcessing {
  frequencyPenalty: number;
  presencePenalty: number;
  /** [token id, bias] pairs, ids distinct. */
  logitBias: readonly (readonly [number, number])[];
}

/**
 * A constrained-decoding matcher (structured output): the loop asks it for the allowed tokens of the next step,
 * copies the mask to the device, and tells it the token that was sampled.
 */
export interface TokenConstraint {
  /** The allowed-token bitmask of the next step: bit (id & 31) of word id >> 5, at least ceil(vocab / 32) words. */
  nextMask(): Promise<Int32Array> | Int32Array;
  /** Advances the matcher past a sampled token. */
  accept(id: number): void;
}

/** A token's log-probability and the most likely alternatives at its step (log-softmax of the processed logits). */
export interface TokenLogprob {
  id: number;
  logprob: number;
  top: { id: number; logprob: number }[];
}
