/** `deno task bench`: model benchmarks with --model/--synthetic, else the op benchmarks. */
const modelBench = Deno.args.some((a) =>
  a === "--model" || a === "--synthetic" || a.startsWith("--model=") || a.startsWith("--synthetic=")
);
await import(modelBench ? "./model_bench.ts" : "./ops_bench.ts");
