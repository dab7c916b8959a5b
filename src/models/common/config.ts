/**
 * What every model family's config parser shares: the error that lists every problem found, and a reader of
 * typed fields that records problems instead of throwing at the first one.
 * @module
 */
import { join } from "node:path";
import { ConfigError } from "../../errors.ts";
import { boundOf } from "../../runtime/bounds.ts";

export type Json = Record<string, unknown>;

/** Reads fields of one JSON object (`prefix` names it in messages, e.g. "text_config."), collecting problems. */
export class ConfigReader {
  problems: string[] = [];
  constructor(readonly obj: Json, readonly prefix: string) {}

  /**
   * An integer in min..max; `fallback` undefined makes the field required. `max` defaults to the field's stated
   * bound (runtime/bounds.ts), so a hostile config cannot size an array or an FFI i32 past it.
   */
  int(key: string, fallback?: number, min = 1, max = boundOf(key)): number {
    const v = this.obj[key] ?? fallback;
    if (v === undefined) {
      this.problems.push(`${this.prefix}${key} is required (an integer in ${min}..${max})`);
      return min;
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.problems.push(`${this.prefix}${key} must be an integer in ${min}..${max}, got ${show(v)}`);
      return min;
    }
    return v;
  }

  num(key: string, fallback?: number): number {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== "number" || !Number.isFinite(v)) {
      this.problems.push(`${this.prefix}${key} must be a number, got ${show(v)}`);
      return 0;
    }
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.obj[key] ?? fallback;
    if (typeof v !== "boolean") {
      this.problems.push(`${this.prefix}${key} must be true or false, got ${show(v)}`);
      return fallback;
    }
    return v;
  }

  optionalPositive(key: string): number | null {
    const v = this.obj[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
      this.problems.push(`${this.prefix}${key} must be a positive number or null, got ${show(v)}`);
      return null;
    }
    return v;
  }
}

/** A value for a message, cut short: a hostile config may hold megabytes in one field. */
function show(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

export type LayerType = "sliding_attention" | "full_attention";

/** layer_types as written, each checked; `count` entries expected. */
export function readLayerTypes(r: ConfigReader, raw: unknown[], count: number): LayerType[] {
  // Only the first entries are named in problems: a hostile list may hold millions.
  const types = raw.map((t, i): LayerType => {
    if (t === "sliding_attention" || t === "full_attention") return t;
    if (r.problems.length < 64) {
      r.problems.push(`${r.prefix}layer_types[${i}] ${show(t)} is not sliding_attention or full_attention`);
    }
    return "full_attention";
  });
  if (types.length !== count) r.problems.push(`${r.prefix}layer_types has ${types.length} entries for ${count} layers`);
  return types;
}

/** The special token ids (text_config first, then the top level, then Gemma's 2 / [1] / 0). */
export function readSpecialTokens(
  text: Json,
  top: Json,
): { bosTokenId: number; eosTokenIds: number[]; padTokenId: number } {
  const eos = text.eos_token_id ?? top.eos_token_id ?? 1;
  return {
    bosTokenId: typeof text.bos_token_id === "number" ? text.bos_token_id : 2,
    eosTokenIds: (Array.isArray(eos) ? eos : [eos]).filter((v): v is number => typeof v === "number"),
    padTokenId: typeof text.pad_token_id === "number" ? text.pad_token_id : 0,
  };
}

/** A checkpoint directory's config.json, parsed; ConfigError when it cannot be read or is not JSON. */
export function readConfig(dir: string): unknown {
  const path = join(dir, "config.json");
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new ConfigError(path, [`cannot read it: ${e instanceof Error ? e.message : e}`]);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ConfigError(path, [`not valid JSON: ${e instanceof Error ? e.message : e}`]);
  }
}

/** An optional JSON file of a checkpoint directory (generation_config.json, preprocessor_config.json, ...). */
export function readOptionalJson(path: string): Json | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return undefined;
  }
}
