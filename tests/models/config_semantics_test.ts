/**
 * Config semantics of Gemma3ForConditionalGeneration / Gemma4ForConditionalGeneration that transformers 5.17
 * applies and gemmakit once did not (issue 14), pinned by config_semantics.json in
 * tests/fixtures/gemma3-vision-tiny/ and tests/fixtures/gemma4-vision-tiny/, which make_gemma3_vision_fixtures.py
 * and make_gemma4_vision_fixtures.py write from variants of those checkpoints:
 * - both: the head is tied by the TOP-LEVEL tie_word_embeddings, whatever text_config says (an untied checkpoint
 *   with text_config tied uses its own lm_head; a tied one with text_config untied needs none);
 * - Gemma 3: text_config.final_logit_softcapping is never applied by the multimodal class; Gemma 4: it is.
 * Each variant is rebuilt here from the fixture (config patched; lm_head.weight appended by the fixture's rule)
 * and its last-position logits compared with transformers'.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { Backend } from "../../src/runtime/backend.ts";
import { loadGemma3Multimodal } from "../../src/models/gemma3/multimodal.ts";
import { parseGemma3Config } from "../../src/models/gemma3/config.ts";
import { loadGemma4Multimodal } from "../../src/models/gemma4/multimodal.ts";
import { parseGemma4Config } from "../../src/models/gemma4/config.ts";
import { VISION_FIXTURE } from "./gemma3_vision_fixture.ts";
import { G4_VISION_FIXTURE } from "./gemma4_vision_fixture.ts";

interface Variant {
  name: string;
  top: Record<string, unknown>;
  text: Record<string, unknown>;
  lm_head: "flip_half" | null;
  tied: boolean;
  last_logits: number[];
}
interface Semantics {
  ids: number[];
  variants: Variant[];
}
const readSemantics = (fixture: string): Semantics =>
  JSON.parse(Deno.readTextFileSync(join(fixture, "config_semantics.json")));

/** Where each family's checkpoint keeps the embedding and the untied head (as save_pretrained names them). */
interface HeadNames {
  embed: string;
  head: string;
}
const G3_NAMES: HeadNames = {
  embed: "language_model.model.embed_tokens.weight",
  head: "language_model.lm_head.weight",
};
const G4_NAMES: HeadNames = { embed: "model.language_model.embed_tokens.weight", head: "lm_head.weight" };

/** The fixture's model.safetensors with the head tensor = embed rows reversed, times 0.5. */
function withFlippedHead(bytes: Uint8Array, names: HeadNames): Uint8Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = Number(view.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  const data = bytes.subarray(8 + headerLen);
  const embed = header[names.embed];
  const [rows, cols] = embed.shape as number[];
  const src = new Float32Array(data.slice(embed.data_offsets[0], embed.data_offsets[1]).buffer);
  const head = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) head[r * cols + c] = src[(rows - 1 - r) * cols + c] * 0.5;
  }
  const end = data.length;
  header[names.head] = {
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

function variantDir(fixture: string, names: HeadNames, v: Variant): string {
  const dir = Deno.makeTempDirSync({ prefix: "gemmakit-semantics-" });
  for (const e of Deno.readDirSync(fixture)) Deno.copyFileSync(join(fixture, e.name), join(dir, e.name));
  const cfg = JSON.parse(Deno.readTextFileSync(join(fixture, "config.json")));
  Object.assign(cfg, v.top);
  Object.assign(cfg.text_config, v.text);
  Deno.writeTextFileSync(join(dir, "config.json"), JSON.stringify(cfg));
  if (v.lm_head === "flip_half") {
    Deno.writeFileSync(
      join(dir, "model.safetensors"),
      withFlippedHead(Deno.readFileSync(join(dir, "model.safetensors")), names),
    );
  }
  return dir;
}

function assertLogits(v: Variant, got: ArrayLike<number>): void {
  assert.equal(got.length, v.last_logits.length);
  let diff = 0;
  for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i] - v.last_logits[i]));
  assert.ok(diff <= 1e-4, `${v.name}: |Δ| ${diff} > 1e-4`);
}

const g3 = readSemantics(VISION_FIXTURE);
for (const v of g3.variants) {
  Deno.test(`Gemma3ForConditionalGeneration config semantics: ${v.name} as transformers`, () => {
    const dir = variantDir(VISION_FIXTURE, G3_NAMES, v);
    try {
      const cfg = parseGemma3Config(JSON.parse(Deno.readTextFileSync(join(dir, "config.json"))));
      assert.equal(cfg.text.tieWordEmbeddings, v.tied);
      assert.equal(cfg.text.finalLogitSoftcapping, null);
      using backend = Backend.open({ backend: "cpu" });
      const model = loadGemma3Multimodal(backend, dir, { maxContext: 64 });
      try {
        using logits = model.prefill(g3.ids);
        assertLogits(v, logits.toArray());
      } finally {
        model.dispose();
      }
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

const g4 = readSemantics(G4_VISION_FIXTURE);
Deno.test("Gemma 4 config semantics fixture: the variants tell the rules apart", () => {
  // Guards the fixture itself: were the untied head's logits equal to the tied ones (or the softcap not biting),
  // a wrong tie or softcap rule would pass the comparisons below.
  const by = Object.fromEntries(g4.variants.map((v) => [v.name, v.last_logits]));
  const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
  assert.ok(maxDiff(by.top_level_untied, by.top_level_tied_text_untied) > 0.1);
  assert.ok(Math.max(...by.top_level_tied_text_untied.map(Math.abs)) > 1);
  assert.ok(Math.max(...by.text_softcap_applied.map(Math.abs)) <= 0.5);
});
for (const v of g4.variants) {
  Deno.test(`Gemma4ForConditionalGeneration config semantics: ${v.name} as transformers`, () => {
    const dir = variantDir(G4_VISION_FIXTURE, G4_NAMES, v);
    try {
      const cfg = parseGemma4Config(JSON.parse(Deno.readTextFileSync(join(dir, "config.json"))));
      assert.equal(cfg.text.tieWordEmbeddings, v.tied);
      using backend = Backend.open({ backend: "cpu" });
      using model = loadGemma4Multimodal(backend, dir, { maxContext: 64, visionCacheBytes: 0 });
      using logits = model.prefill(g4.ids);
      assertLogits(v, logits.toArray());
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("Gemma3ForCausalLM still applies final_logit_softcapping (only the multimodal class does not)", () => {
  const cfg = parseGemma3Config({ model_type: "gemma3_text", final_logit_softcapping: 30 });
  assert.equal(cfg.text.finalLogitSoftcapping, 30);
});
