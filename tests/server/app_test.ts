/**
 * Every route and error of the server example through `app.request()` on the tiny Gemma 3 fixture: the
 * answers are the library's own generations in OpenAI's shapes, and each bad request gets its status and
 * a message naming the problem, after which the next request is served.
 */
import assert from "node:assert/strict";
import { Backend, loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { json, MODEL_ID, type Piece, PNG_DATA_URL, ScriptedModel, sseData, TEXT_MODEL } from "./helpers.ts";

const model = await loadModel(TEXT_MODEL, { backend: "cpu", maxContext: 64 });
const KEY = "sk-test-123";
const app = createApp({
  model,
  modelId: MODEL_ID,
  limits: { maxTokens: 32, maxBodyBytes: 64 << 10, maxImageBytes: 2048 },
});
const keyed = createApp({ model, modelId: MODEL_ID, apiKey: KEY, chatPage: false });
const user = (content: unknown) => [{ role: "user", content }];
const chat = (body: Record<string, unknown>, a = app, headers: Record<string, string> = {}) =>
  a.request("/v1/chat/completions", json({ model: MODEL_ID, messages: user("Hi there"), ...body }, headers));

/** The request fails with `status` and a message matching `message`; then a good request still works. */
async function fails(response: Response | Promise<Response>, status: number, message: RegExp, code?: string) {
  const r = await response;
  const body = await r.json();
  assert.equal(r.status, status, JSON.stringify(body));
  assert.match(body.error.message, message);
  assert.equal(typeof body.error.type, "string");
  if (code) assert.equal(body.error.code, code);
  const next = await chat({ max_tokens: 2, temperature: 0 });
  assert.equal(next.status, 200, "the next request is served");
  await next.body?.cancel();
  return body.error;
}

Deno.test("chat completion: the library's greedy answer, OpenAI-shaped, with usage", async () => {
  const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "Name a color." }];
  const r = await chat({ messages, max_tokens: 12, temperature: 0 });
  assert.equal(r.status, 200);
  const body = await r.json();
  const direct = await model.generate({ messages }, { maxTokens: 12, temperature: 0 });
  assert.equal(body.object, "chat.completion");
  assert.equal(body.model, MODEL_ID);
  assert.match(body.id, /^chatcmpl-/);
  assert.equal(body.choices.length, 1);
  assert.deepEqual(body.choices[0].message, { role: "assistant", content: direct.text });
  assert.equal(body.choices[0].finish_reason, direct.finishReason === "length" ? "length" : "stop");
  assert.deepEqual(body.usage, {
    prompt_tokens: direct.promptTokens,
    completion_tokens: direct.completionTokens,
    total_tokens: direct.promptTokens + direct.completionTokens,
  });
  // developer is OpenAI's newer name for system: the same prompt.
  const dev = await (await chat({
    messages: [{ ...messages[0], role: "developer" }, messages[1]],
    max_tokens: 12,
    temperature: 0,
  })).json();
  assert.equal(dev.choices[0].message.content, direct.text);
});

