/**
 * The GGUF → tokenizer.json conversion on a small made-up vocabulary: merge ranking, llama.cpp's space-spelled
 * user-defined tokens, BOS/EOS flags and the errors for metadata it cannot use. The real-file check is
 * tests/models/gemma3_gguf_tokenizer_test.ts.
 */
import assert from "node:assert/strict";
import { GemmakitError } from "../../src/errors.ts";
import { type GgufVocab, mergesFromScores, tokenizerJsonFromGguf } from "../../src/tokenizer/gguf_vocab.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";

// ids:        0        1        2        3      4    5    6    7     8      9      10
const tokens = ["<unk>", "<bos>", "<eos>", "  ", "a", "b", "c", "ab", "abc", "bc", "<0x41>"];
const types = [3, 3, 3, 4, 1, 1, 1, 1, 1, 1, 6];
const scores = [0, 0, 0, -1000, -1, -2, -3, -4, -5, -6, 0];
const vocab = (more: Partial<GgufVocab> = {}): GgufVocab => ({
  model: "llama",
  tokens,
  scores,
  tokenTypes: types,
  unkId: 0,
  bosId: 1,
  eosId: 2,
  addSpacePrefix: false,
  ...more,
});

Deno.test("merges: every split into two entries, by score, then longer left, then longer right piece", () => {
  const restored = tokens.map((t, i) => types[i] === 4 ? t.replaceAll(" ", "▁") : t);
  // "▁▁" is user-defined: score 0 (not llama.cpp's -1000), so its merge comes first.
  assert.deepEqual(mergesFromScores([...restored, "▁"], [...scores, -0.5], [...types, 1]), [
    ["▁", "▁"],
    ["a", "b"], // ab, -4
    ["ab", "c"], // abc, -5: the longer left piece before ["a", "bc"]
    ["a", "bc"],
    ["b", "c"], // bc, -6
  ]);
});

Deno.test("a GGUF vocabulary tokenizes with its merges, byte fallback, BOS and the restored ▁ spelling", () => {
  const json = tokenizerJsonFromGguf(vocab());
  assert.equal((json.model as unknown as { vocab: Record<string, number> }).vocab["▁▁"], 3);
  const tok = Tokenizer.fromJSON(json, { bos_token: "<bos>", eos_token: "<eos>", unk_token: "<unk>" });
  assert.deepEqual(tok.encode("abc"), [1, 8]);
  assert.deepEqual(tok.encode("bca", { addSpecialTokens: false }), [9, 4]);
  assert.deepEqual(tok.encode("A", { addSpecialTokens: false }), [10]); // byte fallback
  assert.deepEqual(tok.encode("  "), [1, 3]); // spaces normalize to ▁▁, the user-defined token
  assert.equal(tok.decode([1, 8, 3]), "<bos>abc  ");
  assert.deepEqual(Tokenizer.fromJSON(tokenizerJsonFromGguf(vocab({ addBos: false, addEos: true }))).encode("a"), [
    4,
    2,
  ]);
});

Deno.test("metadata the conversion cannot use fails with the key and a hint", () => {
  assert.throws(
    () => tokenizerJsonFromGguf(vocab({ model: "gpt2" })),
    (e: Error) =>
      e instanceof GemmakitError && /tokenizer\.ggml\.model is "gpt2"/.test(e.message) &&
      /tokenizer\.json/.test(e.hint ?? ""),
  );
  assert.throws(() => tokenizerJsonFromGguf(vocab({ scores: [0] })), /11 entries but scores has 1/);
  assert.throws(() => tokenizerJsonFromGguf(vocab({ bosId: 99 })), /bos_token_id is 99/);
});
