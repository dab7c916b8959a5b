/**
 * The Gemma 3 image processor, as transformers 5.17 runs it by default: `AutoProcessor` / `AutoImageProcessor`
 * on a Gemma 3 checkpoint give `Gemma3ImageProcessor`, the torchvision backend (the `...Pil` class is only the
 * fallback when torchvision is missing). Per image:
 *
 * 1. optional pan-and-scan: crops cut from the 8-bit image by `pan_and_scan_batched`'s rules, kept after the
 *    original (`[original, crop 1, ..., crop n]`), each then resized like an image;
 * 2. resize to `size` (896x896 for Gemma 3): antialiased bilinear on uint8, rounded back to uint8 (resize.ts);
 * 3. rescale by 1/255 and normalize with mean/std 0.5, fused as torchvision does: `(x - mean/r) / (std/r)` in
 *    float32, so the values are bit-identical to transformers' `pixel_values`;
 * 4. channel-first float32 `[nImages, 3, H, W]`, plus `num_crops` per input image.
 *
 * The prompt side needs `num_crops`: Gemma3Processor replaces each image placeholder with
 * {@link gemma3ImagePromptText}'s text.
 * @module
 */
import { ImageError } from "../../errors.ts";
import type { RgbImage } from "../../vision/image.ts";
import { bool, checkImage, nested, num, triple, valueTable } from "../../vision/processor_config.ts";
import { cropU8, resizeBilinearAntialias, type U8Image } from "../../vision/resize.ts";

const OP = "preprocessGemma3";
const CONFIG = "Gemma3ImageProcessorConfig";

/** PILImageResampling.BILINEAR, the only filter Gemma 3 checkpoints use (and the only one implemented). */
const RESAMPLE_BILINEAR = 2;

/** A crop box in pixels of the (EXIF-oriented) input image. `width`/`height` are already clipped to it. */
export interface CropBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Pan-and-scan's knobs (transformers' `pan_and_scan_*` kwargs). */
export interface PanAndScanOptions {
  minCropSize: number;
  maxNumCrops: number;
  minRatioToActivate: number;
}

/** Per-call overrides of {@link Gemma3ImageProcessorConfig}; unset fields keep the config's value. */
export interface Gemma3ProcessorOverrides {
  /** Output side; Gemma 3 checkpoints use 896. */
  imageSize?: number | { height: number; width: number };
  doPanAndScan?: boolean;
  panAndScanMinCropSize?: number;
  panAndScanMaxNumCrops?: number;
  panAndScanMinRatioToActivate?: number;
  imageMean?: readonly number[];
  imageStd?: readonly number[];
  rescaleFactor?: number;
  doResize?: boolean;
  doRescale?: boolean;
  doNormalize?: boolean;
}

/** What {@link preprocessGemma3} returns. */
export interface Gemma3PixelValues {
  /** `[nImages, 3, height, width]` float32, channel-first; crops follow their original image. */
  pixelValues: Float32Array;
  shape: [number, number, number, number];
  /** For each INPUT image, how many crops follow it in `pixelValues` (0 without pan-and-scan). */
  numCrops: number[];
}

/**
 * The processor's settings, read once from what transformers writes: `preprocessor_config.json` (image
 * processor fields) and, optionally, `processor_config.json` (`image_seq_length`; transformers 5 may also nest
 * the image processor's fields under `image_processor` there). Unset or `null` fields take the values
 * transformers would use: the class defaults (`Gemma3ImageProcessor`) and the processor call defaults
 * (`Gemma3ProcessorKwargs`: pan-and-scan off, min crop 256, max 4 crops, min ratio 1.2).
 */
export class Gemma3ImageProcessorConfig {
  readonly size: { height: number; width: number };
  readonly doResize: boolean;
  readonly doRescale: boolean;
  readonly rescaleFactor: number;
  readonly doNormalize: boolean;
  readonly imageMean: readonly number[];
  readonly imageStd: readonly number[];
  readonly doPanAndScan: boolean;
  readonly panAndScanMinCropSize: number;
  readonly panAndScanMaxNumCrops: number;
  readonly panAndScanMinRatioToActivate: number;
  /** Soft tokens per image in the prompt (Gemma3Processor's `image_seq_length`, 256 for Gemma 3). */
  readonly imageSeqLength: number;

