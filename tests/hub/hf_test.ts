import assert from "node:assert/strict";
import { join } from "node:path";
import { downloadRepo, type DownloadRepoOptions, globToRegExp, parseRepoId } from "../../src/hub/hf.ts";
import type { DownloadProgress } from "../../src/hub/progress.ts";
import { HubAuthError, HubNotFoundError, HubUnreachableError, IntegrityError } from "../../src/errors.ts";
import { FakeHub, type FakeRepo, gitBlobId, noise, sha256 } from "./fake_hub.ts";

const COMMIT = "0123456789abcdef0123456789abcdef01234567";
const text = (s: string) => new TextEncoder().encode(s);

function tinyRepo(id = "acme/tiny-gemma", token?: string): FakeRepo {
  return {
    id,
    commit: COMMIT,
    refs: ["v1"],
    token,
    files: [
      { path: "config.json", data: text('{"model_type":"gemma3_text"}') },
      { path: "tokenizer.json", data: text('{"version":"1.0"}') },
      { path: "model.safetensors", data: noise(300_000, 7), lfs: true },
      { path: "extra/adapter.safetensors", data: noise(5_000, 9), lfs: true },
      { path: "special_tokens_map.json", data: new Uint8Array() },
      { path: "README.md", data: text("# not wanted") },
      { path: "onnx/model.onnx", data: noise(1_000, 3), lfs: true },
    ],
  };
}

