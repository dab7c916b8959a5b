/**
 * The `tokenizer.ggml.*` metadata of an open GGUF file, read into the plain {@link GgufVocab} that
 * src/tokenizer/gguf_vocab.ts turns into a tokenizer (the tokenizer layer does not read files of the formats
 * layer itself).
 * @module
 */
import type { GgufFile } from "../../formats/gguf.ts";
import type { GgufVocab } from "../../tokenizer/gguf_vocab.ts";

/** True when the file carries a vocabulary of its own. */
export function hasGgufVocab(gguf: GgufFile): boolean {
  return gguf.has("tokenizer.ggml.model") && gguf.has("tokenizer.ggml.tokens");
}

/** The vocabulary, special ids, BOS/EOS flags and chat template; wrong types fail with the key's name. */
export function readGgufVocab(gguf: GgufFile): GgufVocab {
  const id = (key: string) => gguf.has(key) ? gguf.getNumber(key) : undefined;
  const flag = (key: string) => gguf.has(key) ? gguf.getBool(key) : undefined;
  const tokens = gguf.getArray("tokenizer.ggml.tokens", "string").items as readonly string[];
  return {
    model: gguf.getString("tokenizer.ggml.model"),
    tokens,
    // llama.cpp reads a file without scores or types as all 0 / all normal (llama-vocab.cpp `load`).
    scores: gguf.has("tokenizer.ggml.scores")
      ? gguf.getArray("tokenizer.ggml.scores", "f32").items as Float32Array
      : new Float32Array(tokens.length),
    tokenTypes: gguf.has("tokenizer.ggml.token_type")
      ? gguf.getArray("tokenizer.ggml.token_type", "i32").items as Int32Array
      : new Int32Array(tokens.length).fill(1),
    bosId: id("tokenizer.ggml.bos_token_id"),
    eosId: id("tokenizer.ggml.eos_token_id"),
    unkId: id("tokenizer.ggml.unknown_token_id"),
    padId: id("tokenizer.ggml.padding_token_id"),
    addBos: flag("tokenizer.ggml.add_bos_token"),
    addEos: flag("tokenizer.ggml.add_eos_token"),
    addSpacePrefix: flag("tokenizer.ggml.add_space_prefix"),
    chatTemplate: gguf.has("tokenizer.chat_template") ? gguf.getString("tokenizer.chat_template") : undefined,
    merges: gguf.has("tokenizer.ggml.merges")
      ? gguf.getArray("tokenizer.ggml.merges", "string").items as readonly string[]
      : undefined,
  };
}
