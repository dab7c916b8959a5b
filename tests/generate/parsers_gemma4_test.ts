/**
 * The Gemma 4 response parser against transformers' parse_response (tests/fixtures/gemma4-tokenizer/ids.json
 * "outputs"), on token streams re-split at every character of the text, and on the cases where we
 * deliberately differ (thinking mid-stream, malformed calls).
 */
import assert from "node:assert/strict";
import { Gemma4ResponseParser, gemma4ResponseTokens } from "../../src/models/gemma4/response.ts";
import type { ResponseEvent } from "../../src/generate/result.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";

const DIR = new URL("../fixtures/gemma4-tokenizer/", import.meta.url).pathname;
const ref = JSON.parse(await Deno.readTextFile(`${DIR}ids.json`));
const tokenizer = await Tokenizer.fromFiles(DIR);
const tokens = gemma4ResponseTokens(tokenizer)!;
const prompts: Record<string, number[]> = Object.fromEntries(
  ref.chat.map((c: { name: string; ids: number[] }) => [c.name, c.ids]),
);
const STOPS = new Set(ref.stop_ids as number[]);
// Special-token texts: a text split must not cut one in two.
const SPECIAL_TEXTS = Object.keys(ref.special_ids).filter((t) => !t.startsWith("<0x"));

function run(ids: readonly number[], promptIds?: readonly number[]) {
  const parser = new Gemma4ResponseParser(tokenizer, tokens, { promptIds });
  const events: ResponseEvent[] = [];
  for (const id of ids) {
    if (STOPS.has(id)) break; // the generator stops before a stop token reaches the parser
    events.push(...parser.push(id));
  }
  events.push(...parser.finish());
  return { events, result: parser.result };
}

/** The events folded back into fields: what a streaming consumer would have shown. */
function fold(events: ResponseEvent[]) {
  const out = { content: "", reasoning: "", toolCalls: [] as unknown[], errors: 0 };
  for (const e of events) {
    if (e.type === "content") out.content += e.text;
    else if (e.type === "reasoning") out.reasoning += e.text;
    else if (e.type === "tool_call") out.toolCalls.push(e.call);
    else out.errors++;
  }
  return out;
}

/** transformers' parsed message in our shape. */
function expected(parsed: Record<string, unknown>) {
  const calls = (parsed.tool_calls ?? []) as { function: { name: string; arguments: unknown } }[];
  return {
    content: (parsed.content ?? "") as string,
    reasoning: (parsed.thinking ?? "") as string,
    toolCalls: calls.map((c) => ({ name: c.function.name, arguments: c.function.arguments })),
    errors: 0,
  };
}

/** Every way to cut `text` in two (outside special tokens), each half encoded on its own. */
function* resplits(text: string): Generator<number[]> {
  const inside = new Set<number>();
  for (const s of SPECIAL_TEXTS) {
    for (let at = text.indexOf(s); at >= 0; at = text.indexOf(s, at + 1)) {
      for (let k = at + 1; k < at + s.length; k++) inside.add(k);
    }
  }
  const chars = [...text];
  let offset = 0;
  for (let i = 1; i < chars.length; i++) {
    offset += chars[i - 1].length;
    if (inside.has(offset)) continue;
    yield [
      ...tokenizer.encode(text.slice(0, offset), { addSpecialTokens: false }),
      ...tokenizer.encode(text.slice(offset), { addSpecialTokens: false }),
    ];
  }
}

// Where we differ from transformers on purpose (see gemma4_response.ts).
const DIFFERS: Record<string, { content: string; reasoning: string; toolCalls: unknown[]; errors: number }> = {
  // transformers keeps only the content after the thought block
  thinking_mid_stream: { content: "Answer first.More.", reasoning: "late thought", toolCalls: [], errors: 0 },
  // transformers raises for the whole reply; we report the one bad call
  malformed_tool_call: { content: "", reasoning: "", toolCalls: [], errors: 1 },
  // transformers leaves the markers in the content; we report a bad call
  tool_call_without_call_prefix: { content: "", reasoning: "", toolCalls: [], errors: 1 },
};

