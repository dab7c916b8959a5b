import { ShapeError } from "../errors.ts";
import { blockOf, DTYPE_CODE, KERNEL_WEIGHT_DTYPES } from "../runtime/dtype.ts";
import type { Backend } from "../runtime/backend.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectRank, expectSameBackend, expectShape, fmt, output, run } from "./check.ts";

/**
 * `y = x · Wᵀ (+ bias)` as nn.Linear computes it: x f32 [..., k], weight [n, k], y f32 [..., n].
 * The weight is f32, f16 or bf16 (then bias [n] has the weight's dtype), or a GGUF block quantization
 * (any QuantDType: k a whole number of blocks, bias f32), read as stored and accumulated in f32, or the CPU
 * library's q8_0x16 (src/ops/repack.ts).
 * A few rows take the matrix-vector kernel, more the tiled one.
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, out?: Tensor): Tensor {
  const op = "linear";
  const { backend, n, k } = checkProduct(op, x, weight, { bias: bias ?? undefined, out });
  if (bias) {
    expectDType(op, "bias", bias, [blockOf(weight.dtype) ? "f32" : weight.dtype]);
    expectShape(op, "bias", bias, [n]);
  }
  const m = x.size / k;
  const y = output(op, backend, [...x.shape.slice(0, -1), n], "f32", out);
  if (out && Deno.UnsafePointer.equals(out.pointer, x.pointer)) throw new ShapeError(op, "out must not be x");
  return run(op, backend, y, !out, () =>
    backend.symbols.gk_linear(
      backend.stream,
      x.pointer,
      weight.pointer,
      DTYPE_CODE[weight.dtype],
      bias?.pointer ?? null,
      m,
      n,
      k,
      y.pointer,
    ));
}

/**
 * Logits for greedy draws (kernels/include/gemmakit.h gk_greedy_logits): `linear(x, weight)` then, with `cap` > 0,
 * `softcap(·, cap)` — but only where a row's maximum could be; every other entry is either that same value or -inf.
 * So each row's argmax (first maximum, NaN above all) is the full product's, and stays so when a logit bias on
 * `keepIds` (i32 [n], always computed) is added afterwards. x f32 [..., k], weight [n, k] as `linear` takes it.
 */
export function greedyLogits(
  x: Tensor,
  weight: Tensor,
  o: { keepIds?: Tensor | null; cap?: number | null },
  out?: Tensor,
): Tensor {
  const op = "greedyLogits";
  const { backend, n, k } = checkProduct(op, x, weight, { keepIds: o.keepIds ?? undefined, out });
  if (o.keepIds) {
    expectDType(op, "keepIds", o.keepIds, ["i32"]);
    expectRank(op, "keepIds", o.keepIds, 1);
  }
  const cap = o.cap ?? 0;
  if (!(cap >= 0) || !Number.isFinite(cap)) throw new ShapeError(op, `cap=${cap} must be a finite number >= 0`);
  const m = x.size / k;
  const y = output(op, backend, [...x.shape.slice(0, -1), n], "f32", out);
  if (out && Deno.UnsafePointer.equals(out.pointer, x.pointer)) throw new ShapeError(op, "out must not be x");
  return run(op, backend, y, !out, () =>
    backend.symbols.gk_greedy_logits(
      backend.stream,
      x.pointer,
      weight.pointer,
      DTYPE_CODE[weight.dtype],
      o.keepIds?.pointer ?? null,
      o.keepIds?.shape[0] ?? 0,
      m,
      n,
      k,
      cap,
      y.pointer,
    ));
}

/** The checks every x · Wᵀ shares: dtypes, ranks, k and its blocks; the backend and W's [n, k]. */
function checkProduct(
  op: string,
  x: Tensor,
  weight: Tensor,
  others: Record<string, Tensor | undefined>,
): { backend: Backend; n: number; k: number } {
  const backend = expectSameBackend(op, { x, weight, ...others });
  expectDType(op, "x", x, ["f32"]);
  expectDType(op, "weight", weight, KERNEL_WEIGHT_DTYPES);
  expectRank(op, "weight", weight, 2);
  const [n, k] = weight.shape;
  if (x.shape.at(-1) !== k) {
    throw new ShapeError(op, `x is ${fmt(x)} but weight is ${fmt(weight)}: x's last axis must be ${k}`);
  }
  const block = blockOf(weight.dtype);
  if (block && k % block.elems !== 0) {
    throw new ShapeError(
      op,
      `x is ${fmt(x)}, weight is ${fmt(weight)}: k=${k} is not a whole number of ${block.elems}-element blocks`,
    );
  }
  return { backend, n, k };
}
