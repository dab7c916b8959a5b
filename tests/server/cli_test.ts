/**
 * The server's command line (examples/server/main.ts) as a user meets it: --help, and start-up errors as one
 * line with a hint and their own exit code. Each case spawns main.ts.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const MAIN = "examples/server/main.ts";
const FIXTURE = "tests/fixtures/gemma4-text-e";

async function serve(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["run", "-A", MAIN, ...args], cwd: ROOT }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** One line on stderr, naming `what`, with a parenthesised hint, and no stack trace. */
function assertOneLine(stderr: string, what: RegExp): void {
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line expected, got:\n${stderr}`);
  assert.match(lines[0], /^gemmakit server: /);
  assert.match(lines[0], what);
  assert.match(lines[0], /\(.+\)$/, "a hint in parentheses at the end");
  assert.doesNotMatch(stderr, /\n\s+at |Uncaught/);
}

Deno.test("server --help lists every flag with a description, and examples", async () => {
  const { code, stdout, stderr } = await serve("--help");
  assert.equal(code, 0, stderr);
  const flags = [
    "--model",
    "--model-id",
    "--port",
    "--host",
    "--backend",
    "--max-context",
    "--api-key",
    "--allow-remote-images",
    "--allow-remote-videos",
    "--max-queue",
    "--parallel",
    "--max-tokens",
    "--cors",
    "--help",
  ];
  for (const flag of flags) {
    // The flag, its argument if any, then at least two spaces and a description.
    assert.match(stdout, new RegExp(`^\\s+(-h, )?${flag}\\b[^\\n]*? {2,}\\w`, "m"), `${flag} described`);
  }
  assert.match(stdout, /Examples:\n\s+deno task serve/);
});

Deno.test("server: an unknown flag is a usage error (exit 2), one line", async () => {
  const { code, stderr } = await serve("--bogus");
  assert.equal(code, 2);
  assertOneLine(stderr, /--bogus/);
});

Deno.test("server: --backend gpu is a usage error naming the choices", async () => {
  const { code, stderr } = await serve("--backend", "gpu");
  assert.equal(code, 2);
  assertOneLine(stderr, /--backend must be auto, cpu or cuda, got "gpu"/);
});

Deno.test("server: a bad --port is a usage error", async () => {
  const { code, stderr } = await serve("--port", "70000");
  assert.equal(code, 2);
  assertOneLine(stderr, /--port/);
});

Deno.test("server: --parallel is bounded to [1, MAX_PARALLEL], a usage error before the model loads", async () => {
  for (const bad of ["0", "257", "two", "1.5"]) {
    const { code, stderr } = await serve("--parallel", bad, "--model", "/nonexistent/gemma");
    assert.equal(code, 2, `--parallel ${bad}: ${stderr}`);
    assertOneLine(stderr, /--parallel must be an integer in \[1, 256\]/);
  }
});

Deno.test("server: a missing model exits 4 with one line", async () => {
  const { code, stderr } = await serve("--model", "/nonexistent/gemma", "--port", "0");
  assert.equal(code, 4);
  assertOneLine(stderr, /cannot load model "\/nonexistent\/gemma"/);
});

Deno.test("server: a busy port fails before the model loads (exit 3)", async () => {
  using busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  // The model does not exist either: had the model been loaded first, this would be exit 4.
  const started = performance.now();
  const { code, stderr } = await serve("--model", "/nonexistent/gemma", "--port", String(busy.addr.port));
  assert.equal(code, 3, stderr);
  assertOneLine(stderr, new RegExp(`port 127\\.0\\.0\\.1:${busy.addr.port} is in use`));
  assert.ok(performance.now() - started < 30_000);
});

Deno.test("server: starts and streams without the legacy request.signal warning", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--model", FIXTURE, "--port", "0"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(child.stderr).text();
  try {
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let banner = "";
    while (!banner.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      banner += value;
    }
    reader.releaseLock();
    const url = banner.match(/http:\/\/[^\s]+\//)?.[0];
    assert.ok(url, `no address in ${JSON.stringify(banner)}`);
    const r = await fetch(`${url}v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "gemma4-text-e",
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 3,
        stream: true,
      }),
    });
    assert.equal(r.status, 200);
    assert.match(r.headers.get("content-type")!, /^text\/event-stream/);
    const body = await r.text();
    assert.match(body, /data: \[DONE\]\n\n$/);
  } finally {
    child.kill("SIGINT");
    await child.status;
  }
  assert.doesNotMatch(await stderr, /legacy|request\.signal/);
});
