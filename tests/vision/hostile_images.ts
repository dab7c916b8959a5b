/**
 * Builders of the hostile images the issue reported (decompression bombs, tiny files that declare huge sizes),
 * shared by the regression tests and the fuzzers' seeds.
 * @module
 */
import { zlibSync } from "fflate";

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** A PNG of `width` x `height` RGB8 whose IDAT holds `rawBytes` zeros, deflated (a bomb when rawBytes is large). */
export function pngWithRaw(width: number, height: number, rawBytes: number, colorType = 2): Uint8Array {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = colorType;
  return concat([
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", zlibSync(new Uint8Array(rawBytes), { level: 9 })),
    pngChunk("IEND", new Uint8Array()),
  ]);
}

/** A well-formed all-black RGB8 PNG of the given size (each row: filter byte 0, then zeros). */
export function blackPng(width: number, height: number): Uint8Array {
  return pngWithRaw(width, height, height * (1 + width * 3));
}

/** A GIF whose screen is `sw` x `sh` and whose one frame is `fw` x `fh`, with almost no image data. */
export function tinyGif(sw: number, sh: number, fw = 1, fh = 1): Uint8Array {
  const le = (n: number) => [n & 0xff, n >> 8];
  return new Uint8Array([
    ...new TextEncoder().encode("GIF89a"),
    ...le(sw),
    ...le(sh),
    0x80, // global colour table of 2 entries
    0,
    0,
    0,
    0,
    0,
    255,
    255,
    255,
    0x2c, // image descriptor
    0,
    0,
    0,
    0,
    ...le(fw),
    ...le(fh),
    0,
    2, // LZW minimum code size
    2,
    0x4c,
    0x01, // one sub-block: clear, 0, end
    0,
    0x3b,
  ]);
}

/** A baseline JPEG header (SOI, DQT-less SOF0, SOS) declaring `w` x `h` with no real scan data, then EOI. */
export function tinyJpeg(w: number, h: number): Uint8Array {
  return new Uint8Array([
    0xff,
    0xd8,
    0xff,
    0xc0,
    0,
    11,
    8,
    h >> 8,
    h & 0xff,
    w >> 8,
    w & 0xff,
    1,
    1,
    0x11,
    0,
    0xff,
    0xda,
    0,
    8,
    1,
    1,
    0,
    0,
    63,
    0,
    0x00,
    0xff,
    0xd9,
  ]);
}
