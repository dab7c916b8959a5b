/**
 * Gemma 4's tool-call syntax as an xgrammar EBNF: what an answer is constrained to when the caller requires a
 * tool call (OpenAI's tool_choice "required" or a named function). It admits exactly one
 * `<|tool_call>call:NAME{key:value,...}<tool_call|>` (the syntax tool_calls.ts reads) for the given tool names,
 * with the arguments after each tool's parameter schema as far as the syntax goes: declared properties in
 * order (the required ones always, the others optional), types, enum/const, anyOf, nested objects and arrays,
 * string length and array size bounds. Numbers are written plainly (no exponent). A schema part it does not
 * model (pattern, format, numeric bounds) admits any value of its type; the caller validates those.
 * @module
 */
import { GemmakitError } from "../../errors.ts";
import { type ResponseFormat, specialTokenChar } from "../../generate/constraint.ts";
import type { ToolSpec } from "../../generate/tools.ts";

/** The markers the grammar writes, in the order specialTokenChar numbers them. */
const SPECIALS = ["<|tool_call>", "<tool_call|>", '<|"|>'] as const;
const OPEN = `"${specialTokenChar(0)}"`;
const CLOSE = `"${specialTokenChar(1)}"`;
const QUOTE = `"${specialTokenChar(2)}"`;
/** Text inside a string: anything but the string delimiter (nothing else needs escaping in this syntax). */
const STRING_CHAR = `[^${specialTokenChar(2)}]`;
/** Digits are bounded so that a number cannot grow until max_tokens. */
const MAX_DIGITS = 15;
const BARE_KEY = /^[A-Za-z_][\w\-]*$/;

type Schema = Record<string, unknown>;

/** An EBNF string literal. */
function lit(text: string): string {
  return `"${text.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n").replace(/\r/g, "\\r")}"`;
}

/** A JSON value written the way Gemma 4 writes arguments (for const and enum). */
function literal(v: unknown): string {
  if (typeof v === "string") return `${QUOTE} ${lit(v)} ${QUOTE}`;
  if (typeof v === "number" || typeof v === "boolean" || v === null) return lit(String(v));
  if (Array.isArray(v)) return v.length ? `"[" ${v.map(literal).join(' "," ')} "]"` : `"[]"`;
  if (typeof v === "object") {
    const entries = Object.entries(v as Schema);
    if (!entries.length) return `"{}"`;
    return `"{" ${entries.map(([k, x]) => `${key(k)} ":" ${literal(x)}`).join(' "," ')} "}"`;
  }
  throw new GemmakitError("generate", `a tool schema's enum/const value ${String(v)} is not JSON`);
}

function key(name: string): string {
  return BARE_KEY.test(name) ? lit(name) : `${QUOTE} ${lit(name)} ${QUOTE}`;
}

function bound(min: unknown, max: unknown): string {
  const lo = Number.isInteger(min) ? min as number : 0;
  if (Number.isInteger(max)) return `{${lo},${max}}`;
  return lo > 0 ? `{${lo},}` : "*";
}

class Grammar {
  readonly #rules = new Map<string, string>();
  #count = 0;

  rule(body: string, name = `r${++this.#count}`): string {
    this.#rules.set(name, body);
    return name;
  }

  /** The rules that write any value (a schema part that says nothing). */
  any(): string {
    if (!this.#rules.has("any")) {
      this.rule(`${QUOTE} ${STRING_CHAR}* ${QUOTE}`, "str");
      this.rule(`"-"? [0-9]{1,${MAX_DIGITS}} ("." [0-9]{1,${MAX_DIGITS}})?`, "num");
      this.rule(`[A-Za-z_] [A-Za-z0-9_-]* | str`, "anykey");
      this.rule(`"{" (anykey ":" any ("," anykey ":" any)*)? "}"`, "anyobj");
      this.rule(`"[" (any ("," any)*)? "]"`, "anyarr");
      this.rule(`str | num | "true" | "false" | "null" | anyobj | anyarr`, "any");
    }
    return "any";
  }

