import assert from "node:assert/strict";
import { join } from "node:path";
import { Backend } from "../../src/runtime/backend.ts";
import { DisposedError, DTypeError, GemmakitError } from "../../src/errors.ts";
import { encode, roundTo } from "../../src/runtime/dtype.ts";
import { FormatError } from "../../src/errors.ts";
import { openSafetensors, openSafetensorsDir, ShardedSafetensors } from "../../src/formats/safetensors.ts";
import { thrown } from "../helpers.ts";

// A tiny safetensors writer: the format is simple enough that the test owns its fixtures byte for byte.
interface Entry {
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/** Writes `header` (an object, or raw text) padded to 8 bytes, then `data`; `length` overrides the u64 prefix. */
function writeRaw(path: string, header: unknown, data: Uint8Array = new Uint8Array(), length?: bigint): void {
  let text = typeof header === "string" ? header : JSON.stringify(header);
  text += " ".repeat((8 - (text.length % 8)) % 8); // safetensors pads the header with spaces
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, length ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  Deno.writeFileSync(path, out);
}

/** Writes well-formed tensors back to back, in the given order. */
function writeSafetensors(path: string, tensors: Record<string, Entry>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    chunks.push(t.data);
    offset += t.data.length;
  }
  const data = new Uint8Array(offset);
  chunks.reduce((at, c) => (data.set(c, at), at + c.length), 0);
  writeRaw(path, header, data);
}

const floats = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => Math.sin(seed * 7.3 + i * 1.7) * 3);
const entry = (dtype: "F32" | "F16" | "BF16" | "I32", shape: number[], values: number[]): Entry => ({
  dtype,
  shape,
  data: encode(values, ({ F32: "f32", F16: "f16", BF16: "bf16", I32: "i32" } as const)[dtype]),
});

