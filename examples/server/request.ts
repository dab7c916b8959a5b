/**
 * Parses and checks OpenAI request bodies (chat completions and legacy completions) into the library's
 * generation input and options. Every wrong field is a 400 naming the field (`param`), so a client sees
 * what to fix; fields this server does not implement but that change nothing essential are ignored.
 * @module
 */
import type { ChatMessage, ResponseFormat } from "../../mod.ts";
import type { ToolSpec } from "./generation.ts";
import { ApiError, invalid } from "./errors.ts";
import { imageBytes } from "./images.ts";
import { videoBytes, videoSamplingOf } from "./videos.ts";
import type { Limits, RemoteImages } from "./limits.ts";

/** What a request asks the model for, in the library's terms. */
export interface GenerationRequest {
  model: string;
  /** Chat messages (converted), or a raw prompt. */
  input: { messages: ChatMessage[] } | { prompt: string };
  maxTokens?: number;
  sampling: {
    temperature?: number;
    topP?: number;
    topK?: number;
    minP?: number;
    repetitionPenalty?: number;
    seed?: number;
    frequencyPenalty?: number;
    presencePenalty?: number;
    logitBias?: Record<number, number>;
  };
  /** Alternatives per token for logprobs (0: the sampled token's only); undefined: no logprobs. */
  topLogprobs?: number;
  /** Structured output: response_format, or llama-server's `grammar`. */
  responseFormat?: ResponseFormat;
  stop: string[];
  /** OpenAI function tools, as {type: "function", function: {name, description, parameters}}. */
  tools?: ToolSpec[];
  /**
   * tool_choice "required" (`{}`) or a named function (`{name}`): the answer is constrained to one call in the
   * family's tool-call syntax (the app asks the model for that grammar).
   */
  toolChoice?: { name?: string };
  /** The chat template's thinking switch (Gemma 4), from reasoning_effort; undefined: the template's default. */
  thinking?: boolean;
  stream: boolean;
  includeUsage: boolean;
  /** How many images the messages carry. */
  images: number;
  /** How many videos the messages carry (vLLM's video_url parts). */
  videos?: number;
  /** How the library decodes the videos: the server's limits and the request's frame sampling (media_io_kwargs). */
  videoLoading?: VideoLoading;
}

/** The library's video decoding options the server sets (the abort signal is added when the generation runs). */
export interface VideoLoading {
  sampling?: { doSampleFrames: true; numFrames: number | null; fps: number | null };
  maxFrames: number;
  maxDurationSeconds: number;
  maxFileBytes: number;
  timeoutMs: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const show = (v: unknown) => (v === null ? "null" : Array.isArray(v) ? "an array" : typeof v);

function optNumber(body: Json, key: string, min: number, max: number, integer = false): number | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw invalid(key, `${key} must be a number, got ${show(v)}`);
  if (integer && !Number.isInteger(v)) throw invalid(key, `${key} must be an integer, got ${v}`);
  if (v < min || v > max) throw invalid(key, `${key} must be between ${min} and ${max}, got ${v}`);
  return v;
}

function optBoolean(body: Json, key: string): boolean {
  const v = body[key];
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw invalid(key, `${key} must be a boolean, got ${show(v)}`);
  return v;
}

function stopStrings(body: Json): string[] {
  const v = body.stop;
  if (v === undefined || v === null) return [];
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) {
    throw invalid("stop", "stop must be a string or an array of strings");
  }
  if (list.length > 4) throw invalid("stop", `stop takes at most 4 strings, got ${list.length}`);
  return list.filter((s) => s.length > 0);
}

function maxTokens(body: Json, limits: Limits): number | undefined {
  const a = optNumber(body, "max_completion_tokens", 1, limits.maxTokens, true);
  const b = optNumber(body, "max_tokens", 1, limits.maxTokens, true);
  return a ?? b;
}

