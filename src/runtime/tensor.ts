/**
 * Device tensors: a pointer into a backend's memory with a dtype and a shape.
 * Owning tensors free their memory on `dispose()` (idempotent), on `using` scope exit, or — as a
 * backstop for forgotten ones — when garbage-collected. Views share the owner's memory and lifetime.
 * @module
 */
import { DisposedError, ShapeError } from "../errors.ts";
import type { Backend } from "./backend.ts";
import { byteLengthOf, decode, type DType, encode, isRepacked, REPACK_ROWS } from "./dtype.ts";

interface Allocation {
  backend: Backend;
  ptr: Deno.PointerObject;
}

// Frees memory of tensors that were dropped without dispose(). Errors cannot surface here, so they
// are ignored: the backend may already be gone, which freed the memory anyway.
const backstop = new FinalizationRegistry<Allocation>(({ backend, ptr }) => {
  try {
    backend.free(ptr);
  } catch { /* backend disposed or pointer already freed */ }
});

function checkShape(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d <= 0) {
      throw new ShapeError("tensor", `shape [${shape.join(", ")}] must hold positive integers`);
    }
    n *= d;
  }
  return n;
}

function bytesOf(dtype: DType, shape: readonly number[]): number {
  const bytes = byteLengthOf(dtype, shape);
  if (bytes === undefined) {
    throw new ShapeError("tensor", `${dtype}[${shape.join(", ")}]: the last dimension is not a whole number of blocks`);
  }
  return bytes;
}

/**
 * A tensor in device memory (host memory on the CPU backend).
 *
 * @example
 * ```ts
 * using backend = Backend.open({ backend: "cpu" });
 * using t = Tensor.fromArray(backend, [1, 2, 3, 4, 5, 6], [2, 3]);
 * console.log(t.shape, t.toArray()); // [2, 3] Float32Array(6) [1, 2, 3, 4, 5, 6]
 * ```
 */
export class Tensor {
  readonly backend: Backend;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Elements. */
  readonly size: number;
  #ptr: Deno.PointerObject | null;
  readonly #owner: Tensor | null; // set for views: keeps the owner (and its memory) alive
  #token = {};

