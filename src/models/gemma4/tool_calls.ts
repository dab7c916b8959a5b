/**
 * Gemma 4's tool-call syntax, `call:NAME{key:value,...}`, into a typed `{name, arguments}`.
 *
 * The grammar is the one the chat template writes (its `format_argument` macro, with escape_keys=False
 * for calls) and transformers' Gemma 4 response template reads (cli/serving/utils.py: "json" content with
 * `unquoted_keys` and `<|"|>` string delimiters):
 *
 *   call   := "call:" NAME object
 *   object := "{" [ key ":" value ("," key ":" value)* ] "}"
 *   key    := bare word | STRING
 *   value  := STRING | number | "true" | "false" | "null" | object | array
 *   array  := "[" [ value ("," value)* ] "]"
 *   STRING := <|"|> any text, quotes and braces included <|"|>
 *
 * `<|"|>` is one special token, so the caller hands the text as segments split at that token
 * ({@link STRING_DELIM}); nothing inside a string needs escaping. We are a little more lenient than
 * transformers (which turns the text into JSON and calls json.loads): whitespace between tokens is allowed,
 * and `None` (what the template prints for a Python None) reads as null. Anything else is a
 * {@link ToolCallParseError} naming the position.
 * @module
 */
import { ToolCallParseError } from "../../errors.ts";
import type { ToolCall, ToolValue } from "../../generate/tools.ts";

/** Marks a `<|"|>` token among the text segments of a tool call. */
export const STRING_DELIM: unique symbol = Symbol('<|"|>');

/** The body of a tool call: text pieces and string delimiters, in order. */
export type ToolCallSegments = readonly (string | typeof STRING_DELIM)[];

/** The text of segments with the delimiters written as `<|"|>`, for messages. */
export function segmentsText(segments: ToolCallSegments): string {
  return segments.map((s) => (s === STRING_DELIM ? '<|"|>' : s)).join("");
}

type Tok =
  | { kind: "punct"; value: "{" | "}" | "[" | "]" | ":" | "," }
  | { kind: "string"; value: string }
  | { kind: "word"; value: string };

const NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const PUNCT = "{}[]:,";

/** Parses one call body (the segments between `<|tool_call>` and `<tool_call|>`). Throws ToolCallParseError. */
export function parseToolCall(parts: ToolCallSegments): ToolCall {
  const segments = mergeText(parts);
  const raw = segmentsText(segments);
  const fail = (message: string): never => {
    throw new ToolCallParseError(raw, message);
  };
  // The name is plain text before the first "{": "call:get_weather".
  const first = segments[0];
  if (typeof first !== "string") fail('expected "call:NAME{" at the start');
  const head = (first as string).trimStart();
  if (!head.startsWith("call:")) fail('expected "call:NAME{" at the start');
  const brace = head.indexOf("{");
  if (brace < 0) fail('no "{" after the function name');
  const name = head.slice(5, brace).trim();
  if (!/^[A-Za-z_][\w.\-]*$/.test(name)) fail(`bad function name ${JSON.stringify(name)}`);

  const toks = lex([head.slice(brace), ...segments.slice(1)], fail);
  let i = 0;
  const peek = () => toks[i];
  const take = () => toks[i++];
  const expect = (p: string) => {
    const t = take();
    if (!t || t.kind !== "punct" || t.value !== p) fail(`expected "${p}" at token ${i}, got ${show(t)}`);
  };
  const value = (): ToolValue => {
    const t = take();
    if (!t) return fail("the call ends inside a value");
    if (t.kind === "string") return t.value;
    if (t.kind === "word") {
      if (t.value === "true") return true;
      if (t.value === "false") return false;
      if (t.value === "null" || t.value === "None") return null;
      if (NUMBER.test(t.value)) return Number(t.value);
      return fail(`${JSON.stringify(t.value)} is not a value (strings are written <|"|>...<|"|>)`);
    }
    if (t.value === "{") return object();
    if (t.value === "[") {
      const out: ToolValue[] = [];
      if (peek()?.kind === "punct" && peek()!.value === "]") return take(), out;
      while (true) {
        out.push(value());
        const sep = take();
        if (sep?.kind === "punct" && sep.value === "]") return out;
        if (!(sep?.kind === "punct" && sep.value === ",")) return fail(`expected "," or "]", got ${show(sep)}`);
      }
    }
    return fail(`unexpected ${show(t)}`);
  };
  const object = (): { [key: string]: ToolValue } => {
    const out: { [key: string]: ToolValue } = {};
    if (peek()?.kind === "punct" && peek()!.value === "}") return take(), out;
    while (true) {
      const k = take();
      if (!k || k.kind === "punct") return fail(`expected a key, got ${show(k)}`);
      if (k.kind === "word" && !/^[A-Za-z_][\w\-]*$/.test(k.value)) fail(`bad key ${JSON.stringify(k.value)}`);
      expect(":");
      out[k.value] = value();
      const sep = take();
      if (sep?.kind === "punct" && sep.value === "}") return out;
      if (!(sep?.kind === "punct" && sep.value === ",")) return fail(`expected "," or "}", got ${show(sep)}`);
    }
  };
  expect("{");
  const args = object();
  if (i < toks.length) fail(`text after the arguments: ${show(toks[i])}`);
  return { name, arguments: args };
}

/** Joins neighbouring text pieces, so that a word never spans two segments. */
function mergeText(parts: ToolCallSegments): (string | typeof STRING_DELIM)[] {
  const out: (string | typeof STRING_DELIM)[] = [];
  for (const p of parts) {
    const last = out.length - 1;
    if (typeof p === "string" && typeof out[last] === "string") out[last] = out[last] + p;
    else out.push(p);
  }
  return out;
}

/** Splits segments into tokens; text between a pair of delimiters is one string token, verbatim. */
function lex(segments: ToolCallSegments, fail: (m: string) => never): Tok[] {
  const toks: Tok[] = [];
  let inString = false;
  let str = "";
  for (const seg of segments) {
    if (seg === STRING_DELIM) {
      if (inString) toks.push({ kind: "string", value: str });
      [inString, str] = [!inString, ""];
      continue;
    }
    if (inString) {
      str += seg;
      continue;
    }
    let word = "";
    const endWord = () => {
      if (word) toks.push({ kind: "word", value: word });
      word = "";
    };
    for (const ch of seg) {
      if (PUNCT.includes(ch)) {
        endWord();
        toks.push({ kind: "punct", value: ch as "{" });
      } else if (/\s/.test(ch)) {
        endWord();
      } else {
        word += ch;
      }
    }
    endWord();
  }
  if (inString) fail('a string is not closed with <|"|>');
  return toks;
}

function show(t: Tok | undefined): string {
  if (!t) return "the end";
  return t.kind === "string" ? `string ${JSON.stringify(t.value)}` : JSON.stringify(t.value);
}
