/**
 * GGUFs written by llama.cpp's own converter and llama-quantize from the tiny transformers checkpoints
 * (tests/fixtures/llamacpp-gguf/, made by tests/fixtures/make_llamacpp_gguf_fixtures.py: Gemma 3 softcap and
 * mixed, Gemma 4 E-type, k_eq_v and MoE; Q8_0, Q4_0, Q5_1, IQ4_NL and llama-quantize's Q4_K_M, which falls back
 * to Q5_0/Q8_0 on 32-wide rows). Each is opened the way loadModel opens it (the registry picks the family from
 * general.architecture) and its prompt logits, every position, must match transformers run on the same file's
 * weights dequantized by gguf-py.
 *
 * Tolerances. Both sides multiply by the same float32 numbers: transformers' weights are the blocks dequantized
 * exactly, our kernels decode the same blocks in registers, and activations stay float32 on both sides (we do
 * not quantize them, unlike llama.cpp). So the quant type does not enter the error; what remains is float32
 * summation order over 5-6 tiny layers. Measured on this machine (2026-12-02, CPU, every position):
 *   gemma3-text-softcap Q8_0 4.7e-5, Q4_K_M 6.9e-5, Q4_0 6.9e-5 (logits up to ~30 under the softcap);
 *   gemma4-text-e Q8_0 1.2e-5, Q4_K_M 1.0e-5; k-eq-v Q5_1 7.2e-6, IQ4_NL 7.3e-6; moe Q8_0 6.9e-6, Q4_0 6.1e-6
 *   (its experts held as stored: Q8_0 or Q4_0 gate/up beside an F16 down).
 * ATOL = 5e-4, one bound for every type (7x the worst), since the block decode is exact on both sides: a
 * type-specific error (a wrong IQ4_NL table entry, a Q5_1 high-bit slip) or a wrong tensor mapping, norm offset,
 * RoPE factor or embedding scale moves logits by 1e-3..10 and fails (an f16-rounded √8 per-layer embedding
 * scale, a bug this test caught, moved them by 1.9e-3). Every argmax must also agree.
 * @module
 */
import assert from "node:assert/strict";
import { gunzipSync } from "fflate";
import { Backend } from "../../src/runtime/backend.ts";
import { openGguf } from "../../src/formats/gguf.ts";
import { familyFor } from "../../src/models/registry.ts";
import { ggufCheckpoint } from "../../src/models/load.ts";
import type { Tensor } from "../../src/runtime/tensor.ts";
import { gemma4ConfigFromGguf, gemma4GgufWeightSource } from "../../src/models/gemma4/gguf.ts";
import { gemma4TextTable } from "../../src/models/gemma4/weights.ts";
import { ModelWeights } from "../../src/models/common/weight_table.ts";
import { parseGemma4Config } from "../../src/models/gemma4/config.ts";
import { gemma4GgufTokenizer, gemma4GgufTokenizerJson } from "../../src/models/gemma4/gguf_tokenizer.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { ConfigError } from "../../src/errors.ts";

interface TokenizerFile {
  model: { vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens: { id: number; content: string; special: boolean }[];
  normalizer: unknown;
  pre_tokenizer: unknown;
  decoder: unknown;
}

const DIR = new URL("../fixtures/llamacpp-gguf/", import.meta.url);
const ATOL = 5e-4;

interface Entry {
  gguf: string;
  checkpoint: string;
  requested_type: string;
  architecture: string;
  sha256: string;
  tensor_types: Record<string, number>;
  tensors: Record<string, string>;
  input_ids: number[];
  logits: string;
  logits_shape: [number, number];
  argmax: number[];
}
const manifest = JSON.parse(Deno.readTextFileSync(new URL("manifest.json", DIR))) as { files: Entry[] };

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const backend = Backend.open({ backend: "cpu" });

for (const e of manifest.files) {
  Deno.test(`llama.cpp GGUF ${e.gguf}: logits of every prompt position match transformers (${ATOL})`, async () => {
    const path = new URL(e.gguf, DIR).pathname;
    assert.equal(await sha256(Deno.readFileSync(path)), e.sha256, "the committed GGUF is the one the manifest lists");
    const checkpoint = ggufCheckpoint(path);
    using _file = checkpoint.file;
    const family = familyFor(checkpoint);
    assert.equal(family.name, e.architecture);
    const parts = await family.load(checkpoint, backend, { maxContext: 128 });
    const lm = parts.lm as typeof parts.lm & { prefill(ids: number[], rows: "all"): Tensor };
    try {
      // The tokenizer rebuilt from the file's own vocabulary encodes the prompt as transformers did.
      const text = JSON.parse(
        Deno.readTextFileSync(new URL(`../fixtures/${e.checkpoint}/expected.json`, import.meta.url)),
      )
        .plain.text as string;
      const ids = parts.tokenizer.encode(text);
      assert.deepEqual(ids, e.input_ids, "the file's tokenizer encodes the prompt as transformers did");
      using logits = lm.prefill(e.input_ids, "all");
      const got = logits.toArray() as Float32Array;
      const raw = gunzipSync(Deno.readFileSync(new URL(e.logits, DIR)));
      const want = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      const [T, V] = e.logits_shape;
      assert.deepEqual(logits.shape, [T, V]);
      let worst = 0, at = -1;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(got[i] - want[i]);
        if (!(d <= worst)) [worst, at] = [d, i];
      }
      console.log(`  ${e.gguf}: max |Δlogit| ${worst.toExponential(2)} over ${T}×${V}`);
      assert.ok(
        worst <= ATOL,
        `max |Δlogit| ${worst} at position ${Math.floor(at / V)}, id ${at % V} exceeds ${ATOL}`,
      );
      for (let t = 0; t < T; t++) {
        const row = got.subarray(t * V, (t + 1) * V);
        assert.equal(row.indexOf(Math.max(...row)), e.argmax[t], `argmax at position ${t}`);
      }
    } finally {
      lm.dispose();
    }
  });
}

