/**
 * Finds and opens the native library: CUDA when a device answers, the CPU twin otherwise.
 * `GEMMAKIT_BACKEND=cpu|cuda` forces one; `GEMMAKIT_LIB_DIR` points at a directory of built libraries.
 * Without it, a checkout loads from its build/out/, and a package imported by URL or from a registry from
 * its library cache, where the CPU library is built on first use (src/native/install.ts).
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { libraryFileName } from "../../build/build.ts";
import { cachedLibraryDir, ensureCpuLibrary, isRemotePackage } from "../native/install.ts";
import { LibraryError } from "../errors.ts";
import { ABI_VERSION, type Symbols, symbols } from "./symbols.ts";

export type BackendKind = "cpu" | "cuda";
/** What a caller may ask for: a backend, or "auto" (CUDA when present, else CPU). */
export type BackendChoice = BackendKind | "auto";

/** An opened native library. Libraries stay open for the life of the process. */
export interface NativeLibrary {
  readonly kind: BackendKind;
  readonly path: string;
  readonly symbols: Symbols;
  /** Number of devices this library can drive (1 for CPU). */
  readonly deviceCount: number;
}

const BUILD_HINT = "run `deno task build` in the gemmakit checkout (or set GEMMAKIT_LIB_DIR to the built libraries)";
// Imported remotely, only the CPU library builds itself: CUDA's build takes nvcc and many minutes.
const REMOTE_CUDA_HINT = "imported by URL, gemmakit builds only its CPU library itself; for CUDA, run " +
  "`deno task build` in a checkout of the same version and set GEMMAKIT_LIB_DIR to its build/out";

/**
 * Directory the libraries are loaded from: GEMMAKIT_LIB_DIR, else the checkout's build/out/, else (imported
 * by URL or from a registry) this version's folder in the library cache, which may not exist yet.
 */
export function libraryDir(): string {
  const fromEnv = Deno.env.get("GEMMAKIT_LIB_DIR");
  if (fromEnv) return fromEnv;
  if (isRemotePackage()) return cachedLibraryDir();
  return fileURLToPath(new URL("../../build/out/", import.meta.url));
}

export function libraryPath(kind: BackendKind): string {
  return join(libraryDir(), libraryFileName(kind));
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** Reads a NUL-terminated string the library returned. */
export function cString(ptr: Deno.PointerValue): string {
  return ptr === null ? "" : Deno.UnsafePointerView.getCString(ptr);
}

const opened = new Map<BackendKind, NativeLibrary>();

/**
 * libgomp reads its wait policy once, when the CPU library's dlopen loads it. Unset, its idle threads spin
 * ~300k pause loops between parallel regions; on cores shared with other processes a spinning thread burns the
 * timeslice its descheduled partner needs. Measured 2026-12-02 on 2 shared vCPUs (load average 7-8), Gemma 3
 * 270M Q4_K_M prefill of 32 / 128 tokens: 22-23 / 45-47 tok/s by default, 227-265 / 260-477 with
 * GOMP_SPINCOUNT=1000 (a few microseconds of spinning, then a futex sleep). The user's own OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT wins; without env permission libgomp keeps its default. (Decode's sections run on the library's
 * own pool, kernels/cpu/pool.h.)
 */
function shortOpenMpSpin(): void {
  try {
    if (Deno.env.get("OMP_WAIT_POLICY") === undefined && Deno.env.get("GOMP_SPINCOUNT") === undefined) {
      Deno.env.set("GOMP_SPINCOUNT", "1000");
    }
  } catch {
    // No --allow-env: keep libgomp's default.
  }
}

/** Opens the library of one backend. Throws LibraryError when it is missing, stale or has no device. */
export function openLibrary(kind: BackendKind): NativeLibrary {
  const cached = opened.get(kind);
  if (cached) return cached;
  const path = libraryPath(kind);
  const remote = isRemotePackage() && !Deno.env.get("GEMMAKIT_LIB_DIR");
  if (!isFile(path) && remote && kind === "cpu") ensureCpuLibrary(); // throws NativeBuildError on failure
  if (!isFile(path)) {
    throw new LibraryError("load", `the ${kind} library is not built: ${path} does not exist`, {
      hint: kind === "cuda"
        ? `${
          remote ? REMOTE_CUDA_HINT : BUILD_HINT
        }; the CUDA library needs nvcc (see README), or use GEMMAKIT_BACKEND=cpu`
        : BUILD_HINT,
    });
  }
  if (kind === "cpu") shortOpenMpSpin();
  let dylib: Deno.DynamicLibrary<typeof symbols>;
  try {
    dylib = Deno.dlopen(path, symbols);
  } catch (e) {
    throw new LibraryError("load", `cannot open ${path}: ${e instanceof Error ? e.message : e}`, {
      hint: `the library may be stale or from another version: ${BUILD_HINT}`,
      cause: e,
    });
  }
  const abi = dylib.symbols.gk_abi_version();
  if (abi !== ABI_VERSION) {
    dylib.close();
    throw new LibraryError("load", `${path} speaks ABI ${abi}, this gemmakit needs ${ABI_VERSION}`, {
      hint: BUILD_HINT,
    });
  }
  const count = new Int32Array(1);
  const status = dylib.symbols.gk_device_count(count);
  if (status !== 0 || count[0] < 1) {
    const why = cString(dylib.symbols.gk_last_error()) || "no device";
    dylib.close();
    throw new LibraryError("load", `the ${kind} backend has no usable device: ${why}`, {
      hint: "use GEMMAKIT_BACKEND=cpu to run on the CPU",
    });
  }
  const lib: NativeLibrary = { kind, path, symbols: dylib.symbols, deviceCount: count[0] };
  opened.set(kind, lib);
  return lib;
}

function parseChoice(value: string | undefined, source: string): BackendChoice {
  const v = (value ?? "auto").trim().toLowerCase();
  if (v === "auto" || v === "cpu" || v === "cuda") return v;
  throw new LibraryError("load", `${source} is "${value}"; expected cpu, cuda or auto`);
}

/**
 * Opens the library for a choice. "auto" (the default, or GEMMAKIT_BACKEND) takes CUDA when its library
 * is built and a device answers, and the CPU library otherwise; an explicit choice never falls back.
 */
export function loadLibrary(choice?: BackendChoice): NativeLibrary {
  const wanted = choice === undefined
    ? parseChoice(Deno.env.get("GEMMAKIT_BACKEND"), "GEMMAKIT_BACKEND")
    : parseChoice(choice, "backend");
  if (wanted !== "auto") return openLibrary(wanted);
  try {
    return openLibrary("cuda");
  } catch (e) {
    if (!(e instanceof LibraryError)) throw e;
    return openLibrary("cpu");
  }
}
