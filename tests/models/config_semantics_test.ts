/**
 * Config semantics of Gemma3ForConditionalGeneration that transformers 5.17 applies and gemmakit once did not
 * (issue 14), pinned by tests/fixtures/gemma3-vision-tiny/config_semantics.json, which
 * make_gemma3_vision_fixtures.py writes from variants of that checkpoint:
 * - the head is tied by the TOP-LEVEL tie_word_embeddings, whatever text_config says (an untied checkpoint with
 *   text_config tied uses its own lm_head; a tied one with text_config untied needs none);
 * - text_config.final_logit_softcapping is never applied by the multimodal class.
 * Each variant is rebuilt here from the fixture (config patched; lm_head.weight appended by the fixture's rule)
 * and its last-position logits compared with transformers'.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Backend } from "../../src/runtime/backend.ts";
import { loadGemma3Multimodal } from "../../src/models/gemma3/multimodal.ts";
import { parseGemma3Config } from "../../src/models/gemma3/config.ts";
import { VISION_FIXTURE } from "./gemma3_vision_fixture.ts";

interface Variant {
  name: string;
  top: Record<string, unknown>;
  text: Record<string, unknown>;
  lm_head: "flip_half" | null;
  tied: boolean;
  last_logits: number[];
}
const ref = JSON.parse(Deno.readTextFileSync(join(VISION_FIXTURE, "config_semantics.json"))) as {
  ids: number[];
  variants: Variant[];
};

/** The fixture's model.safetensors with `language_model.lm_head.weight` = embed rows reversed, times 0.5. */
function withFlippedHead(bytes: Uint8Array): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  const data = bytes.subarray(8 + headerLen);
  const embed = header["language_model.model.embed_tokens.weight"];
  const [rows, cols] = embed.shape as number[];
  const src = new Float32Array(data.slice(embed.data_offsets[0], embed.data_offsets[1]).buffer);
  const head = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) head[r * cols + c] = src[(rows - 1 - r) * cols + c] * 0.5;
  }
  const end = data.length;
  header["language_model.lm_head.weight"] = {
    dtype: "F32",
    shape: [rows, cols],
    data_offsets: [end, end + head.byteLength],
  };
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((json.length) % 8)) % 8);
  const h = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + h.length + end + head.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  out.set(data, 8 + h.length);
  out.set(new Uint8Array(head.buffer), 8 + h.length + end);
  return out;
}

function variantDir(v: Variant): string {
  const dir = Deno.makeTempDirSync({ prefix: "gemmakit-semantics-" });
  for (const e of Deno.readDirSync(VISION_FIXTURE)) Deno.copyFileSync(join(VISION_FIXTURE, e.name), join(dir, e.name));
  const cfg = JSON.parse(Deno.readTextFileSync(join(VISION_FIXTURE, "config.json")));
  Object.assign(cfg, v.top);
  Object.assign(cfg.text_config, v.text);
  Deno.writeTextFileSync(join(dir, "config.json"), JSON.stringify(cfg));
  if (v.lm_head === "flip_half") {
    Deno.writeFileSync(
      join(dir, "model.safetensors"),
      withFlippedHead(Deno.readFileSync(join(dir, "model.safetensors"))),
    );
  }
  return dir;
}

for (const v of ref.variants) {
  Deno.test(`Gemma3ForConditionalGeneration config semantics: ${v.name} as transformers`, () => {
    const dir = variantDir(v);
    try {
      const cfg = parseGemma3Config(JSON.parse(Deno.readTextFileSync(join(dir, "config.json"))));
      assert.equal(cfg.text.tieWordEmbeddings, v.tied);
      assert.equal(cfg.text.finalLogitSoftcapping, null);
      using backend = Backend.open({ backend: "cpu" });
      const model = loadGemma3Multimodal(backend, dir, { maxContext: 64 });
      try {
        using logits = model.prefill(ref.ids);
        const got = logits.toArray();
        assert.equal(got.length, v.last_logits.length);
        let diff = 0;
        for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i] - v.last_logits[i]));
        assert.ok(diff <= 1e-4, `${v.name}: |Δ| ${diff} > 1e-4`);
      } finally {
        model.dispose();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("Gemma3ForCausalLM still applies final_logit_softcapping (only the multimodal class does not)", () => {
  const cfg = parseGemma3Config({ model_type: "gemma3_text", final_logit_softcapping: 30 });
  assert.equal(cfg.text.finalLogitSoftcapping, 30);
});
