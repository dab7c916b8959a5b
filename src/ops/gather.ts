/**
 * Gather-and-sum of rows: the factored 2-D position table lookup and the position-listed pooling of Gemma 4's
 * vision tower, as one general op.
 * @module
 */
import { ShapeError } from "../errors.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectRank, expectSameBackend, fmt, output, run } from "./check.ts";

/**
 * y[o] = scale · Σ_j x[idx[o, j]]: x f32 [rows, cols], idx i32 [outRows, k] → f32 [outRows, cols]. Ids outside
 * [0, rows) (-1 for padding) are skipped; a row with none is zeros. Summed in list order. `out` must not alias x.
 */
export function gatherSum(x: Tensor, idx: Tensor, scale = 1, out?: Tensor): Tensor {
  const op = "gatherSum";
  const backend = expectSameBackend(op, { x, idx, out });
  expectDType(op, "x", x, ["f32"]);
  expectRank(op, "x", x, 2);
  expectDType(op, "idx", idx, ["i32"]);
  expectRank(op, "idx", idx, 2);
  if (!Number.isFinite(scale)) throw new ShapeError(op, `scale=${scale} must be finite`);
  const [rows, cols] = x.shape;
  const [outRows, k] = idx.shape;
  const y = output(op, backend, [outRows, cols], "f32", out);
  if (y.pointer === x.pointer) throw new ShapeError(op, `out ${fmt(y)} must not alias x`);
  return run(
    op,
    backend,
    y,
    !out,
    () =>
      backend.symbols.gk_gather_sum(backend.stream, x.pointer, rows, cols, idx.pointer, outRows, k, scale, y.pointer),
  );
}
