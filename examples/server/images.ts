/**
 * OpenAI `image_url` parts → image bytes for the library. Data URLs are decoded here; http(s) URLs are
 * fetched only when the operator allows it, under a time limit and the same byte limit, so a request can
 * neither make the server reach arbitrary hosts nor make it hold an unbounded download. Decoding the image
 * itself is the library's job (its typed errors name a broken image); here we only refuse bytes that are
 * not an image format at all, before they reach a queue.
 * @module
 */
import { ApiError, invalid } from "./errors.ts";
import type { Limits, RemoteImages } from "./limits.ts";

/** Magic numbers of the formats an image decoder may take. */
const SIGNATURES: [string, number[]][] = [
  ["png", [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  ["jpeg", [0xff, 0xd8, 0xff]],
  ["gif", [0x47, 0x49, 0x46, 0x38]],
  ["webp", [0x52, 0x49, 0x46, 0x46]],
  ["bmp", [0x42, 0x4d]],
];

export function sniffImage(bytes: Uint8Array): string | undefined {
  return SIGNATURES.find(([, sig]) => sig.every((b, i) => bytes[i] === b))?.[0];
}

/** A media kind's names in messages and error codes, and its byte limit. */
export interface MediaKind {
  noun: "image" | "video";
  maxBytes: number;
}

export function tooLarge(param: string, kind: MediaKind): ApiError {
  return new ApiError(413, `${param}: the ${kind.noun} is over the limit of ${kind.maxBytes} bytes`, {
    param,
    code: `${kind.noun}_too_large`,
  });
}

/** The bytes of a base64 data URL, the size checked before decoding (from the payload length) and after. */
export function decodeDataUrl(url: string, param: string, kind: MediaKind): Uint8Array {
  const code = `invalid_${kind.noun}_url`;
  const m = /^data:([^;,]*)((?:;[^;,]*)*?);base64,/i.exec(url);
  if (!m) throw invalid(param, `${param}: a data URL must be data:${kind.noun}/...;base64,...`, code);
  const payload = url.slice(m[0].length).replace(/\s+/g, "");
  if (Math.floor((payload.length * 3) / 4) > kind.maxBytes + 2) throw tooLarge(param, kind);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(payload) || payload.length % 4 === 1) {
    throw invalid(param, `${param}: the data URL is not valid base64`, code);
  }
  const bin = atob(payload);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  if (bytes.length > kind.maxBytes) throw tooLarge(param, kind);
  return bytes;
}

/**
 * GETs an http(s) URL with the operator's time limit, holding at most `kind.maxBytes` (the declared length is
 * checked first, then every chunk).
 */
async function downloadBounded(
  url: URL,
  param: string,
  remote: RemoteImages,
  kind: MediaKind,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const { noun, maxBytes } = kind;
  const tooLargeError = () => tooLarge(param, kind);
  const timeout = AbortSignal.timeout(remote.timeoutMs);
  const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let response: Response;
  try {
    response = await fetch(url, { signal: both, redirect: "follow" });
  } catch (e) {
    if (timeout.aborted) throw invalid(param, `${param}: fetching the ${noun} took over ${remote.timeoutMs} ms`);
    throw invalid(param, `${param}: fetching the ${noun} failed: ${e instanceof Error ? e.message : e}`);
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw invalid(param, `${param}: fetching the ${noun} failed with HTTP ${response.status}`);
  }
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await response.body.cancel();
    throw tooLargeError();
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for await (const chunk of response.body) {
      total += chunk.length;
      if (total > maxBytes) throw tooLargeError();
      chunks.push(chunk);
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    if (timeout.aborted) throw invalid(param, `${param}: fetching the ${noun} took over ${remote.timeoutMs} ms`);
    throw invalid(param, `${param}: reading the ${noun} failed: ${e instanceof Error ? e.message : e}`);
  }
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) bytes.set(c, (at += c.length) - c.length);
  return bytes;
}

/**
 * The bytes of one media URL: a base64 data URL, or an http(s) URL fetched when the operator allows it; within
 * `kind.maxBytes` and not empty. Images and videos share it; `kind.noun` names the thing in messages and codes.
 */
export async function mediaUrlBytes(
  url: string,
  param: string,
  kind: MediaKind,
  remote: RemoteImages,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const { noun } = kind;
  let bytes: Uint8Array;
  if (url.startsWith("data:")) {
    bytes = decodeDataUrl(url, param, kind);
  } else {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw invalid(param, `${param}: not a URL`, `invalid_${noun}_url`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
      throw invalid(param, `${param}: only data: and http(s): ${noun} URLs are taken`, `invalid_${noun}_url`);
    }
    if (!remote.allow) {
      throw invalid(
        param,
        `${param}: this server does not fetch remote ${noun}s; send the ${noun} inline as a data URL`,
        `remote_${noun}s_disabled`,
      );
    }
    bytes = await downloadBounded(parsed, param, remote, kind, signal);
  }
  if (bytes.length === 0) throw invalid(param, `${param}: the ${noun} is empty`, `invalid_${noun}`);
  return bytes;
}

/** The bytes of one image_url, checked to be an image format and within the limits. */
export async function imageBytes(
  url: string,
  param: string,
  limits: Limits,
  remote: RemoteImages,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const bytes = await mediaUrlBytes(url, param, { noun: "image", maxBytes: limits.maxImageBytes }, remote, signal);
  if (!sniffImage(bytes)) {
    throw invalid(param, `${param}: the bytes are not an image (PNG, JPEG, GIF, WebP or BMP)`, "invalid_image");
  }
  return bytes;
}
