/// <reference lib="dom" />
/**
 * The chat page's script (bundled by bundle.ts): keeps the conversation, streams answers from
 * /v1/chat/completions over SSE, attaches images (file picker or drag-and-drop) as data URLs, stops a
 * generation (aborting the request stops it on the server), and shows reasoning folded.
 * Paths are relative so the page works wherever the app is mounted.
 * @module
 */

type Part = { type: "text"; text: string } | { type: "image_url"; image_url: { url: string } };
interface Message {
  role: "user" | "assistant";
  content: string | Part[];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const log = $<HTMLElement>("log");
const form = $<HTMLFormElement>("composer");
const prompt = $<HTMLTextAreaElement>("prompt");
const file = $<HTMLInputElement>("file");
const send = $<HTMLButtonElement>("send");
const stop = $<HTMLButtonElement>("stop");
const status = $<HTMLElement>("status");
const attachments = $<HTMLElement>("attachments");

const history: Message[] = [];
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

function bubble(role: "user" | "assistant"): HTMLElement {
  const div = document.createElement("div");
  div.className = `msg ${role}`;
  log.append(div);
  return div;
}

function attach(files: Iterable<File>): void {
  for (const f of files) {
    if (!f.type.startsWith("image/")) continue;
    const reader = new FileReader();
    reader.onload = () => {
      const url = String(reader.result);
      pending.push(url);
      const img = document.createElement("img");
      img.src = url;
      img.alt = f.name;
      attachments.append(img);
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

async function submit(): Promise<void> {
  const text = prompt.value.trim();
  if ((!text && !pending.length) || running) return;
  const content: Message["content"] = pending.length
    ? [{ type: "text", text }, ...pending.map((url): Part => ({ type: "image_url", image_url: { url } }))]
    : text;
  const user = bubble("user");
  user.textContent = text;
  for (const url of pending) {
    const img = document.createElement("img");
    img.src = url;
    user.append(img);
  }
  history.push({ role: "user", content });
  prompt.value = "";
  pending = [];
  attachments.replaceChildren();

  const out = bubble("assistant");
  const thinking = document.createElement("details");
  thinking.hidden = true;
  thinking.innerHTML = "<summary>Reasoning</summary>";
  const reasoning = document.createElement("div");
  thinking.append(reasoning);
  const answer = document.createElement("div");
  answer.className = "content";
  out.append(thinking, answer);

  const controller = new AbortController();
  setRunning(controller);
  try {
    const response = await api("v1/chat/completions", {
      method: "POST",
      body: JSON.stringify({ model, messages: history, stream: true }),
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
      const delta = chunk.choices?.[0]?.delta ?? {};
      if (delta.reasoning_content) {
        thinking.hidden = false;
        reasoning.textContent += delta.reasoning_content;
      }
      if (delta.content) answer.textContent += delta.content;
      for (const call of delta.tool_calls ?? []) {
        answer.textContent += `\n[tool call ${call.function?.name}(${call.function?.arguments ?? ""})]`;
      }
      log.scrollTop = log.scrollHeight;
    }
  } catch (e) {
    const note = document.createElement("div");
    if (controller.signal.aborted) {
      note.className = "note";
      note.textContent = "(stopped)";
    } else {
      note.className = "error";
      note.textContent = `error: ${e instanceof Error ? e.message : e}`;
    }
    out.append(note);
  } finally {
    history.push({ role: "assistant", content: answer.textContent ?? "" });
    out.dataset.done = "true";
    setRunning(undefined);
  }
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
connect();