function withTempDir(fn: (dir: string) => void): () => void {
  return () => {
    const dir = Deno.makeTempDirSync({ prefix: "gemmakit-st-" });
    try {
      fn(dir);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

Deno.test(
  "tensors of every supported dtype round-trip through a file",
  withTempDir((dir) => {
    using backend = Backend.open({ backend: "cpu" });
    const path = join(dir, "model.safetensors");
    const big = floats(300_000, 3);
    const tensors = {
      "a.f32": entry("F32", [2, 3], floats(6)),
      "b.bf16": entry("BF16", [4, 5], floats(20, 2)),
      "c.f16": entry("F16", [2, 2, 2], floats(8, 4)),
      "d.i32": entry("I32", [3], [7, -1, 2 ** 31 - 1]),
      "e.scalar": entry("F32", [], [42]),
      "f.big": entry("BF16", [600, 500], big),
    };
    writeSafetensors(path, tensors, { format: "pt" });
    const base = backend.memoryStats().inUse;
    {
      using st = openSafetensors(path);
      assert.deepEqual(st.metadata, { format: "pt" });
      assert.deepEqual(st.tensors.map((t) => [t.name, t.dtype, t.shape, t.bytes]), [
        ["a.f32", "f32", [2, 3], 24],
        ["b.bf16", "bf16", [4, 5], 40],
        ["c.f16", "f16", [2, 2, 2], 16],
        ["d.i32", "i32", [3], 12],
        ["e.scalar", "f32", [], 4],
        ["f.big", "bf16", [600, 500], 600_000],
      ]);
      const info = st.get("b.bf16")!;
      assert.equal(info.storedDtype, "BF16");
      assert.equal(info.byteRange[1] - info.byteRange[0], 40);
      assert.equal(info.file, path);
      for (const [name, e] of Object.entries(tensors)) {
        assert.deepEqual(st.readBytes(name), e.data, name);
        using t = st.loadTensor(backend, name);
        assert.deepEqual(t.toBytes(), e.data, `${name} keeps its stored dtype`);
      }
      // Host conversion on request: bf16/f16 → f32 exactly (every bf16/f16 value is an f32), f32 → bf16 rounds.
      using wide = st.loadTensor(backend, "f.big", { dtype: "f32" });
      assert.equal(wide.dtype, "f32");
      assert.deepEqual(wide.toArray(), roundTo(big, "bf16"));
      using half = st.loadTensor(backend, "c.f16", { dtype: "f32" });
      assert.deepEqual(half.toArray(), roundTo(floats(8, 4), "f16"));
      using narrow = st.loadTensor(backend, "a.f32", { dtype: "bf16" });
      assert.deepEqual(narrow.toArray(), roundTo(floats(6), "bf16"));
      assert.throws(() => st.loadTensor(backend, "d.i32", { dtype: "f32" }), DTypeError);
    }
    assert.equal(backend.memoryStats().inUse, base);
  }),
);

Deno.test(
  "a directory with model.safetensors opens as one file",
  withTempDir((dir) => {
    writeSafetensors(join(dir, "model.safetensors"), { w: entry("F32", [2], [1, 2]) });
    using st = openSafetensorsDir(dir);
    assert.deepEqual(st.tensors.map((t) => t.name), ["w"]);
    assert.equal(st.path, join(dir, "model.safetensors"));
  }),
);

Deno.test(
  "a sharded checkpoint round-trips through its index",
  withTempDir((dir) => {
    using backend = Backend.open({ backend: "cpu" });
    const shard1 = {
      "embed.weight": entry("BF16", [8, 4], floats(32)),
      "norm.weight": entry("F32", [4], [1, 2, 3, 4]),
    };
    const shard2 = { "layers.0.q.weight": entry("F16", [4, 4], floats(16, 5)) };
    writeSafetensors(join(dir, "model-00001-of-00002.safetensors"), shard1, { format: "pt" });
    writeSafetensors(join(dir, "model-00002-of-00002.safetensors"), shard2);
    const weightMap = {
      "embed.weight": "model-00001-of-00002.safetensors",
      "layers.0.q.weight": "model-00002-of-00002.safetensors",
      "norm.weight": "model-00001-of-00002.safetensors",
    };
    Deno.writeTextFileSync(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ metadata: { total_size: 100 }, weight_map: weightMap }),
    );
    using st = openSafetensorsDir(dir);
    assert.ok(st instanceof ShardedSafetensors);
    assert.equal(st.shards.length, 2);
    assert.deepEqual(st.metadata, { format: "pt", total_size: "100" });
    assert.deepEqual(st.tensors.map((t) => t.name).sort(), Object.keys(weightMap).sort());
    assert.equal(st.get("layers.0.q.weight")!.file, join(dir, "model-00002-of-00002.safetensors"));
    for (const [name, e] of Object.entries({ ...shard1, ...shard2 })) {
      using t = st.loadTensor(backend, name);
      assert.deepEqual(t.toBytes(), e.data, name);
    }
  }),
);

Deno.test(
  "file-level problems: too short, bad header length, bad JSON",
  withTempDir((dir) => {
    const path = join(dir, "bad.safetensors");
    const expect = (pattern: RegExp) => {
      const err = thrown(() => openSafetensors(path), FormatError);
      assert.ok(err instanceof GemmakitError && err.op === "safetensors");
      assert.equal(err.file, path);
      assert.ok(err.message.includes(path), "the message names the file");
      assert.match(err.message, pattern);
      return err;
    };
    Deno.writeFileSync(path, new Uint8Array(5));
    expect(/file is 5 bytes, shorter than the 8-byte header length/);
    writeRaw(path, "{}", new Uint8Array(), 0n);
    expect(/header length is 0/);
    writeRaw(path, "{}", new Uint8Array(), 100_000_001n);
    expect(/header length 100000001 exceeds the 100000000-byte limit/);
    writeRaw(path, "{}", new Uint8Array(), 2n ** 63n);
    expect(/exceeds the 100000000-byte limit/);
    writeRaw(path, "{}", new Uint8Array(), 64n);
    expect(/header length 64 runs past the end of the 16-byte file/);
    writeRaw(path, '{"a": {"dtype": "F32",');
    expect(/header is not valid UTF-8 JSON/);
    writeRaw(path, "[1, 2]");
    expect(/header is an array, not a JSON object/);
    writeRaw(path, "null");
    expect(/header is null, not a JSON object/);
    const missing = thrown(() => openSafetensors(join(dir, "nope.safetensors")), FormatError);
    assert.match(missing.message, /nope\.safetensors: cannot open/);
    assert.match(thrown(() => openSafetensors(dir), FormatError).message, /is a directory/);
  }),
);

Deno.test(
  "every header problem of a file is reported at once, one line each",
  withTempDir((dir) => {
    const path = join(dir, "bad.safetensors");
    const header = {
      __metadata__: { format: "pt", step: 3 },
      "ok": { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      "no.dtype": { shape: [2], data_offsets: [8, 16] },
      "no.shape": { dtype: "F32", data_offsets: [8, 16] },
      "no.offsets": { dtype: "F32", shape: [2] },
      "shape.type": { dtype: "F32", shape: "2x2", data_offsets: [8, 16] },
      "dtype.type": { dtype: 4, shape: [1], data_offsets: [8, 12] },
      "neg.dim": { dtype: "F32", shape: [2, -1], data_offsets: [8, 16] },
      "frac.dim": { dtype: "F32", shape: [1.5], data_offsets: [8, 16] },
      "unknown.dtype": { dtype: "F128", shape: [1], data_offsets: [8, 24] },
      "order": { dtype: "F32", shape: [1], data_offsets: [20, 16] },
      "past.end": { dtype: "F32", shape: [4], data_offsets: [24, 40] },
      "size": { dtype: "BF16", shape: [3], data_offsets: [8, 16] },
      "overlap": { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      "not.object": [1, 2],
    };
    writeRaw(path, header, new Uint8Array(32));
    const err = thrown(() => openSafetensors(path), FormatError);
    const expected = [
      /__metadata__ "step" is 3, not a string/,
      /tensor "no.dtype": missing dtype/,
      /tensor "no.shape": missing shape/,
      /tensor "no.offsets": missing data_offsets/,
      /tensor "shape.type": shape "2x2" is not an array/,
      /tensor "dtype.type": dtype 4 is not a string/,
      /tensor "neg.dim": shape \[2,-1\] must hold non-negative integers/,
      /tensor "frac.dim": shape \[1.5\] must hold non-negative integers/,
      /tensor "unknown.dtype": unknown dtype "F128" \(safetensors has BOOL, .*BF16/,
      /tensor "order": data_offsets \[20, 16\] are out of order/,
      /tensor "past.end": data_offsets \[24, 40\] run past the end of the data section \(32 bytes\)/,
      /tensor "size": BF16\[3\] needs 6 bytes but data_offsets \[8, 16\] hold 8/,
      /tensors "ok" \[0, 8\] and "overlap" \[4, 12\] overlap/,
      /tensor "not.object": entry is \[1,2\], not an object/,
    ];
    assert.equal(err.problems.length, expected.length, err.message);
    for (const pattern of expected) {
      assert.ok(err.problems.some((p) => pattern.test(p)), `${pattern} in:\n${err.message}`);
    }
    assert.ok(err.message.startsWith(`safetensors: ${path}: 14 problems:\n  - `), err.message);
    assert.equal(err.message.split("\n").length, 1 + expected.length, "one line per problem");
  }),
);

Deno.test(
  "a file truncated after a valid header is rejected when opened",
  withTempDir((dir) => {
    const path = join(dir, "model.safetensors");
    writeSafetensors(path, { a: entry("F32", [4], [1, 2, 3, 4]), b: entry("F32", [4], [5, 6, 7, 8]) });
    Deno.truncateSync(path, Deno.statSync(path).size - 10);
    const err = thrown(() => openSafetensors(path), FormatError);
    assert.match(err.message, /tensor "b": data_offsets \[16, 32\] run past the end of the data section \(22 bytes\)/);
  }),
);

Deno.test(
  "a file truncated after opening fails at load time, with no partial tensor and no leak",
  withTempDir((dir) => {
    using backend = Backend.open({ backend: "cpu" });
    const path = join(dir, "model.safetensors");
    writeSafetensors(path, { a: entry("F32", [4], [1, 2, 3, 4]), b: entry("F32", [256], floats(256)) });
    using st = openSafetensors(path);
    Deno.truncateSync(path, st.get("b")!.byteRange[0] + 100);
    const base = backend.memoryStats().inUse;
    using a = st.loadTensor(backend, "a");
    assert.deepEqual(Array.from(a.toArray()), [1, 2, 3, 4]);
    const err = thrown(() => st.loadTensor(backend, "b"), FormatError);
    assert.match(err.message, /file ended after 100 of 1024 bytes of tensor "b"/);
    assert.match(err.message, /hint: the file was truncated or replaced after it was opened/);
    assert.equal(backend.memoryStats().inUse, base + 16, "only tensor a is on the device");
  }),
);

Deno.test(
  "unsupported and empty tensors list fine and fail only when loaded",
  withTempDir((dir) => {
    using backend = Backend.open({ backend: "cpu" });
    const path = join(dir, "model.safetensors");
    writeSafetensors(path, {
      "x.f64": { dtype: "F64", shape: [2], data: new Uint8Array(16) },
      "mask": { dtype: "BOOL", shape: [3], data: new Uint8Array(3) },
      "packed": { dtype: "F4", shape: [2, 3], data: new Uint8Array(3) },
      "empty": { dtype: "F32", shape: [0, 4], data: new Uint8Array() },
      "fine": entry("F32", [1], [1]),
    });
    using st = openSafetensors(path);
    assert.deepEqual(st.tensors.map((t) => [t.name, t.dtype]), [
      ["x.f64", "F64"],
      ["mask", "BOOL"],
      ["packed", "F4"],
      ["empty", "f32"],
      ["fine", "f32"],
    ]);
    const err = thrown(() => st.loadTensor(backend, "x.f64"), FormatError);
    assert.match(err.message, /unsupported dtype F64 for tensor "x.f64"/);
    assert.match(thrown(() => st.loadTensor(backend, "packed"), FormatError).message, /unsupported dtype F4/);
    assert.match(thrown(() => st.loadTensor(backend, "empty"), FormatError).message, /\[0, 4\] has no elements/);
    assert.match(thrown(() => st.loadTensor(backend, "nope"), FormatError).message, /no tensor "nope" \(5 tensors\)/);
    st.close();
    st.close();
    assert.throws(() => st.loadTensor(backend, "fine"), DisposedError);
  }),
);

Deno.test(
  "sharded checkpoints report every shard and index problem together",
  withTempDir((dir) => {
    writeSafetensors(join(dir, "s1.safetensors"), { a: entry("F32", [1], [1]), dup: entry("F32", [1], [2]) });
    writeSafetensors(join(dir, "s2.safetensors"), { b: entry("F32", [1], [3]), dup: entry("F32", [1], [4]) });
    writeRaw(join(dir, "s3.safetensors"), { c: { dtype: "F32", shape: [2], data_offsets: [0, 4] } }, new Uint8Array(4));
    const weightMap = {
      a: "s1.safetensors",
      b: "s1.safetensors", // b is in s2
      dup: "s1.safetensors",
      ghost: "s2.safetensors", // in no shard
      c: "s3.safetensors", // s3's header is bad
      d: "s4.safetensors", // s4 is missing
    };
    Deno.writeTextFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
    const err = thrown(() => openSafetensorsDir(dir), FormatError);
    assert.equal(err.file, dir);
    const expected = [
      /shard s4.safetensors named in the index \(for 1 tensors\) is missing/,
      /s3.safetensors: tensor "c": F32\[2\] needs 8 bytes but data_offsets \[0, 4\] hold 4/,
      /tensor "dup" is in both s1.safetensors and s2.safetensors/,
      /index maps "b" to s1.safetensors, which does not contain it \(it is in s2.safetensors\)/,
      /index maps "ghost" to s2.safetensors, which does not contain it$/,
    ];
    assert.equal(err.problems.length, expected.length, err.message);
    for (const pattern of expected) assert.ok(err.problems.some((p) => pattern.test(p)), `${pattern}:\n${err.message}`);

    Deno.writeTextFileSync(
      join(dir, "model.safetensors.index.json"),
      JSON.stringify({ weight_map: { a: "../s1.safetensors", b: 3 } }),
    );
    const bad = thrown(() => openSafetensorsDir(dir), FormatError);
    assert.equal(bad.problems.length, 2, bad.message);
    assert.match(bad.message, /maps "a" to "..\/s1.safetensors", not a file name in this directory/);
    Deno.writeTextFileSync(join(dir, "model.safetensors.index.json"), "{");
    assert.match(thrown(() => openSafetensorsDir(dir), FormatError).message, /cannot read the index/);
  }),
);

Deno.test(
  "a directory without a checkpoint says what it found",
  withTempDir((dir) => {
    let err = thrown(() => openSafetensorsDir(dir), FormatError);
    assert.match(err.message, /has neither model.safetensors nor model.safetensors.index.json/);
    writeSafetensors(join(dir, "consolidated.safetensors"), { w: entry("F32", [1], [1]) });
    err = thrown(() => openSafetensorsDir(dir), FormatError);
    assert.match(err.message, /hint: open one of consolidated.safetensors with openSafetensors\(\)/);
    assert.match(thrown(() => openSafetensorsDir(join(dir, "none")), FormatError).message, /cannot read the directory/);
  }),
);