  value(schema: unknown): string {
    if (typeof schema !== "object" || schema === null || Array.isArray(schema)) return this.any();
    const s = schema as Schema;
    if ("const" in s) return this.rule(literal(s.const));
    if (Array.isArray(s.enum)) return this.rule(s.enum.map(literal).join(" | "));
    const union = (s.anyOf ?? s.oneOf) as unknown[] | undefined;
    if (Array.isArray(union) && union.length) return this.rule(union.map((u) => this.value(u)).join(" | "));
    if (Array.isArray(s.type)) return this.rule(s.type.map((type) => this.value({ ...s, type })).join(" | "));
    switch (s.type) {
      case "string":
        return this.rule(`${QUOTE} ${STRING_CHAR}${bound(s.minLength, s.maxLength)} ${QUOTE}`);
      case "integer":
        return this.rule(`"-"? ("0" | [1-9] [0-9]{0,${MAX_DIGITS - 1}})`);
      case "number":
        return this.rule(`"-"? ("0" | [1-9] [0-9]{0,${MAX_DIGITS - 1}}) ("." [0-9]{1,${MAX_DIGITS}})?`);
      case "boolean":
        return this.rule(`"true" | "false"`);
      case "null":
        return this.rule(`"null"`);
      case "array": {
        const item = this.value(s.items);
        const min = Number.isInteger(s.minItems) ? s.minItems as number : 0;
        const max = Number.isInteger(s.maxItems) ? s.maxItems as number : undefined;
        if (max === 0) return this.rule(`"[" "]"`);
        const rest = bound(Math.max(min - 1, 0), max === undefined ? undefined : max - 1);
        const items = `${item} ("," ${item})${rest}`;
        return this.rule(min > 0 ? `"[" ${items} "]"` : `"[" (${items})? "]"`);
      }
      case "object":
        return this.object(s);
      default:
        return this.any();
    }
  }

  /** Declared properties in order: the required ones first and always, then each optional one or not. */
  object(s: Schema): string {
    const props = (typeof s.properties === "object" && s.properties !== null ? s.properties : {}) as Schema;
    const names = Object.keys(props);
    if (!names.length) {
      if (s.properties !== undefined) return this.rule(`"{" "}"`);
      this.any(); // no properties declared: any object
      return "anyobj";
    }
    const required = new Set(Array.isArray(s.required) ? s.required as string[] : []);
    const entry = (name: string) => `${key(name)} ":" ${this.value(props[name])}`;
    const must = names.filter((n) => required.has(n)).map(entry);
    const may = names.filter((n) => !required.has(n)).map(entry);
    let body: string;
    if (must.length) {
      body = [must.join(' "," '), ...may.map((e) => `("," ${e})?`)].join(" ");
    } else {
      // No required property: the first one present has no comma before it.
      const starts = may.map((e, i) => [e, ...may.slice(i + 1).map((x) => `("," ${x})?`)].join(" "));
      body = `(${starts.map((x) => `(${x})`).join(" | ")})?`;
    }
    return this.rule(`"{" ${body} "}"`);
  }

  text(root: string): string {
    return [`root ::= ${root}`, ...[...this.#rules].map(([n, b]) => `${n} ::= ${b}`)].join("\n");
  }
}

/**
 * The grammar of one Gemma 4 tool call to `name` (or to any of `tools`), arguments after each tool's
 * `parameters` schema.
 */
export function gemma4ToolCallFormat(tools: readonly ToolSpec[], name?: string): ResponseFormat {
  const chosen = name === undefined ? tools : tools.filter((t) => t.function.name === name);
  if (!chosen.length) {
    throw new GemmakitError("generate", `no tool named ${JSON.stringify(name)} among the tools`, {
      hint: `the tools are ${tools.map((t) => t.function.name).join(", ") || "none"}`,
    });
  }
  const g = new Grammar();
  const calls = chosen.map((t) => `${lit(`call:${t.function.name}`)} ${g.object(t.function.parameters ?? {})}`);
  return { type: "grammar", grammar: g.text(`${OPEN} (${calls.join(" | ")}) ${CLOSE}`), specialTokens: SPECIALS };
}
