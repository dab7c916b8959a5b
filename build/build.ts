/**
 * `deno task build`: compiles the kernel pack into build/out/.
 *
 *   libgemmakit_cpu.so   kernels/cpu/*.cpp + kernels/common/*.cpp   g++ -O3 -fopenmp -march=native
 *   libgemmakit_cuda.so  kernels/cuda/*.cu + kernels/common/*.cpp   nvcc, SASS sm_80/sm_89/sm_90a + PTX
 *
 * Each source becomes one object with a depfile; an object is rebuilt only when its source, a header it
 * includes, or the compile flags changed, and a library is relinked only when an object is newer.
 * Libraries are linked to a temporary name and renamed, so an interrupted build never leaves a
 * half-written library behind. Every command is echoed.
 *
 * Flags: --require-cuda (fail when nvcc is missing; CI), --cpu-only, --clean, --quiet (echo nothing
 * when everything is up to date), --out DIR (another output directory, e.g. for a cross-compiled library).
 * Environment: CXX, NVCC, CUDA_HOME, GEMMAKIT_CPU_ARCH (default "native"; "portable" is the compiler's
 * baseline: x86-64's plain C++ vectors, armv8-a's NEON), GEMMAKIT_CXXFLAGS (extra CPU compile flags),
 * GEMMAKIT_CUDA_ARCHS (default "80,89,90a"; PTX is embedded
 * for the newest).
 *
 * On Linux the libraries are `.so` files built with g++. On macOS the CPU library is a `.dylib` built with
 * clang++ and Homebrew's libomp: those flags are written but untested (no macOS machine runs CI).
 *
 * This module is also imported by URL (src/native/install.ts builds the CPU library into a cache when
 * gemmakit is imported from a remote URL or registry), so nothing here may touch the file system at load
 * time: a remote module has no directory of its own.
 */
import { basename, join } from "node:path";
import { findCxx, findNvcc, isFile, type Nvcc } from "./toolchain.ts";

/** The checkout this file sits in, or undefined when it was imported by URL. */
const ROOT: string | undefined = import.meta.dirname && join(import.meta.dirname, "..");

/** File name of a backend's library on this OS (".dylib" on macOS, ".so" elsewhere). */
export function libraryFileName(kind: "cpu" | "cuda", os: typeof Deno.build.os = Deno.build.os): string {
  return `libgemmakit_${kind}.${os === "darwin" ? "dylib" : "so"}`;
}

function checkoutDir(): string {
  if (!ROOT) throw new BuildError("build/build.ts was imported by URL: pass the kernels and output directories");
  return ROOT;
}

interface Unit {
  source: string;
  object: string;
  compile: string[]; // argv
}

interface Library {
  name: string;
  units: Unit[];
  link: (objects: string[], output: string) => string[];
}

export class BuildError extends Error {
  override name = "BuildError";
}

const args = new Set(Deno.args);
let quiet = args.has("--quiet");
let logged = false;
let logSink: (line: string) => void = console.log;

function log(line: string) {
  if (quiet && !logged) {
    // The first real action un-quiets the build: the user should see what is being compiled.
    quiet = false;
  }
  logged = true;
  logSink(line);
}

function listSources(dir: string, ext: string): string[] {
  try {
    return [...Deno.readDirSync(dir)]
      .filter((e) => e.isFile && e.name.endsWith(ext))
      .map((e) => join(dir, e.name))
      .sort();
  } catch {
    return [];
  }
}

function mtime(path: string): number {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch {
    return 0;
  }
}

/** Files a depfile (make syntax, from -MMD) says the object depends on. */
function depfileInputs(depfile: string): string[] | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(depfile);
  } catch {
    return undefined;
  }
  const body = text.replace(/\\\r?\n/g, " ");
  const colon = body.indexOf(": ");
  if (colon < 0) return undefined;
  return body.slice(colon + 2).split(/\s+/).filter(Boolean);
}

interface Dirs {
  kernels: string;
  out: string;
}

function stale(unit: Unit): boolean {
  const objTime = mtime(unit.object);
  if (objTime === 0) return true;
  const stamp = `${unit.object}.cmd`;
  try {
    if (Deno.readTextFileSync(stamp) !== unit.compile.join(" ")) return true;
  } catch {
    return true;
  }
  const inputs = depfileInputs(`${unit.object.slice(0, -2)}.d`) ?? [unit.source];
  return inputs.some((f) => mtime(f) === 0 || mtime(f) > objTime);
}

async function run(argv: string[]): Promise<void> {
  log(argv.join(" "));
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stdout: "inherit", stderr: "inherit" })
    .output();
  if (!out.success) throw new BuildError(`command failed (exit ${out.code}): ${basename(argv[0])} … ${argv.at(-1)}`);
}

