/**
 * Loads a Gemma 4 text checkpoint directory (config.json + safetensors, single or sharded) onto a backend:
 * config parsed and checked, every weight checked against the table in one pass (and no projection the
 * config says is absent), then streamed to the device.
 * @module
 */
import { join } from "node:path";
import { openSafetensorsDir } from "../../formats/safetensors.ts";
import type { Backend } from "../../runtime/backend.ts";
import { resolveMaxContext } from "../common/load.ts";
import { buildOwning, ModelWeights } from "../common/weight_table.ts";
import type { LoadWeightsOptions } from "../common/weights.ts";
import type { WeightSource } from "../../formats/weight_source.ts";
import { readConfig } from "../common/config.ts";
import { type Gemma4Model, parseGemma4Config } from "./config.ts";
import { Gemma4TextModel } from "./model.ts";
import { gemma4TextTable, unexpectedGemma4Weights } from "./weights.ts";
import { type GgufFile, openGguf } from "../../formats/gguf.ts";
import { gemma4ConfigFromGguf, gemma4GgufWeightSource } from "./gguf.ts";

export interface LoadGemma4Options extends LoadWeightsOptions {
  /** Context length to allocate the KV cache for. Default: the config's max_position_embeddings, at most 8192. */
  maxContext?: number;
}

export function loadGemma4Text(backend: Backend, dir: string, options: LoadGemma4Options = {}): Gemma4TextModel {
  const config = parseGemma4Config(readConfig(dir), join(dir, "config.json"));
  using source = openSafetensorsDir(dir);
  return buildGemma4(backend, config, source, options);
}

/** Checks the context, loads every weight of the table from `source`, and builds the model around them. */
export function buildGemma4(
  backend: Backend,
  config: Gemma4Model,
  source: WeightSource,
  options: LoadGemma4Options = {},
): Gemma4TextModel {
  const maxContext = resolveMaxContext(options.maxContext, config.text.maxPositionEmbeddings, source.path ?? "model");
  unexpectedGemma4Weights(config, source);
  const weights = ModelWeights.load(backend, source, gemma4TextTable(config), options);
  return buildOwning(weights, (w) => new Gemma4TextModel(backend, config, w, maxContext));
}

/**
 * Loads Gemma 4 text from a llama.cpp GGUF file (general.architecture "gemma4"), quantized weights kept
 * quantized. An open file stays the caller's to close; a path is opened (and closed) here.
 */
export function loadGemma4Gguf(
  backend: Backend,
  file: string | GgufFile,
  options: LoadGemma4Options = {},
): Gemma4TextModel {
  using opened = typeof file === "string" ? openGguf(file) : undefined;
  const gguf = opened ?? (file as GgufFile);
  const config = { ...gemma4ConfigFromGguf(gguf), embedScaleDtype: "f32" as const };
  return buildGemma4(backend, config, gemma4GgufWeightSource(gguf, config), options);
}
