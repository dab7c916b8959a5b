/**
 * The Gemma 4 image and video processors, as transformers 5.17 runs them by default: `AutoProcessor` /
 * `AutoImageProcessor` give `Gemma4ImageProcessor` (the torchvision backend; the `...Pil` class is only the
 * fallback without torchvision) and `AutoVideoProcessor` gives `Gemma4VideoProcessor`. Per image (or frame):
 *
 * 1. aspect-ratio-preserving target size ({@link gemma4TargetSize}): the largest size with sides a multiple of
 *    `pooling_kernel_size * patch_size` (48) whose patch count fits `max_soft_tokens * pooling_kernel_size²`;
 * 2. resize to it: antialiased bicubic (Pillow's a = -0.5) on uint8, bit-exact with torch (resize.ts);
 * 3. rescale 1/255 (images: `x * float32(1/255)`; videos, whose `do_normalize` is true with mean 0 / std 1, go
 *    through the fused normalize `(x - 0) / 255`: both are one correctly rounded float32 op, reproduced exactly);
 * 4. patchify `[C, H, W] -> [Hp*Wp, p*p*C]`, each patch vector in (py, px, c) order, patches row-major;
 * 5. position ids `(x = column, y = row)` per patch; pad to `max_patches` with zero pixels and `(-1, -1)`;
 * 6. `num_soft_tokens = Hp * Wp / pooling_kernel_size²`.
 *
 * The values are therefore bit-identical to transformers' `pixel_values` for the same RGB8 input (the only
 * differences come from decoding: JPEG within a few levels of libjpeg-turbo, see jpeg.ts).
 *
 * The prompt side: Gemma4Processor replaces each `<|image|>` placeholder with
 * {@link gemma4ImagePromptText} and each `<|video|>` with {@link gemma4VideoPromptText} (one
 * `"mm:ss <|image>" + <|video|>×n + "<image|>"` per frame, joined by spaces); {@link expandGemma4Prompt} does
 * both in one pass, in placeholder order, as `ProcessorMixin.get_text_with_replacements` does.
 * @module
 */
import { ImageError } from "../../errors.ts";
import type { RgbImage } from "../../vision/image.ts";
import {
  badConfig as bad,
  bool,
  checkImage,
  type Json,
  nested,
  num,
  triple,
  valueTable,
} from "../../vision/processor_config.ts";
import { resizeBicubicAntialias, type U8Image } from "../../vision/resize.ts";

/** The soft-token budgets the Gemma 4 processors accept (`_SUPPORTED_SOFT_TOKENS`). */
export const GEMMA4_SOFT_TOKEN_BUDGETS: readonly number[] = [70, 140, 280, 560, 1120];

/** PILImageResampling.BICUBIC, the filter both Gemma 4 processors use (the only one implemented here). */
const RESAMPLE_BICUBIC = 3;

/** Per-call overrides of a Gemma 4 image or video processor config; unset fields keep the config's value. */
export interface Gemma4ProcessorOverrides {
  /** Soft tokens per image (or frame): one of 70, 140, 280, 560, 1120. */
  maxSoftTokens?: number;
  patchSize?: number;
  poolingKernelSize?: number;
  doResize?: boolean;
  doRescale?: boolean;
  rescaleFactor?: number;
  doNormalize?: boolean;
  imageMean?: readonly number[];
  imageStd?: readonly number[];
}

/** Per-call overrides of the video processor's frame sampling (`num_frames`, `fps`, `do_sample_frames`). */
export interface Gemma4VideoOverrides extends Gemma4ProcessorOverrides {
  /** Frames to sample uniformly; `null` to sample by `fps` instead. */
  numFrames?: number | null;
  /** Frames per second to sample (only with `numFrames: null`). */
  fps?: number | null;
  doSampleFrames?: boolean;
}

/** The fields both processors share (transformers' `Gemma4{Image,Video}Processor` attributes). */
interface VisionFields {
  patchSize: number;
  maxSoftTokens: number;
  poolingKernelSize: number;
  doResize: boolean;
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: readonly number[];
  imageStd: readonly number[];
}

function optNum(where: string, json: Json, key: string, fallback: number | null): number | null {
  if (!(key in json)) return fallback;
  return json[key] === null ? null : num(where, json, key, 0);
}

