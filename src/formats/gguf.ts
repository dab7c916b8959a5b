/**
 * A GGUF (v2/v3) reader that never holds a whole model in memory: opening streams the header (metadata and
 * tensor infos) through a small buffer; loading a tensor seeks to its bytes, reads exactly those, and uploads
 * them as stored (quantized blocks included).
 *
 * Format (ggml docs/gguf.md; ggml/src/gguf.cpp): u32 magic "GGUF", u32 version, u64 tensor count, u64
 * metadata count; metadata `key: string, type: u32, value`; tensor infos `name: string, n_dims: u32,
 * ne: u64[n_dims] (innermost first), type: u32 (ggml type id), offset: u64`; then the data section, which
 * starts at the next multiple of `general.alignment` (default 32); every tensor offset, relative to the data
 * section, is a multiple of the alignment. Strings are u64 length + UTF-8 bytes; everything is little-endian.
 *
 * Problems of a file are collected and reported at once in one FormatError, one line each. Faults that leave
 * the rest of the header unreadable (bad magic, truncation, absurd counts or lengths, an unknown value type)
 * stop early, with a message saying where.
 * @module
 */
import { DTypeError } from "../errors.ts";
import type { Backend } from "../runtime/backend.ts";
import { type DType, isQuantized } from "../runtime/dtype.ts";
import { Tensor } from "../runtime/tensor.ts";
import type { SourceTensor, WeightSource } from "./weight_source.ts";
import { FormatError } from "../errors.ts";
import { convert, openWith, readAt, readTensorBytes } from "./file.ts";

const OP = "gguf";
/** "GGUF" read as a little-endian u32. */
const MAGIC = 0x46554747;
/** ggml's GGUF_DEFAULT_ALIGNMENT. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** ggml's GGML_MAX_DIMS. */
const MAX_DIMS = 4;
/** ggml's GGML_MAX_NAME is 64 bytes including the terminating NUL. */
const MAX_NAME_BYTES = 63;
/** Nested arrays deeper than this are refused (a corrupt file could otherwise recurse without bound). */
const MAX_ARRAY_DEPTH = 8;
/** Header read-ahead: metadata (e.g. a 262k-token vocabulary) is streamed through a buffer of this size. */
const CHUNK_BYTES = 1 << 20;

/** One ggml tensor type: its block geometry, and our DType when gemmakit can load it as stored. */
export interface GgmlType {
  readonly id: number;
  /** ggml's name, e.g. "Q4_K". */
  readonly name: string;
  /** Elements per block (1 for plain types). */
  readonly blockElems: number;
  /** Bytes per block. */
  readonly blockBytes: number;
  /** The DType a device tensor holds it as; absent when gemmakit cannot load it. */
  readonly dtype?: DType;
}

const type = (id: number, name: string, blockElems: number, blockBytes: number, dtype?: DType): GgmlType =>
  Object.freeze(dtype ? { id, name, blockElems, blockBytes, dtype } : { id, name, blockElems, blockBytes });

/**
 * Every ggml type id a GGUF file may hold (ggml.h `enum ggml_type`; block sizes as gguf-py's GGML_QUANT_SIZES).
 * Types without a `dtype` list fine but fail when loaded.
 */
