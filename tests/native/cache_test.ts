/**
 * Where a URL-imported gemmakit caches its CPU library (README: `~/.cache/gemmakit/lib/<version>-<hash>/`,
 * `GEMMAKIT_CACHE` moves it) and what the folder name is keyed on.
 */
import assert from "node:assert/strict";
import { LibraryError } from "../../src/errors.ts";
import { cachedLibraryDir, isRemotePackage, libraryCacheKey, libraryCacheRoot } from "../../src/native/install.ts";
import { NativeBuildError } from "../../src/errors.ts";
import { NATIVE_SOURCES } from "../../src/native/sources.ts";

/** Runs `fn` with some environment variables set (undefined: removed), restoring them after. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, x] of Object.entries(v)) x === undefined ? Deno.env.delete(k) : Deno.env.set(k, x);
  };
  apply(vars);
  try {
    return fn();
  } finally {
    apply(saved);
  }
}

Deno.test("the library cache: GEMMAKIT_CACHE, else $XDG_CACHE_HOME/gemmakit, else ~/.cache/gemmakit", () => {
  const none = { GEMMAKIT_CACHE: undefined, XDG_CACHE_HOME: undefined };
  assert.equal(withEnv({ ...none, GEMMAKIT_CACHE: "/tmp/gk" }, libraryCacheRoot), "/tmp/gk/lib");
  assert.equal(withEnv({ ...none, XDG_CACHE_HOME: "/tmp/xdg" }, libraryCacheRoot), "/tmp/xdg/gemmakit/lib");
  assert.equal(withEnv({ ...none, HOME: "/home/u" }, libraryCacheRoot), "/home/u/.cache/gemmakit/lib");
  const e = withEnv({ ...none, HOME: undefined, USERPROFILE: undefined }, () => {
    try {
      libraryCacheRoot();
    } catch (e) {
      return e;
    }
  });
  assert.ok(e instanceof NativeBuildError && e instanceof LibraryError, String(e));
  assert.match(e.hint ?? "", /GEMMAKIT_CACHE/);
});

Deno.test("the cache folder is <version>-<hash>, and the hash follows the compile flags", () => {
  const key = withEnv({ GEMMAKIT_CPU_ARCH: undefined, GEMMAKIT_CXXFLAGS: undefined }, libraryCacheKey);
  assert.match(key, new RegExp(`^${NATIVE_SOURCES.version.replaceAll(".", "\\.")}-[0-9a-f]{16}$`));
  assert.equal(withEnv({ GEMMAKIT_CPU_ARCH: undefined, GEMMAKIT_CXXFLAGS: undefined }, libraryCacheKey), key);
  assert.notEqual(withEnv({ GEMMAKIT_CPU_ARCH: "x86-64-v3", GEMMAKIT_CXXFLAGS: undefined }, libraryCacheKey), key);
  assert.notEqual(withEnv({ GEMMAKIT_CPU_ARCH: undefined, GEMMAKIT_CXXFLAGS: "-DX" }, libraryCacheKey), key);
  assert.equal(withEnv({ GEMMAKIT_CACHE: "/tmp/gk" }, cachedLibraryDir), `/tmp/gk/lib/${key}`);
  // From a checkout the package is local: build/out is used, never the cache.
  assert.equal(isRemotePackage(), false);
});
