/**
 * llama.cpp built from its public source, as the strongest CPU peer: the sdist of llama-cpp-python at a pinned
 * version (PyPI keeps every release; it vendors llama.cpp at a commit its changelog names) is downloaded with
 * `pip download --no-binary :all:`, its vendor/llama.cpp is built with clang, `-DGGML_NATIVE=ON` (-march=native),
 * OpenMP and the CPU backend only, and `llama-bench` runs on the GGUF. The node-llama-cpp peer
 * (tests/bench/llama_cpp.ts) is a prebuilt generic binary; this one uses every instruction the host has.
 * The same tree also builds `llama-server` (the batching peer of tests/bench/batch_bench.ts, started here by
 * startLlamaServer) and `llama-quantize` (for fixtures): all three link the same ggml and llama objects.
 *
 *   deno task bench --model FILE.gguf --backend cpu --peer llama.cpp-src [--prompt-tokens 16,32,64,128,512] \
 *     [--decode-tokens 128] [--runs 5] [--threads 2]                  # interleaved with gemmakit (model_bench.ts)
 *   deno run -A tests/bench/llama_cpp_src.ts [--build-only] [--gguf FILE] [--threads 2]   # llama-bench alone
 *
 * Build cache: ~/.cache/gemmakit/peers/llama.cpp-<version>-<hash of flags and compiler>/ ($GEMMAKIT_PEER_CACHE
 * overrides the parent), never inside the repository. It holds src/ (the vendored tree), build/ and bin/.
 * The hash covers what decides the object code (CMAKE_FLAGS, the compiler, the version); which targets exist
 * (TARGET_FLAGS, TARGETS) is not in it, so a tree built before a target was added is extended in place: ninja
 * compiles only the new target's files and relinks. Builders take `<dir>.lock` (flock) — two processes asking
 * at once build once, the second waits and finds the binaries — and every file a reader trusts (src/, each
 * bin/ binary, info.json last) appears by rename, so a build killed halfway leaves no half-written binary.
 * Why clang: GCC 12 miscompiles llama.cpp's AMX path (the build is native, so a host with AMX compiles it);
 * `apt-get install clang libomp-dev` when missing (without libomp ggml falls back to its own thread pool).
 *
 * Measurement: `llama-bench -o json -t T -r R` (R = the bench's --reps), twice per round: `-p P1,P2,.. -n 0`
 * (prompt processing of each length, one ubatch, no sampling) and `-p 0 -n N -d P1,P2,..` (N generated tokens after a
 * context of each length, so decode is compared at the same depth as ours). llama-bench's own warm-up run precedes
 * each test.
 * Everything else is llama-bench's default: f16 KV cache, flash attention auto, mmap, batch 2048 / ubatch 512.
 * Random token ids (llama-bench's), which do not change the speed of a dense model.
 *
 * The bandwidth bound: tests/bench/stream_read.ts, a read-only stream over 1 GiB at the same thread count, best of
 * 8 passes (the plain bench states the same bound).
 */
import { parseArgs } from "node:util";
import { readBandwidth } from "./stream_read.ts";

/** The pinned llama-cpp-python release and the llama.cpp commit its CHANGELOG.md names for it. */
export const LLAMA_CPP_PYTHON_VERSION = "0.3.36";

/** CMake options, hashed into the cache directory name with the compiler's version. */
const CMAKE_FLAGS = [
  "-G",
  "Ninja",
  "-DCMAKE_BUILD_TYPE=Release",
  "-DCMAKE_C_COMPILER=clang",
  "-DCMAKE_CXX_COMPILER=clang++",
  "-DGGML_NATIVE=ON",
  "-DGGML_OPENMP=ON",
  "-DGGML_CUDA=OFF",
  "-DGGML_VULKAN=OFF",
  "-DGGML_METAL=OFF",
  "-DBUILD_SHARED_LIBS=OFF",
  "-DLLAMA_CURL=OFF",
  "-DLLAMA_OPENSSL=OFF",
  "-DLLAMA_BUILD_TESTS=OFF",
  // The first configure of a tree; TARGET_FLAGS, given after these, switch the server on. Kept so that trees
  // built before llama-server was a target keep their hash and their compiled objects.
  "-DLLAMA_BUILD_SERVER=OFF",
  "-DLLAMA_BUILD_TOOLS=ON",
  "-DLLAMA_BUILD_EXAMPLES=OFF",
];