/** A fresh fake hub and cache folder for one test; both go away after it. */
async function withHub(repos: FakeRepo[], fn: (hub: FakeHub, cacheDir: string) => Promise<void>) {
  const hub = new FakeHub(repos);
  const cacheDir = await Deno.makeTempDir({ prefix: "gemmakit-hf-test-" });
  try {
    await fn(hub, cacheDir);
  } finally {
    await hub.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
}

function opts(hub: FakeHub, cacheDir: string, more: DownloadRepoOptions = {}): DownloadRepoOptions {
  return { endpoint: hub.url, cacheDir, token: false, offline: false, onProgress: () => {}, ...more };
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

async function listTree(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = prefix + e.name;
    if (e.isDirectory) out.push(...await listTree(join(dir, e.name), `${rel}/`));
    else out.push(rel);
  }
  return out.sort();
}

Deno.test("downloadRepo: lays out blobs, relative snapshot symlinks and refs as huggingface_hub does", async () => {
  const repo = tinyRepo();
  await withHub([repo], async (hub, cacheDir) => {
    const events: DownloadProgress[] = [];
    const snapshot = await downloadRepo(repo.id, opts(hub, cacheDir, { onProgress: (p) => events.push(p) }));
    const storage = join(cacheDir, "models--acme--tiny-gemma");
    assert.equal(snapshot, join(storage, "snapshots", COMMIT));
    assert.equal(await Deno.readTextFile(join(storage, "refs", "main")), COMMIT);

    const wanted = repo.files.filter((f) => !/README|onnx/.test(f.path));
    const blobOf = (f: (typeof wanted)[number]) => f.lfs ? sha256(f.data) : gitBlobId(f.data);
    assert.deepEqual(await listTree(join(storage, "blobs")), wanted.map(blobOf).sort());
    assert.deepEqual(await listTree(snapshot), wanted.map((f) => f.path).sort());
    for (const f of wanted) {
      const pointer = join(snapshot, f.path);
      assert.ok((await Deno.lstat(pointer)).isSymlink, `${f.path} is a symlink`);
      const up = "../".repeat(f.path.split("/").length + 1);
      assert.equal(await Deno.readLink(pointer), `${up}blobs/${blobOf(f)}`);
      assert.deepEqual(await Deno.readFile(pointer), f.data);
    }
    assert.ok(
      !hub.fileRequests().some((r) => /README|onnx/.test(r.path)),
      "files outside the patterns are not fetched",
    );
    const last = events.filter((e) => e.phase === "download" && e.file === "model.safetensors").at(-1);
    assert.deepEqual([last?.bytes, last?.total], [300_000, 300_000]);
  });
});

Deno.test("downloadRepo: a second call finds every blob cached and requests no file", async () => {
  const repo = tinyRepo();
  await withHub([repo], async (hub, cacheDir) => {
    const first = await downloadRepo(repo.id, opts(hub, cacheDir));
    const before = hub.fileRequests().length;
    assert.ok(before >= 5);
    const second = await downloadRepo(repo.id, opts(hub, cacheDir));
    assert.equal(second, first);
    assert.equal(hub.fileRequests().length, before, "no resolve or CDN request on the second call");
    assert.equal(hub.requests.filter((r) => r.path.startsWith("/api/")).length, 2);
  });
});

Deno.test("downloadRepo: a connection dropped mid-file resumes with a Range request", async () => {
  const repo = tinyRepo();
  await withHub([repo], async (hub, cacheDir) => {
    hub.cutNext.add("model.safetensors");
    const snapshot = await downloadRepo(repo.id, opts(hub, cacheDir));
    assert.deepEqual(await Deno.readFile(join(snapshot, "model.safetensors")), repo.files[2].data);
    const cdn = hub.requests.filter((r) => r.path === `/cdn/${sha256(repo.files[2].data)}`);
    assert.equal(cdn.length, 2);
    assert.equal(cdn[0].range, null);
    assert.equal(cdn[1].range, `bytes=${300_000 >> 1}-`);
  });
});

Deno.test("downloadRepo: without retries a drop leaves .incomplete, and the next call resumes it", async () => {
  const repo = tinyRepo();
  await withHub([repo], async (hub, cacheDir) => {
    hub.cutNext.add("model.safetensors");
    const err = await rejects(downloadRepo(repo.id, opts(hub, cacheDir, { retries: 0 })), HubUnreachableError);
    assert.match(err.message, /cdn/);
    const blobs = join(cacheDir, "models--acme--tiny-gemma", "blobs");
    const incomplete = join(blobs, `${sha256(repo.files[2].data)}.incomplete`);
    assert.equal((await Deno.stat(incomplete)).size, 150_000);
    await assert.rejects(Deno.stat(join(blobs, sha256(repo.files[2].data))), Deno.errors.NotFound);

    const snapshot = await downloadRepo(repo.id, opts(hub, cacheDir));
    assert.deepEqual(await Deno.readFile(join(snapshot, "model.safetensors")), repo.files[2].data);
    const cdn = hub.requests.filter((r) => r.path === `/cdn/${sha256(repo.files[2].data)}`);
    assert.deepEqual(cdn.map((r) => r.range), [null, "bytes=150000-"]);
    await assert.rejects(Deno.stat(incomplete), Deno.errors.NotFound);
  });
});

Deno.test("downloadRepo: a server that ignores Range sends the file again from the start", async () => {
  const repo = tinyRepo();
  await withHub([repo], async (hub, cacheDir) => {
    hub.cutNext.add("model.safetensors");
    hub.ignoreRange = true;
    const snapshot = await downloadRepo(repo.id, opts(hub, cacheDir));
    assert.deepEqual(await Deno.readFile(join(snapshot, "model.safetensors")), repo.files[2].data);
  });
});

Deno.test("downloadRepo: a listing without blob data is completed by HEAD requests (X-Linked-Etag, X-Linked-Size)", async () => {
  const repo = tinyRepo();
  await withHub([repo], async (hub, cacheDir) => {
    hub.namesOnly = true;
    const snapshot = await downloadRepo(repo.id, opts(hub, cacheDir));
    const lfs = repo.files[2];
    assert.equal(await Deno.readLink(join(snapshot, lfs.path)), `../../blobs/${sha256(lfs.data)}`);
    assert.equal(await Deno.readLink(join(snapshot, "config.json")), `../../blobs/${gitBlobId(repo.files[0].data)}`);
    const heads = hub.requests.filter((r) => r.method === "HEAD");
    assert.equal(heads.length, 5);
    assert.ok(heads.every((r) => r.path.includes("/resolve/")), "a HEAD stops at the hub's redirect");
  });
});

Deno.test("downloadRepo: the token goes to the hub but not to a CDN on another origin", async () => {
  const repo = tinyRepo("google/gated-gemma", "hf_right");
  const cdn = new FakeHub([repo]);
  try {
    await withHub([repo], async (hub, cacheDir) => {
      hub.cdnBase = cdn.url;
      const snapshot = await downloadRepo(repo.id, opts(hub, cacheDir, { token: "hf_right" }));
      assert.deepEqual(await Deno.readFile(join(snapshot, "model.safetensors")), repo.files[2].data);
      assert.ok(hub.requests.every((r) => r.authorization === "Bearer hf_right"));
      assert.equal(cdn.requests.length, 2);
      assert.ok(cdn.requests.every((r) => r.authorization === null), "no token to the CDN");
    });
  } finally {
    await cdn.close();
  }
});

Deno.test("downloadRepo: an LFS file whose sha256 is wrong is rejected and nothing is kept", async () => {
  const repo = tinyRepo();
  await withHub([repo], async (hub, cacheDir) => {
    hub.corrupt.add("model.safetensors");
    const err = await rejects(downloadRepo(repo.id, opts(hub, cacheDir)), IntegrityError);
    assert.match(err.message, /model\.safetensors: expected sha256/);
    const storage = join(cacheDir, "models--acme--tiny-gemma");
    const blobs = await listTree(join(storage, "blobs"));
    assert.ok(!blobs.some((b) => b.startsWith(sha256(repo.files[2].data))), `nothing of the bad file: ${blobs}`);
    await assert.rejects(Deno.lstat(join(storage, "snapshots", COMMIT, "model.safetensors")), Deno.errors.NotFound);
    await assert.rejects(Deno.stat(join(storage, "refs", "main")), Deno.errors.NotFound);
  });
});

Deno.test("downloadRepo: a gated repo gets the token as Bearer, and refuses without it", async () => {
  const repo = tinyRepo("google/gated-gemma", "hf_right");
  await withHub([repo], async (hub, cacheDir) => {
    const none = await rejects(downloadRepo(repo.id, opts(hub, cacheDir)), HubAuthError);
    assert.equal(none.status, 401);
    assert.ok(none.gated);
    assert.match(none.hint ?? "", /HF_TOKEN/);
    assert.match(none.hint ?? "", /accept its license/);
    const wrong = await rejects(downloadRepo(repo.id, opts(hub, cacheDir, { token: "hf_wrong" })), HubAuthError);
    assert.match(wrong.hint ?? "", /accept the license/);

    hub.requests.length = 0;
    const snapshot = await downloadRepo(`${repo.id}@v1`, opts(hub, cacheDir, { token: "hf_right" }));
    assert.ok(hub.requests.length > 0);
    for (const r of hub.requests) assert.equal(r.authorization, "Bearer hf_right", r.path);
    const storage = join(cacheDir, "models--google--gated-gemma");
    assert.equal(await Deno.readTextFile(join(storage, "refs", "v1")), COMMIT);
    assert.equal(snapshot, join(storage, "snapshots", COMMIT));
  });
});

Deno.test("downloadRepo: unknown repo or revision → HubNotFoundError naming which", async () => {
  await withHub([tinyRepo()], async (hub, cacheDir) => {
    const repo = await rejects(downloadRepo("acme/nope", opts(hub, cacheDir, { token: "x" })), HubNotFoundError);
    assert.equal(repo.what, "repo");
    const rev = await rejects(downloadRepo("acme/tiny-gemma@v9", opts(hub, cacheDir)), HubNotFoundError);
    assert.equal(rev.what, "revision");
  });
});

Deno.test("downloadRepo: an unreachable hub → HubUnreachableError listing what was tried; a cached snapshot is used", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = listener.addr.port;
  listener.close();
  const endpoint = `http://127.0.0.1:${deadPort}`;
  const repo = tinyRepo();
  await withHub([repo], async (hub, cacheDir) => {
    const err = await rejects(downloadRepo(repo.id, opts(hub, cacheDir, { endpoint })), HubUnreachableError);
    assert.match(err.message, /could not be reached/);
    assert.ok(err.tried[0].includes(`${endpoint}/api/models/acme/tiny-gemma/revision/main`), err.tried[0]);
    assert.match(err.tried[1], /no snapshot of main/);

    const online = await downloadRepo(repo.id, opts(hub, cacheDir));
    assert.equal(await downloadRepo(repo.id, opts(hub, cacheDir, { endpoint })), online);
    assert.equal(await downloadRepo(repo.id, opts(hub, cacheDir, { offline: true })), online);
  });
});

