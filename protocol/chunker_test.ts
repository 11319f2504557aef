// Tests for protocol/chunker.ts: cut determinism, size bounds, streaming equivalence, edit locality, files.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Chunk,
  type ChunkerOptions,
  chunkFile,
  chunkLengths,
  chunkStream,
  DEFAULT_CHUNKING,
  findCut,
  MAX_CHUNK_SIZE,
  MIN_CHUNK_SIZE,
  rechunkFile,
} from "./chunker.ts";
import { sha256Hex } from "./hash.ts";
import { concatBytes } from "./bytes.ts";

/** Small sizes so that short buffers hold many chunks. */
const SMALL: Required<ChunkerOptions> = { minSize: 256, avgSize: 1024, maxSize: 4096 };

/** Deterministic pseudo-random bytes (xorshift32, top byte of each step), the same on every platform. */
function seededBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 0;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 24;
  }
  return out;
}

/** Deterministic pseudo-random integers in [0, bound). */
function seededInts(seed: number): (bound: number) => number {
  let x = seed | 0;
  return (bound) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % bound;
  };
}

/** Pseudo-English text: low-entropy input with repeated words and lines. */
function seededText(length: number, seed: number): Uint8Array {
  const next = seededInts(seed);
  const words = Array.from(
    { length: 500 },
    () => Array.from({ length: 2 + next(8) }, () => String.fromCharCode(97 + next(26))).join(""),
  );
  let text = "";
  while (text.length < length) text += words[next(next(words.length) + 1)] + (next(12) === 0 ? ".\n" : " ");
  return new TextEncoder().encode(text.slice(0, length));
}

/** The chunk ids of `data` cut as a whole buffer. */
function chunkIds(data: Uint8Array, opts: ChunkerOptions = {}): string[] {
  const ids: string[] = [];
  let at = 0;
  for (const length of chunkLengths(data, opts)) {
    ids.push(sha256Hex(data.subarray(at, at + length)));
    at += length;
  }
  return ids;
}

/** How many ids of `after` are not among those of `before`: the chunks a client would have to send. */
function countNewIds(before: string[], after: string[]): number {
  const known = new Set(before);
  return after.filter((id) => !known.has(id)).length;
}

/** Yields `data` in pieces of the given sizes, cycling through them. */
async function* piecesOf(data: Uint8Array, sizes: number[]): AsyncGenerator<Uint8Array> {
  let at = 0;
  for (let k = 0; at < data.length; k++) {
    const size = sizes[k % sizes.length];
    yield data.subarray(at, at + size);
    at += size;
  }
}

async function collect(chunks: AsyncIterable<Chunk>): Promise<Chunk[]> {
  const out: Chunk[] = [];
  for await (const chunk of chunks) out.push(chunk);
  return out;
}

/** Asserts that `chunks` are exactly the chunks of `data` cut as a whole buffer. */
function assertSameAsWhole(chunks: Chunk[], data: Uint8Array, opts: ChunkerOptions, label: string): void {
  assert.deepEqual(chunks.map((c) => c.data.length), chunkLengths(data, opts), label);
  let at = 0;
  for (const chunk of chunks) {
    assert.equal(chunk.offset, at, label);
    assert.deepEqual(chunk.data, data.subarray(at, at + chunk.data.length), label);
    assert.equal(chunk.id, sha256Hex(chunk.data), label);
    at += chunk.data.length;
  }
  assert.equal(at, data.length, label);
}

Deno.test("chunkLengths() cuts a pinned pseudo-random 1 MiB buffer at the recorded lengths", () => {
  // Changing these numbers changes every chunk id ever stored: the gear table, masks and loop are frozen.
  const data = seededBytes(1 << 20, 20240601);
  assert.deepEqual(chunkLengths(data), [
    69035,
    88251,
    76035,
    27763,
    96803,
    66453,
    48689,
    115434,
    65716,
    100392,
    42336,
    52804,
    77395,
    71304,
    50166,
  ]);
  assert.equal(
    sha256Hex(data.subarray(0, 69035)),
    "c44e6fc7272fe25b3661ee9a2f8f47af5deb1be06ed862732b1a18fcdfe8531b",
  );
  assert.deepEqual(
    chunkLengths(data, SMALL).slice(0, 12),
    [1428, 1150, 1120, 1072, 1050, 1379, 1232, 567, 730, 1239, 1261, 1287],
  );
});

