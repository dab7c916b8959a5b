/**
 * `deno task serve [--model PATH|REPO|FILE.gguf] [--port 8080] [--host 127.0.0.1] [--backend auto|cpu|cuda]
 *  [--model-id NAME] [--max-context N] [--api-key KEY] [--allow-remote-images] [--allow-remote-videos]
 *  [--max-queue N] [--max-tokens N]`
 *
 * Loads one model and serves the example app on Deno.serve. Without --model it serves the default model
 * (Gemma 3 270M). The API key may also come from GEMMAKIT_API_KEY.
 */
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { type BackendChoice, loadModel } from "../../mod.ts";
import { createApp } from "./app.ts";
import { serveBounded } from "./serve.ts";
import { chatPageScript } from "./web/bundle.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    model: { type: "string" },
    "model-id": { type: "string" },
    port: { type: "string", default: "8080" },
    host: { type: "string", default: "127.0.0.1" },
    backend: { type: "string", default: "auto" },
    "max-context": { type: "string" },
    "api-key": { type: "string" },
    "allow-remote-images": { type: "boolean", default: false },
    "allow-remote-videos": { type: "boolean", default: false },
    "max-queue": { type: "string" },
    "max-tokens": { type: "string" },
    cors: { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log(
    "deno task serve [--model PATH] [--port 8080] [--host 127.0.0.1] [--backend auto|cpu|cuda] [--model-id NAME]\n" +
      "  [--max-context N] [--api-key KEY] [--allow-remote-images] [--allow-remote-videos] [--max-queue N]\n" +
      "  [--max-tokens N] [--cors ORIGIN]...",
  );
  Deno.exit(0);
}

function int(name: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${v}`);
    Deno.exit(2);
  }
  return n;
}

const model = await loadModel(values.model, {
  backend: values.backend as BackendChoice,
  maxContext: int("max-context", values["max-context"]),
});
const modelId = values["model-id"] ?? (values.model ? basename(values.model.replace(/\/+$/, "")) : "gemma-3-270m");
const maxQueue = int("max-queue", values["max-queue"]);
const maxTokens = int("max-tokens", values["max-tokens"]);
const app = createApp({
  model,
  modelId,
  apiKey: values["api-key"] ?? Deno.env.get("GEMMAKIT_API_KEY"),
  remoteImages: { allow: values["allow-remote-images"] },
  remoteVideos: { allow: values["allow-remote-videos"] },
  cors: values.cors,
  limits: { ...(maxQueue !== undefined && { maxQueue }), ...(maxTokens !== undefined && { maxTokens }) },
});
await chatPageScript(); // bundle the chat page now, not on the first visitor's request
const port = int("port", values.port)!;
// Behind the connection guard: a cap on open connections and a deadline for each request's headers.
const server = await serveBounded(app.fetch, { port, hostname: values.host });
console.log(
  `gemmakit server: '${modelId}' on ${model.backend.kind} (${model.backend.deviceName}) at ` +
    `http://${server.addr.hostname}:${server.addr.port}/`,
);
Deno.addSignalListener("SIGINT", async () => {
  await server.shutdown();
  model.dispose();
  Deno.exit(0);
});
