import assert from "node:assert/strict";
import { formatBytes, formatProgress, stderrProgress } from "../../src/hub/progress.ts";

Deno.test("formatProgress: file, bar, bytes and rate; pip lines as they are", () => {
  assert.equal(formatBytes(512), "512 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GiB");
  const half = { phase: "download", file: "model.safetensors", bytes: 512 * 1024, total: 1024 * 1024 } as const;
  assert.equal(
    formatProgress(half, 2 * 1024 * 1024),
    `model.safetensors  [${"#".repeat(12)}${".".repeat(12)}]  512.0 KiB / 1.0 MiB  2.0 MiB/s`,
  );
  assert.equal(
    formatProgress({ phase: "pip", file: "x.gguf", bytes: 0, message: "Collecting a" }),
    "x.gguf  pip: Collecting a",
  );
});

Deno.test("stderrProgress: off a terminal, one plain line per file start, end and message", () => {
  const written: string[] = [];
  const out = {
    isTerminal: () => false,
    writeSync: (p: Uint8Array) => (written.push(new TextDecoder().decode(p)), p.length),
  };
  const report = stderrProgress(out);
  report({ phase: "download", file: "a", bytes: 0, total: 100 });
  for (let i = 1; i < 100; i++) report({ phase: "download", file: "a", bytes: i, total: 100 });
  report({ phase: "download", file: "a", bytes: 100, total: 100 });
  report({ phase: "pip", bytes: 0, message: "hello" });
  assert.equal(written.length, 3, written.join(""));
  assert.ok(written.every((line) => line.endsWith("\n") && !line.includes("\r")));
  assert.ok(written[1].startsWith(`a  [${"#".repeat(24)}]  100 B / 100 B`), written[1]);
  assert.equal(written[2], "pip  hello\n");
});
