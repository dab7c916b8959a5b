/**
 * A GGUF file's tensors seen as a WeightSource under another naming (a family's HF names for llama.cpp's, a
 * vision table's for clip's), so `ModelWeights.load` reads a GGUF as it reads safetensors. One mapping for the
 * text GGUFs of every family and for mmproj files.
 * @module
 */
import type { Backend } from "../runtime/backend.ts";
import type { DType } from "../runtime/dtype.ts";
import { Tensor } from "../runtime/tensor.ts";
import { FormatError } from "../errors.ts";
import type { GgufFile } from "./gguf.ts";
import type { SourceTensor, WeightSource } from "./weight_source.ts";

/** A host-side layout fix of one tensor: its shape after the fix, and the fix on its f32 values. */
export interface TensorFix {
  shape: readonly number[];
  apply(values: Float32Array): Float32Array;
}

/** A GGUF seen under other names. */
export interface RenamedGgufSource extends WeightSource {
  readonly path: string;
  /** The GGUF name behind a listed name, e.g. "model.norm.weight" → "output_norm.weight". */
  ggufName(name: string): string | undefined;
  loadTensor(backend: Backend, name: string, options?: { dtype?: DType }): Tensor;
}

/**
 * The GGUF's tensors under the names `rename` gives: undefined keeps the GGUF name (the weight loader then lists the
 * tensor as unclaimed), null leaves the tensor out. Two tensors under one name are a FormatError naming both.
 * `fixes` (by GGUF name) are applied on the host as each tensor loads: a fixed tensor is listed, and loads, as f32
 * in its fixed shape. `format` names the file kind in errors. The file stays owned by the caller.
 */
export function renamedGgufSource(
  gguf: GgufFile,
  rename: (ggufName: string) => string | null | undefined,
  options: { format?: string; fixes?: Readonly<Record<string, TensorFix>> } = {},
): RenamedGgufSource {
  const { format = "gguf", fixes = {} } = options;
  const fixOf = (ggufName: string) => Object.hasOwn(fixes, ggufName) ? fixes[ggufName] : undefined;
  const toGguf = new Map<string, string>();
  const tensors: SourceTensor[] = [];
  const problems: string[] = [];
  for (const t of gguf.tensors) {
    const renamed = rename(t.name);
    if (renamed === null) continue;
    const name = renamed ?? t.name;
    const other = toGguf.get(name);
    if (other !== undefined) {
      problems.push(`tensors ${other} and ${t.name} both map to ${name}`);
      continue;
    }
    toGguf.set(name, t.name);
    const fix = fixOf(t.name);
    tensors.push(Object.freeze(
      fix
        ? { name, dtype: "f32", shape: fix.shape, bytes: t.bytes }
        : { name, dtype: t.dtype, shape: t.shape, bytes: t.bytes },
    ));
  }
  if (problems.length > 0) throw new FormatError(format, gguf.path, problems);
  return {
    path: gguf.path,
    tensors: Object.freeze(tensors),
    ggufName: (name) => toGguf.get(name),
    loadTensor(backend, name, options) {
      const ggufName = toGguf.get(name);
      if (ggufName === undefined) {
        throw new FormatError(format, gguf.path, `no tensor ${name} (${tensors.length} tensors)`);
      }
      const fix = fixOf(ggufName);
      if (!fix) return gguf.loadTensor(backend, ggufName, options);
      let values: Float32Array;
      {
        using stored = gguf.loadTensor(backend, ggufName, { dtype: "f32" });
        values = stored.toArray() as Float32Array;
      }
      return Tensor.fromArray(backend, fix.apply(values), fix.shape, options?.dtype ?? "f32");
    },
  };
}

/**
 * The HF name of a tensor in llama.cpp's naming: `top[name]` for a model-level tensor, `model.layers.{i}.{suffix}`
 * for `blk.{i}.{rest}` when `perLayer[rest]` is `suffix` and i < `layers`; undefined for any other name.
 */
export function llamaCppHfName(
  ggufName: string,
  layers: number,
  names: { top: Readonly<Record<string, string>>; perLayer: Readonly<Record<string, string>> },
): string | undefined {
  if (Object.hasOwn(names.top, ggufName)) return names.top[ggufName];
  const m = /^blk\.(0|[1-9]\d*)\.(.+)$/.exec(ggufName);
  if (!m || !Object.hasOwn(names.perLayer, m[2])) return undefined;
  const i = Number(m[1]);
  return i < layers ? `model.layers.${i}.${names.perLayer[m[2]]}` : undefined;
}
