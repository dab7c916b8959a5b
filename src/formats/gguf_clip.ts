/**
 * llama.cpp's vision projector files (`mmproj-*.gguf`): a GGUF of `general.architecture` "clip" (and
 * `general.type` "mmproj") holding a vision tower and its projector, beside a text-model GGUF. This module reads
 * what every projector type shares — the `clip.vision.*` hyperparameters and the projector type — and turns the
 * file into a WeightSource under the names a family chooses, with the host-side layout fixes a family asks for.
 * Each family maps its own projector type (tensor names, norms, layouts) onto its vision weight table.
 *
 * References (ggml-org/llama.cpp @0c1e57098): gguf-py/gguf/constants.py (`Keys.ClipVision`, `MODEL_TENSOR.V_*`
 * and their names `v.patch_embd`, `v.blk.{bid}.attn_q`, `mm.input_projection`, …), conversion/base.py
 * `MmprojModel.set_gguf_parameters` (the keys written for every projector), tools/mtmd/clip.cpp `clip_model_loader`
 * (`KEY_PROJ_TYPE` read as `clip.vision.projector_type`, falling back to the older `clip.projector_type`).
 * @module
 */
import { FormatError } from "../errors.ts";
import type { GgufFile, GgufValue } from "./gguf.ts";
import { type RenamedGgufSource, renamedGgufSource, type TensorFix } from "./gguf_source.ts";

/** Whether a GGUF is a llama.cpp vision projector (mmproj) file rather than a model. */
export function isMmprojGguf(gguf: GgufFile): boolean {
  const arch = gguf.metadata.get("general.architecture");
  return arch?.type === "string" && arch.value === "clip";
}

/**
 * The vision projector type of an mmproj file (`clip.vision.projector_type`, or the older `clip.projector_type`
 * that older files carry), as each family names its own; undefined when the file names none.
 */
export function clipProjectorType(gguf: GgufFile): string | undefined {
  for (const key of ["clip.vision.projector_type", "clip.projector_type"]) {
    const v = gguf.metadata.get(key);
    if (v?.type === "string") return v.value;
  }
  return undefined;
}

/** The `clip.vision.*` hyperparameters every vision projector file carries (MmprojModel.set_gguf_parameters). */
export interface ClipVisionHparams {
  /** clip.vision.image_size (Gemma 4 files write a placeholder 224: its images are of any size). */
  imageSize: number;
  patchSize: number;
  /** clip.vision.embedding_length: the tower's width. */
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** clip.vision.projection_dim: the text model's width the projector writes. */
  projectionDim: number;
  /** clip.vision.attention.layer_norm_epsilon, as the shortest decimal of its f32; undefined when absent. */
  layerNormEps: number | undefined;
  /** clip.vision.projector.scale_factor (llama.cpp's n_merge), when written. */
  scaleFactor: number | undefined;
  imageMean: number[] | undefined;
  imageStd: number[] | undefined;
}

/** The shortest decimal with the same f32 (the converter stored e.g. 1e-6 as f32 9.99999997e-7). */
function shortestF32(x: number): number {
  for (let digits = 1; digits < 17; digits++) {
    const d = Number(x.toPrecision(digits));
    if (Math.fround(d) === x) return d;
  }
  return x;
}

/**
 * Reads the `clip.vision.*` hyperparameters of an mmproj file. Throws FormatError listing every missing or
 * mistyped key (and one naming the file's architecture when it is not an mmproj file at all).
 */
export function readClipVision(gguf: GgufFile): ClipVisionHparams {
  if (!isMmprojGguf(gguf)) {
    const arch = gguf.metadata.get("general.architecture");
    throw new FormatError("mmproj", gguf.path, [
      `general.architecture is ${arch?.type === "string" ? JSON.stringify(arch.value) : "missing"}, not "clip": ` +
      "not a vision projector (mmproj) file",
    ]);
  }
  const problems: string[] = [];
  const num = (key: string, required = true): number | undefined => {
    const v: GgufValue | undefined = gguf.metadata.get(`clip.vision.${key}`);
    if (v === undefined) {
      if (required) problems.push(`clip.vision.${key} is missing`);
      return undefined;
    }
    const x = v.type === "array" ? undefined : v.value;
    if (v.type === "f32") return shortestF32(x as number);
    if (typeof x === "number") return x;
    if (typeof x === "bigint" && Number.isSafeInteger(Number(x))) return Number(x);
    problems.push(`clip.vision.${key} is ${v.type}, not a number`);
    return undefined;
  };
  const floats = (key: string): number[] | undefined => {
    const v = gguf.metadata.get(`clip.vision.${key}`);
    if (v === undefined) return undefined;
    if (v.type !== "array" || v.itemType !== "f32") {
      problems.push(`clip.vision.${key} is not an array of f32`);
      return undefined;
    }
    return Array.from(v.items as ArrayLike<number>, shortestF32);
  };
  const hasVision = gguf.metadata.get("clip.has_vision_encoder");
  if (hasVision?.type === "bool" && hasVision.value === false) {
    problems.push("clip.has_vision_encoder is false: the file holds no vision tower (an audio-only projector?)");
  }
  const h = {
    imageSize: num("image_size"),
    patchSize: num("patch_size"),
    hiddenSize: num("embedding_length"),
    intermediateSize: num("feed_forward_length"),
    numHiddenLayers: num("block_count"),
    numAttentionHeads: num("attention.head_count"),
    projectionDim: num("projection_dim"),
    layerNormEps: num("attention.layer_norm_epsilon", false),
    scaleFactor: num("projector.scale_factor", false),
    imageMean: floats("image_mean"),
    imageStd: floats("image_std"),
  };
  if (problems.length > 0) throw new FormatError("mmproj", gguf.path, problems);
  return h as ClipVisionHparams;
}

/** A host-side layout fix of one mmproj tensor (see renamedGgufSource). */
export type ClipTensorFix = TensorFix;

/** An mmproj file seen as a WeightSource under a family's names. */
export type ClipWeightSource = RenamedGgufSource;

/**
 * The mmproj file's tensors under the names `rename` gives (tensors it returns undefined for keep their GGUF
 * names, so the weight loader lists them as unclaimed), with the layout fixes of `fixes` (by GGUF name) applied
 * on the host as each tensor loads. The file stays owned by the caller.
 */
export function clipWeightSource(
  gguf: GgufFile,
  rename: (ggufName: string) => string | undefined,
  fixes: Readonly<Record<string, ClipTensorFix>> = {},
): ClipWeightSource {
  return renamedGgufSource(gguf, rename, { format: "mmproj", fixes });
}

/** A token's id in a GGUF's vocabulary (`tokenizer.ggml.tokens`), or undefined when it has none by that text. */
export function ggufTokenId(gguf: GgufFile, text: string): number | undefined {
  const tokens = gguf.metadata.get("tokenizer.ggml.tokens");
  if (tokens?.type !== "array" || tokens.itemType !== "string") return undefined;
  const i = (tokens.items as readonly string[]).indexOf(text);
  return i < 0 ? undefined : i;
}
