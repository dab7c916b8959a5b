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
import type { Gemma4LayerSpec, Gemma4Model } from "./config.ts";
import { type Loaded, tableRows } from "../common/weight_table.ts";

/** Row name of a text-model tensor: `layers.0.mlp.up_proj.weight` → `model.layers.0.mlp.up_proj.weight`. */
const rowName = (name: string): string => `model.${name}`;

/** Norms and scalars load as float; the tensors the matrix and expert kernels read may be quantized too. */
function row(name: string, shape: number[], matmul = false): WeightSpec {
  return {
    name: rowName(name),
    shape,
    dtypes: matmul ? MATMUL_WEIGHT_DTYPES : FLOAT_DTYPES,
    aliases: [`model.language_model.${name}`],
  };
}

/** Gemma4TextDecoderLayer's tensors, named after transformers' modules; absent where the layer has none. */
export type Gemma4LayerTable = {
  inputLayernorm: WeightSpec;
  qProj: WeightSpec;
  qNorm: WeightSpec;
  oProj: WeightSpec;
  postAttentionLayernorm: WeightSpec;
  preFeedforwardLayernorm: WeightSpec;
  gateProj: WeightSpec;
  upProj: WeightSpec;
  downProj: WeightSpec;
  postFeedforwardLayernorm: WeightSpec;
  layerScalar: WeightSpec;
  /** Absent on KV-shared layers. */
  kProj: WeightSpec | undefined;
  kNorm: WeightSpec | undefined;
  /** Absent on KV-shared and k_eq_v layers. */
  vProj: WeightSpec | undefined;
  /** With hidden_size_per_layer_input > 0. */
  perLayerInput: { gate: WeightSpec; projection: WeightSpec; postNorm: WeightSpec } | undefined;
  /** With enable_moe_block: the router, the experts and the branch's norms. */
  moe: {
    routerProj: WeightSpec;
    routerScale: WeightSpec;
    perExpertScale: WeightSpec;
    gateUp: WeightSpec;
    down: WeightSpec;
    preFeedforwardLayernorm2: WeightSpec;
    postFeedforwardLayernorm1: WeightSpec;
    postFeedforwardLayernorm2: WeightSpec;
  } | undefined;
};

/** The text model's tensors; `perLayer` with per-layer inputs, `lmHead` when the head is not tied. */
export type Gemma4TextTable = {
  embedTokens: WeightSpec;
  norm: WeightSpec;
  perLayer: { embedTokens: WeightSpec; modelProjection: WeightSpec; projectionNorm: WeightSpec } | undefined;
  layers: Gemma4LayerTable[];
  lmHead: WeightSpec | undefined;
};

function layerTable(model: Gemma4Model, l: Gemma4LayerSpec): Gemma4LayerTable {
  const c = model.text, H = c.hiddenSize, P = c.hiddenSizePerLayerInput;
  const p = `layers.${l.index}.`, a = `${p}self_attn.`;
  const [hd, kv, I] = [l.headDim, l.kvHeads * l.headDim, l.intermediateSize];
  const ownKv = !l.kvShared;
  const moe = c.moe;
  return {
    inputLayernorm: row(`${p}input_layernorm.weight`, [H]),
    qProj: row(`${a}q_proj.weight`, [c.numAttentionHeads * hd, H], true),
    qNorm: row(`${a}q_norm.weight`, [hd]),
    oProj: row(`${a}o_proj.weight`, [H, c.numAttentionHeads * hd], true),
    postAttentionLayernorm: row(`${p}post_attention_layernorm.weight`, [H]),
    preFeedforwardLayernorm: row(`${p}pre_feedforward_layernorm.weight`, [H]),
    gateProj: row(`${p}mlp.gate_proj.weight`, [I, H], true),
    upProj: row(`${p}mlp.up_proj.weight`, [I, H], true),
    downProj: row(`${p}mlp.down_proj.weight`, [H, I], true),
    postFeedforwardLayernorm: row(`${p}post_feedforward_layernorm.weight`, [H]),
    layerScalar: row(`${p}layer_scalar`, [1]),
    // KV-shared layers read their source's K/V; k_eq_v layers take V from the raw K projection.
    kProj: ownKv ? row(`${a}k_proj.weight`, [kv, H], true) : undefined,
    kNorm: ownKv ? row(`${a}k_norm.weight`, [hd]) : undefined,
    vProj: ownKv && !l.kEqV ? row(`${a}v_proj.weight`, [kv, H], true) : undefined,
    perLayerInput: P > 0
      ? {
        gate: row(`${p}per_layer_input_gate.weight`, [P, H], true),
        projection: row(`${p}per_layer_projection.weight`, [H, P], true),
        postNorm: row(`${p}post_per_layer_input_norm.weight`, [H]),
      }
      : undefined,
    moe: moe
      ? {
        routerProj: row(`${p}router.proj.weight`, [moe.numExperts, H], true),
        routerScale: row(`${p}router.scale`, [H]),
        perExpertScale: row(`${p}router.per_expert_scale`, [moe.numExperts]),
        // The expert kernel reads quantized experts (a GGUF's) too, gate_up and down each in its own dtype.
        gateUp: row(`${p}experts.gate_up_proj`, [moe.numExperts, 2 * moe.moeIntermediateSize, H], true),
        down: row(`${p}experts.down_proj`, [moe.numExperts, H, moe.moeIntermediateSize], true),
        preFeedforwardLayernorm2: row(`${p}pre_feedforward_layernorm_2.weight`, [H]),
        postFeedforwardLayernorm1: row(`${p}post_feedforward_layernorm_1.weight`, [H]),
        postFeedforwardLayernorm2: row(`${p}post_feedforward_layernorm_2.weight`, [H]),
      }
      : undefined,
  };
}

/** The whole text model's table. */
export function gemma4TextTable(model: Gemma4Model): Gemma4TextTable {
  const c = model.text;
  const [H, V, L, P] = [c.hiddenSize, c.vocabSize, c.numHiddenLayers, c.hiddenSizePerLayerInput];
  return {
    embedTokens: row("embed_tokens.weight", [V, H], true),
    norm: row("norm.weight", [H]),
    perLayer: P > 0
      ? {
        embedTokens: row("embed_tokens_per_layer.weight", [c.vocabSizePerLayerInput, L * P], true),
        modelProjection: row("per_layer_model_projection.weight", [L * P, H], true),
        projectionNorm: row("per_layer_projection_norm.weight", [P]),
      }
      : undefined,
    layers: model.layers.map((l) => layerTable(model, l)),
    lmHead: c.tieWordEmbeddings
      ? undefined
      : { name: "lm_head.weight", shape: [V, H], dtypes: MATMUL_WEIGHT_DTYPES } satisfies WeightSpec,
  };
}

export type Gemma4TextWeights = Loaded<Gemma4TextTable>;
export type Gemma4LayerWeights = Gemma4TextWeights["layers"][number];

/** The table's rows, flat. */
export function gemma4TextWeights(model: Gemma4Model): WeightSpec[] {
  return tableRows(gemma4TextTable(model));
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
