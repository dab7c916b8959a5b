/**
 * Errors in OpenAI's shape (`{error: {message, type, param, code}}`) with the status codes OpenAI uses, and
 * the mapping of gemmakit's typed errors onto them.
 * @module
 */
import { ContextLengthError, GemmakitError, NativeError } from "../../mod.ts";

export type ErrorType = "invalid_request_error" | "authentication_error" | "server_error" | "overloaded_error";

/** An error the server answers with: HTTP status plus the OpenAI error body. */
export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: number,
    message: string,
    readonly options: { type?: ErrorType; param?: string | null; code?: string | null; retryAfter?: number } = {},
  ) {
    super(message);
  }

  get body(): { error: { message: string; type: ErrorType; param: string | null; code: string | null } } {
    return {
      error: {
        message: this.message,
        type: this.options.type ?? (this.status >= 500 ? "server_error" : "invalid_request_error"),
        param: this.options.param ?? null,
        code: this.options.code ?? null,
      },
    };
  }

  /** The JSON response (with Retry-After when the server is busy). */
  toResponse(): Response {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.options.retryAfter !== undefined) headers["retry-after"] = String(this.options.retryAfter);
    return new Response(JSON.stringify(this.body), { status: this.status, headers });
  }
}

/** 400 for a request field that is missing or of the wrong type. */
export function invalid(param: string, message: string, code: string | null = null): ApiError {
  return new ApiError(400, message, { param, code });
}

/**
 * Any error thrown while serving → ApiError. Prompt problems the library finds (context length, a chat
 * template that rejects the conversation, a broken image) are the client's (400); native failures and
 * anything unexpected are ours (500), reported without a stack.
 */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ContextLengthError) {
    return new ApiError(
      400,
      `This model's maximum context length is ${e.limit} tokens, but the prompt is ${e.promptTokens} tokens.`,
      { param: "messages", code: "context_length_exceeded" },
    );
  }
  if (e instanceof NativeError) {
    return new ApiError(e.statusName === "out_of_memory" ? 503 : 500, `native failure: ${e.message}`, {
      type: "server_error",
    });
  }
  if (e instanceof GemmakitError && e.name === "VideoError") return videoError(e as GemmakitError & { kind: string });
  if (e instanceof GemmakitError) {
    // ImageError (src/vision) and the template's raise_exception land here: the input was bad.
    const code = e.name === "ImageError" ? "invalid_image" : null;
    return new ApiError(400, e.message.split("\n")[0], { code });
  }
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  return new ApiError(500, `internal error: ${message}`, { type: "server_error" });
}

/**
 * VideoError (src/vision/video.ts) by its kind: a server without ffmpeg cannot take videos at all (503); a video over
 * the limits is 413; one that ran past the decoding deadline 408; anything else about the bytes is the client's (400).
 */
function videoError(e: GemmakitError & { kind: string }): ApiError {
  const message = e.message.split("\n")[0];
  switch (e.kind) {
    case "ffmpeg_missing":
      return new ApiError(503, `this server cannot decode videos: ${message}`, { code: "video_decoder_unavailable" });
    case "too_large":
    case "too_long":
      return new ApiError(413, message, { param: "messages", code: "video_too_large" });
    case "timeout":
      return new ApiError(408, message, { param: "messages", code: "video_timeout" });
    default:
      return new ApiError(400, message, { param: "messages", code: "invalid_video" });
  }
}
