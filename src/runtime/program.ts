/**
 * Decode programs: one decode step recorded once — the same op calls, made in recording mode — and
 * replayed natively many times per FFI call (a CUDA graph on CUDA, a list of calls on the CPU).
 *
 * Everything that changes from step to step must live in device memory that the recorded ops read: the
 * decode state (`DECODE_STATE` in src/ops/sample.ts: position, token, history length, done, RNG step),
 * KV caches, the history buffer. Arguments given on the host (shapes, scales, sampling parameters) are
 * fixed at record time. While recording, ops are checked but not run, and nothing may be allocated,
 * freed, uploaded or downloaded: create every tensor the step uses first.
 * @module
 */
import { DisposedError, GemmakitError, NativeError } from "../errors.ts";
import { cString } from "../ffi/library.ts";
import type { Symbols } from "../ffi/symbols.ts";
import type { Backend } from "./backend.ts";

interface Held {
  symbols: Symbols;
  ptr: Deno.PointerObject;
}

// Destroys programs that were dropped without dispose(). Errors cannot surface here, so they are ignored.
// The symbols are held directly: destroying a program does not need its backend, which may be gone.
const backstop = new FinalizationRegistry<Held>(({ symbols, ptr }) => {
  try {
    symbols.gk_program_destroy(ptr);
  } catch { /* nothing to report to */ }
});

/**
 * A recorded decode step.
 *
 * @example
 * ```ts
 * using backend = Backend.open({ backend: "cpu" });
 * using x = Tensor.fromArray(backend, [1, 2, 3], [3]);
 * using program = DecodeProgram.record(backend, () => {
 *   ops.scale(x, 2, x); // recorded, not run
 * });
 * program.run(3);
 * console.log(x.toArray()); // Float32Array(3) [8, 16, 24]
 * ```
 */
export class DecodeProgram {
  readonly backend: Backend;
  #symbols: Symbols;
  #ptr: Deno.PointerObject | null;
  #token = {};

  private constructor(backend: Backend, ptr: Deno.PointerObject) {
    this.backend = backend;
    this.#symbols = backend.symbols;
    this.#ptr = ptr;
    backstop.register(this, { symbols: this.#symbols, ptr }, this.#token);
  }

  /**
   * Runs `body` with the backend's stream in recording mode and returns the recorded program. When
   * `body` throws, the recording is ended and discarded, and the error is rethrown: the stream is usable
   * again.
   */
  static record(backend: Backend, body: () => void): DecodeProgram {
    backend.beginRecording();
    try {
      const result: unknown = body();
      if (result instanceof Promise) {
        throw new GemmakitError("DecodeProgram.record", "the body returned a Promise; it must record synchronously");
      }
    } catch (e) {
      try {
        const ptr = backend.endRecording();
        backend.symbols.gk_program_destroy(ptr);
      } catch { /* the body's error is the one to report */ }
      throw e;
    }
    return new DecodeProgram(backend, backend.endRecording());
  }

  get disposed(): boolean {
    return this.#ptr === null || this.backend.disposed;
  }

  /**
   * Replays the step `steps` times back to back and waits for the last one. A failing op stops the run;
   * the NativeError names the step (on CUDA, where kernels fail asynchronously, the range of steps).
   */
  run(steps: number): void {
    if (!Number.isInteger(steps) || steps < 0 || steps > 0x7fffffff) {
      throw new GemmakitError("DecodeProgram.run", `steps=${steps} must be an integer in [0, 2^31)`);
    }
    if (this.#ptr === null) throw new DisposedError("DecodeProgram.run", "the program was disposed");
    const stream = this.backend.stream; // throws DisposedError once the backend is gone
    this.backend.check("gk_program_run", this.#symbols.gk_program_run(this.#ptr, stream, steps));
  }

  /**
   * Like `run`, on a worker thread: the event loop stays free while the steps run. Nothing else may be
   * enqueued on this backend's stream until the promise settles (generation holds the model's lock).
   */
  async runAsync(steps: number): Promise<void> {
    if (!Number.isInteger(steps) || steps < 0 || steps > 0x7fffffff) {
      throw new GemmakitError("DecodeProgram.runAsync", `steps=${steps} must be an integer in [0, 2^31)`);
    }
    if (this.#ptr === null) throw new DisposedError("DecodeProgram.runAsync", "the program was disposed");
    const ptr = this.#ptr;
    const status = await this.#symbols.gk_program_run_nonblocking(ptr, this.backend.stream, steps);
    // The thread-local last error lives on the worker thread; the program keeps its own copy.
    if (status !== 0) {
      throw new NativeError("gk_program_run", status, cString(this.#symbols.gk_program_last_error(ptr)));
    }
  }

  /** Frees the native program. Idempotent. */
  dispose(): void {
    const ptr = this.#ptr;
    if (ptr === null) return;
    this.#ptr = null;
    backstop.unregister(this.#token);
    this.backend.check("gk_program_destroy", this.#symbols.gk_program_destroy(ptr));
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
