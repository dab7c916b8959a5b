/**
 * The C-ABI op-parity driver that .ci/arm64 runs under qemu-user for linux-arm64, compiled here against
 * this machine's CPU library (build/out, built by `deno task test`): the same cases and limits hold on the
 * host, so an arm64 failure points at arm64 code rather than at the driver.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { findCxx } from "../../build/toolchain.ts";
import { libraryDir } from "../../src/ffi/library.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

Deno.test("the C-ABI op-parity driver passes against this machine's CPU library", async () => {
  const cxx = findCxx();
  assert.ok(cxx, "no C++ compiler");
  const dir = await Deno.makeTempDir({ prefix: "gemmakit-op-parity-" });
  try {
    const lib = libraryDir();
    const exe = join(dir, "op_parity");
    const compile = await new Deno.Command(cxx, {
      args: [
        "-std=c++17",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Werror",
        `-I${join(ROOT, "kernels", "include")}`,
        join(ROOT, "tests", "native", "arm64", "op_parity.cpp"),
        `-L${lib}`,
        "-lgemmakit_cpu",
        `-Wl,-rpath,${lib}`,
        "-o",
        exe,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(compile.code, 0, new TextDecoder().decode(compile.stderr));
    const run = await new Deno.Command(exe, { env: { OMP_NUM_THREADS: "2" }, stdout: "piped", stderr: "piped" })
      .output();
    const out = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
    assert.equal(run.code, 0, out);
    assert.match(out, /^CPU \(\d+ OpenMP threads, .+\), ABI \d+$/m);
    // Every linear path and dtype ran: 4 dtypes × (7 row counts + a wide matrix-vector product).
    assert.equal(out.match(/^ok {3}linear /gm)?.length, 32, out);
    assert.match(out, /^0 failure\(s\)$/m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
