/**
 * `--synthetic gemma4-e2b|gemma4-e4b|gemma4-26b-a4b` for the model bench: the released text configurations
 * (convert_gemma4_weights.py / docs gemma-architecture.md §3) with seeded random bf16 weights, and the bytes
 * one decode token reads (the bandwidth bound): every dense weight, the tied head's whole table, one row of the
 * per-layer-input table, top_k of the experts, and the K/V the attention reads.
 * @module
 */
import type { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { parseGemma4Config } from "../../src/models/gemma4/config.ts";
import { Gemma4TextModel } from "../../src/models/gemma4/model.ts";
import { gemma4TextTable } from "../../src/models/gemma4/weights.ts";
import { ModelWeights, tableRows } from "../../src/models/common/weight_table.ts";
import type { WeightSpec } from "../../src/models/common/weights.ts";

const S = "sliding_attention", F = "full_attention";
const pattern = (n: number, period: number) => Array.from({ length: n }, (_, i) => (i + 1) % period ? S : F);
const ROPE = {
  sliding_attention: { rope_type: "default", rope_theta: 10000 },
  full_attention: { rope_type: "proportional", partial_rotary_factor: 0.25, rope_theta: 1000000 },
};
const COMMON = {
  model_type: "gemma4_text",
  vocab_size: 262144,
  head_dim: 256,
  global_head_dim: 512,
  final_logit_softcapping: 30,
  max_position_embeddings: 131072,
  rope_parameters: ROPE,
};

export const GEMMA4_SYNTHETIC: Record<string, Record<string, unknown>> = {
  "gemma4-e2b": {
    ...COMMON,
    hidden_size: 1536,
    intermediate_size: 6144,
    num_hidden_layers: 35,
    layer_types: pattern(35, 5),
    num_attention_heads: 8,
    num_key_value_heads: 1,
    sliding_window: 512,
    num_kv_shared_layers: 20,
    hidden_size_per_layer_input: 256,
    vocab_size_per_layer_input: 262144,
    use_double_wide_mlp: true,
  },
  "gemma4-e4b": {
    ...COMMON,
    hidden_size: 2560,
    intermediate_size: 10240,
    num_hidden_layers: 42,
    layer_types: pattern(42, 6),
    num_attention_heads: 8,
    num_key_value_heads: 2,
    sliding_window: 512,
    num_kv_shared_layers: 18,
    hidden_size_per_layer_input: 256,
    vocab_size_per_layer_input: 262144,
  },
  "gemma4-26b-a4b": {
    ...COMMON,
    hidden_size: 2816,
    intermediate_size: 2112,
    num_hidden_layers: 30,
    layer_types: pattern(30, 6),
    num_attention_heads: 16,
    num_key_value_heads: 8,
    num_global_key_value_heads: 2,
    attention_k_eq_v: true,
    sliding_window: 1024,
    hidden_size_per_layer_input: 0,
    enable_moe_block: true,
    num_experts: 128,
    top_k_experts: 8,
    moe_intermediate_size: 704,
    max_position_embeddings: 262144,
  },
};

/** Seeded random bf16 tensors of the table's shapes: one random block, tiled (values do not affect speed). */
export function randomBf16Weights(backend: Backend, specs: readonly WeightSpec[]): Map<string, Tensor> {
  const block = new Uint16Array(1 << 20);
  let s = 12345;
  for (let i = 0; i < block.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // bf16 with magnitude below ~0.03 and random sign: sane activations, no NaN.
    block[i] = 0x3c00 | ((s >>> 16) & 0x7f) | ((s & 1) << 15);
  }
  const blockBytes = new Uint8Array(block.buffer);
  const weights = new Map<string, Tensor>();
  try {
    for (const spec of specs) {
      const n = spec.shape.reduce((a, b) => a * b, 1) * 2;
      const data = new Uint8Array(n);
      for (let off = 0; off < n; off += blockBytes.length) {
        data.set(blockBytes.subarray(0, Math.min(blockBytes.length, n - off)), off);
      }
      weights.set(spec.name, Tensor.fromBytes(backend, data, spec.shape, "bf16"));
    }
  } catch (e) {
    weights.forEach((t) => t.dispose());
    throw e;
  }
  return weights;
}

export interface SyntheticGemma4 {
  model: Gemma4TextModel;
  /** Bytes of all weights on the device. */
  bytes: number;
  /** Bytes one decode token reads at position `pos` (weights actually touched + K/V). */
  decodeReadBytes(pos: number): number;
}

export function syntheticGemma4(backend: Backend, name: string, maxContext: number): SyntheticGemma4 {
  const config = parseGemma4Config(GEMMA4_SYNTHETIC[name], name);
  const table = gemma4TextTable(config);
  const specs = tableRows(table);
  const weights = randomBf16Weights(backend, specs);
  const model = new Gemma4TextModel(backend, config, new ModelWeights(table, weights), maxContext);
  const c = config.text;
  let bytes = 0, read = 0;
  for (const spec of specs) {
    const n = spec.shape.reduce((a, b) => a * b, 1) * 2;
    bytes += n;
    if (spec.name.endsWith("embed_tokens_per_layer.weight")) read += n / spec.shape[0]; // one row per token
    else if (spec.name.includes(".experts.") && c.moe) read += (n * c.moe.topK) / c.moe.numExperts;
    else read += n;
  }
  const decodeReadBytes = (pos: number) =>
    read + config.layers.reduce((sum, l) => {
      const keys = l.window > 0 ? Math.min(pos, l.window) : pos;
      return sum + 2 * keys * l.kvHeads * l.headDim * 4;
    }, 0);
  return { model, bytes, decodeReadBytes };
}
