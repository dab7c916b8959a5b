import assert from "node:assert/strict";
import { Backend } from "../src/runtime/backend.ts";
import { createApp } from "../examples/server/app.ts";

Deno.test("server example: /health reports the backend, unknown routes are OpenAI-shaped 404s", async () => {
  using backend = Backend.open({ backend: "cpu" });
  const app = createApp({ backend });
  const health = await app.request("/health");
  assert.equal(health.status, 200);
  const body = await health.json();
  assert.equal(body.backend, "cpu");
  assert.equal(typeof body.memory.inUse, "number");
  const models = await (await app.request("/v1/models")).json();
  assert.deepEqual(models, { object: "list", data: [] });
  const missing = await app.request("/v1/nope", { method: "POST" });
  assert.equal(missing.status, 404);
  assert.match((await missing.json()).error.message, /no route POST \/v1\/nope/);
});
