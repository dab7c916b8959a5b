/**
 * Images in a conversation: the image parts of the messages are decoded and preprocessed (src/vision), and
 * each `<start_of_image>` the chat template wrote becomes the image's full token sequence, exactly as
 * Gemma3Processor expands it (with pan-and-scan crops when asked). The result is the prompt ids plus the
 * pixel values the model's prefill encodes.
 * @module
 */
import type { PromptImages } from "./multimodal.ts";
import { ImageInputError } from "../../errors.ts";
import type { Gemma3VisionConfig } from "./vision_config.ts";
import type { ChatMessage, ChatTemplateOptions } from "../../tokenizer/chat_template.ts";
import type { Tokenizer } from "../../tokenizer/tokenizer.ts";
import {
  Gemma3ImageProcessorConfig,
  gemma3ImagePromptText,
  type Gemma3PixelValues,
  preprocessGemma3,
} from "./processor.ts";
import { decodeOptionsOf, imageSourceBytes, loadImage } from "../../vision/image.ts";
import { runMediaWorker } from "../common/media_worker.ts";
import type { Gemma3MediaRequest } from "./media_worker.ts";
import { type ImageOptions, imageParts } from "../../generate/media.ts";
import { type MediaSpan, mediaSpansOf } from "../../generate/prefix.ts";
import { visionKey } from "../../runtime/vision_cache.ts";

/** What a model needs to take images: its vision config and the processor settings of the checkpoint. */
export interface VisionSupport {
  config: Gemma3VisionConfig;
  processor: Gemma3ImageProcessorConfig;
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
  vision: VisionSupport,
  options: ImageOptions = {},
): Promise<{ ids: number[]; images: PromptImages; spans: MediaSpan[] }> {
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
  const overrides = options.panAndScan === undefined ? {} : { doPanAndScan: options.panAndScan };
  let processed: Gemma3PixelValues;
  if (options.imagesOffThread) {
    // Only reading the bytes stays here (asynchronous I/O); decoding and resizing run in the worker.
    const images: Uint8Array[] = [];
    for (const source of sources) images.push(await imageSourceBytes(source, options.imageLoading));
    const request: Gemma3MediaRequest = {
      images,
      loading: decodeOptionsOf(options.imageLoading),
      config: vision.processor,
      overrides,
    };
    processed = await runMediaWorker(new URL("./media_worker.ts", import.meta.url), request, [], "generate");
  } else {
    const rgb = [];
    for (const source of sources) rgb.push(await loadImage(source, options.imageLoading));
    processed = preprocessGemma3(rgb, vision.processor, overrides);
  }
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
  // Each image (and crop) is one run of image tokens, keyed by its pixels as the vision-encoder cache keys it.
  const plane = processed.pixelValues.length / count;
  const keys = Array.from(
    { length: count },
    (_, n) => visionKey(processed.pixelValues.subarray(n * plane, (n + 1) * plane)),
  );
  const spans = mediaSpansOf(ids, [vision.config.imageTokenId], keys, visionKey(processed.pixelValues));
  return { ids, images: { pixelValues: processed.pixelValues, count }, spans };
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
