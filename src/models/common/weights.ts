/**
 * Weights are a table (gemma.cpp `tensor_info.cc`): one WeightSpec row per tensor a model needs. One loader
 * checks every row against the checkpoint's listing in one pass and reports every mismatch in one error, then
 * streams the tensors to the device one at a time.
 *
 * The checkpoint is a `WeightSource` (a tensor listing plus `loadTensor`): safetensors files and shard
 * directories are one (src/formats/safetensors.ts), a GGUF reader can be another.
 * @module
 */
import { WeightsError } from "../../errors.ts";
import type { Backend } from "../../runtime/backend.ts";
import { type DType, FLOAT_DTYPES } from "../../runtime/dtype.ts";
import type { Tensor } from "../../runtime/tensor.ts";
import type { SourceTensor, WeightSource } from "../../formats/weight_source.ts";

export type { SourceTensor, WeightSource };

/** One row of a weight table. */
export interface WeightSpec {
  /** The exact checkpoint (HF) name; `{i}` patterns must be expanded first (see `forLayers`). */
  name: string;
  /** The exact shape expected (from the config). */
  shape: readonly number[];
  /** Stored dtypes accepted. Default: f32, f16, bf16. */
  dtypes?: readonly string[];
  /** A missing required row is an error; a missing optional one is left out of the result. Default: true. */
  required?: boolean;
  /** Other names the same tensor goes by in some exports; `name` first, then these in order: first match wins. */
  aliases?: readonly string[];
  /** Convert on load to this float dtype (e.g. norm weights the kernels want in f32). Default: as stored. */
  loadAs?: DType;
}

/** What `checkWeights` found. */
export interface WeightsCheck {
  /** Row name → the checkpoint tensor that fills it (missing optional rows are absent). */
  readonly found: ReadonlyMap<string, SourceTensor>;
  /** Checkpoint tensors no row claims: a warning (a tied head, an unused tower), not an error. */
  readonly unclaimed: readonly string[];
}

/** Options of `loadWeights`. */
export interface LoadWeightsOptions {
  /** Called after each tensor is on the device; bytes count stored bytes read from the checkpoint. */
  onProgress?(loadedBytes: number, totalBytes: number, name: string): void;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/**
 * Expands rows whose names contain `{i}` (in name or aliases) once per layer; other rows pass through.
 *
 * @example
 * ```ts
 * const rows = forLayers(2, [{ name: "model.layers.{i}.input_layernorm.weight", shape: [640] }]);
 * // model.layers.0.input_layernorm.weight, model.layers.1.input_layernorm.weight
 * ```
 */
export function forLayers(layers: number, rows: readonly WeightSpec[]): WeightSpec[] {
  return rows.flatMap((row) => {
    if (!row.name.includes("{i}") && !row.aliases?.some((a) => a.includes("{i}"))) return [row];
    return Array.from({ length: layers }, (_, i) => {
      const at = (s: string) => s.replaceAll("{i}", String(i));
      return { ...row, name: at(row.name), aliases: row.aliases?.map(at) };
    });
  });
}

/**
 * Checks every row against the source's listing in one pass. Throws one WeightsError listing every problem
 * (missing required tensor, wrong shape, disallowed dtype, rows clashing over one tensor); returns the matches
 * and the tensors no row claims.
 *
 * @example
 * ```ts
 * const { unclaimed } = checkWeights(ckpt, [{ name: "model.norm.weight", shape: [640] }]);
 * if (unclaimed.length) console.warn(`ignoring ${unclaimed.length} tensors`);
 * ```
 */
export function checkWeights(source: WeightSource, specs: readonly WeightSpec[]): WeightsCheck {
  const listing = new Map(source.tensors.map((t) => [t.name, t]));
  const problems: string[] = [];
  const found = new Map<string, SourceTensor>();
  const claimedBy = new Map<string, string>();
  const rows = new Set<string>();
  for (const spec of specs) {
    if (rows.has(spec.name)) {
      problems.push(`${spec.name}: row appears twice in the weight table`);
      continue;
    }
    rows.add(spec.name);
    const candidates = [spec.name, ...(spec.aliases ?? [])];
    const tensor = candidates.map((n) => listing.get(n)).find((t) => t !== undefined);
    if (!tensor) {
      if (spec.required ?? true) {
        const also = spec.aliases?.length ? ` (nor ${spec.aliases.join(", ")})` : "";
        problems.push(`${spec.name}: missing${also}; expected ${shapeText(spec.shape)}`);
      }
      continue;
    }
    const label = tensor.name === spec.name ? spec.name : `${spec.name} (as ${tensor.name})`;
    const owner = claimedBy.get(tensor.name);
    if (owner !== undefined) {
      problems.push(`${label}: tensor ${tensor.name} is already claimed by row ${owner}`);
      continue;
    }
    claimedBy.set(tensor.name, spec.name);
    const before = problems.length;
    if (shapeText(tensor.shape) !== shapeText(spec.shape)) {
      problems.push(`${label}: shape ${shapeText(tensor.shape)}, expected ${shapeText(spec.shape)}`);
    }
    const allowed = spec.dtypes ?? FLOAT_DTYPES;
    if (!allowed.includes(tensor.dtype)) {
      problems.push(`${label}: dtype ${tensor.dtype}, expected one of ${allowed.join(", ")}`);
    }
    if (problems.length === before) found.set(spec.name, tensor);
  }
  if (problems.length > 0) throw new WeightsError(source.path ?? "the checkpoint", problems);
  const unclaimed = source.tensors.map((t) => t.name).filter((n) => !claimedBy.has(n));
  return { found, unclaimed };
}

/**
 * Checks the table (`checkWeights`), then loads every present tensor to the device, one at a time, in the
 * source's order (sequential reads). Returns row name → tensor. If a load fails midway, every tensor already
 * loaded is disposed before the error is rethrown, so a failed load leaves no device memory behind.
 *
 * @example
 * ```ts
 * using backend = Backend.open();
 * using ckpt = openSafetensorsDir("/models/gemma-3-270m");
 * const weights = loadWeights(backend, ckpt, rows, {
 *   onProgress: (done, total) => console.log(`${((100 * done) / total).toFixed(0)}%`),
 * });
 * ```
 */
export function loadWeights(
  backend: Backend,
  source: WeightSource,
  specs: readonly WeightSpec[],
  options: LoadWeightsOptions = {},
): Map<string, Tensor> {
  const { found } = checkWeights(source, specs);
  const specByTensor = new Map(specs.filter((s) => found.has(s.name)).map((s) => [found.get(s.name)!.name, s]));
  const order = source.tensors.filter((t) => specByTensor.has(t.name));
  const total = order.reduce((n, t) => n + t.bytes, 0);
  const loaded = new Map<string, Tensor>();
  let bytes = 0;
  try {
    for (const tensor of order) {
      const spec = specByTensor.get(tensor.name)!;
      loaded.set(spec.name, source.loadTensor(backend, tensor.name, spec.loadAs ? { dtype: spec.loadAs } : {}));
      bytes += tensor.bytes;
      options.onProgress?.(bytes, total, spec.name);
    }
  } catch (e) {
    for (const t of loaded.values()) t.dispose();
    throw e;
  }
  return loaded;
}
