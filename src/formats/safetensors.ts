/**
 * A safetensors reader that never holds a whole checkpoint in memory: opening reads the 8-byte header length
 * and the JSON header only; loading a tensor seeks to its bytes, reads exactly those, and uploads them.
 *
 * Format (https://github.com/huggingface/safetensors#format): u64 little-endian N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {string: string}}`, then the data
 * section, offsets relative to its start. Sharded checkpoints add `model.safetensors.index.json`, whose
 * `weight_map` maps each tensor name to its shard file.
 *
 * Every header problem of a file is reported at once in one FormatError, one line per problem, so a broken
 * export is fixed in one round rather than one error at a time.
 * @module
 */
import { basename, join } from "node:path";
import { DisposedError, DTypeError } from "../errors.ts";
import type { Backend } from "../runtime/backend.ts";
import type { DType } from "../runtime/dtype.ts";
import { Tensor } from "../runtime/tensor.ts";
import { FormatError } from "../errors.ts";
import { convert, openWith, readAt, readTensorBytes } from "./file.ts";

const OP = "safetensors";

/** Bits per element of every safetensors dtype (safetensors 0.8 `Dtype::bitsize`). */
const DTYPE_BITS = {
  BOOL: 8,
  F4: 4,
  F6_E2M3: 6,
  F6_E3M2: 6,
  U8: 8,
  I8: 8,
  F8_E5M2: 8,
  F8_E4M3: 8,
  F8_E8M0: 8,
  F8_E4M3FNUZ: 8,
  F8_E5M2FNUZ: 8,
  I16: 16,
  U16: 16,
  F16: 16,
  BF16: 16,
  I32: 32,
  U32: 32,
  F32: 32,
  C64: 64,
  F64: 64,
  I64: 64,
  U64: 64,
} as const;

/** A dtype name as a safetensors header spells it. */
export type SafetensorsDType = keyof typeof DTYPE_BITS;

/** The safetensors dtypes our tensors hold as stored; the others list fine but cannot be loaded. */
const OUR_DTYPES: Partial<Record<SafetensorsDType, DType>> = { F32: "f32", F16: "f16", BF16: "bf16", I32: "i32" };

/** safetensors' own limit (`MAX_HEADER_SIZE`): a larger header is a corrupt length, not a real header. */
const MAX_HEADER_BYTES = 100_000_000;

/** One tensor as the header describes it. */
export interface SafetensorsTensor {
  /** The header key, e.g. "model.layers.0.self_attn.q_proj.weight". */
  readonly name: string;
  /** Our DType when a device tensor can hold it as stored, else the raw safetensors dtype (e.g. "F64"). */
  readonly dtype: DType | SafetensorsDType;
  /** The dtype as the header spells it. */
  readonly storedDtype: SafetensorsDType;
  /** Dimensions, outermost first; [] for a scalar. */
  readonly shape: readonly number[];
  /** Byte length of the stored data. */
  readonly bytes: number;
  /** The file holding it (a shard, for sharded checkpoints). */
  readonly file: string;
  /** [start, end) as absolute file offsets: 8 + header length + `data_offsets`. */
  readonly byteRange: readonly [number, number];
}

/** Options of `loadTensor`. */
export interface LoadTensorOptions {
  /** Convert on the host to this float dtype (e.g. bf16 → f32). Default: keep the stored dtype. */
  dtype?: DType;
}

/** An open single-file or sharded checkpoint. Holds file handles: `close()` it, or open it with `using`. */
export interface SafetensorsSource extends Disposable {
  /** The file, or the directory of a sharded checkpoint. */
  readonly path: string;
  /** Every tensor, in file order (shard by shard). */
  readonly tensors: readonly SafetensorsTensor[];
  /** `__metadata__` (of the first shard for sharded checkpoints, plus the index's `metadata` strings). */
  readonly metadata: Readonly<Record<string, string>>;
  /** The tensor named `name`, or undefined. */
  get(name: string): SafetensorsTensor | undefined;
  /** The stored bytes of one tensor, read with seek + read (nothing else of the file is read). */
  readBytes(name: string): Uint8Array;
  /** Reads one tensor and uploads it to `backend`, in its stored dtype unless `options.dtype` asks otherwise. */
  loadTensor(backend: Backend, name: string, options?: LoadTensorOptions): Tensor;
  /** Closes the file handles. Idempotent. */
  close(): void;
}

