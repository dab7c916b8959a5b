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
 * when everything is up to date).
 * Environment: CXX, NVCC, CUDA_HOME, GEMMAKIT_CPU_ARCH (default "native"), GEMMAKIT_CUDA_ARCHS
 * (default "80,89,90a"; PTX is embedded for the newest).
 */
import { basename, join } from "node:path";
import { findCxx, findNvcc, isFile, type Nvcc } from "./toolchain.ts";

const ROOT: string = join(import.meta.dirname!, "..");
const KERNELS = join(ROOT, "kernels");
export const OUT_DIR: string = join(ROOT, "build", "out");

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

function log(line: string) {
  if (quiet && !logged) {
    // The first real action un-quiets the build: the user should see what is being compiled.
    quiet = false;
  }
  logged = true;
  console.log(line);
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
async function buildLibrary(lib: Library, jobs: number): Promise<string> {
  const output = join(OUT_DIR, lib.name);
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

function objectPath(kind: string, source: string): string {
  const dir = join(OUT_DIR, "obj", kind);
  Deno.mkdirSync(dir, { recursive: true });
  const stem = `${basename(join(source, ".."))}_${basename(source).replace(/\.[^.]+$/, "")}`;
  return join(dir, `${stem}.o`);
}

function cpuLibrary(cxx: string): Library {
  const arch = Deno.env.get("GEMMAKIT_CPU_ARCH") ?? "native";
  const flags = ["-std=c++17", "-O3", `-march=${arch}`, "-fopenmp", "-fPIC", "-fvisibility=hidden", "-Wall", "-Wextra"];
  const sources = [...listSources(join(KERNELS, "common"), ".cpp"), ...listSources(join(KERNELS, "cpu"), ".cpp")];
  const units = sources.map((source) => {
    const object = objectPath("cpu", source);
    return { source, object, compile: [cxx, ...flags, "-MMD", "-c", source, "-o", object] };
  });
  return {
    name: "libgemmakit_cpu.so",
    units,
    // -z nodelete: Deno unloads libraries at exit while OpenMP's worker threads still sit in libgomp;
    // unmapping it under them segfaults the process. A library that is never unloaded cannot.
    link: (objects, output) => [cxx, "-shared", "-fopenmp", "-Wl,--no-undefined,-z,nodelete", ...objects, "-o", output],
  };
}

function cudaLibrary(cxx: string, nvcc: Nvcc): Library {
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
  for (const source of listSources(join(KERNELS, "common"), ".cpp")) {
    const object = objectPath("cuda", source);
    units.push({ source, object, compile: [cxx, ...cxxFlags, "-MMD", "-c", source, "-o", object] });
  }
  for (const source of listSources(join(KERNELS, "cuda"), ".cu")) {
    const object = objectPath("cuda", source);
    const depfile = `${object.slice(0, -2)}.d`;
    units.push({
      source,
      object,
      compile: [nvcc.path, ...cuFlags, "-MMD", "-MF", depfile, "-c", source, "-o", object],
    });
  }
  return {
    name: "libgemmakit_cuda.so",
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

/** Builds what this machine can. Throws BuildError when a compiler fails or a required one is missing. */
export async function build(
  options: { requireCuda?: boolean; cpuOnly?: boolean; jobs?: number } = {},
): Promise<BuildResult> {
  const jobs = options.jobs ?? navigator.hardwareConcurrency ?? 2;
  const cxx = findCxx();
  if (!cxx) throw new BuildError("no C++ compiler: install g++ (Debian: apt-get install g++) or set CXX");
  Deno.mkdirSync(OUT_DIR, { recursive: true });
  const result: BuildResult = { cpu: await buildLibrary(cpuLibrary(cxx), jobs) };
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
  if (!isFile(join(OUT_DIR, "libgemmakit_cuda.so"))) log(`nvcc: ${nvcc.path} (from ${nvcc.source})`);
  result.cuda = await buildLibrary(cudaLibrary(cxx, nvcc), jobs);
  return result;
}

if (import.meta.main) {
  if (args.has("--clean")) {
    try {
      Deno.removeSync(OUT_DIR, { recursive: true });
    } catch { /* nothing built yet */ }
    console.log(`removed ${OUT_DIR}`);
  }
  try {
    await build({ requireCuda: args.has("--require-cuda"), cpuOnly: args.has("--cpu-only") });
  } catch (e) {
    console.error(`build failed: ${e instanceof Error ? e.message : e}`);
    Deno.exit(1);
  }
}