/**
 * Every field this server reads. Any other is a 400 naming it: a client that asks for something we do not do
 * (best_of, echo, suffix, a penalty under another name...) learns it instead of getting an answer that ignored it.
 * `user` is OpenAI's end-user id for abuse tracking: it changes no output, so it is accepted.
 */
const COMMON_FIELDS = [
  "model",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "top_k",
  "min_p",
  "repetition_penalty",
  "frequency_penalty",
  "presence_penalty",
  "logit_bias",
  "logprobs",
  "n",
  "seed",
  "stop",
  "stream",
  "stream_options",
  "response_format",
  "grammar",
  "user",
];
const CHAT_FIELDS = new Set([
  ...COMMON_FIELDS,
  "messages",
  "top_logprobs",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "reasoning_effort",
  "chat_template_kwargs",
  "media_io_kwargs",
]);
const COMPLETION_FIELDS = new Set([...COMMON_FIELDS, "prompt"]);

function rejectUnknown(body: Json, known: Set<string>): void {
  for (const key of Object.keys(body)) {
    if (!known.has(key)) throw invalid(key, `${key} is not supported by this server; remove it from the request`);
  }
}

/** OpenAI's logit_bias: {"token id": bias in [-100, 100]}. */
function logitBiasOf(body: Json): Record<number, number> | undefined {
  const v = body.logit_bias;
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw invalid("logit_bias", "logit_bias must be an object of token id → bias");
  const out: Record<number, number> = {};
  for (const [k, b] of Object.entries(v)) {
    const id = Number(k);
    if (!/^\d+$/.test(k) || !Number.isSafeInteger(id)) {
      throw invalid("logit_bias", `logit_bias key ${JSON.stringify(k)} is not a token id`);
    }
    if (typeof b !== "number" || !Number.isFinite(b) || b < -100 || b > 100) {
      throw invalid("logit_bias", `logit_bias[${k}] must be a number between -100 and 100`);
    }
    out[id] = b;
  }
  return out;
}

/** response_format (OpenAI) or grammar (llama-server's extension: a GBNF-style grammar, xgrammar's EBNF). */
function responseFormatOf(body: Json): ResponseFormat | undefined {
  const rf = body.response_format, grammar = body.grammar;
  if (grammar !== undefined && grammar !== null) {
    if (typeof grammar !== "string" || !grammar.trim()) throw invalid("grammar", "grammar must be a non-empty string");
    if (rf !== undefined && rf !== null) throw invalid("grammar", "send either grammar or response_format, not both");
    return { type: "grammar", grammar };
  }
  if (rf === undefined || rf === null) return undefined;
  if (!isObject(rf) || typeof rf.type !== "string") {
    throw invalid("response_format", 'response_format must be {type: "text" | "json_object" | "json_schema"}');
  }
  if (rf.type === "text") return undefined;
  if (rf.type === "json_object") return { type: "json_object" };
  if (rf.type === "json_schema") {
    const js = rf.json_schema;
    if (!isObject(js) || (js.schema !== undefined && !isObject(js.schema) && typeof js.schema !== "boolean")) {
      throw invalid("response_format.json_schema", "response_format.json_schema must be {name, schema: object}");
    }
    // No schema: any JSON object, as OpenAI treats it.
    return js.schema === undefined ? { type: "json_object" } : { type: "json_schema", schema: js.schema };
  }
  throw invalid("response_format.type", `response_format.type ${JSON.stringify(rf.type)} is not supported`);
}

