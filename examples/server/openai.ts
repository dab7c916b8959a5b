/**
 * Response bodies and stream chunks in OpenAI's shapes (chat.completion, chat.completion.chunk,
 * text_completion), built from a generation's events and outcome.
 * @module
 */
import type { GenerationEvent, GenerationOutcome } from "./generation.ts";

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
}

export function usageOf(o: GenerationOutcome) {
  return {
    prompt_tokens: o.promptTokens,
    completion_tokens: o.completionTokens,
    total_tokens: o.promptTokens + o.completionTokens,
  };
}

/** OpenAI has no "abort": a client that disconnected reads nothing; a stop it asked for reads "stop". */
function finishReason(o: GenerationOutcome): "stop" | "length" | "tool_calls" {
  if (o.toolCalls.length) return "tool_calls";
  return o.finishReason === "length" ? "length" : "stop";
}

const toolCallsOut = (o: GenerationOutcome) =>
  o.toolCalls.map((c) => ({ id: c.id, type: "function", function: { name: c.name, arguments: c.arguments } }));

export function chatCompletion(meta: ResponseMeta, o: GenerationOutcome) {
  const message: Record<string, unknown> = { role: "assistant", content: o.content };
  if (o.reasoning) message.reasoning_content = o.reasoning;
  if (o.toolCalls.length) message.tool_calls = toolCallsOut(o);
  return {
    ...meta,
    object: "chat.completion",
    choices: [{ index: 0, message, logprobs: null, finish_reason: finishReason(o) }],
    usage: usageOf(o),
  };
}

/** Streams chat.completion.chunk objects: role first, then one delta per event, then the finish. */
export class ChatChunks {
  #toolIndex = 0;
  constructor(readonly meta: ResponseMeta) {}

  #chunk(delta: Record<string, unknown>, finish: string | null = null) {
    return {
      ...this.meta,
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
    };
  }

  start() {
    return this.#chunk({ role: "assistant", content: "" });
  }

  event(e: GenerationEvent) {
    switch (e.type) {
      case "content":
        return this.#chunk({ content: e.text });
      case "reasoning":
        return this.#chunk({ reasoning_content: e.text });
      case "tool_call":
        return this.#chunk({
          tool_calls: [{
            index: this.#toolIndex++,
            id: e.call.id,
            type: "function",
            function: { name: e.call.name, arguments: e.call.arguments },
          }],
        });
    }
  }

  finish(o: GenerationOutcome) {
    return this.#chunk({}, finishReason(o));
  }

  /** The extra last chunk of `stream_options: {include_usage: true}`: no choices, the usage. */
  usage(o: GenerationOutcome) {
    return { ...this.meta, object: "chat.completion.chunk", choices: [], usage: usageOf(o) };
  }
}

export function textCompletion(meta: ResponseMeta, o: GenerationOutcome) {
  return {
    ...meta,
    object: "text_completion",
    choices: [{ index: 0, text: o.content, logprobs: null, finish_reason: finishReason(o) }],
    usage: usageOf(o),
  };
}

export function textCompletionChunk(meta: ResponseMeta, text: string, finish: string | null = null) {
  return { ...meta, object: "text_completion", choices: [{ index: 0, text, logprobs: null, finish_reason: finish }] };
}

export function textCompletionUsage(meta: ResponseMeta, o: GenerationOutcome) {
  return { ...meta, object: "text_completion", choices: [], usage: usageOf(o) };
}

export function finishOf(o: GenerationOutcome): string {
  return finishReason(o);
}