/** Runs the stale compiles with at most `jobs` at once, then links if anything is newer than the library. */
async function buildLibrary(lib: Library, jobs: number, outDir: string): Promise<string> {
  const output = join(outDir, lib.name);
  const todo = lib.units.filter(stale);
  const queue = [...todo];
  const workers = Array.from({ length: Math.min(jobs, queue.length) }, async () => {
    for (let unit = queue.shift(); unit; unit = queue.shift()) {
      await run(unit.compile);
      Deno.writeTextFileSync(`${unit.object}.cmd`, unit.compile.join(" "));
    }
  });
  await Promise.all(workers);
  const objects = lib.units.map((u) => u.object);
  const libTime = mtime(output);
  const linkStamp = `${output}.cmd`;
  const linkCmd = lib.link(objects, output).join(" ");
  const linkChanged = (() => {
    try {
      return Deno.readTextFileSync(linkStamp) !== linkCmd;
    } catch {
      return true;
    }
  })();
  if (todo.length > 0 || libTime === 0 || linkChanged || objects.some((o) => mtime(o) > libTime)) {
    const tmp = `${output}.tmp-${Deno.pid}`;
    try {
      await run(lib.link(objects, tmp));
      Deno.renameSync(tmp, output);
      Deno.writeTextFileSync(linkStamp, linkCmd);
    } finally {
      try {
        Deno.removeSync(tmp);
      } catch { /* renamed */ }
    }
    log(`built ${output}`);
  }
  return output;
}

function objectPath(dirs: Dirs, kind: string, source: string): string {
  const dir = join(dirs.out, "obj", kind);
  Deno.mkdirSync(dir, { recursive: true });
  const stem = `${basename(join(source, ".."))}_${basename(source).replace(/\.[^.]+$/, "")}`;
  return join(dir, `${stem}.o`);
}

/**
 * Compile and link flags of the CPU library for `os`. `arch` is GEMMAKIT_CPU_ARCH: "native" (default) tunes
 * for this machine; "portable" targets the compiler's baseline (x86-64, armv8-a with NEON); anything else
 * goes to -march.
 */
export function cpuFlags(os: typeof Deno.build.os, arch: string): { compile: string[]; link: string[] } {
  const march = arch === "portable" ? [] : [`-march=${arch}`];
  // GEMMAKIT_CXXFLAGS: extra compile flags, e.g. -DGK_PORTABLE_SIMD (no NEON intrinsics) for the arm64 task.
  const extra = (Deno.env.get("GEMMAKIT_CXXFLAGS") ?? "").split(/\s+/).filter(Boolean);
  const common = ["-std=c++17", "-O3", ...march, "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra", ...extra];
  if (os === "darwin") {
    // Untested: Apple clang has no -fopenmp driver flag; OpenMP comes from Homebrew's libomp.
    const omp = Deno.env.get("GEMMAKIT_LIBOMP") ?? "/opt/homebrew/opt/libomp";
    return {
      compile: [...common, "-Xpreprocessor", "-fopenmp", `-I${omp}/include`],
      link: ["-dynamiclib", `-L${omp}/lib`, "-lomp", "-Wl,-undefined,error"],
    };
  }
  return {
    compile: [...common, "-fopenmp"],
    // -z nodelete: Deno unloads libraries at exit while OpenMP's worker threads still sit in libgomp;
    // unmapping it under them segfaults the process. A library that is never unloaded cannot.
    link: ["-shared", "-fopenmp", "-Wl,--no-undefined,-z,nodelete"],
  };
}

function cpuLibrary(cxx: string, dirs: Dirs): Library {
  const flags = cpuFlags(Deno.build.os, Deno.env.get("GEMMAKIT_CPU_ARCH") ?? "native");
  const sources = [
    ...listSources(join(dirs.kernels, "common"), ".cpp"),
    ...listSources(join(dirs.kernels, "cpu"), ".cpp"),
  ];
  const units = sources.map((source) => {
    const object = objectPath(dirs, "cpu", source);
    return { source, object, compile: [cxx, ...flags.compile, "-MMD", "-c", source, "-o", object] };
  });
  return {
    name: libraryFileName("cpu"),
    units,
    link: (objects, output) => [cxx, ...flags.link, ...objects, "-o", output],
  };
}

