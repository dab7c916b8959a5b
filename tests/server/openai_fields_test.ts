/**
 * Every OpenAI sampling and output field through the official `openai` client: logprobs / top_logprobs (chat
 * and completions, plain and streamed), logit_bias, frequency/presence penalties, min_p, top_k,
 * repetition_penalty, seed, stop, response_format (json_object, json_schema), llama-server's grammar; and an
 * unsupported field is a 400 that names it.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Ajv } from "ajv";
import { loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { MODEL_ID, TEXT_MODEL } from "./helpers.ts";

async function withServer(fn: (client: OpenAI, model: Awaited<ReturnType<typeof loadModel>>) => Promise<void>) {
  using model = await loadModel(TEXT_MODEL, { backend: "cpu", maxContext: 256 });
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    createApp({ model, modelId: MODEL_ID }).fetch,
  );
  try {
    await fn(new OpenAI({ baseURL: `http://127.0.0.1:${server.addr.port}/v1`, apiKey: "x", maxRetries: 0 }), model);
  } finally {
    await server.shutdown();
  }
}

const messages = [{ role: "user" as const, content: "Say something." }];

Deno.test("openai client: logprobs and top_logprobs, chat and completions, plain and streamed", async () => {
  await withServer(async (client, model) => {
    const direct = await model.generate({ messages }, { maxTokens: 8, temperature: 0, topLogprobs: 3 });
    const r = await client.chat.completions.create({
      model: MODEL_ID,
      messages,
      max_tokens: 8,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
    });
    const content = r.choices[0].logprobs!.content!;
    assert.equal(content.length, direct.logprobs!.length);
    // The server's request reuses the KV cache the direct call left (prefix reuse), and a prefill from an offset
    // sums in another order than a full one: equal within the logits' 1e-4, not bit for bit.
    const close = (a: number, b: number) => Math.abs(a - b) <= 1e-4;
    content.forEach((c, i) => {
      assert.ok(close(c.logprob, direct.logprobs![i].logprob), `${c.logprob} vs ${direct.logprobs![i].logprob}`);
      assert.equal(c.top_logprobs.length, 3);
      assert.equal(c.top_logprobs[0].logprob, c.logprob); // greedy: the sampled token is the most likely
      assert.deepEqual(c.bytes, [...new TextEncoder().encode(c.token)]);
    });

    const stream = await client.chat.completions.create({
      model: MODEL_ID,
      messages,
      max_tokens: 8,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      stream: true,
    });
    const streamed: number[] = [];
    for await (const chunk of stream) {
      for (const c of chunk.choices[0]?.logprobs?.content ?? []) streamed.push(c.logprob);
    }
    assert.equal(streamed.length, direct.logprobs!.length);
    streamed.forEach((v, i) =>
      assert.ok(close(v, direct.logprobs![i].logprob), `${v} vs ${direct.logprobs![i].logprob}`)
    );

    const plain = await client.completions.create({
      model: MODEL_ID,
      prompt: "Hello",
      max_tokens: 6,
      temperature: 0,
      logprobs: 2,
    });
    const lp = plain.choices[0].logprobs!;
    assert.equal(lp.tokens!.length, lp.token_logprobs!.length);
    assert.equal(lp.top_logprobs!.length, lp.tokens!.length);
    assert.ok(lp.token_logprobs!.every((v) => v <= 0));
    const sc = await client.completions.create({
      model: MODEL_ID,
      prompt: "Hello",
      max_tokens: 6,
      temperature: 0,
      logprobs: 2,
      stream: true,
    });
    const got: number[] = [];
    for await (const chunk of sc) got.push(...(chunk.choices[0]?.logprobs?.token_logprobs ?? []));
    assert.deepEqual(got, lp.token_logprobs);
  });
});

Deno.test("openai client: sampling fields reach the sampler", async () => {
  await withServer(async (client) => {
    const ask = (extra: Record<string, unknown>) =>
      client.completions.create({ model: MODEL_ID, prompt: "Hello", max_tokens: 6, temperature: 0, ...extra } as never)
        .then((r) => (r as unknown as OpenAI.Completion).choices[0]);
    const base = await ask({ logprobs: 0 });
    // logit_bias +100 forces a token; -100 bans the greedy one.
    const forced = await ask({ logit_bias: { "300": 100 }, logprobs: 0 });
    assert.ok(forced.logprobs!.token_logprobs!.length > 0);
    const n = forced.logprobs!.token_logprobs!.length;
    assert.equal(forced.text, await detokenize(client, Array(n).fill(300)));
    const banned = await ask({ logit_bias: { [String((await tokenIds(client, base.text))[0])]: -100 } });
    assert.notEqual(banned.text, base.text);
    // Penalties, min_p, top_k, repetition_penalty and seed: accepted, and seeded sampling is reproducible.
    const sampled = {
      temperature: 1,
      seed: 7,
      top_k: 20,
      min_p: 0.05,
      repetition_penalty: 1.3,
      frequency_penalty: 0.5,
      presence_penalty: 0.5,
    };
    const a = await ask(sampled), b = await ask(sampled);
    assert.equal(a.text, b.text);
    const stopped = await ask({ stop: [base.text.slice(2, 4) || "x"] });
    assert.ok(stopped.text.length <= base.text.length);
  });
});

/** llama-server's /tokenize and /detokenize, at the server's root (not under /v1). */
async function call(client: OpenAI, route: string, body: unknown) {
  const r = await fetch(client.baseURL.replace(/\/v1$/, route), { method: "POST", body: JSON.stringify(body) });
  assert.equal(r.status, 200);
  return await r.json();
}
const detokenize = async (client: OpenAI, ids: number[]) =>
  (await call(client, "/detokenize", { tokens: ids })).content;
