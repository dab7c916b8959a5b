/**
 * Loads a Gemma 3 text checkpoint directory (config.json + safetensors, single or sharded) onto a
 * backend: config parsed and checked, every weight checked against the table in one pass, then
 * streamed to the device.
 * @module
 */
import { join } from "node:path";
import { type GgufFile, openGguf } from "../../formats/gguf.ts";
import { openSafetensorsDir } from "../../formats/safetensors.ts";
import type { Backend } from "../../runtime/backend.ts";
import { resolveMaxContext } from "../common/load.ts";
import { readConfig } from "../common/config.ts";
import type { LoadWeightsOptions } from "../common/weights.ts";
import { buildOwning, ModelWeights } from "../common/weight_table.ts";
import type { WeightSource } from "../../formats/weight_source.ts";
import { type Gemma3Model, parseGemma3Config } from "./config.ts";
import { gemma3ConfigFromGguf, ggufWeightSource } from "./gguf.ts";
import { Gemma3TextModel } from "./model.ts";
import { gemma3TextTable } from "./weights.ts";

export interface LoadGemma3Options extends LoadWeightsOptions {
  /** Context length to allocate the KV cache for. Default: the config's max_position_embeddings, at most 8192. */
  maxContext?: number;
}

export function loadGemma3Text(backend: Backend, dir: string, options: LoadGemma3Options = {}): Gemma3TextModel {
  const config = parseGemma3Config(readConfig(dir), join(dir, "config.json"));
  using source = openSafetensorsDir(dir);
  return buildGemma3(backend, config, source, options);
}

/** Checks the context, loads every weight of the table from `source`, and builds the model around them. */
export function buildGemma3(
  backend: Backend,
  config: Gemma3Model,
  source: WeightSource,
  options: LoadGemma3Options = {},
): Gemma3TextModel {
  const maxContext = resolveMaxContext(options.maxContext, config.text.maxPositionEmbeddings, source.path ?? "model");
  const weights = ModelWeights.load(backend, source, gemma3TextTable(config), options);
  return buildOwning(weights, (w) => new Gemma3TextModel(backend, config, w, maxContext));
}

/**
 * Loads Gemma 3 from a llama.cpp GGUF file, quantized weights kept quantized. llama.cpp's converter
 * stores RMSNorm weights as 1 + w, so they apply as x·w here.
 */
export function loadGemma3Gguf(
  backend: Backend,
  file: string | GgufFile,
  options: LoadGemma3Options = {},
): Gemma3TextModel {
  // An open file stays the caller's to close; a path is opened (and closed) here.
  using opened = typeof file === "string" ? openGguf(file) : undefined;
  const gguf = opened ?? (file as GgufFile);
  const config: Gemma3Model = { ...gemma3ConfigFromGguf(gguf), normMode: "scale" };
  return buildGemma3(backend, config, ggufWeightSource(gguf, config), options);
}