function cudaLibrary(cxx: string, nvcc: Nvcc, dirs: Dirs): Library {
  const archs = (Deno.env.get("GEMMAKIT_CUDA_ARCHS") ?? "80,89,90a").split(",").map((a) => a.trim());
  const gencode = archs.flatMap((a) => ["-gencode", `arch=compute_${a},code=sm_${a}`]);
  // PTX of the newest architecture, so newer GPUs can JIT-compile it.
  const ptxArch = archs.at(-1)!.replace(/a$/, "");
  gencode.push("-gencode", `arch=compute_${ptxArch},code=compute_${ptxArch}`);
  const cuFlags = [
    "-std=c++17",
    "-O3",
    "-Xcompiler",
    "-fPIC,-fvisibility=hidden",
    "-Xptxas=-warn-spills",
    ...gencode,
  ];
  const cxxFlags = ["-std=c++17", "-O2", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra"];
  const units: Unit[] = [];
  for (const source of listSources(join(dirs.kernels, "common"), ".cpp")) {
    const object = objectPath(dirs, "cuda", source);
    units.push({ source, object, compile: [cxx, ...cxxFlags, "-MMD", "-c", source, "-o", object] });
  }
  for (const source of listSources(join(dirs.kernels, "cuda"), ".cu")) {
    const object = objectPath(dirs, "cuda", source);
    const depfile = `${object.slice(0, -2)}.d`;
    units.push({
      source,
      object,
      compile: [nvcc.path, ...cuFlags, "-MMD", "-MF", depfile, "-c", source, "-o", object],
    });
  }
  return {
    name: libraryFileName("cuda"),
    units,
    // Static cudart: the library needs only the driver (libcuda.so.1) at run time.
    link: (objects, output) => [
      nvcc.path,
      "-shared",
      "-cudart",
      "static",
      "-Xlinker",
      "-z,nodelete", // the CUDA runtime's threads must not outlive its code either
      ...nvcc.libDirs.map((d) => `-L${d}`),
      ...gencode,
      ...objects,
      "-o",
      output,
    ],
  };
}

export interface BuildResult {
  cpu: string;
  cuda?: string;
  cudaSkipped?: string;
}

export interface BuildOptions {
  requireCuda?: boolean;
  cpuOnly?: boolean;
  jobs?: number;
  /** Directory holding common/, cpu/, cuda/ and include/ (default: this checkout's kernels/). */
  kernelsDir?: string;
  /** Where objects and libraries go (default: this checkout's build/out/). */
  outDir?: string;
  /** Receives every command and result line instead of stdout. */
  log?: (line: string) => void;
}

/** The checkout's build/out/; throws when this module was imported by URL. */
export function defaultOutDir(): string {
  return join(checkoutDir(), "build", "out");
}

/** Builds what this machine can. Throws BuildError when a compiler fails or a required one is missing. */
export async function build(options: BuildOptions = {}): Promise<BuildResult> {
  const jobs = options.jobs ?? navigator.hardwareConcurrency ?? 2;
  if (options.log) logSink = options.log;
  const dirs: Dirs = {
    kernels: options.kernelsDir ?? join(checkoutDir(), "kernels"),
    out: options.outDir ?? defaultOutDir(),
  };
  const cxx = findCxx();
  if (!cxx) {
    throw new BuildError(
      "no C++ compiler: install g++ (Debian/Ubuntu: apt-get install g++; Fedora: dnf install gcc-c++) or set CXX",
    );
  }
  Deno.mkdirSync(dirs.out, { recursive: true });
  const result: BuildResult = { cpu: await buildLibrary(cpuLibrary(cxx, dirs), jobs, dirs.out) };
  if (options.cpuOnly) return result;
  const { nvcc, searched } = findNvcc();
  if (!nvcc) {
    const why = `CUDA library skipped: no nvcc found (searched ${searched.join("; ")}). ` +
      `Install the CUDA 13 toolkit or \`pip install nvidia-cuda-nvcc==13.0.* nvidia-nvvm==13.0.* ` +
      `nvidia-cuda-crt==13.0.* nvidia-cuda-runtime==13.0.* nvidia-cuda-cccl==13.0.*\`, or set NVCC.`;
    if (options.requireCuda) throw new BuildError(why);
    if (!quiet) console.log(why);
    return { ...result, cudaSkipped: why };
  }
  if (!isFile(join(dirs.out, libraryFileName("cuda")))) log(`nvcc: ${nvcc.path} (from ${nvcc.source})`);
  result.cuda = await buildLibrary(cudaLibrary(cxx, nvcc, dirs), jobs, dirs.out);
  return result;
}

if (import.meta.main) {
  const outAt = Deno.args.indexOf("--out");
  const outDir = outAt >= 0 ? Deno.args[outAt + 1] : defaultOutDir();
  if (args.has("--clean")) {
    try {
      Deno.removeSync(outDir, { recursive: true });
    } catch { /* nothing built yet */ }
    console.log(`removed ${outDir}`);
  }
  try {
    await build({ requireCuda: args.has("--require-cuda"), cpuOnly: args.has("--cpu-only"), outDir });
  } catch (e) {
    console.error(`build failed: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
