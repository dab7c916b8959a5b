import assert from "node:assert/strict";
import { join } from "node:path";
import { Backend } from "../../src/runtime/backend.ts";
import { Tensor } from "../../src/runtime/tensor.ts";
import { type DType, DTYPE_BYTES, encode, roundTo } from "../../src/runtime/dtype.ts";
import { GemmakitError } from "../../src/errors.ts";
import { FormatError } from "../../src/errors.ts";
import { openSafetensors } from "../../src/formats/safetensors.ts";
import { checkWeights, forLayers, loadWeights, type WeightSpec } from "../../src/models/common/weights.ts";
import type { SourceTensor, WeightSource } from "../../src/formats/weight_source.ts";
import { WeightsError } from "../../src/errors.ts";
import { thrown } from "../helpers.ts";

const backend = Backend.open({ backend: "cpu" });

const valuesFor = (name: string, n: number) => Array.from({ length: n }, (_, i) => name.length + i * 0.25);

/** An in-memory checkpoint: the loader only sees the WeightSource interface, as it will for GGUF. */
class FakeSource implements WeightSource {
  readonly path = "fake.ckpt";
  readonly tensors: SourceTensor[];
  readonly loads: string[] = [];
  failOn?: string;

  constructor(list: [name: string, dtype: string, shape: number[]][]) {
    this.tensors = list.map(([name, dtype, shape]) => ({
      name,
      dtype,
      shape,
      bytes: shape.reduce((a, b) => a * b, 1) * (DTYPE_BYTES[dtype as "f32"] ?? 8),
    }));
  }

  loadTensor(backend: Backend, name: string, options: { dtype?: DType } = {}): Tensor {
    if (name === this.failOn) throw new Error(`disk error while reading ${name}`);
    this.loads.push(name);
    const t = this.tensors.find((x) => x.name === name)!;
    const n = t.shape.reduce((a, b) => a * b, 1);
    return Tensor.fromArray(backend, valuesFor(name, n), t.shape, options.dtype ?? (t.dtype as DType));
  }
}

const gemmaLike = () =>
  new FakeSource([
    ["model.embed_tokens.weight", "bf16", [16, 4]],
    ["model.layers.0.input_layernorm.weight", "f32", [4]],
    ["model.layers.0.self_attn.q_proj.weight", "bf16", [8, 4]],
    ["model.layers.1.input_layernorm.weight", "f32", [4]],
    ["model.layers.1.self_attn.q_proj.weight", "bf16", [8, 4]],
    ["model.norm.weight", "f32", [4]],
  ]);

const gemmaRows = (): WeightSpec[] => [
  { name: "model.embed_tokens.weight", shape: [16, 4] },
  ...forLayers(2, [
    { name: "model.layers.{i}.input_layernorm.weight", shape: [4] },
    { name: "model.layers.{i}.self_attn.q_proj.weight", shape: [8, 4], dtypes: ["bf16"] },
  ]),
  { name: "model.norm.weight", shape: [4] },
];

Deno.test("a matching table loads every tensor under its row name", () => {
  const source = gemmaLike();
  const base = backend.memoryStats().inUse;
  const weights = loadWeights(backend, source, gemmaRows());
  assert.deepEqual([...weights.keys()], source.tensors.map((t) => t.name), "file order");
  const q = weights.get("model.layers.1.self_attn.q_proj.weight")!;
  assert.equal(q.dtype, "bf16");
  assert.deepEqual(q.shape, [8, 4]);
  assert.deepEqual(q.toArray(), roundTo(valuesFor("model.layers.1.self_attn.q_proj.weight", 32), "bf16"));
  for (const t of weights.values()) t.dispose();
  assert.equal(backend.memoryStats().inUse, base);
});

Deno.test("forLayers expands {i} in names and aliases; other rows pass through", () => {
  const rows = forLayers(3, [
    { name: "a.{i}.w", shape: [1], aliases: ["b.{i}.w"] },
    { name: "norm", shape: [1] },
  ]);
  assert.deepEqual(rows.map((r) => [r.name, r.aliases]), [
    ["a.0.w", ["b.0.w"]],
    ["a.1.w", ["b.1.w"]],
    ["a.2.w", ["b.2.w"]],
    ["norm", undefined],
  ]);
});

