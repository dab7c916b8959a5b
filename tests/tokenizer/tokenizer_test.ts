import assert from "node:assert/strict";
import { join } from "node:path";
import { GemmakitError } from "../../src/errors.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { thrown } from "../helpers.ts";
import { gemma3, GEMMA3_DIR, REFERENCE } from "./gemma3.ts";

async function sha256(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A checkpoint folder with the package's two files and whatever else a test writes into it. */
async function checkpointDir(extra: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "gemmakit_tok_" });
  for (const name of ["tokenizer.json", "tokenizer_config.json"]) {
    await Deno.symlink(join(GEMMA3_DIR, name), join(dir, name));
  }
  for (const [name, text] of Object.entries(extra)) await Deno.writeTextFile(join(dir, name), text);
  return dir;
}

Deno.test("the reference was made from these very files", async () => {
  assert.equal(await sha256(join(GEMMA3_DIR, "tokenizer.json")), REFERENCE.tokenizer_json_sha256);
  assert.equal(await sha256(join(GEMMA3_DIR, "tokenizer_config.json")), REFERENCE.tokenizer_config_sha256);
});

Deno.test("vocabulary facts match the Rust tokenizers crate", async () => {
  const tok = await gemma3();
  assert.equal(tok.vocabSize, REFERENCE.vocab_size);
  assert.equal(tok.vocabSize, 262145);
  for (const [token, id] of Object.entries(REFERENCE.special_ids)) {
    assert.equal(tok.tokenToId(token), id, token);
    assert.equal(tok.idToToken(id), token, `id ${id}`);
    assert.ok(tok.isSpecialId(id), `${token} is special`);
  }
  assert.equal(tok.idToToken(238), "<0x00>");
  assert.ok(tok.isByteFallbackId(238) && tok.isByteFallbackId(493) && !tok.isByteFallbackId(494));
  assert.equal(tok.idToToken(tok.vocabSize), undefined);
});

Deno.test("encode gives the reference ids for every string, with and without BOS", async () => {
  const tok = await gemma3();
  for (const c of REFERENCE.encode) {
    const label = JSON.stringify(c.text);
    assert.deepEqual(tok.encode(c.text), c.ids, `${label} with BOS`);
    assert.deepEqual(tok.encode(c.text, { addSpecialTokens: true }), c.ids, `${label} with BOS (explicit)`);
    assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids_no_special, `${label} without BOS`);
    assert.deepEqual(c.ids_no_special.map((id) => tok.idToToken(id)), c.tokens, `${label} tokens`);
  }
  assert.deepEqual(tok.encode("Hello"), [2, 9259]);
});

Deno.test("decode round-trips every reference string and matches the reference text", async () => {
  const tok = await gemma3();
  for (const c of REFERENCE.encode) {
    assert.equal(tok.decode(c.ids_no_special), c.decoded, JSON.stringify(c.text));
    assert.equal(tok.decode(c.ids_no_special), c.text, `${JSON.stringify(c.text)} round trip`);
  }
});

Deno.test("decode matches the reference on byte runs, specials and random ids", async () => {
  const tok = await gemma3();
  for (const c of REFERENCE.decode) {
    const label = JSON.stringify(c.ids);
    assert.equal(tok.decode(c.ids), c.text, label);
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: false }), c.text, label);
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.text_skip_special, `${label} skipping specials`);
    assert.equal(tok.decode(Int32Array.from(c.ids)), c.text, `${label} as Int32Array`);
  }
  // Rust's ByteFallback rule: an invalid run is one U+FFFD per byte (tokenizers.js alone would give "€�").
  assert.equal(tok.decode([464, 368, 410, 464]), "\uFFFD".repeat(4));
  assert.equal(tok.decode([]), "");
  const err = thrown(() => tok.decode([5, -1]), GemmakitError);
  assert.equal(err.op, "tokenizer.decode");
  assert.match(err.message, /ids\[1\] is -1/);
  assert.throws(() => tok.decode([1.5]), GemmakitError);
});

