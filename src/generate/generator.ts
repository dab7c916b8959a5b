/**
 * Generation as stages: the token loop (token_loop.ts) yields ids; a text stage turns them into text (the
 * stream decoder, or the family's response parser, which splits off reasoning and tool calls as events); the
 * stop scanner cuts the text at a stop string. Each stage is its own small piece; this file only joins them.
 * @module
 */
import { type StreamDecodable, StreamDecoder } from "../tokenizer/stream_decoder.ts";
import {
  type GenerateOptions,
  resolveLimits,
  resolveProcessing,
  resolveSampling,
  type SamplingOptions,
} from "./options.ts";
import type { GenerationResult, ResponseEvent, ResponseParser, TokenConstraint } from "./result.ts";
import { StopScanner } from "./stop_scanner.ts";
import { type CacheContents, type CausalLM, TokenLoop, type TokenLoopOptions, type TokenStream } from "./token_loop.ts";

/** Ids in, text out: what the stop scanner reads. */
interface TextStage {
  push(id: number): string;
  /** The text held back at the end of the answer. */
  flush(): string;
}

/** Plain text: the stream decoder, special tokens skipped. */
function decodedText(tokenizer: StreamDecodable): TextStage {
  const decoder = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
  return { push: (id) => decoder.push(id), flush: () => decoder.flush() };
}

/** The content of a parsed response; reasoning and tool calls go straight to `onEvent`. */
function parsedText(parser: ResponseParser, onEvent?: (event: ResponseEvent) => void): TextStage {
  const content = (events: ResponseEvent[]): string => {
    let text = "";
    for (const e of events) {
      if (e.type === "content") text += e.text;
      else onEvent?.(e);
    }
    return text;
  };
  return { push: (id) => content(parser.push(id)), flush: () => content(parser.finish()) };
}

/** What one generation call is given besides the model and the prompt. */
export interface GenerateRun {
  stopTokenIds: readonly number[];
  options: GenerateOptions;
  defaults: SamplingOptions;
  /** The family's parser for this answer (answers then stream as content, with other events to `onEvent`). */
  response?: { parser: ResponseParser; onEvent?: (event: ResponseEvent) => void };
  /** The prompt's media, in the family's type, handed to the model's prefill. */
  media?: unknown;
  /** The first prompt position to prefill: the KV cache holds the ones before it. Default 0. */
  start?: number;
  /** Told what the KV cache holds once the loop has ended (also when the consumer broke off); not on failure. */
  onCached?: (contents: CacheContents) => void;
  /** Structured output's per-step token mask (compiled from options.responseFormat by the caller). */
  constraint?: TokenConstraint;
  /** Where the ids come from instead of a token loop of its own over `lm`: a sequence of a batch. */
  stream?: (options: TokenLoopOptions) => TokenStream;
}

/**
 * Generates from prompt token ids, yielding text pieces; the generator's return value is the result.
 * With a response parser only content is yielded (and stop strings look only at content); every event,
 * content included, goes to `onEvent`.
 */
export async function* generateTokens(
  lm: CausalLM,
  tokenizer: StreamDecodable,
  promptIds: readonly number[],
  run: GenerateRun,
): AsyncGenerator<string, GenerationResult> {
  const { options } = run;
  const { maxTokens, chunkSize } = resolveLimits(options);
  const loopOptions: TokenLoopOptions = {
    sampling: resolveSampling(options, run.defaults),
    maxTokens,
    chunkSize,
    stopTokenIds: run.stopTokenIds,
    signal: options.signal,
    start: run.start,
    ...resolveProcessing(options, lm.vocabSize),
    constraint: run.constraint,
  };
  const loop = run.stream ? run.stream(loopOptions) : new TokenLoop(lm, promptIds, run.media, loopOptions);
  try {
    return yield* textOf(loop, tokenizer, promptIds, run);
  } finally {
    if (loop.cached) run.onCached?.(loop.cached);
  }
}

async function* textOf(
  loop: TokenStream,
  tokenizer: StreamDecodable,
  promptIds: readonly number[],
  run: GenerateRun,
): AsyncGenerator<string, GenerationResult> {
  const { options, response } = run;
  const { stop } = resolveLimits(options);
  const text = response ? parsedText(response.parser, response.onEvent) : decodedText(tokenizer);
  const scanner = new StopScanner(stop);
  const emit = (out: string) => {
    if (out) response?.onEvent?.({ type: "content", text: out });
    return out;
  };
  let stopped = false;
  for await (const id of loop.run()) {
    const lp = loop.logprobs[loop.tokens.length - 1];
    if (lp) options.onLogprob?.(lp);
    const r = scanner.push(text.push(id));
    if (emit(r.out)) yield r.out;
    if ((stopped = r.stopped)) break;
  }
  if (!stopped) {
    const { out } = scanner.push(text.flush(), true);
    if (emit(out)) yield out;
  } else if (response) {
    text.flush(); // a stop string ended the content; reasoning and calls still count
  }
  const decodeMs = loop.decodeMs, T = promptIds.length, n = loop.tokens.length, start = loop.start;
  const parsed = response?.parser.result;
  return {
    text: scanner.text,
    ...(parsed
      ? { reasoning: parsed.reasoning, toolCalls: parsed.toolCalls, toolCallErrors: parsed.toolCallErrors }
      : {}),
    tokens: loop.tokens,
    ...(loop.options.topLogprobs !== undefined && {
      logprobs: loop.logprobs.slice(0, n - (loop.finishReason === "stop" ? 1 : 0)),
    }),
    finishReason: stopped ? "stop" : loop.finishReason!,
    promptTokens: T,
    cachedTokens: start,
    completionTokens: n,
    timings: {
      prefillMs: loop.prefillMs,
      decodeMs,
      // A request aborted while it waited for a batch slot prefilled nothing.
      prefillTokensPerSecond: loop.prefillMs > 0 ? (T - start) / (loop.prefillMs / 1000) : 0,
      decodeTokensPerSecond: n > 1 ? (n - 1) / (decodeMs / 1000) : 0,
      decodeCalls: loop.decodeCalls,
    },
  };
}