/** The fields chat and legacy completions share. */
function common(body: Json, limits: Limits) {
  if (typeof body.model !== "string" || !body.model) {
    throw invalid("model", `model must be a non-empty string, got ${show(body.model)}`);
  }
  // One choice per request: the model serves one generation at a time.
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw invalid("n", `n=${JSON.stringify(body.n)} is not supported: this server returns one choice (n=1)`);
  }
  const seed = optNumber(body, "seed", Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true);
  const streamOptions = body.stream_options;
  if (streamOptions !== undefined && streamOptions !== null && !isObject(streamOptions)) {
    throw invalid("stream_options", "stream_options must be an object");
  }
  return {
    model: body.model,
    maxTokens: maxTokens(body, limits),
    sampling: {
      temperature: optNumber(body, "temperature", 0, 2),
      topP: optNumber(body, "top_p", Number.MIN_VALUE, 1),
      topK: optNumber(body, "top_k", 0, 1 << 20, true),
      minP: optNumber(body, "min_p", 0, 1),
      repetitionPenalty: optNumber(body, "repetition_penalty", Number.MIN_VALUE, 10),
      frequencyPenalty: optNumber(body, "frequency_penalty", -2, 2),
      presencePenalty: optNumber(body, "presence_penalty", -2, 2),
      logitBias: logitBiasOf(body),
      // OpenAI takes any integer seed; the device sampler takes 32 bits.
      seed: seed === undefined ? undefined : ((seed % 2 ** 32) + 2 ** 32) % 2 ** 32,
    },
    stop: stopStrings(body),
    responseFormat: responseFormatOf(body),
    stream: optBoolean(body, "stream"),
    includeUsage: isObject(streamOptions) && streamOptions.include_usage === true,
  };
}

const ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);

function textOf(content: unknown, param: string): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((p, i) => {
      if (!isObject(p) || p.type !== "text" || typeof p.text !== "string") {
        throw invalid(`${param}[${i}]`, `${param}[${i}] must be a text part {type: "text", text: string} here`);
      }
      return p.text;
    }).join("\n");
  }
  throw invalid(param, `${param} must be a string or an array of content parts, got ${show(content)}`);
}

/** OpenAI's assistant tool_calls (arguments as a JSON string) → the chat template's (arguments as an object). */
function toolCallsOf(v: unknown, param: string): unknown[] {
  if (!Array.isArray(v)) throw invalid(param, `${param} must be an array`);
  return v.map((call, i) => {
    const p = `${param}[${i}]`;
    if (!isObject(call) || !isObject(call.function) || typeof call.function.name !== "string") {
      throw invalid(p, `${p} must be {id, type: "function", function: {name, arguments}}`);
    }
    let args: unknown = call.function.arguments ?? {};
    if (typeof args === "string") {
      try {
        args = JSON.parse(args || "{}");
      } catch {
        throw invalid(`${p}.function.arguments`, `${p}.function.arguments is not valid JSON`);
      }
    }
    return { id: call.id, type: "function", function: { name: call.function.name, arguments: args } };
  });
}

