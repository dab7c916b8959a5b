/**
 * `deno task chat`: piped (no terminal: one message per line, continued lines, commands, EOF ends) on a tiny
 * fixture, and through a pseudo terminal (python's pty module, tests/cli/chat_pty_driver.py) on the default
 * model: the base-model note, the prompt, a streamed answer that Ctrl-C stops, a command, Ctrl-C at the prompt
 * exiting with 130.
 */
import assert from "node:assert/strict";
import { realGguf270m } from "../models/real_gguf.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const CHAT = `${ROOT}src/cli/chat.ts`;
const FIXTURE = `${ROOT}tests/fixtures/gemma3-text-mixed`;

Deno.test("chat piped: messages, a continued line, /stats, /save, /reset, /load, and the cache across turns", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const input = [
      "Hello there",
      "/stats",
      "two \\",
      "lines",
      `/save ${dir}/s.gks`,
      "/reset",
      `/load ${dir}/s.gks`,
      "And more?",
      "/image /nonexistent.png",
      "/bogus",
    ].join("\n");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CHAT, "--model", FIXTURE, "--backend", "cpu", "--max-tokens", "6", "--temperature", "0"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout), stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.ok(!stdout.startsWith("> "), "no prompt when stdin is not a terminal");
    assert.equal(stdout.trim().split("\n").length, 3, `three answers:\n${stdout}`);
    assert.match(stderr, /\[stats on\]/);
    assert.match(stderr, /\[saved 4 messages to .*s\.gks\]/);
    assert.match(stderr, /\[conversation reset\]/);
    assert.match(stderr, /\[loaded 4 messages from .*s\.gks\]/);
    // The third turn, after /load, took the restored history from the cache.
    const cached = [...stderr.matchAll(/prompt (\d+) tokens \((\d+) from the cache\)/g)].map((m) => [+m[1], +m[2]]);
    assert.equal(cached.length, 2, stderr);
    assert.ok(cached[1][1] >= cached[0][0], `turn 3 reused turn 2's prompt: ${JSON.stringify(cached)}`);
    assert.match(stderr, /no vision tower/);
    assert.match(stderr, /unknown command \/bogus/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat on a terminal (pty), default model: note, streaming, Ctrl-C stops the answer, Ctrl-C exits", async (t) => {
  const gguf = await realGguf270m();
  if (gguf.skip) return void console.log(`${t.name}: skipped: ${gguf.skip}`);
  const out = await new Deno.Command("python3", {
    args: [
      `${ROOT}tests/cli/chat_pty_driver.py`,
      Deno.execPath(),
      "run",
      "-A",
      CHAT,
      "--model",
      gguf.path!,
      "--backend",
      "cpu",
      "--max-tokens",
      "2000",
      "--temperature",
      "0",
    ],
    stdout: "piped",
  }).output();
  const report = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.deepEqual(report.steps, { prompt: true, streaming: true, stopped: true, stats: true }, report.out);
  assert.equal(report.exit, 130, report.out);
  assert.match(report.out, /note: a base \(pretrained\) model without a chat template/);
});
