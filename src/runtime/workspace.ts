/**
 * Named scratch buffers for a forward pass. The same model code runs for prefill (a workspace per call,
 * released after) and for the decode step (one persistent workspace, so a recorded step replays over
 * the same memory and the decode loop allocates nothing).
 * @module
 */
import { ShapeError } from "../errors.ts";
import type { Backend } from "./backend.ts";
import type { DType } from "./dtype.ts";
import { Tensor } from "./tensor.ts";

export class Workspace {
  #buffers = new Map<string, Tensor>();
  constructor(readonly backend: Backend) {}

  /**
   * The buffer called `name`, allocated on first use. Reusing a name across layers reuses memory, which
   * is safe because layers run in order; asking for a name with another shape is a programming error.
   */
  get(name: string, shape: readonly number[], dtype: DType = "f32"): Tensor {
    const have = this.#buffers.get(name);
    if (have) {
      if (have.dtype !== dtype || have.shape.length !== shape.length || have.shape.some((d, i) => d !== shape[i])) {
        throw new ShapeError(
          "workspace",
          `buffer "${name}" is ${have.dtype}[${have.shape}], asked for ${dtype}[${shape}]`,
        );
      }
      return have;
    }
    const t = Tensor.empty(this.backend, shape, dtype);
    this.#buffers.set(name, t);
    return t;
  }

  get bytes(): number {
    let n = 0;
    for (const t of this.#buffers.values()) n += t.byteLength;
    return n;
  }

  dispose(): void {
    for (const t of this.#buffers.values()) t.dispose();
    this.#buffers.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
