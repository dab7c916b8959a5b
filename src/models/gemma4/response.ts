/**
 * Splits a Gemma 4 answer, token by token as it streams, into reasoning, content and tool calls.
 *
 * transformers' Gemma 4 response template (cli/serving/utils.py) reads a reply as
 *   (<|channel>thought\n{thinking}<channel|>)? (<|tool_call>call:NAME{args}<tool_call|>)* {content}
 * ending at <turn|>, <|tool_response> or <eos>. Every marker is ONE special token, so we switch on token
 * ids, never on text: a user can type "<|channel>" and it stays text. Between markers the text comes from a
 * StreamDecoder (special tokens skipped), flushed at each switch.
 *
 * Where we differ from transformers, on purpose:
 * - a thought block may come anywhere, also after content or with thinking off (transformers then drops
 *   the content before it); several blocks are joined with "\n";
 * - a malformed tool call becomes a `tool_call_error` event carrying a {@link ToolCallParseError} (never
 *   content, never executed); transformers raises for the whole reply. A call cut off by the token limit
 *   is such an error too.
 * Like transformers, reasoning and content are trimmed: leading whitespace is dropped and trailing
 * whitespace is held back until more text follows, so the streamed pieces join to the trimmed field.
 * @module
 */
import type { Tokenizer } from "../../tokenizer/tokenizer.ts";
import { type StreamDecodable, StreamDecoder } from "../../tokenizer/stream_decoder.ts";
import { parseToolCall, segmentsText, STRING_DELIM } from "./tool_calls.ts";
import { ToolCallParseError } from "../../errors.ts";
import type { ParsedResponse, ResponseEvent, ResponseParser } from "../../generate/result.ts";

/** The ids of Gemma 4's response markers in one tokenizer. */
export interface Gemma4ResponseTokens {
  channelOpen: number;
  channelClose: number;
  toolCallOpen: number;
  toolCallClose: number;
  stringDelim: number;
}

const MARKERS: Record<keyof Gemma4ResponseTokens, string> = {
  channelOpen: "<|channel>",
  channelClose: "<channel|>",
  toolCallOpen: "<|tool_call>",
  toolCallClose: "<tool_call|>",
  stringDelim: '<|"|>',
};

/**
 * The marker ids when the tokenizer has all of them as special tokens (a Gemma 4 checkpoint), else
 * undefined: Gemma 3 and others then stream plain text exactly as before.
 */
export function gemma4ResponseTokens(
  tokenizer: Pick<Tokenizer, "tokenToId" | "isSpecialId">,
): Gemma4ResponseTokens | undefined {
  const out: Partial<Gemma4ResponseTokens> = {};
  for (const [key, text] of Object.entries(MARKERS) as [keyof Gemma4ResponseTokens, string][]) {
    const id = tokenizer.tokenToId(text);
    if (id === undefined || !tokenizer.isSpecialId(id)) return undefined;
    out[key] = id;
  }
  return out as Gemma4ResponseTokens;
}

/** Streams a field trimmed: leading whitespace dropped, trailing whitespace held until text follows. */
class Trimmed {
  #started = false;
  #held = "";
  push(text: string): string {
    if (!this.#started) {
      text = text.trimStart();
      if (!text) return "";
      this.#started = true;
    }
    const all = this.#held + text;
    const body = all.trimEnd();
    this.#held = all.slice(body.length);
    return body;
  }
  /** Drops the held whitespace (end of the field, or of one thought block). */
  end(): void {
    this.#held = "";
  }
}

type Mode = "content" | "header" | "reasoning" | "call";

/**
 * The streaming parser for one answer.
 *
 * @example
 * ```ts
 * const tokens = gemma4ResponseTokens(tokenizer);
 * if (tokens) {
 *   const parser = new Gemma4ResponseParser(tokenizer, tokens);
 *   for (const id of generated) for (const e of parser.push(id)) console.log(e);
 *   parser.finish();
 * }
 * ```
 */
export class Gemma4ResponseParser implements ResponseParser {
  readonly #t: Gemma4ResponseTokens;
  readonly #decoder: StreamDecoder;
  #mode: Mode = "content";
  #header = "";
  #segments: (string | typeof STRING_DELIM)[] = [];
  readonly #content = new Trimmed();
  #reasoning = new Trimmed();
  #blockStarted = false;
  readonly result: ParsedResponse = { content: "", reasoning: "", toolCalls: [], toolCallErrors: [] };