export const GGML_TYPES: ReadonlyMap<number, GgmlType> = new Map([
  type(0, "F32", 1, 4, "f32"),
  type(1, "F16", 1, 2, "f16"),
  type(2, "Q4_0", 32, 18, "q4_0"),
  type(3, "Q4_1", 32, 20, "q4_1"),
  type(6, "Q5_0", 32, 22, "q5_0"),
  type(7, "Q5_1", 32, 24, "q5_1"),
  type(8, "Q8_0", 32, 34, "q8_0"),
  type(9, "Q8_1", 32, 40),
  type(10, "Q2_K", 256, 84, "q2_k"),
  type(11, "Q3_K", 256, 110, "q3_k"),
  type(12, "Q4_K", 256, 144, "q4_k"),
  type(13, "Q5_K", 256, 176, "q5_k"),
  type(14, "Q6_K", 256, 210, "q6_k"),
  type(15, "Q8_K", 256, 292),
  type(16, "IQ2_XXS", 256, 66),
  type(17, "IQ2_XS", 256, 74),
  type(18, "IQ3_XXS", 256, 98),
  type(19, "IQ1_S", 256, 50),
  type(20, "IQ4_NL", 32, 18, "iq4_nl"),
  type(21, "IQ3_S", 256, 110),
  type(22, "IQ2_S", 256, 82),
  type(23, "IQ4_XS", 256, 136, "iq4_xs"),
  type(24, "I8", 1, 1),
  type(25, "I16", 1, 2),
  type(26, "I32", 1, 4, "i32"),
  type(27, "I64", 1, 8),
  type(28, "F64", 1, 8),
  type(29, "IQ1_M", 256, 56),
  type(30, "BF16", 1, 2, "bf16"),
  type(34, "TQ1_0", 256, 54),
  type(35, "TQ2_0", 256, 66),
  type(39, "MXFP4", 32, 17, "mxfp4"),
  type(40, "NVFP4", 64, 36),
  type(41, "Q1_0", 128, 18),
].map((t) => [t.id, t]));

/** ggml names of the types a tensor may be loaded from, for error hints. */
const LOADABLE_TYPES = [...GGML_TYPES.values()].filter((t) => t.dtype).map((t) => t.name).join(", ");

/** Type ids ggml once had and removed; files holding them cannot be read by a current llama.cpp either. */
const REMOVED_TYPES: ReadonlyMap<number, string> = new Map([
  [4, "Q4_2"],
  [5, "Q4_3"],
  [31, "Q4_0_4_4"],
  [32, "Q4_0_4_8"],
  [33, "Q4_0_8_8"],
  [36, "IQ4_NL_4_4"],
  [37, "IQ4_NL_4_8"],
  [38, "IQ4_NL_8_8"],
]);

/** Metadata value types, by their GGUF id (gguf.h `enum gguf_type`). */
const VALUE_TYPES = [
  "u8",
  "i8",
  "u16",
  "i16",
  "u32",
  "i32",
  "f32",
  "bool",
  "string",
  "array",
  "u64",
  "i64",
  "f64",
] as const;

/** A metadata value type as GGUF defines it. */
export type GgufValueType = typeof VALUE_TYPES[number];

/** Bytes of one value of each fixed-size type; the minimum for strings (length) and arrays (type + count). */
const VALUE_BYTES: Readonly<Record<GgufValueType, number>> = {
  u8: 1,
  i8: 1,
  bool: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  u64: 8,
  i64: 8,
  f64: 8,
  string: 8,
  array: 12,
};

/** The elements of a metadata array: typed arrays for numbers, plain arrays for the rest. */
export type GgufArrayItems =
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | BigUint64Array
  | BigInt64Array
  | Float64Array
  | readonly boolean[]
  | readonly string[]
  | readonly GgufArray[];

/** A metadata array; `items` of nested arrays are themselves GgufArrays. */
export interface GgufArray {
  readonly type: "array";
  readonly itemType: GgufValueType;
  readonly items: GgufArrayItems;
}

/** One metadata value, tagged with its stored type. 64-bit integers are bigints. */
export type GgufValue =
  | { readonly type: "u8" | "i8" | "u16" | "i16" | "u32" | "i32" | "f32" | "f64"; readonly value: number }
  | { readonly type: "u64" | "i64"; readonly value: bigint }
  | { readonly type: "bool"; readonly value: boolean }
  | { readonly type: "string"; readonly value: string }
  | GgufArray;

/** A ggml type name, e.g. "Q4_K". */
export type GgmlTypeName = string;