Deno.test("chunkLengths() gives the same cuts for the same bytes, wherever they sit in memory", () => {
  const data = seededBytes(1 << 20, 7);
  const lengths = chunkLengths(data);
  assert.deepEqual(chunkLengths(data), lengths);
  const shifted = new Uint8Array(data.length + 13);
  shifted.set(data, 13);
  assert.deepEqual(chunkLengths(shifted.subarray(13)), lengths);
});

Deno.test("chunkLengths() keeps every chunk but the last within [minSize, maxSize] and covers the input", () => {
  const inputs: [string, Uint8Array][] = [
    ["random", seededBytes(3 << 20, 11)],
    ["text", seededText(3 << 20, 12)],
    ["zeros", new Uint8Array(3 << 20)],
    ["short cycle", Uint8Array.from({ length: 1 << 20 }, (_, i) => i % 7)],
  ];
  const optionSets: ChunkerOptions[] = [
    {},
    SMALL,
    { minSize: 64, avgSize: 128, maxSize: 200 },
    { minSize: 32 * 1024, avgSize: 128 * 1024, maxSize: 512 * 1024 },
  ];
  for (const [name, data] of inputs) {
    for (const opts of optionSets) {
      const { minSize, maxSize } = { ...DEFAULT_CHUNKING, ...opts };
      const lengths = chunkLengths(data, opts);
      const label = `${name} ${JSON.stringify(opts)}`;
      assert.equal(lengths.reduce((sum, n) => sum + n, 0), data.length, label);
      lengths.slice(0, -1).forEach((n) => assert.ok(n >= minSize && n <= maxSize, `${label}: ${n}`));
      assert.ok(lengths.at(-1)! >= 1 && lengths.at(-1)! <= maxSize, label);
    }
  }
});

Deno.test("chunkLengths() averages close to avgSize on random and text input", () => {
  for (const data of [seededBytes(4 << 20, 21), seededText(4 << 20, 22)]) {
    const mean = data.length / chunkLengths(data, SMALL).length;
    assert.ok(mean >= SMALL.avgSize && mean <= 1.3 * SMALL.avgSize, `mean ${mean}`);
  }
});

Deno.test("chunkLengths() of an empty buffer is no chunks", () => {
  assert.deepEqual(chunkLengths(new Uint8Array()), []);
});

Deno.test("chunkLengths() of input no longer than minSize is one chunk", () => {
  assert.deepEqual(chunkLengths(new Uint8Array(1)), [1]);
  assert.deepEqual(chunkLengths(seededBytes(5000, 3)), [5000]);
  assert.deepEqual(chunkLengths(seededBytes(DEFAULT_CHUNKING.minSize, 3)), [DEFAULT_CHUNKING.minSize]);
  assert.deepEqual(chunkLengths(seededBytes(SMALL.minSize, 4), SMALL), [SMALL.minSize]);
});

Deno.test("chunkLengths() cuts bytes with no cut point at maxSize", () => {
  assert.deepEqual(chunkLengths(new Uint8Array(600 * 1024)), [262144, 262144, 90112]);
});

Deno.test("DEFAULT_CHUNKING is 16 KiB / 64 KiB / 256 KiB and frozen", () => {
  assert.deepEqual(DEFAULT_CHUNKING, { minSize: 16384, avgSize: 65536, maxSize: 262144 });
  assert.ok(Object.isFrozen(DEFAULT_CHUNKING));
  assert.deepEqual(
    chunkLengths(seededBytes(1 << 20, 5), DEFAULT_CHUNKING),
    chunkLengths(seededBytes(1 << 20, 5)),
  );
});

