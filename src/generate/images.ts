/**
 * Images in a conversation: the image parts of the messages are decoded and preprocessed (src/vision), and
 * each `<start_of_image>` the chat template wrote becomes the image's full token sequence, exactly as
 * Gemma3Processor expands it (with pan-and-scan crops when asked). The result is the prompt ids plus the
 * pixel values the model's prefill encodes.
 * @module
 */
import { ImageInputError, type PromptImages } from "../models/multimodal.ts";
import type { Gemma3VisionConfig } from "../models/gemma3/vision_config.ts";
import type { ChatMessage, ChatTemplateOptions } from "../tokenizer/chat_template.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";
import { Gemma3ImageProcessorConfig, gemma3ImagePromptText, preprocessGemma3 } from "../vision/gemma3_processor.ts";
import { type ImageSource, loadImage, type LoadImageOptions } from "../vision/image.ts";

/** Per-call image options. */
export interface ImageOptions {
  /** Pan-and-scan crops for images far from square (default: the checkpoint's preprocessor_config.json). */
  panAndScan?: boolean;
  /** Limits and conversions of image decoding (size, EXIF orientation, alpha background). */
  imageLoading?: LoadImageOptions;
}

/** What a model needs to take images: its vision config and the processor settings of the checkpoint. */
export interface VisionSupport {
  config: Gemma3VisionConfig;
  processor: Gemma3ImageProcessorConfig;
}

/**
 * The image parts of a conversation, in prompt order: `{type: "image", path | bytes | base64 | url | image}`
 * (the shape chat datasets use; `url` takes file: and data: URLs).
 */
export function imageParts(messages: readonly ChatMessage[]): ImageSource[] {
  const out: ImageSource[] = [];
  messages.forEach((m, i) => {
    if (!Array.isArray(m.content)) return;
    m.content.forEach((part, j) => {
      if (part?.type !== "image") return;
      const p = part as Record<string, unknown>;
      const where = `messages[${i}].content[${j}]`;
      if (typeof p.path === "string") out.push({ path: p.path });
      else if (p.bytes instanceof Uint8Array || p.bytes instanceof ArrayBuffer) out.push({ bytes: p.bytes });
      else if (typeof p.base64 === "string") out.push({ base64: p.base64 });
      else if (typeof p.url === "string") out.push({ url: p.url });
      else if (typeof p.image === "string" || p.image instanceof Uint8Array) out.push(p.image);
      else {
        throw new ImageInputError(
          "generate",
          `${where} is an image part without a source: give path, bytes, base64 or url`,
        );
      }
    });
  });
  return out;
}

/** Whether any message carries an image part. */
export function hasImages(messages: readonly ChatMessage[]): boolean {
  return messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p?.type === "image"));
}

/**
 * Renders the conversation, loads and preprocesses its images, and expands every `<start_of_image>` into
 * the image's token sequence (Gemma3Processor.replace_image_token). Throws ImageInputError when the model
 * has no vision tower or the placeholders and images disagree, ImageError (src/vision) for an image that
 * cannot be read.
 */
export async function encodeImagePrompt(
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  chat: ChatTemplateOptions,
  vision: VisionSupport | undefined,
  options: ImageOptions = {},
): Promise<{ ids: number[]; images: PromptImages }> {
  if (!vision) {
    throw new ImageInputError("generate", "this checkpoint has no vision tower: it does not take images", {
      hint: "send text only, or load a Gemma 3 checkpoint with a vision tower (model_type gemma3, 4B and up)",
    });
  }
  const sources = imageParts(messages);
  const boi = tokenizer.idToToken(vision.config.boiTokenId) ?? "<start_of_image>";
  const image = tokenizer.idToToken(vision.config.imageTokenId) ?? "<image_soft_token>";
  const eoi = tokenizer.idToToken(vision.config.eoiTokenId) ?? "<end_of_image>";
  const text = tokenizer.applyChatTemplate(messages, chat);
  const pieces = text.split(boi);
  if (pieces.length - 1 !== sources.length) {
    throw new ImageInputError(
      "generate",
      `the prompt has ${pieces.length - 1} ${boi} placeholders but ${sources.length} image(s)`,
      { hint: `each image part becomes one ${boi}; do not write ${boi} in text parts` },
    );
  }
  const rgb = [];
  for (const source of sources) rgb.push(await loadImage(source, options.imageLoading));
  const processed = preprocessGemma3(
    rgb,
    vision.processor,
    options.panAndScan === undefined ? {} : { doPanAndScan: options.panAndScan },
  );
  const [count, channels, height, width] = processed.shape;
  const S = vision.config.imageSize;
  if (channels !== vision.config.numChannels || height !== S || width !== S) {
    throw new ImageInputError(
      "generate",
      `the image processor makes [${channels}, ${height}, ${width}] pixels but the vision tower takes ` +
        `[${vision.config.numChannels}, ${S}, ${S}]`,
      { hint: "preprocessor_config.json's size must match vision_config.image_size" },
    );
  }
  const T = vision.config.mmTokensPerImage;
  const expanded = pieces.reduce(
    (acc, piece, i) =>
      acc + gemma3ImagePromptText(processed.numCrops[i - 1], T, { boiToken: boi, imageToken: image, eoiToken: eoi }) +
      piece,
  );
  const ids = tokenizer.encode(expanded, { addSpecialTokens: false });
  return { ids, images: { pixelValues: processed.pixelValues, count } };
}

/** The processor settings of a checkpoint directory's preprocessor_config.json / processor_config.json. */
export function processorConfigFrom(
  preprocessor: Record<string, unknown> | undefined,
  processor: Record<string, unknown> | undefined,
  vision: Gemma3VisionConfig,
): Gemma3ImageProcessorConfig {
  // Without the processor files, Gemma 3's shipped settings at the tower's image size.
  if (!preprocessor && !processor) {
    return Gemma3ImageProcessorConfig.gemma3Default().with({ imageSize: vision.imageSize });
  }
  return Gemma3ImageProcessorConfig.fromPreprocessorConfig(preprocessor ?? {}, processor ?? {});
}
