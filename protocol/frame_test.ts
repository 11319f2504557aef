// Tests for the frame codec: round trips, every way of splitting the bytes, and each kind of invalid input.

import assert from "node:assert/strict";
import {
  encodeFrame,
  type Frame,
  FRAME_DATA,
  FRAME_JSON,
  FrameDecoder,
  FrameError,
  MAX_FRAME_BYTES,
  MAX_JSON_DEPTH,
} from "./frame.ts";
import { concatBytes } from "./bytes.ts";

/** A small seeded generator (mulberry32), so the random splits are repeatable. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Feeds `bytes` to a fresh decoder cut at `cuts` and returns every frame it produced. */
function decodeInPieces(bytes: Uint8Array, cuts: number[]): Frame[] {
  const decoder = new FrameDecoder();
  const frames: Frame[] = [];
  let start = 0;
  for (const cut of [...cuts, bytes.length]) {
    frames.push(...decoder.push(bytes.slice(start, cut)));
    start = cut;
  }
  assert.equal(decoder.idle, true, "decoder holds no partial frame after whole frames");
  return frames;
}

/** A raw frame: 4-byte big-endian length of `body`, then `body` (which starts with the type byte). */
function rawFrame(body: number[] | Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, 4);
  return out;
}

/** Asserts that pushing `bytes` into a fresh decoder throws a FrameError whose message matches `reason`. */
function assertFrameError(bytes: Uint8Array, reason: RegExp, options?: { maxFrameBytes?: number }): void {
  const decoder = new FrameDecoder(options);
  assert.throws(() => decoder.push(bytes), (error: unknown) => {
    assert.ok(error instanceof FrameError, `expected FrameError, got ${error}`);
    assert.equal(error.name, "FrameError");
    assert.match(error.message, reason);
    return true;
  });
}

const allBytes = Uint8Array.from({ length: 256 }, (_, i) => i);
const unicodeMessage = { id: 7, op: "DOWNLOAD", path: "docs/naïve café/日本語/🎉.txt", note: '\u0000\n"\\' };

Deno.test("a JSON frame round-trips and has no data", () => {
  const bytes = encodeFrame({ id: 1, op: "HELLO", version: 1 });
  assert.equal(bytes[4], FRAME_JSON);
  assert.equal(new DataView(bytes.buffer).getUint32(0), bytes.length - 4);
  const frames = new FrameDecoder().push(bytes);
  assert.deepEqual(frames, [{ message: { id: 1, op: "HELLO", version: 1 } }]);
  assert.equal("data" in frames[0], false);
});

Deno.test("a JSON frame with non-ASCII text and escapes round-trips", () => {
  const [frame] = new FrameDecoder().push(encodeFrame(unicodeMessage));
  assert.deepEqual(frame.message, unicodeMessage);
});

Deno.test("a data frame with empty data round-trips with an empty Uint8Array", () => {
  const bytes = encodeFrame({ re: 3, ok: true }, new Uint8Array());
  assert.equal(bytes[4], FRAME_DATA);
  const [frame] = new FrameDecoder().push(bytes);
  assert.deepEqual(frame.message, { re: 3, ok: true });
  assert.ok(frame.data instanceof Uint8Array);
  assert.equal(frame.data.length, 0);
});

Deno.test("a data frame carrying every byte value round-trips exactly", () => {
  const [frame] = new FrameDecoder().push(encodeFrame(unicodeMessage, allBytes));
  assert.deepEqual(frame.message, unicodeMessage);
  assert.deepEqual(frame.data, allBytes);
});

Deno.test("decoded data is a copy: changing the input buffer afterwards does not change it", () => {
  const bytes = encodeFrame({ op: "PUT" }, allBytes);
  const [frame] = new FrameDecoder().push(bytes);
  bytes.fill(0);
  assert.deepEqual(frame.data, allBytes);
});

