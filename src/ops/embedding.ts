import { ShapeError } from "../errors.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { blockOf, DTYPE_CODE, KERNEL_WEIGHT_DTYPES } from "../runtime/dtype.ts";
import { expectDType, expectRank, expectSameBackend, fmt, output, run } from "./check.ts";

/**
 * Gathers rows of `table` [vocab, dim] for `ids` (i32 [n]) and multiplies them by `scale`: f32 [n, dim].
 * The table is f32, f16, bf16 or a GGUF block quantization (any QuantDType; dim a whole number of
 * blocks), whose rows are dequantized, or the CPU library's q8_0x16 (src/ops/repack.ts).
 * @example
 * ```ts
 * const h = embedding(embedTokens, ids, Math.sqrt(hidden));
 * ```
 */
export function embedding(table: Tensor, ids: Tensor, scale = 1, out?: Tensor): Tensor {
  const op = "embedding";
  const backend = expectSameBackend(op, { table, ids, out });
  expectDType(op, "table", table, KERNEL_WEIGHT_DTYPES);
  expectRank(op, "table", table, 2);
  expectDType(op, "ids", ids, ["i32"]);
  expectRank(op, "ids", ids, 1);
  const [vocab, dim] = table.shape;
  const block = blockOf(table.dtype);
  if (block && dim % block.elems !== 0) {
    throw new ShapeError(
      op,
      `table is ${fmt(table)}: dim=${dim} is not a whole number of ${block.elems}-element blocks`,
    );
  }
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