/** One tensor as the header describes it. */
export interface GgufTensor extends SourceTensor {
  /** The GGUF name, e.g. "blk.0.attn_q.weight". */
  readonly name: string;
  /** Our DType when a device tensor can hold it as stored, else ggml's type name (e.g. "Q3_K"). */
  readonly dtype: DType | GgmlTypeName;
  /** ggml's type name, e.g. "Q4_K". */
  readonly ggmlType: GgmlTypeName;
  /** ggml's type id, e.g. 12. */
  readonly typeId: number;
  /** Dimensions, outermost first: `ne` reversed (token_embd ne [640, 262144] → [262144, 640]). */
  readonly shape: readonly number[];
  /** Dimensions as stored, innermost first. */
  readonly ne: readonly number[];
  /** Byte length of the stored data (blocks × block bytes). */
  readonly bytes: number;
  /** Offset relative to the data section, as stored. */
  readonly offset: number;
  /** [start, end) as absolute file offsets. */
  readonly byteRange: readonly [number, number];
}

/** Options of `loadTensor`. */
export interface GgufLoadOptions {
  /** Convert on the host to this float dtype (e.g. f16 → f32; quantized → f32 dequantizes). Default: as stored. */
  dtype?: DType;
}

/** A name as messages print it: bare when plain, JSON-quoted when empty or holding spaces or odd characters. */
const label = (name: string) => /^[\x21-\x7e]+$/.test(name) ? name : JSON.stringify(name);

const TRUNCATED_HINT = "the file is truncated (an interrupted download?)";
const CORRUPT_HINT = "the file is corrupt, or not a GGUF file";
const COUNT_HINT = "the file is truncated (an interrupted download?) or corrupt";

/**
 * Sequential reads over the header through a read-ahead buffer. Every read is bounds-checked against the
 * file size first, so a corrupt length fails with a message rather than an allocation of that length.
 */
class HeaderReader {
  pos = 0;
  /** Where the current item is, for messages ("metadata key 3 of 33 (general.name)"). */
  where = "the file header";
  #buf = new Uint8Array(0);
  #view = new DataView(this.#buf.buffer);
  #bufStart = 0;
  // ignoreBOM keeps a leading U+FEFF: TextDecoder drops it by default, which turned Gemma's vocabulary entries
  // "\uFEFF#" into "#" (a duplicate of another token) and "\uFEFF" into "".
  readonly #utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  readonly #lossy = new TextDecoder("utf-8", { ignoreBOM: true });

  constructor(readonly path: string, readonly file: Deno.FsFile, readonly size: number) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  fail(message: string, hint = CORRUPT_HINT): FormatError {
    return new FormatError(OP, this.path, `${this.where}: ${message}`, { hint });
  }

