/**
 * Every failure gemmakit reports is a GemmakitError: native statuses, bad shapes and dtypes caught in
 * TypeScript before a call crosses FFI, a missing library, use after dispose.
 * @module
 */

/** Native status codes of kernels/include/gemmakit.h. */
export const STATUS_NAMES = {
  1: "invalid_argument",
  2: "out_of_memory",
  3: "device",
  4: "no_device",
  5: "unsupported",
  6: "internal",
} as const;

export type StatusName = (typeof STATUS_NAMES)[keyof typeof STATUS_NAMES] | "unknown";

/** Base class of every error gemmakit throws. `op` names the operation; `hint` says what to do. */
export class GemmakitError extends Error {
  override name = "GemmakitError";
  readonly op: string;
  readonly hint?: string;

  constructor(op: string, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(`${op}: ${message}${options.hint ? `\n  hint: ${options.hint}` : ""}`, { cause: options.cause });
    this.op = op;
    this.hint = options.hint;
  }
}

/** A native entry returned a non-zero status; carries the library's own message. */
export class NativeError extends GemmakitError {
  override name = "NativeError";
  readonly status: number;
  readonly statusName: StatusName;
  readonly nativeMessage: string;

  constructor(op: string, status: number, nativeMessage: string, hint?: string) {
    const statusName: StatusName = STATUS_NAMES[status as keyof typeof STATUS_NAMES] ?? "unknown";
    super(op, `${statusName} (status ${status}): ${nativeMessage || "(no message)"}`, { hint });
    this.status = status;
    this.statusName = statusName;
    this.nativeMessage = nativeMessage;
  }
}

/** Tensor shapes that do not fit the op; thrown before any native call. */
export class ShapeError extends GemmakitError {
  override name = "ShapeError";
}

/** A dtype the op does not take; thrown before any native call. */
export class DTypeError extends GemmakitError {
  override name = "DTypeError";
}

/** The native library is missing, of another ABI version, or cannot serve the requested backend. */
export class LibraryError extends GemmakitError {
  override name = "LibraryError";
}

/** A tensor or backend was used after dispose(). */
export class DisposedError extends GemmakitError {
  override name = "DisposedError";
}

/** A prompt (plus what must be generated) that does not fit the model's context. */
export class ContextLengthError extends GemmakitError {
  override name = "ContextLengthError";
  constructor(op: string, readonly promptTokens: number, readonly limit: number) {
    super(op, `the prompt is ${promptTokens} tokens, over the context limit of ${limit}`, {
      hint: "shorten the prompt, or load the model with a larger maxContext (up to max_position_embeddings)",
    });
  }
}
