/**
 * The Jinja globals chat templates expect, and a render call that lets us supply our own `raise_exception`.
 *
 * `@huggingface/jinja`'s `Template.render()` declares its globals first and refuses to redeclare any of them,
 * so its built-in `raise_exception` (a plain Error) cannot be replaced through it. We run the parsed template
 * with the library's exported Interpreter instead, in an environment holding the same globals as
 * `setupGlobals` in @huggingface/jinja 0.5 (src/runtime.ts), which mirror transformers'
 * (utils/chat_template_utils.py: `raise_exception`, `strftime_now`, plus Jinja's `range`).
 * @module
 */
import { Environment, Interpreter, type Template } from "@huggingface/jinja";

/** Python's `range(stop)` / `range(start, stop[, step])`. */
function range(start: number, stop?: number, step = 1): number[] {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new Error("range() step must not be zero");
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** `datetime.now().strftime(format)` for the directives chat templates use (date lines in system prompts). */
function strftimeNow(format: string): string {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  const directives: Record<string, () => string> = {
    "%Y": () => String(now.getFullYear()),
    "%m": () => pad(now.getMonth() + 1),
    "%d": () => pad(now.getDate()),
    "%b": () => new Intl.DateTimeFormat("en-US", { month: "short" }).format(now),
    "%B": () => new Intl.DateTimeFormat("en-US", { month: "long" }).format(now),
    "%H": () => pad(now.getHours()),
    "%M": () => pad(now.getMinutes()),
    "%S": () => pad(now.getSeconds()),
    "%%": () => "%",
  };
  return format.replace(/%[YmdbBHMS%]/g, (d) => directives[d]());
}

const GLOBALS = {
  true: true,
  false: false,
  none: null,
  True: true,
  False: false,
  None: null,
  range,
  strftime_now: strftimeNow,
};

/**
 * Renders a parsed template with the standard globals and `variables`, which may replace any global
 * (`raise_exception` in particular).
 *
 * @example
 * ```ts
 * renderTemplate(new Template("{{ raise_exception('no') }}"), {
 *   raise_exception: (m: string) => { throw new Error(`template says: ${m}`); },
 * });
 * ```
 */
export function renderTemplate(template: Template, variables: Record<string, unknown>): string {
  const env = new Environment();
  for (const [name, value] of Object.entries({ ...GLOBALS, ...variables })) env.set(name, value);
  const result = new PythonInterpreter(env).run(template.parsed);
  return String(result.value);
}

/** A runtime value of @huggingface/jinja, as far as this file reads it. */
interface RuntimeValue {
  type: string;
  value: unknown;
}

/** The library's StringValue class (not exported), taken from a value the Environment converted. */
const StringValue = (() => {
  const env = new Environment();
  env.set("s", "");
  return (env.lookupVariable("s") as unknown as { constructor: new (v: string) => RuntimeValue }).constructor;
})();

/** Python's repr of a str: single quotes unless the text has one and no double quote; escapes as Python's. */
function pyStr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === "\\" || ch === quote) out += "\\" + ch;
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + quote;
}

/** Python's `str()` of a runtime value inside a container (its repr), as Jinja2 prints lists and dicts. */
function pyRepr(v: RuntimeValue): string {
  switch (v.type) {
    case "StringValue":
      return pyStr(v.value as string);
    case "IntegerValue":
    case "FloatValue":
      return String(v);
    case "BooleanValue":
      return v.value ? "True" : "False";
    case "NullValue":
    case "UndefinedValue":
      return "None";
    case "TupleValue": {
      const items = (v.value as RuntimeValue[]).map(pyRepr);
      return `(${items.join(", ")}${items.length === 1 ? "," : ""})`;
    }
    case "ArrayValue":
      return `[${(v.value as RuntimeValue[]).map(pyRepr).join(", ")}]`;
    case "ObjectValue":
    case "KeywordArgumentsValue":
      return `{${[...(v.value as Map<string, RuntimeValue>)].map(([k, x]) => `${pyStr(k)}: ${pyRepr(x)}`).join(", ")}}`;
    default:
      return String(v);
  }
}

/**
 * The library's interpreter, with Jinja2's `trim` on lists and dicts: Jinja2 trims `str(value)`, the Python
 * repr. Gemma 4's template writes `messages[0]['content'] | trim`, so a system message whose content is a list of
 * parts renders as transformers renders it (its repr) instead of failing with "Unknown ArrayValue filter".
 */
class PythonInterpreter extends Interpreter {
  constructor(env: Environment) {
    super(env);
    // applyFilter is private in the library's typings; it is the one place filters are dispatched.
    const self = this as unknown as { applyFilter: (o: RuntimeValue, f: RuntimeValue, e: Environment) => unknown };
    const base = self.applyFilter.bind(this);
    self.applyFilter = (operand, filter, environment) => {
      if (
        filter.type === "Identifier" && filter.value === "trim" &&
        (operand.type === "ArrayValue" || operand.type === "ObjectValue" || operand.type === "TupleValue")
      ) {
        return new StringValue(pyRepr(operand).trim());
      }
      return base(operand, filter, environment);
    };
  }
}
