import assert from "node:assert/strict";
import { GemmakitError } from "../../src/errors.ts";
import { type StreamDecodable, StreamDecoder } from "../../src/tokenizer/stream_decoder.ts";
import { gemma3, REFERENCE, rng } from "./gemma3.ts";

const BYTE0 = 238; // <0x00>; checked against tokenizer.json below
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Streams `ids` through a fresh decoder; returns the chunks, the flush last. */
function stream(tok: StreamDecodable, ids: number[], skipSpecialTokens = false): string[] {
  const decoder = new StreamDecoder(tok, { skipSpecialTokens });
  return [...ids.map((id) => decoder.push(id)), decoder.flush()];
}

/** Random ids that over-sample what is hard to stream: byte tokens, spelled characters, specials. */
function randomIds(next: () => number, vocabSize: number, n: number): number[] {
  const spelled = ["€", "😀", "𓀀", "é", "中", "👨‍👩‍👧", "\u2028"];
  const ids: number[] = [];
  while (ids.length < n) {
    const r = next();
    if (r < 0.3) ids.push(BYTE0 + Math.floor(next() * 256));
    else if (r < 0.45) {
      const text = spelled[Math.floor(next() * spelled.length)];
      for (const b of new TextEncoder().encode(text)) ids.push(BYTE0 + b);
    } else if (r < 0.52) ids.push([0, 1, 2, 3, 105, 106, 255999, 256000, 262144][Math.floor(next() * 9)]);
    else if (r < 0.54) ids.push(vocabSize + Math.floor(next() * 100)); // past the vocabulary: dropped
    else ids.push(Math.floor(next() * vocabSize));
  }
  return ids;
}

Deno.test("byte tokens are held until their run ends; the run then comes out whole", async () => {
  const tok = await gemma3();
  assert.equal(tok.idToToken(BYTE0), "<0x00>");
  const euro = [0xE2, 0x82, 0xAC].map((b) => BYTE0 + b);
  const x = tok.encode("x", { addSpecialTokens: false });
  assert.equal(x.length, 1);
  const decoder = new StreamDecoder(tok);
  assert.deepEqual(euro.map((id) => decoder.push(id)), ["", "", ""]);
  assert.equal(decoder.push(x[0]), "€x");
  assert.equal(decoder.flush(), "");
  // An incomplete tail comes out at flush as U+FFFD, one per byte, as decode writes it.
  assert.deepEqual(stream(tok, euro.slice(0, 2)), ["", "", "\uFFFD\uFFFD"]);
  // A valid character followed by a stray byte in the same run is all U+FFFD in decode, so nothing of the
  // run may leave early.
  const chunks = stream(tok, [...euro, BYTE0 + 0xE2, x[0]]);
  assert.deepEqual(chunks, ["", "", "", "", "\uFFFD".repeat(4) + "x", ""]);
});

Deno.test("streaming real text gives back the text, chunk by chunk, without broken characters", async () => {
  const tok = await gemma3();
  for (const c of REFERENCE.encode) {
    const chunks = stream(tok, c.ids_no_special);
    assert.equal(chunks.join(""), c.text, JSON.stringify(c.text));
    for (const chunk of chunks) {
      assert.ok(!LONE_SURROGATE.test(chunk), `lone surrogate in ${JSON.stringify(chunk)}`);
      assert.ok(!chunk.includes("\uFFFD"), `U+FFFD in ${JSON.stringify(chunk)} of ${JSON.stringify(c.text)}`);
    }
  }
});

Deno.test("the chunks of a stream join to exactly decode(allIds) on random id sequences", async () => {
  const tok = await gemma3();
  const next = rng(20250601);
  let checked = 0;
  for (let trial = 0; trial < 300; trial++) {
    const ids = randomIds(next, tok.vocabSize, 1 + Math.floor(next() * 80));
    for (const skip of [false, true]) {
      const expected = tok.decode(ids, { skipSpecialTokens: skip });
      assert.equal(
        stream(tok, ids, skip).join(""),
        expected,
        `seed trial ${trial}, skip ${skip}: ${JSON.stringify(ids)}`,
      );
      checked++;
    }
  }
  // The reference's random sequences too, against the Rust crate's text directly.
  for (const c of REFERENCE.decode) {
    assert.equal(stream(tok, c.ids).join(""), c.text, JSON.stringify(c.ids));
    assert.equal(stream(tok, c.ids, true).join(""), c.text_skip_special, JSON.stringify(c.ids));
    checked += 2;
  }
  assert.ok(checked >= 600);
});

Deno.test("a skipped special token inside a byte run does not split the run", async () => {
  const tok = await gemma3();
  const ids = [BYTE0 + 0xE2, 106, BYTE0 + 0x82, BYTE0 + 0xAC, tok.tokenToId("x")!];
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), "€x");
  assert.equal(stream(tok, ids, true).join(""), "€x");
  assert.equal(stream(tok, ids, false).join(""), "\uFFFD<end_of_turn>\uFFFD\uFFFDx");
});

Deno.test("each push decodes O(1) ids, not the whole sequence", async () => {
  const tok = await gemma3();
  let decodedIds = 0;
  const counting: StreamDecodable = {
    decode: (ids, options) => {
      decodedIds += ids.length;
      return tok.decode(ids, options);
    },
    idToToken: (id) => tok.idToToken(id),
    isByteFallbackId: (id) => tok.isByteFallbackId(id),
    isSpecialId: (id) => tok.isSpecialId(id),
  };
  const text = "Streaming 🤗 text in 日本語 and 𓀀 with bytes. ".repeat(200);
  const ids = tok.encode(text, { addSpecialTokens: false });
  assert.equal(stream(counting, ids).join(""), text);
  assert.ok(decodedIds < 6 * ids.length, `${decodedIds} ids decoded for ${ids.length} tokens`);
});

Deno.test("a stream decoder is reusable after flush, and rejects ids that are not ids", async () => {
  const tok = await gemma3();
  const decoder = new StreamDecoder(tok);
  const hello = tok.encode("Hello world", { addSpecialTokens: false });
  for (let round = 0; round < 2; round++) {
    assert.equal(hello.map((id) => decoder.push(id)).join("") + decoder.flush(), "Hello world");
  }
  assert.throws(() => decoder.push(-3), GemmakitError);
  assert.throws(() => decoder.push(2.5), GemmakitError);
});