Deno.test("invalid chunker options throw RangeError from every entry point", () => {
  const cases: [ChunkerOptions, RegExp][] = [
    [{ minSize: MIN_CHUNK_SIZE - 1, avgSize: 256, maxSize: 1024 }, /minSize 63: must be at least 64/],
    [{ minSize: 1024, avgSize: 4096, maxSize: MAX_CHUNK_SIZE + 1 }, /maxSize 8388609: must be at most/],
    [{ avgSize: 48 * 1024 }, /avgSize 49152: not a power of two/],
    [{ minSize: 64 * 1024 }, /need minSize < avgSize < maxSize/],
    [{ maxSize: 64 * 1024 }, /need minSize < avgSize < maxSize/],
    [{ minSize: 128 * 1024, maxSize: 32 * 1024 }, /need minSize < avgSize < maxSize/],
    [{ minSize: 1000.5 }, /minSize 1000.5: not an integer/],
    [{ avgSize: NaN }, /avgSize NaN: not an integer/],
    [{ maxSize: Infinity }, /maxSize Infinity: not an integer/],
  ];
  const data = seededBytes(1000, 1);
  for (const [opts, message] of cases) {
    const label = JSON.stringify(opts);
    assert.throws(() => chunkLengths(data, opts), { name: "RangeError", message }, label);
    assert.throws(() => findCut(data, 0, data.length, { ...DEFAULT_CHUNKING, ...opts }), RangeError, label);
    assert.throws(() => chunkStream(piecesOf(data, [100]), opts), RangeError, label);
    assert.throws(() => chunkFile("/nonexistent/file", opts), RangeError, label);
  }
  // The extreme valid options are accepted.
  assert.ok(
    chunkLengths(data, { minSize: MIN_CHUNK_SIZE, avgSize: 128, maxSize: MAX_CHUNK_SIZE }).length > 1,
  );
});

Deno.test("findCut() walks the same cuts as chunkLengths()", () => {
  const data = seededBytes(1 << 20, 31);
  const lengths: number[] = [];
  for (let at = 0; at < data.length;) {
    const length = findCut(data, at, data.length, DEFAULT_CHUNKING);
    lengths.push(length);
    at += length;
  }
  assert.deepEqual(lengths, chunkLengths(data));
});

Deno.test("findCut() depends only on the bytes up to the cut, so a later end never moves it", () => {
  const data = seededBytes(64 * 1024, 32);
  for (let start = 0; start < 8000; start += 997) {
    const length = findCut(data, start, data.length, SMALL);
    assert.ok(length > SMALL.minSize && length <= SMALL.maxSize);
    for (const end of [start + length, start + length + 1, start + SMALL.maxSize, data.length]) {
      assert.equal(findCut(data, start, end, SMALL), length, `start ${start} end ${end}`);
    }
    // Cut short before the cut point, it reports all the bytes it was given.
    assert.equal(findCut(data, start, start + length - 1, SMALL), length - 1);
    assert.equal(findCut(data, start, start + 10, SMALL), 10);
  }
  assert.equal(findCut(data, 5, 5, SMALL), 0);
});

Deno.test("findCut() rejects bounds outside the buffer with RangeError", () => {
  const data = new Uint8Array(100);
  for (const [start, end] of [[-1, 10], [20, 10], [0, 101], [0.5, 10], [0, NaN]]) {
    assert.throws(() => findCut(data, start, end, SMALL), RangeError, `${start}..${end}`);
  }
});

Deno.test("chunkStream() gives the chunks of chunkLengths() for many random split patterns", async () => {
  const next = seededInts(41);
  const small = seededBytes(200 * 1024, 42);
  for (let pattern = 0; pattern < 40; pattern++) {
    const bound = [8, 300, 5000, 20000][pattern % 4];
    const sizes = Array.from({ length: 1 + next(10) }, () => 1 + next(bound));
    const chunks = await collect(chunkStream(piecesOf(small, sizes), SMALL));
    assertSameAsWhole(chunks, small, SMALL, `sizes ${sizes}`);
  }
  const large = seededBytes(3 << 20, 43);
  for (const sizes of [[large.length], [1 << 20], [65536], [1000, 300000, 17], [262143, 262145, 1]]) {
    assertSameAsWhole(await collect(chunkStream(piecesOf(large, sizes))), large, {}, `sizes ${sizes}`);
  }
});