  private constructor(
    backend: Backend,
    ptr: Deno.PointerObject,
    dtype: DType,
    shape: readonly number[],
    owner: Tensor | null,
  ) {
    this.backend = backend;
    this.#ptr = ptr;
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.size = checkShape(shape);
    this.#owner = owner;
    if (owner === null) backstop.register(this, { backend, ptr }, this.#token);
  }

  /** An uninitialised tensor. */
  static empty(backend: Backend, shape: readonly number[], dtype: DType = "f32"): Tensor {
    checkShape(shape);
    const bytes = bytesOf(dtype, shape);
    return new Tensor(backend, backend.alloc(bytes), dtype, shape, null);
  }

  /** A tensor of zeros. */
  static zeros(backend: Backend, shape: readonly number[], dtype: DType = "f32"): Tensor {
    const t = Tensor.empty(backend, shape, dtype);
    backend.fill(t.pointer, 0, t.byteLength);
    return t;
  }

  /** Uploads numbers, converted to `dtype` (bf16/f16 round to nearest even). */
  static fromArray(
    backend: Backend,
    values: ArrayLike<number>,
    shape: readonly number[],
    dtype: DType = "f32",
  ): Tensor {
    const n = checkShape(shape);
    if (values.length !== n) {
      throw new ShapeError(
        "Tensor.fromArray",
        `${values.length} values do not fill shape [${shape.join(", ")}] (${n})`,
      );
    }
    return Tensor.fromBytes(backend, encode(values, dtype), shape, dtype);
  }

  /** Uploads raw bytes already in `dtype` (e.g. bf16 weights straight from a file). */
  static fromBytes(backend: Backend, bytes: Uint8Array, shape: readonly number[], dtype: DType): Tensor {
    checkShape(shape);
    const expected = bytesOf(dtype, shape);
    if (bytes.byteLength !== expected) {
      throw new ShapeError(
        "Tensor.fromBytes",
        `${bytes.byteLength} bytes for ${dtype}[${shape.join(", ")}], which needs ${expected}`,
      );
    }
    const t = Tensor.empty(backend, shape, dtype);
    try {
      backend.upload(t.pointer, bytes);
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  get byteLength(): number {
    return bytesOf(this.dtype, this.shape);
  }

  get disposed(): boolean {
    return this.#ptr === null || (this.#owner?.disposed ?? false) || this.backend.disposed;
  }

  /** The device pointer; throws DisposedError after dispose(). */
  get pointer(): Deno.PointerObject {
    if (this.disposed || this.#ptr === null) {
      throw new DisposedError("tensor", `${this.dtype}[${this.shape.join(", ")}] was disposed`);
    }
    return this.#ptr;
  }

  /** The same memory under another shape with as many elements. */
  reshape(shape: readonly number[]): Tensor {
    const n = checkShape(shape);
    if (n !== this.size) {
      throw new ShapeError(
        "reshape",
        `cannot view [${this.shape.join(", ")}] (${this.size}) as [${shape.join(", ")}] (${n})`,
      );
    }
    return new Tensor(this.backend, this.pointer, this.dtype, shape, this.#owner ?? this);
  }

  /**
   * The same memory as `dtype`, which must take as many bytes for this shape: a weight that gk_repack rewrote in
   * place (src/ops/repack.ts). The tensor it came from must not be read as before.
   */
  retyped(dtype: DType): Tensor {
    if (byteLengthOf(dtype, this.shape) !== this.byteLength) {
      throw new ShapeError("retyped", `${this} is not ${dtype}[${this.shape.join(", ")}] byte for byte`);
    }
    return new Tensor(this.backend, this.pointer, dtype, this.shape, this.#owner ?? this);
  }

  /** Rows [start, start + count) along the first axis, as a view. */
  rows(start: number, count: number): Tensor {
    const rows = this.shape[0];
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 1 || start + count > rows) {
      throw new ShapeError(
        "rows",
        `rows ${start}..${start + count - 1} are outside [0, ${rows}) of [${this.shape.join(", ")}]`,
      );
    }
    if (isRepacked(this.dtype) && (start % REPACK_ROWS !== 0 || count % REPACK_ROWS !== 0)) {
      throw new ShapeError(
        "rows",
        `rows of a ${this.dtype} tensor come in groups of ${REPACK_ROWS}, not ${start}..${start + count - 1}`,
      );
    }
    const rowBytes = this.byteLength / rows;
    const ptr = Deno.UnsafePointer.offset(this.pointer, start * rowBytes) as Deno.PointerObject;
    return new Tensor(this.backend, ptr, this.dtype, [count, ...this.shape.slice(1)], this.#owner ?? this);
  }

  /** Raw bytes, after all enqueued work has finished. */
  toBytes(): Uint8Array {
    const out = new Uint8Array(this.byteLength);
    this.backend.download(this.pointer, out);
    return out;
  }

  /** Values as numbers: Float32Array for float dtypes, Int32Array for i32. */
  toArray(): Float32Array | Int32Array {
    return decode(this.toBytes(), this.dtype, this.shape.at(-1));
  }

  /** Replaces the contents with `values` (same count), converted to the tensor's dtype. */
  write(values: ArrayLike<number>): void {
    if (values.length !== this.size) {
      throw new ShapeError("write", `${values.length} values for [${this.shape.join(", ")}] (${this.size})`);
    }
    this.backend.upload(this.pointer, encode(values, this.dtype));
  }

  /** Frees the memory (owners) or detaches (views). Idempotent. */
  dispose(): void {
    const ptr = this.#ptr;
    if (ptr === null) return;
    this.#ptr = null;
    if (this.#owner === null) {
      backstop.unregister(this.#token);
      this.backend.free(ptr);
    }
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  toString(): string {
    return `Tensor<${this.dtype}>[${this.shape.join(", ")}] on ${this.backend.kind}`;
  }
}
