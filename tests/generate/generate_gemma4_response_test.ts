/**
 * The Gemma 4 response parser wired into generation: a scripted model (logits from a position → next-token
 * table, run through the real decode program on the CPU) answers with reasoning, content and a tool call;
 * the result and the streamed events keep them apart, and a Gemma 3 tokenizer streams plain text as before.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { KvCache } from "../../src/runtime/kv_cache.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import type { Workspace } from "../../src/runtime/workspace.ts";
import { embedding } from "../../src/ops/embedding.ts";
import { Model } from "../../src/generate/model.ts";
import type { CausalLM } from "../../src/generate/token_loop.ts";
import { gemma4ResponseParserFor } from "../../src/models/gemma4/family.ts";
import type { ResponseEvent } from "../../src/generate/result.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import type { ChatMessage } from "../../src/tokenizer/chat_template.ts";

const G4 = await Tokenizer.fromFiles(new URL("../fixtures/gemma4-tokenizer/", import.meta.url).pathname);
const G3 = await Tokenizer.fromFiles(new URL("../fixtures/tiny-tokenizer/", import.meta.url).pathname);
const MAX_CONTEXT = 160;
const MESSAGES: ChatMessage[] = [{ role: "user", content: "Add one and x." }];

/** A model that, after `promptLength` prompt tokens, writes `answer` (greedy), whatever it is fed. */
function scripted(
  backend: Backend,
  vocab: number,
  promptLength: number,
  answer: number[],
): CausalLM & { dispose(): void } {
  const rows = new Float32Array(MAX_CONTEXT * vocab);
  answer.forEach((id, i) => (rows[(promptLength - 1 + i) * vocab + id] = 30));
  const table = Tensor.fromArray(backend, rows, [MAX_CONTEXT, vocab]);
  return {
    backend,
    maxContext: MAX_CONTEXT,
    vocabSize: vocab,
    // No cache: a fake whose logits depend only on the position.
    cache: new KvCache(backend, []),
    prefillFrom: (ids) => {
      using pos = Tensor.fromArray(backend, [ids.length - 1], [1], "i32");
      return embedding(table, pos);
    },
    decodeStep: (_token: Tensor, position: Tensor, _ws: Workspace, logits: Tensor) =>
      embedding(table, position, 1, logits),
    dispose: () => table.dispose(),
  };
}

function modelFor(tokenizer: Tokenizer, answerText: string, chat: { thinking?: boolean } = {}) {
  const backend = Backend.open({ backend: "cpu" });
  const answer = tokenizer.encode(answerText, { addSpecialTokens: false });
  // Model parts as the Gemma 4 family binds them: the response parser when the tokenizer has its markers.
  const parts = (lm: CausalLM & { dispose(): void }) => ({
    lm,
    tokenizer,
    defaults: { temperature: 0 },
    responseParser: gemma4ResponseParserFor(tokenizer),
  });
  const probe = new Model(parts(scripted(backend, tokenizer.vocabSize, 1, [])));
  const promptLength = probe.encode({ messages: MESSAGES }, chat).length;
  probe.dispose();
  const model = new Model(parts(scripted(backend, tokenizer.vocabSize, promptLength, answer)));
  return { model, answer, backend };
}

const ANSWER =
  '<|channel>thought\nI should call add.<channel|>Sure.<|tool_call>call:add{a:1,b:<|"|>x<|"|>}<tool_call|>' +
  "<|tool_response>";

