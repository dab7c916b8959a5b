/**
 * The Gemma 3 text weight table: every tensor the model reads, its shape from the config, and the names
 * it goes by, as a tree the model reads back with tensors at the leaves. Gemma3ForCausalLM writes `model.…`;
 * Gemma3ForConditionalGeneration's converter writes `language_model.model.…` and transformers 5 in memory
 * `model.language_model.…` — all are accepted.
 * @module
 */
import { FLOAT_DTYPES, MATMUL_WEIGHT_DTYPES } from "../../runtime/dtype.ts";
import type { WeightSpec } from "../common/weights.ts";
import { type Loaded, tableRows } from "../common/weight_table.ts";
import type { Gemma3Model } from "./config.ts";

/** A tensor the matrix kernels read as stored: float or GGUF-quantized. Norm weights are float only. */
function row(name: string, shape: number[], matmul = false): WeightSpec {
  return {
    name: `model.${name}`,
    shape,
    dtypes: matmul ? MATMUL_WEIGHT_DTYPES : FLOAT_DTYPES,
    aliases: [`language_model.model.${name}`, `model.language_model.${name}`],
  };
}

/** Gemma3DecoderLayer's tensors, named after transformers' modules. */
export type Gemma3LayerTable = {
  inputLayernorm: WeightSpec;
  qProj: WeightSpec;
  kProj: WeightSpec;
  vProj: WeightSpec;
  oProj: WeightSpec;
  qNorm: WeightSpec;
  kNorm: WeightSpec;
  postAttentionLayernorm: WeightSpec;
  preFeedforwardLayernorm: WeightSpec;
  gateProj: WeightSpec;
  upProj: WeightSpec;
  downProj: WeightSpec;
  postFeedforwardLayernorm: WeightSpec;
};

/** The text model's tensors; `lmHead` is absent when the head is tied to the embedding. */
export type Gemma3TextTable = {
  embedTokens: WeightSpec;
  norm: WeightSpec;
  layers: Gemma3LayerTable[];
  lmHead: WeightSpec | undefined;
};

function layerTable(model: Gemma3Model, i: number): Gemma3LayerTable {
  const c = model.text;
  const [H, I, hd] = [c.hiddenSize, c.intermediateSize, c.headDim];
  const q = c.numAttentionHeads * hd, kv = c.numKeyValueHeads * hd;
  const p = `layers.${i}.`;
  return {
    inputLayernorm: row(`${p}input_layernorm.weight`, [H]),
    qProj: row(`${p}self_attn.q_proj.weight`, [q, H], true),
    kProj: row(`${p}self_attn.k_proj.weight`, [kv, H], true),
    vProj: row(`${p}self_attn.v_proj.weight`, [kv, H], true),
    oProj: row(`${p}self_attn.o_proj.weight`, [H, q], true),
    qNorm: row(`${p}self_attn.q_norm.weight`, [hd]),
    kNorm: row(`${p}self_attn.k_norm.weight`, [hd]),
    postAttentionLayernorm: row(`${p}post_attention_layernorm.weight`, [H]),
    preFeedforwardLayernorm: row(`${p}pre_feedforward_layernorm.weight`, [H]),
    gateProj: row(`${p}mlp.gate_proj.weight`, [I, H], true),
    upProj: row(`${p}mlp.up_proj.weight`, [I, H], true),
    downProj: row(`${p}mlp.down_proj.weight`, [H, I], true),
    postFeedforwardLayernorm: row(`${p}post_feedforward_layernorm.weight`, [H]),
  };
}

/** The whole text model's table. */
export function gemma3TextTable(model: Gemma3Model): Gemma3TextTable {
  const c = model.text, H = c.hiddenSize;
  return {
    embedTokens: row("embed_tokens.weight", [c.vocabSize, H], true),
    norm: row("norm.weight", [H]),
    layers: Array.from({ length: c.numHiddenLayers }, (_, i) => layerTable(model, i)),
    // A tied head reads embed_tokens; checkpoints may still carry a copy, which is then left unloaded.
    lmHead: c.tieWordEmbeddings ? undefined : {
      name: "lm_head.weight",
      shape: [c.vocabSize, H],
      dtypes: MATMUL_WEIGHT_DTYPES,
      aliases: ["language_model.lm_head.weight"],
    } satisfies WeightSpec,
  };
}

export type Gemma3TextWeights = Loaded<Gemma3TextTable>;
export type Gemma3LayerWeights = Gemma3TextWeights["layers"][number];

/** The table's rows, flat (what the GGUF mapping and the loader check against). */
export function gemma3TextWeights(model: Gemma3Model): WeightSpec[] {
  return tableRows(gemma3TextTable(model));
}