  /**
   * `promptIds`: the prompt, when it may end inside a thought block (a template that writes
   * `<|channel>thought\n` itself); the answer then starts as reasoning.
   */
  constructor(
    tokenizer: StreamDecodable,
    tokens: Gemma4ResponseTokens,
    options: { promptIds?: readonly number[] } = {},
  ) {
    this.#t = tokens;
    this.#decoder = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
    const p = options.promptIds ?? [];
    const markers = new Set([tokens.channelOpen, tokens.channelClose, tokens.toolCallOpen, tokens.toolCallClose]);
    for (let i = p.length - 1; i >= 0; i--) {
      if (!markers.has(p[i])) continue;
      if (p[i] === tokens.channelOpen) this.#mode = "reasoning";
      break;
    }
  }

  /** Adds one generated token id; returns the events it completes (often none). */
  push(id: number): ResponseEvent[] {
    const t = this.#t;
    const out: ResponseEvent[] = [];
    switch (id) {
      case t.channelOpen:
        if (this.#mode === "content") this.#switch("header", out);
        break;
      case t.channelClose:
        if (this.#mode === "header" || this.#mode === "reasoning") this.#switch("content", out);
        break;
      case t.toolCallOpen:
        // A call while thinking closes the thought; a call inside a call means the first one never closed.
        this.#switch("call", out);
        break;
      case t.toolCallClose:
        if (this.#mode === "call") this.#switch("content", out);
        break;
      case t.stringDelim:
        if (this.#mode === "call") {
          this.#text(this.#decoder.flush(), out);
          this.#segments.push(STRING_DELIM);
        }
        break;
      default:
        this.#text(this.#decoder.push(id), out);
    }
    return out;
  }

  /** Ends the answer: the held text, and an error for a tool call that never closed. */
  finish(): ResponseEvent[] {
    const out: ResponseEvent[] = [];
    this.#switch("content", out, true);
    this.#content.end();
    return out;
  }

  /** Leaves the current mode (flushing its text) and enters `next`. */
  #switch(next: Mode, out: ResponseEvent[], finishing = false): void {
    this.#text(this.#decoder.flush(), out);
    const was = this.#mode;
    if (was === "header") this.#headerEnd(out);
    if (was === "reasoning" || was === "header") {
      // Each thought block is trimmed on its own.
      this.#reasoning = new Trimmed();
      this.#blockStarted = false;
    }
    if (was === "call") {
      const segments = this.#segments;
      this.#segments = [];
      try {
        // Cut off by the token limit, or followed by another <|tool_call> before its <tool_call|>.
        if (finishing || next === "call") {
          throw new ToolCallParseError(segmentsText(segments), "the tool call never closed with <tool_call|>");
        }
        const call = parseToolCall(segments);
        this.result.toolCalls.push(call);
        out.push({ type: "tool_call", call });
      } catch (e) {
        if (!(e instanceof ToolCallParseError)) throw e;
        this.result.toolCallErrors.push(e);
        out.push({ type: "tool_call_error", error: e });
      }
    }
    this.#mode = next;
    this.#header = "";
  }

  /** Routes decoded text to the current mode. */
  #text(text: string, out: ResponseEvent[]): void {
    if (!text) return;
    switch (this.#mode) {
      case "content": {
        const piece = this.#content.push(text);
        if (piece) {
          this.result.content += piece;
          out.push({ type: "content", text: piece });
        }
        break;
      }
      case "header": {
        // "<|channel>thought\n": the channel name runs to the first newline; the rest is reasoning.
        this.#header += text;
        const nl = this.#header.indexOf("\n");
        if (nl >= 0) {
          const rest = this.#header.slice(nl + 1);
          this.#mode = "reasoning";
          this.#header = "";
          this.#reason(rest, out);
        }
        break;
      }
      case "reasoning":
        this.#reason(text, out);
        break;
      case "call":
        this.#segments.push(text); // parseToolCall joins neighbouring text
    }
  }

  /** A header that closed before its newline ("<|channel>thought<channel|>"): any text after the name. */
  #headerEnd(out: ResponseEvent[]): void {
    const rest = this.#header.replace(/^thought/, "");
    this.#header = "";
    this.#reason(rest, out);
  }

  #reason(text: string, out: ResponseEvent[]): void {
    const piece = this.#reasoning.push(text);
    if (!piece) return;
    // Blocks after the first are joined with a newline.
    const lead = !this.#blockStarted && this.result.reasoning ? "\n" : "";
    this.#blockStarted = true;
    this.result.reasoning += lead + piece;
    out.push({ type: "reasoning", text: lead + piece });
  }
}
