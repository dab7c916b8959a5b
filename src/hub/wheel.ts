/**
 * Reads one file out of a wheel (a zip archive) without holding the archive or the file in memory.
 * @module
 */

import { Unzip, UnzipInflate } from "fflate";
import { HubError } from "../errors.ts";

/**
 * Streams the entry `entryName` of the zip archive at `zipPath` to `sink`, in order, waiting for each
 * chunk to be taken before reading on. Returns the entry's size; throws a HubError when the archive has
 * no such entry or is damaged.
 */
export async function extractZipEntry(
  op: string,
  zipPath: string,
  entryName: string,
  sink: (chunk: Uint8Array) => Promise<void>,
): Promise<number> {
  let found = false;
  let ended = false;
  let failure: Error | undefined;
  let pending: Uint8Array[] = [];
  const unzip = new Unzip((entry) => {
    if (entry.name !== entryName) return;
    found = true;
    entry.ondata = (err, data, final) => {
      if (err) failure = err;
      else pending.push(data);
      if (final) ended = true;
    };
    entry.start();
  });
  unzip.register(UnzipInflate);
  let size = 0;
  const drain = async () => {
    const chunks = pending;
    pending = [];
    for (const chunk of chunks) {
      await sink(chunk);
      size += chunk.length;
    }
  };
  using file = await Deno.open(zipPath, { read: true });
  const buf = new Uint8Array(1 << 20);
  while (!ended && !failure) {
    const n = await file.read(buf);
    try {
      // fflate may keep a view of what it is given until the next push: give it its own copy
      unzip.push(n === null ? new Uint8Array(0) : buf.slice(0, n), n === null);
    } catch (e) {
      failure ??= e instanceof Error ? e : new Error(String(e));
    }
    await drain(); // a sink failure (disk full) propagates as it is
    if (n === null) break;
  }
  if (failure) {
    throw new HubError(op, `${zipPath} is not a readable zip archive: ${failure.message}`, { cause: failure });
  }
  if (!found) {
    throw new HubError(op, `${zipPath} has no entry ${entryName}: not the expected wheel, or not a zip archive`);
  }
  if (!ended) throw new HubError(op, `${zipPath} ends inside ${entryName}: the archive is truncated`);
  return size;
}