Deno.test("chunkStream() fed 1-byte pieces gives the chunks of chunkLengths()", async () => {
  const data = seededBytes(24 * 1024, 51);
  assertSameAsWhole(await collect(chunkStream(piecesOf(data, [1]), SMALL)), data, SMALL, "1-byte pieces");
  const text = seededText(24 * 1024, 52);
  assertSameAsWhole(await collect(chunkStream(piecesOf(text, [1]), SMALL)), text, SMALL, "1-byte text");
});

Deno.test("chunkStream() chunks stay intact when the source reuses its buffer", async () => {
  const data = seededBytes(300 * 1024, 61);
  async function* reusing(): AsyncGenerator<Uint8Array> {
    const buffer = new Uint8Array(7777);
    for (let at = 0; at < data.length; at += buffer.length) {
      const piece = data.subarray(at, at + buffer.length);
      buffer.set(piece);
      yield buffer.subarray(0, piece.length);
      buffer.fill(0xee);
    }
  }
  assertSameAsWhole(await collect(chunkStream(reusing(), SMALL)), data, SMALL, "reused buffer");
});

Deno.test("chunkStream() of an empty source yields no chunks, and empty pieces change nothing", async () => {
  assert.deepEqual(await collect(chunkStream(piecesOf(new Uint8Array(), [1]))), []);
  async function* empties(): AsyncGenerator<Uint8Array> {
    yield new Uint8Array();
    yield new Uint8Array();
  }
  assert.deepEqual(await collect(chunkStream(empties())), []);
  const data = seededBytes(20000, 71);
  async function* withEmpties(): AsyncGenerator<Uint8Array> {
    for (let at = 0; at < data.length; at += 3000) {
      yield new Uint8Array();
      yield data.subarray(at, at + 3000);
    }
    yield new Uint8Array();
  }
  assertSameAsWhole(await collect(chunkStream(withEmpties(), SMALL)), data, SMALL, "with empty pieces");
});

Deno.test("chunkStream() accepts a ReadableStream and rejects pieces that are not bytes", async () => {
  const data = seededBytes(50000, 72);
  const stream = ReadableStream.from(piecesOf(data, [4096]));
  assertSameAsWhole(await collect(chunkStream(stream, SMALL)), data, SMALL, "ReadableStream");
  async function* strings(): AsyncGenerator<Uint8Array> {
    yield "text" as unknown as Uint8Array;
  }
  await assert.rejects(collect(chunkStream(strings())), { name: "TypeError", message: /not a Uint8Array/ });
});

Deno.test("an edit of a few bytes in the middle of 8 MiB changes at most 2 chunk ids", () => {
  const data = seededBytes(8 << 20, 81);
  const before = chunkIds(data);
  const next = seededInts(82);
  for (let trial = 0; trial < 5; trial++) {
    const edited = data.slice();
    const at = (3 << 20) + next(2 << 20);
    for (let k = 0; k < 4; k++) edited[at + k] ^= 0xa5;
    const changed = countNewIds(before, chunkIds(edited));
    assert.ok(changed >= 1 && changed <= 2, `edit at ${at} changed ${changed} chunks`);
  }
});

Deno.test("inserting 10 bytes at the front of 8 MiB changes at most 2 chunk ids", () => {
  const data = seededBytes(8 << 20, 91);
  const inserted = new Uint8Array(data.length + 10);
  inserted.set(seededBytes(10, 92));
  inserted.set(data, 10);
  const changed = countNewIds(chunkIds(data), chunkIds(inserted));
  assert.ok(changed >= 1 && changed <= 2, `insert changed ${changed} chunks`);
});