Deno.test("parseRepoId and fnmatch patterns", () => {
  assert.deepEqual(parseRepoId("google/gemma-3-1b-it"), { repoId: "google/gemma-3-1b-it", revision: undefined });
  assert.deepEqual(parseRepoId("google/gemma-3-1b-it@refs/pr/1"), {
    repoId: "google/gemma-3-1b-it",
    revision: "refs/pr/1",
  });
  assert.throws(() => parseRepoId("../etc/passwd"), /not a repo id/);
  assert.throws(() => parseRepoId("a/b@"), /not a repo id/);
  const m = (pattern: string, path: string) => globToRegExp(pattern).test(path);
  assert.ok(m("*.safetensors", "model-00001-of-00002.safetensors"));
  assert.ok(m("*.safetensors", "sub/dir/x.safetensors"), "fnmatch's * crosses /");
  assert.ok(m("tokenizer*.json", "tokenizer_config.json"));
  assert.ok(!m("tokenizer*.json", "tokenizer.model"));
  assert.ok(!m("config.json", "generation_config.json"));
  assert.ok(m("model-0000[1-2]*", "model-00002-of-00002.safetensors"));
  assert.ok(!m("model-0000[!1]*", "model-00001-of-00002.safetensors"));
  assert.ok(m("onnx/", "onnx/model.onnx"));
  assert.ok(m("a+b?.json", "a+bc.json"));
});
