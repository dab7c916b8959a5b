import { Backend } from "../src/runtime/backend.ts";
import { openLibrary } from "../src/ffi/library.ts";

/** The error `fn` throws, checked to be a `type`; fails when it throws nothing or something else. */
export function thrown<T extends Error>(fn: () => unknown, type: abstract new (...args: never[]) => T): T {
  try {
    fn();
  } catch (e) {
    if (e instanceof type) return e;
    throw new Error(`expected ${type.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  throw new Error(`expected ${type.name}, but nothing was thrown`);
}

/**
 * Whether the CPU library reads its 16-row layouts (kernels/cpu/repack.cpp): it is built with -march=native, so where
 * the CPU has AVX512-VNNI — or, under .ci/avx512 (GEMMAKIT_TEST_X16=emulated), a library whose repack.cpp emulates it.
 */
export const CPU_READS_X16: boolean = Deno.env.get("GEMMAKIT_TEST_X16") === "emulated" || (() => {
  try {
    return / avx512_vnni( |$)/m.test(Deno.readTextFileSync("/proc/cpuinfo"));
  } catch {
    return false;
  }
})();

/** Set to 1 on a machine with a GPU: a CUDA test that would be skipped fails instead (`deno task gpu-check` sets it). */
export const REQUIRE_CUDA = Deno.env.get("GEMMAKIT_REQUIRE_CUDA") === "1";

/**
 * A CUDA backend when the CUDA library is built and a device answers; otherwise undefined and the reason,
 * printed once under `label` so an absent GPU shows as a skip with its cause, never as a pass. With
 * GEMMAKIT_REQUIRE_CUDA=1 the skip is a failure instead: a driver too old for the CUDA 13 runtime would
 * otherwise turn every [cuda] test into "ignored" and leave the run green.
 */
export function cudaOrSkip(label: string): { cuda?: Backend; skip: string } {
  try {
    openLibrary("cuda");
    return { cuda: Backend.open({ backend: "cuda" }), skip: "" };
  } catch (e) {
    const skip = e instanceof Error ? e.message.split("\n")[0] : String(e);
    if (REQUIRE_CUDA) {
      Deno.test(`[cuda] ${label}: GEMMAKIT_REQUIRE_CUDA=1 but CUDA is unusable`, () => {
        throw new Error(`GEMMAKIT_REQUIRE_CUDA=1: ${label} cannot run: ${skip}`);
      });
    }
    console.log(`${label} skipped: ${skip}`);
    return { skip };
  }
}
