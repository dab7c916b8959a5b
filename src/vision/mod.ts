/**
 * Image and video input, for every family: decode (PNG, JPEG, GIF) to upright RGB8, resize, and decode video
 * frames through ffmpeg (video.ts). The families' processors live in their folders (src/models/<family>/).
 * A leaf: imports nothing from ops or runtime.
 * @module
 */
export { ImageError, type ImageErrorKind } from "../errors.ts";
export {
  decodeImage,
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_PIXELS,
  type ImageFormat,
  type ImageSource,
  loadImage,
  type LoadImageOptions,
  probeImage,
  type RemoteImageOptions,
  type RgbImage,
} from "./image.ts";
export { fetchRemoteMedia, isPublicAddress, type RemoteFetchOptions } from "./remote.ts";
export { RemoteMediaError, type RemoteMediaErrorKind } from "../errors.ts";
export { resizeBicubicAntialias, resizeBilinearAntialias, type U8Image } from "./resize.ts";
export {
  decodeVideo,
  type DecodeVideoOptions,
  findFfmpeg,
  type LoadedVideo,
  type VideoLoadOptions,
  type VideoSampling,
  type VideoSource,
} from "./video.ts";
export { VideoError, type VideoErrorKind } from "../errors.ts";
