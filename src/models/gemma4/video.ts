/**
 * Gemma 4's video input: the generic decoder (src/vision/video.ts, ffmpeg) keeping the frames that
 * Gemma4VideoProcessor samples (32 spread uniformly by default, or `fps` frames per second).
 *
 * One deviation: transformers raises when a video has fewer frames than `num_frames` (e.g. a 2 s clip at 8 fps
 * against the default 32); we take every frame instead unless `clampToTotal: false`.
 * @module
 */
import { VideoError } from "../../errors.ts";
import { decodeVideo, type LoadedVideo, type VideoLoadOptions, type VideoSource } from "../../vision/video.ts";
import { gemma4SampleFrameIndices, Gemma4VideoProcessorConfig } from "./processor.ts";

export interface LoadVideoOptions extends VideoLoadOptions {
  /** Sampling settings (`num_frames`, `fps`, `do_sample_frames`); default `Gemma4VideoProcessor()`'s. */
  config?: Gemma4VideoProcessorConfig;
}

/**
 * Decodes the frames Gemma 4's video processor samples, with their timestamps. Throws VideoError for everything
 * about the input or the tools: missing ffmpeg, not a video, truncated or corrupt data, limits, timeout or abort.
 */
export function loadVideo(source: VideoSource, options: LoadVideoOptions = {}): Promise<LoadedVideo> {
  const { config: base = Gemma4VideoProcessorConfig.gemma4Default(), sampling, clampToTotal = true, ...limits } =
    options;
  let config: Gemma4VideoProcessorConfig;
  try {
    config = sampling ? base.with(sampling) : base;
  } catch (e) {
    return Promise.reject(
      new VideoError("loadVideo", "bad_source", `bad sampling options: ${(e as Error).message}`, { cause: e }),
    );
  }
  return decodeVideo(source, {
    ...limits,
    selectFrames: ({ totalNumFrames, fps }) =>
      config.doSampleFrames
        ? gemma4SampleFrameIndices(totalNumFrames, {
          numFrames: config.numFrames,
          fps: config.fps,
          videoFps: fps,
          clampToTotal,
        })
        : Array.from({ length: totalNumFrames }, (_, i) => i),
  });
}
