/**
 * Typed weight tables. A family writes its table once, as a tree whose leaves are weight rows
 * (`{ embedTokens: row(...), layers: [{ qProj: row(...), ... }] }`); the loader checks and loads the rows, and
 * the model gets the same tree with tensors at the leaves (`w.layers[3].qProj`). A checkpoint name is written
 * in one place, a missing tensor fails at load, and a misspelt field fails at type-check.
 * @module
 */
import { WeightsError } from "../../errors.ts";
import type { Backend } from "../../runtime/backend.ts";
import type { Tensor } from "../../runtime/tensor.ts";
import type { WeightSource } from "../../formats/weight_source.ts";
import { checkWeights, loadWeights, type LoadWeightsOptions, type WeightSpec } from "./weights.ts";

/** A row the checkpoint may lack (left undefined in the loaded tree). */
export type OptionalRow = WeightSpec & { readonly required: false };

/** A weight table: rows at the leaves; objects, arrays and `undefined` (a row this config has not) inside. */
export type WeightTree =
  | WeightSpec
  | undefined
  | readonly WeightTree[]
  | { readonly [key: string]: WeightTree };

/** The tree a model reads: each row replaced by its tensor (optional rows by `Tensor | undefined`). */
export type Loaded<T> = T extends OptionalRow ? Tensor | undefined
  : T extends WeightSpec ? Tensor
  : T extends undefined ? undefined
  : T extends readonly (infer E)[] ? Loaded<E>[]
  : { readonly [K in keyof T]: Loaded<T[K]> };

const isRow = (node: unknown): node is WeightSpec =>
  typeof node === "object" && node !== null && typeof (node as WeightSpec).name === "string" &&
  Array.isArray((node as WeightSpec).shape);

/** Every row of a table, depth first in the order the table is written. */
export function tableRows(tree: WeightTree): WeightSpec[] {
  if (tree === undefined) return [];
  if (isRow(tree)) return [tree];
  if (Array.isArray(tree)) return tree.flatMap(tableRows);
  return Object.values(tree as Record<string, WeightTree>).flatMap(tableRows);
}

/** The table with each row replaced by `tensorOf(row)`. */
function bind<T extends WeightTree>(tree: T, tensorOf: (row: WeightSpec) => Tensor | undefined): Loaded<T> {
  const walk = (node: WeightTree): unknown => {
    if (node === undefined) return undefined;
    if (isRow(node)) return tensorOf(node);
    if (Array.isArray(node)) return node.map(walk);
    return Object.fromEntries(Object.entries(node as Record<string, WeightTree>).map(([k, v]) => [k, walk(v)]));
  };
  return walk(tree) as Loaded<T>;
}

/**
 * A model's weights: its table's tree of tensors, owned together. The model that takes them disposes them
 * with itself.
 */
export class ModelWeights<T extends WeightTree> implements Disposable {
  /** The table with tensors at its leaves. */
  readonly tensors: Loaded<T>;
  readonly #owned: Tensor[];
  #disposed = false;

  /**
   * Binds `table` to tensors by row name; `owned` are disposed with these weights. A required row without a
   * tensor is a WeightsError naming every such row.
   */
  constructor(table: T, byName: ReadonlyMap<string, Tensor>, owned: Iterable<Tensor> = byName.values()) {
    const missing: string[] = [];
    this.tensors = bind(table, (row) => {
      const t = byName.get(row.name);
      if (!t && (row.required ?? true)) missing.push(`${row.name}: no tensor was loaded for this row`);
      return t;
    });
    this.#owned = [...owned];
    if (missing.length) {
      this.dispose();
      throw new WeightsError("the loaded weights", missing);
    }
  }

  /** Checks every row of `table` against `source` (one error lists every problem), then loads them. */
  static load<T extends WeightTree>(
    backend: Backend,
    source: WeightSource,
    table: T,
    options: LoadWeightsOptions = {},
  ): ModelWeights<T> {
    return new ModelWeights(table, loadWeights(backend, source, tableRows(table), options));
  }

  /** Checks tables against one source together, so one error lists the problems of all of them. */
  static check(source: WeightSource, ...tables: WeightTree[]): void {
    checkWeights(source, tables.flatMap(tableRows));
  }

  /**
   * Puts `by` wherever `old` is in the tree: a weight rewritten in place into another layout (src/ops/repack.ts),
   * which every holder must read the new way (a tied lm_head is also the embedding table). `old` stays owned: it
   * holds the memory `by` views.
   */
  replaceTensor(old: Tensor, by: Tensor): void {
    if (old === by) return;
    const walk = (node: Record<string, unknown>) => {
      for (const [key, value] of Object.entries(node)) {
        if (value === old) node[key] = by;
        else if (Array.isArray(value) || Object.getPrototypeOf(value ?? 0) === Object.prototype) {
          walk(value as Record<string, unknown>);
        }
      }
    };
    walk(this.tensors as unknown as Record<string, unknown>);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of this.#owned) t.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Builds what owns `weights` (a model); if building throws, the weights are freed before the error goes on,
 * so a failed load leaves no device memory behind.
 */
export function buildOwning<T extends WeightTree, M>(weights: ModelWeights<T>, build: (w: ModelWeights<T>) => M): M {
  try {
    return build(weights);
  } catch (e) {
    weights.dispose();
    throw e;
  }
}
