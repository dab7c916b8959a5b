import assert from "node:assert/strict";
import { join } from "node:path";
import { Backend } from "../../src/runtime/backend.ts";
import { DisposedError, DTypeError } from "../../src/errors.ts";
import { decode, encode, QUANT_BLOCKS, roundTo } from "../../src/runtime/dtype.ts";
import { FormatError } from "../../src/errors.ts";
import { GGML_TYPES, type GgufValue, type GgufValueType, openGguf } from "../../src/formats/gguf.ts";
import { thrown } from "../helpers.ts";

// A small GGUF writer: the test owns its fixtures byte for byte, including broken ones.
const VALUE_IDS: Record<GgufValueType, number> = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
};

class Bytes {
  #chunks: Uint8Array[] = [];
  length = 0;
  raw(b: Uint8Array): this {
    this.#chunks.push(b);
    this.length += b.length;
    return this;
  }
  #num(size: number, set: (v: DataView) => void): this {
    const b = new Uint8Array(size);
    set(new DataView(b.buffer));
    return this.raw(b);
  }
  u8 = (v: number) => this.#num(1, (d) => d.setUint8(0, v));
  i8 = (v: number) => this.#num(1, (d) => d.setInt8(0, v));
  u16 = (v: number) => this.#num(2, (d) => d.setUint16(0, v, true));
  i16 = (v: number) => this.#num(2, (d) => d.setInt16(0, v, true));
  u32 = (v: number) => this.#num(4, (d) => d.setUint32(0, v, true));
  i32 = (v: number) => this.#num(4, (d) => d.setInt32(0, v, true));
  f32 = (v: number) => this.#num(4, (d) => d.setFloat32(0, v, true));
  f64 = (v: number) => this.#num(8, (d) => d.setFloat64(0, v, true));
  u64 = (v: number | bigint) => this.#num(8, (d) => d.setBigUint64(0, BigInt(v), true));
  i64 = (v: number | bigint) => this.#num(8, (d) => d.setBigInt64(0, BigInt(v), true));
  str(s: string | Uint8Array, length?: bigint): this {
    const b = typeof s === "string" ? new TextEncoder().encode(s) : s;
    return this.u64(length ?? b.length).raw(b);
  }
  pad(alignment: number): this {
    return this.raw(new Uint8Array((alignment - (this.length % alignment)) % alignment));
  }
  bytes(): Uint8Array {
    const out = new Uint8Array(this.length);
    this.#chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
    return out;
  }
}

/** A metadata value to write: a scalar of a type, or an array of items of one type (nested arrays as Arr). */
interface Arr {
  of: GgufValueType;
  items: unknown[];
}
type Meta = [key: string, type: GgufValueType, value: unknown];

function writeValue(w: Bytes, type: GgufValueType, v: unknown): void {
  switch (type) {
    case "bool":
      w.u8(v === true ? 1 : v === false ? 0 : v as number);
      return;
    case "string":
      w.str(v as string | Uint8Array);
      return;
    case "array": {
      const a = v as Arr;
      w.u32(VALUE_IDS[a.of]).u64(a.items.length);
      for (const item of a.items) writeValue(w, a.of, item);
      return;
    }
    default:
      (w[type] as (x: unknown) => Bytes)(v);
  }
}

interface TensorSpec {
  name: string;
  /** Innermost first, as GGUF stores it. */
  ne: number[];
  /** ggml type id. */
  type: number;
  data: Uint8Array;
  /** Relative offset to write instead of the computed one (the data is placed there). */
  offset?: number;
  /** Write the info but not the data (for offsets past the end). */
  noData?: boolean;
}

interface FileOptions {
  version?: number;
  magic?: string;
  /** Written as general.alignment (u32) when set; the layout then uses it. */
  alignment?: number;
  tensorCount?: bigint;
  kvCount?: bigint;
}

