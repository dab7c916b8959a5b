/**
 * src/native/sources.ts lists the files the CPU library is built from when gemmakit is imported by URL,
 * with their SHA-256. It is generated (`deno task manifest`); these tests fail when it is stale or misses
 * a file the compile includes.
 */
import assert from "node:assert/strict";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { MANIFEST_PATH, renderManifest } from "../../build/manifest.ts";
import { NATIVE_SOURCES } from "../../src/native/sources.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

Deno.test("src/native/sources.ts matches the kernels and deno.json's version", () => {
  assert.ok(
    Deno.readTextFileSync(MANIFEST_PATH) === renderManifest(),
    "src/native/sources.ts is stale: run `deno task manifest` and commit it",
  );
  assert.equal(NATIVE_SOURCES.version, JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json"))).version);
});

Deno.test("every file a listed source includes is listed too", () => {
  const listed = new Set(NATIVE_SOURCES.files.map(([p]) => p));
  assert.ok(listed.has("kernels/cpu/linear.cpp") && listed.has("kernels/include/gemmakit.h"));
  assert.ok(![...listed].some((p) => p.startsWith("kernels/cuda/")), "CUDA sources are not fetched");
  for (const path of listed) {
    const text = Deno.readTextFileSync(join(ROOT, path));
    for (const [, inc] of text.matchAll(/^\s*#\s*include\s+"([^"]+)"/gm)) {
      const resolved = normalize(join(dirname(path), inc)).split("\\").join("/");
      assert.ok(listed.has(resolved), `${path} includes ${inc} (${resolved}), which sources.ts does not list`);
    }
  }
});