function readFields(where: string, j: Json, defaults: VisionFields): VisionFields {
  const resample = num(where, j, "resample", RESAMPLE_BICUBIC);
  if (resample !== RESAMPLE_BICUBIC) {
    throw bad(where, `resample=${resample} is not supported`, "gemmakit implements bicubic (resample=3), Gemma 4's");
  }
  return {
    patchSize: num(where, j, "patch_size", defaults.patchSize),
    maxSoftTokens: num(where, j, "max_soft_tokens", defaults.maxSoftTokens),
    poolingKernelSize: num(where, j, "pooling_kernel_size", defaults.poolingKernelSize),
    doResize: bool(where, j, "do_resize", defaults.doResize),
    doRescale: bool(where, j, "do_rescale", defaults.doRescale),
    rescaleFactor: num(where, j, "rescale_factor", defaults.rescaleFactor),
    doNormalize: bool(where, j, "do_normalize", defaults.doNormalize),
    imageMean: triple(where, j, "image_mean", defaults.imageMean),
    imageStd: triple(where, j, "image_std", defaults.imageStd),
  };
}

function applyOverrides(f: VisionFields, o: Gemma4ProcessorOverrides): VisionFields {
  return {
    patchSize: o.patchSize ?? f.patchSize,
    maxSoftTokens: o.maxSoftTokens ?? f.maxSoftTokens,
    poolingKernelSize: o.poolingKernelSize ?? f.poolingKernelSize,
    doResize: o.doResize ?? f.doResize,
    doRescale: o.doRescale ?? f.doRescale,
    rescaleFactor: o.rescaleFactor ?? f.rescaleFactor,
    doNormalize: o.doNormalize ?? f.doNormalize,
    imageMean: o.imageMean ?? f.imageMean,
    imageStd: o.imageStd ?? f.imageStd,
  };
}

function validateFields(where: string, c: VisionFields): void {
  if (!GEMMA4_SOFT_TOKEN_BUDGETS.includes(c.maxSoftTokens)) {
    throw bad(where, `max_soft_tokens must be one of ${GEMMA4_SOFT_TOKEN_BUDGETS.join(", ")}, got ${c.maxSoftTokens}`);
  }
  for (const [k, v] of [["patch_size", c.patchSize], ["pooling_kernel_size", c.poolingKernelSize]] as const) {
    if (!(Number.isInteger(v) && v > 0 && v <= 64)) throw bad(where, `${k} must be an integer in 1..64, got ${v}`);
  }
  if (!(c.rescaleFactor > 0)) throw bad(where, `rescale_factor must be > 0, got ${c.rescaleFactor}`);
  if (c.imageMean.length !== 3 || c.imageStd.length !== 3) throw bad(where, "image_mean and image_std need 3 values");
  if (c.imageStd.some((s) => s === 0)) throw bad(where, "image_std must not contain 0");
}

const IMAGE_DEFAULTS: VisionFields = {
  patchSize: 16,
  maxSoftTokens: 280,
  poolingKernelSize: 3,
  doResize: true,
  doRescale: true,
  rescaleFactor: 1 / 255,
  doNormalize: false,
  imageMean: [0, 0, 0],
  imageStd: [1, 1, 1],
};

/** Gemma4VideoProcessor's class defaults differ in two places: 70 soft tokens per frame, do_normalize true. */
const VIDEO_DEFAULTS: VisionFields = { ...IMAGE_DEFAULTS, maxSoftTokens: 70, doNormalize: true };

/**
 * The image processor's settings, read once from what transformers writes: `preprocessor_config.json` (the
 * image processor's fields at top level, as released checkpoints ship it) and/or `processor_config.json`
 * (transformers 5.17's `save_pretrained` nests them under `image_processor`, and puts `image_seq_length` at
 * top level). Unset or `null` fields take `Gemma4ImageProcessor`'s class defaults (280 soft tokens, patch 16,
 * pooling 3, bicubic, rescale 1/255, no normalization).
 */
export class Gemma4ImageProcessorConfig implements VisionFields {
  readonly patchSize: number;
  readonly maxSoftTokens: number;
  readonly poolingKernelSize: number;
  readonly doResize: boolean;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: readonly number[];
  readonly imageStd: readonly number[];

