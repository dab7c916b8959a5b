/**
 * Worker entry: decodes a prompt's images and runs the Gemma 3 processor on them, off the caller's thread
 * (src/models/common/media_worker.ts says why; media.ts posts to it when `imagesOffThread` is set).
 * @module
 */
import { serveMediaWorker } from "../common/media_worker.ts";
import { decodeImage, type LoadImageOptions } from "../../vision/image.ts";
import {
  Gemma3ImageProcessorConfig,
  type Gemma3PixelValues,
  type Gemma3ProcessorOverrides,
  preprocessGemma3,
} from "./processor.ts";

export interface Gemma3MediaRequest {
  images: Uint8Array[];
  loading: LoadImageOptions;
  config: Gemma3ImageProcessorConfig;
  overrides: Gemma3ProcessorOverrides;
}

serveMediaWorker<Gemma3MediaRequest, Gemma3PixelValues>((r) => {
  // A structured clone keeps the config's fields but not its class; the processor calls its methods (`with`).
  const config = Object.setPrototypeOf(r.config, Gemma3ImageProcessorConfig.prototype) as Gemma3ImageProcessorConfig;
  return preprocessGemma3(r.images.map((b) => decodeImage(b, r.loading)), config, r.overrides);
}, (p) => [p.pixelValues.buffer as ArrayBuffer]);