/**
 * The bytes of a GGUF file: tensors laid out back to back (each aligned) unless given an offset, the data of
 * each placed at its offset. `dataStart` is the absolute start of the data section.
 */
function gguf(
  meta: Meta[],
  tensors: TensorSpec[],
  options: FileOptions = {},
): { bytes: Uint8Array; dataStart: number } {
  const alignment = options.alignment ?? 32;
  const allMeta: Meta[] = options.alignment ? [...meta, ["general.alignment", "u32", options.alignment]] : meta;
  const w = new Bytes();
  w.raw(new TextEncoder().encode(options.magic ?? "GGUF")).u32(options.version ?? 3);
  w.u64(options.tensorCount ?? BigInt(tensors.length)).u64(options.kvCount ?? BigInt(allMeta.length));
  for (const [key, type, value] of allMeta) {
    w.str(key).u32(VALUE_IDS[type]);
    writeValue(w, type, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    offsets.push(t.offset ?? offset);
    offset += Math.ceil(t.data.length / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    w.str(t.name).u32(t.ne.length);
    for (const n of t.ne) w.u64(n);
    w.u32(t.type).u64(offsets[i]);
  });
  w.pad(alignment);
  const dataStart = w.length;
  const end = tensors.reduce((n, t, i) => t.noData ? n : Math.max(n, offsets[i] + t.data.length), 0);
  const data = new Uint8Array(Math.ceil(end / alignment) * alignment);
  tensors.forEach((t, i) => t.noData || data.set(t.data, offsets[i]));
  return { bytes: w.raw(data).bytes(), dataStart };
}

const floats = (n: number, seed = 1) => Array.from({ length: n }, (_, i) => Math.sin(seed * 7.3 + i * 1.7) * 3);
/** Pseudo-random bytes: quantized blocks are uploaded as stored, so any bytes of the right length do. */
const noise = (n: number, seed = 1) =>
  Uint8Array.from({ length: n }, (_, i) => (i * 131 + seed * 71 + (i >> 7)) & 0xff);
const quant = (type: "q8_0" | "q4_k" | "q5_0" | "q6_k", ne: number[], seed = 1) =>
  noise((ne.reduce((a, b) => a * b, 1) / QUANT_BLOCKS[type].elems) * QUANT_BLOCKS[type].bytes, seed);

const F32 = 0, F16 = 1, Q5_0 = 6, Q8_0 = 8, Q4_K = 12, Q6_K = 14, IQ2_XS = 17, F64 = 28, BF16 = 30;

function withTempDir(fn: (dir: string) => void): () => void {
  return () => {
    const dir = Deno.makeTempDirSync({ prefix: "gemmakit-gguf-" });
    try {
      fn(dir);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  };
}

/** Writes `bytes` to a file in `dir` and returns the FormatError opening it throws. */
function openError(dir: string, bytes: Uint8Array, name = "bad.gguf"): FormatError {
  const path = join(dir, name);
  Deno.writeFileSync(path, bytes);
  const e = thrown(() => openGguf(path), FormatError);
  assert.equal(e.file, path);
  assert.ok(e.message.startsWith(`gguf: ${path}: `), e.message);
  return e;
}

const EVERY_TYPE: Meta[] = [
  ["t.u8", "u8", 255],
  ["t.i8", "i8", -128],
  ["t.u16", "u16", 65535],
  ["t.i16", "i16", -32768],
  ["t.u32", "u32", 4294967295],
  ["t.i32", "i32", -2147483648],
  ["t.f32", "f32", 1.5],
  ["t.bool", "bool", true],
  ["t.string", "string", "héllo, wörld ✓"],
  ["t.u64", "u64", 2n ** 64n - 1n],
  ["t.i64", "i64", -(2n ** 63n)],
  ["t.f64", "f64", Math.PI],
  ["a.u8", "array", { of: "u8", items: [1, 2, 255] }],
  ["a.i8", "array", { of: "i8", items: [-1, 0, 1] }],
  ["a.u16", "array", { of: "u16", items: [1, 65535] }],
  ["a.i16", "array", { of: "i16", items: [-2, 2] }],
  ["a.u32", "array", { of: "u32", items: [7] }],
  ["a.i32", "array", { of: "i32", items: [-7, 3, 3] }],
  ["a.f32", "array", { of: "f32", items: [0.5, -1000, 2.25] }],
  ["a.bool", "array", { of: "bool", items: [true, false, true] }],
  ["a.string", "array", { of: "string", items: ["<pad>", "", "▁the", "\uFEFF#"] }],
  ["a.u64", "array", { of: "u64", items: [1n, 2n ** 60n] }],
  ["a.i64", "array", { of: "i64", items: [-1n] }],
  ["a.f64", "array", { of: "f64", items: [1e-300, 2] }],
  ["a.empty", "array", { of: "f32", items: [] }],
  ["a.nested", "array", {
    of: "array",
    items: [{ of: "string", items: ["a", "b"] }, { of: "string", items: [] }, { of: "string", items: ["c"] }],
  }],
];

Deno.test(
  "metadata of every GGUF type and tensors of f32/f16/bf16/q8_0/q4_k round-trip through a file",
  withTempDir((dir) => {
    using backend = Backend.open({ backend: "cpu" });
    const path = join(dir, "model.gguf");
    const f32 = floats(6), f16 = floats(64, 2), bf16 = floats(10, 3);
    const tensors: TensorSpec[] = [
      { name: "a.f32", ne: [3, 2], type: F32, data: encode(f32, "f32") },
      { name: "b.f16", ne: [64], type: F16, data: encode(f16, "f16") },
      { name: "c.q8_0", ne: [64, 3], type: Q8_0, data: quant("q8_0", [64, 3]) },
      { name: "d.q4_k", ne: [256, 2, 2], type: Q4_K, data: quant("q4_k", [256, 4], 2) },
      { name: "e.bf16", ne: [5, 2], type: BF16, data: encode(bf16, "bf16") },
      { name: "f.q5_0", ne: [32], type: Q5_0, data: quant("q5_0", [32], 3) },
      { name: "g.q6_k", ne: [256], type: Q6_K, data: quant("q6_k", [256], 4) },
    ];
    const { bytes, dataStart } = gguf(EVERY_TYPE, tensors, { alignment: 64 });
    Deno.writeFileSync(path, bytes);
    const base = backend.memoryStats().inUse;
    {
      using file = openGguf(path);
      assert.equal(file.version, 3);
      assert.equal(file.alignment, 64);
      assert.equal(file.dataOffset, dataStart);
      assert.equal(dataStart % 64, 0);
      // Metadata: every key, in file order, with its stored type.
      assert.deepEqual([...file.metadata.keys()], [...EVERY_TYPE.map(([k]) => k), "general.alignment"]);
      const v = (k: string) => file.metadata.get(k)!;
      for (const [key, type, value] of EVERY_TYPE.slice(0, 12)) assert.deepEqual(v(key), { type, value }, key);
      assert.deepEqual(v("a.u8"), { type: "array", itemType: "u8", items: Uint8Array.from([1, 2, 255]) });
      assert.deepEqual(v("a.i16"), { type: "array", itemType: "i16", items: Int16Array.from([-2, 2]) });
      assert.deepEqual(v("a.f32"), { type: "array", itemType: "f32", items: Float32Array.from([0.5, -1000, 2.25]) });
      assert.deepEqual(v("a.u64"), { type: "array", itemType: "u64", items: BigUint64Array.from([1n, 2n ** 60n]) });
      assert.deepEqual(v("a.i64"), { type: "array", itemType: "i64", items: BigInt64Array.from([-1n]) });
      assert.deepEqual(v("a.f64"), { type: "array", itemType: "f64", items: Float64Array.from([1e-300, 2]) });
      assert.deepEqual(v("a.bool"), { type: "array", itemType: "bool", items: [true, false, true] });
      assert.deepEqual(v("a.string"), { type: "array", itemType: "string", items: ["<pad>", "", "▁the", "\uFEFF#"] });
      assert.deepEqual(v("a.empty"), { type: "array", itemType: "f32", items: new Float32Array(0) });
      const str = (items: string[]): GgufValue => ({ type: "array", itemType: "string", items });
      assert.deepEqual(v("a.nested"), {
        type: "array",
        itemType: "array",
        items: [str(["a", "b"]), str([]), str(["c"])],
      });
      // Typed getters.
      assert.equal(file.getString("t.string"), "héllo, wörld ✓");
      assert.equal(file.getNumber("t.u8"), 255);
      assert.equal(file.getNumber("t.f64"), Math.PI);
      assert.equal(file.getNumber("a.missing", 7), 7);
      assert.equal(file.getString("a.missing", "x"), "x");
      assert.equal(file.getBool("t.bool"), true);
      assert.deepEqual(file.getArray("a.string", "string").items, ["<pad>", "", "▁the", "\uFEFF#"]);
      assert.equal(file.has("t.u8"), true);
      assert.equal(file.has("nope"), false);
      assert.match(thrown(() => file.getString("nope"), FormatError).message, /metadata key nope is missing/);
      assert.match(thrown(() => file.getString("t.u32"), FormatError).message, /t\.u32 is u32 4294967295, not a str/);
      assert.match(thrown(() => file.getNumber("t.string"), FormatError).message, /t\.string is string "h/);
      assert.match(thrown(() => file.getNumber("a.u8"), FormatError).message, /a\.u8 is an array of u8, not a num/);
      assert.match(thrown(() => file.getNumber("t.u64"), FormatError).message, /not a number within 2\^53/);
      assert.match(thrown(() => file.getArray("a.u8", "string"), FormatError).message, /not an array of string/);
      assert.match(thrown(() => file.getBool("t.u8"), FormatError).message, /t\.u8 is u8 255, not a bool/);
      assert.throws(() => file.getString("t.u32", "a fallback stands in for a missing key only"), FormatError);

      // Tensors: our shape is ne reversed; offsets aligned; bytes from the block geometry.
      assert.deepEqual(file.tensors.map((t) => [t.name, t.dtype, t.ggmlType, t.typeId, t.shape, t.ne, t.bytes]), [
        ["a.f32", "f32", "F32", F32, [2, 3], [3, 2], 24],
        ["b.f16", "f16", "F16", F16, [64], [64], 128],
        ["c.q8_0", "q8_0", "Q8_0", Q8_0, [3, 64], [64, 3], 6 * 34],
        ["d.q4_k", "q4_k", "Q4_K", Q4_K, [2, 2, 256], [256, 2, 2], 4 * 144],
        ["e.bf16", "bf16", "BF16", BF16, [2, 5], [5, 2], 20],
        ["f.q5_0", "q5_0", "Q5_0", Q5_0, [32], [32], 22],
        ["g.q6_k", "q6_k", "Q6_K", Q6_K, [256], [256], 210],
      ]);
      for (const t of file.tensors) {
        assert.equal(t.offset % 64, 0, t.name);
        assert.deepEqual(t.byteRange, [dataStart + t.offset, dataStart + t.offset + t.bytes]);
        assert.equal(file.get(t.name), t);
      }
      for (const t of tensors) {
        assert.deepEqual(file.readBytes(t.name), t.data, t.name);
        using loaded = file.loadTensor(backend, t.name);
        assert.deepEqual(loaded.toBytes(), t.data, `${t.name} uploads its stored bytes`);
        assert.deepEqual(loaded.shape, file.get(t.name)!.shape);
      }
      using q = file.loadTensor(backend, "d.q4_k");
      assert.equal(q.dtype, "q4_k");
      // Host conversion on request: f16/bf16 → f32 exactly; quantized → float only to float.
      using wide = file.loadTensor(backend, "b.f16", { dtype: "f32" });
      assert.deepEqual(wide.toArray(), roundTo(f16, "f16"));
      using narrow = file.loadTensor(backend, "a.f32", { dtype: "bf16" });
      assert.deepEqual(narrow.toArray(), roundTo(f32, "bf16"));
      using deq = file.loadTensor(backend, "c.q8_0", { dtype: "f32" }); // dequantized on the host
      assert.deepEqual([deq.dtype, deq.shape], ["f32", [3, 64]]);
      assert.deepEqual(deq.toArray(), decode(tensors[2].data, "q8_0"));
      assert.throws(() => file.loadTensor(backend, "c.q8_0", { dtype: "q4_k" }), DTypeError);
      assert.throws(() => file.loadTensor(backend, "a.f32", { dtype: "q8_0" }), DTypeError);
      assert.throws(() => file.loadTensor(backend, "a.f32", { dtype: "i32" }), DTypeError);
      assert.match(thrown(() => file.readBytes("nope"), FormatError).message, /no tensor nope \(7 tensors\)/);
    }
    assert.equal(backend.memoryStats().inUse, base, "every uploaded tensor was freed");
  }),
);

Deno.test("our quantized block geometry agrees with ggml's", () => {
  for (const [dtype, block] of Object.entries(QUANT_BLOCKS)) {
    const ggml = [...GGML_TYPES.values()].find((t) => t.dtype === dtype);
    assert.ok(ggml, dtype);
    assert.deepEqual({ elems: ggml.blockElems, bytes: ggml.blockBytes }, block, dtype);
  }
});

Deno.test(
  "GGUF v2, the default alignment of 32, a header larger than the read-ahead, and an empty file body",
  withTempDir((dir) => {
    const path = join(dir, "v2.gguf");
    const vocab = Array.from({ length: 60_000 }, (_, i) => `tok${i}_${"x".repeat(i % 17)}`);
    const scores = Float32Array.from({ length: 60_000 }, (_, i) => -i);
    const { bytes, dataStart } = gguf(
      [
        ["tokenizer.ggml.tokens", "array", { of: "string", items: vocab }],
        ["tokenizer.ggml.scores", "array", { of: "f32", items: [...scores] }],
      ],
      [
        { name: "w", ne: [2], type: F32, data: encode([1, 2], "f32") },
        { name: "v", ne: [1], type: F32, data: encode([3], "f32") },
      ],
      { version: 2 },
    );
    assert.ok(dataStart > 1 << 20, "the header spans several read-ahead chunks");
    Deno.writeFileSync(path, bytes);
    using file = openGguf(path);
    assert.equal(file.version, 2);
    assert.equal(file.alignment, 32);
    assert.equal(file.dataOffset, dataStart);
    assert.equal(dataStart % 32, 0);
    assert.deepEqual(file.getArray("tokenizer.ggml.tokens").items, vocab);
    assert.deepEqual(file.getArray("tokenizer.ggml.scores", "f32").items, scores);
    assert.deepEqual(file.tensors.map((t) => [t.name, t.offset]), [["w", 0], ["v", 32]]);
    assert.deepEqual([...new Float32Array(file.readBytes("v").buffer)], [3]);

    const empty = join(dir, "empty.gguf");
    Deno.writeFileSync(empty, gguf([["general.architecture", "string", "none"]], []).bytes);
    using none = openGguf(empty);
    assert.deepEqual(none.tensors, []);
  }),
);

Deno.test(
  "file-level faults stop early with a clear message",
  withTempDir((dir) => {
    const ok = gguf([["general.name", "string", "x"]], [{
      name: "w",
      ne: [2],
      type: F32,
      data: encode([1, 2], "f32"),
    }]);
    const cases: [string, Uint8Array, RegExp][] = [
      ["empty", new Uint8Array(), /file is 0 bytes, shorter than the 24-byte GGUF header/],
      ["magic", gguf([], [], { magic: "GGML" }).bytes, /bad magic 47 47 4d 4c \("GGML"\), expected "GGUF"/],
      ["binary magic", Uint8Array.from([0x89, 0x50, 0x4e, 0x47, ...new Uint8Array(30)]), /bad magic 89 50 4e 47,/],
      ["v1", gguf([], [], { version: 1 }).bytes, /GGUF v1 \(32-bit lengths\) is not supported/],
      ["v4", gguf([], [], { version: 4 }).bytes, /unsupported GGUF version 4/],
      ["big-endian", gguf([], [], { version: 0x03000000 }).bytes, /big-endian GGUF v3 is not supported/],
      ["tensor count", gguf([], [], { tensorCount: 2n ** 62n }).bytes, /tensor count 4611686018427387904 cannot fit/],
      ["kv count", gguf([], [], { kvCount: 1000n }).bytes, /metadata count 1000 cannot fit/],
    ];
    for (const [what, bytes, message] of cases) assert.match(openError(dir, bytes).message, message, what);

    // An absurd string length (key or value), array length, or n_dims: bounded by what the file can hold.
    const w = new Bytes().raw(new TextEncoder().encode("GGUF")).u32(3).u64(0).u64(1);
    const absurdKey = new Bytes().raw(w.bytes()).str("general.name", 2n ** 60n).bytes();
    assert.match(
      openError(dir, absurdKey).message,
      /metadata key 1 of 1: string length 1152921504606846976 cannot fit in the \d+ bytes left in the file/,
    );
    const absurdValue = new Bytes().raw(w.bytes()).str("k").u32(8).str("abc", 2n ** 40n).bytes();
    assert.match(openError(dir, absurdValue).message, /metadata key 1 of 1 \(k\): string length 1099511627776 cannot/);
    const absurdArray = new Bytes().raw(w.bytes()).str("k").u32(9).u32(6).u64(2n ** 33n).f32(1).bytes();
    assert.match(openError(dir, absurdArray).message, /\(k\): array length \(of f32\) 8589934592 cannot fit/);
    const badType = new Bytes().raw(w.bytes()).str("k").u32(13).u32(0).bytes();
    assert.match(openError(dir, badType).message, /\(k\): unknown value type 13 \(GGUF has 0\.\.12\)/);
    const badItemType = new Bytes().raw(w.bytes()).str("k").u32(9).u32(77).u64(0).bytes();
    assert.match(openError(dir, badItemType).message, /unknown array element type 77/);
    let deep = new Bytes().raw(w.bytes()).str("k").u32(9);
    for (let i = 0; i < 20; i++) deep = deep.u32(9).u64(1);
    assert.match(openError(dir, deep.u32(0).u64(0).bytes()).message, /arrays nested deeper than 8 levels/);
    const t = new Bytes().raw(new TextEncoder().encode("GGUF")).u32(3).u64(1).u64(0).str("w").u32(1_000_000);
    assert.match(openError(dir, t.u64(1).u32(0).u64(0).bytes()).message, /tensor info 1 of 1 \(w\): n_dims 1000000/);

    // Truncation anywhere in the header: always a FormatError that says where, never a RangeError.
    const { bytes: full, dataStart } = gguf(EVERY_TYPE, [{
      name: "w",
      ne: [2],
      type: F32,
      data: encode([1, 2], "f32"),
    }]);
    for (let cut = 24; cut < dataStart - 32; cut += 7) {
      const e = openError(dir, full.subarray(0, cut));
      assert.match(e.message, /file ended inside the header|cannot fit in the|past the end/, `cut at ${cut}`);
    }
    // Magic, version, counts (24 bytes), name "w" (9), n_dims (4), ne (8), type (4), then the u64 offset: cut in it.
    const info = new Bytes().raw(new TextEncoder().encode("GGUF")).u32(3).u64(1).u64(0).str("w").u32(1).u64(2).u32(0);
    assert.match(
      openError(dir, info.u64(0).bytes().subarray(0, 53)).message,
      /tensor info 1 of 1 \(w\): file ended inside the header \(needs 8 bytes at offset 49, file is 53 bytes\)/,
    );
    // Cut in the data section: the header reads, but the tensor's bytes are not all there.
    assert.match(
      openError(dir, ok.bytes.subarray(0, ok.bytes.length - 32 + 4)).message,
      /tensor w: F32 ne \[2\] needs bytes \[\d+, \d+\), past the end of the \d+-byte file/,
    );
    assert.match(thrown(() => openGguf(join(dir, "missing.gguf")), FormatError).message, /cannot open/);
    assert.match(thrown(() => openGguf(dir), FormatError).message, /is a directory/);
  }),
);

Deno.test(
  "every header problem of a file comes in one FormatError",
  withTempDir((dir) => {
    const f32 = (n: number) => new Uint8Array(4 * n);
    const { bytes } = gguf(
      [
        ["dup", "u8", 1],
        ["dup", "u8", 2],
        ["", "u8", 3],
        ["flag", "bool", 2],
        ["bad.utf8", "string", Uint8Array.from([0x61, 0xff, 0x62])],
        ["bad.list", "array", { of: "string", items: ["ok", Uint8Array.from([0xc3]), Uint8Array.from([0xe2, 0x82])] }],
        ["general.alignment", "u32", 32],
      ],
      [
        { name: "blk.0.past_end", ne: [4], type: F32, data: f32(4), offset: 1 << 20, noData: true },
        { name: "blk.0.misaligned", ne: [4], type: F32, data: f32(4), offset: 48 },
        { name: "blk.0.a", ne: [16], type: F32, data: f32(16), offset: 64 },
        { name: "blk.0.b", ne: [8], type: F32, data: f32(8), offset: 96 }, // inside a's [64, 128)
        { name: "blk.0.unknown_type", ne: [4], type: 99, data: f32(4) },
        { name: "blk.0.removed_type", ne: [32], type: 31, data: new Uint8Array(18) },
        { name: "blk.0.zero_dim", ne: [4, 0], type: F32, data: f32(0) },
        { name: "blk.0.partial_block", ne: [100], type: Q4_K, data: new Uint8Array(144) },
        { name: "blk.0.five_dims", ne: [1, 1, 1, 1, 1], type: F32, data: f32(1) },
        { name: "blk.0.a", ne: [1], type: F32, data: f32(1), offset: 512 },
        { name: "", ne: [1], type: F32, data: f32(1), offset: 544 },
        { name: "x".repeat(64), ne: [1], type: F32, data: f32(1), offset: 576 },
      ],
    );
    const e = openError(dir, bytes);
    assert.deepEqual(e.problems, [
      "metadata dup: key appears more than once",
      "metadata key 3 of 7: key is empty",
      "metadata flag: bool byte 2 is neither 0 nor 1",
      "metadata bad.utf8: string is not valid UTF-8",
      "metadata bad.list[1]: string is not valid UTF-8",
      "metadata bad.list: 2 strings in all are not valid UTF-8",
      "tensor blk.0.five_dims: 5 dimensions, ggml allows at most 4",
      "tensor info 11 of 12: name is empty",
      `tensor ${"x".repeat(64)}: name is longer than ggml's 63 bytes`,
      e.problems.find((p) => p.startsWith("tensor blk.0.past_end: F32 ne [4] needs bytes [")),
      "tensor blk.0.misaligned: offset 48 is not a multiple of the alignment 32",
      "tensor blk.0.unknown_type: unknown ggml type id 99",
      "tensor blk.0.removed_type: ggml type 31 (Q4_0_4_4) was removed from ggml",
      "tensor blk.0.zero_dim: ne [4, 0] must hold positive integers",
      "tensor blk.0.partial_block: Q4_K ne [100]: ne[0] is not a multiple of the 256-element block",
      "tensor blk.0.a: name appears more than once",
      "tensors blk.0.a [64, 128) and blk.0.b [96, 128) overlap",
    ]);
    assert.match(e.problems[9]!, /past the end of the \d+-byte file/);
    assert.match(e.message, /^.*bad\.gguf: 17 problems:\n {2}- metadata dup/);

    for (const [value, problem] of [[48, /general\.alignment 48 is not a power of two/], [0, /alignment 0 is not/]]) {
      const bad = gguf([["general.alignment", "u32", value]], [{ name: "w", ne: [1], type: F32, data: f32(1) }]);
      assert.match(openError(dir, bad.bytes).message, problem as RegExp);
    }
    const u64Align = gguf([["general.alignment", "u64", 32n]], []);
    assert.match(openError(dir, u64Align.bytes).message, /general\.alignment is u64, not u32/);
  }),
);

Deno.test(
  "unsupported types list fine and fail only when loaded, naming the tensor",
  withTempDir((dir) => {
    using backend = Backend.open({ backend: "cpu" });
    const path = join(dir, "iq2.gguf");
    Deno.writeFileSync(
      path,
      gguf([], [
        { name: "blk.0.attn_q.weight", ne: [256, 2], type: IQ2_XS, data: new Uint8Array(2 * 74) },
        { name: "blk.0.f64", ne: [3], type: F64, data: new Uint8Array(24) },
        { name: "ok", ne: [1], type: F32, data: encode([5], "f32") },
      ]).bytes,
    );
    using file = openGguf(path);
    assert.deepEqual(file.tensors.map((t) => [t.name, t.dtype, t.shape, t.bytes]), [
      ["blk.0.attn_q.weight", "IQ2_XS", [2, 256], 148],
      ["blk.0.f64", "F64", [3], 24],
      ["ok", "f32", [1], 4],
    ]);
    const e = thrown(() => file.loadTensor(backend, "blk.0.attn_q.weight"), FormatError);
    assert.match(e.message, /unsupported quantization IQ2_XS for tensor blk\.0\.attn_q\.weight/);
    assert.match(e.hint ?? "", /Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS/);
    assert.match(thrown(() => file.loadTensor(backend, "blk.0.f64"), FormatError).message, /unsupported type F64/);
    assert.equal(file.readBytes("blk.0.attn_q.weight").length, 148, "the raw bytes are still readable");
    using ok = file.loadTensor(backend, "ok");
    assert.deepEqual([...ok.toArray()], [5]);
  }),
);

Deno.test(
  "a file truncated or closed after opening fails on load, not with garbage",
  withTempDir((dir) => {
    using backend = Backend.open({ backend: "cpu" });
    const path = join(dir, "m.gguf");
    const a = floats(64), b = floats(64, 2);
    Deno.writeFileSync(
      path,
      gguf([], [
        { name: "a", ne: [64], type: F32, data: encode(a, "f32") },
        { name: "b", ne: [64], type: F32, data: encode(b, "f32") },
      ]).bytes,
    );
    const file = openGguf(path);
    const size = Deno.statSync(path).size;
    Deno.truncateSync(path, size - 100);
    using first = file.loadTensor(backend, "a");
    assert.deepEqual(first.toArray(), Float32Array.from(a));
    const e = thrown(() => file.loadTensor(backend, "b"), FormatError);
    assert.match(e.message, /file ended after 156 of 256 bytes of tensor b \(at offset \d+\)/);
    assert.match(e.hint ?? "", /truncated or replaced after it was opened/);
    file.close();
    file.close(); // idempotent
    assert.throws(() => file.readBytes("a"), DisposedError);
    assert.throws(() => file.loadTensor(backend, "a"), DisposedError);
    assert.equal(file.get("a")?.bytes, 256, "the listing outlives the handle");
  }),
);
