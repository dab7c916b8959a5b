/**
 * Renders a checkpoint's own chat template (Jinja) into the prompt text the model was trained on.
 *
 * The template text is the only authority on the turn format (Gemma 4's exists only in the checkpoint's
 * chat_template.jinja), so we run it rather than re-implement it. `@huggingface/jinja` is the renderer
 * transformers.js uses; it parses with transformers' `trim_blocks` and `lstrip_blocks` settings.
 * @module
 */
import { Template } from "@huggingface/jinja";
import { GemmakitError } from "../errors.ts";
import { renderTemplate } from "./jinja_env.ts";

const OP = "chat_template";

/** One part of a multimodal message. Extra keys (url, image, ...) pass through to the template. */
export type ChatContentPart =
  | { type: "text"; text: string; [key: string]: unknown }
  | { type: "image"; [key: string]: unknown }
  | { type: string; [key: string]: unknown };

/** A chat message. Extra keys (tool_calls, name, ...) pass through to the template. */
export interface ChatMessage {
  /** "system", "user", "assistant" (Gemma renders it as "model"), "tool", ... */
  role: string;
  /** May be left out only on a tool turn: a message that carries `tool_calls` or `tool_responses`. */
  content?: string | ChatContentPart[] | null;
  /** tool_calls, name, reasoning, ...: whatever the template reads. */
  [key: string]: unknown;
}

/** How to render a conversation. */
export interface ChatTemplateOptions {
  /** End with the opening of the model's turn (`<start_of_turn>model\n` for Gemma 3). Default false. */
  addGenerationPrompt?: boolean;
  /** Tool (function) schemas, passed to the template as `tools`. */
  tools?: unknown[];
  /** Pick one of several named templates (tokenizer_config.json's list form). Default "default". */
  templateName?: string;
  /** More template variables, e.g. `{ enable_thinking: true }`; they override the special tokens. */
  variables?: Record<string, unknown>;
}

/** A template list entry of tokenizer_config.json: `[{name: "default", template: "..."}, ...]`. */
export interface NamedTemplate {
  /** "default", "tool_use", "rag", ... */
  name: string;
  /** The Jinja source. */
  template: string;
}

/**
 * A parsed chat template, or several named ones, plus the special tokens the template may mention
 * (`bos_token`, `eos_token`, `image_token`, ...).
 *
 * @example
 * ```ts
 * const chat = new ChatTemplate("{{ bos_token }}{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}", {
 *   bos_token: "<bos>",
 * });
 * chat.render([{ role: "user", content: "Hi" }]); // "<bos>user: Hi\n"
 * ```
 */
export class ChatTemplate {
  readonly #templates = new Map<string, Template>();
  readonly #specialTokens: Readonly<Record<string, string>>;

  /** `source`: one template, or tokenizer_config.json's list of named ones. */
  constructor(source: string | readonly NamedTemplate[], specialTokens: Record<string, string> = {}) {
    const list = typeof source === "string" ? [{ name: "default", template: source }] : source;
    if (!Array.isArray(list) || list.length === 0) throw new GemmakitError(OP, "no chat template given");
    for (const entry of list) {
      if (typeof entry?.name !== "string" || typeof entry?.template !== "string") {
        throw new GemmakitError(OP, `a named template must be {name: string, template: string}, got ${show(entry)}`);
      }
      try {
        this.#templates.set(entry.name, new Template(entry.template));
      } catch (cause) {
        throw new GemmakitError(OP, `template "${entry.name}" does not parse: ${messageOf(cause)}`, { cause });
      }
    }
    this.#specialTokens = Object.freeze({ ...specialTokens });
  }

