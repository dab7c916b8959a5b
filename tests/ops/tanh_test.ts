/**
 * The CPU's vectorised tanh (kernels/cpu/simd.h vtanh, behind gk_softcap and gk_gelu_tanh) against double
 * precision over a dense sweep of every binade — subnormals, tiny, near the small/large switch at ln(3)/2, large,
 * both signs — and ±0, ±inf, NaN. The parity table's random rows cannot see a bad binade or a non-finite input.
 *
 * tanh (gk_softcap with cap 1: x / 1 is exact) is held to 2 ulp of the f32 result (measured: 1.3 here, 1.5 over
 * every 7th positive float). GELU's 0.5 x (1 + tanh(·)) cancels for negative x in f32 (in torch too), so its
 * error is stated in ulps of x / 2, the scale of its terms (measured: 2.6); for x >= 0 there is no cancellation
 * and it is held to 3 ulp of the result (measured: 1.5).
 */
import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { geluTanh, softcap } from "../../src/ops/elementwise.ts";
import { geluTanh as referenceGelu } from "./reference.ts";

/** One unit in the last place of an f32 of magnitude |v| (2^-149 for subnormals and 0). */
function ulp(v: number): number {
  const a = Math.abs(v);
  if (a < 2 ** -126) return 2 ** -149;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--; // log2 rounding just below a power of two
  else if (2 ** (e + 1) <= a) e++;
  return 2 ** (e - 23);
}

/** Every binade, both signs: f32 bit patterns at a stride coprime to 2^23 (~800 per binade), then specials. */
function sweep(): Float32Array {
  const bits: number[] = [];
  for (let b = 0; b < 0x7f800000; b += 10007) bits.push(b, b | 0x80000000);
  const xs = new Float32Array(new Uint32Array(bits).buffer);
  const dense = Array.from({ length: 40001 }, (_, i) => -10 + i * 5e-4); // the range activations live in
  const specials = [0, -0, Infinity, -Infinity, NaN, 2 ** -149, -(2 ** -149), 2 ** -126, 3.4028234663852886e38];
  return Float32Array.from([...xs, ...dense, ...specials, 0.5493061443340549, -0.5493061443340549]);
}

function sameNonFinite(got: number, want: number, what: string): boolean {
  if (Number.isNaN(want)) {
    assert.ok(Number.isNaN(got), `${what}: ${got}, expected NaN`);
    return true;
  }
  if (want === 0) assert.ok(Object.is(got, Math.fround(want)) || got === 0, `${what}: ${got}, expected ${want}`);
  if (!Number.isFinite(want)) {
    assert.equal(got, want, what);
    return true;
  }
  return false;
}

Deno.test("[cpu] vectorised tanh (gk_softcap, cap 1): within 2 ulp of double tanh over every binade", () => {
  using cpu = Backend.open({ backend: "cpu" });
  const x = sweep();
  using tx = Tensor.fromArray(cpu, x, [x.length]);
  using ty = softcap(tx, 1);
  const y = ty.toArray() as Float32Array;
  let worst = 0, at = 0;
  for (let i = 0; i < x.length; i++) {
    const want = Math.tanh(x[i]);
    if (sameNonFinite(y[i], want, `tanh(${x[i]})`)) continue;
    if (x[i] === 0) assert.ok(Object.is(y[i], x[i]), `tanh(${Object.is(x[i], -0) ? "-0" : "0"}) = ${y[i]}`);
    const err = Math.abs(y[i] - want) / ulp(want);
    if (err > worst) [worst, at] = [err, x[i]];
  }
  assert.ok(worst <= 2, `tanh: ${worst.toFixed(3)} ulp at x = ${at}`);
});

Deno.test("[cpu] vectorised gelu_tanh: within 3 ulp of x/2 of the double formula over every binade", () => {
  using cpu = Backend.open({ backend: "cpu" });
  const x = sweep();
  using tx = Tensor.fromArray(cpu, x, [x.length]);
  using ty = geluTanh(tx);
  const y = ty.toArray() as Float32Array;
  let worst = 0, at = 0, worstPos = 0, atPos = 0;
  for (let i = 0; i < x.length; i++) {
    const want = referenceGelu(x[i]);
    if (sameNonFinite(y[i], want, `gelu_tanh(${x[i]})`)) continue;
    const err = Math.abs(y[i] - want) / ulp(x[i] / 2);
    if (err > worst) [worst, at] = [err, x[i]];
    if (x[i] >= 0) {
      const e = Math.abs(y[i] - want) / ulp(want);
      if (e > worstPos) [worstPos, atPos] = [e, x[i]];
    }
  }
  assert.ok(worst <= 3, `gelu_tanh: ${worst.toFixed(3)} ulp of x/2 at x = ${at}`);
  assert.ok(worstPos <= 3, `gelu_tanh, x >= 0: ${worstPos.toFixed(3)} ulp at x = ${atPos}`);
});
