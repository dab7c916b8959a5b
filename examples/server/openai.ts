/**
 * Response bodies and stream chunks in OpenAI's shapes (chat.completion, chat.completion.chunk,
 * text_completion), built from a generation's events and outcome.
 * @module
 */
import type { TokenLogprob } from "../../mod.ts";
import type { GenerationEvent, GenerationOutcome } from "./generation.ts";

/** A token id's text, for logprobs: the model's tokenizer (special tokens as written), or "<id>" without one. */
export type TokenText = (id: number) => string;

const utf8 = new TextEncoder();

/** OpenAI's chat logprobs content entries. */
export function chatLogprobs(entries: readonly TokenLogprob[], text: TokenText) {
  const one = (id: number, logprob: number) => {
    const token = text(id);
    return { token, logprob, bytes: [...utf8.encode(token)] };
  };
  return {
    content: entries.map((e) => ({
      ...one(e.id, e.logprob),
      top_logprobs: e.top.map((t) => one(t.id, t.logprob)),
    })),
    refusal: null,
  };
}

/** Legacy completions' logprobs: parallel arrays, alternatives as {token: logprob}, offsets into the text. */
export function completionLogprobs(entries: readonly TokenLogprob[], text: TokenText, offset = 0) {
  const tokens = entries.map((e) => text(e.id));
  const text_offset: number[] = [];
  for (const t of tokens) {
    text_offset.push(offset);
    offset += t.length;
  }
  return {
    tokens,
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) => Object.fromEntries(e.top.map((t) => [text(t.id), t.logprob]))),
    text_offset,
  };
}

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

export function chatCompletion(meta: ResponseMeta, o: GenerationOutcome, text: TokenText = String) {
  const message: Record<string, unknown> = { role: "assistant", content: o.content };
  if (o.reasoning) message.reasoning_content = o.reasoning;
  if (o.toolCalls.length) message.tool_calls = toolCallsOut(o);
  return {
    ...meta,
    object: "chat.completion",
    choices: [{
      index: 0,
      message,
      logprobs: o.logprobs ? chatLogprobs(o.logprobs, text) : null,
      finish_reason: finishReason(o),
    }],
    usage: usageOf(o),
  };
}

/** Streams chat.completion.chunk objects: role first, then one delta per event, then the finish. */
export class ChatChunks {
  #toolIndex = 0;
  /** Logprobs of tokens whose text has not gone out yet: they ride on the next chunk. */
  #logprobs: TokenLogprob[] = [];
  constructor(readonly meta: ResponseMeta, readonly text: TokenText = String) {}

  #chunk(delta: Record<string, unknown>, finish: string | null = null) {
    const lp = this.#logprobs.length ? chatLogprobs(this.#logprobs.splice(0), this.text) : null;
    return {
      ...this.meta,
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta, logprobs: lp, finish_reason: finish }],
    };
  }

  start() {
    return this.#chunk({ role: "assistant", content: "" });
  }

  /** The chunk for an event, or undefined for one that waits for the next chunk (a token's logprob). */
  event(e: GenerationEvent) {
    switch (e.type) {
      case "logprob":
        this.#logprobs.push(e.entry);
        return undefined;
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

export function textCompletion(meta: ResponseMeta, o: GenerationOutcome, text: TokenText = String) {
  const logprobs = o.logprobs ? completionLogprobs(o.logprobs, text) : null;
  return {
    ...meta,
    object: "text_completion",
    choices: [{ index: 0, text: o.content, logprobs, finish_reason: finishReason(o) }],
    usage: usageOf(o),
  };
}

export function textCompletionChunk(
  meta: ResponseMeta,
  text: string,
  finish: string | null = null,
  logprobs: ReturnType<typeof completionLogprobs> | null = null,
) {
  return { ...meta, object: "text_completion", choices: [{ index: 0, text, logprobs, finish_reason: finish }] };
}

export function textCompletionUsage(meta: ResponseMeta, o: GenerationOutcome) {
  return { ...meta, object: "text_completion", choices: [], usage: usageOf(o) };
}

export function finishOf(o: GenerationOutcome): string {
  return finishReason(o);
}
