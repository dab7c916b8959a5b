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
 * Whether the CPU library runs its AVX512-VNNI kernels (kernels/cpu/repack.cpp's 16-row layouts and greedy screen,
 * linear_q8act.cpp's integer paths): it is built with -march=native, so where the CPU has AVX512-VNNI — or, under
 * .ci/avx512 (GEMMAKIT_TEST_VNNI=emulated), a library whose VNNI kernels are emulated.
 */
export const CPU_VNNI: boolean = Deno.env.get("GEMMAKIT_TEST_VNNI") === "emulated" || (() => {
  try {
    const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
    return ["avx512_vnni", "avx512bw", "avx512vl"].every((flag) => new RegExp(`\\b${flag}\\b`).test(cpuinfo));
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
