/**
 * The CLI's rendering of a Gemma 4 answer, fed a scripted token stream through the real parser: reasoning
 * dimmed (ANSI) or between plain markers, hidden with --hide-reasoning, tool calls as JSON lines.
 */
import assert from "node:assert/strict";
import { responsePrinter } from "../../src/cli/response_printer.ts";
import { Gemma4ResponseParser, gemma4ResponseTokens } from "../../src/models/gemma4/response.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";

const tokenizer = await Tokenizer.fromFiles(new URL("../fixtures/gemma4-tokenizer/", import.meta.url).pathname);
const ANSWER = '<|channel>thought\nCall add.<channel|>Sure.<|tool_call>call:add{a:1,b:<|"|>x<|"|>}<tool_call|>' +
  "<|tool_call>call:add{a:}<tool_call|>";

function render(options: { ansi?: boolean; hideReasoning?: boolean }): string {
  let out = "";
  const printer = responsePrinter({ ...options, write: (t) => (out += t) });
  const parser = new Gemma4ResponseParser(tokenizer, gemma4ResponseTokens(tokenizer)!);
  for (const id of tokenizer.encode(ANSWER, { addSpecialTokens: false })) parser.push(id).forEach(printer.onEvent);
  parser.finish().forEach(printer.onEvent);
  printer.end();
  return out;
}

const CALLS = '{"tool_call":{"name":"add","arguments":{"a":1,"b":"x"}}}\n{"tool_call_error":{"message":';

Deno.test("cli printer: plain markers when stdout is not a terminal", () => {
  const out = render({});
  assert.ok(out.startsWith("[reasoning]\nCall add.\n[/reasoning]\nSure.\n" + CALLS), JSON.stringify(out));
  assert.match(out, /"raw":"call:add\{a:\}"\}\}\n$/);
});

Deno.test("cli printer: reasoning dimmed on a terminal", () => {
  assert.ok(render({ ansi: true }).startsWith("\x1b[2mCall add.\x1b[0m\nSure.\n" + CALLS));
});

Deno.test("cli printer: --hide-reasoning leaves it out", () => {
  const out = render({ hideReasoning: true });
  assert.ok(out.startsWith("Sure.\n" + CALLS), JSON.stringify(out));
  assert.ok(!out.includes("Call add."));
});
