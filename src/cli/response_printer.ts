/**
 * How `deno task generate` shows a Gemma 4 answer: reasoning dimmed on a terminal (between plain
 * `[reasoning]` / `[/reasoning]` lines otherwise), or left out with --hide-reasoning; content as it
 * streams; each tool call as one JSON line `{"tool_call": {"name", "arguments"}}`, and a call that did not
 * parse as `{"tool_call_error": {"message", "raw"}}`.
 * @module
 */
import type { ResponseEvent } from "../generate/result.ts";

export interface PrinterOptions {
  /** Leave reasoning out. */
  hideReasoning?: boolean;
  /** Dim reasoning with ANSI codes (stdout is a terminal); else mark it with plain lines. */
  ansi?: boolean;
  /** Where text goes (stdout). */
  write: (text: string) => void;
}

const DIM = "\x1b[2m", RESET = "\x1b[0m";

/** Returns an onEvent callback and an `end()` that closes an open reasoning block. */
export function responsePrinter(options: PrinterOptions): { onEvent: (e: ResponseEvent) => void; end: () => void } {
  const { write, ansi = false, hideReasoning = false } = options;
  let inReasoning = false;
  let atLineStart = true;
  const out = (text: string) => {
    if (!text) return;
    write(text);
    atLineStart = text.endsWith("\n");
  };
  const closeReasoning = () => {
    if (!inReasoning) return;
    inReasoning = false;
    out(ansi ? `${RESET}\n` : `${atLineStart ? "" : "\n"}[/reasoning]\n`);
  };
  const line = (obj: unknown) => out(`${atLineStart ? "" : "\n"}${JSON.stringify(obj)}\n`);
  return {
    onEvent: (e) => {
      if (e.type === "reasoning") {
        if (hideReasoning) return;
        if (!inReasoning) out(ansi ? DIM : `${atLineStart ? "" : "\n"}[reasoning]\n`);
        inReasoning = true;
        out(e.text);
        return;
      }
      closeReasoning();
      if (e.type === "content") out(e.text);
      else if (e.type === "tool_call") line({ tool_call: e.call });
      else line({ tool_call_error: { message: e.error.message, raw: e.error.raw } });
    },
    end: closeReasoning,
  };
}
