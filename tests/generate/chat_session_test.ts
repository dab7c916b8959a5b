/**
 * Conversations over the Model: prefix reuse across turns (a follow-up prefills only its new tokens and answers
 * what a cold prefill answers), ChatSession history, aborts, save/load round trips and their typed errors, the
 * context overflow policies, and chat on the default base GGUF in Gemma 3's turn format.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../src/models/load.ts";
import { ContextLengthError, SessionFileError } from "../../src/errors.ts";
import { dropOldestTurn } from "../../src/generate/model.ts";
import type { ChatMessage } from "../../src/tokenizer/chat_template.ts";
import { realGguf270m } from "../models/real_gguf.ts";

const FIXTURE = new URL("../fixtures/gemma3-text-mixed", import.meta.url).pathname;
const GEMMA4 = new URL("../fixtures/gemma4-text-e", import.meta.url).pathname;
const GREEDY = { temperature: 0, maxTokens: 12 };

Deno.test("a follow-up turn prefills only its new tokens and answers as a cold prefill does", async () => {
  using model = await loadModel(FIXTURE, { backend: "cpu", maxContext: 512 });
  const chat = model.chat({ system: "Be brief.", defaults: GREEDY });
  const first = await chat.promptWithResult("Hello there, how are you today?");
  assert.equal(first.cachedTokens, 0);
  assert.equal(chat.history.length, 2);
  const second = await chat.promptWithResult("And what about tomorrow?");
  // The history (system, first turn, first answer) came from the cache: at least the first prompt's tokens.
  assert.ok(second.cachedTokens >= first.promptTokens, `${second.cachedTokens} cached of ${second.promptTokens}`);
  // (A random tiny model's answer need not re-tokenize to its own ids — broken UTF-8 — so the cache may be cut
  // at the answer here; the real model's test below checks that only the new turn is prefilled.)
  // The same conversation, cold.
  model.resetCache();
  const messages: ChatMessage[] = [
    { role: "system", content: "Be brief." },
    ...chat.history.slice(0, 3),
  ];
  const cold = await model.generate({ messages }, GREEDY);
  assert.equal(cold.cachedTokens, 0);
  assert.deepEqual(cold.tokens, second.tokens, "reused and cold prefill answer alike");
  assert.equal(chat.history.length, 4);
});

Deno.test("Gemma 4 (KV-shared layers): reuse across turns answers as a cold prefill does", async () => {
  using model = await loadModel(GEMMA4, { backend: "cpu", maxContext: 512 });
  const prompt = (text: string) => ({ prompt: text });
  await model.generate(prompt("The quick brown fox jumps over the lazy dog and then"), GREEDY);
  const warm = await model.generate(prompt("The quick brown fox jumps over the lazy dog and then runs away"), GREEDY);
  assert.ok(warm.cachedTokens > 5, `${warm.cachedTokens} cached`);
  const cold = await model.generate(prompt("The quick brown fox jumps over the lazy dog and then runs away"), {
    ...GREEDY,
    reusePrefix: false,
  });
  assert.equal(cold.cachedTokens, 0);
  assert.deepEqual(warm.tokens, cold.tokens);
});

Deno.test("an aborted answer joins the history as far as it got", async () => {
  using model = await loadModel(FIXTURE, { backend: "cpu", maxContext: 512 });
  const chat = model.chat({ defaults: { temperature: 0, maxTokens: 200, chunkSize: 1 } });
  const controller = new AbortController();
  let pieces = 0;
  for await (const _ of chat.stream("Tell me a long story.", { signal: controller.signal })) {
    if (++pieces === 3) controller.abort();
  }
  assert.equal(chat.history.length, 2);
  assert.ok((chat.history[1].content as string).length > 0);
  // The next turn still reuses the cache.
  const next = await chat.promptWithResult("Go on.", { maxTokens: 4 });
  assert.ok(next.cachedTokens > 0);
});

Deno.test("save and load round-trip: the restored session continues from its cache, as the original does", async () => {
  const path = await Deno.makeTempFile({ suffix: ".gksession" });
  try {
    using a = await loadModel(FIXTURE, { backend: "cpu", maxContext: 512 });
    const chat = a.chat({ system: "Be brief.", defaults: GREEDY });
    await chat.prompt("Hello there!");
    await chat.save(path);
    const original = await chat.promptWithResult("Next question?");

    using b = await loadModel(FIXTURE, { backend: "cpu", maxContext: 512 });
    const restored = b.chat({ defaults: GREEDY });
    await restored.load(path);
    assert.equal(restored.history.length, 2);
    const again = await restored.promptWithResult("Next question?");
    assert.ok(again.cachedTokens > 0 && again.cachedTokens === original.cachedTokens, "the cache came back");
    assert.deepEqual(again.tokens, original.tokens);
    assert.equal(again.text, original.text);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("loading a session file: typed errors for another model, another version, a truncated or foreign file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    using model = await loadModel(FIXTURE, { backend: "cpu", maxContext: 512 });
    const chat = model.chat({ defaults: GREEDY });
    await chat.prompt("Hi!");
    await chat.save(`${dir}/s`);
    const bytes = await Deno.readFile(`${dir}/s`);
    const reason = async (p: Promise<unknown>) => {
      const e = await p.then(() => undefined, (e) => e);
      assert.ok(e instanceof SessionFileError, `${e}`);
      return e.reason;
    };
    // Another context size, then another model.
    using small = await loadModel(FIXTURE, { backend: "cpu", maxContext: 256 });
    assert.equal(await reason(small.chat().load(`${dir}/s`)), "model");
    using other = await loadModel(GEMMA4, { backend: "cpu", maxContext: 512 });
    assert.equal(await reason(other.chat().load(`${dir}/s`)), "model");
    await Deno.writeFile(`${dir}/t`, bytes.subarray(0, bytes.length - 100));
    assert.equal(await reason(model.chat().load(`${dir}/t`)), "truncated");
    await Deno.writeTextFile(`${dir}/f`, "hello");
    assert.equal(await reason(model.chat().load(`${dir}/f`)), "format");
    const text = new TextDecoder("latin1").decode(bytes).replace('"version":1', '"version":9');
    await Deno.writeFile(`${dir}/v`, Uint8Array.from(text, (c) => c.charCodeAt(0)));
    assert.equal(await reason(model.chat().load(`${dir}/v`)), "version");
    // A failed load leaves the session usable.
    assert.equal((await model.chat({ defaults: GREEDY }).promptWithResult("Hi!")).finishReason.length > 0, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("context overflow: drop-oldest keeps the system prompt and the last turn; error throws", async () => {
  using model = await loadModel(FIXTURE, { backend: "cpu", maxContext: 128 });
  const long = "word ".repeat(20);
  const messages: ChatMessage[] = [{ role: "system", content: "System rule." }];
  for (let i = 0; i < 4; i++) {
    messages.push({ role: "user", content: `${i} ${long}` }, { role: "assistant", content: "ok" });
  }
  messages.push({ role: "user", content: "last" });
  await assert.rejects(model.generate({ messages }, { ...GREEDY, maxTokens: 8 }), ContextLengthError);
  let sent: ChatMessage[] = [];
  const r = await model.generate({ messages }, {
    ...GREEDY,
    maxTokens: 8,
    contextOverflow: "drop-oldest",
    onMessages: (m) => (sent = m),
  });
  assert.ok(r.promptTokens <= 120);
  assert.equal(sent[0].content, "System rule.");
  assert.equal(sent.at(-1)!.content, "last");
  assert.ok(sent.length < messages.length && sent.length % 2 === 0, `${sent.length} messages`);
  // A last turn that alone does not fit is an error under either policy.
  await assert.rejects(
    model.generate({ messages: [{ role: "user", content: long.repeat(10) }] }, { contextOverflow: "drop-oldest" }),
    ContextLengthError,
  );
});

Deno.test("dropOldestTurn drops a user message and what answers it, never system messages or the last turn", () => {
  const m = (role: string, content: string) => ({ role, content });
  assert.deepEqual(
    dropOldestTurn([m("system", "s"), m("user", "a"), m("assistant", "b"), m("tool", "t"), m("user", "c")]),
    [m("system", "s"), m("user", "c")],
  );
  assert.equal(dropOldestTurn([m("system", "s"), m("user", "c")]), undefined);
});

Deno.test("the default base GGUF chats in Gemma 3's turn format, with a note, and reuses its history", async (t) => {
  const gguf = await realGguf270m();
  if (gguf.skip) return void t.name.concat(` skipped: ${gguf.skip}`);
  using model = await loadModel(gguf.path, { backend: "cpu", maxContext: 1024 });
  assert.equal(model.supportsChat, false, "a base model");
  assert.equal(model.canChat, true);
  assert.match(model.chatNote!, /base .*Gemma 3's turn format/);
  const ids = model.encode({ messages: [{ role: "user", content: "Hi" }] });
  assert.equal(model.tokenizer.decode(ids), "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
  const chat = model.chat({ defaults: { temperature: 0, maxTokens: 16 } });
  await chat.prompt("What is the capital of France?");
  const second = await chat.promptWithResult("And of Italy?");
  const fresh = second.promptTokens - second.cachedTokens;
  assert.ok(fresh <= 16, `${fresh} of ${second.promptTokens} prompt tokens prefilled: only the new turn`);
});
