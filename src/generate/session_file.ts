/**
 * The session file: a conversation's KV cache with what it holds, so a chat can continue later without
 * prefilling its history again. Layout: the magic `GKSESSION`, a newline, a u32 little-endian header length,
 * the header (JSON: version, the model's fingerprint, the cached ids, media spans, written positions, the caller's
 * extra data, and the byte size of each block), then the blocks (K then V of each cache layer, f32 rows).
 * Every field is checked on load; a mismatch is a SessionFileError.
 * @module
 */
import { SessionFileError } from "../errors.ts";
import type { MediaSpan } from "./prefix.ts";

/** The format version this gemmakit writes and reads. */
export const SESSION_FILE_VERSION = 1;
const MAGIC = new TextEncoder().encode("GKSESSION\n");

/** What a session file holds besides the KV blocks. */
export interface SessionState {
  ids: number[];
  spans: MediaSpan[];
  written: number;
  extra: Record<string, unknown>;
}

export async function writeSessionFile(
  path: string,
  fingerprint: Record<string, unknown>,
  state: SessionState,
  blocks: readonly Uint8Array[],
): Promise<void> {
  const header = new TextEncoder().encode(JSON.stringify({
    version: SESSION_FILE_VERSION,
    model: fingerprint,
    ...state,
    blocks: blocks.map((b) => b.byteLength),
  }));
  const length = new Uint8Array(4);
  new DataView(length.buffer).setUint32(0, header.byteLength, true);
  // Written beside the target and renamed: a crash mid-write leaves the previous file whole.
  const tmp = `${path}.tmp-${Deno.pid}`;
  using file = await Deno.open(tmp, { write: true, create: true, truncate: true });
  for (const part of [MAGIC, length, header, ...blocks]) {
    for (let off = 0; off < part.byteLength;) off += await file.write(part.subarray(off));
  }
  file.close();
  await Deno.rename(tmp, path);
}

/**
 * Reads and checks a session file against the loading model's `fingerprint`; `expected(written)` gives the byte
 * size each block must have for that many written positions.
 */
export async function readSessionFile(
  path: string,
  fingerprint: Record<string, unknown>,
  expected: (written: number) => number[],
): Promise<{ state: SessionState; blocks: Uint8Array[] }> {
  const bytes = await Deno.readFile(path);
  const magicOk = bytes.byteLength >= MAGIC.byteLength + 4 && MAGIC.every((b, i) => bytes[i] === b);
  if (!magicOk) throw new SessionFileError(path, "format", "not a gemmakit session file");
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(MAGIC.byteLength, true);
  let at = MAGIC.byteLength + 4;
  if (at + headerLength > bytes.byteLength) throw new SessionFileError(path, "truncated", "the header is cut short");
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(at, at + headerLength)));
  } catch (cause) {
    throw new SessionFileError(path, "format", `the header is not JSON (${(cause as Error).message})`);
  }
  at += headerLength;
  if (header.version !== SESSION_FILE_VERSION) {
    throw new SessionFileError(
      path,
      "version",
      `format version ${JSON.stringify(header.version)}, this gemmakit reads version ${SESSION_FILE_VERSION}`,
    );
  }
  const want = JSON.stringify(fingerprint), got = JSON.stringify(header.model);
  if (want !== got) {
    throw new SessionFileError(path, "model", `it was saved from another model: ${got}, this model is ${want}`);
  }
  const { ids, spans, written, extra } = header as unknown as SessionState;
  const intArray = (a: unknown) => Array.isArray(a) && a.every((x) => Number.isInteger(x) && x >= 0);
  const spansOk = Array.isArray(spans) &&
    spans.every((s) => Number.isInteger(s?.start) && Number.isInteger(s?.end) && typeof s?.key === "string");
  const maxContext = fingerprint.maxContext as number;
  if (
    !intArray(ids) || !spansOk || !Number.isInteger(written) || written < ids.length || written > maxContext + 1 ||
    typeof extra !== "object" || extra === null
  ) {
    throw new SessionFileError(path, "format", "the header's ids, spans, written count or extra data are malformed");
  }
  const sizes = expected(written);
  if (JSON.stringify(header.blocks) !== JSON.stringify(sizes)) {
    throw new SessionFileError(path, "format", `block sizes ${JSON.stringify(header.blocks)}, expected ${sizes}`);
  }
  const blocks: Uint8Array[] = [];
  for (const size of sizes) {
    if (at + size > bytes.byteLength) throw new SessionFileError(path, "truncated", "the KV blocks are cut short");
    blocks.push(bytes.slice(at, at + size));
    at += size;
  }
  if (at !== bytes.byteLength) throw new SessionFileError(path, "format", `${bytes.byteLength - at} trailing bytes`);
  return { state: { ids, spans, written, extra }, blocks };
}
