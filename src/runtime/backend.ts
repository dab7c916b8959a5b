/**
 * A Backend is one native context on one device: its memory, its default stream, and the library's
 * symbols. Every native status passes through `check`, which turns it into a typed error.
 * @module
 */
import { DisposedError, GemmakitError, NativeError } from "../errors.ts";
import { type BackendChoice, type BackendKind, cString, loadLibrary, type NativeLibrary } from "../ffi/library.ts";
import type { Symbols } from "../ffi/symbols.ts";

/** Device memory accounting, as the native context keeps it. */
export interface MemoryStats {
  /** Bytes currently allocated through this backend. */
  inUse: number;
  /** Largest `inUse` since creation or `resetPeak()`. */
  peak: number;
  /** Live allocations. */
  allocations: number;
  /** Total memory of the device (physical RAM for the CPU backend). */
  deviceTotal: number;
}

export interface BackendOptions {
  /** "auto" (default: GEMMAKIT_BACKEND, else CUDA when present, else CPU), "cpu" or "cuda". */
  backend?: BackendChoice;
  /** Device ordinal (CUDA). Default 0. */
  device?: number;
}

function readPointer(out: BigUint64Array): Deno.PointerObject {
  const ptr = Deno.UnsafePointer.create(out[0]);
  if (ptr === null) throw new Error("native call returned a NULL handle with status OK");
  return ptr;
}

/**
 * One native context. Create with `Backend.open()`; `dispose()` frees every allocation it still owns.
 *
 * @example
 * ```ts
 * using backend = Backend.open({ backend: "cpu" });
 * console.log(backend.kind, backend.deviceName, backend.memoryStats());
 * ```
 */
export class Backend {
  readonly kind: BackendKind;
  readonly device: number;
  readonly deviceName: string;
  readonly libraryPath: string;
  #lib: NativeLibrary;
  #ctx: Deno.PointerObject | null;
  #stream: Deno.PointerObject;
  #recording = false;

  private constructor(lib: NativeLibrary, device: number) {
    this.#lib = lib;
    this.kind = lib.kind;
    this.device = device;
    this.libraryPath = lib.path;
    const out = new BigUint64Array(1);
    this.#check("gk_context_create", lib.symbols.gk_context_create(device, out));
    this.#ctx = readPointer(out);
    this.#check("gk_context_default_stream", lib.symbols.gk_context_default_stream(this.#ctx, out));
    this.#stream = readPointer(out);
    const name = new Uint8Array(256);
    this.#check("gk_device_name", lib.symbols.gk_device_name(device, name, name.length));
    this.deviceName = new TextDecoder().decode(name.subarray(0, name.indexOf(0)));
  }

  /** Opens a context on the chosen backend (see BackendOptions). */
  static open(options: BackendOptions = {}): Backend {
    const lib = loadLibrary(options.backend);
    return new Backend(lib, options.device ?? 0);
  }

  /** The library's symbols, for src/ops. */
  get symbols(): Symbols {
    this.#live("symbols");
    return this.#lib.symbols;
  }

  /** The default stream every op is enqueued on. */
  get stream(): Deno.PointerObject {
    this.#live("stream");
    return this.#stream;
  }

  get disposed(): boolean {
    return this.#ctx === null;
  }

  /** True while a decode program is being recorded on the stream (see DecodeProgram.record). */
  get recording(): boolean {
    return this.#recording;
  }

  /**
   * Starts recording the ops enqueued on the stream into a decode program instead of running them.
   * Prefer `DecodeProgram.record`, which always ends the recording.
   */
  beginRecording(): void {
    this.#live("beginRecording");
    this.#check("gk_program_begin", this.#lib.symbols.gk_program_begin(this.#stream));
    this.#recording = true;
  }

  /** Ends the recording and returns the native program (gk_program*), which the caller must destroy. */
  endRecording(): Deno.PointerObject {
    this.#live("endRecording");
    this.#recording = false;
    const out = new BigUint64Array(1);
    this.#check("gk_program_end", this.#lib.symbols.gk_program_end(this.#stream, out));
    return readPointer(out);
  }

