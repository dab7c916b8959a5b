/**
 * gemmakit as a dependency: a throwaway project outside the repository depends on it the way
 * `deno add jsr:@gemmakit/gemmakit` would record it, with `links` pointing at this checkout (JSR itself
 * is unreachable here), then type-checks and runs a call through the public `mod.ts`.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const config = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));

async function deno(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  const r = await new Deno.Command(Deno.execPath(), { args, cwd, stdout: "piped", stderr: "piped" }).output();
  return { code: r.code, out: new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr) };
}

Deno.test("a consumer project adds, type-checks and runs gemmakit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "gemmakit-consumer-" });
  try {
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({ imports: { [config.name]: `jsr:${config.name}@^${config.version}` }, links: [ROOT] }, null, 2),
    );
    await Deno.writeTextFile(
      `${dir}/main.ts`,
      `import { Backend, linear, loadModel, Tensor, type DType } from "${config.name}";
const dtype: DType = "bf16";
using backend = Backend.open({ backend: "cpu" });
using x = Tensor.fromArray(backend, [1, 2, 3], [1, 3]);
using w = Tensor.fromArray(backend, [1, 0, 0, 0, 1, 1], [2, 3], dtype);
using y = linear(x, w);
console.log(JSON.stringify(Array.from(y.toArray())));
using model = await loadModel(${JSON.stringify(`${ROOT}tests/fixtures/gemma3-text-mixed`)}, { backend: "cpu" });
const r = await model.generate({ messages: [{ role: "user", content: "hi" }] }, { maxTokens: 4, temperature: 0 });
console.log(r.completionTokens, r.finishReason);
console.log(JSON.stringify(Array.from(y.toArray())));
`,
    );
    const check = await deno(["check", "main.ts"], dir);
    assert.equal(check.code, 0, check.out);
    const run = await deno(["run", "-A", "main.ts"], dir);
    assert.equal(run.code, 0, run.out);
    assert.equal(run.out.trim().split("\n").at(-1), "[1,5]");
    assert.match(run.out, /^[1-4] (length|stop)$/m, "the consumer's generation did not finish");
    // A type error in the consumer must be caught against gemmakit's declared types.
    await Deno.writeTextFile(`${dir}/bad.ts`, `import { Tensor } from "${config.name}";\nTensor.zeros("cpu", [1]);\n`);
    const bad = await deno(["check", "bad.ts"], dir);
    assert.notEqual(bad.code, 0, "a wrong argument type should fail type-checking");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno publish --dry-run passes (offline: slow types, exports, file list)", async () => {
  const r = await deno(["publish", "--dry-run", "--allow-dirty"], ROOT);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /Success.*Dry run complete/);
  assert.doesNotMatch(r.out, /build\/out\//, "built libraries must not be published");
});