  private constructor(f: VisionFields) {
    this.patchSize = f.patchSize;
    this.maxSoftTokens = f.maxSoftTokens;
    this.poolingKernelSize = f.poolingKernelSize;
    this.doResize = f.doResize;
    this.doRescale = f.doRescale;
    this.rescaleFactor = f.rescaleFactor;
    this.doNormalize = f.doNormalize;
    this.imageMean = f.imageMean;
    this.imageStd = f.imageStd;
    validateFields("Gemma4ImageProcessorConfig", this);
  }

  /** Patches per image before pooling: `max_soft_tokens * pooling_kernel_size²` (the padded length). */
  get maxPatches(): number {
    return this.maxSoftTokens * this.poolingKernelSize ** 2;
  }

  /** Parse `preprocessor_config.json` and/or `processor_config.json` as transformers writes them. */
  static fromPreprocessorConfig(preprocessor: Json = {}, processor: Json = {}): Gemma4ImageProcessorConfig {
    const j = { ...nested(processor, "image_processor"), ...preprocessor };
    return new Gemma4ImageProcessorConfig(readFields("Gemma4ImageProcessorConfig", j, IMAGE_DEFAULTS));
  }

  /** `Gemma4ImageProcessor()`'s defaults (what the released checkpoints use: 280 soft tokens). */
  static gemma4Default(): Gemma4ImageProcessorConfig {
    return new Gemma4ImageProcessorConfig(IMAGE_DEFAULTS);
  }

  /** A copy with some fields replaced (validated again). */
  with(o: Gemma4ProcessorOverrides): Gemma4ImageProcessorConfig {
    return new Gemma4ImageProcessorConfig(applyOverrides(this, o));
  }
}

/**
 * The video processor's settings: `processor_config.json`'s `video_processor` object (transformers 5.17) and/or
 * a `video_preprocessor_config.json` at top level. Defaults are `Gemma4VideoProcessor`'s: 70 soft tokens per
 * frame, 32 frames sampled uniformly (`num_frames`), no `fps`, do_normalize with mean 0 / std 1.
 */
export class Gemma4VideoProcessorConfig implements VisionFields {
  readonly patchSize: number;
  readonly maxSoftTokens: number;
  readonly poolingKernelSize: number;
  readonly doResize: boolean;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: readonly number[];
  readonly imageStd: readonly number[];
  /** Frames to sample uniformly (`num_frames`, 32), or null to sample by {@link fps}. */
  readonly numFrames: number | null;
  /** Frames per second to sample (`fps`); transformers refuses both set at once. */
  readonly fps: number | null;
  readonly doSampleFrames: boolean;

  private constructor(f: VisionFields & { numFrames: number | null; fps: number | null; doSampleFrames: boolean }) {
    this.patchSize = f.patchSize;
    this.maxSoftTokens = f.maxSoftTokens;
    this.poolingKernelSize = f.poolingKernelSize;
    this.doResize = f.doResize;
    this.doRescale = f.doRescale;
    this.rescaleFactor = f.rescaleFactor;
    this.doNormalize = f.doNormalize;
    this.imageMean = f.imageMean;
    this.imageStd = f.imageStd;
    this.numFrames = f.numFrames;
    this.fps = f.fps;
    this.doSampleFrames = f.doSampleFrames;
    const where = "Gemma4VideoProcessorConfig";
    validateFields(where, this);
    if (
      this.numFrames !== null && !(Number.isInteger(this.numFrames) && this.numFrames > 0 && this.numFrames <= 4096)
    ) {
      throw bad(where, `num_frames must be an integer in 1..4096 or null, got ${this.numFrames}`);
    }
    if (this.fps !== null && !(this.fps > 0)) throw bad(where, `fps must be > 0 or null, got ${this.fps}`);
    if (this.doSampleFrames && this.numFrames !== null && this.fps !== null) {
      throw bad(where, "num_frames and fps are mutually exclusive", "set num_frames to null to sample by fps");
    }
  }

  get maxPatches(): number {
    return this.maxSoftTokens * this.poolingKernelSize ** 2;
  }

