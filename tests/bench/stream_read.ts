/**
 * The read-only memory stream that bounds CPU decode (stream_read.c: threads each sum their share of a 1 GiB
 * buffer, best of 8 passes). Every CPU figure "% of bound" comes from it, at the thread count of the run it bounds,
 * so that the plain bench and the --peer llama.cpp-src rounds state the same bound. Built once per compiler into
 * ~/.cache/gemmakit/bench (or $GEMMAKIT_PEER_CACHE/../bench), never into the repository.
 */

const SOURCE = new URL("./stream_read.c", import.meta.url);

async function output(cmd: string, args: string[], env?: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr);
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}):\n${(text + err).slice(-2000)}`);
  }
  return text;
}

/** The first of clang, cc, gcc that runs, with its version line (part of the binary's cache key). */
async function compiler(): Promise<{ cc: string; version: string }> {
  for (const cc of ["clang", "cc", "gcc"]) {
    const version = (await output(cc, ["--version"]).catch(() => "")).split("\n")[0];
    if (version) return { cc, version };
  }
  throw new Error("stream_read: no C compiler (clang, cc or gcc) on PATH to build tests/bench/stream_read.c");
}

let built: Promise<string> | undefined;

/** The path of the built stream_read binary (built on first use; later calls and runs find the cache). */
export function streamReadBinary(): Promise<string> {
  return built ??= (async () => {
    const source = await Deno.readTextFile(SOURCE);
    const { cc, version } = await compiler();
    const key = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(source + version)));
    const hash = Array.from(key.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
    const peers = Deno.env.get("GEMMAKIT_PEER_CACHE");
    const dir = peers ? `${peers}/../bench` : `${Deno.env.get("HOME")}/.cache/gemmakit/bench`;
    const bin = `${dir}/stream_read-${hash}`;
    if (await Deno.stat(bin).then(() => false, () => true)) {
      await Deno.mkdir(dir, { recursive: true });
      const tmp = `${bin}.tmp-${Deno.pid}`; // by rename: a concurrent run sees no binary or a whole one
      await output(cc, ["-O3", "-march=native", "-fopenmp", SOURCE.pathname, "-o", tmp]);
      await Deno.rename(tmp, bin);
    }
    return bin;
  })();
}

/** Read-only memory bandwidth in bytes/s with `threads` threads. */
export async function readBandwidth(threads: number): Promise<number> {
  const text = await output(await streamReadBinary(), ["1024", "8"], {
    OMP_NUM_THREADS: String(threads),
    OMP_PROC_BIND: "false",
  });
  return JSON.parse(text).gbs * 1e9;
}
