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

/**
 * A session file (ChatSession.save, Model.saveState) that cannot be loaded: not a session file, another format
 * version, truncated, or written by another model, context size or tokenizer. `reason` says which.
 */
export class SessionFileError extends GemmakitError {
  override name = "SessionFileError";
  constructor(
    readonly path: string,
    readonly reason: "format" | "version" | "model" | "truncated",
    detail: string,
  ) {
    const hints = {
      format: "pass a file written by ChatSession.save() or Model.saveState()",
      version: "this gemmakit reads session files of its own format version; save the session again",
      model: "load the session into the same model (and maxContext) that saved it",
      truncated: "the file was cut short while written or copied; save the session again",
    };
    super("session", `${path}: ${detail}`, { hint: hints[reason] });
  }
}

/**
 * A checkpoint file (or directory of shards) that cannot be read as its format says.
 *
 * @example
 * ```ts
 * try {
 *   openSafetensors("model.safetensors");
 * } catch (e) {
 *   if (e instanceof FormatError) console.error(e.file, e.problems); // one entry per problem
 * }
 * ```
 */
export class FormatError extends GemmakitError {
  override name = "FormatError";
  /** The file or directory the problems are in. */
  readonly file: string;
  /** Every problem found, one line each. */
  readonly problems: readonly string[];

  constructor(
    op: string,
    file: string,
    problems: string | readonly string[],
    options: { hint?: string; cause?: unknown } = {},
  ) {
    const list = typeof problems === "string" ? [problems] : [...problems];
    const body = list.length === 1 ? list[0] : `${list.length} problems:\n${list.map((p) => `  - ${p}`).join("\n")}`;
    super(op, `${file}: ${body}`, options);
    this.file = file;
    this.problems = Object.freeze(list);
  }
}

/** A config.json that is not a model we can run; lists every problem found. */
export class ConfigError extends GemmakitError {
  override name = "ConfigError";
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super("config", `${source}:\n  - ${problems.join("\n  - ")}`);
    this.problems = problems;
  }
}

/** A checkpoint that does not match a model's weight table; `problems` lists every mismatch, one line each. */
export class WeightsError extends GemmakitError {
  override name = "WeightsError";
  /** Every mismatch, one line each. */
  readonly problems: readonly string[];

  constructor(source: string, problems: readonly string[]) {
    const lines = problems.map((p) => `\n  - ${p}`).join("");
    super("weights", `${source} does not match the model (${problems.length} problems):${lines}`, {
      hint: "check that the checkpoint and config.json belong to the same model and variant",
    });
    this.problems = Object.freeze([...problems]);
  }
}

/** An image the checkpoint cannot take: none expected, or their number does not match the placeholders. */
export class ImageInputError extends GemmakitError {
  override name = "ImageInputError";
}

/** Why an image was refused. */
export type ImageErrorKind =
  | "not_an_image" // no known image signature
  | "unsupported_format" // a real image format gemmakit does not decode (WebP, TIFF, BMP, ...)
  | "truncated" // the file ends before its image data does
  | "corrupt" // the decoder rejected the data
  | "zero_size" // width or height is 0
  | "too_large" // more pixels than the configured limit (checked from the header, before decoding)
  | "bad_source" // the source itself is malformed: bad base64, a data URL without data, a remote URL
  | "io" // the file could not be read
  | "bad_config"; // a processor config gemmakit cannot honour (e.g. an unsupported resample filter)

/** A refused image or image-processor input. Thrown before any decoding work where the header decides. */
export class ImageError extends GemmakitError {
  override name = "ImageError";
  readonly kind: ImageErrorKind;

  constructor(op: string, kind: ImageErrorKind, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(op, message, options);
    this.kind = kind;
  }
}

/** A tool call the model wrote that does not follow the grammar; `raw` is its text. */
export class ToolCallParseError extends GemmakitError {
  override name = "ToolCallParseError";
  /** The call's text between `<|tool_call>` and `<tool_call|>`, with `<|"|>` written out. */
  readonly raw: string;
  constructor(raw: string, message: string) {
    super("tool_call", `${message} in ${JSON.stringify(raw.length > 200 ? raw.slice(0, 197) + "..." : raw)}`, {
      hint: "the model's tool call is malformed; it is reported in toolCallErrors and not executed",
    });
    this.raw = raw;
  }
}

/** Why a video was refused. */
export type VideoErrorKind =
  | "ffmpeg_missing" // no ffmpeg/ffprobe to run
  | "not_a_video" // ffmpeg found no video stream in it
  | "corrupt" // ffmpeg failed on it, or it decoded to fewer frames than it declares (truncated)
  | "zero_size" // the stream has no frames or no pixels
  | "too_large" // frame size, file size, frame count or decoded bytes over the limits
  | "too_long" // duration over the limit
  | "timeout" // ffmpeg ran past `timeoutMs`
  | "aborted" // the caller's AbortSignal fired
  | "bad_source" // the source itself is malformed (a URL, an empty buffer, bad options)
  | "io"; // the file could not be read

/** A refused video. `kind` says which rule the input broke, so a server can map it without parsing text. */
export class VideoError extends GemmakitError {
  override name = "VideoError";
  readonly kind: VideoErrorKind;

  constructor(op: string, kind: VideoErrorKind, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(op, message, options);
    this.kind = kind;
  }
}
