/**
 * The tiny Gemma 4 vision fixture (tests/fixtures/make_gemma4_vision_fixtures.py): where it is, its expected.json,
 * and the tensors of expected.safetensors (transformers' pixel values / position ids, tower and embedder outputs,
 * logits).
 * @module
 */
import { openSafetensors } from "../../src/formats/safetensors.ts";
import type { Gemma4PromptMedia } from "../../src/models/gemma4/multimodal.ts";
import type { VisionBatch } from "../../src/models/gemma4/vision.ts";

export const G4_VISION_FIXTURE = new URL("../fixtures/gemma4-vision-tiny", import.meta.url).pathname;

export interface G4PromptRecord {
  text: string;
  input_ids: number[];
  mm_token_type_ids: number[];
  image_keys: string[];
  video_frames: number;
  logits_shape: number[];
  greedy: { max_new_tokens: number; ids: number[]; text: string };
}
export interface G4VisionExpected {
  token_ids: Record<string, number>;
  images: Record<string, { num_soft_tokens: number; source_hw: number[] }>;
  expected_tensors: Record<string, number[]>;
  one_image: G4PromptRecord;
  two_images: G4PromptRecord;
  video: G4PromptRecord;
}

export const loadG4Expected = (): G4VisionExpected =>
  JSON.parse(Deno.readTextFileSync(`${G4_VISION_FIXTURE}/expected.json`));

/** One tensor of expected.safetensors as f32 or i32 values. */
export function fixtureTensor(name: string): Float32Array | Int32Array {
  using f = openSafetensors(`${G4_VISION_FIXTURE}/expected.safetensors`);
  const t = f.get(name);
  if (!t) throw new Error(`expected.safetensors has no ${name}`);
  const bytes = f.readBytes(name).slice();
  return t.dtype === "i32" || t.dtype === "I32" ? new Int32Array(bytes.buffer) : new Float32Array(bytes.buffer);
}

/** Images (by fixture key) as one batch, in order. */
export function imageBatch(keys: string[]): VisionBatch {
  const px = keys.map((k) => fixtureTensor(`image.${k}.pixel_values`));
  const pos = keys.map((k) => fixtureTensor(`image.${k}.position_ids`));
  const maxPatches = pos[0].length / 2;
  const pixelValues = new Float32Array(px.reduce((s, a) => s + a.length, 0));
  const positionIds = new Int32Array(pos.reduce((s, a) => s + a.length, 0));
  px.forEach((a, i) => pixelValues.set(a, i * a.length));
  pos.forEach((a, i) => positionIds.set(a, i * a.length));
  return { pixelValues, positionIds, count: keys.length, maxPatches };
}

/** The media of one of the fixture's prompts, as transformers' processor made them. */
export function promptMedia(rec: G4PromptRecord): Gemma4PromptMedia {
  if (rec.video_frames > 0) {
    const pos = fixtureTensor("video.position_ids");
    return {
      videoFrames: {
        pixelValues: fixtureTensor("video.pixel_values") as Float32Array,
        positionIds: pos,
        count: rec.video_frames,
        maxPatches: pos.length / 2 / rec.video_frames,
      },
    };
  }
  return { images: imageBatch(rec.image_keys) };
}
