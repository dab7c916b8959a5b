/** copyRows: rows land where asked, and every mismatch is a typed error before any copy. */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { copyRows } from "../../src/ops/copy.ts";
import { DTypeError, ShapeError } from "../../src/errors.ts";

Deno.test("copyRows: copies a block of rows at an offset, leaving the other rows alone", () => {
  using backend = Backend.open({ backend: "cpu" });
  using dst = Tensor.fromArray(backend, Array.from({ length: 12 }, (_, i) => i), [4, 3]);
  using src = Tensor.fromArray(backend, [-1, -2, -3, -4, -5, -6], [2, 3]);
  copyRows(src, dst, 1);
  assert.deepEqual([...dst.toArray()], [0, 1, 2, -1, -2, -3, -4, -5, -6, 9, 10, 11]);
  copyRows(src.rows(1, 1), dst, 3);
  assert.deepEqual([...dst.toArray()].slice(9), [-4, -5, -6]);
});

Deno.test("copyRows: past the end, other row widths and other dtypes are refused", () => {
  using backend = Backend.open({ backend: "cpu" });
  using dst = Tensor.empty(backend, [4, 3]);
  using src = Tensor.empty(backend, [2, 3]);
  using wide = Tensor.empty(backend, [2, 4]);
  using ints = Tensor.empty(backend, [2, 3], "i32");
  assert.throws(() => copyRows(src, dst, 3), ShapeError);
  assert.throws(() => copyRows(src, dst, -1), ShapeError);
  assert.throws(() => copyRows(wide, dst, 0), ShapeError);
  assert.throws(() => copyRows(ints, dst, 0), DTypeError);
});