for (const out of ref.outputs) {
  const base = out.name.split("/")[0];
  Deno.test(`gemma4 parser: ${out.name} matches transformers, split at every point`, () => {
    const want = DIFFERS[base] ?? expected(out.parsed);
    if (!DIFFERS[base]) assert.ok(out.parsed, `transformers failed on ${out.name}: ${out.error}`);
    const prompt = prompts[out.prefix_chat];
    const whole = run(out.ids, prompt);
    assert.deepEqual(fold(whole.events), want);
    assert.deepEqual(
      {
        content: whole.result.content,
        reasoning: whole.result.reasoning,
        toolCalls: whole.result.toolCalls,
        errors: whole.result.toolCallErrors.length,
      },
      want,
    );
    let n = 0;
    for (const ids of resplits(out.text)) {
      assert.deepEqual(fold(run(ids, prompt).events), want, `split ${n}`);
      n++;
    }
    assert.ok(n > 5);
  });
}

Deno.test("gemma4 parser: streams reasoning before the answer ends, never retracts", () => {
  const text = "<|channel>thought\nStep one. Step two.<channel|>The weather is sunny.<turn|>";
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  const parser = new Gemma4ResponseParser(tokenizer, tokens);
  const seen: ResponseEvent[] = [];
  let reasoningBeforeClose = "";
  for (const id of ids) {
    if (STOPS.has(id)) break;
    seen.push(...parser.push(id));
    if (id === tokens.channelClose) reasoningBeforeClose = fold(seen).reasoning;
  }
  // All but the held trailing whitespace arrived before <channel|>.
  assert.equal(reasoningBeforeClose, "Step one. Step two.");
  seen.push(...parser.finish());
  assert.deepEqual(fold(seen), {
    content: "The weather is sunny.",
    reasoning: "Step one. Step two.",
    toolCalls: [],
    errors: 0,
  });
});

Deno.test("gemma4 parser: a prompt ending in <|channel>thought starts the answer as reasoning", () => {
  const prompt = tokenizer.encode("<|turn>model\n<|channel>thought\n", { addSpecialTokens: false });
  const ids = tokenizer.encode("still thinking<channel|>Done.", { addSpecialTokens: false });
  assert.deepEqual(fold(run(ids, prompt).events), {
    content: "Done.",
    reasoning: "still thinking",
    toolCalls: [],
    errors: 0,
  });
  // A closed empty block (thinking off) leaves the answer as content.
  const off = tokenizer.encode("<|turn>model\n<|channel>thought\n<channel|>", { addSpecialTokens: false });
  assert.deepEqual(fold(run(ids, off).events).content, "still thinkingDone.");
});

Deno.test("gemma4 parser: marker text typed by a user is text, not a marker", () => {
  // The same characters as "<|channel>", but spelled out so that they are not the special token.
  const ids = [
    ...tokenizer.encode("<|chan", { addSpecialTokens: false }),
    ...tokenizer.encode("nel>thought\nnot reasoning", { addSpecialTokens: false }),
  ];
  assert.ok(!ids.includes(tokens.channelOpen));
  assert.deepEqual(fold(run(ids).events), {
    content: "<|channel>thought\nnot reasoning",
    reasoning: "",
    toolCalls: [],
    errors: 0,
  });
});

Deno.test("gemma4 parser: a tool call cut off by the token limit, or never closed, is an error", () => {
  const cut = tokenizer.encode('<|tool_call>call:add{a:<|"|>x', { addSpecialTokens: false });
  const r = run(cut);
  assert.equal(r.result.toolCalls.length, 0);
  assert.equal(r.result.toolCallErrors.length, 1);
  assert.match(r.result.toolCallErrors[0].message, /never closed/);
  assert.equal(r.result.toolCallErrors[0].raw, 'call:add{a:<|"|>x');
  const twice = tokenizer.encode("<|tool_call>call:add{a:1}<|tool_call>call:add{a:2}<tool_call|>", {
    addSpecialTokens: false,
  });
  const r2 = run(twice);
  assert.deepEqual(r2.result.toolCalls, [{ name: "add", arguments: { a: 2 } }]);
  assert.equal(r2.result.toolCallErrors.length, 1);
});

Deno.test("gemma4 parser: only Gemma 4 tokenizers activate it", async () => {
  const gemma3 = await Tokenizer.fromFiles(new URL("../fixtures/tiny-tokenizer/", import.meta.url).pathname);
  assert.equal(gemma4ResponseTokens(gemma3), undefined);
  assert.deepEqual(tokens, {
    channelOpen: 100,
    channelClose: 101,
    toolCallOpen: 48,
    toolCallClose: 49,
    stringDelim: 52,
  });
});