Deno.test("frames decode the same when fed one byte at a time", () => {
  const stream = concat(
    encodeFrame(unicodeMessage),
    encodeFrame({ re: 1 }, allBytes),
    encodeFrame({ a: [] }),
  );
  const cuts = Array.from({ length: stream.length - 1 }, (_, i) => i + 1);
  const frames = decodeInPieces(stream, cuts);
  assert.deepEqual(frames, [
    { message: unicodeMessage },
    { message: { re: 1 }, data: allBytes },
    { message: { a: [] } },
  ]);
});

Deno.test("a data frame decodes the same when split in two at every position", () => {
  const bytes = encodeFrame(unicodeMessage, allBytes);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const frames = decodeInPieces(bytes, [cut]);
    assert.equal(frames.length, 1, `split at ${cut}`);
    assert.deepEqual(frames[0].message, unicodeMessage, `split at ${cut}`);
    assert.deepEqual(frames[0].data, allBytes, `split at ${cut}`);
  }
});

Deno.test("a stream of many frames decodes the same under 200 random splits", () => {
  const next = random(42);
  const expected: Frame[] = [];
  for (let i = 0; i < 30; i++) {
    const message = { id: i, text: "x".repeat(Math.floor(next() * 50)) };
    const data = i % 3 === 0 ? undefined : allBytes.slice(0, Math.floor(next() * 256));
    expected.push(data === undefined ? { message } : { message, data });
  }
  const stream = concat(...expected.map((f) => encodeFrame(f.message, f.data)));
  for (let round = 0; round < 200; round++) {
    const cuts: number[] = [];
    for (let at = 0; at < stream.length;) {
      at += 1 + Math.floor(next() * (round % 2 === 0 ? 8 : 400));
      if (at < stream.length) cuts.push(at);
    }
    assert.deepEqual(decodeInPieces(stream, cuts), expected, `round ${round}`);
  }
});

Deno.test("several whole frames in one piece all come out of one push, in order", () => {
  const stream = concat(encodeFrame({ n: 1 }), encodeFrame({ n: 2 }, allBytes), encodeFrame({ n: 3 }));
  const frames = new FrameDecoder().push(stream);
  assert.deepEqual(frames.map((f) => f.message.n), [1, 2, 3]);
});

Deno.test("idle is true only between frames", () => {
  const decoder = new FrameDecoder();
  const bytes = encodeFrame({ hello: "world" });
  assert.equal(decoder.idle, true);
  assert.deepEqual(decoder.push(new Uint8Array()), []);
  assert.equal(decoder.idle, true, "an empty push changes nothing");
  decoder.push(bytes.subarray(0, 2));
  assert.equal(decoder.idle, false, "half a header is buffered");
  decoder.push(bytes.subarray(2, 4));
  assert.equal(decoder.idle, false, "a whole header without its body");
  decoder.push(bytes.subarray(4, bytes.length - 1));
  assert.equal(decoder.idle, false, "all but the last byte");
  assert.equal(decoder.push(bytes.subarray(bytes.length - 1)).length, 1);
  assert.equal(decoder.idle, true);
});

Deno.test("a frame of length 0 is a FrameError", () => {
  assertFrameError(new Uint8Array([0, 0, 0, 0]), /empty frame/);
});

Deno.test("a length over the limit is refused from the 4-byte header alone", () => {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, MAX_FRAME_BYTES + 1);
  assertFrameError(header, /exceeds the limit/);
  new DataView(header.buffer).setUint32(0, 0xffffffff);
  assertFrameError(header, /4294967295 bytes exceeds/);
});

Deno.test("maxFrameBytes accepts a frame of exactly the limit and refuses one byte more", () => {
  const small = encodeFrame({ pad: "x".repeat(80) });
  const limit = small.length - 4;
  assert.equal(new FrameDecoder({ maxFrameBytes: limit }).push(small).length, 1);
  const bigger = encodeFrame({ pad: "x".repeat(81) });
  assertFrameError(bigger.subarray(0, 4), new RegExp(`${limit + 1} bytes exceeds the limit of ${limit}`), {
    maxFrameBytes: limit,
  });
});

