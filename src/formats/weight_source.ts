/**
 * What every checkpoint reader offers the weight loader: a tensor listing, and a way to bring one tensor to a
 * device. Safetensors files and shard directories are one (safetensors.ts), a GGUF file another (gguf.ts).
 * @module
 */
import type { Backend } from "../runtime/backend.ts";
import type { DType } from "../runtime/dtype.ts";
import type { Tensor } from "../runtime/tensor.ts";

/** One tensor as a checkpoint lists it, before anything is read. */
export interface SourceTensor {
  /** The name as the checkpoint spells it. */
  readonly name: string;
  /** A DType when a device tensor can hold it as stored; otherwise the format's own name (e.g. "F64", "Q4_K"). */
  readonly dtype: string;
  /** Dimensions, outermost first. */
  readonly shape: readonly number[];
  /** Stored byte length (what loading it reads). */
  readonly bytes: number;
}

/** A checkpoint the loader can read: its listing, and a way to bring one tensor to the device. */
export interface WeightSource {
  /** The file or directory, for messages. */
  readonly path?: string;
  /** Every tensor, in the order reading them is cheapest (file order). */
  readonly tensors: readonly SourceTensor[];
  /** Reads one listed tensor onto `backend`, in its stored dtype unless `options.dtype` asks for a float dtype. */
  loadTensor(backend: Backend, name: string, options?: { dtype?: DType }): Tensor;
}
