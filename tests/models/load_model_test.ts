/** loadModel by name: a Hugging Face repo id is downloaded (here from a local fake hub) and runs. */
import assert from "node:assert/strict";
import { loadModel } from "../../src/models/load.ts";
import { FakeHub } from "../hub/fake_hub.ts";

const FIXTURE = new URL("../fixtures/gemma3-text-mixed/", import.meta.url).pathname;

Deno.test("loadModel('org/name') downloads the checkpoint from the hub and generates", async () => {
  const files = [...Deno.readDirSync(FIXTURE)]
    .filter((e) => e.isFile && e.name !== "expected.json")
    .map((e) => ({
      path: e.name,
      data: Deno.readFileSync(`${FIXTURE}${e.name}`) as Uint8Array<ArrayBuffer>,
      lfs: e.name.endsWith(".safetensors"),
    }));
  const hub = new FakeHub([{ id: "tiny/gemma3-mixed", commit: "c".repeat(40), files }]);
  const cache = await Deno.makeTempDir({ prefix: "gemmakit-hf-cache-" });
  const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: cache, HF_TOKEN: "" };
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, Deno.env.get(k)]));
  for (const [k, v] of Object.entries(env)) Deno.env.set(k, v);
  try {
    using model = await loadModel("tiny/gemma3-mixed", { backend: "cpu", maxContext: 64 });
    const r = await model.generate({ messages: [{ role: "user", content: "hi" }] }, { maxTokens: 4, temperature: 0 });
    assert.ok(r.completionTokens >= 1);
    const snapshot = `${cache}/models--tiny--gemma3-mixed/snapshots/${"c".repeat(40)}`;
    assert.ok(Deno.statSync(`${snapshot}/model.safetensors`).isFile);
    // A second load is served from the cache: no file downloads.
    const before = hub.fileRequests().length;
    using again = await loadModel("tiny/gemma3-mixed", { backend: "cpu", maxContext: 64 });
    assert.equal(hub.fileRequests().length, before);
    assert.equal(again.tokenizer.vocabSize, model.tokenizer.vocabSize);
  } finally {
    for (const [k, v] of Object.entries(saved)) v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
    await hub.close();
    await Deno.remove(cache, { recursive: true });
  }
});
