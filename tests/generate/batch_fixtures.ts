/** What the batch tests (CPU and CUDA) share: fixture paths, prompts, and the unbatched reference answers. */
import { loadModel } from "../../src/models/load.ts";
import type { GenerateCallOptions } from "../../src/generate/call_options.ts";

export const FIXTURE = (name: string) => new URL(`../fixtures/${name}/`, import.meta.url).pathname;
export const GREEDY = { temperature: 0 };

export const PROMPTS = [
  "The keeper",
  "Once upon a time in a land far away there lived a",
  "A",
  "The lamp and the key were both",
  "Seven small stones lay on the path to the old mill, and",
  "Why",
];

/** Each prompt alone on a CPU model without batching: the reference answers. */
export async function serialAnswers(
  dir: string,
  maxContext: number,
  calls: { prompt: string; options: GenerateCallOptions }[],
) {
  using model = await loadModel(dir, { backend: "cpu", maxContext });
  const out = [];
  for (const c of calls) out.push(await model.generate(c.prompt, c.options));
  return out;
}
