/**
 * The Gemma 4 family: Gemma4ForCausalLM and Gemma4ForConditionalGeneration checkpoint directories (the vision
 * tower when the config has one; an audio tower is left unloaded). Answers are parsed into content, reasoning
 * and tool calls when the tokenizer has Gemma 4's markers.
 * @module
 */
import { join } from "node:path";
import { ConfigError } from "../../errors.ts";
import type { ModelParts } from "../../generate/model.ts";
import type { ResponseParser } from "../../generate/result.ts";
import { samplingDefaults } from "../../generate/options.ts";
import { Tokenizer } from "../../tokenizer/tokenizer.ts";
import { readOptionalJson } from "../common/config.ts";
import type { Family } from "../family.ts";
import { loadGemma4Text } from "./load.ts";
import { encodeGemma4MediaPrompt, type Gemma4VisionSupport } from "./media.ts";
import { loadGemma4Multimodal } from "./multimodal.ts";
import { Gemma4ImageProcessorConfig, Gemma4VideoProcessorConfig } from "./processor.ts";
import { Gemma4ResponseParser, gemma4ResponseTokens } from "./response.ts";
import { gemma4ToolCallFormat } from "./tool_grammar.ts";
import { hasGemma4Vision, parseGemma4VisionConfig } from "./vision_config.ts";

/** Gemma 4's response parser over `tokenizer`, when it has the response markers (undefined otherwise). */
export function gemma4ResponseParserFor(
  tokenizer: Tokenizer,
): ((promptIds: readonly number[]) => ResponseParser) | undefined {
  const markers = gemma4ResponseTokens(tokenizer);
  return markers && ((promptIds) => new Gemma4ResponseParser(tokenizer, markers, { promptIds }));
}

export const gemma4: Family = {
  name: "gemma4",
  describes: "Gemma 4 (model_type gemma4_text or gemma4)",
  recognizes: (c) => c.format === "hf" && ["gemma4_text", "gemma4"].includes(c.config.model_type as string),

  async load(c, backend, options): Promise<ModelParts> {
    if (c.format !== "hf") throw new ConfigError(c.path, ["Gemma 4 loads from checkpoint directories only"]);
    const tokenizer = await Tokenizer.fromFiles(c.path);
    const defaults = samplingDefaults(readOptionalJson(join(c.path, "generation_config.json")));
    const parts = {
      tokenizer,
      defaults,
      responseParser: gemma4ResponseParserFor(tokenizer),
      // Constrained tool calls need the markers as tokens of their own, as the parser does.
      toolCallFormat: gemma4ResponseTokens(tokenizer) ? gemma4ToolCallFormat : undefined,
    };
    if (!hasGemma4Vision(c.config)) return { ...parts, lm: loadGemma4Text(backend, c.path, options) };
    // The image and video processor settings of the checkpoint (Gemma 4's shipped ones without the files).
    const pre = readOptionalJson(join(c.path, "preprocessor_config.json"));
    const proc = readOptionalJson(join(c.path, "processor_config.json"));
    const vision: Gemma4VisionSupport = {
      config: parseGemma4VisionConfig(c.config, join(c.path, "config.json")),
      image: pre || proc
        ? Gemma4ImageProcessorConfig.fromPreprocessorConfig(pre ?? {}, proc ?? {})
        : Gemma4ImageProcessorConfig.gemma4Default(),
      video: proc
        ? Gemma4VideoProcessorConfig.fromProcessorConfig(
          proc,
          readOptionalJson(join(c.path, "video_preprocessor_config.json")) ?? {},
        )
        : Gemma4VideoProcessorConfig.gemma4Default(),
    };
    const lm = loadGemma4Multimodal(backend, c.path, options);
    return {
      ...parts,
      lm,
      visionCache: lm.visionCache,
      media: {
        video: true,
        encode: (tokenizer, messages, chat, opts) => encodeGemma4MediaPrompt(tokenizer, messages, chat, vision, opts),
      },
    };
  },
};
