/**
 * The server on the default model (the base Gemma 3 270M GGUF, no chat template): /v1/chat/completions and the
 * chat page answer in Gemma 3's turn format instead of a 400, and a follow-up turn (the whole conversation sent
 * again, as the page does) answers as a cold prefill of it does.
 */
import assert from "node:assert/strict";
import { loadModel } from "../../mod.ts";
import { createApp } from "../../examples/server/app.ts";
import { realGguf270m } from "../models/real_gguf.ts";

Deno.test("server on the default base model: chat completions and the page answer; follow-ups answer as cold ones", async (t) => {
  const gguf = await realGguf270m();
  if (gguf.skip) return void console.log(`${t.name}: skipped: ${gguf.skip}`);
  using model = await loadModel(gguf.path, { backend: "cpu", maxContext: 1024 });
  const app = createApp({ model, modelId: "gemma3-270m" });
  const post = (messages: unknown) =>
    app.request("/v1/chat/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gemma3-270m", messages, max_tokens: 12, temperature: 0 }),
    });
  const first = await post([{ role: "user", content: "What is the capital of France?" }]);
  assert.equal(first.status, 200, await first.clone().text());
  const answer = (await first.json()).choices[0].message.content as string;
  assert.ok(answer.length > 0);
  // The page sends the whole conversation again; the model prefills only the new turn.
  const messages = [
    { role: "user", content: "What is the capital of France?" },
    { role: "assistant", content: answer },
    { role: "user", content: "And of Italy?" },
  ];
  const before = model.cachedTokens.length;
  assert.ok(before > 0);
  const direct = await model.generate({ messages }, { maxTokens: 12, temperature: 0, reusePrefix: false });
  const second = await post(messages);
  assert.equal(second.status, 200);
  assert.equal((await second.json()).choices[0].message.content, direct.text, "cached and cold answers agree");
  const page = await app.request("/");
  assert.equal(page.status, 200);
  await page.body?.cancel();
});