  private constructor(fields: Omit<Gemma3ImageProcessorConfig, "with">) {
    this.size = fields.size;
    this.doResize = fields.doResize;
    this.doRescale = fields.doRescale;
    this.rescaleFactor = fields.rescaleFactor;
    this.doNormalize = fields.doNormalize;
    this.imageMean = fields.imageMean;
    this.imageStd = fields.imageStd;
    this.doPanAndScan = fields.doPanAndScan;
    this.panAndScanMinCropSize = fields.panAndScanMinCropSize;
    this.panAndScanMaxNumCrops = fields.panAndScanMaxNumCrops;
    this.panAndScanMinRatioToActivate = fields.panAndScanMinRatioToActivate;
    this.imageSeqLength = fields.imageSeqLength;
    validate(this);
  }

  /** Parse `preprocessor_config.json` (and optionally `processor_config.json`) as transformers writes them. */
  static fromPreprocessorConfig(
    preprocessor: Record<string, unknown> = {},
    processor: Record<string, unknown> = {},
  ): Gemma3ImageProcessorConfig {
    const j = { ...nested(processor, "image_processor"), ...preprocessor };
    const resample = num(CONFIG, j, "resample", RESAMPLE_BILINEAR);
    if (resample !== RESAMPLE_BILINEAR) {
      throw new ImageError("Gemma3ImageProcessorConfig", "bad_config", `resample=${resample} is not supported`, {
        hint: "gemmakit implements bilinear (resample=2), the filter every Gemma 3 checkpoint uses",
      });
    }
    let size = { height: 224, width: 224 }; // Gemma3ImageProcessor.size
    const s = j.size;
    if (s !== undefined && s !== null) {
      const so = s as Record<string, unknown>;
      if (typeof so === "object" && typeof so.height === "number" && typeof so.width === "number") {
        size = { height: so.height, width: so.width };
      } else {
        throw new ImageError(
          "Gemma3ImageProcessorConfig",
          "bad_config",
          `size must be {height, width}, got ${JSON.stringify(s)}`,
        );
      }
    }
    return new Gemma3ImageProcessorConfig({
      size,
      doResize: bool(CONFIG, j, "do_resize", true),
      doRescale: bool(CONFIG, j, "do_rescale", true),
      rescaleFactor: num(CONFIG, j, "rescale_factor", 1 / 255),
      doNormalize: bool(CONFIG, j, "do_normalize", true),
      imageMean: triple(CONFIG, j, "image_mean", [0.5, 0.5, 0.5]), // IMAGENET_STANDARD_MEAN
      imageStd: triple(CONFIG, j, "image_std", [0.5, 0.5, 0.5]),
      doPanAndScan: bool(CONFIG, j, "do_pan_and_scan", false),
      panAndScanMinCropSize: num(CONFIG, j, "pan_and_scan_min_crop_size", 256),
      panAndScanMaxNumCrops: num(CONFIG, j, "pan_and_scan_max_num_crops", 4),
      panAndScanMinRatioToActivate: num(CONFIG, j, "pan_and_scan_min_ratio_to_activate", 1.2),
      imageSeqLength: num(CONFIG, processor, "image_seq_length", num(CONFIG, j, "image_seq_length", 256)),
    });
  }

  /** Gemma 3's shipped settings (896x896, mean/std 0.5, pan-and-scan off). */
  static gemma3Default(): Gemma3ImageProcessorConfig {
    return Gemma3ImageProcessorConfig.fromPreprocessorConfig({ size: { height: 896, width: 896 } });
  }

  /** A copy with some fields replaced (validated again). */
  with(o: Gemma3ProcessorOverrides): Gemma3ImageProcessorConfig {
    const size = o.imageSize === undefined
      ? this.size
      : typeof o.imageSize === "number"
      ? { height: o.imageSize, width: o.imageSize }
      : o.imageSize;
    return new Gemma3ImageProcessorConfig({
      size,
      doResize: o.doResize ?? this.doResize,
      doRescale: o.doRescale ?? this.doRescale,
      rescaleFactor: o.rescaleFactor ?? this.rescaleFactor,
      doNormalize: o.doNormalize ?? this.doNormalize,
      imageMean: o.imageMean ?? this.imageMean,
      imageStd: o.imageStd ?? this.imageStd,
      doPanAndScan: o.doPanAndScan ?? this.doPanAndScan,
      panAndScanMinCropSize: o.panAndScanMinCropSize ?? this.panAndScanMinCropSize,
      panAndScanMaxNumCrops: o.panAndScanMaxNumCrops ?? this.panAndScanMaxNumCrops,
      panAndScanMinRatioToActivate: o.panAndScanMinRatioToActivate ?? this.panAndScanMinRatioToActivate,
      imageSeqLength: this.imageSeqLength,
    });
  }
}

