/**
 * The generation loop of design.md: prefill the prompt, sample the first token on the device, then
 * replay the recorded decode step (forward + sample, reading and writing the device-side decode state)
 * many steps per native call, streaming text out between chunks.
 * @module
 */
import { ContextLengthError, GemmakitError } from "../ffi/errors.ts";
import { sample } from "../ops/sample.ts";
import type { Backend } from "../runtime/backend.ts";
import { DecodeProgram } from "../runtime/program.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { Workspace } from "../runtime/workspace.ts";
import { type StreamDecodable, StreamDecoder } from "../tokenizer/stream_decoder.ts";
import { type GenerateOptions, resolveLimits, resolveSampling, type SamplingOptions } from "./options.ts";
import type { ParsedResponse, ResponseEvent } from "./parsers/gemma4_response.ts";
import type { ToolCall, ToolCallParseError } from "./parsers/tool_calls.ts";

/** What the loop needs of a model: a prefill and a decode step over device-resident token and position. */
export interface CausalLM {
  readonly backend: Backend;
  readonly maxContext: number;
  readonly vocabSize: number;
  prefill(ids: ArrayLike<number>): Tensor;
  decodeStep(token: Tensor, position: Tensor, ws: Workspace, logits: Tensor): Tensor;
}

export type FinishReason = "stop" | "length" | "abort";

export interface GenerationResult {
  /** The answer. With a response parser (Gemma 4): the content only, without reasoning or tool calls. */
  text: string;
  /** Gemma 4: the thought blocks' text (trimmed; blocks joined with "\n"). Absent for other models. */
  reasoning?: string;
  /** Gemma 4: the tool calls the model made, in order. Absent for other models. */
  toolCalls?: ToolCall[];
  /** Gemma 4: tool calls that did not parse (or were cut off); never executed. Absent for other models. */
  toolCallErrors?: ToolCallParseError[];
  /** Generated token ids (a final stop token included). */
  tokens: number[];
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  timings: {
    /** Prompt processing, up to and including the first sampled token. */
    prefillMs: number;
    decodeMs: number;
    prefillTokensPerSecond: number;
    decodeTokensPerSecond: number;
    /** Native decode-program calls: one per chunk of tokens. */
    decodeCalls: number;
  };
}

// Layout of the device-side decode state (kernels/include/gemmakit.h GK_STATE_*).
const POSITION = 0, TOKEN = 1, HISTORY = 2, DONE = 3, FIELDS = 8;

