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
  const result = new Interpreter(env).run(template.parsed);
  return String(result.value);
}