/** Largest side of the processor's output square (Gemma 3 uses 896). */
const MAX_SIZE = 4096;

function validate(c: Gemma3ImageProcessorConfig): void {
  const bad = (msg: string) => new ImageError("Gemma3ImageProcessorConfig", "bad_config", msg);
  const { height, width } = c.size;
  // Bounded: size sizes every resize output and pixel tensor (a 2^53 size must not reach an allocation).
  if (
    !(Number.isInteger(height) && Number.isInteger(width) && height > 0 && width > 0 && height * width <= MAX_SIZE ** 2)
  ) {
    throw bad(`size must be positive integers with height*width <= ${MAX_SIZE}², got ${height}x${width}`);
  }
  if (!(c.rescaleFactor > 0)) throw bad(`rescale_factor must be > 0, got ${c.rescaleFactor}`);
  if (c.imageMean.length !== 3 || c.imageStd.length !== 3) throw bad("image_mean and image_std need 3 values");
  if (c.imageStd.some((s) => s === 0)) throw bad("image_std must not contain 0");
  if (!(Number.isInteger(c.panAndScanMinCropSize) && c.panAndScanMinCropSize > 0 && c.panAndScanMinCropSize <= 65536)) {
    throw bad(`pan_and_scan_min_crop_size must be an integer in 1..65536, got ${c.panAndScanMinCropSize}`);
  }
  // Each crop is resized to `size` and encoded: the crop count bounds the work of one image.
  if (!(Number.isInteger(c.panAndScanMaxNumCrops) && c.panAndScanMaxNumCrops >= 2 && c.panAndScanMaxNumCrops <= 64)) {
    throw bad(`pan_and_scan_max_num_crops must be an integer in 2..64, got ${c.panAndScanMaxNumCrops}`);
  }
  if (!(c.panAndScanMinRatioToActivate > 0)) {
    throw bad(`pan_and_scan_min_ratio_to_activate must be > 0, got ${c.panAndScanMinRatioToActivate}`);
  }
  if (!(Number.isInteger(c.imageSeqLength) && c.imageSeqLength > 0 && c.imageSeqLength <= 1 << 16)) {
    throw bad(`image_seq_length must be an integer in 1..65536, got ${c.imageSeqLength}`);
  }
}

/**
 * Pan-and-scan's crop boxes for a `width` x `height` image, by `Gemma3ImageProcessor.pan_and_scan_batched`'s
 * rules: only when the long/short ratio reaches `minRatioToActivate`; the crop count is the rounded ratio, at
 * most `floor(long / minCropSize)`, clamped to [2, maxNumCrops]; crops of `ceil(side / n)` laid from the
 * origin (the last one clipped to the image); none when a crop side would fall under `minCropSize`.
 */
export function panAndScanCrops(width: number, height: number, o: PanAndScanOptions): CropBox[] {
  let nw: number, nh: number;
  if (width >= height) {
    if (width / height < o.minRatioToActivate) return [];
    nw = Math.floor(width / height + 0.5); // half rounds up, as Python's floor(x + 0.5)
    nw = Math.min(Math.floor(width / o.minCropSize), nw);
    nw = Math.min(o.maxNumCrops, Math.max(2, nw));
    nh = 1;
  } else {
    if (height / width < o.minRatioToActivate) return [];
    nh = Math.floor(height / width + 0.5);
    nh = Math.min(Math.floor(height / o.minCropSize), nh);
    nh = Math.min(o.maxNumCrops, Math.max(2, nh));
    nw = 1;
  }
  const cw = Math.ceil(width / nw), ch = Math.ceil(height / nh);
  if (Math.min(cw, ch) < o.minCropSize) return [];
  const boxes: CropBox[] = [];
  for (let i = 0; i < nh; i++) {
    for (let j = 0; j < nw; j++) {
      const x = cw * j, y = ch * i;
      boxes.push({ x, y, width: Math.min(cw, width - x), height: Math.min(ch, height - y) });
    }
  }
  return boxes;
}

