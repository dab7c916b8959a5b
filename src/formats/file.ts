/**
 * File plumbing shared by the checkpoint readers (GGUF, safetensors): opening with close-on-error,
 * positioned reads, a tensor's stored bytes, and host dtype conversion.
 * @module
 */
import { DisposedError } from "../errors.ts";
import { decode, type DType, encode } from "../runtime/dtype.ts";
import { FormatError } from "../errors.ts";

/** Reads `buf.length` bytes at `position`, looping over short reads; returns the count read (less at EOF). */
export function readAt(file: Deno.FsFile, position: number, buf: Uint8Array): number {
  file.seekSync(position, Deno.SeekMode.Start);
  let done = 0;
  while (done < buf.length) {
    const n = file.readSync(buf.subarray(done));
    if (n === null || n === 0) break; // 0 cannot happen for a non-empty buffer; guard the loop anyway
    done += n;
  }
  return done;
}

/** Opens `path` for reading and hands the handle to `wrap`, which takes ownership; closes it if `wrap` throws. */
export function openWith<T>(op: string, path: string, wrap: (file: Deno.FsFile) => T): T {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (e) {
    throw new FormatError(op, path, `cannot open: ${(e as Error).message}`, { cause: e });
  }
  try {
    return wrap(file);
  } catch (e) {
    file.close();
    throw e;
  }
}

/**
 * The stored bytes of one tensor (`what` names it in messages), read with seek + read. DisposedError when
 * the file was closed (`file` null), FormatError when the file ends first.
 */
export function readTensorBytes(
  op: string,
  path: string,
  file: Deno.FsFile | null,
  what: string,
  info: { readonly bytes: number; readonly byteRange: readonly [number, number] },
): Uint8Array {
  if (file === null) throw new DisposedError(op, `${path} was closed`);
  const buf = new Uint8Array(info.bytes);
  const got = readAt(file, info.byteRange[0], buf);
  if (got < info.bytes) {
    throw new FormatError(
      op,
      path,
      `file ended after ${got} of ${info.bytes} bytes of tensor ${what} (at offset ${info.byteRange[0]})`,
      { hint: "the file was truncated or replaced after it was opened" },
    );
  }
  return buf;
}

/** Host conversion for `loadTensor`'s `dtype` option: float (or, for GGUF, quantized) → float. */
export function convert(bytes: Uint8Array, from: DType, to: DType): Uint8Array {
  if (from === to) return bytes;
  const values = decode(bytes, from);
  if (to === "f32") return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  return encode(values, to);
}
