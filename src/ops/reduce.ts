import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectSameBackend, output, run } from "./check.ts";

/** Softmax over the last axis of f32 `x`. */
export function softmax(x: Tensor, out?: Tensor): Tensor {
  const op = "softmax";
  const backend = expectSameBackend(op, { x, out });
  expectDType(op, "x", x, ["f32"]);
  const cols = x.shape.at(-1)!;
  const y = output(op, backend, x.shape, "f32", out);
  return run(
    op,
    backend,
    y,
    !out,
    () => backend.symbols.gk_softmax(backend.stream, x.pointer, y.pointer, x.size / cols, cols),
  );
}

/** Index of the largest value along the last axis (first on ties, NaN largest): i32 [...leading]. */
export function argmax(x: Tensor, out?: Tensor): Tensor {
  const op = "argmax";
  const backend = expectSameBackend(op, { x, out });
  expectDType(op, "x", x, ["f32"]);
  const cols = x.shape.at(-1)!;
  const rows = x.size / cols;
  const y = output(op, backend, x.shape.length > 1 ? x.shape.slice(0, -1) : [1], "i32", out);
  return run(op, backend, y, !out, () => backend.symbols.gk_argmax(backend.stream, x.pointer, y.pointer, rows, cols));
}