for (const e of manifest.files.filter((f) => f.checkpoint === "gemma4-text-moe")) {
  Deno.test(`llama.cpp GGUF ${e.gguf}: the experts are held in the file's own types, gate_up's and down's`, () => {
    using file = openGguf(new URL(e.gguf, DIR).pathname);
    // The source and table loadGemma4Gguf builds the model from (the logits test above runs that model).
    const config = { ...gemma4ConfigFromGguf(file), embedScaleDtype: "f32" as const };
    using weights = ModelWeights.load(backend, gemma4GgufWeightSource(file, config), gemma4TextTable(config));
    const held: string[] = [], stored: string[] = [];
    weights.tensors.layers.forEach((l, i) => {
      assert.ok(l.moe, `layer ${i} has experts`);
      held.push(l.moe.gateUp.dtype, l.moe.down.dtype);
      stored.push(
        e.tensors[`blk.${i}.ffn_gate_up_exps.weight`].toLowerCase(),
        e.tensors[`blk.${i}.ffn_down_exps.weight`].toLowerCase(),
      );
    });
    assert.deepEqual(held, stored);
    assert.ok(!held.includes("f32"), `no expert tensor widened to f32: ${held}`);
    // llama-quantize stored down in another type (F16: its 16-wide rows fit no block), so the pairs are mixed.
    assert.ok(stored.some((t, i) => i % 2 === 0 && t !== stored[i + 1]), "the file has mixed expert pairs");
  });
}

for (const checkpoint of ["gemma4-text-e", "gemma4-text-k-eq-v", "gemma4-text-moe"]) {
  Deno.test(`llama.cpp GGUF of ${checkpoint}: the metadata gives the config.json's per-layer facts`, () => {
    const e = manifest.files.find((f) => f.checkpoint === checkpoint)!;
    using file = openGguf(new URL(e.gguf, DIR).pathname);
    const fromGguf = gemma4ConfigFromGguf(file);
    const fromJson = parseGemma4Config(
      JSON.parse(Deno.readTextFileSync(new URL(`../fixtures/${checkpoint}/config.json`, import.meta.url))),
    );
    assert.deepEqual(fromGguf.layers, fromJson.layers);
    const { eosTokenIds: _a, ...gguf } = fromGguf.text;
    const { eosTokenIds: _b, ...json } = fromJson.text;
    assert.deepEqual(gguf, json);
    // generation_config.json's stops [1, 106, 50] are found by their text (the file keeps only eos_token_id).
    assert.deepEqual(fromGguf.text.eosTokenIds, [1, 106, 50]);
  });
}

Deno.test("llama.cpp GGUF of a Gemma 4 checkpoint: the metadata rebuilds its tokenizer.json", () => {
  const e = manifest.files.find((f) => f.checkpoint === "gemma4-text-e")!;
  using file = openGguf(new URL(e.gguf, DIR).pathname);
  const got = gemma4GgufTokenizerJson(file) as unknown as TokenizerFile;
  const want = JSON.parse(
    Deno.readTextFileSync(new URL("../fixtures/gemma4-text-e/tokenizer.json", import.meta.url)),
  ) as TokenizerFile;
  assert.deepEqual(got.model.vocab, want.model.vocab);
  const pairs = (m: (string | [string, string])[]) => m.map((x) => typeof x === "string" ? x.split(" ") : x);
  assert.deepEqual(pairs(got.model.merges), pairs(want.model.merges));
  const added = (t: TokenizerFile) => t.added_tokens.map((a) => [a.id, a.content, a.special]);
  assert.deepEqual(added(got), added(want));
  for (const k of ["normalizer", "pre_tokenizer", "decoder"] as const) assert.deepEqual(got[k], want[k], k);
});

Deno.test("llama.cpp GGUF of a Gemma 4 checkpoint: chat, markers and decode as the checkpoint's own tokenizer", async () => {
  const e = manifest.files.find((f) => f.checkpoint === "gemma4-text-e")!;
  using file = openGguf(new URL(e.gguf, DIR).pathname);
  const ours = gemma4GgufTokenizer(file);
  const theirs = await Tokenizer.fromFiles(new URL("../fixtures/gemma4-text-e", import.meta.url).pathname);
  const messages = [
    { role: "system" as const, content: "Be brief." },
    { role: "user" as const, content: "Hello there, how are you?  Two  spaces\nand a newline." },
    { role: "assistant" as const, content: "Fine, thanks." },
    { role: "user" as const, content: "<|turn> is a marker; so is <turn|>." },
  ];
  const opts = { addGenerationPrompt: true };
  assert.equal(ours.applyChatTemplate(messages, opts), theirs.applyChatTemplate(messages, opts));
  const ids = theirs.encodeChat(messages, opts);
  assert.deepEqual(ours.encodeChat(messages, opts), ids);
  assert.equal(ours.decode(ids), theirs.decode(ids));
  assert.equal(ours.decode(ids, { skipSpecialTokens: true }), theirs.decode(ids, { skipSpecialTokens: true }));
});

Deno.test("Gemma 4 GGUF config: another architecture is a ConfigError naming it", () => {
  const e = manifest.files.find((f) => f.architecture === "gemma3")!;
  using file = openGguf(new URL(e.gguf, DIR).pathname);
  assert.throws(() => gemma4ConfigFromGguf(file), (err: Error) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /general\.architecture is "gemma3", not Gemma 4/);
    return true;
  });
});
