import type { Tensor } from "../runtime/tensor.ts";
import { DTYPE_CODE, FLOAT_DTYPES } from "../runtime/dtype.ts";
import { expectDType, expectRank, expectSameBackend, output, run } from "./check.ts";

/**
 * Gathers rows of `table` [vocab, dim] for `ids` (i32 [n]) and multiplies them by `scale`: f32 [n, dim].
 * @example
 * ```ts
 * const h = embedding(embedTokens, ids, Math.sqrt(hidden));
 * ```
 */
export function embedding(table: Tensor, ids: Tensor, scale = 1, out?: Tensor): Tensor {
  const op = "embedding";
  const backend = expectSameBackend(op, { table, ids, out });
  expectDType(op, "table", table, FLOAT_DTYPES);
  expectRank(op, "table", table, 2);
  expectDType(op, "ids", ids, ["i32"]);
  expectRank(op, "ids", ids, 1);
  const [vocab, dim] = table.shape;
  const n = ids.shape[0];
  const y = output(op, backend, [n, dim], "f32", out);
  return run(op, backend, y, !out, () =>
    backend.symbols.gk_embedding(
      backend.stream,
      table.pointer,
      DTYPE_CODE[table.dtype],
      vocab,
      dim,
      ids.pointer,
      n,
      scale,
      y.pointer,
    ));
}