Deno.test("chunkFile() reads a file into the chunks of chunkLengths()", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = seededBytes((3 << 20) + 12345, 101);
    const path = join(dir, "big.bin");
    await Deno.writeFile(path, data);
    assertSameAsWhole(await collect(chunkFile(path)), data, {}, "file");
    assertSameAsWhole(await collect(chunkFile(path, SMALL)), data, SMALL, "file, small chunks");
    const empty = join(dir, "empty.bin");
    await Deno.writeFile(empty, new Uint8Array());
    assert.deepEqual(await collect(chunkFile(empty)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chunkFile() closes the file when the caller stops early", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "big.bin");
    await Deno.writeFile(path, seededBytes(1 << 20, 111));
    const openFiles = () => [...Deno.readDirSync("/proc/self/fd")].length;
    const before = Deno.build.os === "linux" ? openFiles() : 0;
    let seen = 0;
    for await (const _chunk of chunkFile(path)) {
      if (++seen === 2) break;
    }
    assert.equal(seen, 2);
    if (Deno.build.os === "linux") assert.equal(openFiles(), before);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chunkFile() rejects a missing file with NotFound on the first next()", async () => {
  const chunks = chunkFile("/nonexistent/filesync-chunker-test");
  await assert.rejects(chunks.next(), Deno.errors.NotFound);
});

/** Joins byte arrays (the tests' shorthand for {@linkcode concatBytes}). */
const concat = (...parts: Uint8Array[]): Uint8Array => concatBytes(parts);

/** The rows (id, size) the chunker gives for a whole buffer. */
function rowsOf(data: Uint8Array, opts: ChunkerOptions = {}): { id: string; size: number }[] {
  let at = 0;
  return chunkLengths(data, opts).map((size) => {
    const row = { id: sha256Hex(data.subarray(at, at + size)), size };
    at += size;
    return row;
  });
}

Deno.test("rechunkFile() gives the rows of chunkLengths() after random edits, hinted by the old rows", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "f.bin");
    for (let seed = 1; seed <= 60; seed++) {
      const rand = seededInts(seed);
      const opts = seed % 2 === 0 ? SMALL : {};
      const old = seededBytes(seed % 2 === 0 ? 20_000 + rand(200_000) : (1 << 20) + rand(1 << 20), seed);
      let next: Uint8Array;
      const at = rand(old.length);
      const what = rand(6);
      if (what === 0) { // overwrite a few bytes
        next = old.slice();
        next.set(seededBytes(Math.min(1 + rand(5000), old.length - at), seed + 1000), at);
      } else if (what === 1) { // insert
        const add = seededBytes(1 + rand(300), seed + 2000);
        next = concat(old.subarray(0, at), add, old.subarray(at));
      } else if (what === 2) { // delete a range
        next = concat(old.subarray(0, at), old.subarray(Math.min(old.length, at + 1 + rand(9000))));
      } else if (what === 3) { // append
        next = concat(old, seededBytes(1 + rand(20000), seed + 3000));
      } else if (what === 4) { // truncate
        next = old.slice(0, at);
      } else { // unchanged
        next = old;
      }
      await Deno.writeFile(path, next);
      const want = rowsOf(next, opts);
      assert.deepEqual(await rechunkFile(path, rowsOf(old, opts), opts), want, `seed ${seed}, edit ${what}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("rechunkFile() gives the true rows whatever the hint holds (none, wrong ids, wrong sizes)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "f.bin");
    const data = seededBytes(600_000, 7);
    await Deno.writeFile(path, data);
    const want = rowsOf(data, SMALL);
    const other = rowsOf(seededBytes(600_000, 8), SMALL);
    const hints = [
      [],
      other,
      want.map((r) => ({ ...r, id: "0".repeat(64) })),
      want.map((r) => ({ ...r, size: r.size + 1 })),
      [{ id: sha256Hex(data), size: data.length }], // the whole file as one row: larger than maxSize
      [{ id: sha256Hex(data.subarray(0, 5000)), size: 5000 }], // true bytes, but not a cut
    ];
    for (const [i, hint] of hints.entries()) {
      assert.deepEqual(await rechunkFile(path, hint, SMALL), want, `hint ${i}`);
    }
    await Deno.writeFile(path, new Uint8Array());
    assert.deepEqual(await rechunkFile(path, want, SMALL), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
