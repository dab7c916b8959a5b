/**
 * The one place that drives the library's generation API for the server: runs a request on the model and
 * turns what the model produces into events (answer text, reasoning text, tool calls) and one outcome with
 * token counts. Generation always runs to its end — a disconnect aborts it through the signal, which the
 * generator sees between decode chunks — so the model's own bookkeeping (decode program, workspace) is
 * always released.
 * @module
 */
import type { GenerateInput, GenerationResult, Model, TokenLogprob } from "../../mod.ts";
import type { GenerationRequest } from "./request.ts";

/** Options of `Model.stream` (sampling, limits, the chat template's tools and thinking switch, events). */
export type StreamOptions = NonNullable<Parameters<Model["stream"]>[1]>;
/** An OpenAI-shaped function tool, as the chat template takes it. */
export type ToolSpec = NonNullable<StreamOptions["tools"]>[number];

/** What the server needs of a model (a `Model` from loadModel; tests may pass a stand-in). */
export type ServedModel =
  & Pick<Model, "backend" | "maxContext" | "encode" | "stream" | "supportsChat">
  & Partial<
    Pick<
      Model,
      | "canChat"
      | "supportsImages"
      | "supportsVideo"
      | "visionCacheStats"
      | "tokenizer"
      | "toolCallFormat"
      | "batchStats"
    >
  >;

export interface ToolCall {
  /** `call_...`, unique in the response. */
  id: string;
  name: string;
  /** The arguments as a JSON string, as OpenAI sends them. */
  arguments: string;
}

export type GenerationEvent =
  | { type: "content"; text: string }
  | { type: "reasoning"; text: string }
  | { type: "tool_call"; call: ToolCall }
  /** A generated token's logprob, sent before the text it makes (with logprobs requested). */
  | { type: "logprob"; entry: TokenLogprob };

export interface GenerationOutcome {
  content: string;
  reasoning: string;
  toolCalls: ToolCall[];
  finishReason: "stop" | "length" | "tool_calls" | "abort";
  promptTokens: number;
  completionTokens: number;
  /** With logprobs requested: one per generated token (a final stop token excluded). */
  logprobs?: TokenLogprob[];
  /** From request arrival to the first generated piece, when there was one. */
  ttftSeconds?: number;
  decodeTokensPerSecond: number;
}

/** The input the library takes for a request. */
export function libraryInput(request: GenerationRequest): GenerateInput {
  return "prompt" in request.input ? request.input.prompt : request.input;
}

/** How the chat template renders the request (tools, the thinking switch); nothing for a raw prompt. */
export function chatOptions(request: GenerationRequest): Pick<StreamOptions, "tools" | "thinking"> {
  if ("prompt" in request.input) return {};
  return {
    ...(request.tools && { tools: request.tools }),
    ...(request.thinking !== undefined && { thinking: request.thinking }),
  };
}

let callCounter = 0;
const callId = () => `call_${Date.now().toString(36)}${(++callCounter).toString(36)}`;

/**
 * Runs one request (the caller holds the model's queue slot). `onEvent` sees every piece as it comes;
 * `startedAt` (performance.now()) is the request's arrival, for time to first token.
 */
export async function runGeneration(
  model: ServedModel,
  request: GenerationRequest,
  maxTokens: number,
  signal: AbortSignal,
  startedAt: number,
  onEvent: (e: GenerationEvent) => void,
): Promise<GenerationOutcome> {
  let content = "", reasoning = "";
  const toolCalls: ToolCall[] = [];
  let ttftSeconds: number | undefined;
  const first = () => (ttftSeconds ??= (performance.now() - startedAt) / 1000);
  // Content arrives as the yielded text (for every model); Gemma 4's parser adds reasoning and tool
  // calls as events, in order with the content (content events are the yielded text, so skipped here).
  // A malformed tool call (tool_call_error) is neither content nor a call: OpenAI has no place for it.
  const it = model.stream(libraryInput(request), {
    maxTokens,
    ...request.sampling,
    stop: request.stop,
    signal,
    ...(request.topLogprobs !== undefined && {
      topLogprobs: request.topLogprobs,
      onLogprob: (entry: TokenLogprob) => onEvent({ type: "logprob", entry }),
    }),
    ...(request.responseFormat && { responseFormat: request.responseFormat }),
    ...chatOptions(request),
    // ffmpeg is killed when the client goes away, as generation stops.
    ...(request.videoLoading && { videoLoading: { ...request.videoLoading, signal } }),
    // Decoding and resizing a large image takes seconds: in a worker, /health and other requests keep answering.
    imagesOffThread: true,
    onEvent: (e) => {
      if (e.type === "reasoning") {
        first();
        reasoning += e.text;
        onEvent({ type: "reasoning", text: e.text });
      } else if (e.type === "tool_call") {
        first();
        const call = { id: callId(), name: e.call.name, arguments: JSON.stringify(e.call.arguments ?? {}) };
        toolCalls.push(call);
        onEvent({ type: "tool_call", call });
      }
    },
  });
  let result: GenerationResult;
  while (true) {
    const r = await it.next();
    if (r.done) {
      result = r.value;
      break;
    }
    first();
    content += r.value;
    onEvent({ type: "content", text: r.value });
  }
  return {
    content,
    reasoning,
    toolCalls,
    finishReason: result.finishReason,
    promptTokens: result.promptTokens,
    completionTokens: result.completionTokens,
    ...(result.logprobs && { logprobs: result.logprobs }),
    ttftSeconds,
    decodeTokensPerSecond: result.timings.decodeTokensPerSecond,
  };
}