  // Memory that a recorded op uses must exist for as long as the program does: no allocation or free in
  // between (on CUDA, cudaMalloc and cudaFree would also invalidate the capture).
  #notRecording(op: string): void {
    if (this.#recording) {
      throw new GemmakitError(op, "not allowed while recording a decode program", {
        hint: "allocate every tensor the recorded step uses before DecodeProgram.record, and free them after",
      });
    }
  }

  /** Throws NativeError (with the native message) when `status` is not OK. */
  check(op: string, status: number): void {
    this.#check(op, status);
  }

  #check(op: string, status: number): void {
    if (status === 0) return;
    const message = cString(this.#lib.symbols.gk_last_error());
    const hint = status === 2 ? "free tensors you no longer need (dispose()), or use a smaller model" : undefined;
    throw new NativeError(op, status, message, hint);
  }

  #live(op: string): Deno.PointerObject {
    if (this.#ctx === null) throw new DisposedError(op, `the ${this.kind} backend was disposed`);
    return this.#ctx;
  }

  /** Allocates `bytes` of device memory. */
  alloc(bytes: number): Deno.PointerObject {
    const ctx = this.#live("alloc");
    this.#notRecording("alloc");
    const out = new BigUint64Array(1);
    this.#check("gk_malloc", this.#lib.symbols.gk_malloc(ctx, BigInt(bytes), out));
    return readPointer(out);
  }

  /** Frees memory from `alloc`. After dispose() this is a no-op: the context freed everything. */
  free(ptr: Deno.PointerObject): void {
    if (this.#ctx === null) return;
    this.#notRecording("free");
    this.#check("gk_free", this.#lib.symbols.gk_free(this.#ctx, ptr));
  }

  /** Copies host bytes to device memory; returns when they have arrived. */
  upload(dst: Deno.PointerObject, src: Uint8Array): void {
    this.#live("upload");
    this.#check("gk_memcpy_h2d", this.#lib.symbols.gk_memcpy_h2d(this.#stream, dst, src, BigInt(src.byteLength)));
  }

  /** Copies device memory into `dst` after all enqueued work has finished. */
  download(src: Deno.PointerObject, dst: Uint8Array): void {
    this.#live("download");
    this.#check("gk_memcpy_d2h", this.#lib.symbols.gk_memcpy_d2h(this.#stream, dst, src, BigInt(dst.byteLength)));
  }

  copy(dst: Deno.PointerObject, src: Deno.PointerObject, bytes: number): void {
    this.#live("copy");
    this.#check("gk_memcpy_d2d", this.#lib.symbols.gk_memcpy_d2d(this.#stream, dst, src, BigInt(bytes)));
  }

  fill(dst: Deno.PointerObject, byteValue: number, bytes: number): void {
    this.#live("fill");
    this.#check("gk_memset", this.#lib.symbols.gk_memset(this.#stream, dst, byteValue, BigInt(bytes)));
  }

  /** Waits for every op enqueued so far. */
  synchronize(): void {
    this.#live("synchronize");
    this.#check("gk_stream_synchronize", this.#lib.symbols.gk_stream_synchronize(this.#stream));
  }

  memoryStats(): MemoryStats {
    const ctx = this.#live("memoryStats");
    const out = new BigUint64Array(4);
    this.#check("gk_memory_stats", this.#lib.symbols.gk_memory_stats(ctx, out));
    return {
      inUse: Number(out[0]),
      peak: Number(out[1]),
      allocations: Number(out[2]),
      deviceTotal: Number(out[3]),
    };
  }

  resetPeak(): void {
    this.#check("gk_memory_reset_peak", this.#lib.symbols.gk_memory_reset_peak(this.#live("resetPeak")));
  }

  /** Destroys the context and every allocation it still owns. Idempotent. */
  dispose(): void {
    if (this.#ctx === null) return;
    const ctx = this.#ctx;
    this.#ctx = null;
    this.#recording = false; // the native context ends (and discards) a recording in progress
    this.#check("gk_context_destroy", this.#lib.symbols.gk_context_destroy(ctx));
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

let shared: Backend | undefined;

/** The process-wide default backend, opened on first use with GEMMAKIT_BACKEND or auto-detection. */
export function defaultBackend(): Backend {
  if (!shared || shared.disposed) shared = Backend.open();
  return shared;
}