  /** The names of the templates, e.g. ["default", "tool_use"]. */
  get names(): string[] {
    return [...this.#templates.keys()];
  }

  /**
   * The prompt text for `messages`. Throws a GemmakitError (op "chat_template") for malformed messages and
   * for the template's own `raise_exception(...)`, whose message it carries.
   */
  render(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    validateMessages(messages);
    const template = this.#pick(options);
    const variables: Record<string, unknown> = {
      ...this.#specialTokens,
      messages: withPlaceholders(messages),
      add_generation_prompt: options.addGenerationPrompt ?? false,
      ...(options.tools ? { tools: options.tools } : {}),
      ...options.variables,
      raise_exception: (message: unknown) => {
        throw new GemmakitError(OP, String(message), { hint: "the checkpoint's chat template rejected the messages" });
      },
    };
    try {
      return renderTemplate(template, variables);
    } catch (cause) {
      if (cause instanceof GemmakitError) throw cause;
      throw new GemmakitError(OP, `rendering failed: ${messageOf(cause)}`, { cause });
    }
  }

  /** transformers' choice: the asked name, else "tool_use" when tools are given and it exists, else "default". */
  #pick(options: ChatTemplateOptions): Template {
    if (this.#templates.size === 1 && options.templateName === undefined) return [...this.#templates.values()][0];
    const name = options.templateName ?? (options.tools && this.#templates.has("tool_use") ? "tool_use" : "default");
    const template = this.#templates.get(name);
    if (!template) {
      throw new GemmakitError(OP, `no template named "${name}"`, {
        hint: `the checkpoint has: ${this.names.join(", ")}`,
      });
    }
    return template;
  }
}

/**
 * The messages as the template sees them: every part that is not text becomes `{type}` alone, a placeholder.
 * Templates only test a part's type (the processor expands media tokens afterwards), and the media themselves
 * (bytes, base64, data URLs of megabytes) flow beside the template to the family's layout: converting them into
 * Jinja values would cost seconds and gigabytes for one large image.
 */
function withPlaceholders(messages: readonly ChatMessage[]): readonly ChatMessage[] {
  return messages.map((m) =>
    Array.isArray(m.content) && m.content.some((p) => p.type !== "text")
      ? { ...m, content: m.content.map((p) => (p.type === "text" ? p : { type: p.type })) }
      : m
  );
}

/**
 * Checks the shape of every message before the template sees it, so a mistake reads as one clear line rather
 * than a Jinja error about `None`.
 *
 * @example
 * ```ts
 * validateMessages([{ role: "user", content: [{ type: "text", text: "Hi" }] }]); // passes
 * ```
 */
export function validateMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new GemmakitError(OP, `messages must be an array, got ${show(messages)}`);
  messages.forEach((message, i) => {
    const where = `messages[${i}]`;
    if (!message || typeof message !== "object" || Array.isArray(message)) {
      throw new GemmakitError(OP, `${where} must be an object {role, content}, got ${show(message)}`);
    }
    if (typeof message.role !== "string" || message.role === "") {
      throw new GemmakitError(OP, `${where}.role must be a non-empty string, got ${show(message.role)}`);
    }
    const content = message.content;
    if (typeof content === "string") return;
    // Tool turns carry their payload elsewhere: Gemma 4's template reads tool_calls and tool_responses.
    if (content == null && (message.tool_calls !== undefined || message.tool_responses !== undefined)) return;
    if (!Array.isArray(content)) {
      throw new GemmakitError(
        OP,
        `${where}.content must be a string or an array of parts, got ${show(content)}`,
        { hint: 'a part is {type: "text", text: "..."} or {type: "image", ...}' },
      );
    }
    content.forEach((part, j) => {
      if (!part || typeof part !== "object" || typeof part.type !== "string") {
        throw new GemmakitError(OP, `${where}.content[${j}] must be an object with a string "type", got ${show(part)}`);
      }
      if (part.type === "text" && typeof part.text !== "string") {
        throw new GemmakitError(OP, `${where}.content[${j}] is a text part without a string "text"`);
      }
    });
  });
}

function show(value: unknown): string {
  if (value === undefined) return "undefined";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