  #truncated(n: number): FormatError {
    return this.fail(
      `file ended inside the header (needs ${n} bytes at offset ${this.pos}, file is ${this.size} bytes)`,
      TRUNCATED_HINT,
    );
  }

  /** Loads the buffer with at least `n` bytes from `pos` (a chunk when the file has that much left). */
  #fill(n: number): void {
    const buf = new Uint8Array(Math.min(Math.max(CHUNK_BYTES, n), this.remaining));
    const got = readAt(this.file, this.pos, buf);
    if (got < n) throw this.#truncated(n); // the file shrank under us
    this.#buf = buf.subarray(0, got);
    this.#view = new DataView(buf.buffer, 0, got);
    this.#bufStart = this.pos;
  }

  /** Offset into #buf of the `n` bytes at `pos`, refilling the buffer when they are not all in it; advances pos. */
  #take(n: number): number {
    if (n > this.remaining) throw this.#truncated(n);
    const at = this.pos - this.#bufStart;
    if (at < 0 || at + n > this.#buf.length) this.#fill(n);
    const offset = this.pos - this.#bufStart;
    this.pos += n;
    return offset;
  }

  // Each reader takes (and maybe refills) first, then reads #view: the view is replaced on a refill.
  u8(): number {
    const at = this.#take(1);
    return this.#view.getUint8(at);
  }
  i8(): number {
    const at = this.#take(1);
    return this.#view.getInt8(at);
  }
  u16(): number {
    const at = this.#take(2);
    return this.#view.getUint16(at, true);
  }
  i16(): number {
    const at = this.#take(2);
    return this.#view.getInt16(at, true);
  }
  u32(): number {
    const at = this.#take(4);
    return this.#view.getUint32(at, true);
  }
  i32(): number {
    const at = this.#take(4);
    return this.#view.getInt32(at, true);
  }
  f32(): number {
    const at = this.#take(4);
    return this.#view.getFloat32(at, true);
  }
  f64(): number {
    const at = this.#take(8);
    return this.#view.getFloat64(at, true);
  }
  u64(): bigint {
    const at = this.#take(8);
    return this.#view.getBigUint64(at, true);
  }
  i64(): bigint {
    const at = this.#take(8);
    return this.#view.getBigInt64(at, true);
  }

  /** A u64 that must fit a JS number and be at most `max` (what the rest of the file can hold). */
  count(what: string, max: number): number {
    const n = this.u64();
    if (n > BigInt(Math.max(0, max))) {
      throw this.fail(`${what} ${n} cannot fit in the ${this.remaining} bytes left in the file`, COUNT_HINT);
    }
    return Number(n);
  }

  /** Copies the next `dst.length` bytes into `dst`, chunk by chunk through the buffer. */
  copy(dst: Uint8Array): void {
    if (dst.length > this.remaining) throw this.#truncated(dst.length);
    let done = 0;
    while (done < dst.length) {
      let at = this.pos - this.#bufStart;
      if (at < 0 || at >= this.#buf.length) {
        this.#fill(1);
        at = 0;
      }
      const n = Math.min(dst.length - done, this.#buf.length - at);
      dst.set(this.#buf.subarray(at, at + n), done);
      this.pos += n;
      done += n;
    }
  }

  /** A GGUF string; `valid` is false when its bytes are not UTF-8 (the text is then decoded lossily). */
  string(): { text: string; valid: boolean } {
    const length = this.count("string length", this.remaining - 8);
    const at = this.#take(length);
    const bytes = this.#buf.subarray(at, at + length);
    try {
      return { text: this.#utf8.decode(bytes), valid: true };
    } catch {
      return { text: this.#lossy.decode(bytes), valid: false };
    }
  }
}

/** What reading a value found wrong without making the rest unreadable (e.g. invalid UTF-8). */
type Problems = string[];

/** Numeric arrays become typed arrays over a copy of their bytes (host order: little-endian, as the file). */
const TYPED_ARRAYS = {
  u8: Uint8Array,
  i8: Int8Array,
  u16: Uint16Array,
  i16: Int16Array,
  u32: Uint32Array,
  i32: Int32Array,
  f32: Float32Array,
  u64: BigUint64Array,
  i64: BigInt64Array,
  f64: Float64Array,
} as const;

function valueType(r: HeaderReader, id: number, what: string): GgufValueType {
  const t = VALUE_TYPES[id];
  if (t === undefined) {
    throw r.fail(`unknown ${what} type ${id} (GGUF has 0..${VALUE_TYPES.length - 1})`);
  }
  return t;
}

function readArray(r: HeaderReader, where: string, problems: Problems, depth: number): GgufArray {
  if (depth > MAX_ARRAY_DEPTH) throw r.fail(`arrays nested deeper than ${MAX_ARRAY_DEPTH} levels`);
  const itemType = valueType(r, r.u32(), "array element");
  const size = VALUE_BYTES[itemType];
  const count = r.count(`array length (of ${itemType})`, Math.floor((r.remaining - 8) / size));
  if (itemType in TYPED_ARRAYS) {
    const bytes = new Uint8Array(count * size);
    r.copy(bytes);
    const Ctor = TYPED_ARRAYS[itemType as keyof typeof TYPED_ARRAYS];
    return { type: "array", itemType, items: new Ctor(bytes.buffer) };
  }
  if (itemType === "bool") {
    const bytes = new Uint8Array(count);
    r.copy(bytes);
    const bad = bytes.findIndex((b) => b > 1);
    if (bad >= 0) problems.push(`${where}[${bad}]: bool byte ${bytes[bad]} is neither 0 nor 1`);
    return { type: "array", itemType, items: Array.from(bytes, (b) => b !== 0) };
  }
  if (itemType === "string") {
    const items: string[] = new Array(count);
    let invalid = 0;
    for (let i = 0; i < count; i++) {
      const s = r.string();
      items[i] = s.text;
      if (!s.valid && invalid++ === 0) problems.push(`${where}[${i}]: string is not valid UTF-8`);
    }
    if (invalid > 1) problems.push(`${where}: ${invalid} strings in all are not valid UTF-8`);
    return { type: "array", itemType, items };
  }
  const items: GgufArray[] = new Array(count);
  for (let i = 0; i < count; i++) items[i] = readArray(r, `${where}[${i}]`, problems, depth + 1);
  return { type: "array", itemType, items };
}

function readValue(r: HeaderReader, t: GgufValueType, where: string, problems: Problems): GgufValue {
  switch (t) {
    case "u8":
    case "i8":
    case "u16":
    case "i16":
    case "u32":
    case "i32":
    case "f32":
    case "f64":
      return { type: t, value: r[t]() };
    case "u64":
    case "i64":
      return { type: t, value: r[t]() };
    case "bool": {
      const b = r.u8();
      if (b > 1) problems.push(`${where}: bool byte ${b} is neither 0 nor 1`);
      return { type: t, value: b !== 0 };
    }
    case "string": {
      const s = r.string();
      if (!s.valid) problems.push(`${where}: string is not valid UTF-8`);
      return { type: t, value: s.text };
    }
    case "array":
      return readArray(r, where, problems, 1);
  }
}

/** What the header holds, checked. */
interface Header {
  version: number;
  alignment: number;
  dataOffset: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensor[];
}

interface RawTensor {
  index: number;
  name: string;
  ne: number[];
  typeId: number;
  offset: number;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/** Reads and checks the header of an open file; throws one FormatError with every problem. */
function readHeader(path: string, file: Deno.FsFile): Header {
  const stat = file.statSync();
  if (stat.isDirectory) throw new FormatError(OP, path, "is a directory, not a .gguf file");
  const size = stat.size;
  const r = new HeaderReader(path, file, size);
  if (size < 24) {
    throw new FormatError(OP, path, `file is ${size} bytes, shorter than the 24-byte GGUF header`, {
      hint: size === 0 ? TRUNCATED_HINT : CORRUPT_HINT,
    });
  }
  const magic = r.u32();
  if (magic !== MAGIC) {
    const bytes = [0, 8, 16, 24].map((s) => (magic >>> s) & 0xff);
    const shown = bytes.every((b) => b >= 0x20 && b < 0x7f) ? JSON.stringify(String.fromCharCode(...bytes)) : "";
    throw new FormatError(
      OP,
      path,
      `bad magic ${bytes.map((b) => b.toString(16).padStart(2, "0")).join(" ")}${shown ? ` (${shown})` : ""}, ` +
        `expected "GGUF"`,
      { hint: "this is not a GGUF file" },
    );
  }
  const version = r.u32();
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24 | (version & 0xff00) << 8 | (version >>> 8) & 0xff00 | version >>> 24) >>>
      0;
    const why = version === 1
      ? "GGUF v1 (32-bit lengths) is not supported"
      : swapped === 2 || swapped === 3
      ? `big-endian GGUF v${swapped} is not supported`
      : `unsupported GGUF version ${version}`;
    throw new FormatError(OP, path, why, { hint: "convert the model again with a current llama.cpp" });
  }
  r.where = "the file header";
  // Each tensor info takes at least 24 bytes (name length, n_dims, type, offset), each key/value at least 13.
  const tensorCount = r.count("tensor count", Math.floor((r.remaining - 16) / 24));
  const kvCount = r.count("metadata count", Math.floor((r.remaining - 8) / 13));

  const problems: string[] = [];
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    r.where = `metadata key ${i + 1} of ${kvCount}`;
    const key = r.string();
    const where = `metadata ${label(key.text)}`;
    r.where = `${r.where} (${label(key.text)})`;
    if (!key.valid) problems.push(`metadata key ${i + 1} of ${kvCount}: key ${label(key.text)} is not valid UTF-8`);
    else if (key.text === "") problems.push(`metadata key ${i + 1} of ${kvCount}: key is empty`);
    const value = readValue(r, valueType(r, r.u32(), "value"), where, problems);
    if (metadata.has(key.text)) problems.push(`${where}: key appears more than once`);
    else metadata.set(key.text, value);
  }

  const raw: RawTensor[] = [];
  const utf8 = new TextEncoder();
  for (let i = 0; i < tensorCount; i++) {
    r.where = `tensor info ${i + 1} of ${tensorCount}`;
    const name = r.string();
    r.where = `${r.where} (${label(name.text)})`;
    const at = `tensor ${label(name.text)}`;
    if (!name.valid) problems.push(`${at}: name is not valid UTF-8`);
    else if (name.text === "") problems.push(`tensor info ${i + 1} of ${tensorCount}: name is empty`);
    else if (utf8.encode(name.text).length > MAX_NAME_BYTES) {
      problems.push(`${at}: name is longer than ggml's ${MAX_NAME_BYTES} bytes`);
    }
    const nDims = r.u32();
    if (nDims > MAX_DIMS && nDims * 8 + 12 > r.remaining) {
      throw r.fail(`n_dims ${nDims} cannot fit in the ${r.remaining} bytes left in the file`);
    }
    if (nDims > MAX_DIMS) problems.push(`${at}: ${nDims} dimensions, ggml allows at most ${MAX_DIMS}`);
    const ne: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const n = r.u64();
      ne.push(n > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(n));
    }
    const typeId = r.u32();
    const offset = r.u64();
    raw.push({
      index: i,
      name: name.text,
      ne,
      typeId,
      offset: offset > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(offset),
    });
  }
  const headerEnd = r.pos;

  // Alignment: a u32 power of two (gguf.cpp); an invalid one makes every offset check meaningless.
  let alignment: number | null = GGUF_DEFAULT_ALIGNMENT;
  const align = metadata.get("general.alignment");
  if (align !== undefined) {
    if (align.type !== "u32") {
      problems.push(`metadata general.alignment is ${align.type}, not u32`);
      alignment = null;
    } else if (align.value === 0 || (align.value & (align.value - 1)) !== 0) {
      problems.push(`metadata general.alignment ${align.value} is not a power of two`);
      alignment = null;
    } else alignment = align.value;
  }
  const dataOffset = alignUp(headerEnd, alignment ?? 1);

  const tensors: GgufTensor[] = [];
  const names = new Set<string>();
  for (const t of raw) {
    const at = `tensor ${label(t.name)}`;
    const before = problems.length;
    if (names.has(t.name)) problems.push(`${at}: name appears more than once`);
    names.add(t.name);
    const ggml = GGML_TYPES.get(t.typeId);
    if (!ggml) {
      const removed = REMOVED_TYPES.get(t.typeId);
      problems.push(
        removed
          ? `${at}: ggml type ${t.typeId} (${removed}) was removed from ggml`
          : `${at}: unknown ggml type id ${t.typeId}`,
      );
    }
    const neText = `ne [${t.ne.map((n) => Number.isFinite(n) ? n : "> 2^53").join(", ")}]`;
    if (!t.ne.every((n) => Number.isSafeInteger(n) && n > 0)) {
      problems.push(`${at}: ${neText} must hold positive integers`);
    }
    if (!Number.isSafeInteger(t.offset)) problems.push(`${at}: offset is larger than 2^53`);
    else if (alignment !== null && t.offset % alignment !== 0) {
      problems.push(`${at}: offset ${t.offset} is not a multiple of the alignment ${alignment}`);
    }
    if (problems.length > before || !ggml) continue;
    const count = t.ne.reduce((a, b) => a * b, 1);
    const inner = t.ne[0] ?? 1;
    if (!Number.isSafeInteger(count)) {
      problems.push(`${at}: ${neText} has more than 2^53 elements`);
      continue;
    }
    if (inner % ggml.blockElems !== 0) {
      problems.push(`${at}: ${ggml.name} ${neText}: ne[0] is not a multiple of the ${ggml.blockElems}-element block`);
      continue;
    }
    const bytes = (count / ggml.blockElems) * ggml.blockBytes;
    const start = dataOffset + t.offset;
    if (alignment !== null && start + bytes > size) {
      problems.push(
        `${at}: ${ggml.name} ${neText} needs bytes [${start}, ${start + bytes}), past the end of the ${size}-byte file`,
      );
      continue;
    }
    tensors.push(Object.freeze({
      name: t.name,
      dtype: ggml.dtype ?? ggml.name,
      ggmlType: ggml.name,
      typeId: t.typeId,
      shape: Object.freeze([...t.ne].reverse()),
      ne: Object.freeze([...t.ne]),
      bytes,
      offset: t.offset,
      byteRange: Object.freeze([start, start + bytes] as const),
    }));
  }
  // Overlap: sorted by start, a range must begin at or after the furthest end seen so far (gaps are fine).
  const byStart = [...tensors].sort((a, b) => a.byteRange[0] - b.byteRange[0] || a.byteRange[1] - b.byteRange[1]);
  let furthest: GgufTensor | null = null;
  for (const t of byStart) {
    if (furthest && t.byteRange[0] < furthest.byteRange[1]) {
      const range = (x: GgufTensor) => `[${x.offset}, ${x.offset + x.bytes})`;
      problems.push(`tensors ${label(furthest.name)} ${range(furthest)} and ${label(t.name)} ${range(t)} overlap`);
    }
    if (!furthest || t.byteRange[1] > furthest.byteRange[1]) furthest = t;
  }
  if (problems.length > 0) throw new FormatError(OP, path, problems);
  // Listing order: data order, the order reading them is cheapest (the same as the info order in files
  // llama.cpp writes); stable, so equal offsets keep their info order.
  return { version, alignment: alignment!, dataOffset, metadata, tensors: byStart };
}