  /** Parse `processor_config.json` (its `video_processor`) and/or `video_preprocessor_config.json`. */
  static fromProcessorConfig(processor: Json = {}, videoPreprocessor: Json = {}): Gemma4VideoProcessorConfig {
    const where = "Gemma4VideoProcessorConfig";
    const j = { ...nested(processor, "video_processor"), ...videoPreprocessor };
    return new Gemma4VideoProcessorConfig({
      ...readFields(where, j, VIDEO_DEFAULTS),
      numFrames: optNum(where, j, "num_frames", 32),
      fps: optNum(where, j, "fps", null),
      doSampleFrames: bool(where, j, "do_sample_frames", true),
    });
  }

  static gemma4Default(): Gemma4VideoProcessorConfig {
    return Gemma4VideoProcessorConfig.fromProcessorConfig();
  }

  with(o: Gemma4VideoOverrides): Gemma4VideoProcessorConfig {
    return new Gemma4VideoProcessorConfig({
      ...applyOverrides(this, o),
      numFrames: o.numFrames !== undefined ? o.numFrames : this.numFrames,
      fps: o.fps !== undefined ? o.fps : this.fps,
      doSampleFrames: o.doSampleFrames ?? this.doSampleFrames,
    });
  }
}

/**
 * `get_aspect_ratio_preserving_size`: the largest `height` x `width`, both multiples of
 * `poolingKernelSize * patchSize`, with at most `maxPatches` patches, keeping the aspect ratio. A side that
 * would round to 0 becomes one cell and the other `floor(long / short)` cells, capped. Same double arithmetic
 * as Python's, so the same sizes.
 */
export function gemma4TargetSize(
  height: number,
  width: number,
  patchSize: number,
  maxPatches: number,
  poolingKernelSize: number,
): { height: number; width: number } {
  const targetPx = maxPatches * patchSize ** 2;
  const factor = Math.sqrt(targetPx / (height * width));
  const side = poolingKernelSize * patchSize;
  let th = Math.floor((factor * height) / side) * side;
  let tw = Math.floor((factor * width) / side) * side;
  if (th === 0 && tw === 0) {
    throw new ImageError("gemma4TargetSize", "bad_config", `a ${width}x${height} image would be resized to 0x0`);
  }
  const maxSide = Math.floor(maxPatches / poolingKernelSize ** 2) * side;
  if (th === 0) {
    th = side;
    tw = Math.min(Math.floor(width / height) * side, maxSide);
  } else if (tw === 0) {
    tw = side;
    th = Math.min(Math.floor(height / width) * side, maxSide);
  }
  if (th * tw > targetPx) {
    throw new ImageError(
      "gemma4TargetSize",
      "bad_config",
      `resizing ${width}x${height} to ${tw}x${th} would exceed ${maxPatches} patches`,
    );
  }
  return { height: th, width: tw };
}

/** Soft tokens an image of this size becomes (Gemma4Processor._get_num_multimodal_tokens), without decoding. */
export function gemma4NumSoftTokens(
  height: number,
  width: number,
  config: Pick<VisionFields, "patchSize" | "maxSoftTokens" | "poolingKernelSize"> = Gemma4ImageProcessorConfig
    .gemma4Default(),
): number {
  const k = config.poolingKernelSize;
  const t = gemma4TargetSize(height, width, config.patchSize, config.maxSoftTokens * k * k, k);
  return (t.height / config.patchSize) * (t.width / config.patchSize) / (k * k);
}

/** What {@link preprocessGemma4} and {@link preprocessGemma4Video} return. */
export interface Gemma4PixelValues {
  /** `[n, maxPatches, 3 * patchSize²]` float32; each patch vector in (py, px, c) order, padding rows zero. */
  pixelValues: Float32Array;
  shape: [number, number, number];
  /** `[n, maxPatches, 2]` int32 `(x, y)` patch positions, `(-1, -1)` on padding rows. */
  positionIds: Int32Array;
  positionShape: [number, number, number];
  /** Soft tokens per image (per frame for a video: all frames have the same). */
  numSoftTokens: number[];
  /** The size each image was resized to (before patchify). */
  resized: { height: number; width: number }[];
}

