/**
 * Which vision projector (mmproj) file goes with a GGUF model, for every family: the one named, or the one found
 * beside the model.
 *
 * The rule: for a model file `DIR/NAME.gguf` without an explicit mmproj, every file of DIR whose name starts with
 * "mmproj" and ends with ".gguf" (both case-insensitive; llama.cpp's, Ollama's and LM Studio's downloads are named
 * `mmproj-<model>-<type>.gguf`) other than the model itself is a candidate. None: the model loads text-only. One:
 * it is loaded with the model. Several: an MmprojError (kind "ambiguous") lists them — name one with `--mmproj FILE`
 * (`loadModel(path, { mmproj })`), or turn the search off with `--no-mmproj` (`mmproj: false`).
 * @module
 */
import { basename, dirname, join, resolve } from "node:path";
import { MmprojError } from "../../errors.ts";
import { type GgufFile, openGguf } from "../../formats/gguf.ts";
import { clipProjectorType, type ClipVisionHparams, isMmprojGguf, readClipVision } from "../../formats/gguf_clip.ts";

const MMPROJ_NAME = /^mmproj.*\.gguf$/i;

/**
 * The mmproj file beside the GGUF model `modelPath` (the rule above), or undefined when there is none. Throws
 * MmprojError (kind "ambiguous") listing the candidates when there are several.
 *
 * @example
 * ```ts
 * // models/gemma-3-4b-it-Q4_K_M.gguf and models/mmproj-gemma-3-4b-it-f16.gguf
 * findMmproj("models/gemma-3-4b-it-Q4_K_M.gguf"); // "models/mmproj-gemma-3-4b-it-f16.gguf"
 * ```
 */
export function findMmproj(modelPath: string): string | undefined {
  const dir = dirname(modelPath);
  const self = resolve(modelPath);
  const candidates: string[] = [];
  try {
    for (const entry of Deno.readDirSync(dir)) {
      if (!MMPROJ_NAME.test(entry.name) || entry.isDirectory) continue;
      const path = join(dir, entry.name);
      if (resolve(path) !== self) candidates.push(path);
    }
  } catch {
    return undefined; // an unreadable folder has no mmproj to offer
  }
  candidates.sort();
  if (candidates.length <= 1) return candidates[0];
  throw new MmprojError(
    "ambiguous",
    `${candidates.length} vision projector files beside ${modelPath}: ${candidates.map((c) => basename(c)).join(", ")}`,
    { model: modelPath, candidates },
    "name one with --mmproj FILE (loadModel(path, { mmproj: FILE })), or load text-only with --no-mmproj " +
      "(mmproj: false)",
  );
}

/**
 * Opens a vision projector file for the model `modelPath`: MmprojError (kind "not_mmproj") naming both when the
 * file is a GGUF of another kind (a model given as the projector, say).
 */
export function openMmproj(path: string, modelPath: string): GgufFile {
  const file = openGguf(path);
  if (isMmprojGguf(file)) return file;
  const arch = file.metadata.get("general.architecture");
  file.close();
  throw new MmprojError(
    "not_mmproj",
    `${path} is not a vision projector (mmproj) file: its general.architecture is ` +
      `${arch?.type === "string" ? JSON.stringify(arch.value) : "missing"}, not "clip" (model: ${modelPath})`,
    { model: modelPath, mmproj: path },
    "an mmproj file is the second GGUF llama.cpp's converter writes with --mmproj (mmproj-*.gguf)",
  );
}

/** The error for an mmproj given with a checkpoint directory (whose config.json already says what it has). */
export function mmprojNeedsGguf(modelPath: string, mmprojPath: string): MmprojError {
  return new MmprojError(
    "unsupported",
    `${mmprojPath} is a vision projector for a GGUF model, but ${modelPath} is a checkpoint directory ` +
      "(its vision tower, if any, is in its own safetensors)",
    { model: modelPath, mmproj: mmprojPath },
    "use --mmproj with a .gguf model, or leave it out for a checkpoint directory",
  );
}

/** The error for a vision projector file given as the model. */
export function projectorAsModel(path: string): MmprojError {
  return new MmprojError(
    "projector_as_model",
    `${path} is a vision projector (mmproj) file, not a model: it holds the vision tower only`,
    { model: path, mmproj: path },
    "pass the text model's GGUF as the model (--model) and this file as its projector (--mmproj FILE)",
  );
}

const MISMATCH_HINT = "pass the mmproj file converted from the same checkpoint as the model (--mmproj FILE), " +
  "or load the model text-only (--no-mmproj; mmproj: false)";

/**
 * The projector's clip.vision settings, once it is checked to be of the family's projector `type` and to project
 * to the text model's width `hiddenSize` (`widthKey` names where the model states it, for the message); else an
 * MmprojError ("mismatch") naming both files.
 */
export function readMatchingProjector(
  mmproj: GgufFile,
  model: { path: string; family: string; type: string; hiddenSize: number; widthKey?: string },
): ClipVisionHparams {
  const type = clipProjectorType(mmproj);
  const files = { model: model.path, mmproj: mmproj.path };
  if (type !== model.type) {
    throw new MmprojError(
      "mismatch",
      `${mmproj.path} is a vision projector of type ${JSON.stringify(type ?? "(none)")}, but the model ${model.path} ` +
        `is ${model.family}, whose projector type is "${model.type}"`,
      files,
      MISMATCH_HINT,
    );
  }
  const h = readClipVision(mmproj);
  if (h.projectionDim !== model.hiddenSize) {
    throw new MmprojError(
      "mismatch",
      `${mmproj.path} projects images to width ${h.projectionDim} (clip.vision.projection_dim), but the model ` +
        `${model.path} has width ${model.hiddenSize}${model.widthKey ? ` (${model.widthKey})` : ""}`,
      files,
      MISMATCH_HINT,
    );
  }
  return h;
}
