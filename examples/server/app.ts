/**
 * The embeddable Hono app of the server example. Today it reports health and the (empty) model list;
 * the OpenAI-compatible routes arrive with the models (issue #9).
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { createApp } from "./app.ts";
 * const main = new Hono().route("/llm", createApp({ backend }));
 * ```
 */
import { Hono } from "hono";
import type { Backend } from "../../mod.ts";

export interface AppOptions {
  backend: Backend;
}

export function createApp({ backend }: AppOptions): Hono {
  const app = new Hono();
  app.get("/health", (c) =>
    c.json({
      status: "ok",
      backend: backend.kind,
      device: backend.deviceName,
      memory: backend.memoryStats(),
    }));
  app.get("/v1/models", (c) => c.json({ object: "list", data: [] }));
  app.notFound((c) =>
    c.json({ error: { message: `no route ${c.req.method} ${c.req.path}`, type: "invalid_request_error" } }, 404)
  );
  return app;
}
