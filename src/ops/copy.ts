/**
 * Row copies between device tensors, checked: model code moves blocks of rows (soft tokens into the token
 * embeddings, encoder outputs into one batch) without pointer arithmetic or byte counts of its own.
 * @module
 */
import { ShapeError } from "../errors.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectSameBackend, fmt } from "./check.ts";

/**
 * Copies every row of `src` over rows `[at, at + src.shape[0])` of `dst` (device to device, in stream order).
 * Both must have the same dtype and the same shape after the first axis.
 *
 * @example
 * ```ts
 * copyRows(imageFeatures, tokenEmbeddings, 5); // rows 5.. of the embeddings become the image's soft tokens
 * ```
 */
export function copyRows(src: Tensor, dst: Tensor, at: number): Tensor {
  const op = "copyRows";
  const backend = expectSameBackend(op, { src, dst });
  expectDType(op, "dst", dst, [src.dtype]);
  const inner = (t: Tensor) => t.shape.slice(1).join(",");
  if (src.shape.length < 1 || src.shape.length !== dst.shape.length || inner(src) !== inner(dst)) {
    throw new ShapeError(op, `cannot copy the rows of ${fmt(src)} into ${fmt(dst)}: the rows differ`);
  }
  const n = src.shape[0];
  if (!Number.isInteger(at) || at < 0 || at + n > dst.shape[0]) {
    throw new ShapeError(op, `rows ${at}..${at + n - 1} are outside [0, ${dst.shape[0]}) of ${fmt(dst)}`);
  }
  if (n > 0) backend.copy(dst.rows(at, n).pointer, src.pointer, src.byteLength);
  return dst;
}
