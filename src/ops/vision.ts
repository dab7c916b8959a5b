/**
 * Vision-tower ops: the SigLIP patch embedding's im2col and the Gemma 3 projector's 2-D average pooling.
 * @module
 */
import { ShapeError } from "../errors.ts";
import { boundedInt, I32_MAX } from "../runtime/bounds.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectRank, expectSameBackend, expectShape, output, run } from "./check.ts";

/**
 * im2col of Conv2d(kernel = stride = patch): pixels f32 [n, channels, height, width] → f32
 * [n, (height/patch)·(width/patch), channels·patch²], patches in row-major grid order and each row in the
 * conv weight's (channel, ky, kx) order — so `linear(patches, weight.reshape([hidden, channels·patch²]), bias)`
 * is the convolution.
 */
export function patchExtract(pixels: Tensor, patch: number, out?: Tensor): Tensor {
  const op = "patchExtract";
  const backend = expectSameBackend(op, { pixels, out });
  expectDType(op, "pixels", pixels, ["f32"]);
  expectRank(op, "pixels", pixels, 4);
  const [n, channels, height, width] = pixels.shape;
  boundedInt(op, "patch", patch, 1, I32_MAX);
  if (height % patch !== 0 || width % patch !== 0) {
    throw new ShapeError(op, `${height}x${width} pixels are not a whole number of ${patch}x${patch} patches`);
  }
  const cells = (height / patch) * (width / patch);
  const y = output(op, backend, [n, cells, channels * patch * patch], "f32", out);
  return run(
    op,
    backend,
    y,
    !out,
    () =>
      backend.symbols.gk_patch_extract(backend.stream, pixels.pointer, n, channels, height, width, patch, y.pointer),
  );
}

/**
 * AvgPool2d(kernel, stride = kernel) over a token-major grid: x f32 [n, gridH·gridW, channels] → f32
 * [n, (gridH/kernel)·(gridW/kernel), channels], pooled tokens in row-major order (as the Gemma 3 projector's
 * transpose → AvgPool2d → flatten → transpose computes them).
 */
export function avgPool2d(
  x: Tensor,
  options: { gridH: number; gridW: number; kernel: number },
  out?: Tensor,
): Tensor {
  const op = "avgPool2d";
  const backend = expectSameBackend(op, { x, out });
  const { gridH, gridW, kernel } = options;
  expectDType(op, "x", x, ["f32"]);
  expectRank(op, "x", x, 3);
  for (const [name, v] of [["gridH", gridH], ["gridW", gridW], ["kernel", kernel]] as const) {
    boundedInt(op, name, v, 1, I32_MAX);
  }
  expectShape(op, "x", x, [null, gridH * gridW, null]);
  if (gridH % kernel !== 0 || gridW % kernel !== 0) {
    throw new ShapeError(op, `the ${gridH}x${gridW} grid is not a whole number of ${kernel}x${kernel} windows`);
  }
  const [n, , channels] = x.shape;
  const y = output(op, backend, [n, (gridH / kernel) * (gridW / kernel), channels], "f32", out);
  return run(
    op,
    backend,
    y,
    !out,
    () => backend.symbols.gk_avg_pool2d(backend.stream, x.pointer, n, gridH, gridW, channels, kernel, y.pointer),
  );
}
