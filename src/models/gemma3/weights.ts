/**
 * The Gemma 3 text weight table: every tensor the model reads, its shape from the config, and the names
 * it goes by. Gemma3ForCausalLM writes `model.…`; Gemma3ForConditionalGeneration's converter writes
 * `language_model.model.…` and transformers 5 in memory `model.language_model.…` — all are accepted.
 * @module
 */
import { FLOAT_DTYPES, MATMUL_WEIGHT_DTYPES } from "../../runtime/dtype.ts";
import { forLayers, type WeightSpec } from "../common/weights.ts";
import type { Gemma3Model } from "./config.ts";

/** Row name of a text-model tensor, e.g. `layers.0.mlp.up_proj.weight` → `model.layers.0.mlp.up_proj.weight`. */
export const rowName = (name: string): string => `model.${name}`;

/** A tensor the matrix kernels read as stored: float or GGUF-quantized. Norm weights are float only. */
function row(name: string, shape: number[], matmul = false): WeightSpec {
  return {
    name: rowName(name),
    shape,
    dtypes: matmul ? MATMUL_WEIGHT_DTYPES : FLOAT_DTYPES,
    aliases: [`language_model.model.${name}`, `model.language_model.${name}`],
  };
}

export function gemma3TextWeights(model: Gemma3Model): WeightSpec[] {
  const c = model.text;
  const [H, I, hd] = [c.hiddenSize, c.intermediateSize, c.headDim];
  const q = c.numAttentionHeads * hd, kv = c.numKeyValueHeads * hd;
  const rows: WeightSpec[] = [
    row("embed_tokens.weight", [c.vocabSize, H], true),
    row("norm.weight", [H]),
    ...forLayers(c.numHiddenLayers, [
      row("layers.{i}.input_layernorm.weight", [H]),
      row("layers.{i}.self_attn.q_proj.weight", [q, H], true),
      row("layers.{i}.self_attn.k_proj.weight", [kv, H], true),
      row("layers.{i}.self_attn.v_proj.weight", [kv, H], true),
      row("layers.{i}.self_attn.o_proj.weight", [H, q], true),
      row("layers.{i}.self_attn.q_norm.weight", [hd]),
      row("layers.{i}.self_attn.k_norm.weight", [hd]),
      row("layers.{i}.post_attention_layernorm.weight", [H]),
      row("layers.{i}.pre_feedforward_layernorm.weight", [H]),
      row("layers.{i}.mlp.gate_proj.weight", [I, H], true),
      row("layers.{i}.mlp.up_proj.weight", [I, H], true),
      row("layers.{i}.mlp.down_proj.weight", [H, I], true),
      row("layers.{i}.post_feedforward_layernorm.weight", [H]),
    ]),
  ];
  // A tied head reads embed_tokens; checkpoints may still carry a copy, which is then left unloaded.
  if (!c.tieWordEmbeddings) {
    rows.push({
      name: "lm_head.weight",
      shape: [c.vocabSize, H],
      dtypes: MATMUL_WEIGHT_DTYPES,
      aliases: ["language_model.lm_head.weight"],
    });
  }
  return rows;
}
