import assert from "node:assert/strict";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { DisposedError, ShapeError } from "../../src/errors.ts";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../src/runtime/dtype.ts";

Deno.test("tensors round-trip values in every dtype", () => {
  using backend = Backend.open({ backend: "cpu" });
  const values = [0, 1, -2.5, 3.140625, 65504, -1e-3];
  for (const dtype of ["f32", "bf16", "f16"] as const) {
    using t = Tensor.fromArray(backend, values, [2, 3], dtype);
    assert.deepEqual(t.shape, [2, 3]);
    assert.equal(t.byteLength, dtype === "f32" ? 24 : 12);
    const back = Array.from(t.toArray());
    values.forEach((v, i) => assert.ok(Math.abs(back[i] - v) <= Math.abs(v) * 2 ** -8, `${dtype}: ${back[i]} vs ${v}`));
  }
  using ids = Tensor.fromArray(backend, [7, -1, 2 ** 31 - 1], [3], "i32");
  assert.deepEqual(Array.from(ids.toArray()), [7, -1, 2 ** 31 - 1]);
});

Deno.test("bf16 and f16 conversions round to nearest even like torch", () => {
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to the even mantissa (1).
  assert.deepEqual(Array.from(bf16ToF32(f32ToBf16([1 + 2 ** -8, 1 + 3 * 2 ** -8, -0]))), [1, 1 + 2 ** -6, -0]);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16([NaN]))[0]));
  // f16: max finite, overflow to infinity, smallest subnormal, tie to even.
  assert.deepEqual(Array.from(f16ToF32(f32ToF16([65504, 65520, 2 ** -24, 1 + 2 ** -11]))), [
    65504,
    Infinity,
    2 ** -24,
    1,
  ]);
});

Deno.test("dispose is idempotent, frees memory, and using frees at scope exit", () => {
  using backend = Backend.open({ backend: "cpu" });
  const base = backend.memoryStats();
  const t = Tensor.zeros(backend, [1000]);
  assert.equal(backend.memoryStats().inUse, base.inUse + 4000);
  assert.equal(backend.memoryStats().allocations, base.allocations + 1);
  t.dispose();
  t.dispose();
  assert.equal(backend.memoryStats().inUse, base.inUse);
  assert.throws(() => t.toArray(), DisposedError);
  {
    using _scoped = Tensor.zeros(backend, [256, 4]);
    assert.equal(backend.memoryStats().inUse, base.inUse + 4096);
  }
  assert.equal(backend.memoryStats().inUse, base.inUse);
  assert.ok(backend.memoryStats().peak >= base.inUse + 4096);
  backend.resetPeak();
  assert.equal(backend.memoryStats().peak, base.inUse);
});

Deno.test("views share memory and die with their owner", () => {
  using backend = Backend.open({ backend: "cpu" });
  using t = Tensor.fromArray(backend, [0, 1, 2, 3, 4, 5], [3, 2]);
  const row = t.rows(1, 2);
  assert.deepEqual(Array.from(row.toArray()), [2, 3, 4, 5]);
  row.write([9, 9, 9, 9]);
  assert.deepEqual(Array.from(t.toArray()), [0, 1, 9, 9, 9, 9]);
  const flat = t.reshape([6]);
  const before = backend.memoryStats().inUse;
  flat.dispose(); // a view frees nothing
  assert.equal(backend.memoryStats().inUse, before);
  assert.deepEqual(Array.from(t.toArray()), [0, 1, 9, 9, 9, 9]);
  assert.throws(() => t.rows(2, 2), ShapeError);
  assert.throws(() => t.reshape([4]), ShapeError);
  t.dispose();
  assert.throws(() => row.toArray(), DisposedError);
});

Deno.test("bad shapes and value counts are ShapeErrors", () => {
  using backend = Backend.open({ backend: "cpu" });
  assert.throws(() => Tensor.empty(backend, [2, 0]), ShapeError);
  assert.throws(() => Tensor.empty(backend, [2.5]), ShapeError);
  assert.throws(() => Tensor.fromArray(backend, [1, 2, 3], [2, 2]), /3 values do not fill shape \[2, 2\]/);
  assert.throws(
    () => Tensor.fromBytes(backend, new Uint8Array(5), [2], "bf16"),
    /5 bytes for bf16\[2\], which needs 4/,
  );
});

Deno.test("disposing the backend frees every tensor it still owns", () => {
  const backend = Backend.open({ backend: "cpu" });
  const t = Tensor.zeros(backend, [10]);
  backend.dispose();
  backend.dispose();
  assert.throws(() => t.toArray(), DisposedError);
  t.dispose(); // no-op, never a double free
  assert.throws(() => backend.memoryStats(), DisposedError);
});

Deno.test("forgotten tensors are freed by the garbage-collection backstop", async () => {
  // Needs --expose-gc, so it runs in a child process.
  const script = `
    import { Backend } from "${new URL("../../src/runtime/backend.ts", import.meta.url)}";
    import { Tensor } from "${new URL("../../src/runtime/tensor.ts", import.meta.url)}";
    const backend = Backend.open({ backend: "cpu" });
    (() => { for (let i = 0; i < 50; i++) Tensor.zeros(backend, [1024]); })();
    const leaked = backend.memoryStats().inUse;
    for (let i = 0; i < 20 && backend.memoryStats().inUse > 0; i++) {
      globalThis.gc();
      await new Promise((r) => setTimeout(r, 10));
    }
    console.log(JSON.stringify({ leaked, after: backend.memoryStats().inUse }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = out.stdin.getWriter();
  await w.write(new TextEncoder().encode(script));
  await w.close();
  const { stdout, stderr, success } = await out.output();
  assert.ok(success, new TextDecoder().decode(stderr));
  const { leaked, after } = JSON.parse(new TextDecoder().decode(stdout));
  assert.equal(leaked, 50 * 4096);
  assert.equal(after, 0);
});
