/**
 * The tiny Gemma 3 vision fixture (tests/fixtures/make_gemma3_vision_fixtures.py): where it is, the shape of
 * its expected.json, and transformers' pixel values of a prompt.
 * @module
 */
import assert from "node:assert/strict";
import type { PromptImages } from "../../src/models/gemma3/multimodal.ts";

export const VISION_FIXTURE = new URL("../fixtures/gemma3-vision-tiny", import.meta.url).pathname;

export interface PromptRecord {
  input_ids: number[];
  token_type_ids: number[];
  image_keys: string[];
  pixel_values_shape: number[];
  last_logits: number[];
  argmax: number[];
  logits?: number[][];
  greedy: { ids: number[]; step_logits: number[][] };
}
export interface VisionExpected {
  images: Record<string, { shape: number[]; pixel_values: number[]; num_crops: number[] }>;
  vision: {
    tower_last_hidden_state_shape: number[];
    tower_last_hidden_state: number[];
    image_features_shape: number[];
    image_features: number[];
  };
  one_image: PromptRecord;
  two_images: PromptRecord;
  pan_and_scan: PromptRecord;
}

export const loadExpected = (): VisionExpected => JSON.parse(Deno.readTextFileSync(`${VISION_FIXTURE}/expected.json`));

/** The prompt's pixel values: the fixture's per-image records, concatenated in prompt order. */
export function promptImages(e: VisionExpected, rec: PromptRecord): PromptImages {
  const parts = rec.image_keys.map((k) => e.images[k]);
  const pixelValues = Float32Array.from(parts.flatMap((p) => p.pixel_values));
  const count = parts.reduce((n, p) => n + p.shape[0], 0);
  assert.equal(count, rec.pixel_values_shape[0]);
  return { pixelValues, count };
}
