import assert from "node:assert/strict";
import { parseGemma3Config } from "../../src/models/gemma3/config.ts";
import { ConfigError } from "../../src/errors.ts";
import { thrown } from "../helpers.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const fixtureConfig = (name: string) => JSON.parse(Deno.readTextFileSync(`${FIXTURES}${name}/config.json`));

Deno.test("transformers-5 config: explicit layer_types and rope_parameters per layer type", () => {
  const { text, layers, architecture } = parseGemma3Config(fixtureConfig("gemma3-text-mixed"));
  assert.equal(architecture, "causal_lm");
  assert.deepEqual(layers.map((l) => l.type[0]).join(""), "sfssfssf");
  assert.deepEqual(text.rope.full_attention, { type: "linear", theta: 1e6, factor: 8 });
  assert.deepEqual(text.rope.sliding_attention, { type: "default", theta: 1e4, factor: 1 });
  assert.equal(layers[0].window, 12);
  assert.equal(layers[1].window, 0);
  assert.equal(text.queryPreAttnScalar, 24);
});

Deno.test("legacy Hub config: pattern-derived layers, rope_scaling on global layers only, eos list", () => {
  const { text, layers } = parseGemma3Config(fixtureConfig("gemma3-text-legacy"));
  assert.deepEqual(layers.map((l) => l.type[0]).join(""), "ssfssfs");
  assert.deepEqual(text.rope.full_attention, { type: "linear", theta: 5e5, factor: 4 });
  assert.deepEqual(text.rope.sliding_attention, { type: "default", theta: 2e4, factor: 1 });
  assert.deepEqual(text.eosTokenIds, [1, 106]);
});

Deno.test("multimodal gemma3 config: the text model under text_config", () => {
  const cfg = {
    model_type: "gemma3",
    text_config: { ...fixtureConfig("gemma3-text-mixed"), model_type: "gemma3_text" },
  };
  assert.equal(parseGemma3Config(cfg).architecture, "conditional_generation");
});

Deno.test("every unsupported or malformed value is reported in one ConfigError", () => {
  const bad = {
    ...fixtureConfig("gemma3-text-mixed"),
    hidden_activation: "relu",
    num_key_value_heads: 3,
    layer_types: ["sliding_attention", "chunked_attention"],
    rope_parameters: { full_attention: { rope_type: "yarn", factor: 4 }, sliding_attention: { rope_type: "default" } },
    use_bidirectional_attention: true,
    final_logit_softcapping: -1,
  };
  const err = thrown(() => parseGemma3Config(bad, "bad/config.json"), ConfigError);
  assert.match(err.message, /^config: bad\/config.json:/);
  const expected = [
    /num_attention_heads=4 is not a multiple of num_key_value_heads=3/,
    /hidden_activation "relu" is not supported/,
    /use_bidirectional_attention=true/,
    /layer_types\[1\] "chunked_attention"/,
    /layer_types has 2 entries for 8 layers/,
    /rope_parameters.full_attention.rope_type "yarn" is not supported/,
    /final_logit_softcapping must be a positive number or null/,
  ];
  for (const re of expected) assert.ok(err.problems.some((p) => re.test(p)), `missing problem ${re}: ${err.message}`);
  assert.equal(err.problems.length, expected.length);
});

Deno.test("not a Gemma 3 config", () => {
  assert.throws(() => parseGemma3Config({ model_type: "llama" }), /model_type "llama" is not a Gemma 3 model/);
  assert.throws(() => parseGemma3Config([1, 2]), ConfigError);
  assert.throws(() => parseGemma3Config({ model_type: "gemma3" }), /needs a text_config object/);
});
