import { ShapeError } from "../errors.ts";
import type { Tensor } from "../runtime/tensor.ts";
import { expectDType, expectPositive, expectSameBackend, fmt, output, run } from "./check.ts";

type Binary = "gk_add" | "gk_mul" | "gk_gelu_tanh_mul";

function binary(op: string, symbol: Binary, a: Tensor, b: Tensor, out: Tensor | undefined, broadcast: boolean): Tensor {
  const backend = expectSameBackend(op, { a, b, out });
  expectDType(op, "a", a, ["f32"]);
  expectDType(op, "b", b, ["f32"]);
  // b broadcasts over a's leading axes when its shape is a suffix of a's.
  const suffix = a.shape.slice(a.shape.length - b.shape.length);
  const fits = broadcast
    ? b.shape.length <= a.shape.length && b.shape.every((d, i) => d === suffix[i])
    : b.shape.length === a.shape.length && b.shape.every((d, i) => d === a.shape[i]);
  if (!fits) {
    throw new ShapeError(op, `b ${fmt(b)} does not ${broadcast ? "broadcast to" : "match"} a ${fmt(a)}`);
  }
  const y = output(op, backend, a.shape, "f32", out);
  return run(op, backend, y, !out, () => {
    const s = backend.symbols;
    if (symbol === "gk_gelu_tanh_mul") {
      return s.gk_gelu_tanh_mul(backend.stream, a.pointer, b.pointer, y.pointer, BigInt(a.size));
    }
    return s[symbol](backend.stream, a.pointer, b.pointer, y.pointer, BigInt(a.size), BigInt(b.size));
  });
}

function unary(op: string, x: Tensor, out: Tensor | undefined, call: (y: Tensor) => number): Tensor {
  const backend = expectSameBackend(op, { x, out });
  expectDType(op, "x", x, ["f32"]);
  const y = output(op, backend, x.shape, "f32", out);
  return run(op, backend, y, !out, () => call(y));
}

/** a + b, with b broadcast over a's leading axes (b's shape a suffix of a's). `out` may alias a. */
export function add(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return binary("add", "gk_add", a, b, out, true);
}

/** a · b elementwise, with b broadcast like `add`. */
export function mul(a: Tensor, b: Tensor, out?: Tensor): Tensor {
  return binary("mul", "gk_mul", a, b, out, true);
}

/** gelu_tanh(gate) · up: the gated MLP product (same shapes). */
export function geluTanhMul(gate: Tensor, up: Tensor, out?: Tensor): Tensor {
  return binary("geluTanhMul", "gk_gelu_tanh_mul", gate, up, out, false);
}

/** x · alpha. */
export function scale(x: Tensor, alpha: number, out?: Tensor): Tensor {
  if (!Number.isFinite(alpha)) throw new ShapeError("scale", `alpha=${alpha} must be finite`);
  return unary(
    "scale",
    x,
    out,
    (y) => x.backend.symbols.gk_scale(x.backend.stream, x.pointer, y.pointer, BigInt(x.size), alpha),
  );
}

/** GELU, tanh approximation (transformers `gelu_pytorch_tanh`). */
export function geluTanh(x: Tensor, out?: Tensor): Tensor {
  return unary(
    "geluTanh",
    x,
    out,
    (y) => x.backend.symbols.gk_gelu_tanh(x.backend.stream, x.pointer, y.pointer, BigInt(x.size)),
  );
}

/** cap · tanh(x / cap): Gemma's logit softcapping. */
export function softcap(x: Tensor, cap: number, out?: Tensor): Tensor {
  expectPositive("softcap", "cap", cap);
  return unary(
    "softcap",
    x,
    out,
    (y) => x.backend.symbols.gk_softcap(x.backend.stream, x.pointer, y.pointer, BigInt(x.size), cap),
  );
}

/**
 * clamp(x, lo, hi) elementwise, as torch.clamp (NaN stays NaN). Bounds may be infinite; lo <= hi.
 * (Gemma 4's clipped linears clamp their input and output.)
 */
export function clamp(x: Tensor, lo: number, hi: number, out?: Tensor): Tensor {
  if (Number.isNaN(lo) || Number.isNaN(hi) || lo > hi) {
    throw new ShapeError("clamp", `bounds [${lo}, ${hi}] must be ordered and not NaN`);
  }
  return unary(
    "clamp",
    x,
    out,
    (y) => x.backend.symbols.gk_clamp(x.backend.stream, x.pointer, y.pointer, BigInt(x.size), lo, hi),
  );
}
