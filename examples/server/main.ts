/**
 * `deno task serve [flags]` — loads one model and serves the example app (see USAGE below, or `--help`).
 *
 * Start-up failures are one line on stderr with a hint and an exit code of their own (EXIT), never a stack
 * trace: a script that starts the server can tell a typo from a busy port from a missing model. The port is
 * bound before the model loads, so a busy port is known in a second, not after a minute of loading weights.
 * @module
 */
import { basename } from "node:path";
import { parseArgs } from "node:util";
import { type BackendChoice, LibraryError, loadModel, MAX_PARALLEL, type Model } from "../../mod.ts";
import { createApp } from "./app.ts";
import { serveBounded } from "./serve.ts";
import { chatPageScript } from "./web/bundle.ts";

/** Exit codes of a failed start. */
export const EXIT = { usage: 2, port: 3, model: 4, backend: 5 } as const;

const USAGE = `deno task serve [flags]

Serves one model over an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models,
/tokenize, /detokenize, /health, /metrics) and a chat page at /.

Flags:
  --model PATH|REPO|FILE.gguf  checkpoint folder, Hugging Face repo id or GGUF file (default: Gemma 3 270M)
  --mmproj FILE                llama.cpp's vision projector (mmproj-*.gguf) for a GGUF model (default: the one
                               mmproj*.gguf beside the model, if exactly one); --no-mmproj: text only
  --model-id NAME              the model name the API reports (default: the folder's name)
  --port N                     TCP port; 0 picks a free one (default 8080)
  --host ADDR                  address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --backend auto|cpu|cuda      where the model runs (default auto: CUDA when a GPU is found)
  --max-context N              KV cache length in tokens (default: the model's, capped by memory)
  --api-key KEY                require "Authorization: Bearer KEY" (or set GEMMAKIT_API_KEY)
  --allow-remote-images        fetch http(s) image URLs in messages (public addresses only)
  --allow-remote-videos        fetch http(s) video URLs in messages (public addresses only)
  --parallel N                 requests decoded at once, batched (KV-cache slots, each a full context's;
                               1..${MAX_PARALLEL}, default 1: one at a time)
  --max-queue N                requests waiting for the model before a 503 (default 16)
  --max-tokens N               cap on max_tokens per request
  --cors ORIGIN                allow browser calls from ORIGIN (repeatable; * for any)
  -h, --help                   this text

Examples:
  deno task serve
  deno task serve --model google/gemma-3-1b-it --port 9000 --max-context 8192
  deno task serve --model ./gemma-4-E2B-it --backend cuda --host 0.0.0.0 --api-key secret --cors https://example.com

Exit codes: 0 ok, ${EXIT.usage} bad flags, ${EXIT.port} port unavailable, ${EXIT.model} model not loadable, ${EXIT.backend} backend unavailable.`;

/** A start-up failure: printed as one line with its hint, then exit with its code. */
class StartError extends Error {
  constructor(readonly code: number, message: string, readonly hint: string) {
    super(message);
    this.name = "StartError";
  }
}

function fail(e: StartError): never {
  console.error(`gemmakit server: ${e.message} (${e.hint})`);
  Deno.exit(e.code);
}

/** The first line of an error's message: the line a user can act on, without the trace. */
function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split("\n")[0];
}

