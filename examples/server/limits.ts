/**
 * Every bound the server enforces, with defaults sized for a small model on one machine. Each one caps a
 * resource a single request could otherwise exhaust: memory (body, images), compute (prompt, max_tokens),
 * latency for everyone else (the queue).
 * @module
 */
export interface Limits {
  /** Largest request body in bytes (JSON, images included as data URLs). Default 20 MiB. */
  maxBodyBytes: number;
  /** Largest image after base64 decoding or download, in bytes. Default 10 MiB. */
  maxImageBytes: number;
  /** Most images in one request. Default 8. */
  maxImages: number;
  /** Largest video after base64 decoding or download, in bytes. Default 16 MiB (a data URL also fits the body). */
  maxVideoBytes: number;
  /** Most videos in one request. Default 2. */
  maxVideos: number;
  /** Most frames kept from one video (what a request may ask in media_io_kwargs, and what decoding keeps). Default 64. */
  maxVideoFrames: number;
  /** Longest video in seconds. Default 600. */
  maxVideoSeconds: number;
  /** Decoding one video (ffmpeg) may take this long. Default 60 s. */
  videoTimeoutMs: number;
  /** Longest prompt in tokens (also bounded by the model's context). Default: the model's context. */
  maxPromptTokens: number;
  /** Largest max_tokens a request may ask for. Default 4096. */
  maxTokens: number;
  /** max_tokens when a chat request gives none (completions default to OpenAI's 16). Default 512. */
  defaultMaxTokens: number;
  /** Requests that may wait for the model; one more is refused with 503. Default 32. */
  maxQueue: number;
  /** A request body must arrive whole within this long (a client trickling bytes is cut off, 408). Default 30 s. */
  bodyTimeoutMs: number;
  /** Body bytes held by all requests being read at once; past it a request is refused with 503. Default 64 MiB. */
  maxInflightBodyBytes: number;
  /**
   * Largest image in pixels, from its header before any decoding (413 past it). Decoding and resizing run on the
   * event loop while a generation holds the model, so this bounds how long one image can hold it. Default 16 M.
   */
  maxImagePixels: number;
}

/**
 * Remote (http/https) image (or video) URLs: refused unless the operator allows them; then fetched from public
 * addresses only (see the library's fetchRemoteMedia).
 */
export interface RemoteImages {
  allow: boolean;
  /** Whole download, DNS to last byte, redirects included. Default 10 s. */
  timeoutMs: number;
  /** Redirect hops followed, each checked again. Default 3. */
  maxRedirects?: number;
  /** Tests only: the host name lookup (default DNS). */
  resolve?: (host: string, signal: AbortSignal) => Promise<string[]>;
  /** Tests only: non-public addresses taken anyway (a local test server). Never from a request. */
  unsafeAllowAddresses?: readonly string[];
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 20 << 20,
  maxImageBytes: 10 << 20,
  maxImages: 8,
  maxVideoBytes: 16 << 20,
  maxVideos: 2,
  maxVideoFrames: 64,
  maxVideoSeconds: 600,
  videoTimeoutMs: 60_000,
  maxPromptTokens: Number.POSITIVE_INFINITY,
  maxTokens: 4096,
  defaultMaxTokens: 512,
  maxQueue: 32,
  bodyTimeoutMs: 30_000,
  maxInflightBodyBytes: 64 << 20,
  maxImagePixels: 16_000_000,
};
