/**
 * Reading a llama.cpp GGUF's metadata into a family's config: every problem collected (missing keys, wrong
 * types) instead of stopping at the first, and f32 values given back as the decimal the converter wrote.
 * @module
 */
import type { GgufFile, GgufValue } from "../../formats/gguf.ts";

const describe = (v: GgufValue) =>
  v.type === "array"
    ? `an array of ${v.itemType}`
    : `${v.type} ${v.type === "string" ? JSON.stringify(v.value) : String(v.value)}`;

/**
 * The shortest decimal that is the same f32 as `x`: the converter stored a decimal (e.g. rms_norm_eps 1e-6)
 * as f32, and this gives the decimal back (f32(1e-6) is 9.99999997e-7), the same number to an f32 kernel.
 */
export function shortestF32(x: number): number {
  if (!Number.isFinite(x)) return x;
  for (let digits = 1; digits < 17; digits++) {
    const d = Number(x.toPrecision(digits));
    if (Math.fround(d) === x) return d;
  }
  return x;
}

/** Collects every problem of the metadata the config needs, instead of stopping at the first. */
export class GgufMetaReader {
  readonly problems: string[] = [];
  constructor(readonly gguf: GgufFile, readonly model: string) {}

  #get(key: string, required: boolean): GgufValue | undefined {
    const v = this.gguf.metadata.get(key);
    if (v === undefined && required) this.problems.push(`${key} is missing`);
    return v;
  }

  /** A number (any numeric type; 64-bit within 2^53), or undefined after recording why not. */
  num(key: string, required = true): number | undefined {
    const v = this.#get(key, required);
    if (v === undefined) return undefined;
    const x = v.type === "array" ? undefined : v.value;
    if (v.type === "f32") return shortestF32(x as number);
    if (typeof x === "number") return x;
    if (typeof x === "bigint" && Number.isSafeInteger(Number(x))) return Number(x);
    this.problems.push(`${key} is ${describe(v)}, not a number`);
    return undefined;
  }

  /**
   * A per-model count that llama.cpp also accepts as a per-layer array (`get_key_or_arr`), where the model
   * needs it uniform: an array must hold one value throughout.
   */
  uniform(key: string, required = true): number | undefined {
    const v = this.gguf.metadata.get(key);
    if (v?.type !== "array") return this.num(key, required);
    const items = Array.from(v.items as ArrayLike<unknown>, (x) => typeof x === "bigint" ? Number(x) : x);
    if (items.length > 0 && items.every((x) => typeof x === "number" && x === items[0])) return items[0] as number;
    this.problems.push(`${key} varies per layer (${items.slice(0, 8).join(", ")}…); ${this.model} needs one value`);
    return undefined;
  }

  /**
   * A per-layer value of `layers` layers: one number for all (expanded), or an array of exactly `layers` numbers
   * (llama.cpp's `get_key_or_arr`).
   */
  perLayer(key: string, layers: number, required = true): number[] | undefined {
    const v = this.gguf.metadata.get(key);
    if (v?.type !== "array") {
      const x = this.num(key, required);
      return x === undefined ? undefined : Array.from({ length: layers }, () => x);
    }
    const items = Array.from(v.items as ArrayLike<unknown>, (x) => typeof x === "bigint" ? Number(x) : x);
    if (items.length !== layers || !items.every((x) => typeof x === "number")) {
      this.problems.push(`${key} is an array of ${items.length} ${v.itemType}, not ${layers} numbers (one per layer)`);
      return undefined;
    }
    return items as number[];
  }

  /** An array of booleans (e.g. a per-layer flag). */
  bools(key: string, required = true): boolean[] | undefined {
    const v = this.#get(key, required);
    if (v === undefined) return undefined;
    if (v.type === "array" && v.itemType === "bool") return Array.from(v.items as ArrayLike<unknown>, (x) => !!x);
    this.problems.push(`${key} is ${describe(v)}, not an array of bool`);
    return undefined;
  }

  str(key: string, required = true): string | undefined {
    const v = this.#get(key, required);
    if (v === undefined) return undefined;
    if (v.type === "string") return v.value;
    this.problems.push(`${key} is ${describe(v)}, not a string`);
    return undefined;
  }
}

/**
 * The per-layer GGUF tensor names every Gemma family llama.cpp writes shares: GGUF name → HF name suffix under
 * `model.layers.{i}.`. A family spreads these into its own table and adds its own tensors.
 */
export const GEMMA_LAYER_TENSORS: Readonly<Record<string, string>> = {
  "attn_norm.weight": "input_layernorm.weight",
  "attn_q.weight": "self_attn.q_proj.weight",
  "attn_k.weight": "self_attn.k_proj.weight",
  "attn_v.weight": "self_attn.v_proj.weight",
  "attn_output.weight": "self_attn.o_proj.weight",
  "attn_q_norm.weight": "self_attn.q_norm.weight",
  "attn_k_norm.weight": "self_attn.k_norm.weight",
  "post_attention_norm.weight": "post_attention_layernorm.weight",
  "ffn_norm.weight": "pre_feedforward_layernorm.weight",
  "post_ffw_norm.weight": "post_feedforward_layernorm.weight",
  "ffn_gate.weight": "mlp.gate_proj.weight",
  "ffn_up.weight": "mlp.up_proj.weight",
  "ffn_down.weight": "mlp.down_proj.weight",
};
