/**
 * The embeddable Hono app of the server example: OpenAI-compatible chat and text completions over one
 * loaded model, the model list, health, Prometheus metrics, and a browser chat page.
 *
 * One model holds one KV cache, so generations run one at a time; the rest wait in a bounded first-come
 * first-served queue (queue.ts) and are refused with 503 + Retry-After past its bound. A client that
 * disconnects aborts its generation, or leaves the queue. Every limit is in limits.ts.
 *
 * @example Mount it in your own Hono app
 * ```ts
 * import { Hono } from "hono";
 * import { loadModel } from "@gemmakit/gemmakit";
 * import { createApp } from "./app.ts";
 *
 * const model = await loadModel("path/to/gemma-3-checkpoint");
 * const main = new Hono().route("/llm", createApp({ model, modelId: "gemma-3" }));
 * Deno.serve(main.fetch);
 * ```
 */
import { type Context, Hono } from "hono";
import { cors } from "hono/cors";
import { type SSEStreamingApi, streamSSE } from "hono/streaming";
import type { Backend } from "../../mod.ts";
import { BodyBudget, readJsonBody } from "./body.ts";
import { ApiError, toApiError } from "./errors.ts";
import { chatOptions, type GenerationOutcome, libraryInput, runGeneration, type ServedModel } from "./generation.ts";
import { DEFAULT_LIMITS, type Limits, type RemoteImages } from "./limits.ts";
import { Metrics } from "./metrics.ts";
import {
  ChatChunks,
  chatCompletion,
  completionLogprobs,
  finishOf,
  textCompletion,
  textCompletionChunk,
  textCompletionUsage,
} from "./openai.ts";
import { FairQueue } from "./queue.ts";
import { type GenerationRequest, parseChatRequest, parseCompletionRequest } from "./request.ts";
import { chatPageHtml, chatPageScript } from "./web/bundle.ts";

export interface AppOptions {
  /** The model to serve (from `loadModel`). Without one the app answers health and an empty model list. */
  model?: ServedModel;
  /** The name clients ask for in `model` and see in /v1/models. Default "gemmakit". */
  modelId?: string;
  /** Backend to report in /health when no model is given. */
  backend?: Backend;
  /** When set, every route but /health (and the static chat page) needs `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  limits?: Partial<Limits>;
  /** http(s) image URLs: refused unless `allow` (default false). */
  remoteImages?: Partial<RemoteImages>;
  /** Whether the model takes image parts. Default: the model's `supportsImages`, else false. */
  acceptsImages?: boolean;
  /** http(s) video URLs (video_url parts): refused unless `allow` (default false); the timeout is remoteImages'. */
  remoteVideos?: Partial<RemoteImages>;
  /** Whether the model takes video_url parts. Default: the model's `supportsVideo`, else false. */
  acceptsVideo?: boolean;
  /** Serve the browser chat page at / (default true). */
  chatPage?: boolean;
  /** Origins allowed to call the API from a browser (CORS, with OPTIONS preflight); "*" for any. Default none. */
  cors?: string[];
}

/** Known routes, for metric labels (unknown paths are one label, so a scanner cannot blow up the series). */
const ROUTES = [
  "/chat.js",
  "/health",
  "/metrics",
  "/v1/models",
  "/v1/chat/completions",
  "/v1/completions",
  "/tokenize",
  "/detokenize",
];

/** The route a path is (the app may be mounted under a prefix). */
function routeLabel(path: string): string {
  if (path.endsWith("/")) return "/";
  if (/\/v1\/models\/.+/.test(path)) return "/v1/models/:id";
  return ROUTES.find((r) => path.endsWith(r)) ?? "other";
}

/** The chat page's static files hold no data and reach no model: they stay open so a browser can load them. */
function isStaticPage(method: string, path: string): boolean {
  return method === "GET" && !path.includes("/v1/") && (path.endsWith("/") || path.endsWith("/chat.js"));
}

/** The client went away before we answered: nothing to send. */
class ClientGone extends Error {}

function sameKey(given: string, expected: string): boolean {
  // Constant time in the key's length: no early exit on the first differing byte.
  const a = new TextEncoder().encode(given), b = new TextEncoder().encode(expected);
  let diff = a.length ^ b.length;
  for (let i = 0; i < b.length; i++) diff |= (a[i] ?? 0) ^ b[i];
  return diff === 0;
}

