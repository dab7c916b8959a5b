/**
 * tool_choice "required" and a named function: the answer is constrained to Gemma 4's tool-call syntax and the
 * tool's parameter schema, so even the tiny random Gemma 4 fixture answers with a call the parser reads back,
 * to the named function, with schema-valid arguments, for every seed. A family without a tool-call syntax
 * (Gemma 3) is a 400 naming tool_choice.
 */
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Ajv } from "ajv";
import { loadModel, type Model } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { MODEL_ID, ROOT, TEXT_MODEL } from "./helpers.ts";

const GEMMA4 = `${ROOT}tests/fixtures/gemma4-text-e`;
const SEEDS = 40;

// The chat template upper-cases every property's type, so each one states it.
const WEATHER = {
  type: "object",
  properties: {
    city: { type: "string", maxLength: 16 },
    unit: { type: "string", enum: ["celsius", "fahrenheit"] },
    days: { type: "integer" },
    hourly: { type: "boolean" },
    tags: { type: "array", items: { type: "string", maxLength: 6 }, maxItems: 3 },
  },
  required: ["city", "unit"],
  additionalProperties: false,
};
const TIME = {
  type: "object",
  properties: { zone: { type: "string", enum: ["UTC", "CET"] }, offset: { type: "number" } },
  additionalProperties: false,
};
const tools: OpenAI.ChatCompletionTool[] = [
  { type: "function", function: { name: "get_weather", description: "Weather in a city", parameters: WEATHER } },
  { type: "function", function: { name: "get_time", description: "The time", parameters: TIME } },
];
const messages = [{ role: "user" as const, content: "What is the weather in Paris?" }];

async function withServer(model: Model, modelId: string, fn: (client: OpenAI) => Promise<void>) {
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    createApp({ model, modelId }).fetch,
  );
  try {
    await fn(new OpenAI({ baseURL: `http://127.0.0.1:${server.addr.port}/v1`, apiKey: "x", maxRetries: 0 }));
  } finally {
    await server.shutdown();
  }
}

Deno.test("tool_choice named/required: every seed yields a parsed call with schema-valid arguments", async () => {
  using model = await loadModel(GEMMA4, { backend: "cpu", maxContext: 512 });
  const ajv = new Ajv({ strict: false });
  const valid = { get_weather: ajv.compile(WEATHER), get_time: ajv.compile(TIME) };
  await withServer(model, "gemma4", async (client) => {
    const seen = new Set<string>();
    for (let seed = 0; seed < SEEDS; seed++) {
      const named = seed % 2 === 0;
      const r = await client.chat.completions.create({
        model: "gemma4",
        messages,
        tools,
        tool_choice: named ? { type: "function", function: { name: "get_weather" } } : "required",
        temperature: 1,
        seed,
        max_tokens: 200,
        logprobs: true, // the raw tokens, for the message of a failure
      });
      const choice = r.choices[0];
      const calls = choice.message.tool_calls ?? [];
      const raw = choice.logprobs?.content?.map((t) => t.token).join("");
      assert.equal(calls.length, 1, `seed ${seed}: ${JSON.stringify(choice.message)} from ${JSON.stringify(raw)}`);
      assert.equal(choice.finish_reason, "tool_calls");
      const call = calls[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
      const name = call.function.name as keyof typeof valid;
      if (named) assert.equal(name, "get_weather");
      assert.ok(name in valid, `seed ${seed}: unknown function ${name}`);
      const args = JSON.parse(call.function.arguments);
      assert.ok(valid[name](args), `seed ${seed}: ${call.function.arguments}: ${ajv.errorsText(valid[name].errors)}`);
      seen.add(name);
    }
    // "required" leaves the choice of tool to the model: a random one picks either.
    assert.deepEqual([...seen].sort(), ["get_time", "get_weather"]);
  });
});

Deno.test("tool_choice: bad names and combinations are 400s naming tool_choice", async () => {
  using model = await loadModel(GEMMA4, { backend: "cpu", maxContext: 512 });
  await withServer(model, "gemma4", async (client) => {
    const cases: [Partial<OpenAI.ChatCompletionCreateParamsNonStreaming>, RegExp][] = [
      [{ tool_choice: { type: "function", function: { name: "nope" } } }, /"nope", which is not among the tools/],
      [{ tool_choice: "required", response_format: { type: "json_object" } }, /cannot be combined/],
      [{ tools: undefined, tool_choice: "required" }, /tool_choice needs tools/],
    ];
    for (const [extra, message] of cases) {
      const e = await client.chat.completions.create({ model: "gemma4", messages, tools, max_tokens: 4, ...extra })
        .then(() => undefined, (e) => e);
      assert.ok(e instanceof OpenAI.BadRequestError, JSON.stringify(extra));
      assert.equal((e.error as { param?: string }).param, "tool_choice");
      assert.match(e.message, message);
    }
  });
});

Deno.test("tool_choice required on a family without a tool-call syntax (Gemma 3) is a 400 naming it", async () => {
  using model = await loadModel(TEXT_MODEL, { backend: "cpu", maxContext: 256 });
  assert.equal(model.toolCallFormat(tools as never), undefined);
  await withServer(model, MODEL_ID, async (client) => {
    const e = await client.chat.completions.create({ model: MODEL_ID, messages, tools, tool_choice: "required" })
      .then(() => undefined, (e) => e);
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.equal((e.error as { param?: string }).param, "tool_choice");
    assert.match(e.message, /tool_choice "required" is not supported/);
  });
});
