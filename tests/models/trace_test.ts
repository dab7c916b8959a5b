/**
 * The trace hook: off by default, it sees every named intermediate of a prefill in order (so a divergence from
 * transformers can be located layer by layer), and turning it on changes no logit.
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { loadGemma3Text } from "../../src/models/gemma3/load.ts";
import { loadGemma4Text } from "../../src/models/gemma4/load.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const IDS = [2, 100, 200, 300, 7];

for (const [name, load] of [["gemma3-text-mixed", loadGemma3Text], ["gemma4-text-e", loadGemma4Text]] as const) {
  Deno.test(`trace: ${name} names every layer's intermediates and leaves the logits as they were`, () => {
    using backend = Backend.open({ backend: "cpu" });
    using lm = load(backend, FIXTURES + name, { maxContext: 64 });
    assert.equal(lm.trace, undefined, "off by default");
    using plain = lm.prefill(IDS, "all");
    const seen: string[] = [];
    let lastHidden: Float32Array | undefined;
    lm.trace = (what, layer, t) => {
      // Per-layer inputs are laid out [layers · tokens, P]; everything else has one row per token.
      const rows = what === "per_layer_inputs" ? lm.config.text.numHiddenLayers * IDS.length : IDS.length;
      assert.equal(t.shape[0], rows, `${what} of layer ${layer}`);
      seen.push(`${layer}.${what}`);
      if (what === "hidden") lastHidden = t.toArray() as Float32Array;
    };
    using traced = lm.prefill(IDS, "all");
    const L = lm.config.text.numHiddenLayers;
    assert.equal(seen[0], "-1.embeddings");
    for (let i = 0; i < L; i++) {
      for (const what of ["attn_norm", "attn_out", "mlp_norm", "mlp_out", "hidden"]) {
        assert.ok(seen.includes(`${i}.${what}`), `layer ${i} ${what} was not traced: ${seen.join(" ")}`);
      }
    }
    assert.ok(lastHidden!.every(Number.isFinite));
    assert.deepEqual(traced.toArray(), plain.toArray(), "tracing changed the logits");
  });
}
