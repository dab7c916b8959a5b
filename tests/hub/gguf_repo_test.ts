/**
 * Hub GGUF ids (`org/name:Q4_K_M`, `org/name:file.gguf`) against the local fake hub: the right single file is
 * fetched into the Hugging Face cache layout, and a tag that names no file fails listing the repo's GGUFs.
 */
import assert from "node:assert/strict";
import { downloadGguf, pickGgufFile } from "../../src/hub/hf.ts";
import { resolveModel } from "../../src/models/resolve.ts";
import { GgufNotInRepoError } from "../../src/errors.ts";
import { FakeHub, type FakeRepo, noise } from "./fake_hub.ts";

const REPO: FakeRepo = {
  id: "acme/gemma-3-1b-it-GGUF",
  commit: "89abcdef0123456789abcdef0123456789abcdef",
  files: [
    { path: "gemma-3-1b-it-Q4_K_M.gguf", data: noise(4_000, 1), lfs: true },
    { path: "gemma-3-1b-it-Q8_0.gguf", data: noise(6_000, 2), lfs: true },
    { path: "gemma-3-1b-it-IQ4_XS.gguf", data: noise(3_000, 3), lfs: true },
    { path: "mmproj-model-f16.gguf", data: noise(2_000, 4), lfs: true },
    { path: "README.md", data: new TextEncoder().encode("# quants") },
  ],
};
const MODELS = ["gemma-3-1b-it-IQ4_XS.gguf", "gemma-3-1b-it-Q4_K_M.gguf", "gemma-3-1b-it-Q8_0.gguf"];

async function withHub(fn: (hub: FakeHub, cacheDir: string) => Promise<void>) {
  const hub = new FakeHub([REPO]);
  const cacheDir = await Deno.makeTempDir({ prefix: "gemmakit-gguf-hub-test-" });
  try {
    await fn(hub, cacheDir);
  } finally {
    await hub.close();
    await Deno.remove(cacheDir, { recursive: true });
  }
}

const opts = (hub: FakeHub, cacheDir: string) => ({
  endpoint: hub.url,
  cacheDir,
  token: false as const,
  offline: false,
  onProgress: () => {},
});

Deno.test("downloadGguf: a quant tag (any case) fetches only its file into the snapshot", async () => {
  await withHub(async (hub, cacheDir) => {
    const path = await downloadGguf(REPO.id, "q4_k_m", opts(hub, cacheDir));
    assert.match(path, /models--acme--gemma-3-1b-it-GGUF\/snapshots\/89abcdef[0-9a-f]+\/gemma-3-1b-it-Q4_K_M\.gguf$/);
    assert.deepEqual(await Deno.readFile(path), REPO.files[0].data);
    const fetched = hub.fileRequests().filter((r) => r.method === "GET").map((r) => r.path);
    assert.ok(fetched.length >= 1 && fetched.every((p) => !/Q8_0|IQ4_XS|mmproj/.test(p)), fetched.join(", "));
    // A second id of the same repo picks the other file of the same snapshot.
    const byName = await downloadGguf(REPO.id, "gemma-3-1b-it-Q8_0.gguf", opts(hub, cacheDir));
    assert.deepEqual(await Deno.readFile(byName), REPO.files[1].data);
  });
});

Deno.test("downloadGguf: a tag naming no file fails with the repo's model GGUFs and their quant tags", async () => {
  await withHub(async (hub, cacheDir) => {
    const e = await downloadGguf(REPO.id, "Q3_K_S", opts(hub, cacheDir)).then(() => undefined, (e) => e);
    assert.ok(e instanceof GgufNotInRepoError, String(e));
    assert.deepEqual(e.available, MODELS);
    assert.match(e.message, /Q3_K_S matches no GGUF file/);
    assert.match(e.hint ?? "", /IQ4_XS, Q4_K_M, Q8_0/);
    const missing = await downloadGguf(REPO.id, "other.gguf", opts(hub, cacheDir)).then(() => undefined, (e) => e);
    assert.ok(missing instanceof GgufNotInRepoError && /is not a file of the repo/.test(missing.message));
  });
});

Deno.test("pickGgufFile: the closer of two matches, ambiguity, split files and projectors", () => {
  const paths = ["m-Q4_K.gguf", "m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "mmproj-Q8_0.gguf", "m-Q8_0.gguf"];
  assert.equal(pickGgufFile("a/b", "Q4_K", paths), "m-Q4_K.gguf");
  assert.equal(pickGgufFile("a/b", "Q8_0", paths), "m-Q8_0.gguf"); // never the projector
  assert.equal(pickGgufFile("a/b", "mmproj-Q8_0.gguf", paths), "mmproj-Q8_0.gguf"); // unless named
  assert.throws(() => pickGgufFile("a/b", "Q4_K", ["m-Q4_K_M.gguf", "m-Q4_K_S.gguf"]), GgufNotInRepoError);
  assert.throws(() => pickGgufFile("a/b", "Q4_K", ["m-Q4_K_M.gguf", "m-Q4_K_S.gguf"]), /matches 2 files/);
  const split = ["Q4_K_M/m-Q4_K_M-00001-of-00002.gguf", "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf"];
  assert.throws(() => pickGgufFile("a/b", "Q4_K_M", split), /split into 2 files/);
});

Deno.test("resolveModel: org/name:QUANT is a GGUF model from the hub cache", async () => {
  await withHub(async (hub, cacheDir) => {
    const saved = ["HF_ENDPOINT", "HF_HUB_CACHE", "HF_TOKEN", "HF_TOKEN_PATH"].map((k) =>
      [k, Deno.env.get(k)] as const
    );
    try {
      Deno.env.set("HF_ENDPOINT", hub.url);
      Deno.env.set("HF_HUB_CACHE", cacheDir);
      Deno.env.delete("HF_TOKEN");
      Deno.env.set("HF_TOKEN_PATH", `${cacheDir}/no-token`);
      const resolved = await resolveModel(`${REPO.id}:IQ4_XS`, () => {});
      assert.equal(resolved.format, "gguf");
      assert.match(resolved.path, /gemma-3-1b-it-IQ4_XS\.gguf$/);
      assert.deepEqual(await Deno.readFile(resolved.path), REPO.files[2].data);
    } finally {
      for (const [k, v] of saved) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    }
  });
});
