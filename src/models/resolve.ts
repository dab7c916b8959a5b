/**
 * What `--model` (or loadModel's path) names: nothing (the default model, Gemma 3 270M, fetched once), a
 * GGUF file, a Hugging Face checkpoint directory, a hub repo id (`org/name[@revision]`) downloaded
 * into the standard Hugging Face cache, or one GGUF of a hub repo (`org/name[@revision]:Q4_K_M` or
 * `org/name:file.gguf`, the ids llama.cpp's `-hf` and Ollama take).
 * @module
 */
import { GemmakitError } from "../errors.ts";
import { ensureDefaultModel } from "./registry.ts";
import { downloadGguf, downloadRepo, parseRepoId } from "../hub/hf.ts";
import type { ProgressCallback } from "../hub/progress.ts";

export interface ResolvedModel {
  format: "gguf" | "hf";
  path: string;
}

function stat(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.statSync(path);
  } catch {
    return undefined;
  }
}

export async function resolveModel(spec: string | undefined, onProgress?: ProgressCallback): Promise<ResolvedModel> {
  if (spec === undefined) return { format: "gguf", path: await ensureDefaultModel({ onProgress }) };
  const info = stat(spec);
  if (info?.isFile) {
    if (!spec.endsWith(".gguf")) {
      throw new GemmakitError("model", `${spec} is a file but not a .gguf; pass a GGUF file or a checkpoint directory`);
    }
    return { format: "gguf", path: spec };
  }
  if (info?.isDirectory) return { format: "hf", path: spec };
  // Not on disk: `org/name:tag` names one GGUF of a hub repo (a tag never has a slash, so no path reads as one).
  const gguf = /^([\w.-]+\/[\w.-]+(?:@[\w./-]+)?):([\w.-]+)$/.exec(spec);
  if (gguf && !spec.startsWith(".")) {
    return { format: "gguf", path: await downloadGguf(gguf[1], gguf[2], { onProgress }) };
  }
  // A hub repo id has exactly one slash and no path-like start.
  if (/^[\w.-]+\/[\w.-]+(@[\w./-]+)?$/.test(spec) && !spec.startsWith(".")) {
    parseRepoId(spec); // validates
    return { format: "hf", path: await downloadRepo(spec, { onProgress }) };
  }
  throw new GemmakitError(
    "model",
    `${spec} does not exist (and is not a Hugging Face repo id like google/gemma-3-1b-it or a GGUF one like ` +
      "ggml-org/gemma-3-1b-it-GGUF:Q4_K_M)",
  );
}