Deno.test("gemma4 generation: reasoning, content and tool calls come apart, streamed and in the result", async () => {
  const { model, answer, backend } = modelFor(G4, ANSWER, { thinking: true });
  const events: ResponseEvent[] = [];
  const texts: string[] = [], reasoning: string[] = [], calls: unknown[] = [];
  for (const chunkSize of [1, 4, 16]) {
    events.length =
      texts.length =
      reasoning.length =
      calls.length =
        0;
    const r = await model.generate({ messages: MESSAGES }, {
      thinking: true,
      maxTokens: 64,
      chunkSize,
      onText: (t) => texts.push(t),
      onReasoning: (t) => reasoning.push(t),
      onToolCall: (c) => calls.push(c),
      onEvent: (e) => events.push(e),
    });
    assert.equal(r.text, "Sure.");
    assert.equal(r.reasoning, "I should call add.");
    assert.deepEqual(r.toolCalls, [{ name: "add", arguments: { a: 1, b: "x" } }]);
    assert.deepEqual(r.toolCallErrors, []);
    assert.equal(r.finishReason, "stop"); // on <|tool_response>, a stop id of generation_config.json
    assert.deepEqual(r.tokens, answer);
    assert.equal(texts.join(""), "Sure.");
    assert.equal(reasoning.join(""), "I should call add.");
    assert.deepEqual(calls, r.toolCalls);
    // Order: all reasoning, then content, then the call.
    const kinds = events.map((e) => e.type).filter((k, i, a) => k !== a[i - 1]);
    assert.deepEqual(kinds, ["reasoning", "content", "tool_call"], `chunk ${chunkSize}`);
  }
  const streamed: ResponseEvent[] = [];
  const it = model.events({ messages: MESSAGES }, { thinking: true, maxTokens: 64 });
  let r = await it.next();
  for (; !r.done; r = await it.next()) streamed.push(r.value);
  assert.deepEqual(streamed, events);
  assert.equal(r.value.text, "Sure.");
  model.dispose();
  backend.dispose();
});

Deno.test("gemma4 generation: the thinking switch and tools reach the template; bad tools are typed errors", () => {
  const { model, backend } = modelFor(G4, "Hi.<turn|>");
  const on = model.encode({ messages: MESSAGES }, { thinking: true });
  const off = model.encode({ messages: MESSAGES }, { thinking: false });
  assert.ok(on.includes(G4.tokenToId("<|think|>")!));
  assert.ok(!off.includes(G4.tokenToId("<|think|>")!));
  // Thinking off: the template closes an empty thought block itself; on: the prompt ends at "<|turn>model\n".
  assert.equal(off.at(-1), G4.tokenToId("<channel|>"));
  assert.notEqual(on.at(-1), G4.tokenToId("<channel|>"));
  const tool = { type: "function" as const, function: { name: "add", parameters: { type: "object", properties: {} } } };
  const withTool = model.encode({ messages: MESSAGES }, { tools: [tool] });
  assert.ok(withTool.includes(G4.tokenToId("<|tool>")!));
  assert.throws(() => model.encode("raw prompt", { thinking: true }), /pass \{messages\}, not a prompt/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => model.encode({ messages: MESSAGES }, { tools: [{ name: "add" } as any] }), /tools\[0\] must be/);
  model.dispose();
  backend.dispose();
});

Deno.test("gemma4 generation: stop strings cut the content; reasoning still counts", async () => {
  const { model, backend } = modelFor(G4, "<|channel>thought\nPlan it.<channel|>One. Two. Three.<turn|>");
  const r = await model.generate({ messages: MESSAGES }, { maxTokens: 64, stop: ["Two"] });
  assert.equal(r.finishReason, "stop");
  assert.equal(r.text, "One. ");
  assert.equal(r.reasoning, "Plan it.");
  model.dispose();
  backend.dispose();
});

Deno.test("gemma3 generation is unchanged: no parser, plain text, no extra fields", async () => {
  const { model, backend } = modelFor(G3, "The keeper lit the lamp.<end_of_turn>");
  const events: ResponseEvent[] = [];
  const r = await model.generate({ messages: MESSAGES }, { maxTokens: 64, onEvent: (e) => events.push(e) });
  assert.equal(r.text, "The keeper lit the lamp.");
  assert.ok(!("reasoning" in r) && !("toolCalls" in r) && !("toolCallErrors" in r));
  assert.deepEqual(events, []); // onEvent is the parser's; Gemma 3 has none
  model.dispose();
  backend.dispose();
});
