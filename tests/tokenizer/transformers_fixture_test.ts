/**
 * The transformers-made fixtures of tests/fixtures/make_fixtures.py (another generator than ours, with
 * transformers' AutoTokenizer and apply_chat_template): the real Gemma 3 tokenizer, and the tiny Gemma-style
 * tokenizer every gemma3-text-* model fixture ships.
 */
import assert from "node:assert/strict";
import type { ChatMessage } from "../../src/tokenizer/chat_template.ts";
import { StreamDecoder } from "../../src/tokenizer/stream_decoder.ts";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import { gemma3 } from "./gemma3.ts";

interface TransformersFixture {
  versions: Record<string, string>;
  special_ids: Record<string, number>;
  encode: {
    text: string;
    ids: number[];
    ids_no_bos: number[];
    tokens_no_bos: string[];
    decoded: string;
    decoded_skip_special: string;
  }[];
  chat: { name: string; messages: ChatMessage[]; add_generation_prompt: boolean; text: string; ids: number[] }[];
}

const FIXTURES = new URL("../fixtures/", import.meta.url);
const readFixture = async (path: string): Promise<TransformersFixture> =>
  JSON.parse(await Deno.readTextFile(new URL(path, FIXTURES)));

function checkAgainst(tok: Tokenizer, fixture: TransformersFixture): void {
  for (const [token, id] of Object.entries(fixture.special_ids)) assert.equal(tok.tokenToId(token), id, token);
  for (const c of fixture.encode) {
    const label = JSON.stringify(c.text);
    assert.deepEqual(tok.encode(c.text), c.ids, `${label} with BOS`);
    assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids_no_bos, `${label} without BOS`);
    assert.deepEqual(c.ids_no_bos.map((id) => tok.idToToken(id)), c.tokens_no_bos, `${label} tokens`);
    assert.equal(tok.decode(c.ids), c.decoded, `${label} decoded`);
    assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded_skip_special, `${label} decoded, skip`);
    const stream = new StreamDecoder(tok);
    assert.equal(c.ids.map((id) => stream.push(id)).join("") + stream.flush(), c.decoded, `${label} streamed`);
  }
  for (const c of fixture.chat) {
    const options = { addGenerationPrompt: c.add_generation_prompt };
    assert.equal(tok.applyChatTemplate(c.messages, options), c.text, c.name);
    assert.deepEqual(tok.encodeChat(c.messages, options), c.ids, `${c.name} ids`);
  }
}

Deno.test("real Gemma 3 tokenizer matches transformers (tokenizer/gemma3_real_ids.json)", async () => {
  const fixture = await readFixture("tokenizer/gemma3_real_ids.json");
  checkAgainst(await gemma3(), fixture);
});

Deno.test("tiny Gemma-style tokenizer of the model fixtures matches transformers (tiny-tokenizer/ids.json)", async () => {
  const fixture = await readFixture("tiny-tokenizer/ids.json");
  const tok = await Tokenizer.fromFiles(new URL("tiny-tokenizer/", FIXTURES).pathname);
  checkAgainst(tok, fixture);
  assert.equal(tok.eosId, 1);
  assert.deepEqual([...tok.stopTokenIds].sort((a, b) => a - b), [1, 106]);
});

Deno.test("a model fixture directory loads with its generation_config.json", async () => {
  const tok = await Tokenizer.fromFiles(new URL("gemma3-text-mixed/", FIXTURES).pathname);
  assert.equal(tok.bosId, 2);
  assert.equal(tok.padId, 0);
  assert.ok(tok.stopTokenIds.includes(1) && tok.stopTokenIds.includes(106));
});