/** Holds back text that may be the start of a stop string; finds the first stop string. */
class StopScanner {
  readonly #stops: string[];
  readonly #hold: number;
  text = "";
  #emitted = 0;
  constructor(stops: string[]) {
    this.#stops = stops;
    this.#hold = Math.max(0, ...stops.map((s) => s.length - 1));
  }
  /** Adds text; returns what can be emitted now and whether a stop string was found. */
  push(piece: string, final = false): { out: string; stopped: boolean } {
    this.text += piece;
    let end = final ? this.text.length : Math.max(this.#emitted, this.text.length - this.#hold);
    let stopped = false;
    for (const s of this.#stops) {
      const at = this.text.indexOf(s, Math.max(0, this.#emitted - s.length));
      if (at >= 0 && (!stopped || at < end)) [end, stopped] = [at, true];
    }
    if (stopped) this.text = this.text.slice(0, end);
    const out = this.text.slice(this.#emitted, end);
    this.#emitted = end;
    return { out, stopped };
  }
}

/** Splits generated ids into reasoning, content and tool calls (src/generate/parsers/gemma4_response.ts). */
export interface ResponseParser {
  push(id: number): ResponseEvent[];
  finish(): ResponseEvent[];
  readonly result: ParsedResponse;
}

/**
 * Generates from prompt token ids, yielding text pieces; the generator's return value is the result.
 * The model's KV cache is overwritten from position 0.
 * With `response`, ids go through its parser: only content is yielded (and stop strings look only at
 * content); every event, content included, goes to `onEvent`.
 */
export async function* generateTokens(
  lm: CausalLM,
  tokenizer: StreamDecodable,
  promptIds: readonly number[],
  stopTokenIds: readonly number[],
  options: GenerateOptions,
  defaults: SamplingOptions,
  response?: { parser: ResponseParser; onEvent?: (event: ResponseEvent) => void },
): AsyncGenerator<string, GenerationResult> {
  const sampling = resolveSampling(options, defaults);
  const { maxTokens, chunkSize, stop } = resolveLimits(options);
  const T = promptIds.length;
  if (T < 1) throw new GemmakitError("generate", "the prompt is empty");
  if (T >= lm.maxContext) throw new ContextLengthError("generate", T, lm.maxContext - 1);
  const backend = lm.backend;
  using ws = new Workspace(backend);
  const state = ws.get("state", [FIELDS], "i32");
  state.write([T - 1, promptIds[T - 1], T, 0, 0, 0, 0, 0]);
  const history = ws.get("history", [lm.maxContext], "i32");
  history.write(Int32Array.from({ length: lm.maxContext }, (_, i) => (i < T ? promptIds[i] : 0)));
  const stopIds = stopTokenIds.length ? ws.get("stop_ids", [stopTokenIds.length], "i32") : null;
  stopIds?.write(stopTokenIds);
  const logits = ws.get("logits", [1, lm.vocabSize]);
  const step = () => {
    lm.decodeStep(state.rows(TOKEN, 1), state.rows(POSITION, 1), ws, logits);
    sample(logits, sampling, state, history, stopIds);
  };

  const t0 = performance.now();
  {
    using first = lm.prefill(promptIds);
    sample(first, sampling, state, history, stopIds);
  }
  const decoder = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
  const scanner = new StopScanner(stop);
  // Content text of the parser's events (reasoning and tool calls go straight to onEvent).
  const route = (events: ResponseEvent[]): string => {
    let content = "";
    for (const e of events) {
      if (e.type === "content") content += e.text;
      else response!.onEvent?.(e);
    }
    return content;
  };
  const emit = (out: string) => {
    if (out) response?.onEvent?.({ type: "content", text: out });
    return out;
  };
  const tokens: number[] = [];
  let finishReason: FinishReason | undefined;
  let prefillMs = 0, decodeCalls = 0, tDecode = 0;
  let program: DecodeProgram | undefined;
  try {
    while (true) {
      const s = state.toArray();
      const fresh = s[HISTORY] > T + tokens.length
        ? history.rows(T + tokens.length, s[HISTORY] - T - tokens.length).toArray()
        : [];
      if (tokens.length === 0) [prefillMs, tDecode] = [performance.now() - t0, performance.now()];
      for (const id of fresh) {
        tokens.push(id);
        if (stopTokenIds.includes(id)) {
          finishReason = "stop";
          break;
        }
        const { out, stopped } = scanner.push(response ? route(response.parser.push(id)) : decoder.push(id));
        if (emit(out)) yield out;
        if (stopped) {
          finishReason = "stop";
          break;
        }
        if (tokens.length >= maxTokens) {
          finishReason = "length";
          break;
        }
      }
      if (finishReason) break;
      if (s[DONE]) {
        finishReason = "length"; // the history (context) is full
        break;
      }
      if (options.signal?.aborted) {
        finishReason = "abort";
        break;
      }
      const steps = Math.min(chunkSize, maxTokens - tokens.length, lm.maxContext - s[POSITION]);
      if (steps <= 0) {
        finishReason = "length";
        break;
      }
      if (!program) {
        // One eager step allocates the workspace, so the recording allocates nothing.
        step();
        program = DecodeProgram.record(backend, step);
        if (steps > 1) await program.runAsync(steps - 1);
      } else {
        // A worker thread runs the chunk: the event loop (abort signals, other requests) stays free.
        await program.runAsync(steps);
      }
      decodeCalls++;
    }
    if (finishReason !== "stop" || !stop.length) {
      const { out } = scanner.push(response ? route(response.parser.finish()) : decoder.flush(), true);
      if (emit(out)) yield out;
    } else if (response) {
      route(response.parser.finish()); // a stop string ended the content; reasoning and calls still count
    }
  } finally {
    program?.dispose();
  }
  const decodeMs = tDecode ? performance.now() - tDecode : 0;
  const parsed = response?.parser.result;
  return {
    text: scanner.text,
    ...(parsed
      ? { reasoning: parsed.reasoning, toolCalls: parsed.toolCalls, toolCallErrors: parsed.toolCallErrors }
      : {}),
    tokens,
    finishReason,
    promptTokens: T,
    completionTokens: tokens.length,
    timings: {
      prefillMs,
      decodeMs,
      prefillTokensPerSecond: T / (prefillMs / 1000),
      decodeTokensPerSecond: tokens.length > 1 ? (tokens.length - 1) / (decodeMs / 1000) : 0,
      decodeCalls,
    },
  };
}
