/** Readers for tests/fixtures/images (written by tests/fixtures/make_image_fixtures.py). */
import { gunzipSync } from "fflate";
import { fileURLToPath } from "node:url";

export const IMAGES_DIR = fileURLToPath(new URL("../fixtures/images/", import.meta.url));

export interface ImageFixture {
  file: string;
  covers: string;
  format?: string;
  pilMode?: string;
  width?: number;
  height?: number;
  storedWidth?: number;
  storedHeight?: number;
  rgb?: string;
}

export interface ProcessorCase {
  case: string;
  images: string[];
  size: number;
  options: Record<string, unknown>;
  shape: number[];
  numCrops: number[];
  file: string;
}

export interface Expected {
  preprocessorConfig: Record<string, unknown>;
  images: Record<string, ImageFixture>;
  processor: ProcessorCase[];
  full896: { image: string; shape: number[]; sha256: string };
  panAndScanCrops: {
    height: number;
    width: number;
    minCropSize: number;
    maxNumCrops: number;
    minRatioToActivate: number;
    crops: { x: number; y: number; width: number; height: number }[];
  }[];
  promptTexts: { imageSeqLength: number; numCrops: number; text: string }[];
  rgbaOnWhite: { image: string; background: [number, number, number]; rgb: string };
}

export const expected: Expected = JSON.parse(Deno.readTextFileSync(IMAGES_DIR + "expected.json"));

export const fixturePath = (file: string) => IMAGES_DIR + file;
export const fixtureBytes = (file: string) => Deno.readFileSync(IMAGES_DIR + file);
export const gunzipFixture = (file: string) => gunzipSync(fixtureBytes(file));

/** Pillow's RGB8 for a fixture image (the transformers load_image route). */
export function pilRgb(name: string): { width: number; height: number; data: Uint8Array } {
  const f = expected.images[name];
  return { width: f.width!, height: f.height!, data: gunzipFixture(f.rgb!) };
}

export function f32Fixture(file: string): Float32Array {
  const b = gunzipFixture(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

/** The error a promise rejects with, checked to be a `type`. */
export async function rejected<T extends Error>(
  p: Promise<unknown>,
  type: abstract new (...args: never[]) => T,
): Promise<T> {
  try {
    await p;
  } catch (e) {
    if (e instanceof type) return e;
    throw new Error(`expected ${type.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
  throw new Error(`expected ${type.name}, but nothing was thrown`);
}
