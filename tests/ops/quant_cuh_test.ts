/**
 * The CUDA block decoders without a GPU: tests/ops/quant_cuh_check.cu compiles kernels/cuda/quant.cuh's
 * __host__ __device__ decoders for the host with nvcc and checks every format, group by group, against the CPU's
 * (which the op-parity rows hold to the reference dequantizer). Skipped, with the reason, where nvcc is not found
 * ($NVCC, then $CUDA_HOME/bin/nvcc, then PATH) — the CUDA op-parity rows cover the same ground on a GPU.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { QUANT_DTYPES } from "../../src/runtime/quant.ts";

function findNvcc(): string | undefined {
  const candidates = [Deno.env.get("NVCC"), Deno.env.get("CUDA_HOME") && join(Deno.env.get("CUDA_HOME")!, "bin/nvcc")];
  for (const c of candidates) if (c) return c;
  try {
    return new Deno.Command("nvcc", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync().success
      ? "nvcc"
      : undefined;
  } catch {
    return undefined;
  }
}

const nvcc = findNvcc();
Deno.test({
  name: `CUDA quant decoders equal the CPU's on the host${nvcc ? "" : " (skipped: no nvcc)"}`,
  ignore: !nvcc,
  fn() {
    const kernels = new URL("../../kernels", import.meta.url).pathname;
    const dir = Deno.makeTempDirSync();
    try {
      const exe = join(dir, "check");
      const lib = join(nvcc!, "../../lib"); // the pip CUDA layout keeps cudart_static beside bin/
      const build = new Deno.Command(nvcc!, {
        args: [
          "-std=c++17",
          "-O2",
          `-I${kernels}`,
          `-L${lib}`,
          new URL("quant_cuh_check.cu", import.meta.url).pathname,
          "-o",
          exe,
        ],
      }).outputSync();
      assert.ok(build.success, new TextDecoder().decode(build.stderr));
      const run = new Deno.Command(exe).outputSync();
      const out = new TextDecoder().decode(run.stdout);
      assert.ok(run.success, out);
      assert.equal(out.split("\n").filter((l) => l.endsWith(" ok")).length, QUANT_DTYPES.length, out);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
