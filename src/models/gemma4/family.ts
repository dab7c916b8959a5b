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
import type { Family, FamilyLoadOptions } from "../family.ts";
import type { Backend } from "../../runtime/backend.ts";
import { gemma4ConfigFromGguf } from "./gguf.ts";
import { gemma4GgufMmprojText, gemma4VisionConfigFromMmproj, loadGemma4MmprojParts } from "./mmproj.ts";
import { loadGemma4Gguf, loadGemma4Text } from "./load.ts";
import { gemma4GgufTokenizer, isGemma4GgufVocab } from "./gguf_tokenizer.ts";
import { hasGgufVocab } from "../common/gguf_tokenizer.ts";
import { shortestF32 } from "../common/gguf_meta.ts";
import type { GgufFile } from "../../formats/gguf.ts";
import type { SamplingOptions } from "../../generate/options.ts";
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

/**
 * Sampling defaults of a GGUF: the converter copies generation_config.json into `general.sampling.*`; without
 * them, Gemma 4's (temperature 1, top_k 64, top_p 0.95).
 */
function ggufSampling(gguf: GgufFile): SamplingOptions {
  // f32 values: the decimal the converter wrote (0.95, not 0.949999988).
  const num = (key: string, fallback: number) => gguf.has(key) ? shortestF32(gguf.getNumber(key)) : fallback;
  return {
    temperature: num("general.sampling.temp", 1),
    topK: num("general.sampling.top_k", 64),
    topP: num("general.sampling.top_p", 0.95),
  };
}

/**
 * The model parts of a Gemma 4 text GGUF, read with `tokenizer`, and with the vision tower of `options.mmproj`
 * (llama.cpp's projector file) when one is given: a projector that does not fit is refused before the text weights
 * are read.
 */
export function loadGemma4GgufParts(
  backend: Backend,
  gguf: GgufFile,
  path: string,
  tokenizer: Tokenizer,
  options: FamilyLoadOptions & {
    /** Image/video processor settings instead of Gemma 4's shipped ones at the file's patch size. */
    processors?: { image?: Gemma4ImageProcessorConfig; video?: Gemma4VideoProcessorConfig };
  },
): ModelParts {
  const parts = {
    tokenizer,
    defaults: ggufSampling(gguf),
    supportsChat: gguf.has("tokenizer.chat_template"),
    responseParser: gemma4ResponseParserFor(tokenizer),
    toolCallFormat: gemma4ResponseTokens(tokenizer) ? gemma4ToolCallFormat : undefined,
  };
  if (!options.mmproj) {
    return {
      ...parts,
      lm: loadGemma4Gguf(backend, gguf, options),
      noMediaHint: "this GGUF holds the text model only: give its vision projector file with --mmproj FILE " +
        "(loadModel(path, { mmproj })), or put the mmproj-*.gguf beside the model",
    };
  }
  const text = gemma4GgufMmprojText(path, gguf, gemma4ConfigFromGguf(gguf).text.hiddenSize);
  gemma4VisionConfigFromMmproj(options.mmproj, text);
  return {
    ...parts,
    ...loadGemma4MmprojParts(backend, loadGemma4Gguf(backend, gguf, options), options.mmproj, text, options),
  };
}

export const gemma4: Family = {
  name: "gemma4",
  describes: "Gemma 4 (model_type gemma4_text or gemma4, GGUF architecture gemma4, with a gemma4v mmproj for images)",
  recognizes: (c) =>
    c.format === "gguf"
      ? c.architecture === "gemma4"
      : ["gemma4_text", "gemma4"].includes(c.config.model_type as string),

  async load(c, backend, options): Promise<ModelParts> {
    if (c.format === "gguf") {
      const gguf = c.file;
      if (!hasGgufVocab(gguf) || !isGemma4GgufVocab(gguf)) {
        throw new ConfigError(c.path, [
          'a Gemma 4 GGUF needs its own vocabulary (tokenizer.ggml.model "gemma4" with tokenizer.ggml.merges)',
        ]);
      }
      return loadGemma4GgufParts(backend, gguf, c.path, gemma4GgufTokenizer(gguf), options);
    }
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
