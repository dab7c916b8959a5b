/** Gemma 4 config.json parsing: the per-layer plan (geometry, KV sharing, k_eq_v, MLP width), both config formats. */
import assert from "node:assert/strict";
import { ConfigError, parseGemma4Config } from "../../src/models/gemma4/config.ts";
import { gemma4CacheSpecs } from "../../src/models/gemma4/model.ts";
import { KvCache, RING_SLACK } from "../../src/runtime/kv_cache.ts";
import { thrown } from "../helpers.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const fixtureConfig = (name: string) => JSON.parse(Deno.readTextFileSync(`${FIXTURES}${name}/config.json`));

const S = "sliding_attention", F = "full_attention";

/** google/gemma-4-E2B's text config as the released checkpoint writes it (convert_gemma4_weights.py). */
const E2B = {
  model_type: "gemma4_text",
  vocab_size: 262144,
  hidden_size: 1536,
  intermediate_size: 6144,
  num_hidden_layers: 35,
  num_attention_heads: 8,
  num_key_value_heads: 1,
  head_dim: 256,
  global_head_dim: 512,
  layer_types: Array.from({ length: 35 }, (_, i) => (i + 1) % 5 ? S : F),
  sliding_window: 512,
  num_kv_shared_layers: 20,
  hidden_size_per_layer_input: 256,
  use_double_wide_mlp: true,
  final_logit_softcapping: 30.0,
  rope_parameters: {
    sliding_attention: { rope_type: "default", rope_theta: 10000.0 },
    full_attention: { rope_type: "proportional", partial_rotary_factor: 0.25, rope_theta: 1000000.0 },
  },
};

Deno.test("E2B: KV-shared layers read the last earlier layer of their type, with a double-wide MLP", () => {
  const m = parseGemma4Config(E2B);
  const shared = m.layers.filter((l) => l.kvShared);
  assert.equal(shared.length, 20);
  assert.equal(shared[0].index, 15);
  for (const l of shared) {
    assert.equal(l.kvSource, l.type === S ? 13 : 14, `layer ${l.index}`);
    assert.equal(l.intermediateSize, 2 * 6144);
  }
  for (const l of m.layers.filter((l) => !l.kvShared)) {
    assert.equal(l.kvSource, l.index);
    assert.equal(l.intermediateSize, 6144);
  }
  const full = m.layers.find((l) => l.type === F)!, sliding = m.layers[0];
  assert.deepEqual([full.headDim, full.kvHeads, full.window, full.kEqV], [512, 1, 0, false]);
  assert.deepEqual([sliding.headDim, sliding.kvHeads, sliding.window], [256, 1, 512]);
  assert.deepEqual(full.rope, { type: "proportional", theta: 1e6, factor: 1, partialRotaryFactor: 0.25 });
  assert.equal(m.text.hiddenSizePerLayerInput, 256);
  assert.equal(m.text.vocabSizePerLayerInput, 262144);
  assert.equal(m.text.finalLogitSoftcapping, 30);
  // KV cache at 4096 tokens: 15 owning layers (12 sliding rings of 512 + RING_SLACK rows, 3 full of 4096), f32 K
  // and V.
  const specs = gemma4CacheSpecs(m, 4096);
  assert.equal(specs.filter((s) => s.sharesWith !== undefined).length, 20);
  assert.equal(KvCache.bytesFor(specs), 2 * 4 * (12 * (512 + RING_SLACK) * 256 + 3 * 4096 * 512));
});

Deno.test("31B-style global_head_dim / num_global_key_value_heads give the plan transformers 5.17 writes as per_layer_config", () => {
  const written = fixtureConfig("gemma4-text-k-eq-v");
  const { per_layer_config: _, ...legacy } = written;
  const released = parseGemma4Config({ ...legacy, global_head_dim: 32, num_global_key_value_heads: 1 });
  const fromPerLayer = parseGemma4Config(written);
  assert.deepEqual(released.layers, fromPerLayer.layers);
  const full = fromPerLayer.layers[2];
  assert.deepEqual([full.type, full.headDim, full.kvHeads, full.kEqV], [F, 32, 1, true]);
  const sliding = fromPerLayer.layers[0];
  assert.deepEqual([sliding.headDim, sliding.kvHeads, sliding.kEqV], [16, 2, false]);
});

Deno.test("gemma4 (multimodal) configs are read from text_config", () => {
  const text = fixtureConfig("gemma4-text-moe");
  const m = parseGemma4Config({ model_type: "gemma4", text_config: text, vision_config: {} });
  assert.equal(m.architecture, "conditional_generation");
  assert.deepEqual(m.layers, parseGemma4Config(text).layers);
  assert.deepEqual(m.text.moe, { numExperts: 8, topK: 2, moeIntermediateSize: 16 });
});

Deno.test("a Gemma 4 config missing required fields is one ConfigError naming each", () => {
  const { hidden_size: _, ...noHidden } = fixtureConfig("gemma4-text-e");
  let err = thrown(() => parseGemma4Config(noHidden, "x/config.json"), ConfigError);
  assert.match(err.message, /x\/config\.json/);
  assert.match(err.message, /hidden_size is required/);
  const { num_experts: __, ...noExperts } = fixtureConfig("gemma4-text-moe");
  err = thrown(() => parseGemma4Config({ model_type: "gemma4", text_config: noExperts }), ConfigError);
  assert.match(err.message, /text_config\.num_experts is required/);
  err = thrown(
    () => parseGemma4Config({ ...E2B, num_kv_shared_layers: 35, hidden_activation: "silu", attention_bias: true }),
    ConfigError,
  );
  assert.equal(err.problems.length, 3, err.message);
  assert.throws(() => parseGemma4Config({ ...E2B, model_type: "gemma3_text" }), /not a Gemma 4 model/);
  assert.throws(() => parseGemma4Config({ model_type: "gemma4" }), /needs a text_config/);
});
