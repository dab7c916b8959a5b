/**
 * Download progress: the event both downloaders report, and the default reporter, one line on stderr.
 * @module
 */

/** One progress report of a download. */
export interface DownloadProgress {
  /** What is happening: waiting on another process's lock, asking for metadata, pip running, bytes arriving. */
  phase: "wait" | "metadata" | "pip" | "download" | "assemble" | "done";
  /** The file it concerns: a path inside the repo, or the model file's name. */
  file?: string;
  /** Bytes of `file` on disk so far (a resumed download starts above 0). */
  bytes: number;
  /** Bytes `file` will have, when known. */
  total?: number;
  /** A line of text: pip's latest output, what is being waited for. */
  message?: string;
}

/** Receives progress; passing one to a downloader replaces the stderr line. */
export type ProgressCallback = (progress: DownloadProgress) => void;

const REDRAW_MS = 100;
const PLAIN_EVERY_MS = 10_000;

/**
 * The default reporter: on a terminal one line redrawn in place at most ten times a second
 * (file, bar, bytes, rate); elsewhere (CI logs) a plain line when a file starts or ends, for each
 * message, and every 10 s in between.
 * @example
 * ```ts
 * const report = stderrProgress();
 * report({ phase: "download", file: "config.json", bytes: 512, total: 1024 });
 * ```
 */
export function stderrProgress(out: { writeSync(p: Uint8Array): number; isTerminal(): boolean } = Deno.stderr) {
  const tty = out.isTerminal();
  const encoder = new TextEncoder();
  let key = "";
  let startedAt = 0;
  let startBytes = 0;
  let drawnAt = 0;
  let open = false; // a tty line is drawn and not yet ended
  const write = (text: string) => {
    const bytes = encoder.encode(text);
    for (let done = 0; done < bytes.length;) done += out.writeSync(bytes.subarray(done));
  };
  return (p: DownloadProgress): void => {
    const now = performance.now();
    const k = `${p.phase}\0${p.file ?? ""}`;
    const changed = k !== key;
    if (changed) {
      if (open) write("\n");
      open = false;
      key = k;
      startedAt = now;
      startBytes = p.bytes;
    }
    const finished = p.phase === "done" || (p.total !== undefined && p.bytes >= p.total);
    const due = now - drawnAt >= (tty ? REDRAW_MS : PLAIN_EVERY_MS);
    if (!changed && !finished && !due && !(p.message && !tty)) return;
    drawnAt = now;
    const seconds = (now - startedAt) / 1000;
    const line = formatProgress(p, seconds > 0.2 ? (p.bytes - startBytes) / seconds : undefined);
    if (!tty) return write(`${line}\n`);
    write(`\r\x1b[2K${line}`);
    open = p.phase !== "done";
    if (!open) write("\n");
  };
}

/** One progress line: `file [#####.....] 12.0 MiB / 40.0 MiB 8.0 MiB/s`, or the phase and its message. */
export function formatProgress(p: DownloadProgress, bytesPerSecond?: number): string {
  const parts = [p.file ?? p.phase];
  if (p.message) parts.push(p.file ? `${p.phase}: ${p.message}` : p.message);
  else if (p.phase === "download" || p.phase === "assemble") {
    if (p.total) {
      const width = 24;
      const filled = Math.min(width, Math.floor((p.bytes / p.total) * width));
      parts.push(
        `[${"#".repeat(filled)}${".".repeat(width - filled)}]`,
        `${formatBytes(p.bytes)} / ${formatBytes(p.total)}`,
      );
    } else parts.push(formatBytes(p.bytes));
    if (bytesPerSecond !== undefined) parts.push(`${formatBytes(bytesPerSecond)}/s`);
    if (p.phase !== "download") parts.push(`(${p.phase})`);
  }
  return parts.join("  ");
}

/** `1536` → `1.5 KiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${units[i]}`;
}
