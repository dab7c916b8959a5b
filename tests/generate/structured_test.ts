/**
 * Structured output, logprobs and the OpenAI logit processors through the public API on a tiny random model:
 * a random model's answer under a JSON Schema constraint still validates (every seed), logprobs are the
 * log-softmax the sampler drew from, and logit bias / penalties move the sampled tokens.
 */
import assert from "node:assert/strict";
import { Ajv } from "ajv";
import { loadModel } from "../../src/models/load.ts";
import { ConstraintError } from "../../src/errors.ts";
import { compileConstraint, liveCompiledGrammars } from "../../src/generate/constraint.ts";

const DIR = new URL("../fixtures/gemma3-text-mixed/", import.meta.url).pathname;

/** Bounded strings and numbers: a random model must still finish within maxTokens. */
const SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 10 },
    ok: { type: "boolean" },
    color: { enum: ["red", "green", "blue"] },
    tags: { type: "array", items: { type: "string", maxLength: 4 }, maxItems: 3 },
  },
  required: ["name", "ok", "color", "tags"],
  additionalProperties: false,
};

Deno.test("a JSON Schema constrains a random model to valid JSON, 100 seeds", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 256 });
  const validate = new Ajv().compile(SCHEMA);
  for (let seed = 0; seed < 100; seed++) {
    const r = await model.generate({ messages: [{ role: "user", content: "Describe a thing as JSON." }] }, {
      temperature: 1,
      seed,
      maxTokens: 200,
      responseFormat: { type: "json_schema", schema: SCHEMA },
    });
    assert.equal(r.finishReason, "stop", `seed ${seed}: ${r.text}`);
    const value = JSON.parse(r.text);
    assert.ok(validate(value), `seed ${seed}: ${r.text} ${JSON.stringify(validate.errors)}`);
  }
});

Deno.test("json_object gives a JSON object; a bad schema is a ConstraintError", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 256 });
  for (let seed = 0; seed < 5; seed++) {
    const r = await model.generate("json:", {
      temperature: 0.7,
      seed,
      maxTokens: 160,
      responseFormat: { type: "json_object" },
    });
    // A random model may run out of tokens inside an object; whatever finished is an object.
    if (r.finishReason === "stop") assert.equal(typeof JSON.parse(r.text), "object", r.text);
  }
  await assert.rejects(
    model.generate("x", { responseFormat: { type: "json_schema", schema: { type: "no-such-type" } } }),
    ConstraintError,
  );
});

Deno.test("logprobs: the sampled token's log-softmax and the top alternatives", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 128 });
  const greedy = await model.generate("Hello", { temperature: 0, maxTokens: 12, topLogprobs: 5, chunkSize: 4 });
  assert.equal(greedy.logprobs!.length, greedy.tokens.length - (greedy.finishReason === "stop" ? 1 : 0));
  for (const [i, e] of greedy.logprobs!.entries()) {
    assert.equal(e.id, greedy.tokens[i]);
    assert.equal(e.top.length, 5);
    // Greedy picks the most likely token: the first alternative, with the same logprob.
    assert.equal(e.top[0].id, e.id);
    assert.equal(e.top[0].logprob, e.logprob);
    for (let k = 1; k < 5; k++) assert.ok(e.top[k].logprob <= e.top[k - 1].logprob);
    const mass = e.top.reduce((a, t) => a + Math.exp(t.logprob), 0);
    assert.ok(mass > 0 && mass <= 1 + 1e-5, `top-5 mass ${mass}`);
  }
  const seen: number[] = [];
  const sampled = await model.generate("Hello", {
    temperature: 1,
    seed: 3,
    maxTokens: 8,
    topLogprobs: 0,
    onLogprob: (e) => seen.push(e.id),
  });
  assert.deepEqual(seen, sampled.tokens.slice(0, seen.length));
  assert.ok(sampled.logprobs!.every((e) => e.logprob <= 0 && e.top.length === 0));
});

Deno.test("logit bias forces or bans a token; penalties stop repeats", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 128 });
  const base = await model.generate("Hello", { temperature: 0, maxTokens: 6 });
  const forced = await model.generate("Hello", { temperature: 0, maxTokens: 6, logitBias: { 300: 100 } });
  assert.ok(forced.tokens.every((id) => id === 300), `${forced.tokens}`);
  const banned = await model.generate("Hello", { temperature: 0, maxTokens: 6, logitBias: { [base.tokens[0]]: -100 } });
  assert.notEqual(banned.tokens[0], base.tokens[0]);
  // With +100 on one token, a presence penalty of 2 per use cannot beat it; a huge bias still decides.
  const penalized = await model.generate("Hello", {
    temperature: 0,
    maxTokens: 6,
    logitBias: { 300: 3 },
    frequencyPenalty: 2,
    presencePenalty: 2,
  });
  const repeats = penalized.tokens.filter((id) => id === 300).length;
  assert.ok(repeats < 6, `token 300 repeated ${repeats} times despite the penalties`);
  await assert.rejects(model.stream("x", { logitBias: { 99999: 1 } }).next(), /logitBias/);
});

Deno.test("compiled grammars evicted from the cache are freed once their last matcher is disposed", async () => {
  using model = await loadModel(DIR, { backend: "cpu", maxContext: 256 });
  const schema = (n: number) => ({ type: "json_schema" as const, schema: { type: "object", required: [`k${n}`] } });
  const vocab = model.tokenizer.vocabSize;
  const held = await compileConstraint(model.tokenizer, vocab, schema(0));
  const base = liveCompiledGrammars();
  // 80 more schemas through a cache of 64: schema 0 and 15 others are evicted.
  for (let n = 1; n <= 80; n++) (await compileConstraint(model.tokenizer, vocab, schema(n)))!.dispose();
  await Promise.resolve();
  // Every evicted grammar without a matcher is gone; schema 0's stays while its matcher lives.
  assert.equal(liveCompiledGrammars(), base + 80 - 16);
  held!.dispose();
  held!.dispose(); // idempotent: frees nothing twice
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(liveCompiledGrammars(), base + 80 - 16 - 1);
});