function parseFlags() {
  try {
    return parseArgs({
      args: Deno.args,
      strict: true,
      allowPositionals: false,
      options: {
        model: { type: "string" },
        mmproj: { type: "string" },
        "no-mmproj": { type: "boolean", default: false },
        "model-id": { type: "string" },
        port: { type: "string", default: "8080" },
        host: { type: "string", default: "127.0.0.1" },
        backend: { type: "string", default: "auto" },
        "max-context": { type: "string" },
        "api-key": { type: "string" },
        "allow-remote-images": { type: "boolean", default: false },
        "allow-remote-videos": { type: "boolean", default: false },
        "max-queue": { type: "string" },
        parallel: { type: "string" },
        "max-tokens": { type: "string" },
        cors: { type: "string", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (e) {
    // node:util's parse errors (unknown option, missing value, stray positional) are TypeErrors with a code.
    throw new StartError(EXIT.usage, firstLine(e).replace(/\. To specify a positional.*$/, ""), "see --help");
  }
}

function int(name: string, v: string | undefined, max = Number.MAX_SAFE_INTEGER, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new StartError(
      EXIT.usage,
      `--${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(v)}`,
      "see --help",
    );
  }
  return n;
}

const BACKENDS: readonly BackendChoice[] = ["auto", "cpu", "cuda"];

/** Binds the public port; the errors a user can fix get their own line. */
function bind(hostname: string, port: number): Deno.TcpListener {
  try {
    return Deno.listen({ hostname, port });
  } catch (e) {
    const where = `${hostname}:${port}`;
    if (e instanceof Deno.errors.AddrInUse) {
      throw new StartError(EXIT.port, `port ${where} is in use`, "stop the other server or pick another --port");
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new StartError(EXIT.port, `no permission to listen on ${where}`, "ports below 1024 need privileges");
    }
    if (e instanceof Deno.errors.AddrNotAvailable) {
      throw new StartError(EXIT.port, `${hostname} is not an address of this machine`, "check --host");
    }
    throw new StartError(EXIT.port, `cannot listen on ${where}: ${firstLine(e)}`, "check --host and --port");
  }
}

async function load(
  path: string | undefined,
  backend: BackendChoice,
  maxContext: number | undefined,
  mmproj: string | false | undefined,
  parallel: number | undefined,
) {
  try {
    return await loadModel(path, { backend, maxContext, mmproj, parallel });
  } catch (e) {
    const message = firstLine(e);
    // The native library missing, stale or without a device: the checkpoint is fine, the machine is not.
    if (e instanceof LibraryError) {
      const hint = backend === "cpu" ? "run deno task build" : "try --backend cpu, or deno task build";
      throw new StartError(EXIT.backend, `backend ${backend}: ${message}`, hint);
    }
    throw new StartError(
      EXIT.model,
      `cannot load model ${JSON.stringify(path ?? "(default)")}: ${message}`,
      "--model takes a checkpoint folder, a GGUF file or a Hugging Face repo id",
    );
  }
}

async function main(): Promise<void> {
  const values = parseFlags();
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const backend = values.backend as BackendChoice;
  if (!BACKENDS.includes(backend)) {
    throw new StartError(
      EXIT.usage,
      `--backend must be auto, cpu or cuda, got ${JSON.stringify(values.backend)}`,
      "see --help",
    );
  }
  const port = int("port", values.port, 65535)!;
  const maxContext = int("max-context", values["max-context"]);
  const maxQueue = int("max-queue", values["max-queue"]);
  const maxTokens = int("max-tokens", values["max-tokens"]);
  const parallel = int("parallel", values.parallel, MAX_PARALLEL, 1);

  if (values.mmproj !== undefined && values["no-mmproj"]) {
    throw new StartError(EXIT.usage, "--mmproj and --no-mmproj exclude each other", "see --help");
  }
  const mmproj = values["no-mmproj"] ? false : values.mmproj;

  const listener = bind(values.host, port);
  let model: Model;
  try {
    model = await load(values.model, backend, maxContext, mmproj, parallel);
  } catch (e) {
    listener.close();
    throw e;
  }
  const modelId = values["model-id"] ?? (values.model ? basename(values.model.replace(/\/+$/, "")) : "gemma-3-270m");
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
  // Behind the connection guard: a cap on open connections and a deadline for each request's headers.
  const server = await serveBounded(app.fetch, { listener });
  console.log(
    `gemmakit server: '${modelId}' on ${model.backend.kind} (${model.backend.deviceName}) at ` +
      `http://${server.addr.hostname}:${server.addr.port}/ (${model.batchStats().slots} at once)`,
  );
  // After the banner (whose first line scripts read for the address).
  if (model.parallelNote) console.log(`gemmakit server: --parallel ${parallel}: ${model.parallelNote}`);
  Deno.addSignalListener("SIGINT", async () => {
    await server.shutdown();
    model.dispose();
    Deno.exit(0);
  });
}

if (import.meta.main) {
  try {
    await main();
  } catch (e) {
    if (e instanceof StartError) fail(e);
    throw e; // a bug, not a start-up condition: keep its trace
  }
}