Deno.test("chat completion streamed as SSE: role, deltas that add up, finish, usage, [DONE]", async () => {
  const body = { max_tokens: 12, temperature: 0 };
  const whole = await (await chat(body)).json();
  const r = await chat({ ...body, stream: true, stream_options: { include_usage: true } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type")!, /^text\/event-stream/);
  const events = await sseData(r);
  assert.equal(events.at(-1), "[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id));
  assert.deepEqual(chunks[0].choices[0].delta, { role: "assistant", content: "" });
  const deltas = chunks.slice(1, -2).map((c) => c.choices[0].delta.content);
  assert.ok(deltas.length >= 2, `streamed in ${deltas.length} pieces`);
  assert.equal(deltas.join(""), whole.choices[0].message.content);
  assert.equal(chunks.at(-2).choices[0].finish_reason, whole.choices[0].finish_reason);
  assert.deepEqual(chunks.at(-1).choices, []);
  assert.deepEqual(chunks.at(-1).usage, whole.usage);
});

Deno.test("sampling: seed reproduces, top_p and stop strings reach the generator", async () => {
  const sampled = { max_tokens: 16, temperature: 1, top_p: 0.9, seed: 42 };
  const a = await (await chat(sampled)).json();
  const b = await (await chat(sampled)).json();
  assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  const direct = await model.generate({ messages: user("Hi there") as never }, {
    maxTokens: 16,
    temperature: 1,
    topP: 0.9,
    seed: 42,
  });
  assert.equal(a.choices[0].message.content, direct.text);
  // A stop string from the middle of the greedy answer cuts it there.
  const greedy = (await (await chat({ max_tokens: 24, temperature: 0 })).json()).choices[0].message.content as string;
  const mid = Math.floor(greedy.length / 2);
  const stop = greedy.slice(mid, mid + 2);
  assert.ok(stop.length === 2, `greedy answer too short: ${JSON.stringify(greedy)}`);
  const cut = await (await chat({ max_tokens: 24, temperature: 0, stop })).json();
  assert.equal(cut.choices[0].message.content, greedy.slice(0, greedy.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, "stop");
  // max_completion_tokens is the newer name of max_tokens.
  const three = await (await chat({ max_completion_tokens: 3, temperature: 0 })).json();
  assert.equal(three.usage.completion_tokens, 3);
  assert.equal(three.choices[0].finish_reason, "length");
});

Deno.test("legacy completions: plain prompt, default 16 tokens, streamed too", async () => {
  const r = await app.request("/v1/completions", json({ model: MODEL_ID, prompt: "The keeper", temperature: 0 }));
  assert.equal(r.status, 200);
  const body = await r.json();
  const direct = await model.generate("The keeper", { maxTokens: 16, temperature: 0 });
  assert.equal(body.object, "text_completion");
  assert.equal(body.choices[0].text, direct.text);
  assert.equal(body.usage.completion_tokens, direct.completionTokens);
  const s = await app.request(
    "/v1/completions",
    json({ model: MODEL_ID, prompt: ["The keeper"], temperature: 0, stream: true }),
  );
  const events = await sseData(s);
  assert.equal(events.at(-1), "[DONE]");
  const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
  assert.equal(chunks.map((c) => c.choices[0].text).join(""), direct.text);
  assert.equal(chunks.at(-1).choices[0].finish_reason, body.choices[0].finish_reason);
});

Deno.test("models, health, metrics and the chat page", async () => {
  const list = await (await app.request("/v1/models")).json();
  assert.equal(list.object, "list");
  assert.deepEqual(list.data.map((m: { id: string }) => m.id), [MODEL_ID]);
  const one = await (await app.request(`/v1/models/${MODEL_ID}`)).json();
  assert.equal(one.id, MODEL_ID);
  await fails(app.request("/v1/models/gpt-4"), 404, /The model 'gpt-4' does not exist/, "model_not_found");
  const health = await (await app.request("/health")).json();
  assert.equal(health.status, "ok");
  assert.equal(health.model, MODEL_ID);
  assert.equal(health.memory.inUse, model.backend.memoryStats().inUse);
  const metrics = await app.request("/metrics");
  assert.match(metrics.headers.get("content-type")!, /^text\/plain; version=0.0.4/);
  const text = await metrics.text();
  assert.match(text, /gemmakit_requests_total\{route="\/v1\/chat\/completions",status="200"\} \d+/);
  assert.match(text, /gemmakit_requests_total\{route="\/v1\/models\/:id",status="404"\} 1/);
  assert.match(text, /^gemmakit_queue_depth 0$/m);
  assert.match(text, /^gemmakit_completion_tokens_total [1-9]\d*$/m);
  assert.match(text, /^gemmakit_time_to_first_token_seconds_count [1-9]\d*$/m);
  assert.match(text, /^gemmakit_decode_tokens_per_second_bucket\{le="\+Inf"\} [1-9]\d*$/m);
  assert.match(text, new RegExp(`^gemmakit_native_memory_bytes ${model.backend.memoryStats().inUse}$`, "m"));
  const page = await app.request("/");
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<script type="module" src="chat.js">/);
  const script = await app.request("/chat.js");
  assert.match(script.headers.get("content-type")!, /javascript/);
  const js = await script.text();
  assert.match(js, /v1\/chat\/completions/);
  assert.doesNotMatch(js, /^\s*import /m, "bundled: no imports left");
});

Deno.test("API key: every route but /health needs it", async () => {
  assert.equal((await keyed.request("/health")).status, 200);
  for (const [path, init] of [["/v1/models", {}], ["/metrics", {}], ["/v1/completions", json({})]] as const) {
    const missing = await keyed.request(path, init);
    assert.equal(missing.status, 401, path);
    assert.match((await missing.json()).error.message, /missing API key/);
  }
  const ok = { max_tokens: 2 };
  await fails(chat(ok, keyed), 401, /missing API key/, "invalid_api_key");
  await fails(chat(ok, keyed, { authorization: "Bearer sk-wrong" }), 401, /incorrect API key/, "invalid_api_key");
  await fails(chat(ok, keyed, { authorization: KEY }), 401, /missing API key/);
  const good = await chat(ok, keyed, { authorization: `Bearer ${KEY}` });
  assert.equal(good.status, 200);
  assert.equal((await good.json()).usage.completion_tokens, 2);
  assert.equal((await keyed.request("/v1/models", { headers: { authorization: `Bearer ${KEY}` } })).status, 200);
});

Deno.test("bad input: the right status and a clear message, and the next request is served", async () => {
  const post = (body: string, headers = {}) =>
    app.request("/v1/chat/completions", {
      method: "POST",
      body,
      headers: { "content-type": "application/json", ...headers },
    });
  await fails(post("{not json"), 400, /not valid JSON/, "invalid_json");
  await fails(post("[1,2]"), 400, /must be a JSON object, got an array/);
  await fails(app.request("/v1/chat/completions", { method: "POST" }), 400, /no body/);
  await fails(chat({ messages: "hi" }), 400, /messages must be a non-empty array, got string/);
  await fails(chat({ messages: [] }), 400, /messages must be a non-empty array/);
  await fails(chat({ model: 7 }), 400, /model must be a non-empty string, got number/);
  await fails(chat({ temperature: "hot" }), 400, /temperature must be a number, got string/);
  await fails(chat({ temperature: 3 }), 400, /temperature must be between 0 and 2, got 3/);
  await fails(chat({ top_p: 0 }), 400, /top_p must be between/);
  await fails(chat({ max_tokens: 0 }), 400, /max_tokens must be between 1 and 32, got 0/);
  await fails(chat({ max_tokens: 33 }), 400, /max_tokens must be between 1 and 32, got 33/);
  await fails(chat({ max_tokens: 2.5 }), 400, /max_tokens must be an integer/);
  await fails(chat({ seed: 1.5 }), 400, /seed must be an integer/);
  await fails(chat({ stream: "yes" }), 400, /stream must be a boolean/);
  await fails(chat({ stop: [1] }), 400, /stop must be a string or an array of strings/);
  await fails(chat({ n: 2 }), 400, /n=2 is not supported/);
  const e = await fails(
    chat({ messages: [{ role: "wizard", content: "hi" }] }),
    400,
    /messages\[0\]\.role must be one of/,
  );
  assert.equal(e.param, "messages[0].role");
  await fails(chat({ messages: [{ role: "user" }] }), 400, /messages\[0\]\.content must be a string or an array/);
  await fails(
    chat({ messages: [{ role: "user", content: [{ type: "audio" }] }] }),
    400,
    /type "audio" is not supported/,
  );
  await fails(
    chat({ messages: [{ role: "assistant", content: "a" }, { role: "assistant", content: "b" }] }),
    400,
    /roles must alternate/,
  );
  await fails(
    chat({ model: "gpt-4o" }),
    404,
    /The model 'gpt-4o' does not exist; this server serves 'gemma3-text-mixed'/,
    "model_not_found",
  );
  await fails(
    chat({ messages: user("word ".repeat(80)) }),
    400,
    /maximum context length is 63 tokens, but the prompt is \d+ tokens/,
    "context_length_exceeded",
  );
  await fails(app.request("/v1/completions", json({ model: MODEL_ID, prompt: 5 })), 400, /prompt must be a string/);
  await fails(
    post(JSON.stringify({ model: MODEL_ID, messages: user("x".repeat(70 << 10)) })),
    413,
    /request body is over the limit of 65536 bytes/,
  );
  await fails(app.request("/v1/nope", { method: "POST" }), 404, /no route POST \/v1\/nope/);
});

Deno.test("bad images: refused before they reach the model", async () => {
  const image = (url: string) =>
    chat({ messages: user([{ type: "text", text: "What is this?" }, { type: "image_url", image_url: { url } }]) });
  await fails(image("data:image/png;base64,@@@@"), 400, /not valid base64/, "invalid_image_url");
  // Percent-encoded data URLs decode (the library's one helper); these bytes are no image.
  await fails(image("data:image/png,rawbytes"), 400, /not an image/, "invalid_image");
  await fails(image("data:image/png,%zz"), 400, /bad percent escape/, "invalid_image_url");
  await fails(image("data:image/png;base64"), 400, /no ','/, "invalid_image_url");
  await fails(image(`data:image/png;base64,${btoa("definitely not a png")}`), 400, /not an image/, "invalid_image");
  await fails(
    image(`data:image/png;base64,${btoa("\x89PNG" + "x".repeat(3000))}`),
    413,
    /over the limit of 2048 bytes/,
  );
  await fails(image("https://example.com/cat.png"), 400, /does not fetch remote images/, "remote_images_disabled");
  await fails(image("ftp://example.com/cat.png"), 400, /only data: and http\(s\): image URLs/);
  // A good image to a text-only checkpoint: a clear refusal, not a silently ignored picture.
  await fails(image(PNG_DATA_URL), 400, /text-only model and does not take images/, "images_not_supported");
});

Deno.test("server example without a model: health and an empty list", async () => {
  const bare = createApp({ backend: model.backend });
  assert.deepEqual(await (await bare.request("/v1/models")).json(), { object: "list", data: [] });
  const r = await bare.request("/v1/chat/completions", json({ model: "m", messages: user("hi") }));
  assert.equal(r.status, 404);
  assert.match((await r.json()).error.message, /serves no model/);
});

Deno.test("reasoning and tool calls (Gemma 4's parsed events) → reasoning_content and tool_calls", async () => {
  using backend = Backend.open({ backend: "cpu" });
  const script: Piece[] = [
    { type: "reasoning", text: "The user wants" },
    { type: "reasoning", text: " the weather." },
    { type: "tool_call", call: { name: "get_weather", arguments: { city: "Paris", days: 2 } } },
    "Checking",
    " now.",
  ];
  const scripted = new ScriptedModel(backend, script, true);
  const gemma4 = createApp({ model: scripted, modelId: "g4" });
  const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object" } } }];
  const body = { model: "g4", messages: user("Weather in Paris?"), tools, reasoning_effort: "high" };
  const r = await (await gemma4.request("/v1/chat/completions", json(body))).json();
  const message = r.choices[0].message;
  assert.equal(message.content, "Checking now.");
  assert.equal(message.reasoning_content, "The user wants the weather.");
  assert.equal(message.tool_calls.length, 1);
  assert.match(message.tool_calls[0].id, /^call_/);
  assert.equal(message.tool_calls[0].type, "function");
  assert.equal(message.tool_calls[0].function.name, "get_weather");
  assert.deepEqual(JSON.parse(message.tool_calls[0].function.arguments), { city: "Paris", days: 2 });
  assert.equal(r.choices[0].finish_reason, "tool_calls");
  // The tools and the thinking switch reached the model.
  assert.deepEqual(scripted.options[0].tools, tools);
  assert.equal(scripted.options[0].thinking, true);

  const s = await gemma4.request("/v1/chat/completions", json({ ...body, stream: true, reasoning_effort: "none" }));
  const chunks = (await sseData(s)).slice(0, -1).map((e) => JSON.parse(e));
  const deltas = chunks.map((c) => c.choices[0].delta);
  assert.deepEqual(deltas.slice(1, 3), [{ reasoning_content: "The user wants" }, {
    reasoning_content: " the weather.",
  }]);
  assert.equal(deltas[3].tool_calls[0].index, 0);
  assert.equal(deltas[3].tool_calls[0].function.name, "get_weather");
  assert.deepEqual(deltas.slice(4, 6), [{ content: "Checking" }, { content: " now." }]);
  assert.equal(chunks.at(-1).choices[0].finish_reason, "tool_calls");
  assert.equal(scripted.options[1].thinking, false);

  // A conversation that carries the call and its result goes back to the template as it expects.
  const followUp = {
    model: "g4",
    tools,
    messages: [
      ...user("Weather in Paris?"),
      {
        role: "assistant",
        content: null,
        tool_calls: [{
          id: "call_1",
          type: "function",
          function: { name: "get_weather", arguments: '{"city":"Paris"}' },
        }],
      },
      { role: "tool", tool_call_id: "call_1", content: '{"temp": 21}' },
    ],
  };
  assert.equal((await gemma4.request("/v1/chat/completions", json(followUp))).status, 200);
  const sent = (scripted.calls[2].input as { messages: Record<string, unknown>[] }).messages;
  assert.deepEqual(sent[1].tool_calls, [{
    id: "call_1",
    type: "function",
    function: { name: "get_weather", arguments: { city: "Paris" } },
  }]);
  assert.deepEqual(sent[2], { role: "tool", content: '{"temp": 21}', tool_call_id: "call_1" });
  const bad = await gemma4.request(
    "/v1/chat/completions",
    json({
      ...followUp,
      messages: [followUp.messages[0], {
        role: "assistant",
        tool_calls: [{ function: { name: "f", arguments: "{oops" } }],
      }],
    }),
  );
  assert.equal(bad.status, 400);
  assert.match(
    (await bad.json()).error.message,
    /messages\[1\]\.tool_calls\[0\]\.function\.arguments is not valid JSON/,
  );
  const effort = await gemma4.request("/v1/chat/completions", json({ ...body, reasoning_effort: "max" }));
  assert.equal(effort.status, 400);
  assert.match((await effort.json()).error.message, /reasoning_effort must be none, minimal, low, medium or high/);
});

Deno.test({
  name: "dispose the fixture model",
  fn: () => model.dispose(),
});