Deno.test("special tokens, BOS/EOS/PAD and stop ids come from the configs", async () => {
  const tok = await gemma3();
  assert.equal(tok.bosId, 2);
  assert.equal(tok.padId, 0);
  assert.equal(tok.unkId, 3);
  // This package's tokenizer_config.json (an -it checkpoint) names <end_of_turn> as its eos_token.
  assert.equal(tok.specialTokens.eos_token, "<end_of_turn>");
  assert.equal(tok.eosId, 106);
  assert.equal(tok.tokenToId("<end_of_turn>"), 106);
  assert.ok(tok.stopTokenIds.includes(1), "stops on <eos>");
  assert.ok(tok.stopTokenIds.includes(106), "stops on <end_of_turn>");
  assert.deepEqual([...tok.stopTokenIds].sort((a, b) => a - b), [1, 106]);
  assert.equal(tok.specialTokens.image_token, "<image_soft_token>");
  assert.equal(tok.specialTokens.boi_token, "<start_of_image>");
  assert.equal(tok.specialTokens.eoi_token, "<end_of_image>");
  assert.equal(tok.specialTokenId("image_token"), 262144);
  assert.equal(tok.specialTokenId("boi_token"), 255999);
  assert.equal(tok.specialTokenId("no_such_token"), undefined);
});

Deno.test("fromFiles reads generation_config.json and chat_template.jinja", async () => {
  const dir = await checkpointDir({
    "generation_config.json": JSON.stringify({ eos_token_id: [1, 106, 50] }),
    // Ignored: this tokenizer_config.json has added_tokens_decoder (transformers 5.17 keeps eos <end_of_turn>).
    "special_tokens_map.json": JSON.stringify({ eos_token: { content: "<eos>", lstrip: false } }),
    "chat_template.jinja": "{% for m in messages %}[{{ m.role }}]{{ m.content }}{% endfor %}{{ eos_token }}",
  });
  try {
    const tok = await Tokenizer.fromFiles(dir);
    assert.equal(tok.eosId, 106);
    assert.deepEqual([...tok.stopTokenIds].sort((a, b) => a - b), [1, 50, 106]);
    assert.equal(tok.applyChatTemplate([{ role: "user", content: "hi" }]), "[user]hi<end_of_turn>");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// Expected values below were observed with transformers 5.17.0 AutoTokenizer on the same edited files.
Deno.test("BOS/EOS follow the tokenizer.json post-processor; the config flags do not (transformers 5)", async () => {
  const tokenizerJson = JSON.parse(await Deno.readTextFile(join(GEMMA3_DIR, "tokenizer.json")));
  const config = JSON.parse(await Deno.readTextFile(join(GEMMA3_DIR, "tokenizer_config.json")));
  assert.deepEqual(Tokenizer.fromJSON(tokenizerJson, { ...config, add_bos_token: false }).encode("Hello"), [2, 9259]);
  assert.deepEqual(Tokenizer.fromJSON(tokenizerJson, { ...config, add_eos_token: true }).encode("Hello"), [2, 9259]);
  const noPostProcessor = Tokenizer.fromJSON({ ...tokenizerJson, post_processor: null }, config);
  assert.deepEqual(noPostProcessor.encode("Hello"), [9259]);
});

Deno.test("special_tokens_map.json counts only without added_tokens_decoder; <mask> is special", async () => {
  const tokenizerJson = JSON.parse(await Deno.readTextFile(join(GEMMA3_DIR, "tokenizer.json")));
  const { added_tokens_decoder: _, ...legacy } = JSON.parse(
    await Deno.readTextFile(join(GEMMA3_DIR, "tokenizer_config.json")),
  );
  const tok = Tokenizer.fromJSON(tokenizerJson, legacy, { specialTokensMap: { eos_token: { content: "<eos>" } } });
  assert.equal(tok.eosId, 1);
  // GemmaTokenizer's default mask_token makes <mask> special, though tokenizer.json marks it special: false.
  const real = await gemma3();
  assert.equal(real.specialTokens.mask_token, "<mask>");
  assert.equal(real.decode([4, 5, 6, 9259], { skipSpecialTokens: true }), "[multimodal]<unused0>Hello");
});

Deno.test("loading problems are GemmakitErrors that name the file", async () => {
  const missing = await Tokenizer.fromFiles("/nonexistent/checkpoint").catch((e) => e);
  assert.ok(missing instanceof GemmakitError);
  assert.equal(missing.op, "tokenizer.load");
  assert.match(missing.message, /\/nonexistent\/checkpoint\/tokenizer\.json/);
  const dir = await checkpointDir({ "generation_config.json": "{ not json" });
  try {
    const bad = await Tokenizer.fromFiles(dir).catch((e) => e);
    assert.ok(bad instanceof GemmakitError);
    assert.match(bad.message, /generation_config\.json is not valid JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.throws(() => Tokenizer.fromJSON({} as never), GemmakitError);
});
