/**
 * OpenAI `image_url` parts → image bytes for the library. Data URLs are decoded by the library's helper; http(s)
 * URLs are fetched only when the operator allows it, by the library's fetcher (public addresses only, every redirect
 * hop checked again, under a time limit and the same byte limit), so a request can neither make the server reach
 * what lies behind it nor make it hold an unbounded download. Decoding the image
 * itself is the library's job (its typed errors name a broken image); here we only refuse bytes that are
 * not an image format at all, before they reach a queue.
 * @module
 */
import { DataUrlError, decodeDataUrl, fetchRemoteMedia, ImageError, probeImage, RemoteMediaError } from "../../mod.ts";
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

/**
 * The bytes of a data URL through the library's one helper (size checked from the payload's length before
 * decoding); its typed refusals become 400/413.
 */
export function dataUrlBytes(url: string, param: string, kind: MediaKind): Uint8Array {
  try {
    return decodeDataUrl(url, kind.maxBytes).bytes;
  } catch (e) {
    if (!(e instanceof DataUrlError)) throw e;
    if (e.kind === "too_large") throw tooLarge(param, kind);
    throw invalid(param, `${param}: ${e.message.replace(/^dataUrl: /, "").split("\n")[0]}`, `invalid_${kind.noun}_url`);
  }
}

/** A remote URL through the library's fetcher (public addresses only, bounded); its refusals become 400/413. */
async function fetchBounded(
  url: string,
  param: string,
  remote: RemoteImages,
  kind: MediaKind,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  try {
    return await fetchRemoteMedia(url, {
      maxBytes: kind.maxBytes,
      timeoutMs: remote.timeoutMs,
      maxRedirects: remote.maxRedirects,
      signal,
      resolve: remote.resolve,
      unsafeAllowAddresses: remote.unsafeAllowAddresses,
    });
  } catch (e) {
    if (!(e instanceof RemoteMediaError)) throw e;
    if (e.kind === "too_large") throw tooLarge(param, kind);
    // The library's message is the same whatever went wrong (a private address, DNS, HTTP status, timeout).
    const why = e.message.replace(/^fetchRemoteMedia: /, "").split("\n")[0];
    throw invalid(param, `${param}: ${why}`, `invalid_${kind.noun}_url`);
  }
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
    bytes = dataUrlBytes(url, param, kind);
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
    bytes = await fetchBounded(url, param, remote, kind, signal);
  }
  if (bytes.length === 0) throw invalid(param, `${param}: the ${noun} is empty`, `invalid_${noun}`);
  return bytes;
}

/**
 * Refuses an image over `maxPixels` from its header alone (microseconds), before it waits for the model: decoding
 * and resizing it would run on the event loop. Formats the header reader does not know are left to the library,
 * which refuses them with its own typed error.
 */
function checkPixels(bytes: Uint8Array, param: string, maxPixels: number): void {
  let size: { width: number; height: number };
  try {
    size = probeImage(bytes);
  } catch (e) {
    if (e instanceof ImageError) return;
    throw e;
  }
  if (size.width * size.height > maxPixels) {
    throw new ApiError(
      413,
      `${param}: the image is ${size.width}x${size.height}, over the limit of ${maxPixels} pixels`,
      { param, code: "image_too_large" },
    );
  }
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
  checkPixels(bytes, param, limits.maxImagePixels);
  return bytes;
}
