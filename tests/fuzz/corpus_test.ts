/**
 * Replays every seed and every committed corpus input (tests/fuzz/corpus/<target>/, inputs that once crashed,
 * hung or threw untyped) through its fuzz target: each must be accepted or refused with a typed error.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { isExpected, TARGETS } from "./targets.ts";

const HERE = new URL(".", import.meta.url).pathname;
const hasFfmpeg = (() => {
  try {
    return new Deno.Command("ffprobe", { args: ["-version"], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
})();

for (const [name, target] of Object.entries(TARGETS)) {
  Deno.test({
    name: `fuzz corpus replay: ${name}${name === "video" && !hasFfmpeg ? " (skipped: no ffmpeg)" : ""}`,
    ignore: name === "video" && !hasFfmpeg,
    async fn() {
      const inputs: [string, Uint8Array][] = target.seeds().map((b, i) => [`seed ${i}`, b]);
      try {
        for (const e of Deno.readDirSync(join(HERE, "corpus", name))) {
          inputs.push([e.name, Deno.readFileSync(join(HERE, "corpus", name, e.name))]);
        }
      } catch { /* no corpus for this target */ }
      for (const [label, input] of inputs) {
        try {
          await target.run(input);
        } catch (e) {
          assert.ok(isExpected(target, e), `${name} ${label}: untyped ${e instanceof Error ? e.stack : e}`);
        }
      }
    },
  });
}
