/**
 * The CPU library of a gemmakit imported by URL or from a registry. Such a package has no build/out/, so on
 * first use its own C++ sources (listed with their SHA-256 in sources.ts) are fetched next to this module,
 * checked, compiled with the user's g++ and installed into a per-version cache:
 *
 *   $GEMMAKIT_CACHE (else $XDG_CACHE_HOME/gemmakit, else ~/.cache/gemmakit) / lib / <version>-<hash> /
 *
 * `<hash>` covers the sources, the OS and architecture and the compile flags, so a new version or a
 * different GEMMAKIT_CPU_ARCH never loads a stale library. Later runs find the library there and load it
 * at once.
 *
 * Opening a library is synchronous (Backend.open()), and fetching is not, so the build runs in a child
 * Deno process (this module as a script) while the caller waits; its progress goes to stderr. Concurrent
 * first runs serialize on a lock file next to the cache folder, and the folder appears with one rename, so
 * no process ever sees half a library.
 * @module
 */
import { createHash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { build, cpuFlags, libraryFileName } from "../../build/build.ts";
import { findCxx } from "../../build/toolchain.ts";
import { NativeBuildError, type NativeBuildFailure } from "../errors.ts";
import { removeQuietly, withFileLock } from "../fs.ts";
import { NATIVE_SOURCES } from "./sources.ts";

const PREBUILT_HINT = "or set GEMMAKIT_LIB_DIR to a directory holding a prebuilt libgemmakit_cpu library";

/** The package root this module was loaded from: file:// in a checkout, http(s):// when imported remotely. */
export const PACKAGE_ROOT: URL = new URL("../../", import.meta.url);

/** True when gemmakit was imported from a URL or registry rather than from files on this machine. */
export function isRemotePackage(): boolean {
  return PACKAGE_ROOT.protocol !== "file:";
}

/** Where built libraries are cached: `<GEMMAKIT_CACHE or ~/.cache/gemmakit>/lib`. */
export function libraryCacheRoot(): string {
  const explicit = Deno.env.get("GEMMAKIT_CACHE");
  const xdg = Deno.env.get("XDG_CACHE_HOME");
  const home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  const base = explicit || (xdg ? join(xdg, "gemmakit") : home ? join(home, ".cache", "gemmakit") : undefined);
  if (!base) {
    throw new NativeBuildError(
      "permission",
      "no HOME to put ~/.cache/gemmakit in",
      `set GEMMAKIT_CACHE, ${PREBUILT_HINT}`,
    );
  }
  return join(base, "lib");
}

/** `<version>-<hash>`: one cache folder per package version, platform and set of compile flags. */
export function libraryCacheKey(): string {
  const flags = cpuFlags(Deno.build.os, Deno.env.get("GEMMAKIT_CPU_ARCH") ?? "native");
  const hash = createHash("sha256")
    .update(JSON.stringify([NATIVE_SOURCES.sha256, Deno.build.os, Deno.build.arch, flags]))
    .digest("hex");
  return `${NATIVE_SOURCES.version}-${hash.slice(0, 16)}`;
}

/** The cache folder this gemmakit loads its CPU library from when imported remotely. */
export function cachedLibraryDir(): string {
  return join(libraryCacheRoot(), libraryCacheKey());
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

type ChildReport = { ok: true; dir: string } | { ok: false; reason: NativeBuildFailure; message: string; hint: string };

/**
 * The cache folder holding the CPU library, built first when it is not there. Blocks until the build (in
 * a child process, see the module comment) is done; throws NativeBuildError when it fails.
 */
export function ensureCpuLibrary(): string {
  const dir = cachedLibraryDir();
  if (isFile(join(dir, libraryFileName("cpu")))) return dir;
  const host = PACKAGE_ROOT.host;
  let out: Deno.CommandOutput;
  try {
    out = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--no-config", // the caller's deno.json (import map, lock file) is not this script's
        `--allow-import=${host}`,
        `--allow-net=${host}`,
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-run",
        import.meta.url,
        dir,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).outputSync();
  } catch (e) {
    throw new NativeBuildError(
      "permission",
      `cannot start the build of the CPU library: ${e instanceof Error ? e.message : e}`,
      `the first use builds it in a child Deno process, which needs --allow-run (or -A), ${PREBUILT_HINT}`,
      e,
    );
  }
  const last = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  let report: ChildReport | undefined;
  try {
    report = JSON.parse(last);
  } catch {
    // not a report: the child died before it could write one
  }
  if (report?.ok) return report.dir;
  if (report) throw new NativeBuildError(report.reason, report.message, report.hint);
  throw new NativeBuildError(
    "compile",
    `the build of the CPU library exited with ${out.signal ?? `code ${out.code}`} before reporting`,
    `its output is above; ${PREBUILT_HINT}`,
  );
}

// ---- the child process: fetch, check, compile, install ----

async function fetchSources(into: string, say: (line: string) => void): Promise<void> {
  const queue = [...NATIVE_SOURCES.files];
  say(`fetching ${queue.length} source files from ${PACKAGE_ROOT.href}`);
  let stop = false; // the first failure ends the other workers early
  const fetchOne = async ([path, sha256]: [string, string]) => {
    const url = new URL(path, PACKAGE_ROOT);
    let bytes: Uint8Array;
    try {
      const res = await fetch(url);
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status} ${res.statusText}`);
      }
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (e) {
      throw new NativeBuildError(
        "fetch",
        `cannot fetch ${url.href}: ${e instanceof Error ? e.message : e}`,
        `the CPU library is built from the package's kernels/ on first use; check the network, ${PREBUILT_HINT}`,
        e,
      );
    }
    const got = createHash("sha256").update(bytes).digest("hex");
    if (got !== sha256) {
      throw new NativeBuildError(
        "integrity",
        `${url.href} has SHA-256 ${got}, but gemmakit ${NATIVE_SOURCES.version} lists ${sha256}`,
        "the server holds files of another version than the modules Deno cached: reload them " +
          `(deno cache --reload) or import a pinned version, ${PREBUILT_HINT}`,
      );
    }
    const dest = join(into, ...path.split("/"));
    await Deno.mkdir(dirname(dest), { recursive: true });
    await Deno.writeFile(dest, bytes);
  };
  const worker = async () => {
    for (let entry = queue.shift(); entry && !stop; entry = queue.shift()) {
      try {
        await fetchOne(entry);
      } catch (e) {
        stop = true;
        throw e;
      }
    }
  };
  // Every worker stops before this returns, so none writes into the work folder while it is removed.
  const settled = await Promise.allSettled(Array.from({ length: 8 }, worker));
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}

