import { ShapeError } from "../errors.ts";
import { DTYPE_CODE, FLOAT_DTYPES } from "../runtime/dtype.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectPositive, expectSameBackend, expectShape, fmt, output, run } from "./check.ts";

/**
 * RMSNorm conventions: Gemma 3 multiplies by `1 + w` ("one_plus"), Gemma 4 by `w` ("scale"), and
 * Gemma 4's v_norm and router norm have no weight ("plain").
 */
export type RmsNormMode = "plain" | "scale" | "one_plus";
const MODE_CODE: Record<RmsNormMode, number> = { plain: 0, scale: 1, one_plus: 2 };

function rowsOf(x: Tensor): [rows: number, dim: number] {
  const dim = x.shape.at(-1)!;
  return [x.size / dim, dim];
}

/**
 * RMSNorm over the last axis of f32 `x`, in f32. `weight` [dim] is required unless mode is "plain".
 * `out` may be `x` (in place).
 */
export function rmsNorm(
  x: Tensor,
  weight: Tensor | null,
  options: { mode: RmsNormMode; eps: number },
  out?: Tensor,
): Tensor {
  const op = "rmsNorm";
  const backend = expectSameBackend(op, { x, weight: weight ?? undefined, out });
  expectDType(op, "x", x, ["f32"]);
  const [rows, dim] = rowsOf(x);
  if (options.mode === "plain") {
    if (weight) throw new ShapeError(op, `mode "plain" takes no weight, got ${fmt(weight)}`);
  } else {
    if (!weight) throw new ShapeError(op, `mode "${options.mode}" needs a weight [${dim}]`);
    expectDType(op, "weight", weight, FLOAT_DTYPES);
    expectShape(op, "weight", weight, [dim]);
  }
  expectPositive(op, "eps", options.eps, true);
  const mode = MODE_CODE[options.mode];
  if (mode === undefined) throw new ShapeError(op, `unknown mode "${options.mode}"`);
  const y = output(op, backend, x.shape, "f32", out);
  return run(op, backend, y, !out, () =>
    backend.symbols.gk_rms_norm(
      backend.stream,
      x.pointer,
      weight?.pointer ?? null,
      DTYPE_CODE[weight?.dtype ?? "f32"],
      mode,
      options.eps,
      rows,
      dim,
      y.pointer,
    ));
}

/** LayerNorm (biased variance, as nn.LayerNorm) over the last axis of f32 `x`. */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor | null, eps: number, out?: Tensor): Tensor {
  const op = "layerNorm";
  const backend = expectSameBackend(op, { x, weight, bias: bias ?? undefined, out });
  expectDType(op, "x", x, ["f32"]);
  const [rows, dim] = rowsOf(x);
  expectDType(op, "weight", weight, FLOAT_DTYPES);
  expectShape(op, "weight", weight, [dim]);
  if (bias) {
    expectDType(op, "bias", bias, [weight.dtype]);
    expectShape(op, "bias", bias, [dim]);
  }
  expectPositive(op, "eps", eps, true);
  const y = output(op, backend, x.shape, "f32", out);
  return run(op, backend, y, !out, () =>
    backend.symbols.gk_layer_norm(
      backend.stream,
      x.pointer,
      weight.pointer,
      bias?.pointer ?? null,
      DTYPE_CODE[weight.dtype],
      eps,
      rows,
      dim,
      y.pointer,
    ));
}
