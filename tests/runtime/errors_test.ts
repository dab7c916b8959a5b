import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { DTypeError, GemmakitError, NativeError, ShapeError } from "../../src/errors.ts";
import * as ops from "../../src/ops/mod.ts";
import { thrown } from "../helpers.ts";

const backend = Backend.open({ backend: "cpu" });
const t = (values: number[] | Float32Array, shape: number[], dtype: "f32" | "bf16" | "i32" = "f32") =>
  Tensor.fromArray(backend, values, shape, dtype);

Deno.test("shape mistakes fail in TypeScript with the op and both shapes", () => {
  using x = t(new Float32Array(6), [2, 3]);
  using w = t(new Float32Array(8), [2, 4], "bf16");
  const before = backend.memoryStats();
  const err = thrown(() => ops.linear(x, w), ShapeError);
  assert.match(err.message, /linear: x is f32\[2, 3\] but weight is bf16\[2, 4\]/);
  assert.ok(err instanceof GemmakitError && err.op === "linear");
  assert.deepEqual(backend.memoryStats(), before, "nothing allocated for a rejected call");

  using q = t(new Float32Array(2 * 3 * 8), [2, 3, 8]);
  using k = t(new Float32Array(2 * 2 * 8), [2, 2, 8]);
  assert.throws(() => ops.attentionPrefill(q, k, k, { scale: 1 }), /3 query heads are not a multiple of 2 kv heads/);
  using pos = t([0, 1, 2], [3], "i32");
  using inv = t(new Float32Array(4), [4]);
  assert.throws(() => ops.rope(q, pos, inv), /positions is i32\[3\]; expected shape \[2\]/);
  using a = t(new Float32Array(6), [2, 3]);
  using b = t(new Float32Array(2), [2]);
  assert.throws(() => ops.add(a, b), /b f32\[2\] does not broadcast to a f32\[2, 3\]/);
  using out = t(new Float32Array(5), [5]);
  assert.throws(() => ops.softmax(a, out), /out is f32\[5\]; expected shape \[2, 3\]/);
});

Deno.test("dtype mistakes are DTypeErrors", () => {
  using ids = t([1, 2], [2], "i32");
  using table = t(new Float32Array(12), [4, 3]);
  assert.throws(() => ops.embedding(ids, table), DTypeError);
  assert.throws(() => ops.rmsNorm(ids, null, { mode: "plain", eps: 1e-6 }), /x is i32\[2\]; expected dtype f32/);
  using w = t(new Float32Array(3), [3]);
  assert.throws(() => ops.rmsNorm(table, w, { mode: "plain", eps: 1e-6 }), /mode "plain" takes no weight/);
  assert.throws(() => ops.rmsNorm(table, null, { mode: "scale", eps: 1e-6 }), /needs a weight \[3\]/);
});

Deno.test("the native side re-checks arguments and returns a status instead of crashing", () => {
  const s = backend.symbols;
  using x = t(new Float32Array(4), [4]);
  const status = s.gk_linear(backend.stream, x.pointer, x.pointer, 0, null, 0, 1, 4, null);
  assert.equal(status, 1);
  const err = thrown(() => backend.check("gk_linear", status), NativeError);
  assert.equal(err.statusName, "invalid_argument");
  assert.match(err.nativeMessage, /gk_linear: NULL x, weight or y|gk_linear: m=0/);
  assert.equal(s.gk_rms_norm(backend.stream, x.pointer, null, 0, 7, 1e-6, 1, 4, x.pointer), 1);
  assert.equal(s.gk_attention_prefill(null, null, null, null, null, 1, 1, 1, 1, 64, 0, 1, 0, null, 1, 0), 1);
  assert.equal(s.gk_softmax(backend.stream, x.pointer, x.pointer, 1, -5), 1);
});

Deno.test("freeing a foreign or freed pointer is an error, not a crash", () => {
  const p = backend.alloc(64);
  backend.free(p);
  const err = thrown(() => backend.free(p), NativeError);
  assert.match(err.message, /gk_free: .* was not allocated by this context \(or was freed already\)/);
});

Deno.test("an out-of-range token id is reported with its index", () => {
  using table = t(new Float32Array(12), [4, 3]);
  using ids = t([1, 4], [2], "i32");
  assert.throws(() => ops.embedding(table, ids), /id 4 at index 1 is outside \[0, 4\)/);
});

Deno.test("an impossible allocation is out_of_memory with a hint", () => {
  const err = thrown(() => backend.alloc(2 ** 52), NativeError);
  assert.equal(err.statusName, "out_of_memory");
  assert.match(err.message, /hint: /);
});
