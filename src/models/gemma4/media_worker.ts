/**
 * Worker entry: decodes a prompt's images and runs the Gemma 4 image processor on them, off the caller's thread
 * (src/models/common/media_worker.ts says why; media.ts posts to it when `imagesOffThread` is set).
 * @module
 */
import { serveMediaWorker } from "../common/media_worker.ts";
import { decodeImage, type LoadImageOptions } from "../../vision/image.ts";
import { Gemma4ImageProcessorConfig, type Gemma4PixelValues, preprocessGemma4 } from "./processor.ts";

export interface Gemma4MediaRequest {
  images: Uint8Array[];
  loading: LoadImageOptions;
  config: Gemma4ImageProcessorConfig;
}

serveMediaWorker<Gemma4MediaRequest, Gemma4PixelValues>((r) => {
  // A structured clone keeps the config's fields but not its class; the processor reads its getters (maxPatches).
  const config = Object.setPrototypeOf(r.config, Gemma4ImageProcessorConfig.prototype) as Gemma4ImageProcessorConfig;
  return preprocessGemma4(r.images.map((b) => decodeImage(b, r.loading)), config);
}, (p) => [p.pixelValues.buffer as ArrayBuffer, p.positionIds.buffer as ArrayBuffer]);
