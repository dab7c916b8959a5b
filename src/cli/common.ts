/**
 * What the two command-line tools (generate, chat) share: numeric flag parsing, and the mapping of a failure
 * to one line on stderr and an exit code (2 bad arguments, 3 bad model, 1 anything else).
 * @module
 */
import { ConfigError, FormatError, GemmakitError, HubError, LibraryError, WeightsError } from "../errors.ts";

/** A bad command line: exit code 2 with a pointer to --help. */
export class UsageError extends Error {}

/** The flag `key` as a number (an integer with `integer`), undefined when absent; a UsageError otherwise. */
export function number(values: Record<string, unknown>, key: string, integer = false): number | undefined {
  const v = values[key];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v === "" || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${key} must be ${integer ? "an integer" : "a number"}, got "${v}"`);
  }
  return n;
}

/** The help lines of --mmproj and --no-mmproj, as generate and chat print them. */
export const MMPROJ_USAGE =
  `  --mmproj FILE           llama.cpp's vision projector (mmproj-*.gguf) for a GGUF model: images for
                          Gemma 3 (default: the one mmproj*.gguf beside the model, if exactly one)
  --no-mmproj             do not look for a vision projector beside the model (text only)`;

/** loadModel's \`mmproj\` from --mmproj FILE / --no-mmproj (a UsageError when both are given). */
export function mmprojOption(values: { mmproj?: string; "no-mmproj"?: boolean }): string | false | undefined {
  if (values.mmproj !== undefined && values["no-mmproj"]) {
    throw new UsageError("--mmproj and --no-mmproj exclude each other");
  }
  if (values.mmproj === "") throw new UsageError("--mmproj needs a file");
  return values["no-mmproj"] ? false : values.mmproj;
}

function isModelError(e: unknown): boolean {
  return e instanceof ConfigError || e instanceof WeightsError || e instanceof FormatError || e instanceof HubError ||
    (e instanceof GemmakitError && (e.op === "model" || e.op.startsWith("tokenizer")));
}

/** Runs a tool's main and exits with its code, or with the failure's one line and code. */
export async function runMain(tool: string, main: () => Promise<number>): Promise<never> {
  try {
    Deno.exit(await main());
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // parseArgs throws TypeErrors with a `code` for unknown or malformed flags.
    if (e instanceof UsageError || (e instanceof TypeError && "code" in e)) {
      console.error(`${tool}: ${message}\n(see --help)`);
      Deno.exit(2);
    }
    if (isModelError(e) || e instanceof Deno.errors.NotFound) {
      console.error(`${tool}: bad model: ${message}`);
      Deno.exit(3);
    }
    console.error(`${tool}: ${e instanceof LibraryError || e instanceof GemmakitError ? message : e}`);
    Deno.exit(1);
  }
}
