/**
 * `loadModel(path)`: reads config.json, picks the model family, loads weights and tokenizer.
 * @module
 */
import { join } from "node:path";
import { Backend } from "../runtime/backend.ts";
import type { BackendChoice } from "../ffi/library.ts";
import { Model } from "../generate/model.ts";
import { samplingDefaults } from "../generate/options.ts";
import { Tokenizer } from "../tokenizer/tokenizer.ts";
import { ConfigError } from "./gemma3/config.ts";
import { loadGemma3Text, readConfig } from "./gemma3/load.ts";

export interface LoadModelOptions {
  /** A Backend to load onto, or which one to open ("auto" by default). */
  backend?: Backend | BackendChoice;
  /** Context length (prompt + output) to allocate the KV cache for. Default min(max_position_embeddings, 8192). */
  maxContext?: number;
  /** Loading progress, in bytes of weights read. */
  onProgress?: (loadedBytes: number, totalBytes: number, tensor: string) => void;
}

function readOptionalJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return undefined;
  }
}

/**
 * Loads a Hugging Face checkpoint directory (config.json, tokenizer files, safetensors).
 *
 * @example
 * ```ts
 * using model = await loadModel("tests/fixtures/gemma3-text-mixed", { backend: "cpu" });
 * const r = await model.generate({ messages: [{ role: "user", content: "hi" }] }, { maxTokens: 8 });
 * console.log(r.text, r.timings.decodeTokensPerSecond);
 * ```
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<Model> {
  const config = readConfig(path) as Record<string, unknown>;
  const family = config.model_type;
  if (family !== "gemma3_text" && family !== "gemma3") {
    throw new ConfigError(join(path, "config.json"), [`model_type ${JSON.stringify(family)} is not supported (yet)`]);
  }
  const tokenizer = await Tokenizer.fromFiles(path);
  const owned = !(options.backend instanceof Backend);
  const backend = options.backend instanceof Backend ? options.backend : Backend.open({ backend: options.backend });
  try {
    const lm = loadGemma3Text(backend, path, { maxContext: options.maxContext, onProgress: options.onProgress });
    const dispose = lm.dispose.bind(lm);
    lm.dispose = () => {
      dispose();
      if (owned) backend.dispose();
    };
    return new Model(lm, tokenizer, samplingDefaults(readOptionalJson(join(path, "generation_config.json"))));
  } catch (e) {
    if (owned) backend.dispose();
    throw e;
  }
}
