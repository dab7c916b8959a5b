/**
 * The real Gemma 3 270M fidelity fixture (tests/fixtures/gemma3-270m-gguf, written by transformers): its record
 * types and readers, shared by the fidelity test (pass/fail bounds) and `deno task bench --fidelity` (the table).
 * @module
 */
import { gunzipSync } from "fflate";

export const FIXTURE = new URL("../fixtures/gemma3-270m-gguf/", import.meta.url);
/** The vocabulary: one logits row. */
export const V = 262144;

/** Transformers' per-position records: argmax, top-20 ids and logits, logsumexp. */
export interface Positions {
  argmax: number[];
  top_ids: number[][];
  top_logits: number[][];
  logsumexp: number[];
}
export interface Prompt {
  name: string;
  text: string;
  messages?: { role: string; content: string }[];
  input_ids: number[];
  positions: Positions;
  /** The full last-position logits, f32 gzipped, for some prompts. */
  last_logits_file?: string;
  /** Greedy decode steps with transformers' own tokens fed back. */
  greedy?: { ids: number[]; text: string; steps: Positions };
}
export interface FidelityExpected {
  gguf: { sha256: string };
  prompts: Prompt[];
}

export function readFidelityExpected(): FidelityExpected {
  return JSON.parse(Deno.readTextFileSync(new URL("expected.json", FIXTURE)));
}

/** A prompt's full last-position logits (f32 [V]). */
export function readLastLogits(file: string): Float32Array {
  const bytes = gunzipSync(Deno.readFileSync(new URL(file, FIXTURE)));
  return new Float32Array(bytes.buffer, bytes.byteOffset, V);
}
