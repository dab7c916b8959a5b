/**
 * The real Gemma 4 chat template (tests/fixtures/gemma4-tokenizer, see make_gemma4_tokenizer.py) rendered by
 * our Jinja path, against transformers' apply_chat_template text and ids: thinking on/off, system prompts,
 * tool declarations, tool calls with nested arguments, OpenAI-style and legacy tool results.
 */
import assert from "node:assert/strict";
import { Tokenizer } from "../../src/tokenizer/tokenizer.ts";
import type { ChatMessage } from "../../src/tokenizer/chat_template.ts";

const DIR = new URL("../fixtures/gemma4-tokenizer/", import.meta.url).pathname;
const ref = JSON.parse(await Deno.readTextFile(`${DIR}ids.json`));
const tokenizer = await Tokenizer.fromFiles(DIR);

for (const chat of ref.chat) {
  Deno.test(`gemma4 chat template: ${chat.name} renders and encodes as transformers`, () => {
    const { tools, enable_thinking, ...rest } = chat.kwargs as Record<string, unknown>;
    assert.deepEqual(rest, {});
    const options = {
      addGenerationPrompt: chat.add_generation_prompt,
      tools: tools as unknown[] | undefined,
      variables: enable_thinking === undefined ? undefined : { enable_thinking },
    };
    const messages = chat.messages as ChatMessage[];
    assert.equal(tokenizer.applyChatTemplate(messages, options), chat.text);
    assert.deepEqual(tokenizer.encodeChat(messages, options), chat.ids);
  });
}

Deno.test("gemma4 tokenizer: encodes, decodes and stops as transformers", () => {
  for (const e of ref.encode) {
    assert.deepEqual(tokenizer.encode(e.text), e.ids, e.text);
    assert.equal(tokenizer.decode(e.ids), e.decoded);
    assert.equal(tokenizer.decode(e.ids, { skipSpecialTokens: true }), e.decoded_skip_special);
  }
  for (const [text, id] of Object.entries(ref.special_ids)) {
    assert.equal(tokenizer.tokenToId(text), id, text);
  }
  const sorted = (ids: readonly number[]) => [...ids].sort((a, b) => a - b);
  assert.deepEqual(sorted(tokenizer.stopTokenIds), sorted(ref.stop_ids));
  assert.equal(tokenizer.specialTokenId("image_token"), ref.special_ids["<|image|>"]);
});
