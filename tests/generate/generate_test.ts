/**
 * Generation through the public API and the recorded decode program: the greedy continuation equals
 * transformers', sampling is reproducible by seed, and limits, stop strings and aborts behave.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../src/models/load.ts";
import { ContextLengthError } from "../../src/errors.ts";

const DIR = new URL("../fixtures/gemma3-text-mixed/", import.meta.url).pathname;
const expected = JSON.parse(Deno.readTextFileSync(`${DIR}expected.json`));
const STOP_IDS = [1, 106];

/** transformers' 32 greedy ids, up to and including the first stop token (which we stop on). */
function untilStop(ids: number[]): number[] {
  const at = ids.findIndex((id) => STOP_IDS.includes(id));
  return at < 0 ? ids : ids.slice(0, at + 1);
}

Deno.test("greedy generation through the decode program equals transformers' continuation", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 128 });
  for (const chunkSize of [1, 5, 16]) {
    const chat = await model.generate({ messages: expected.chat.messages }, {
      temperature: 0,
      maxTokens: 32,
      chunkSize,
    });
    assert.deepEqual(chat.tokens, untilStop(expected.chat.greedy.ids), `chat, chunk ${chunkSize}`);
    assert.equal(chat.promptTokens, expected.chat.input_ids.length);
  }
  const plain = await model.generate(expected.plain.text, { temperature: 0, maxTokens: 32 });
  assert.equal(plain.promptTokens, expected.plain.input_ids.length);
  assert.deepEqual(plain.tokens, untilStop(expected.plain.greedy.ids));
  assert.equal(plain.finishReason, plain.tokens.length < 32 ? "stop" : "length");
  assert.equal(plain.text, model.tokenizer.decode(plain.tokens, { skipSpecialTokens: true }));
  assert.ok(plain.timings.decodeCalls <= Math.ceil(32 / 16) + 1, `${plain.timings.decodeCalls} native decode calls`);
});

Deno.test("streamed pieces add up to the result's text", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 128 });
  const pieces: string[] = [];
  const r = await model.generate("The keeper", { temperature: 0, maxTokens: 24, onText: (t) => pieces.push(t) });
  assert.equal(pieces.join(""), r.text);
  assert.ok(pieces.length > 1);
});

Deno.test("sampling is reproducible by seed and differs across seeds", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 128 });
  const opts = { temperature: 1, topK: 50, topP: 0.95, maxTokens: 24 };
  const a = await model.generate("The lamp", { ...opts, seed: 7 });
  const b = await model.generate("The lamp", { ...opts, seed: 7, chunkSize: 3 });
  const c = await model.generate("The lamp", { ...opts, seed: 8 });
  assert.deepEqual(a.tokens, b.tokens);
  assert.notDeepEqual(a.tokens, c.tokens);
  const greedy = await model.generate("The lamp", { temperature: 0, maxTokens: 24 });
  assert.notDeepEqual(a.tokens, greedy.tokens);
});

Deno.test("max tokens, stop strings and aborts end generation with the right reason", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 128 });
  const base = await model.generate(expected.plain.text, { temperature: 0, maxTokens: 32 });
  const five = await model.generate(expected.plain.text, { temperature: 0, maxTokens: 5 });
  assert.deepEqual(five.tokens, base.tokens.slice(0, 5));
  assert.equal(five.finishReason, "length");
  // A stop string taken from the middle of the greedy text: output ends right before it.
  const text = base.text;
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 3);
  const stopped = await model.generate(expected.plain.text, { temperature: 0, maxTokens: 32, stop: [stop] });
  assert.equal(stopped.finishReason, "stop");
  assert.equal(stopped.text, text.slice(0, text.indexOf(stop)));
  const controller = new AbortController();
  let n = 0;
  const aborted = await model.generate(expected.plain.text, {
    temperature: 0,
    maxTokens: 32,
    chunkSize: 2,
    signal: controller.signal,
    onText: () => ++n === 2 && controller.abort(),
  });
  assert.equal(aborted.finishReason, "abort");
  assert.ok(aborted.tokens.length < 32);
});

Deno.test("bad generation input: typed errors", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 32 });
  const long = "word ".repeat(100);
  const err = await model.generate(long).catch((e) => e);
  assert.ok(err instanceof ContextLengthError, String(err));
  assert.match(err.message, /the prompt is \d+ tokens, over the context limit of 31/);
  await assert.rejects(() => model.generate("hi", { temperature: -1 }), /temperature=-1 must be >= 0/);
  await assert.rejects(() => model.generate("hi", { maxTokens: 0 }), /maxTokens=0 must be a positive integer/);
  await assert.rejects(
    () => model.generate({ messages: [{ role: "user", content: "a" }, { role: "user", content: "b" }] }),
    /Conversation roles must alternate/,
  );
  model.dispose();
  model.dispose();
  await assert.rejects(() => model.generate("hi"), /the model was disposed/);
});