async function buildInto(target: string, say: (line: string) => void): Promise<void> {
  const cxx = findCxx();
  if (!cxx) {
    throw new NativeBuildError(
      "no-compiler",
      "no C++ compiler found (looked at $CXX, then g++ and c++ on PATH) to build the CPU library on first use",
      "install g++ with OpenMP (Debian/Ubuntu: apt-get install g++; Fedora: dnf install gcc-c++) or set CXX, " +
        PREBUILT_HINT,
    );
  }
  const root = dirname(target);
  await Deno.mkdir(root, { recursive: true });
  await withFileLock(
    "build",
    `${target}.lock`,
    () => say("waiting for another process building the same library"),
    async () => {
      if (isFile(join(target, libraryFileName("cpu")))) return; // built while we waited
      // In the cache folder's parent, so the finished folder moves into place with one rename.
      const work = await Deno.makeTempDir({ dir: root, prefix: `.build-${basename(target)}-` });
      try {
        await fetchSources(join(work, "src"), say);
        const sources = NATIVE_SOURCES.files.filter(([p]) => p.endsWith(".cpp")).length;
        say(`compiling the CPU library with ${cxx} (${sources} files; once per gemmakit version)`);
        let done = 0;
        const started = Date.now();
        try {
          await build({
            cpuOnly: true,
            kernelsDir: join(work, "src", "kernels"),
            outDir: join(work, "out"),
            log: (line) => {
              const source = / -c (\S+) /.exec(line)?.[1];
              if (source) say(`[${++done}/${sources}] ${basename(source)}`);
              else if (line.includes(" -shared ") || line.includes(" -dynamiclib ")) say("linking");
            },
          });
        } catch (e) {
          throw new NativeBuildError(
            "compile",
            `compiling the CPU library failed: ${e instanceof Error ? e.message : e}`,
            `the compiler's output is above; the library needs g++ with OpenMP and C++17, ${PREBUILT_HINT}`,
            e,
          );
        }
        const stage = join(work, "lib");
        await Deno.mkdir(stage);
        const name = libraryFileName("cpu");
        await Deno.rename(join(work, "out", name), join(stage, name));
        await Deno.writeTextFile(
          join(stage, "build.json"),
          JSON.stringify({
            version: NATIVE_SOURCES.version,
            sources: NATIVE_SOURCES.sha256,
            from: PACKAGE_ROOT.href,
            cxx,
          }),
        );
        await Deno.rename(stage, target);
        say(`built ${join(target, name)} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
      } finally {
        await removeQuietly(work);
      }
    },
  );
}

if (import.meta.main) {
  const target = Deno.args[0];
  const say = (line: string) => console.error(`gemmakit: ${line}`);
  let report: ChildReport;
  try {
    await buildInto(target, say);
    report = { ok: true, dir: target };
  } catch (e) {
    report = e instanceof NativeBuildError
      ? { ok: false, reason: e.reason, message: e.message.replace(/^build: /, "").split("\n")[0], hint: e.hint ?? "" }
      : {
        ok: false,
        reason: e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable
          ? "permission"
          : "compile",
        message: `building the CPU library into ${target} failed: ${e instanceof Error ? e.message : e}`,
        hint: `check that the cache folder is writable (GEMMAKIT_CACHE moves it), ${PREBUILT_HINT}`,
      };
  }
  console.log(JSON.stringify(report));
  Deno.exit(report.ok ? 0 : 1);
}