/**
 * One open .gguf file. Create with `openGguf()`; close it when done (or open it with `using`).
 * It is a `WeightSource` under the GGUF tensor names; each family maps them to its own (src/models/<family>/gguf.ts).
 */
export class GgufFile implements WeightSource, Disposable {
  readonly path: string;
  /** 2 or 3. */
  readonly version: number;
  /** `general.alignment`, or 32. */
  readonly alignment: number;
  /** Absolute file offset of the data section. */
  readonly dataOffset: number;
  /** Every tensor, in data order (the order reading them is cheapest). */
  readonly tensors: readonly GgufTensor[];
  /** Every metadata key/value, in file order. */
  readonly metadata: ReadonlyMap<string, GgufValue>;
  #file: Deno.FsFile | null;
  readonly #byName: Map<string, GgufTensor>;

  /** Use `openGguf()`; this takes ownership of `file`. */
  constructor(path: string, file: Deno.FsFile, header: Header) {
    this.path = path;
    this.#file = file;
    this.version = header.version;
    this.alignment = header.alignment;
    this.dataOffset = header.dataOffset;
    this.tensors = Object.freeze(header.tensors);
    this.metadata = header.metadata;
    this.#byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  /** The tensor named `name`, or undefined. */
  get(name: string): GgufTensor | undefined {
    return this.#byName.get(name);
  }

  /** Whether the metadata holds `key`. */
  has(key: string): boolean {
    return this.metadata.has(key);
  }

  #value(key: string): GgufValue {
    const v = this.metadata.get(key);
    if (v === undefined) throw new FormatError(OP, this.path, `metadata key ${label(key)} is missing`);
    return v;
  }

