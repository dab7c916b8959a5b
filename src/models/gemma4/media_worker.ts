/**
 * Worker entry: decodes a prompt's images and runs the Gemma 4 image processor on them, or runs the video processor
 * on a video's decoded frames, off the caller's thread (src/models/common/media_worker.ts says why; media.ts posts
 * to it when `imagesOffThread` is set).
 * @module
 */
import { serveMediaWorker } from "../common/media_worker.ts";
import { decodeImage, type LoadImageOptions } from "../../vision/image.ts";
import type { RgbImage } from "../../vision/image_types.ts";
import {
  Gemma4ImageProcessorConfig,
  type Gemma4PixelValues,
  Gemma4VideoProcessorConfig,
  preprocessGemma4,
  preprocessGemma4Video,
} from "./processor.ts";

export type Gemma4MediaRequest =
  | { kind: "images"; images: Uint8Array[]; loading: LoadImageOptions; config: Gemma4ImageProcessorConfig }
  | { kind: "video"; frames: RgbImage[]; config: Gemma4VideoProcessorConfig };

serveMediaWorker<Gemma4MediaRequest, Gemma4PixelValues>((r) => {
  // A structured clone keeps the config's fields but not its class; the processors read its getters (maxPatches).
  if (r.kind === "video") {
    return preprocessGemma4Video(r.frames, Object.setPrototypeOf(r.config, Gemma4VideoProcessorConfig.prototype));
  }
  const config = Object.setPrototypeOf(r.config, Gemma4ImageProcessorConfig.prototype) as Gemma4ImageProcessorConfig;
  return preprocessGemma4(r.images.map((b) => decodeImage(b, r.loading)), config);
}, (p) => [p.pixelValues.buffer as ArrayBuffer, p.positionIds.buffer as ArrayBuffer]);