Deno.test("every mismatch is reported together in one WeightsError, and nothing is loaded", () => {
  const source = new FakeSource([
    ["embed", "bf16", [16, 5]], // wrong shape
    ["q", "f32", [8, 4]], // dtype not allowed by its row
    ["k", "F64", [8, 4]], // a dtype we cannot hold at all
    ["v", "bf16", [4, 4]], // claimed twice (by its own row and as another row's alias)
    ["norm", "f32", [4]],
  ]);
  const rows: WeightSpec[] = [
    { name: "embed", shape: [16, 4] },
    { name: "q", shape: [8, 4], dtypes: ["bf16"] },
    { name: "k", shape: [8, 4] },
    { name: "v", shape: [4, 4] },
    { name: "o", shape: [4, 8], aliases: ["v"] },
    { name: "missing.weight", shape: [4, 4], aliases: ["alt.missing.weight"] },
    { name: "norm", shape: [4] },
    { name: "norm", shape: [4] },
  ];
  const base = backend.memoryStats().inUse;
  const err = thrown(() => loadWeights(backend, source, rows), WeightsError);
  assert.ok(err instanceof GemmakitError && err.op === "weights");
  const expected = [
    "embed: shape [16, 5], expected [16, 4]",
    "q: dtype f32, expected one of bf16",
    "k: dtype F64, expected one of f32, f16, bf16",
    "o (as v): tensor v is already claimed by row v",
    "missing.weight: missing (nor alt.missing.weight); expected [4, 4]",
    "norm: row appears twice in the weight table",
  ];
  assert.deepEqual(err.problems, expected);
  assert.ok(err.message.startsWith("weights: fake.ckpt does not match the model (6 problems):\n  - embed: shape"));
  for (const p of expected) assert.ok(err.message.includes(`\n  - ${p}`), p);
  assert.deepEqual(source.loads, [], "checked before anything is read");
  assert.equal(backend.memoryStats().inUse, base);
});

Deno.test("optional rows may be absent; present ones load", () => {
  const source = gemmaLike();
  const rows: WeightSpec[] = [
    ...gemmaRows().map((r) => (r.name === "model.norm.weight" ? { ...r, required: false } : r)),
    { name: "lm_head.weight", shape: [16, 4], required: false }, // tied to the embedding: absent
  ];
  const { found, unclaimed } = checkWeights(source, rows);
  assert.equal(found.has("lm_head.weight"), false);
  assert.deepEqual(unclaimed, []);
  const weights = loadWeights(backend, source, rows);
  assert.equal(weights.has("lm_head.weight"), false);
  assert.ok(weights.has("model.norm.weight"));
  for (const t of weights.values()) t.dispose();
  assert.throws(() => checkWeights(source, [{ name: "lm_head.weight", shape: [16, 4] }]), /lm_head.weight: missing/);
});

Deno.test("aliases: the row's own name first, then aliases in order; results keyed by the row name", () => {
  const source = new FakeSource([
    ["language_model.model.layers.0.mlp.up_proj.weight", "bf16", [8, 4]],
    ["model.language_model.norm.weight", "f32", [4]],
    ["language_model.model.norm.weight", "f32", [4]],
    ["alt2.embed", "bf16", [16, 4]],
    ["alt1.embed", "bf16", [16, 4]],
  ]);
  const rows: WeightSpec[] = [
    {
      name: "model.language_model.layers.0.mlp.up_proj.weight",
      shape: [8, 4],
      aliases: ["language_model.model.layers.0.mlp.up_proj.weight"],
    },
    { name: "model.language_model.norm.weight", shape: [4], aliases: ["language_model.model.norm.weight"] },
    { name: "embed", shape: [16, 4], aliases: ["alt1.embed", "alt2.embed"] },
  ];
  const { found, unclaimed } = checkWeights(source, rows);
  assert.equal(found.get(rows[0].name)!.name, "language_model.model.layers.0.mlp.up_proj.weight");
  assert.equal(found.get(rows[1].name)!.name, "model.language_model.norm.weight", "the row's own name wins");
  assert.equal(found.get("embed")!.name, "alt1.embed", "the first alias wins");
  assert.deepEqual(unclaimed, ["language_model.model.norm.weight", "alt2.embed"]);
  const weights = loadWeights(backend, source, rows);
  assert.deepEqual([...weights.keys()].sort(), rows.map((r) => r.name).sort());
  for (const t of weights.values()) t.dispose();
  assert.ok(!source.loads.includes("alt2.embed"), "unclaimed tensors are not read");
});

Deno.test("tensors no row claims come back as warnings, not errors", () => {
  const source = gemmaLike();
  const rows = gemmaRows().filter((r) => !r.name.startsWith("model.layers.1."));
  const { unclaimed } = checkWeights(source, rows);
  assert.deepEqual(unclaimed, ["model.layers.1.input_layernorm.weight", "model.layers.1.self_attn.q_proj.weight"]);
});

