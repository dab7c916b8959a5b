/**
 * Text front matter: the tokenizer, the chat template and the streaming detokenizer. Re-exports only.
 *
 * @example
 * ```ts
 * import { StreamDecoder, Tokenizer } from "./src/tokenizer/mod.ts";
 *
 * const tokenizer = await Tokenizer.fromFiles("models/gemma-3-270m-it");
 * const prompt = tokenizer.encodeChat([{ role: "user", content: "Hi!" }], { addGenerationPrompt: true });
 * const stream = new StreamDecoder(tokenizer, { skipSpecialTokens: true });
 * ```
 * @module
 */
export {
  type DecodeOptions,
  type EncodeOptions,
  Tokenizer,
  type TokenizerExtras,
  type TokenizerJson,
} from "./tokenizer.ts";
export {
  type ChatContentPart,
  type ChatMessage,
  ChatTemplate,
  type ChatTemplateOptions,
  type NamedTemplate,
  validateMessages,
} from "./chat_template.ts";
export { type StreamDecodable, StreamDecoder, type StreamDecoderOptions } from "./stream_decoder.ts";
export { type TokenizerConfig, type TokenSpec } from "./special_tokens.ts";
