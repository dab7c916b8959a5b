/**
 * Reading a request body under three bounds, so that slow or large bodies cannot hold the server's memory: its own
 * size (`maxBodyBytes`, from Content-Length first, then as it arrives), a deadline for the whole body
 * (`bodyTimeoutMs`: a client trickling bytes is cut off, not waited for), and a budget of body bytes held by all
 * requests at once (`maxInflightBodyBytes`: many unfinished bodies together are refused with 503 past it, instead
 * of each one being within its own limit while all of them exhaust memory).
 * @module
 */
import { ApiError } from "./errors.ts";

/** Body bytes held by every request being read, against one bound. */
export class BodyBudget {
  #held = 0;
  constructor(readonly maxBytes: number) {}

  get held(): number {
    return this.#held;
  }

  /** Takes n bytes if they fit. */
  take(n: number): boolean {
    if (this.#held + n > this.maxBytes) return false;
    this.#held += n;
    return true;
  }

  give(n: number): void {
    this.#held -= n;
  }
}

export interface BodyBounds {
  maxBytes: number;
  timeoutMs: number;
  budget: BodyBudget;
}

function tooLarge(maxBytes: number): ApiError {
  return new ApiError(413, `the request body is over the limit of ${maxBytes} bytes`, { code: "request_too_large" });
}

function busy(): ApiError {
  return new ApiError(503, "the server is reading too many request bodies at once; retry shortly", {
    type: "overloaded_error",
    code: "server_busy",
    retryAfter: 1,
  });
}

/**
 * The whole body of `request` within the bounds; a refusal is an ApiError (413, 408 or 503). Each chunk goes to
 * `onChunk` as it arrives (to decode text piece by piece, between reads, instead of in one long step at the end).
 */
export async function readBody(
  request: Request,
  bounds: BodyBounds,
  onChunk?: (chunk: Uint8Array) => void,
): Promise<Uint8Array[]> {
  const { maxBytes, timeoutMs, budget } = bounds;
  const declared = Number(request.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge(maxBytes);
  const body = request.body;
  if (!body) throw new ApiError(400, "the request has no body; send a JSON object");
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => (timer = setTimeout(() => resolve("late"), timeoutMs)));
  try {
    while (true) {
      const next = reader.read();
      next.catch(() => {}); // cancelled below when late: its rejection is expected
      const r = await Promise.race([next, late]);
      if (r === "late") {
        throw new ApiError(408, `the request body did not arrive within ${timeoutMs} ms`, { code: "request_timeout" });
      }
      if (r.done) break;
      if (total + r.value.length > maxBytes) throw tooLarge(maxBytes);
      if (!budget.take(r.value.length)) throw busy();
      total += r.value.length;
      if (onChunk) onChunk(r.value);
      else chunks.push(r.value);
    }
  } catch (e) {
    await reader.cancel().catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
    budget.give(total);
  }
  return chunks;
}

/**
 * The body as JSON (UTF-8, strict), within the bounds. UTF-8 is decoded chunk by chunk as the body arrives: decoding
 * 19 MB at once would hold the event loop for tens of milliseconds.
 */
export async function readJsonBody(request: Request, bounds: BodyBounds): Promise<unknown> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  const text: string[] = [];
  let badUtf8: unknown;
  await readBody(request, bounds, (chunk) => {
    if (badUtf8 !== undefined) return;
    try {
      text.push(decoder.decode(chunk, { stream: true }));
    } catch (e) {
      badUtf8 = e;
    }
  });
  try {
    if (badUtf8 !== undefined) throw badUtf8;
    text.push(decoder.decode());
    return JSON.parse(text.join(""));
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${e instanceof Error ? e.message : e}`, {
      code: "invalid_json",
    });
  }
}
