/**
 * Shape and dtype checks every op runs before crossing FFI, so a mistake names the op and the shapes
 * instead of surfacing as a native status (or worse).
 * @module
 */
import { DTypeError, ShapeError } from "../errors.ts";
import type { Backend } from "../runtime/backend.ts";
import type { DType } from "../runtime/dtype.ts";
import { Tensor } from "../runtime/tensor.ts";

export const fmt = (t: Tensor): string => `${t.dtype}[${t.shape.join(", ")}]`;

export function expectDType(op: string, name: string, t: Tensor, allowed: readonly DType[]): void {
  if (!allowed.includes(t.dtype)) {
    throw new DTypeError(op, `${name} is ${fmt(t)}; expected dtype ${allowed.join(" or ")}`);
  }
}

/** `dims` entries that are numbers must match; null matches anything. */
export function expectShape(op: string, name: string, t: Tensor, dims: readonly (number | null)[]): void {
  const ok = t.shape.length === dims.length && dims.every((d, i) => d === null || d === t.shape[i]);
  if (!ok) {
    const want = dims.map((d) => d ?? "*").join(", ");
    throw new ShapeError(op, `${name} is ${fmt(t)}; expected shape [${want}]`);
  }
}

export function expectRank(op: string, name: string, t: Tensor, rank: number): void {
  if (t.shape.length !== rank) throw new ShapeError(op, `${name} is ${fmt(t)}; expected ${rank} dimensions`);
}

export function expectSameBackend(op: string, tensors: Record<string, Tensor | undefined>): Backend {
  let backend: Backend | undefined;
  for (const [name, t] of Object.entries(tensors)) {
    if (!t) continue;
    if (backend && t.backend !== backend) {
      throw new ShapeError(op, `${name} lives on another backend than the other inputs`);
    }
    backend ??= t.backend;
  }
  return backend!;
}

/** The caller's `out` after checking it, or a new tensor. */
export function output(op: string, backend: Backend, shape: readonly number[], dtype: DType, out?: Tensor): Tensor {
  if (!out) return Tensor.empty(backend, shape, dtype);
  if (out.backend !== backend) throw new ShapeError(op, "out lives on another backend than the inputs");
  expectDType(op, "out", out, [dtype]);
  expectShape(op, "out", out, shape);
  return out;
}

export function expectPositive(op: string, name: string, value: number, allowZero = false): void {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new ShapeError(op, `${name}=${value} must be ${allowZero ? ">= 0" : "> 0"}`);
  }
}

/** Runs a native op and turns its status into a typed error; disposes a freshly made output on failure. */
export function run(op: string, backend: Backend, out: Tensor, fresh: boolean, call: () => number): Tensor {
  try {
    backend.check(op, call());
  } catch (e) {
    if (fresh) out.dispose();
    throw e;
  }
  return out;
}