/** Resize one image as the processors do (a no-op when it already has the target size). */
function resizeForGemma4(op: string, img: RgbImage, c: VisionFields): U8Image {
  const u8: U8Image = { width: img.width, height: img.height, channels: 3, data: img.data };
  const p = c.patchSize, k = c.poolingKernelSize, maxPatches = c.maxSoftTokens * k * k;
  if (!c.doResize) {
    if (img.width % p || img.height % p || (img.width / p) * (img.height / p) > maxPatches) {
      throw new ImageError(
        op,
        "bad_config",
        `with do_resize=false a ${img.width}x${img.height} image must have sides divisible by ${p} and at most ` +
          `${maxPatches} patches`,
      );
    }
    return u8;
  }
  const t = gemma4TargetSize(img.height, img.width, p, maxPatches, k);
  return t.width === img.width && t.height === img.height ? u8 : resizeBicubicAntialias(u8, t.width, t.height);
}

/** Patchify one resized image into row `n` of the outputs, with its positions and padding. */
function patchifyInto(
  img: U8Image,
  c: VisionFields,
  lut: Float32Array,
  pixels: Float32Array,
  positions: Int32Array,
  n: number,
): number {
  const p = c.patchSize, k = c.poolingKernelSize, maxPatches = c.maxSoftTokens * k * k, dim = 3 * p * p;
  const hp = Math.floor(img.height / p), wp = Math.floor(img.width / p);
  const src = img.data, rowLen = img.width * 3;
  let o = n * maxPatches * dim;
  for (let py = 0; py < hp; py++) {
    for (let px = 0; px < wp; px++) {
      for (let y = 0; y < p; y++) {
        let s = (py * p + y) * rowLen + px * p * 3;
        for (let x = 0; x < p; x++, s += 3) {
          pixels[o++] = lut[src[s]];
          pixels[o++] = lut[256 + src[s + 1]];
          pixels[o++] = lut[512 + src[s + 2]];
        }
      }
    }
  }
  const pos = positions.subarray(n * maxPatches * 2, (n + 1) * maxPatches * 2);
  pos.fill(-1);
  for (let i = 0; i < hp * wp; i++) {
    pos[2 * i] = i % wp;
    pos[2 * i + 1] = Math.floor(i / wp);
  }
  return (hp * wp) / (k * k);
}

function run(op: string, images: readonly RgbImage[], c: VisionFields): Gemma4PixelValues {
  if (images.length === 0) throw new ImageError(op, "bad_source", "no images given");
  images.forEach((img, i) => checkImage(op, img, i));
  const k = c.poolingKernelSize, maxPatches = c.maxSoftTokens * k * k, dim = 3 * c.patchSize ** 2;
  const n = images.length;
  const pixelValues = new Float32Array(n * maxPatches * dim);
  const positionIds = new Int32Array(n * maxPatches * 2);
  const lut = valueTable(c);
  const numSoftTokens: number[] = [];
  const resized: { height: number; width: number }[] = [];
  images.forEach((img, i) => {
    const r = resizeForGemma4(op, img, c);
    resized.push({ height: r.height, width: r.width });
    numSoftTokens.push(Math.floor(patchifyInto(r, c, lut, pixelValues, positionIds, i)));
  });
  return {
    pixelValues,
    shape: [n, maxPatches, dim],
    positionIds,
    positionShape: [n, maxPatches, 2],
    numSoftTokens,
    resized,
  };
}

/**
 * Preprocess images for Gemma 4's vision tower, like transformers' `Gemma4ImageProcessor` (torchvision
 * backend, the default) called through `Gemma4Processor`.
 *
 * @param images RGB8 images (from `loadImage`), any sizes; each is resized to its own aspect-preserving size.
 * @param config settings from the checkpoint; default: `Gemma4ImageProcessor()` (280 soft tokens).
 * @param overrides per-call changes, e.g. `{ maxSoftTokens: 560 }`.
 * @returns patchified pixel values and (x, y) position ids padded to `maxPatches`, and soft tokens per image
 *   (pass those to {@link gemma4ImagePromptText} / {@link expandGemma4Prompt}).
 * @throws ImageError on an empty list, a zero-size image, data of the wrong length or a bad config.
 */