/**
 * Options that add targets without changing any object the others share (not hashed). The server's web UI is
 * neither built (npm) nor downloaded (Hugging Face): the peer runs with --no-webui and the build stays offline.
 */
const TARGET_FLAGS = ["-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF"];

/** The binaries a tree provides, installed into its bin/. */
export const TARGETS = ["llama-bench", "llama-server", "llama-quantize"] as const;

export interface LlamaCppSrcBuild {
  dir: string;
  llamaBench: string;
  /** The OpenAI-compatible HTTP server with continuous batching over `-np` slots. */
  llamaServer: string;
  /** GGUF re-quantization (`llama-quantize IN.gguf OUT.gguf Q4_K_M`). */
  llamaQuantize: string;
  /** e.g. "llama.cpp ggml-org/llama.cpp@0c1e57098 (llama-cpp-python 0.3.36 sdist), clang 14.0.6, GGML_NATIVE". */
  version: string;
  commit: string;
}

async function run(cmd: string, args: string[], opts: { cwd?: string; quiet?: boolean } = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: opts.cwd, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr);
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}):\n${(text + err).slice(-4000)}`);
  }
  return text;
}

const exists = async (p: string) => await Deno.stat(p).then(() => true, () => false);

async function sha256Hex(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Writes `text` to `path` by rename: a reader sees the old file or the whole new one. */
async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, text);
  await Deno.rename(tmp, path);
}

/** Copies a built binary into bin/ by rename (same filesystem), executable. */
async function installAtomic(from: string, to: string): Promise<void> {
  const tmp = `${to}.tmp-${Deno.pid}`;
  await Deno.copyFile(from, tmp);
  await Deno.chmod(tmp, 0o755);
  await Deno.rename(tmp, to);
}

interface TreeInfo {
  llamaCppPython: string;
  commit: string;
  clang: string;
  cmake: string[];
  /** Installed binaries (absent in trees from before llama-server was a target: llama-bench only). */
  targets?: string[];
}

async function readInfo(path: string): Promise<TreeInfo | undefined> {
  return await Deno.readTextFile(path).then((t) => JSON.parse(t) as TreeInfo, () => undefined);
}

/** Whether every target's binary is installed and info.json lists it. */
async function complete(dir: string, info: TreeInfo | undefined): Promise<boolean> {
  if (!info) return false;
  for (const t of TARGETS) {
    if (!(info.targets ?? ["llama-bench"]).includes(t) || !(await exists(`${dir}/bin/${t}`))) return false;
  }
  return true;
}

/** The sdist's vendored llama.cpp into `${dir}/src` (by rename) and the commit its CHANGELOG names. */
async function fetchSource(dir: string, log: (s: string) => void): Promise<string> {
  const tmp = await Deno.makeTempDir({ prefix: "gemmakit-llama-src-" });
  try {
    log(`llama.cpp-src: pip download llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION} (sdist)`);
    await run("python3", [
      "-m",
      "pip",
      "download",
      "--no-binary",
      ":all:",
      "--no-deps",
      `llama-cpp-python==${LLAMA_CPP_PYTHON_VERSION}`,
      "-d",
      tmp,
    ]);
    const sdist = `llama_cpp_python-${LLAMA_CPP_PYTHON_VERSION}`;
    await run("tar", ["xzf", `${tmp}/${sdist}.tar.gz`, "-C", tmp]);
    const changelog = await Deno.readTextFile(`${tmp}/${sdist}/CHANGELOG.md`);
    const section = changelog.split(`## [${LLAMA_CPP_PYTHON_VERSION}]`)[1]?.split("\n## ")[0] ?? "";
    const commit = section.match(/llama\.cpp@([0-9a-f]{7,40})/)?.[1] ?? "unknown";
    const staging = `${dir}/src.tmp-${Deno.pid}`;
    await Deno.remove(staging, { recursive: true }).catch(() => {});
    await run("cp", ["-a", `${tmp}/${sdist}/vendor/llama.cpp`, staging]);
    await Deno.remove(`${dir}/src`, { recursive: true }).catch(() => {});
    await Deno.rename(staging, `${dir}/src`);
    return commit;
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/**
 * Builds (once; later calls find the cache) llama-bench, llama-server and llama-quantize. A tree that has some
 * targets gets the missing ones from the same build directory.
 */
