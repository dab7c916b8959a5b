import { ShapeError } from "../errors.ts";
import { blockOf, DTYPE_CODE, KERNEL_WEIGHT_DTYPES } from "../runtime/dtype.ts";
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
  const backend = expectSameBackend(op, { x, weight, bias: bias ?? undefined, out });
  expectDType(op, "x", x, ["f32"]);
  expectDType(op, "weight", weight, KERNEL_WEIGHT_DTYPES);
  expectRank(op, "weight", weight, 2);
  const [n, k] = weight.shape;
  if (x.shape.at(-1) !== k) {
    throw new ShapeError(op, `x is ${fmt(x)} but weight is ${fmt(weight)}: x's last axis must be ${k}`);
  }
  const block = blockOf(weight.dtype), quantized = block !== undefined;
  if (block && k % block.elems !== 0) {
    throw new ShapeError(
      op,
      `x is ${fmt(x)}, weight is ${fmt(weight)}: k=${k} is not a whole number of ${block.elems}-element blocks`,
    );
  }
  if (bias) {
    expectDType(op, "bias", bias, [quantized ? "f32" : weight.dtype]);
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