export function preprocessGemma4(
  images: readonly RgbImage[],
  config: Gemma4ImageProcessorConfig = Gemma4ImageProcessorConfig.gemma4Default(),
  overrides: Gemma4ProcessorOverrides = {},
): Gemma4PixelValues {
  const c = Object.keys(overrides).length ? config.with(overrides) : config;
  return run("preprocessGemma4", images, c);
}

/**
 * Preprocess one video's (already sampled) frames like `Gemma4VideoProcessor._preprocess`: every frame is
 * resized, rescaled and patchified as an image is, with the video processor's settings (70 soft tokens per
 * frame by default). Frames must share one size (they come from one video).
 */
export function preprocessGemma4Video(
  frames: readonly RgbImage[],
  config: Gemma4VideoProcessorConfig = Gemma4VideoProcessorConfig.gemma4Default(),
  overrides: Gemma4ProcessorOverrides = {},
): Gemma4PixelValues {
  const op = "preprocessGemma4Video";
  const c = Object.keys(overrides).length ? config.with(overrides) : config;
  if (frames.some((f) => f.width !== frames[0].width || f.height !== frames[0].height)) {
    throw new ImageError(op, "bad_source", "all frames of a video must have the same size");
  }
  return run(op, frames, c);
}

/**
 * Frame indices the video processor samples (`BaseVideoProcessor.sample_frames`): with `numFrames`,
 * `torch.arange(0, total, total / numFrames).int()` — float32 values, truncated, and as many as torch's
 * `ceil(total / step)` (sometimes one more than asked, which transformers keeps); with `fps` instead,
 * `numFrames = int(total / videoFps * fps)` first. Transformers refuses `numFrames > total`; so do we unless
 * `clampToTotal` (the default in `loadVideo`, which then takes every frame of a short clip).
 */
export function gemma4SampleFrameIndices(
  totalNumFrames: number,
  opts: { numFrames: number | null; fps: number | null; videoFps?: number | null; clampToTotal?: boolean },
): number[] {
  const op = "gemma4SampleFrameIndices";
  if (!(Number.isInteger(totalNumFrames) && totalNumFrames > 0)) {
    throw new ImageError(op, "bad_source", `a video needs at least one frame, got ${totalNumFrames}`);
  }
  let n = opts.numFrames;
  if (n !== null && opts.fps !== null) throw bad(op, "num_frames and fps are mutually exclusive");
  if (n === null && opts.fps !== null) {
    if (!opts.videoFps) throw bad(op, "sampling by fps needs the video's fps");
    n = Math.trunc((totalNumFrames / opts.videoFps) * opts.fps);
  }
  if (n === null) return Array.from({ length: totalNumFrames }, (_, i) => i);
  if (n > totalNumFrames) {
    if (!opts.clampToTotal) {
      throw new ImageError(
        op,
        "bad_source",
        `cannot sample ${n} frames from a video of ${totalNumFrames}`,
        { hint: "ask for fewer frames (numFrames), or let loadVideo take every frame of short clips" },
      );
    }
    n = totalNumFrames;
  }
  if (n <= 0) throw new ImageError(op, "bad_source", `sampling gives ${n} frames (video too short for this fps)`);
  const step = totalNumFrames / n;
  const count = Math.ceil(totalNumFrames / step);
  const out: number[] = [];
  for (let i = 0; i < count; i++) out.push(Math.trunc(Math.fround(i * step)));
  return out;
}

/** The special-token strings the Gemma 4 tokenizer uses around images and video frames. */
export interface Gemma4VisionTokens {
  /** `<|image>`: begins every image and every video frame */
  boiToken: string;
  /** `<|image|>`: the image placeholder, repeated once per soft token */
  imageToken: string;
  /** `<image|>`: ends every image and every video frame */
  eoiToken: string;
  /** `<|video|>`: the video placeholder, repeated once per soft token of each frame */
  videoToken: string;
}

export const GEMMA4_VISION_TOKENS: Gemma4VisionTokens = {
  boiToken: "<|image>",
  imageToken: "<|image|>",
  eoiToken: "<image|>",
  videoToken: "<|video|>",
};