export async function buildLlamaCppSrc(log: (s: string) => void = console.error): Promise<LlamaCppSrcBuild> {
  const clang = (await run("clang", ["--version"]).catch(() => "")).split("\n")[0];
  if (!clang) throw new Error("llama.cpp-src: clang not found (apt-get install clang libomp-dev)");
  const hash = (await sha256Hex(JSON.stringify({ v: LLAMA_CPP_PYTHON_VERSION, flags: CMAKE_FLAGS, clang })))
    .slice(0, 12);
  const root = Deno.env.get("GEMMAKIT_PEER_CACHE") ?? `${Deno.env.get("HOME")}/.cache/gemmakit/peers`;
  const dir = `${root}/llama.cpp-${LLAMA_CPP_PYTHON_VERSION}-${hash}`;
  const bin = (t: string) => `${dir}/bin/${t}`;
  const infoPath = `${dir}/info.json`;
  let info = await readInfo(infoPath);
  if (!(await complete(dir, info))) {
    await Deno.mkdir(`${dir}/bin`, { recursive: true });
    using lock = await Deno.open(`${dir}.lock`, { create: true, write: true });
    await lock.lock(true); // another process building this tree: wait for it, then see what it left
    info = await readInfo(infoPath);
    if (!(await complete(dir, info))) {
      // The source is reused when a previous build of this tree got it; the commit comes from its info.json.
      const commit = info?.commit && (await exists(`${dir}/src/CMakeLists.txt`))
        ? info.commit
        : await fetchSource(dir, log);
      const have = info ? info.targets ?? ["llama-bench"] : [];
      const missing = TARGETS.filter((t) => !have.includes(t));
      log(
        `llama.cpp-src: cmake (${clang}, GGML_NATIVE=ON), building ${missing.join(", ")} into ${dir} (minutes; ` +
          `objects already in ${dir}/build are reused)`,
      );
      await run("cmake", [
        "-S",
        `${dir}/src`,
        "-B",
        `${dir}/build`,
        ...CMAKE_FLAGS,
        ...TARGET_FLAGS,
        `-DLLAMA_BUILD_COMMIT=${commit}`,
        "-DLLAMA_BUILD_NUMBER=0",
      ]);
      const jobs = String(navigator.hardwareConcurrency);
      await run("cmake", ["--build", `${dir}/build`, "--target", ...TARGETS, "-j", jobs]);
      for (const t of TARGETS) await installAtomic(`${dir}/build/bin/${t}`, bin(t));
      info = { llamaCppPython: LLAMA_CPP_PYTHON_VERSION, commit, clang, cmake: CMAKE_FLAGS, targets: [...TARGETS] };
      await writeAtomic(infoPath, JSON.stringify(info, null, 2));
    }
  }
  return {
    dir,
    llamaBench: bin("llama-bench"),
    llamaServer: bin("llama-server"),
    llamaQuantize: bin("llama-quantize"),
    commit: info!.commit,
    version: `llama.cpp ggml-org/llama.cpp@${info!.commit} (llama-cpp-python ${info!.llamaCppPython} sdist), ${
      info!.clang.replace(/^Debian /, "")
    }, GGML_NATIVE=ON, OpenMP, CPU only`,
  };
}

export interface LlamaBenchRound {
  /** Prompt processing tok/s by prompt length. */
  prefill: Map<number, number>;
  /** Generation tok/s of `decodeTokens` tokens after a context of each prompt length. */
  decode: Map<number, number>;
  cpuInfo: string;
  buildCommit: string;
}

interface LlamaBenchRow {
  n_prompt: number;
  n_gen: number;
  n_depth: number;
  avg_ts: number;
  cpu_info: string;
  build_commit: string;
}

async function llamaBench(build: LlamaCppSrcBuild, args: string[]): Promise<LlamaBenchRow[]> {
  const text = await run(build.llamaBench, ["-o", "json", ...args]);
  return JSON.parse(text) as LlamaBenchRow[];
}

/** One round: each prompt length's prefill, then decode at each length's depth (`reps` repetitions each, mean). */
export async function llamaBenchRound(
  build: LlamaCppSrcBuild,
  opts: { gguf: string; threads: number; prompts: number[]; decodeTokens: number; reps?: number },
): Promise<LlamaBenchRound> {
  const common = ["-m", opts.gguf, "-t", String(opts.threads), "-r", String(opts.reps ?? 1)];
  const pp = await llamaBench(build, [...common, "-p", opts.prompts.join(","), "-n", "0"]);
  const tg = await llamaBench(build, [
    ...common,
    "-p",
    "0",
    "-n",
    String(opts.decodeTokens),
    "-d",
    opts.prompts.join(","),
  ]);
  return {
    prefill: new Map(pp.map((r) => [r.n_prompt, r.avg_ts])),
    decode: new Map(tg.map((r) => [r.n_depth, r.avg_ts])),
    cpuInfo: pp[0]?.cpu_info ?? "",
    buildCommit: pp[0]?.build_commit ?? "",
  };
}

