/// <reference lib="dom" />
/**
 * The chat page's script (bundled by bundle.ts): keeps the conversation, streams answers from
 * /v1/chat/completions over SSE, renders them as markdown (marked, then DOMPurify: the model's text is never
 * trusted as HTML), attaches images (file picker or drag-and-drop) as data URLs, stops a generation (aborting
 * the request stops it on the server), shows reasoning folded and tokens and tok/s under each answer. Settings
 * (system prompt, temperature, max tokens, thinking, JSON mode) are kept in localStorage. A turn that fails
 * leaves the conversation as it was before it (so it is never re-sent) and offers a retry.
 * Paths are relative so the page works wherever the app is mounted.
 * @module
 */
import { marked } from "marked";
import DOMPurify from "dompurify";

type Part =
  | { type: "text"; text: string }
  | { type: "image_url"; image_url: { url: string } }
  | { type: "video_url"; video_url: { url: string } };
interface Message {
  role: "system" | "user" | "assistant";
  content: string | Part[];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const log = $<HTMLElement>("log");
const form = $<HTMLFormElement>("composer");
const prompt = $<HTMLTextAreaElement>("prompt");
const file = $<HTMLInputElement>("file");
const send = $<HTMLButtonElement>("send");
const stop = $<HTMLButtonElement>("stop");
const newChat = $<HTMLButtonElement>("new-chat");
const status = $<HTMLElement>("status");
const attachments = $<HTMLElement>("attachments");
const settings = {
  system: $<HTMLTextAreaElement>("system"),
  temperature: $<HTMLInputElement>("temperature"),
  maxTokens: $<HTMLInputElement>("max-tokens"),
  thinking: $<HTMLSelectElement>("thinking"),
  json: $<HTMLInputElement>("json-mode"),
};

/** The turns the server sees: only those that succeeded (or were stopped by the user). */
let history: Message[] = [];
let pending: string[] = [];
let model = "";
let running: AbortController | undefined;

function headers(): Record<string, string> {
  const key = localStorage.getItem("gemmakit-api-key");
  return { "content-type": "application/json", ...(key ? { authorization: `Bearer ${key}` } : {}) };
}

/** fetch that asks for the API key once when the server wants one. */
async function api(path: string, init: RequestInit = {}): Promise<Response> {
  let response = await fetch(path, { ...init, headers: headers() });
  if (response.status === 401) {
    const key = globalThis.prompt("This server needs an API key:");
    if (key) {
      localStorage.setItem("gemmakit-api-key", key);
      response = await fetch(path, { ...init, headers: headers() });
    }
  }
  return response;
}

async function connect(): Promise<void> {
  try {
    const response = await api("v1/models");
    const body = await response.json();
    if (!response.ok) throw new Error(body?.error?.message ?? response.statusText);
    model = body.data[0]?.id ?? "";
    status.textContent = model ? `model: ${model}` : "no model loaded";
  } catch (e) {
    status.textContent = `cannot reach the server: ${e instanceof Error ? e.message : e}`;
  }
}

// Settings survive a reload; each field is stored under its element id.
const SETTINGS_KEY = "gemmakit-settings";
function loadSettings(): void {
  const saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "{}") as Record<string, string | boolean>;
  for (const el of Object.values(settings)) {
    const v = saved[el.id];
    if (v === undefined) continue;
    if (el instanceof HTMLInputElement && el.type === "checkbox") el.checked = v === true;
    else el.value = String(v);
  }
}
function saveSettings(): void {
  const out: Record<string, string | boolean> = {};
  for (const el of Object.values(settings)) {
    out[el.id] = el instanceof HTMLInputElement && el.type === "checkbox" ? el.checked : el.value;
  }
  localStorage.setItem(SETTINGS_KEY, JSON.stringify(out));
}

/** The request fields the settings add (an empty field leaves the server's default). */
function requestSettings(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const temperature = settings.temperature.value.trim();
  if (temperature !== "") out.temperature = Number(temperature);
  const maxTokens = settings.maxTokens.value.trim();
  if (maxTokens !== "") out.max_tokens = Number(maxTokens);
  // Gemma 4's thinking switch travels as reasoning_effort ("none" turns it off).
  if (settings.thinking.value === "on") out.reasoning_effort = "medium";
  if (settings.thinking.value === "off") out.reasoning_effort = "none";
  if (settings.json.checked) out.response_format = { type: "json_object" };
  return out;
}

function bubble(role: "user" | "assistant"): HTMLElement {
  const div = document.createElement("div");
  div.className = `msg ${role}`;
  log.append(div);
  return div;
}

/** Markdown to sanitized HTML; the raw text stays on the element (data-raw) for copying and tests. */
function render(el: HTMLElement, text: string): void {
  el.dataset.raw = text;
  el.innerHTML = DOMPurify.sanitize(marked.parse(text, { async: false, gfm: true, breaks: true }));
}

/** A preview of an attached image or video (data URL), for the composer and the conversation. */
function preview(url: string, name = ""): HTMLElement {
  if (url.startsWith("data:video/")) {
    const video = document.createElement("video");
    video.src = url;
    video.muted = true;
    video.controls = true;
    video.title = name;
    return video;
  }
  const img = document.createElement("img");
  img.src = url;
  img.alt = name;
  return img;
}

/** A message part for an attachment: videos go as video_url (Gemma 4 checkpoints with vision), images as image_url. */
function mediaPart(url: string): Part {
  return url.startsWith("data:video/")
    ? { type: "video_url", video_url: { url } }
    : { type: "image_url", image_url: { url } };
}