Deno.test("progress reports stored bytes of the loaded tensors and ends at the total", () => {
  const source = gemmaLike();
  const rows = gemmaRows().filter((r) => r.name !== "model.norm.weight"); // norm is unclaimed: not counted
  const calls: [number, number, string][] = [];
  const weights = loadWeights(backend, source, rows, {
    onProgress: (done, total, name) => calls.push([done, total, name]),
  });
  const total = 64 * 2 + 2 * (4 * 4 + 32 * 2);
  assert.equal(calls.length, 5);
  assert.ok(calls.every(([, t]) => t === total));
  assert.deepEqual(calls.map(([d]) => d), [128, 144, 208, 224, 288]);
  assert.deepEqual(calls.map(([, , n]) => n), source.tensors.slice(0, 5).map((t) => t.name));
  for (const t of weights.values()) t.dispose();
});

Deno.test("loadAs converts on load; the stored dtype is what the row checks", () => {
  const source = gemmaLike();
  const rows = gemmaRows().map((r) => (r.name.endsWith("layernorm.weight") ? r : { ...r, loadAs: "f32" as const }));
  const weights = loadWeights(backend, source, rows);
  const embed = weights.get("model.embed_tokens.weight")!;
  assert.equal(embed.dtype, "f32");
  assert.deepEqual(embed.toArray(), Float32Array.from(valuesFor("model.embed_tokens.weight", 64)));
  assert.throws(
    () => checkWeights(source, [{ name: "model.embed_tokens.weight", shape: [16, 4], dtypes: ["f32"], loadAs: "f32" }]),
    /model.embed_tokens.weight: dtype bf16, expected one of f32/,
  );
  for (const t of weights.values()) t.dispose();
});

Deno.test("a load that fails midway disposes what it loaded and rethrows", () => {
  const source = gemmaLike();
  source.failOn = "model.layers.1.input_layernorm.weight";
  const base = backend.memoryStats();
  const err = thrown(() => loadWeights(backend, source, gemmaRows()), Error);
  assert.match(err.message, /disk error while reading model.layers.1.input_layernorm.weight/);
  assert.equal(source.loads.length, 3, "three tensors were on the device before the failure");
  assert.equal(backend.memoryStats().inUse, base.inUse);
  assert.equal(backend.memoryStats().allocations, base.allocations);

  // A throwing progress callback is a failure too: the tensor just loaded is disposed with the rest.
  const calls = () => {
    throw new Error("cancelled");
  };
  assert.throws(() => loadWeights(backend, gemmaLike(), gemmaRows(), { onProgress: calls }), /cancelled/);
  assert.equal(backend.memoryStats().inUse, base.inUse);
});

Deno.test("end to end with a real safetensors file truncated after opening: no device memory left", () => {
  const dir = Deno.makeTempDirSync({ prefix: "gemmakit-w-" });
  try {
    const path = join(dir, "model.safetensors");
    // A minimal writer (tests/formats/safetensors_test.ts has the full one).
    const tensors = [["a", [4, 4]], ["b", [4, 4]], ["c", [64]]] as const;
    const header: Record<string, unknown> = {};
    let offset = 0;
    for (const [name, shape] of tensors) {
      const bytes = shape.reduce((x: number, y: number) => x * y, 1) * 2;
      header[name] = { dtype: "BF16", shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    const json = new TextEncoder().encode(JSON.stringify(header));
    const file = new Uint8Array(8 + json.length + offset);
    new DataView(file.buffer).setBigUint64(0, BigInt(json.length), true);
    file.set(json, 8);
    file.set(encode(valuesFor("x", offset / 2), "bf16"), 8 + json.length);
    Deno.writeFileSync(path, file);

    using st = openSafetensors(path);
    const rows: WeightSpec[] = [{ name: "a", shape: [4, 4] }, { name: "b", shape: [4, 4] }, { name: "c", shape: [64] }];
    const base = backend.memoryStats().inUse;
    const ok = loadWeights(backend, st, rows);
    assert.deepEqual(ok.get("b")!.toArray(), roundTo(valuesFor("x", 48).slice(16, 32), "bf16"));
    for (const t of ok.values()) t.dispose();

    Deno.truncateSync(path, st.get("c")!.byteRange[0] + 10);
    const err = thrown(() => loadWeights(backend, st, rows), FormatError);
    assert.match(err.message, /file ended after 10 of 128 bytes of tensor "c"/);
    assert.equal(backend.memoryStats().inUse, base);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