async function tokenIds(client: OpenAI, text: string): Promise<number[]> {
  const ids = (await call(client, "/tokenize", { content: text })).tokens as number[];
  assert.equal(await detokenize(client, ids), text);
  return ids;
}

Deno.test("openai client: response_format json_schema and json_object, grammar", async () => {
  await withServer(async (client) => {
    const schema = {
      type: "object",
      properties: { name: { type: "string", maxLength: 8 }, n: { enum: [1, 2, 3] } },
      required: ["name", "n"],
      additionalProperties: false,
    };
    const validate = new Ajv().compile(schema);
    for (let seed = 0; seed < 10; seed++) {
      const r = await client.chat.completions.create({
        model: MODEL_ID,
        messages,
        max_tokens: 120,
        seed,
        temperature: 1,
        response_format: { type: "json_schema", json_schema: { name: "thing", schema } },
      });
      const value = JSON.parse(r.choices[0].message.content!);
      assert.ok(validate(value), r.choices[0].message.content!);
    }
    const g = await client.chat.completions.create({
      model: MODEL_ID,
      messages,
      max_tokens: 20,
      temperature: 1,
      seed: 1,
      grammar: 'root ::= ("yes" | "no")',
    } as never) as unknown as OpenAI.ChatCompletion;
    assert.ok(["yes", "no"].includes(g.choices[0].message.content!), g.choices[0].message.content!);
    await assert.rejects(
      client.chat.completions.create({
        model: MODEL_ID,
        messages,
        response_format: { type: "json_schema", json_schema: { name: "x", schema: { type: "nope" } } },
      }),
      (e) => e instanceof OpenAI.BadRequestError && /JSON Schema/.test(e.message),
    );
  });
});

Deno.test("openai client: an unsupported field is a 400 naming it", async () => {
  await withServer(async (client) => {
    for (const field of ["best_of", "echo", "suffix", "typical_p"]) {
      await assert.rejects(
        client.completions.create({ model: MODEL_ID, prompt: "x", [field]: 1 } as never),
        (e) => e instanceof OpenAI.BadRequestError && (e.error as { param?: string }).param === field,
        field,
      );
    }
    await assert.rejects(
      client.chat.completions.create({ model: MODEL_ID, messages, top_logprobs: 2 }),
      (e) => e instanceof OpenAI.BadRequestError && (e.error as { param?: string }).param === "top_logprobs",
    );
  });
});

Deno.test("--cors: an OPTIONS preflight from the allowed origin is answered without a key", async () => {
  const app = createApp({ apiKey: "k", cors: ["https://app.example"] });
  const r = await app.request("/v1/chat/completions", {
    method: "OPTIONS",
    headers: { origin: "https://app.example", "access-control-request-method": "POST" },
  });
  assert.equal(r.status, 204);
  assert.equal(r.headers.get("access-control-allow-origin"), "https://app.example");
  const other = await app.request("/v1/models", { headers: { origin: "https://evil.example" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
});
