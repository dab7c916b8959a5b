/** `deno task bench`: model benchmarks with --model/--synthetic, else the op benchmarks. */
const modelBench = Deno.args.some((a) =>
  a === "--model" || a === "--synthetic" || a.startsWith("--model=") || a.startsWith("--synthetic=")
);
// --threads N: the CPU library's OpenMP threads, which libgomp reads once when the library is loaded.
const threads = Deno.args.find((_, i) => Deno.args[i - 1] === "--threads") ??
  Deno.args.find((a) => a.startsWith("--threads="))?.slice("--threads=".length);
if (threads !== undefined) Deno.env.set("OMP_NUM_THREADS", threads);
// --synthetic gemma3-4b-vision: image encoding time and TTFT with one image (tests/bench/vision_bench.ts).
const visionBench = Deno.args.some((a) => a === "gemma3-4b-vision" || a === "--synthetic=gemma3-4b-vision");
await import(visionBench ? "./vision_bench.ts" : modelBench ? "./model_bench.ts" : "./ops_bench.ts");