function attach(files: Iterable<File>): void {
  for (const f of files) {
    if (!f.type.startsWith("image/") && !f.type.startsWith("video/")) continue;
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      pending.push(url);
      attachments.append(preview(url, f.name));
    };
    reader.readAsDataURL(f);
  }
}

/** Reads `data: ...` events from an SSE body. */
async function* events(body: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  while (true) {
    const { done, value } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) if (line.startsWith("data: ")) yield line.slice(6);
    }
  }
}

function setRunning(controller: AbortController | undefined): void {
  running = controller;
  send.disabled = controller !== undefined;
  stop.disabled = controller === undefined;
}

/** Shows a user turn (text and images) in the log. */
function showUser(text: string, images: readonly string[]): HTMLElement {
  const user = bubble("user");
  user.textContent = text;
  for (const url of images) user.append(preview(url));
  return user;
}

async function submit(): Promise<void> {
  const text = prompt.value.trim();
  if ((!text && !pending.length) || running) return;
  const images = pending;
  prompt.value = "";
  pending = [];
  attachments.replaceChildren();
  await turn(text, images);
}

/** One exchange: the user's message, the streamed answer; on failure, the turn is taken back and can be retried. */
async function turn(text: string, images: readonly string[]): Promise<void> {
  const content: Message["content"] = images.length ? [{ type: "text", text }, ...images.map(mediaPart)] : text;
  const user = showUser(text, images);
  const out = bubble("assistant");
  const thinking = document.createElement("details");
  thinking.hidden = true;
  thinking.innerHTML = "<summary>Reasoning</summary>";
  const reasoning = document.createElement("div");
  thinking.append(reasoning);
  const answer = document.createElement("div");
  answer.className = "content";
  const stats = document.createElement("div");
  stats.className = "stats";
  out.append(thinking, answer, stats);

  const system = settings.system.value.trim();
  const messages: Message[] = [
    ...(system ? [{ role: "system" as const, content: system }] : []),
    ...history,
    { role: "user", content },
  ];
  const controller = new AbortController();
  setRunning(controller);
  let raw = "";
  let frame = 0;
  const draw = () => {
    frame = 0;
    render(answer, raw);
    log.scrollTop = log.scrollHeight;
  };
  const started = performance.now();
  let firstToken: number | undefined;
  let usage: { prompt_tokens: number; completion_tokens: number } | undefined;
  let failed = false;
  try {
    const response = await api("v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({
        model,
        messages,
        stream: true,
        stream_options: { include_usage: true },
        ...requestSettings(),
      }),
      signal: controller.signal,
    });
    if (!response.ok || !response.body) {
      const body = await response.json().catch(() => ({}));
      throw new Error(body?.error?.message ?? `HTTP ${response.status}`);
    }
    for await (const data of events(response.body)) {
      if (data === "[DONE]") break;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      const delta = chunk.choices?.[0]?.delta ?? {};
      if (delta.reasoning_content) {
        thinking.hidden = false;
        reasoning.textContent += delta.reasoning_content;
      }
      if (delta.content) {
        firstToken ??= performance.now();
        raw += delta.content;
      }
      for (const call of delta.tool_calls ?? []) {
        raw += `\n\n\`tool call: ${call.function?.name}(${call.function?.arguments ?? ""})\``;
      }
      // Re-render at most once a frame: parsing the whole answer per token would be quadratic work per frame.
      frame ||= requestAnimationFrame(draw);
    }
    if (usage) {
      const seconds = (performance.now() - (firstToken ?? started)) / 1000;
      const tps = seconds > 0 && usage.completion_tokens > 1 ? usage.completion_tokens / seconds : undefined;
      stats.textContent = `${usage.completion_tokens} tokens` +
        (tps !== undefined ? ` · ${tps.toFixed(1)} tok/s` : "") + ` · prompt ${usage.prompt_tokens}`;
    }
  } catch (e) {
    const note = document.createElement("div");
    if (controller.signal.aborted) {
      note.className = "note";
      note.textContent = "(stopped)";
    } else {
      failed = true;
      note.className = "error";
      note.textContent = `error: ${e instanceof Error ? e.message : e} `;
      const retry = document.createElement("button");
      retry.type = "button";
      retry.className = "retry";
      retry.textContent = "Retry";
      retry.addEventListener("click", () => {
        if (running) return;
        user.remove();
        out.remove();
        turn(text, images);
      });
      note.append(retry);
    }
    out.append(note);
  } finally {
    if (frame) cancelAnimationFrame(frame);
    render(answer, raw);
    // A failed turn stays on screen (with its retry) but not in the history the next request sends.
    if (!failed) history.push({ role: "user", content }, { role: "assistant", content: raw });
    else out.dataset.failed = "true";
    out.dataset.done = "true";
    setRunning(undefined);
  }
}

function startNewChat(): void {
  running?.abort();
  history = [];
  pending = [];
  attachments.replaceChildren();
  log.replaceChildren();
  prompt.focus();
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  submit();
});
prompt.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) {
    e.preventDefault();
    submit();
  }
});
stop.addEventListener("click", () => running?.abort());
newChat.addEventListener("click", startNewChat);
for (const el of Object.values(settings)) {
  el.addEventListener("input", saveSettings);
  el.addEventListener("change", saveSettings);
}
file.addEventListener("change", () => {
  attach(file.files ?? []);
  file.value = "";
});
for (const target of [form, log]) {
  target.addEventListener("dragover", (e) => {
    e.preventDefault();
    form.classList.add("dragging");
  });
  target.addEventListener("dragleave", () => form.classList.remove("dragging"));
  target.addEventListener("drop", (e) => {
    e.preventDefault();
    form.classList.remove("dragging");
    attach(e.dataTransfer?.files ?? []);
  });
}
loadSettings();
connect();
