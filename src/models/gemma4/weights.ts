/**
 * The Gemma 4 text weight table: every tensor the model reads, with its shape from the per-layer facts.
 * Gemma4ForCausalLM writes `model.…`; Gemma4ForConditionalGeneration `model.language_model.…` — both accepted.
 * KV-shared layers have no k/v projections or norms, k_eq_v layers no v_proj; a checkpoint that carries them
 * anyway does not match the config (`unexpectedGemma4Weights`).
 * @module
 */
import { FLOAT_DTYPES, MATMUL_WEIGHT_DTYPES } from "../../runtime/dtype.ts";
import type { WeightSpec } from "../common/weights.ts";
import type { WeightSource } from "../../formats/weight_source.ts";
import { WeightsError } from "../../errors.ts";
import type { Gemma4Model } from "./config.ts";

/** Row name of a text-model tensor: `layers.0.mlp.up_proj.weight` → `model.layers.0.mlp.up_proj.weight`. */
export const rowName = (name: string): string => `model.${name}`;

/** Norms, scalars and expert tensors load as float; projections the matrix kernels read may be quantized too. */
function row(name: string, shape: number[], matmul = false): WeightSpec {
  return {
    name: rowName(name),
    shape,
    dtypes: matmul ? MATMUL_WEIGHT_DTYPES : FLOAT_DTYPES,
    aliases: [`model.language_model.${name}`],
  };
}

export function gemma4TextWeights(model: Gemma4Model): WeightSpec[] {
  const c = model.text;
  const [H, V, L, P] = [c.hiddenSize, c.vocabSize, c.numHiddenLayers, c.hiddenSizePerLayerInput];
  const rows: WeightSpec[] = [row("embed_tokens.weight", [V, H], true), row("norm.weight", [H])];
  if (P > 0) {
    rows.push(
      row("embed_tokens_per_layer.weight", [c.vocabSizePerLayerInput, L * P], true),
      row("per_layer_model_projection.weight", [L * P, H], true),
      row("per_layer_projection_norm.weight", [P]),
    );
  }
  for (const l of model.layers) {
    const p = `layers.${l.index}.`, a = `${p}self_attn.`;
    const [hd, kv, I] = [l.headDim, l.kvHeads * l.headDim, l.intermediateSize];
    rows.push(
      row(`${p}input_layernorm.weight`, [H]),
      row(`${a}q_proj.weight`, [c.numAttentionHeads * hd, H], true),
      row(`${a}q_norm.weight`, [hd]),
      row(`${a}o_proj.weight`, [H, c.numAttentionHeads * hd], true),
      row(`${p}post_attention_layernorm.weight`, [H]),
      row(`${p}pre_feedforward_layernorm.weight`, [H]),
      row(`${p}mlp.gate_proj.weight`, [I, H], true),
      row(`${p}mlp.up_proj.weight`, [I, H], true),
      row(`${p}mlp.down_proj.weight`, [H, I], true),
      row(`${p}post_feedforward_layernorm.weight`, [H]),
      row(`${p}layer_scalar`, [1]),
    );
    if (!l.kvShared) rows.push(row(`${a}k_proj.weight`, [kv, H], true), row(`${a}k_norm.weight`, [hd]));
    if (!l.kvShared && !l.kEqV) rows.push(row(`${a}v_proj.weight`, [kv, H], true));
    if (P > 0) {
      rows.push(
        row(`${p}per_layer_input_gate.weight`, [P, H], true),
        row(`${p}per_layer_projection.weight`, [H, P], true),
        row(`${p}post_per_layer_input_norm.weight`, [H]),
      );
    }
    if (c.moe) {
      const [E, mI] = [c.moe.numExperts, c.moe.moeIntermediateSize];
      rows.push(
        row(`${p}router.proj.weight`, [E, H], true),
        row(`${p}router.scale`, [H]),
        row(`${p}router.per_expert_scale`, [E]),
        row(`${p}experts.gate_up_proj`, [E, 2 * mI, H]),
        row(`${p}experts.down_proj`, [E, H, mI]),
        row(`${p}pre_feedforward_layernorm_2.weight`, [H]),
        row(`${p}post_feedforward_layernorm_1.weight`, [H]),
        row(`${p}post_feedforward_layernorm_2.weight`, [H]),
      );
    }
  }
  if (!c.tieWordEmbeddings) {
    rows.push({ name: "lm_head.weight", shape: [V, H], dtypes: MATMUL_WEIGHT_DTYPES });
  }
  return rows;
}

/**
 * Throws a WeightsError when the checkpoint holds projections the config says do not exist (k/v weights of
 * KV-shared layers, v_proj of k_eq_v layers): the checkpoint and config.json disagree about the architecture.
 */
export function unexpectedGemma4Weights(model: Gemma4Model, source: WeightSource): void {
  const names = new Set(source.tensors.map((t) => t.name));
  const problems: string[] = [];
  for (const l of model.layers) {
    const absent = l.kvShared ? ["k_proj", "v_proj", "k_norm"] : l.kEqV ? ["v_proj"] : [];
    const why = l.kvShared ? `is KV-shared (reads layer ${l.kvSource}'s K/V)` : "uses attention_k_eq_v";
    for (const w of absent) {
      const name = `layers.${l.index}.self_attn.${w}.weight`;
      const found = [rowName(name), `model.language_model.${name}`].find((n) => names.has(n));
      if (found) problems.push(`${found}: present, but layer ${l.index} ${why} and has no ${w}`);
    }
  }
  if (problems.length > 0) throw new WeightsError(source.path ?? "the checkpoint", problems);
}