async function messagesOf(
  body: Json,
  limits: Limits,
  remote: RemoteImages,
  signal?: AbortSignal,
  remoteVideos: RemoteImages = { allow: false, timeoutMs: remote.timeoutMs },
): Promise<{ messages: ChatMessage[]; images: number; videos: number }> {
  const list = body.messages;
  if (!Array.isArray(list) || list.length === 0) {
    throw invalid("messages", `messages must be a non-empty array, got ${show(list)}`);
  }
  const images: Promise<void>[] = [];
  const videos: (() => Promise<void>)[] = [];
  const messages = list.map((m, i): ChatMessage => {
    const param = `messages[${i}]`;
    if (!isObject(m)) throw invalid(param, `${param} must be an object, got ${show(m)}`);
    if (typeof m.role !== "string" || !ROLES.has(m.role)) {
      throw invalid(
        `${param}.role`,
        `${param}.role must be one of system, developer, user, assistant, tool; got ${JSON.stringify(m.role)}`,
      );
    }
    switch (m.role) {
      case "system":
      case "developer":
        return { role: "system", content: textOf(m.content, `${param}.content`) };
      case "tool":
        return {
          role: "tool",
          content: textOf(m.content, `${param}.content`),
          ...(typeof m.tool_call_id === "string" ? { tool_call_id: m.tool_call_id } : {}),
          ...(typeof m.name === "string" ? { name: m.name } : {}),
        };
      case "assistant": {
        const out: ChatMessage = { role: "assistant" };
        const hasCalls = m.tool_calls !== undefined && m.tool_calls !== null;
        if (m.content === undefined || m.content === null) {
          if (!hasCalls) throw invalid(`${param}.content`, `${param}.content is required without tool_calls`);
          out.content = "";
        } else out.content = textOf(m.content, `${param}.content`);
        if (hasCalls) out.tool_calls = toolCallsOf(m.tool_calls, `${param}.tool_calls`);
        if (typeof m.reasoning_content === "string") out.reasoning_content = m.reasoning_content;
        return out;
      }
      default: { // user
        if (typeof m.content === "string") return { role: "user", content: m.content };
        if (!Array.isArray(m.content)) {
          throw invalid(`${param}.content`, `${param}.content must be a string or an array of content parts`);
        }
        const parts = m.content.map((p, j) => {
          const pp = `${param}.content[${j}]`;
          if (isObject(p) && p.type === "text" && typeof p.text === "string") return { type: "text", text: p.text };
          if (isObject(p) && p.type === "image_url") {
            const url = isObject(p.image_url) ? p.image_url.url : p.image_url;
            if (typeof url !== "string") throw invalid(`${pp}.image_url`, `${pp}.image_url must be {url: string}`);
            const part: { type: "image"; bytes?: Uint8Array } = { type: "image" };
            images.push(imageBytes(url, `${pp}.image_url`, limits, remote, signal).then((b) => void (part.bytes = b)));
            return part;
          }
          if (isObject(p) && p.type === "video_url") {
            const url = isObject(p.video_url) ? p.video_url.url : p.video_url;
            if (typeof url !== "string") throw invalid(`${pp}.video_url`, `${pp}.video_url must be {url: string}`);
            const part: { type: "video"; bytes?: Uint8Array } = { type: "video" };
            // Started only once the count is known to be within the limit: videos are large.
            videos.push(() =>
              videoBytes(url, `${pp}.video_url`, limits, remoteVideos, signal).then((b) => void (part.bytes = b))
            );
            return part;
          }
          const type = isObject(p) ? JSON.stringify(p.type) : show(p);
          throw invalid(pp, `${pp}: content part type ${type} is not supported (text, image_url and video_url are)`);
        });
        return { role: "user", content: parts };
      }
    }
  });
  if (images.length > limits.maxImages) {
    throw invalid("messages", `at most ${limits.maxImages} images per request, got ${images.length}`);
  }
  if (videos.length > limits.maxVideos) {
    await Promise.allSettled(images);
    throw invalid("messages", `at most ${limits.maxVideos} videos per request, got ${videos.length}`);
  }
  await Promise.all([...images, ...videos.map((v) => v())]);
  return { messages, images: images.length, videos: videos.length };
}

/**
 * OpenAI's reasoning_effort → the thinking switch: "none" (and "minimal") off, any other level on. Gemma 4
 * thinks or not; it has no levels. vLLM's `chat_template_kwargs: {enable_thinking}` is taken as well.
 */
function thinkingOf(body: Json): boolean | undefined {
  const effort = body.reasoning_effort;
  const kwargs = body.chat_template_kwargs;
  if (isObject(kwargs) && kwargs.enable_thinking !== undefined) {
    if (typeof kwargs.enable_thinking !== "boolean") {
      throw invalid("chat_template_kwargs.enable_thinking", "chat_template_kwargs.enable_thinking must be a boolean");
    }
    return kwargs.enable_thinking;
  }
  if (effort === undefined || effort === null) return undefined;
  if (typeof effort !== "string" || !["none", "minimal", "low", "medium", "high"].includes(effort)) {
    throw invalid(
      "reasoning_effort",
      `reasoning_effort must be none, minimal, low, medium or high; got ${JSON.stringify(effort)}`,
    );
  }
  return effort !== "none" && effort !== "minimal";
}