Deno.test("an unknown frame type is a FrameError", () => {
  for (const type of [0, 3, 255]) assertFrameError(rawFrame([type, 0x7b, 0x7d]), new RegExp(`type ${type}`));
});

Deno.test("a body that is not valid UTF-8 is a FrameError", () => {
  // {"a":"<0xff>"} — 0xff never appears in UTF-8.
  const body = [FRAME_JSON, 0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d];
  assertFrameError(rawFrame(body), /not valid UTF-8 JSON/);
  // An overlong encoding of "/" (0xc0 0xaf) must not decode to "/".
  assertFrameError(rawFrame([FRAME_JSON, 0x22, 0xc0, 0xaf, 0x22]), /not valid UTF-8 JSON/);
});

Deno.test("a body that is not JSON is a FrameError", () => {
  assertFrameError(rawFrame([FRAME_JSON, ...new TextEncoder().encode("{id: 1}")]), /not valid UTF-8 JSON/);
  assertFrameError(rawFrame([FRAME_JSON]), /not valid UTF-8 JSON/);
});

Deno.test("JSON that is not an object is a FrameError", () => {
  for (const text of ["[1,2]", "null", "3", '"op"', "true"]) {
    assertFrameError(rawFrame([FRAME_JSON, ...new TextEncoder().encode(text)]), /not a JSON object/);
  }
});

Deno.test("a data frame whose JSON length overruns the frame is a FrameError", () => {
  const json = new TextEncoder().encode("{}");
  const body = new Uint8Array(5 + json.length);
  body[0] = FRAME_DATA;
  new DataView(body.buffer).setUint32(1, json.length + 1);
  body.set(json, 5);
  assertFrameError(rawFrame(body), /overruns/);
  new DataView(body.buffer).setUint32(1, 0xffffffff);
  assertFrameError(rawFrame(body), /overruns/);
});

Deno.test("a data frame too short to hold its JSON length is a FrameError", () => {
  assertFrameError(rawFrame([FRAME_DATA, 0, 0]), /too short/);
});

Deno.test("an invalid frame after a valid one in the same piece still throws", () => {
  const decoder = new FrameDecoder();
  assert.throws(() => decoder.push(concat(encodeFrame({ ok: 1 }), rawFrame([9]))), FrameError);
});

/** Joins byte arrays (the tests' shorthand for {@linkcode concatBytes}). */
const concat = (...parts: Uint8Array[]): Uint8Array => concatBytes(parts);

Deno.test("JSON nested deeper than MAX_JSON_DEPTH is refused before parsing; brackets in strings do not count", () => {
  const nested = (depth: number) => `{"a":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`;
  const frame = (json: string) => encodeFrame(JSON.parse(json));
  new FrameDecoder().push(frame(nested(MAX_JSON_DEPTH)));
  const deep = new TextEncoder().encode(nested(MAX_JSON_DEPTH + 1));
  const raw = new Uint8Array(5 + deep.length);
  new DataView(raw.buffer).setUint32(0, deep.length + 1);
  raw[4] = FRAME_JSON;
  raw.set(deep, 5);
  assertFrameError(raw, new RegExp(`nested deeper than ${MAX_JSON_DEPTH} levels`));
  const tricky = { s: "[[[[".repeat(100) + '\\"{{{{'.repeat(100), t: ['"]]]]"'] };
  assert.deepEqual(new FrameDecoder().push(encodeFrame(tricky))[0].message, tricky);
});

Deno.test("a decoder's frame limit can be raised after it was created (e.g. after login)", () => {
  const decoder = new FrameDecoder({ maxFrameBytes: 100 });
  const big = encodeFrame({ x: "y".repeat(200) });
  assert.throws(() => new FrameDecoder({ maxFrameBytes: 100 }).push(big), /exceeds the limit of 100 bytes/);
  decoder.maxFrameBytes = 1000;
  assert.equal(decoder.maxFrameBytes, 1000);
  assert.equal(decoder.push(big).length, 1);
});