const quote = (name: string) => JSON.stringify(name);
/** A NUL or other control character, which no file name in a checkpoint has (and stat refuses NUL). */
const hasControl = (s: string) => [...s].some((c) => c.charCodeAt(0) < 0x20);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

interface Header {
  tensors: SafetensorsTensor[];
  metadata: Record<string, string>;
}

/** Checks one header entry; returns the tensor, or null after pushing its problems. */
function checkEntry(
  path: string,
  name: string,
  value: unknown,
  dataStart: number,
  dataBytes: number,
  problems: string[],
): SafetensorsTensor | null {
  const at = `tensor ${quote(name)}`;
  if (!isObject(value)) {
    problems.push(`${at}: entry is ${JSON.stringify(value)}, not an object with dtype, shape and data_offsets`);
    return null;
  }
  const before = problems.length;
  const { dtype, shape, data_offsets: offsets } = value;
  if (dtype === undefined) problems.push(`${at}: missing dtype`);
  else if (typeof dtype !== "string") problems.push(`${at}: dtype ${JSON.stringify(dtype)} is not a string`);
  else if (!(dtype in DTYPE_BITS)) {
    problems.push(`${at}: unknown dtype ${quote(dtype)} (safetensors has ${Object.keys(DTYPE_BITS).join(", ")})`);
  }
  if (shape === undefined) problems.push(`${at}: missing shape`);
  else if (!Array.isArray(shape)) problems.push(`${at}: shape ${JSON.stringify(shape)} is not an array`);
  else if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    problems.push(`${at}: shape ${JSON.stringify(shape)} must hold non-negative integers`);
  }
  if (offsets === undefined) problems.push(`${at}: missing data_offsets`);
  else if (
    !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    problems.push(`${at}: data_offsets ${JSON.stringify(offsets)} must be [begin, end], non-negative integers`);
  }
  if (problems.length > before) return null;

  const stored = dtype as SafetensorsDType;
  const dims = shape as number[];
  const [begin, end] = offsets as [number, number];
  if (begin > end) problems.push(`${at}: data_offsets [${begin}, ${end}] are out of order`);
  else if (end > dataBytes) {
    problems.push(`${at}: data_offsets [${begin}, ${end}] run past the end of the data section (${dataBytes} bytes)`);
  }
  const bits = dims.reduce((n, d) => n * d, 1) * DTYPE_BITS[stored];
  if (!Number.isSafeInteger(bits) || bits % 8 !== 0) {
    problems.push(`${at}: ${stored}[${dims.join(", ")}] is not a whole number of bytes`);
  } else if (begin <= end && end - begin !== bits / 8) {
    problems.push(
      `${at}: ${stored}[${dims.join(", ")}] needs ${bits / 8} bytes but data_offsets [${begin}, ${end}] hold ${
        end - begin
      }`,
    );
  }
  if (problems.length > before) return null;
  return {
    name,
    dtype: OUR_DTYPES[stored] ?? stored,
    storedDtype: stored,
    shape: Object.freeze([...dims]),
    bytes: end - begin,
    file: path,
    byteRange: Object.freeze([dataStart + begin, dataStart + end] as const),
  };
}

