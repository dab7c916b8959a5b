/** Shared pieces of the server tests: the fixture model, SSE parsing, a scriptable stand-in model. */
import type { GenerateInput, GenerationResult } from "../../mod.ts";
import type { ServedModel } from "../../examples/server/generation.ts";
import type { Backend } from "../../mod.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;
export const TEXT_MODEL = `${ROOT}tests/fixtures/gemma3-text-mixed`;
export const MODEL_ID = "gemma3-text-mixed";

/** A tiny PNG (8x8, red; written by PIL), as a data URL. */
export const PNG_DATA_URL =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAFElEQVR4nGM8ISfHgA0wYRUdtBIA0MoBFD5jqJkAAAAASUVORK5CYII=";

/** Base64 of bytes (for data URLs). */
export function encodeBase64(bytes: Uint8Array): string {
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** The `data:` payloads of an SSE body, in order. */
export async function sseData(response: Response): Promise<string[]> {
  const text = await response.text();
  return text.split("\n\n").filter((e) => e.trim()).map((e) => {
    if (!e.startsWith("data: ")) throw new Error(`not an SSE data event: ${JSON.stringify(e)}`);
    return e.slice(6);
  });
}

/**
 * A streamed response's raw SSE text, or "aborted" when `abortAfterEvents` (≥ 0) events have arrived: then
 * `controller` (the request's) is aborted and the body cancelled, as a client that breaks off mid-stream does.
 */
export async function readSseUntil(
  response: Response,
  controller: AbortController,
  abortAfterEvents = -1,
): Promise<string | "aborted"> {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "", events = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) return text;
    text += value;
    events += value.split("\n\n").length - 1;
    if (abortAfterEvents >= 0 && events >= abortAfterEvents) {
      controller.abort();
      await reader.cancel().catch(() => {});
      return "aborted";
    }
  }
}

/** mulberry32: a seeded generator, so a failing run can be repeated with its printed seed. */
export function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function json(body: unknown, headers: Record<string, string> = {}): RequestInit {
  return { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) };
}

/** A scripted piece: answer text, or an event as Gemma 4's response parser reports it. */
export type Piece =
  | string
  | { type: "reasoning"; text: string }
  | { type: "tool_call"; call: { name: string; arguments: Record<string, unknown> } };

/**
 * A stand-in for a loaded model whose generations the test drives: each `stream` call waits for `step()`
 * between pieces (unless `autoStep`), so a test can hold a generation open (to fill the queue) and see the
 * signal it got. Text pieces are yielded; event pieces go to `onEvent`, as `Model.stream` does for Gemma 4.
 */
export class ScriptedModel implements ServedModel {
  readonly backend: Backend;
  readonly maxContext = 1024;
  readonly supportsChat = true;
  readonly calls: { input: GenerateInput; signal?: AbortSignal; done: boolean }[] = [];
  #waiters: (() => void)[] = [];

  readonly options: Record<string, unknown>[] = [];

  constructor(backend: Backend, readonly pieces: Piece[] = ["Hello", " there", "!"], readonly autoStep = false) {
    this.backend = backend;
  }

  encode(input: GenerateInput): number[] {
    const text = typeof input === "string" ? input : "prompt" in input ? input.prompt : JSON.stringify(input);
    return Array.from({ length: Math.max(1, Math.ceil(text.length / 4)) }, (_, i) => i);
  }

  /** Lets every running generation take one more step. */
  step(): void {
    const w = this.#waiters;
    this.#waiters = [];
    w.forEach((r) => r());
  }

  /** Resolves once `n` generations have started. */
  async started(n: number): Promise<void> {
    while (this.calls.length < n) await new Promise((r) => setTimeout(r, 1));
  }

  async *stream(
    input: GenerateInput,
    options: { signal?: AbortSignal; maxTokens?: number; onEvent?: (e: never) => void } = {},
  ): AsyncGenerator<string, GenerationResult> {
    const call = { input, signal: options.signal, done: false };
    this.calls.push(call);
    this.options.push(options);
    let n = 0, text = "";
    let finishReason: GenerationResult["finishReason"] = "stop";
    for (const piece of this.pieces) {
      if (!this.autoStep) await new Promise<void>((r) => this.#waiters.push(r));
      if (options.signal?.aborted) {
        finishReason = "abort";
        break;
      }
      n++;
      if (typeof piece !== "string") {
        options.onEvent?.(piece as never);
        continue;
      }
      text += piece;
      yield piece;
    }
    call.done = true;
    return {
      text,
      tokens: Array.from({ length: n }, (_, i) => i),
      finishReason,
      promptTokens: this.encode(input).length,
      cachedTokens: 0,
      completionTokens: n,
      timings: { prefillMs: 1, decodeMs: 1, prefillTokensPerSecond: 1, decodeTokensPerSecond: 1, decodeCalls: n },
    };
  }
}