/** A running llama-server; `close()` stops it (SIGTERM, then SIGKILL after 5 s) and waits for it. */
export interface LlamaServer {
  url: string;
  /** The server's last lines of output (its log), for an error message. */
  log(): string;
  close(): Promise<void>;
}

/** A free loopback port (bound and released: a race with another process is possible but unlikely). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Starts llama-server on a GGUF: `-np parallel` slots of `slotContext` tokens each (`-c parallel × slotContext`,
 * no unified KV), `threads` for decode and batches, no web UI, on a free loopback port; resolves once /health
 * answers 200 (the model is loaded). `extra` goes after these arguments.
 */
export async function startLlamaServer(
  build: LlamaCppSrcBuild,
  opts: { gguf: string; threads: number; parallel: number; slotContext: number; extra?: string[]; timeoutMs?: number },
): Promise<LlamaServer> {
  const port = freePort();
  const child = new Deno.Command(build.llamaServer, {
    args: [
      ...["-m", opts.gguf, "--host", "127.0.0.1", "--port", String(port)],
      ...["-t", String(opts.threads), "-tb", String(opts.threads)],
      ...["-np", String(opts.parallel), "-c", String(opts.parallel * opts.slotContext), "--no-kv-unified"],
      "--no-webui",
      ...(opts.extra ?? []),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Both pipes are drained (a full pipe would stall the server); the last 64 KiB are kept for errors.
  let tail = "";
  const drain = async (s: ReadableStream<Uint8Array>) => {
    for await (const t of s.pipeThrough(new TextDecoderStream())) tail = (tail + t).slice(-65536);
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let exited = false;
  const status = child.status.then((s) => ((exited = true), s));
  const url = `http://127.0.0.1:${port}`;
  const server: LlamaServer = {
    url,
    log: () => tail,
    async close() {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => !exited && child.kill("SIGKILL"), 5000);
        await status;
        clearTimeout(timer);
      }
      await drained;
    },
  };
  const deadline = performance.now() + (opts.timeoutMs ?? 120_000);
  while (true) {
    if (exited) {
      await drained;
      throw new Error(`llama-server exited (${(await status).code}) while starting:\n${tail.slice(-4000)}`);
    }
    const ok = await fetch(`${url}/health`).then(async (r) => (await r.body?.cancel(), r.status === 200), () => false);
    if (ok) return server;
    if (performance.now() > deadline) {
      await server.close();
      throw new Error(`llama-server did not become healthy in time:\n${tail.slice(-4000)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      gguf: { type: "string" },
      threads: { type: "string", default: "2" },
      "prompt-tokens": { type: "string", default: "16,32,64,128,512" },
      "decode-tokens": { type: "string", default: "128" },
      "build-only": { type: "boolean", default: false },
    },
  });
  const build = await buildLlamaCppSrc();
  console.log(`${build.version}\n  ${build.llamaBench}\n  ${build.llamaServer}\n  ${build.llamaQuantize}`);
  if (values["build-only"]) return;
  const gguf = values.gguf ?? `${Deno.env.get("HOME")}/.cache/gemmakit/gemma-3-270m-q4_k_m.gguf`;
  const threads = Number(values.threads);
  const prompts = values["prompt-tokens"].split(",").map(Number);
  const bw = await readBandwidth(threads);
  const r = await llamaBenchRound(build, { gguf, threads, prompts, decodeTokens: Number(values["decode-tokens"]) });
  console.log(`read bandwidth ${(bw / 1e9).toFixed(1)} GB/s (${threads} threads); load ${Deno.loadavg().join(" ")}`);
  console.log("| prompt | prefill tok/s | decode tok/s (at that depth) |\n| ---: | ---: | ---: |");
  for (const p of prompts) console.log(`| ${p} | ${r.prefill.get(p)?.toFixed(1)} | ${r.decode.get(p)?.toFixed(1)} |`);
}

if (import.meta.main) await main();