/** `Gemma4Processor.replace_image_token`: `<|image>` + `<|image|>` × n + `<image|>` (no surrounding newlines). */
export function gemma4ImagePromptText(
  numSoftTokens: number,
  tokens: Gemma4VisionTokens = GEMMA4_VISION_TOKENS,
): string {
  return `${tokens.boiToken}${tokens.imageToken.repeat(numSoftTokens)}${tokens.eoiToken}`;
}

/** The same expansion as token ids (it is special tokens only, so no tokenizer is needed). */
export function gemma4ImagePromptIds(
  numSoftTokens: number,
  ids: { boiTokenId: number; imageTokenId: number; eoiTokenId: number },
): number[] {
  return [ids.boiTokenId, ...new Array<number>(numSoftTokens).fill(ids.imageTokenId), ids.eoiTokenId];
}

/** A frame timestamp as the processor prints it: `f"{int(s // 60):02d}:{int(s % 60):02d}"`. */
export function formatGemma4Timestamp(seconds: number): string {
  const two = (x: number) => String(x).padStart(2, "0");
  return `${two(Math.trunc(Math.floor(seconds / 60)))}:${two(Math.trunc(seconds - 60 * Math.floor(seconds / 60)))}`;
}

/**
 * `Gemma4Processor.replace_video_token`: for each sampled frame `"mm:ss <|image>" + <|video|> × n + "<image|>"`,
 * joined by single spaces. `timestamps` are seconds (`frame_index / fps`).
 */
export function gemma4VideoPromptText(
  numSoftTokens: number,
  timestamps: readonly number[],
  tokens: Gemma4VisionTokens = GEMMA4_VISION_TOKENS,
): string {
  const frame = `${tokens.boiToken}${tokens.videoToken.repeat(numSoftTokens)}${tokens.eoiToken}`;
  return timestamps.map((t) => `${formatGemma4Timestamp(t)} ${frame}`).join(" ");
}

/** One video's part of the prompt: soft tokens per frame and the sampled frames' timestamps (seconds). */
export interface Gemma4VideoPrompt {
  numSoftTokens: number;
  timestamps: readonly number[];
}

/**
 * Replace the `<|image|>` and `<|video|>` placeholders of a rendered chat prompt, in order of appearance, with
 * each image's and video's expansion (`ProcessorMixin.get_text_with_replacements`: one regex pass, so the
 * inserted tokens are never re-matched). Then tokenize the result as a whole; the timestamps are plain text.
 * @throws ImageError (`bad_source`) when the placeholder counts and the media disagree.
 */
export function expandGemma4Prompt(
  text: string,
  media: { images?: readonly number[]; videos?: readonly Gemma4VideoPrompt[] },
  tokens: Gemma4VisionTokens = GEMMA4_VISION_TOKENS,
): string {
  const images = media.images ?? [], videos = media.videos ?? [];
  let nImage = 0, nVideo = 0, out = "", last = 0;
  for (let i = 0; i < text.length;) {
    const isImage = text.startsWith(tokens.imageToken, i), isVideo = !isImage && text.startsWith(tokens.videoToken, i);
    if (!isImage && !isVideo) {
      i++;
      continue;
    }
    out += text.slice(last, i);
    if (isImage) {
      if (nImage >= images.length) break;
      out += gemma4ImagePromptText(images[nImage++], tokens);
      i += tokens.imageToken.length;
    } else {
      if (nVideo >= videos.length) break;
      const v = videos[nVideo++];
      out += gemma4VideoPromptText(v.numSoftTokens, v.timestamps, tokens);
      i += tokens.videoToken.length;
    }
    last = i;
  }
  const count = (t: string) => text.split(t).length - 1;
  if (count(tokens.imageToken) !== images.length || count(tokens.videoToken) !== videos.length) {
    throw new ImageError(
      "expandGemma4Prompt",
      "bad_source",
      `the prompt has ${count(tokens.imageToken)} ${tokens.imageToken} and ${count(tokens.videoToken)} ` +
        `${tokens.videoToken} placeholders but ${images.length} image(s) and ${videos.length} video(s) were given`,
      { hint: `each image or video part becomes one placeholder; do not write them in text parts` },
    );
  }
  return out + text.slice(last);
}