/** Reads and checks the header of an open file; throws one FormatError with every problem. */
function readHeader(path: string, file: Deno.FsFile): Header {
  const stat = file.statSync();
  if (stat.isDirectory) {
    throw new FormatError(OP, path, "is a directory", {
      hint: "open a checkpoint directory with openSafetensorsDir()",
    });
  }
  const size = stat.size;
  if (size < 8) throw new FormatError(OP, path, `file is ${size} bytes, shorter than the 8-byte header length`);
  const lengthBytes = new Uint8Array(8);
  if (readAt(file, 0, lengthBytes) < 8) throw new FormatError(OP, path, "file ended inside the header length");
  const length = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (length === 0n) throw new FormatError(OP, path, "header length is 0");
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new FormatError(OP, path, `header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit`, {
      hint: "this is probably not a safetensors file, or its first 8 bytes are corrupt",
    });
  }
  const headerBytes = Number(length);
  if (8 + headerBytes > size) {
    throw new FormatError(OP, path, `header length ${headerBytes} runs past the end of the ${size}-byte file`, {
      hint: "the file is truncated (an interrupted download?)",
    });
  }
  const raw = new Uint8Array(headerBytes);
  if (readAt(file, 8, raw) < headerBytes) throw new FormatError(OP, path, "file ended inside the header");
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(raw));
  } catch (e) {
    throw new FormatError(OP, path, `header is not valid UTF-8 JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!isObject(json)) {
    throw new FormatError(OP, path, `header is ${Array.isArray(json) ? "an array" : String(json)}, not a JSON object`);
  }

  const problems: string[] = [];
  const dataStart = 8 + headerBytes;
  const dataBytes = size - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsTensor[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isObject(value)) problems.push(`__metadata__ is ${JSON.stringify(value)}, not an object of strings`);
      else {
        for (const [k, v] of Object.entries(value)) {
          if (typeof v === "string") metadata[k] = v;
          else problems.push(`__metadata__ ${quote(k)} is ${JSON.stringify(v)}, not a string`);
        }
      }
      continue;
    }
    const tensor = checkEntry(path, name, value, dataStart, dataBytes, problems);
    if (tensor) tensors.push(tensor);
  }
  // Overlap: sorted by start, a non-empty range must begin at or after the furthest end seen so far.
  // (Empty tensors own no bytes, so they may sit anywhere.) Gaps are tolerated: they waste space, nothing more.
  tensors.sort((a, b) => a.byteRange[0] - b.byteRange[0] || a.byteRange[1] - b.byteRange[1]);
  let furthest: SafetensorsTensor | null = null;
  for (const t of tensors) {
    if (t.bytes === 0) continue;
    if (furthest && t.byteRange[0] < furthest.byteRange[1]) {
      const range = (x: SafetensorsTensor) => `[${x.byteRange[0] - dataStart}, ${x.byteRange[1] - dataStart}]`;
      problems.push(`tensors ${quote(furthest.name)} ${range(furthest)} and ${quote(t.name)} ${range(t)} overlap`);
    }
    if (!furthest || t.byteRange[1] > furthest.byteRange[1]) furthest = t;
  }
  if (problems.length > 0) throw new FormatError(OP, path, problems);
  return { tensors, metadata };
}

/** Shared by single files and shards: checks loadability, reads, converts, uploads. */
function load(
  source: { readBytes(name: string): Uint8Array },
  info: SafetensorsTensor,
  backend: Backend,
  options: LoadTensorOptions,
): Tensor {
  const stored = OUR_DTYPES[info.storedDtype];
  if (stored === undefined) {
    throw new FormatError(OP, info.file, `unsupported dtype ${info.storedDtype} for tensor ${quote(info.name)}`, {
      hint: "gemmakit loads F32, F16, BF16 and I32 tensors; convert the checkpoint (e.g. to bf16) first",
    });
  }
  const target = options.dtype ?? stored;
  if (target !== stored && (target === "i32" || stored === "i32")) {
    throw new DTypeError(OP, `cannot convert tensor ${quote(info.name)} from ${stored} to ${target}`);
  }
  if (info.shape.includes(0)) {
    throw new FormatError(OP, info.file, `tensor ${quote(info.name)} [${info.shape.join(", ")}] has no elements`, {
      hint: "device tensors cannot be empty; leave this tensor out (an optional weight row)",
    });
  }
  return Tensor.fromBytes(backend, convert(source.readBytes(info.name), stored, target), info.shape, target);
}

/** One open .safetensors file. Create with `openSafetensors()`. */
export class SafetensorsFile implements SafetensorsSource {
  readonly path: string;
  readonly tensors: readonly SafetensorsTensor[];
  readonly metadata: Readonly<Record<string, string>>;
  #file: Deno.FsFile | null;
  readonly #byName: Map<string, SafetensorsTensor>;

  /** Use `openSafetensors()`; this takes ownership of `file`. */
  constructor(path: string, file: Deno.FsFile, header: Header) {
    this.path = path;
    this.#file = file;
    this.tensors = Object.freeze(header.tensors);
    this.metadata = Object.freeze(header.metadata);
    this.#byName = new Map(header.tensors.map((t) => [t.name, t]));
  }

  get(name: string): SafetensorsTensor | undefined {
    return this.#byName.get(name);
  }

  readBytes(name: string): Uint8Array {
    return readTensorBytes(OP, this.path, this.#file, quote(name), this.#info(name));
  }

  loadTensor(backend: Backend, name: string, options: LoadTensorOptions = {}): Tensor {
    return load(this, this.#info(name), backend, options);
  }

  #info(name: string): SafetensorsTensor {
    const info = this.#byName.get(name);
    if (!info) throw new FormatError(OP, this.path, `no tensor ${quote(name)} (${this.tensors.length} tensors)`);
    return info;
  }

  close(): void {
    this.#file?.close();
    this.#file = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens one .safetensors file: reads and checks its header (every problem in one FormatError), keeps the file
 * handle for `loadTensor`. Close it when done (or `using`).
 *
 * @example
 * ```ts
 * using backend = Backend.open({ backend: "cpu" });
 * using st = openSafetensors("model.safetensors");
 * for (const t of st.tensors) console.log(t.name, t.dtype, t.shape);
 * using embed = st.loadTensor(backend, "model.embed_tokens.weight"); // stored dtype, e.g. bf16
 * ```
 */
export function openSafetensors(path: string): SafetensorsFile {
  return openWith(OP, path, (file) => new SafetensorsFile(path, file, readHeader(path, file)));
}

/** A checkpoint split over shards by `model.safetensors.index.json`. Create with `openSafetensorsDir()`. */
export class ShardedSafetensors implements SafetensorsSource {
  readonly path: string;
  readonly tensors: readonly SafetensorsTensor[];
  readonly metadata: Readonly<Record<string, string>>;
  /** The shards, in index order. */
  readonly shards: readonly SafetensorsFile[];
  readonly #byName: Map<string, [SafetensorsTensor, SafetensorsFile]>;
  #closed = false;

  /** Use `openSafetensorsDir()`; this takes ownership of `shards`, which must hold distinct tensor names. */
  constructor(path: string, shards: readonly SafetensorsFile[], metadata: Record<string, string>) {
    this.path = path;
    this.shards = Object.freeze([...shards]);
    this.tensors = Object.freeze(shards.flatMap((s) => s.tensors));
    this.metadata = Object.freeze(metadata);
    this.#byName = new Map(shards.flatMap((s) => s.tensors.map((t) => [t.name, [t, s]] as const)));
  }

  get(name: string): SafetensorsTensor | undefined {
    return this.#byName.get(name)?.[0];
  }

  readBytes(name: string): Uint8Array {
    return this.#entry(name)[1].readBytes(name);
  }

  loadTensor(backend: Backend, name: string, options: LoadTensorOptions = {}): Tensor {
    const [info, shard] = this.#entry(name);
    return load(shard, info, backend, options);
  }

  #entry(name: string): [SafetensorsTensor, SafetensorsFile] {
    const entry = this.#byName.get(name);
    if (!entry) throw new FormatError(OP, this.path, `no tensor ${quote(name)} in ${this.shards.length} shards`);
    if (this.#closed) throw new DisposedError(OP, `${this.path} was closed`);
    return entry;
  }

  close(): void {
    this.#closed = true;
    for (const s of this.shards) s.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Whether `path` exists; any other failure of stat (a NUL byte, a name too long, no permission) is a FormatError. */
function exists(path: string, where: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw new FormatError(OP, where, `cannot look up ${quote(basename(path))}: ${(e as Error).message}`, {
      cause: e,
    });
  }
}

/** The shard files of an index, checked: each name a plain file name inside the directory. */
function readIndex(indexPath: string): { weightMap: Map<string, string>; metadata: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(Deno.readTextFileSync(indexPath));
  } catch (e) {
    throw new FormatError(OP, indexPath, `cannot read the index: ${(e as Error).message}`, { cause: e });
  }
  if (!isObject(json) || !isObject(json.weight_map)) {
    throw new FormatError(OP, indexPath, "index is not an object with a weight_map object");
  }
  const problems: string[] = [];
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(json.weight_map)) {
    // A name is one path component a file system can hold: no separators, no NUL or control bytes, <= 255 bytes.
    if (
      typeof shard !== "string" || shard === "" || /[\\/]/.test(shard) || hasControl(shard) || shard === "." ||
      shard === ".." ||
      new TextEncoder().encode(shard).length > 255
    ) {
      problems.push(`weight_map maps ${quote(name)} to ${JSON.stringify(shard)}, not a file name in this directory`);
    } else weightMap.set(name, shard);
  }
  if (problems.length > 0) throw new FormatError(OP, indexPath, problems);
  // The index's metadata (e.g. total_size) is informational; keep its string values, stringify numbers.
  const metadata: Record<string, string> = {};
  if (isObject(json.metadata)) {
    for (const [k, v] of Object.entries(json.metadata)) {
      if (typeof v === "string" || typeof v === "number") metadata[k] = String(v);
    }
  }
  return { weightMap, metadata };
}

function openSharded(dir: string, indexPath: string): ShardedSafetensors {
  const { weightMap, metadata } = readIndex(indexPath);
  const problems: string[] = [];
  const shards = new Map<string, SafetensorsFile>();
  const shardNames = [...new Set(weightMap.values())];
  try {
    for (const shard of shardNames) {
      const path = join(dir, shard);
      if (!exists(path, indexPath)) {
        const n = [...weightMap.values()].filter((s) => s === shard).length;
        problems.push(`shard ${shard} named in the index (for ${n} tensors) is missing`);
        continue;
      }
      try {
        shards.set(shard, openSafetensors(path));
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        problems.push(...e.problems.map((p) => `${shard}: ${p}`));
      }
    }
    const home = new Map<string, string>();
    for (const [shard, file] of shards) {
      for (const t of file.tensors) {
        const first = home.get(t.name);
        if (first !== undefined) problems.push(`tensor ${quote(t.name)} is in both ${first} and ${shard}`);
        else home.set(t.name, shard);
      }
    }
    for (const [name, shard] of weightMap) {
      const file = shards.get(shard);
      if (file && !file.get(name)) {
        const actual = home.get(name);
        problems.push(
          `index maps ${quote(name)} to ${shard}, which does not contain it${actual ? ` (it is in ${actual})` : ""}`,
        );
      }
    }
    if (problems.length > 0) throw new FormatError(OP, dir, problems);
  } catch (e) {
    for (const file of shards.values()) file.close();
    throw e;
  }
  const first = shards.get(shardNames[0]);
  return new ShardedSafetensors(dir, [...shards.values()], { ...first?.metadata, ...metadata });
}

/**
 * Opens a Hugging Face checkpoint directory: `model.safetensors`, or else the shards named by
 * `model.safetensors.index.json`, each checked as `openSafetensors` does, plus: every shard present, every
 * indexed tensor in the shard the index names, no tensor in two shards. All problems come in one FormatError.
 *
 * @example
 * ```ts
 * using ckpt = openSafetensorsDir("/models/gemma-3-1b-it");
 * console.log(ckpt.tensors.length, ckpt.get("model.norm.weight")?.shape);
 * ```
 */
export function openSafetensorsDir(dir: string): SafetensorsSource {
  const single = join(dir, "model.safetensors");
  if (exists(single, dir)) return openSafetensors(single);
  const index = join(dir, "model.safetensors.index.json");
  if (exists(index, dir)) return openSharded(dir, index);
  let others: string[] = [];
  try {
    others = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".safetensors"));
  } catch (e) {
    throw new FormatError(OP, dir, `cannot read the directory: ${(e as Error).message}`, { cause: e });
  }
  throw new FormatError(OP, dir, "has neither model.safetensors nor model.safetensors.index.json", {
    hint: others.length > 0
      ? `open one of ${others.join(", ")} with openSafetensors()`
      : "point at a Hugging Face checkpoint directory",
  });
}