  #mistyped(key: string, v: GgufValue, wanted: string): FormatError {
    const is = v.type === "array"
      ? `an array of ${v.itemType}`
      : `${v.type} ${v.type === "string" ? JSON.stringify(v.value) : String(v.value)}`;
    return new FormatError(OP, this.path, `metadata key ${label(key)} is ${is}, not ${wanted}`);
  }

  /** A string value; throws FormatError naming the key when it is missing (and no fallback) or not a string. */
  getString(key: string, fallback?: string): string {
    if (fallback !== undefined && !this.metadata.has(key)) return fallback;
    const v = this.#value(key);
    if (v.type !== "string") throw this.#mistyped(key, v, "a string");
    return v.value;
  }

  /**
   * A number of any numeric type (64-bit integers must be within 2^53); throws FormatError naming the key
   * when it is missing (and no fallback) or not a number.
   */
  getNumber(key: string, fallback?: number): number {
    if (fallback !== undefined && !this.metadata.has(key)) return fallback;
    const v = this.#value(key);
    switch (v.type) {
      case "u64":
      case "i64": {
        const n = Number(v.value);
        if (!Number.isSafeInteger(n)) throw this.#mistyped(key, v, "a number within 2^53");
        return n;
      }
      case "string":
      case "bool":
      case "array":
        throw this.#mistyped(key, v, "a number");
      default:
        return v.value;
    }
  }

  /** A bool value; throws FormatError naming the key when it is missing (and no fallback) or not a bool. */
  getBool(key: string, fallback?: boolean): boolean {
    if (fallback !== undefined && !this.metadata.has(key)) return fallback;
    const v = this.#value(key);
    if (v.type !== "bool") throw this.#mistyped(key, v, "a bool");
    return v.value;
  }

  /**
   * An array value, optionally checked to hold `itemType` elements; throws FormatError naming the key when it
   * is missing or not such an array.
   */
  getArray(key: string, itemType?: GgufValueType): GgufArray {
    const v = this.#value(key);
    if (v.type !== "array") throw this.#mistyped(key, v, itemType ? `an array of ${itemType}` : "an array");
    if (itemType !== undefined && v.itemType !== itemType) throw this.#mistyped(key, v, `an array of ${itemType}`);
    return v;
  }

  /** The stored bytes of one tensor, read with seek + read (nothing else of the file is read). */
  readBytes(name: string): Uint8Array {
    return readTensorBytes(OP, this.path, this.#file, label(name), this.#info(name));
  }

  /**
   * Reads one tensor and uploads it to `backend` as stored (quantized blocks unchanged), in our orientation
   * (outermost first). `options.dtype` converts on the host to a float dtype instead.
   */
  loadTensor(backend: Backend, name: string, options: GgufLoadOptions = {}): Tensor {
    const info = this.#info(name);
    const ggml = GGML_TYPES.get(info.typeId)!;
    const stored = ggml.dtype;
    if (stored === undefined) {
      const kind = ggml.blockElems > 1 ? "quantization" : "type";
      throw new FormatError(OP, this.path, `unsupported ${kind} ${ggml.name} for tensor ${label(name)}`, {
        hint: `gemmakit loads ${LOADABLE_TYPES} tensors; use a GGUF quantized with those (e.g. Q4_K_M, Q4_0, Q8_0)`,
      });
    }
    const target = options.dtype ?? stored;
    if (target !== stored && (target === "i32" || stored === "i32" || isQuantized(target))) {
      throw new DTypeError(OP, `cannot convert tensor ${label(name)} from ${stored} to ${target}`);
    }
    return Tensor.fromBytes(backend, convert(this.readBytes(name), stored, target), info.shape, target);
  }

  #info(name: string): GgufTensor {
    const info = this.#byName.get(name);
    if (!info) throw new FormatError(OP, this.path, `no tensor ${label(name)} (${this.tensors.length} tensors)`);
    return info;
  }

  /** Closes the file handle. Idempotent. */
  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens a .gguf file: streams and checks its header (every problem in one FormatError), keeps the file
 * handle for `loadTensor`. Close it when done (or `using`).
 *
 * @example
 * ```ts
 * using backend = Backend.open({ backend: "cpu" });
 * using gguf = openGguf("gemma-3-270m-q4_k_m.gguf");
 * const arch = gguf.getString("general.architecture");
 * console.log(arch, gguf.getNumber(`${arch}.block_count`));
 * for (const t of gguf.tensors) console.log(t.name, t.ggmlType, t.shape);
 * using w = gguf.loadTensor(backend, "blk.0.attn_q.weight"); // q5_0 blocks, shape [1024, 640]
 * ```
 */
export function openGguf(path: string): GgufFile {
  return openWith(OP, path, (file) => new GgufFile(path, file, readHeader(path, file)));
}