export function createApp(options: AppOptions = {}): Hono {
  const { model, apiKey } = options;
  const modelId = options.modelId ?? "gemmakit";
  const backend = model?.backend ?? options.backend;
  const limits: Limits = { ...DEFAULT_LIMITS, ...options.limits };
  const remote: RemoteImages = { allow: false, timeoutMs: 10_000, ...options.remoteImages };
  const acceptsImages = options.acceptsImages ?? model?.supportsImages === true;
  const remoteVideos: RemoteImages = { allow: false, timeoutMs: remote.timeoutMs, ...options.remoteVideos };
  const acceptsVideo = options.acceptsVideo ?? model?.supportsVideo === true;
  /** The vision-encoder cache's counters, in the API's snake_case; null for text-only models. */
  const visionCache = () => {
    const s = model?.visionCacheStats?.();
    return s
      ? {
        hits: s.hits,
        misses: s.misses,
        evictions: s.evictions,
        entries: s.entries,
        bytes: s.bytes,
        max_bytes: s.maxBytes,
      }
      : null;
  };
  // As many requests run at once as the model has KV-cache slots (loadModel's parallel); the library batches them.
  /** The library's batch (slots, sequences, KV bytes, prefix cache), in the API's snake_case. */
  const batchStats = () => {
    const b = model?.batchStats?.();
    return b
      ? {
        slots: b.slots,
        active: b.active,
        queued: b.queued,
        prefilling: b.prefilling,
        kv_bytes_used: b.kvBytesUsed,
        kv_bytes_budget: b.kvBytesBudget,
        prefix_hits: b.prefixHits,
        prefix_misses: b.prefixMisses,
        prefix_tokens_reused: b.prefixTokensReused,
        steps: b.steps,
        rows_stepped: b.rowsStepped,
      }
      : null;
  };
  const queue = new FairQueue(limits.maxQueue, model?.batchStats?.().slots ?? 1);
  const bodyBounds = {
    maxBytes: limits.maxBodyBytes,
    timeoutMs: limits.bodyTimeoutMs,
    budget: new BodyBudget(limits.maxInflightBodyBytes),
  };
  /** A token's text for logprobs, special tokens as written. */
  const tokenText = (id: number) => model?.tokenizer?.decode([id]) ?? `<${id}>`;
  const metrics = new Metrics();
  const created = Math.floor(Date.now() / 1000);
  let counter = 0;

  const app = new Hono();
  // Before the key check: a preflight carries no Authorization header.
  if (options.cors?.length) {
    const origins = options.cors;
    app.use(cors({ origin: origins.includes("*") ? "*" : origins, allowHeaders: ["Authorization", "Content-Type"] }));
  }

  app.use(async (c, next) => {
    await next();
    metrics.request(routeLabel(c.req.path), c.res.status);
  });

  app.use(async (c, next) => {
    const open = c.req.path.endsWith("/health") ||
      (options.chatPage !== false && isStaticPage(c.req.method, c.req.path));
    if (!apiKey || open) return await next();
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m) {
      return new ApiError(401, "missing API key: send it as `Authorization: Bearer <key>`", {
        type: "authentication_error",
        code: "invalid_api_key",
      }).toResponse();
    }
    if (!sameKey(m[1].trim(), apiKey)) {
      return new ApiError(401, "incorrect API key", { type: "authentication_error", code: "invalid_api_key" })
        .toResponse();
    }
    await next();
  });

  app.onError((e) => {
    const error = toApiError(e);
    if (!(e instanceof ApiError) && error.status >= 500) console.error(e);
    return error.toResponse();
  });

  app.notFound((c) => new ApiError(404, `no route ${c.req.method} ${c.req.path}`).toResponse());

  app.get("/health", (c) =>
    c.json({
      status: "ok",
      model: model ? modelId : null,
      backend: backend?.kind ?? null,
      device: backend?.deviceName ?? null,
      memory: backend?.memoryStats() ?? null,
      queue: { depth: queue.depth, busy: queue.busy },
      vision_cache: visionCache(),
      batch: batchStats(),
    }));

  const modelCard = () => ({ id: modelId, object: "model", created, owned_by: "gemmakit" });
  app.get("/v1/models", (c) => c.json({ object: "list", data: model ? [modelCard()] : [] }));
  app.get("/v1/models/:id{.+}", (c) => {
    if (!model || c.req.param("id") !== modelId) throw unknownModel(c.req.param("id"));
    return c.json(modelCard());
  });

  app.get("/metrics", (c) =>
    c.text(
      metrics.render({
        queueDepth: queue.depth,
        inFlight: queue.running,
        nativeMemoryBytes: backend?.memoryStats().inUse ?? 0,
        visionCache: model?.visionCacheStats?.(),
        batch: model?.batchStats?.(),
      }),
      200,
      { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    ));

  function unknownModel(name: string): ApiError {
    return new ApiError(
      404,
      `The model '${name}' does not exist; this server serves ${model ? `'${modelId}'` : "no model"}`,
      { param: "model", code: "model_not_found" },
    );
  }

  /** Checks a parsed request against the model; returns max_tokens to use. */
  function admit(request: GenerationRequest, chat: boolean): { model: ServedModel; maxTokens: number } {
    if (!model || request.model !== modelId) throw unknownModel(request.model);
    // A base model whose family supplies its turn format (the default GGUF) takes conversations too.
    if (chat && !(model.canChat ?? model.supportsChat)) {
      throw new ApiError(400, `'${modelId}' is a base model (no chat template): use /v1/completions with a prompt`, {
        param: "messages",
      });
    }
    if (request.toolChoice) {
      const name = request.toolChoice.name;
      const what = name === undefined ? '"required"' : `{function: {name: ${JSON.stringify(name)}}}`;
      if (request.responseFormat) {
        throw new ApiError(400, `tool_choice ${what} and response_format cannot be combined`, {
          param: "tool_choice",
        });
      }
      const format = model.toolCallFormat?.(request.tools!, name);
      if (!format) {
        throw new ApiError(
          400,
          `tool_choice ${what} is not supported by '${modelId}': its family has no tool-call syntax to constrain ` +
            `the answer to ("auto" and "none" are supported)`,
          { param: "tool_choice" },
        );
      }
      request.responseFormat = format;
    }
    if (request.images && !acceptsImages) {
      throw new ApiError(400, `'${modelId}' is a text-only model and does not take images`, {
        param: "messages",
        code: "images_not_supported",
      });
    }
    if (request.videos && !acceptsVideo) {
      throw new ApiError(400, `'${modelId}' does not take video (video_url parts need a Gemma 4 vision model)`, {
        param: "messages",
        code: "videos_not_supported",
      });
    }
    const promptTokens = model.encode(libraryInput(request), chatOptions(request)).length;
    const limit = Math.min(model.maxContext - 1, limits.maxPromptTokens);
    if (promptTokens > limit) {
      throw new ApiError(
        400,
        `This model's maximum context length is ${limit} tokens, but the prompt is ${promptTokens} tokens.`,
        { param: chat ? "messages" : "prompt", code: "context_length_exceeded" },
      );
    }
    const maxTokens = Math.min(request.maxTokens ?? limits.defaultMaxTokens, model.maxContext - promptTokens);
    return { model, maxTokens };
  }

  async function acquire(signal: AbortSignal): Promise<() => void> {
    try {
      return await queue.acquire(signal);
    } catch (e) {
      if (signal.aborted) throw new ClientGone();
      throw e;
    }
  }

  function record(o: GenerationOutcome): void {
    metrics.generation({
      promptTokens: o.promptTokens,
      completionTokens: o.completionTokens,
      ttftSeconds: o.ttftSeconds,
      decodeTps: o.decodeTokensPerSecond,
    });
  }

  async function serve(c: Context, chat: boolean): Promise<Response> {
    const startedAt = performance.now();
    const clientSignal = c.req.raw.signal;
    try {
      const raw = await readJsonBody(c.req.raw, bodyBounds);
      const request = chat
        ? await parseChatRequest(raw, limits, remote, clientSignal, remoteVideos)
        : parseCompletionRequest(raw, limits);
      const { model, maxTokens } = admit(request, chat);
      const release = await acquire(clientSignal);
      const meta = {
        id: `${chat ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${(++counter).toString(36)}`,
        created: Math.floor(Date.now() / 1000),
        model: modelId,
      };
      if (!request.stream) {
        let outcome: GenerationOutcome;
        try {
          outcome = await runGeneration(model, request, maxTokens, clientSignal, startedAt, () => {});
        } finally {
          release();
        }
        record(outcome);
        if (clientSignal.aborted) throw new ClientGone();
        return c.json(chat ? chatCompletion(meta, outcome, tokenText) : textCompletion(meta, outcome, tokenText));
      }
      return await sse(c, model, request, maxTokens, release, meta, chat, clientSignal, startedAt);
    } catch (e) {
      // Nobody reads this answer; 499 (client closed request) keeps the metrics honest.
      if (e instanceof ClientGone || clientSignal.aborted) return new Response(null, { status: 499 });
      throw e;
    }
  }

  /**
   * Streams a generation as SSE. The 200 and its headers go out only once the model has produced
   * something (or finished): a prompt the library refuses on its way in (over the context once images are
   * expanded, an image that does not decode, a template that rejects the turns) still gets its own status.
   */
  async function sse(
    c: Context,
    model: ServedModel,
    request: GenerationRequest,
    maxTokens: number,
    release: () => void,
    meta: { id: string; created: number; model: string },
    chat: boolean,
    clientSignal: AbortSignal,
    startedAt: number,
  ): Promise<Response> {
    const cancelled = new AbortController();
    const signal = AbortSignal.any([clientSignal, cancelled.signal]);
    const chunks = new ChatChunks(meta, tokenText);
    // Legacy completions: logprobs wait for the text they make, with its offset in the answer.
    const pendingLogprobs: Parameters<typeof completionLogprobs>[0][number][] = [];
    let textOffset = 0;
    // Events wait here until the response (and its stream) exists; then they are written in order.
    const pending: string[] = [];
    let out: SSEStreamingApi | undefined;
    let writes = Promise.resolve();
    let closed = false;
    const send = (data: unknown) => {
      if (closed || data === undefined) return;
      const text = typeof data === "string" ? data : JSON.stringify(data);
      const stream = out;
      if (stream) writes = writes.then(() => stream.writeSSE({ data: text }).then(() => {}));
      else pending.push(text);
    };
    const finished = Promise.withResolvers<void>();
    let began = false;
    const ready = Promise.withResolvers<void>();
    const begin = () => {
      if (began) return;
      began = true;
      if (chat) send(chunks.start());
      ready.resolve();
    };
    (async () => {
      try {
        const outcome = await runGeneration(model, request, maxTokens, signal, startedAt, (e) => {
          if (e.type !== "logprob") begin();
          if (chat) send(chunks.event(e));
          else if (e.type === "logprob") pendingLogprobs.push(e.entry);
          else if (e.type === "content") {
            const lp = request.topLogprobs === undefined
              ? null
              : completionLogprobs(pendingLogprobs.splice(0), tokenText, textOffset);
            textOffset += e.text.length;
            send(textCompletionChunk(meta, e.text, null, lp));
          }
        });
        begin();
        record(outcome);
        send(chat ? chunks.finish(outcome) : textCompletionChunk(meta, "", finishOf(outcome)));
        if (request.includeUsage) send(chat ? chunks.usage(outcome) : textCompletionUsage(meta, outcome));
      } catch (e) {
        if (!began) return ready.reject(e);
        const err = toApiError(e);
        if (!(e instanceof ApiError) && err.status >= 500) console.error(e);
        send(err.body);
      } finally {
        release();
        send("[DONE]");
        finished.resolve();
      }
    })();
    await ready.promise;
    // Hono's SSE helper: a cancelled response body (the client went away) calls onAbort, which stops the
    // generation, without reading the request's signal for it.
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => {
        closed = true;
        cancelled.abort();
      });
      // Flush what came before the stream existed, then switch send() to direct writes (no await between
      // the last flush and the switch, so nothing can slip in out of order).
      while (pending.length > 0) await stream.writeSSE({ data: pending.shift()! });
      out = stream;
      await finished.promise;
      await writes;
    });
  }

  // llama-server's /tokenize {content, add_special?, with_pieces?} and /detokenize {tokens}.
  app.post("/tokenize", async (c) => {
    const body = await readJsonBody(c.req.raw, bodyBounds) as Record<string, unknown>;
    if (!model?.tokenizer) throw new ApiError(404, "this server serves no model");
    if (typeof body?.content !== "string") throw new ApiError(400, "content must be a string", { param: "content" });
    const ids = model.tokenizer.encode(body.content, { addSpecialTokens: body.add_special === true });
    const tokens = body.with_pieces === true ? ids.map((id) => ({ id, piece: model.tokenizer!.decode([id]) })) : ids;
    return c.json({ tokens });
  });
  app.post("/detokenize", async (c) => {
    const body = await readJsonBody(c.req.raw, bodyBounds) as Record<string, unknown>;
    if (!model?.tokenizer) throw new ApiError(404, "this server serves no model");
    const tokens = body?.tokens;
    const vocab = model.tokenizer.vocabSize;
    if (!Array.isArray(tokens) || !tokens.every((t) => Number.isInteger(t) && t >= 0 && t < vocab)) {
      throw new ApiError(400, `tokens must be an array of token ids in [0, ${vocab})`, { param: "tokens" });
    }
    return c.json({ content: model.tokenizer.decode(tokens) });
  });

  app.post("/v1/chat/completions", (c) => serve(c, true));
  app.post("/v1/completions", (c) => serve(c, false));

  if (options.chatPage !== false) {
    app.get("/", async (c) => c.html(await chatPageHtml()));
    app.get(
      "/chat.js",
      async (c) => c.body(await chatPageScript(), 200, { "content-type": "text/javascript; charset=utf-8" }),
    );
  }
  return app;
}
