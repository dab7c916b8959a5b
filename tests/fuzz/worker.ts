/**
 * The fuzzer's worker process: reads length-prefixed inputs on stdin, runs each through one target and answers
 * one line per input on stdout: `ok` (accepted or refused with a typed error) or `bug <message>` (an untyped
 * exception). A crash, a hang or a memory blow-up shows as this process dying, stalling or growing, which the
 * supervisor (tests/fuzz/fuzz.ts) watches from outside, knowing which input it last sent.
 * @module
 */
import { isExpected, TARGETS } from "./targets.ts";

// stdout carries the answers: libraries that print (omggif warns about short GIF streams) go to stderr.
console.log = console.info = console.warn = console.error;
const target = TARGETS[Deno.args[0]];
if (!target) throw new Error(`unknown target ${Deno.args[0]}`);
const out = Deno.stdout;
const enc = new TextEncoder();
let buf = new Uint8Array(0);

async function readExactly(n: number): Promise<Uint8Array | undefined> {
  while (buf.length < n) {
    const chunk = new Uint8Array(1 << 16);
    const got = await Deno.stdin.read(chunk);
    if (got === null) return undefined;
    const next = new Uint8Array(buf.length + got);
    next.set(buf);
    next.set(chunk.subarray(0, got), buf.length);
    buf = next;
  }
  const head = buf.slice(0, n);
  buf = buf.slice(n);
  return head;
}

for (;;) {
  const len = await readExactly(4);
  if (!len) break;
  const input = await readExactly(new DataView(len.buffer).getUint32(0, true));
  if (!input) break;
  let answer = "ok";
  try {
    await target.run(input);
  } catch (e) {
    if (!isExpected(target, e)) {
      const msg = e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ""}` : String(e);
      answer = `bug ${JSON.stringify(msg.slice(0, 2000))}`;
    }
  }
  const rss = Deno.memoryUsage().rss;
  await out.write(enc.encode(`${answer} ${rss}\n`));
}
