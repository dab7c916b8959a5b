/**
 * File-system helpers the downloaders and the native-library installer share: an inter-process lock, atomic small writes, quiet removal,
 * and turning a failed write into a DiskWriteError.
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { dirname } from "node:path";
import { DiskWriteError, GemmakitError } from "./errors.ts";

/**
 * Runs `fn` holding an exclusive flock on `lockPath` (created if missing and left in place). Another
 * process, or another call in this one, waits; `onWait` is called once if the lock is not free within
 * 300 ms. The OS drops the lock when a process dies, so a crash leaves nothing stale.
 */
export async function withFileLock<T>(op: string, lockPath: string, onWait: () => void, fn: () => Promise<T>) {
  const file = await diskOp(op, `open lock file ${lockPath}`, async () => {
    await Deno.mkdir(dirname(lockPath), { recursive: true });
    return await Deno.open(lockPath, { create: true, write: true });
  });
  try {
    const locked = file.lock(true);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = new Promise<void>((resolve) => timer = setTimeout(resolve, 300));
    if (await Promise.race([locked.then(() => false), waited.then(() => true)])) onWait();
    await locked;
    clearTimeout(timer);
    try {
      return await fn();
    } finally {
      await file.unlock();
    }
  } finally {
    file.close();
  }
}

/** `fn()`, with any file-system failure turned into a DiskWriteError naming `what`. */
export async function diskOp<T>(op: string, what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (!(e instanceof Error) || e instanceof GemmakitError) throw e;
    throw new DiskWriteError(op, `could not ${what}: ${e.message}`, {
      cause: e,
      hint: "check free space and permissions there, or choose another cache directory",
    });
  }
}

/** The file's stat, or null when nothing is there (a dangling symlink counts as nothing). */
export async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) return null;
    throw e;
  }
}

/** Removes a file or folder if it is there; never throws. */
export async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch {
    // already gone, or not ours to remove: nothing to do
  }
}

/** Writes a small text file through `path.tmp-<pid>` and a rename, so readers never see half of it. */
export async function writeTextAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  try {
    await Deno.writeTextFile(tmp, text);
    await Deno.rename(tmp, path);
  } catch (e) {
    await removeQuietly(tmp);
    throw e;
  }
}

/** Feeds `hash` the first `length` bytes of `path` (the part of a resumed download already on disk). */
export async function hashPrefix(path: string, length: number, hash: Hash = createHash("sha256")): Promise<Hash> {
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  for (let left = length; left > 0;) {
    const n = await file.read(buf.subarray(0, Math.min(buf.length, left)));
    if (n === null) break;
    hash.update(buf.subarray(0, n));
    left -= n;
  }
  return hash;
}

/** Writes all of `data` to `file` (Deno's write may write less than asked). */
export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.length;) done += await file.write(data.subarray(done));
}
