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
 * A CUDA backend when the CUDA library is built and a device answers; otherwise undefined and the reason,
 * printed once under `label` so an absent GPU shows as a skip with its cause, never as a pass.
 */
export function cudaOrSkip(label: string): { cuda?: Backend; skip: string } {
  try {
    openLibrary("cuda");
    return { cuda: Backend.open({ backend: "cuda" }), skip: "" };
  } catch (e) {
    const skip = e instanceof Error ? e.message.split("\n")[0] : String(e);
    console.log(`${label} skipped: ${skip}`);
    return { skip };
  }
}
