/**
 * The server on a real socket, spoken to by the official `openai` npm client: plain and streamed chat,
 * legacy completions, an image part, tools, typed client errors. The answers must be the model's own
 * greedy generations (checked against the library directly).
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { encodeBase64, MODEL_ID, PNG_DATA_URL, ROOT, TEXT_MODEL } from "./helpers.ts";

const KEY = "sk-local-test";

async function withServer(fn: (client: OpenAI, model: Awaited<ReturnType<typeof loadModel>>) => Promise<void>) {
  using model = await loadModel(TEXT_MODEL, { backend: "cpu", maxContext: 64 });
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    createApp({
      model,
      modelId: MODEL_ID,
      apiKey: KEY,
    }).fetch,
  );
  try {
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${server.addr.port}/v1`, apiKey: KEY, maxRetries: 0 });
    await fn(client, model);
  } finally {
    await server.shutdown();
  }
}

const messages = [{ role: "user" as const, content: "Say something." }];

Deno.test("openai client: chat, streamed chat and completions over a socket", async () => {
  await withServer(async (client, model) => {
    const direct = await model.generate({ messages }, { maxTokens: 10, temperature: 0 });
    const r = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 10, temperature: 0 });
    assert.equal(r.choices[0].message.content, direct.text);
    assert.equal(r.usage?.prompt_tokens, direct.promptTokens);
    assert.equal(r.usage?.completion_tokens, direct.completionTokens);

    const stream = await client.chat.completions.create({
      model: MODEL_ID,
      messages,
      max_tokens: 10,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "", pieces = 0, finish: string | null = null, usage;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      if (choice.delta.content) [text, pieces] = [text + choice.delta.content, pieces + 1];
      finish = choice.finish_reason ?? finish;
    }
    assert.equal(text, direct.text);
    assert.ok(pieces >= 2, `${pieces} streamed pieces`);
    assert.equal(finish, r.choices[0].finish_reason);
    assert.equal(usage?.total_tokens, r.usage?.total_tokens);

    const c = await client.completions.create({ model: MODEL_ID, prompt: "The lamp", max_tokens: 8, temperature: 0 });
    assert.equal(c.choices[0].text, (await model.generate("The lamp", { maxTokens: 8, temperature: 0 })).text);
    const models = await client.models.list();
    assert.deepEqual(models.data.map((m) => m.id), [MODEL_ID]);
  });
});

Deno.test("openai client: image parts, tools, and errors as typed client exceptions", async () => {
  await withServer(async (client) => {
    // This checkpoint is text-only: an image is refused with a clear 400 (the parts parse; the model says no).
    // (The vision fixture takes it: the next test.)
    const image = await client.chat.completions.create({
      model: MODEL_ID,
      messages: [{
        role: "user",
        content: [{ type: "text", text: "What is in the picture?" }, {
          type: "image_url",
          image_url: { url: PNG_DATA_URL },
        }],
      }],
      max_tokens: 4,
    }).catch((e) => e);
    assert.ok(image instanceof OpenAI.BadRequestError, String(image));
    assert.match(image.message, /text-only model and does not take images/);
    assert.equal(image.code, "images_not_supported");

    // Tools are accepted in OpenAI's shape; Gemma 3's template has no tool syntax, so the answer is text.
    const tools = [{
      type: "function" as const,
      function: {
        name: "get_weather",
        description: "Weather in a city",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      },
    }];
    const withTools = await client.chat.completions.create({ model: MODEL_ID, messages, tools, max_tokens: 4 });
    assert.equal(withTools.choices[0].message.role, "assistant");
    assert.equal(withTools.usage?.completion_tokens, 4);
    // A conversation carrying an earlier tool call and its result is taken too.
    const badTools = await client.chat.completions.create({
      model: MODEL_ID,
      messages,
      tools: [{ type: "function", function: {} } as never],
    }).catch((e) => e);
    assert.ok(badTools instanceof OpenAI.BadRequestError);
    assert.match(badTools.message, /tools\[0\] must be \{type: "function"/);

    const missing = await client.chat.completions.create({ model: "gpt-4o", messages }).catch((e) => e);
    assert.ok(missing instanceof OpenAI.NotFoundError, String(missing));
    assert.equal(missing.code, "model_not_found");
    const badKey = new OpenAI({ baseURL: client.baseURL, apiKey: "sk-wrong", maxRetries: 0 });
    const denied = await badKey.models.list().catch((e) => e);
    assert.ok(denied instanceof OpenAI.AuthenticationError, String(denied));
    const ok = await client.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 2 });
    assert.equal(ok.usage?.completion_tokens, 2, "served after the errors");
  });
});

Deno.test("openai client: an image part on the vision fixture, plain and streamed", async () => {
  const dir = `${ROOT}tests/fixtures/gemma3-vision-tiny`;
  using model = await loadModel(dir, { backend: "cpu", maxContext: 128 });
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    createApp({ model, modelId: "vision-tiny" }).fetch,
  );
  try {
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${server.addr.port}/v1`, apiKey: "none", maxRetries: 0 });
    const bytes = Deno.readFileSync(`${dir}/landscape.png`);
    const direct = await model.generate({
      messages: [{ role: "user", content: [{ type: "text", text: "Describe" }, { type: "image", bytes }] }],
    }, { maxTokens: 8, temperature: 0 });
    const request = {
      model: "vision-tiny",
      messages: [{
        role: "user" as const,
        content: [
          { type: "text" as const, text: "Describe" },
          { type: "image_url" as const, image_url: { url: `data:image/png;base64,${encodeBase64(bytes)}` } },
        ],
      }],
      max_tokens: 8,
      temperature: 0,
    };
    const r = await client.chat.completions.create(request);
    assert.equal(r.choices[0].message.content, direct.text);
    assert.equal(r.usage?.prompt_tokens, direct.promptTokens);
    let text = "";
    for await (const chunk of await client.chat.completions.create({ ...request, stream: true })) {
      text += chunk.choices[0]?.delta.content ?? "";
    }
    assert.equal(text, direct.text);
  } finally {
    await server.shutdown();
  }
});

Deno.test("openai client: tools and reasoning_effort reach Gemma 4's chat template", async () => {
  using model = await loadModel(`${ROOT}tests/fixtures/gemma4-text-e`, { backend: "cpu", maxContext: 256 });
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    createApp({ model, modelId: "gemma4-e" }).fetch,
  );
  try {
    const client = new OpenAI({ baseURL: `http://127.0.0.1:${server.addr.port}/v1`, apiKey: "none", maxRetries: 0 });
    const messages = [{ role: "user" as const, content: "Weather in Paris?" }];
    const tools = [{
      type: "function" as const,
      function: {
        name: "get_weather",
        description: "Weather in a city",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      },
    }];
    const plain = await client.chat.completions.create({ model: "gemma4-e", messages, max_tokens: 4 });
    const withTools = await client.chat.completions.create({
      model: "gemma4-e",
      messages,
      tools,
      reasoning_effort: "high",
      max_tokens: 4,
    });
    // The prompt is the template's rendering with the tool declarations and the thinking switch.
    assert.equal(plain.usage?.prompt_tokens, model.encode({ messages }).length);
    assert.equal(withTools.usage?.prompt_tokens, model.encode({ messages }, { tools, thinking: true }).length);
    assert.ok(withTools.usage!.prompt_tokens > plain.usage!.prompt_tokens);
    // Random weights call no tool; whatever the parser found is in OpenAI's fields.
    const direct = await model.generate({ messages }, { tools, thinking: true, maxTokens: 4, temperature: 0 });
    const greedy = await client.chat.completions.create({
      model: "gemma4-e",
      messages,
      tools,
      reasoning_effort: "high",
      max_tokens: 4,
      temperature: 0,
    });
    const message = greedy.choices[0].message as typeof greedy.choices[0]["message"] & { reasoning_content?: string };
    assert.equal(message.content, direct.text);
    assert.equal(message.reasoning_content ?? "", direct.reasoning ?? "");
    assert.equal(message.tool_calls?.length ?? 0, direct.toolCalls?.length ?? 0);
  } finally {
    await server.shutdown();
  }
});
