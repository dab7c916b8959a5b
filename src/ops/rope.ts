import { ShapeError } from "../errors.ts";
import { boundedInt, DIMENSION_BOUNDS } from "../runtime/bounds.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectRank, expectSameBackend, expectShape, fmt, run } from "./check.ts";

/** How a layer's rotary frequencies are made (transformers' rope_parameters, per layer type). */
export interface RopeSpec {
  /** Size of the rotated vectors (the attention head dim). */
  headDim: number;
  /** Base θ (rope_theta). */
  theta: number;
  /** Linear scaling factor: inv_freq is divided by it (rope_type "linear"; 1 = none). */
  factor?: number;
  /**
   * Fraction of frequency pairs that rotate (Gemma 4's "proportional" rope: 0.25 on global layers).
   * Frequencies keep the denominator headDim; the rest are zero, so those dims pass through.
   */
  partialRotaryFactor?: number;
}

const MAX_HEAD_DIM = DIMENSION_BOUNDS.head_dim;

/**
 * inv_freq [headDim/2] as transformers builds it in f32: `1 / θ^(arange(0, d, 2) / d)`, divided by the
 * linear factor, with zeros past the rotated pairs for proportional rope
 * (ref: transformers modeling_rope_utils `_compute_default_rope_parameters`, `_compute_proportional_...`).
 */
export function ropeInvFreq(spec: RopeSpec): Float32Array {
  const { headDim, theta, factor = 1, partialRotaryFactor = 1 } = spec;
  // Bounded first: the table is headDim/2 entries, and a huge headDim would spin here.
  boundedInt("ropeInvFreq", "headDim", headDim, 2, MAX_HEAD_DIM);
  if (headDim % 2 !== 0) {
    throw new ShapeError("ropeInvFreq", `headDim=${headDim} must be a positive even integer`);
  }
  const half = headDim / 2;
  const rotated = Math.floor((partialRotaryFactor * headDim) / 2);
  const f = Math.fround;
  const out = new Float32Array(half);
  for (let j = 0; j < rotated; j++) {
    const exponent = f(f(2 * j) / headDim);
    out[j] = f(f(1 / f(theta ** exponent)) / factor);
  }
  return out;
}

/**
 * Rotates f32 `x` [tokens, heads, headDim] in place by `positions` (i32 [tokens]) with `invFreq`
 * (f32 [rotaryDim/2], a device tensor of `ropeInvFreq`). Pairs (j, j + rotaryDim/2) rotate; dims past
 * rotaryDim (default headDim) pass through. Returns `x`.
 */
export function rope(x: Tensor, positions: Tensor, invFreq: Tensor, rotaryDim?: number): Tensor {
  const op = "rope";
  const backend = expectSameBackend(op, { x, positions, invFreq });
  expectDType(op, "x", x, ["f32"]);
  expectRank(op, "x", x, 3);
  const [tokens, heads, headDim] = x.shape;
  const rot = rotaryDim ?? headDim;
  if (!Number.isInteger(rot) || rot < 2 || rot % 2 !== 0 || rot > headDim) {
    throw new ShapeError(op, `rotaryDim=${rot} must be even and in [2, ${headDim}] for x ${fmt(x)}`);
  }
  expectDType(op, "positions", positions, ["i32"]);
  expectShape(op, "positions", positions, [tokens]);
  expectDType(op, "invFreq", invFreq, ["f32"]);
  expectShape(op, "invFreq", invFreq, [rot / 2]);
  return run(
    op,
    backend,
    x,
    false,
    () =>
      backend.symbols.gk_rope(
        backend.stream,
        x.pointer,
        tokens,
        heads,
        headDim,
        rot,
        positions.pointer,
        invFreq.pointer,
      ),
  );
}

/**
 * Multi-axis RoPE in place (transformers' apply_multidimensional_rope, Gemma 4's vision tower): f32 `x`
 * [tokens, heads, headDim] is split into `axes` equal parts; part a rotates by `positions` (i32 [tokens, axes])
 * column a with `invFreq` (f32 [headDim/(2·axes)]), pairs (j, j + part/2) within the part. Returns `x`.
 */
export function ropeAxes(x: Tensor, positions: Tensor, invFreq: Tensor): Tensor {
  const op = "ropeAxes";
  const backend = expectSameBackend(op, { x, positions, invFreq });
  expectDType(op, "x", x, ["f32"]);
  expectRank(op, "x", x, 3);
  expectDType(op, "positions", positions, ["i32"]);
  expectRank(op, "positions", positions, 2);
  const [tokens, heads, headDim] = x.shape;
  const axes = positions.shape[1];
  expectShape(op, "positions", positions, [tokens, axes]);
  if (axes < 1 || headDim % (2 * axes) !== 0) {
    throw new ShapeError(op, `head dim ${headDim} does not split into ${axes} parts of an even size (x ${fmt(x)})`);
  }
  expectDType(op, "invFreq", invFreq, ["f32"]);
  expectShape(op, "invFreq", invFreq, [headDim / (2 * axes)]);
  return run(
    op,
    backend,
    x,
    false,
    () =>
      backend.symbols.gk_rope_axes(
        backend.stream,
        x.pointer,
        tokens,
        heads,
        headDim,
        axes,
        positions.pointer,
        invFreq.pointer,
      ),
  );
}