function toolsOf(body: Json): { tools?: ToolSpec[]; toolChoice?: { name?: string } } {
  const tools = body.tools;
  const choice = body.tool_choice;
  if (tools === undefined || tools === null) {
    if (choice === "required" || isObject(choice)) throw invalid("tool_choice", "tool_choice needs tools");
    return {};
  }
  if (!Array.isArray(tools)) throw invalid("tools", "tools must be an array");
  tools.forEach((t, i) => {
    if (!isObject(t) || t.type !== "function" || !isObject(t.function) || typeof t.function.name !== "string") {
      throw invalid(`tools[${i}]`, `tools[${i}] must be {type: "function", function: {name, description, parameters}}`);
    }
  });
  const specs = tools.length ? tools as ToolSpec[] : undefined;
  if (choice === "none") return {};
  if (choice === undefined || choice === null || choice === "auto") return { tools: specs };
  if (!specs) throw invalid("tool_choice", "tool_choice needs at least one tool");
  if (choice === "required") return { tools: specs, toolChoice: {} };
  if (isObject(choice) && choice.type === "function" && isObject(choice.function)) {
    const name = choice.function.name;
    if (!specs.some((t) => t.function.name === name)) {
      throw invalid("tool_choice", `tool_choice names ${JSON.stringify(name)}, which is not among the tools`);
    }
    return { tools: specs, toolChoice: { name: name as string } };
  }
  throw invalid(
    "tool_choice",
    `tool_choice must be "auto", "none", "required" or {type: "function", function: {name}}, got ${show(choice)}`,
  );
}

function objectBody(body: unknown): Json {
  if (!isObject(body)) throw new ApiError(400, `the request body must be a JSON object, got ${show(body)}`);
  return body;
}

export async function parseChatRequest(
  raw: unknown,
  limits: Limits,
  remote: RemoteImages,
  signal?: AbortSignal,
  remoteVideos?: RemoteImages,
): Promise<GenerationRequest> {
  const body = objectBody(raw);
  rejectUnknown(body, CHAT_FIELDS);
  const c = common(body, limits);
  const { tools, toolChoice } = toolsOf(body);
  // Chat: logprobs is a switch, top_logprobs (0-20) the alternatives, which need the switch on.
  const top = optNumber(body, "top_logprobs", 0, 20, true);
  const wantLogprobs = optBoolean(body, "logprobs");
  if (top !== undefined && !wantLogprobs) throw invalid("top_logprobs", "top_logprobs needs logprobs: true");
  const videoSampling = videoSamplingOf(body, limits);
  const { messages, images, videos } = await messagesOf(body, limits, remote, signal, remoteVideos);
  const videoLoading: VideoLoading | undefined = videos
    ? {
      ...(videoSampling && { sampling: videoSampling }),
      maxFrames: limits.maxVideoFrames,
      maxDurationSeconds: limits.maxVideoSeconds,
      maxFileBytes: limits.maxVideoBytes,
      timeoutMs: limits.videoTimeoutMs,
    }
    : undefined;
  return {
    ...c,
    ...(wantLogprobs && { topLogprobs: top ?? 0 }),
    input: { messages },
    tools,
    ...(toolChoice && { toolChoice }),
    thinking: thinkingOf(body),
    images,
    videos,
    videoLoading,
  };
}

export function parseCompletionRequest(raw: unknown, limits: Limits): GenerationRequest {
  const body = objectBody(raw);
  rejectUnknown(body, COMPLETION_FIELDS);
  const c = common(body, limits);
  // Legacy completions: logprobs is the number of alternatives (0-5); absent or null: none.
  const top = optNumber(body, "logprobs", 0, 5, true);
  let prompt = body.prompt;
  if (Array.isArray(prompt) && prompt.length === 1) prompt = prompt[0];
  if (typeof prompt !== "string") {
    throw invalid("prompt", `prompt must be a string (or an array of one string), got ${show(body.prompt)}`);
  }
  if (!prompt) throw invalid("prompt", "prompt is empty");
  // OpenAI's default for legacy completions.
  return {
    ...c,
    ...(top !== undefined && { topLogprobs: top }),
    maxTokens: c.maxTokens ?? 16,
    input: { prompt },
    images: 0,
  };
}