/**
 * Preprocess images for Gemma 3's vision tower, like transformers' `Gemma3ImageProcessor` (torchvision
 * backend, the default) called through `Gemma3Processor`.
 *
 * @param images RGB8 images (from {@link loadImage}), any sizes.
 * @param config settings from the checkpoint (`Gemma3ImageProcessorConfig.fromPreprocessorConfig`); default:
 *   Gemma 3's shipped 896x896 settings.
 * @param overrides per-call changes, e.g. `{ doPanAndScan: true }`.
 * @returns `pixelValues` `[n, 3, H, W]` float32 with each image followed by its crops, and `numCrops` per input
 *   image (pass those to {@link gemma3ImagePromptText} to build the prompt).
 * @throws ImageError on an empty list, a zero-size image, or data of the wrong length.
 */
export function preprocessGemma3(
  images: readonly RgbImage[],
  config: Gemma3ImageProcessorConfig = Gemma3ImageProcessorConfig.gemma3Default(),
  overrides: Gemma3ProcessorOverrides = {},
): Gemma3PixelValues {
  const c = Object.keys(overrides).length ? config.with(overrides) : config;
  if (images.length === 0) throw new ImageError(OP, "bad_source", "no images given");
  images.forEach((img, i) => checkImage(OP, img, i));

  const pas: PanAndScanOptions = {
    minCropSize: c.panAndScanMinCropSize,
    maxNumCrops: c.panAndScanMaxNumCrops,
    minRatioToActivate: c.panAndScanMinRatioToActivate,
  };
  const pieces: U8Image[] = [];
  const numCrops: number[] = [];
  for (const img of images) {
    const u8: U8Image = { width: img.width, height: img.height, channels: 3, data: img.data };
    if (c.doPanAndScan) {
      // The torchvision processor resizes the original and its crops even when do_resize is false.
      const crops = panAndScanCrops(img.width, img.height, pas).map((b) => cropU8(u8, b.x, b.y, b.width, b.height));
      numCrops.push(crops.length);
      for (const p of [u8, ...crops]) pieces.push(resizeBilinearAntialias(p, c.size.width, c.size.height));
    } else {
      numCrops.push(0);
      pieces.push(c.doResize ? resizeBilinearAntialias(u8, c.size.width, c.size.height) : u8);
    }
  }
  const { width: w, height: h } = pieces[0];
  if (pieces.some((p) => p.width !== w || p.height !== h)) {
    throw new ImageError(OP, "bad_config", "with do_resize=false every image must have the same size to stack");
  }

  const plane = w * h;
  const out = new Float32Array(pieces.length * 3 * plane);
  const lut = valueTable(c); // per channel, per byte value
  pieces.forEach((p, n) => {
    const base = n * 3 * plane;
    for (let i = 0; i < plane; i++) {
      for (let ch = 0; ch < 3; ch++) out[base + ch * plane + i] = lut[ch * 256 + p.data[i * 3 + ch]];
    }
  });
  return { pixelValues: out, shape: [pieces.length, 3, h, w], numCrops };
}

/** The special-token strings the Gemma 3 tokenizer uses around an image. */
export interface Gemma3ImageTokens {
  /** `<start_of_image>` (the placeholder a prompt carries per image) */
  boiToken: string;
  /** `<image_soft_token>` (repeated imageSeqLength times; the vision tower's outputs go there) */
  imageToken: string;
  /** `<end_of_image>` */
  eoiToken: string;
}

/** Gemma 3's image token strings. */
export const GEMMA3_IMAGE_TOKENS: Gemma3ImageTokens = {
  boiToken: "<start_of_image>",
  imageToken: "<image_soft_token>",
  eoiToken: "<end_of_image>",
};

/**
 * The text Gemma3Processor puts in place of one image's `<start_of_image>` placeholder
 * (`Gemma3Processor.replace_image_token`): `"\n\n<start_of_image>" + imageToken * imageSeqLength +
 * "<end_of_image>\n\n"`, and with pan-and-scan crops `"Here is the original image " + that + " and here are some
 * crops to help you see better " + that (once per crop, joined by spaces)`.
 */
export function gemma3ImagePromptText(
  numCrops: number,
  imageSeqLength = 256,
  tokens: Gemma3ImageTokens = GEMMA3_IMAGE_TOKENS,
): string {
  const full = `\n\n${tokens.boiToken}${tokens.imageToken.repeat(imageSeqLength)}${tokens.eoiToken}\n\n`;
  if (!numCrops) return full;
  return `Here is the original image ${full} and here are some crops to help you see better ` +
    Array(numCrops).fill(full).join(" ");
}
