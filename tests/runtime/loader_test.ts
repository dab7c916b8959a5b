import assert from "node:assert/strict";
import { libraryPath } from "../../src/ffi/library.ts";

/** Opens a backend in a child process with `env`, returning what it printed. */
async function openIn(env: Record<string, string>, backend?: string): Promise<{ ok: boolean; text: string }> {
  const backendUrl = new URL("../../src/runtime/backend.ts", import.meta.url);
  const script = `
    import { Backend } from "${backendUrl}";
    try {
      const b = Backend.open(${backend ? `{ backend: "${backend}" }` : ""});
      console.log("opened " + b.kind + ": " + b.deviceName);
    } catch (e) {
      console.log(e.name + ": " + e.message);
      Deno.exit(3);
    }`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    env,
    stdout: "piped",
    stderr: "piped",
  });
  const out = await child.output();
  return { ok: out.success, text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr) };
}

function cudaDeviceVisible(): boolean {
  try {
    return new Deno.Command("nvidia-smi", { args: ["-L"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

Deno.test("GEMMAKIT_BACKEND=cpu opens the CPU library", async () => {
  const r = await openIn({ GEMMAKIT_BACKEND: "cpu" });
  assert.ok(r.ok, r.text);
  assert.match(r.text, /opened cpu: CPU \(\d+ OpenMP threads/);
});

Deno.test("auto picks CUDA only when a device answers, else CPU", async () => {
  const r = await openIn({ GEMMAKIT_BACKEND: "auto" });
  assert.ok(r.ok, r.text);
  assert.match(r.text, cudaDeviceVisible() ? /opened cuda/ : /opened cpu/);
});

Deno.test("a missing library is a LibraryError that says to run deno task build", async () => {
  const r = await openIn({ GEMMAKIT_LIB_DIR: "/nonexistent/gemmakit", GEMMAKIT_BACKEND: "cpu" });
  assert.ok(!r.ok);
  assert.match(r.text, /LibraryError: load: the cpu library is not built: \/nonexistent\/gemmakit\/libgemmakit_cpu.so/);
  assert.match(r.text, /deno task build/);
});

Deno.test("forcing CUDA without a device is an error, never a silent CPU fallback", {
  ignore: cudaDeviceVisible(),
}, async () => {
  const r = await openIn({ GEMMAKIT_BACKEND: "cuda" });
  assert.ok(!r.ok, r.text);
  const built = (() => {
    try {
      return Deno.statSync(libraryPath("cuda")).isFile;
    } catch {
      return false;
    }
  })();
  assert.match(
    r.text,
    built ? /LibraryError: load: the cuda backend has no usable device: .*no CUDA device/ : /not built/,
  );
});

Deno.test("an unknown backend name is rejected", async () => {
  const r = await openIn({ GEMMAKIT_BACKEND: "tpu" });
  assert.ok(!r.ok);
  assert.match(r.text, /GEMMAKIT_BACKEND is "tpu"; expected cpu, cuda or auto/);
  const r2 = await openIn({}, "metal");
  assert.match(r2.text, /backend is "metal"; expected cpu, cuda or auto/);
});

Deno.test("a process that ran multi-threaded kernels exits cleanly (the library is never unloaded)", async () => {
  // Regression: unloading libgomp under its parked worker threads segfaulted Deno at exit.
  const url = (p: string) => new URL(`../../src/${p}`, import.meta.url);
  const script = `
    import { Backend } from "${url("runtime/backend.ts")}";
    import { Tensor } from "${url("runtime/tensor.ts")}";
    import { scale } from "${url("ops/elementwise.ts")}";
    const b = Backend.open({ backend: "cpu" });
    scale(Tensor.zeros(b, [1 << 20]), 2);`;
  for (let i = 0; i < 3; i++) {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["eval", script],
      env: { OMP_NUM_THREADS: "2" },
      stderr: "piped",
    }).output();
    assert.equal(r.signal, null, `killed by ${r.signal}`);
    assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
  }
});
