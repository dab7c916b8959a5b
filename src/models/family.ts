/**
 * What a model family is to the rest of gemmakit: how it recognises a checkpoint, and how it loads one into
 * the parts a Model is made of (the text/vision graphs, the tokenizer, its prompt layout for media, its
 * response parser). Each family folder (src/models/<family>/family.ts) implements this; the registry lists them.
 * @module
 */
import type { ModelParts } from "../generate/model.ts";
import type { Backend } from "../runtime/backend.ts";
import type { Json } from "./common/config.ts";
import type { GgufFile } from "../formats/gguf.ts";

/** A checkpoint as the registry sees it before any family reads it. */
export type Checkpoint =
  /** A Hugging Face checkpoint directory and its parsed config.json. */
  | { format: "hf"; path: string; config: Json }
  /**
   * A GGUF file, its `general.architecture` (undefined when the file has none), and the file already open (its
   * header parsed once: ~150 ms for a 262k-token vocabulary), valid while `load` runs.
   */
  | { format: "gguf"; path: string; architecture: string | undefined; file: GgufFile };

/** Options every family's loader takes. */
export interface FamilyLoadOptions {
  /** Context length (prompt + output) to allocate the KV cache for. */
  maxContext?: number;
  /** Loading progress, in bytes of weights read. */
  onProgress?: (loadedBytes: number, totalBytes: number, tensor: string) => void;
  /** Byte bound of the vision-encoder cache (models with a vision tower). */
  visionCacheBytes?: number;
  /**
   * llama.cpp's vision projector file (mmproj) for a GGUF model, already open (its header parsed), valid while
   * `load` runs; the family checks that its projector type and dimensions fit the model.
   */
  mmproj?: GgufFile;
}

export interface Family {
  /** Short name, as in messages (the folder's name). */
  readonly name: string;
  /** What it reads, for the error when no family recognises a checkpoint: the model_type values and GGUF architectures. */
  readonly describes: string;
  /** Whether this family reads the checkpoint (HF model_type, or GGUF architecture). */
  recognizes(checkpoint: Checkpoint): boolean;
  /** Loads the checkpoint onto `backend`. On failure nothing stays allocated on the backend. */
  load(checkpoint: Checkpoint, backend: Backend, options: FamilyLoadOptions): Promise<ModelParts>;
}
