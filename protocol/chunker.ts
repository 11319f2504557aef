// Content-defined chunking (FastCDC: gear hash, normalized chunking) of buffers, streams and files.

import { createHash } from "node:crypto";
import { sha256Hex } from "./hash.ts";

/** Chunk size bounds for {@linkcode chunkLengths}, {@linkcode chunkStream} and {@linkcode chunkFile}. */
export interface ChunkerOptions {
  /** Smallest chunk, except the last chunk of a file. At least {@linkcode MIN_CHUNK_SIZE}. @default {16384} */
  minSize?: number;
  /** Target average chunk size; a power of two between `minSize` and `maxSize`. @default {65536} */
  avgSize?: number;
  /** Largest chunk. At most {@linkcode MAX_CHUNK_SIZE}. @default {262144} */
  maxSize?: number;
}

/** The chunk sizes every filesync client uses: 16 KiB / 64 KiB / 256 KiB (min / avg / max). */
export const DEFAULT_CHUNKING: Readonly<Required<ChunkerOptions>> = Object.freeze({
  minSize: 16 * 1024,
  avgSize: 64 * 1024,
  maxSize: 256 * 1024,
});

/** The lowest accepted `minSize`: bytes of the gear hash window, doubled. */
export const MIN_CHUNK_SIZE = 64;

/** The highest accepted `maxSize`, so that a chunk always fits in one protocol frame. */
export const MAX_CHUNK_SIZE = 8 * 1024 * 1024;

/** One content-defined chunk of a file or stream. */
export interface Chunk {
  /** SHA-256 of `data`, 64 lowercase hex characters. */
  id: string;
  /** The chunk's bytes, in a buffer of their own: safe to keep. */
  data: Uint8Array;
  /** Position of the chunk's first byte in the file or stream. */
  offset: number;
}

/** Bytes requested per read by {@linkcode chunkFile}. */
const READ_SIZE = 1024 * 1024;

/**
 * The gear table: 256 pseudo-random 32-bit values, fixed forever (changing it changes every chunk id).
 * Block k of 8 values is the big-endian SHA-256 of the ASCII string `filesync-gear-v1 k`, k = 0..31.
 * Stored as Int32Array: the same bits as a Uint32Array, but the loads stay in V8's int32 range.
 */
const GEAR: Int32Array = makeGear();

function makeGear(): Int32Array {
  const gear = new Int32Array(256);
  for (let block = 0; block < 32; block++) {
    const digest = createHash("sha256").update(`filesync-gear-v1 ${block}`).digest();
    for (let j = 0; j < 8; j++) gear[block * 8 + j] = digest.readInt32BE(j * 4);
  }
  return gear;
}

/**
 * A mask with `bits` one bits spread over the 32-bit hash: bit positions are taken in the order
 * 31 - bitReverse5(k), k = 0, 1, 2, ... (31, 15, 23, 7, 27, 11, ...). Bit 31 is always included, so every cut
 * depends on the last 32 bytes, and a mask with fewer bits is a subset of one with more, so a position that
 * passes the harder mask also passes the easier one.
 */
function spreadMask(bits: number): number {
  let mask = 0;
  for (let k = 0; k < bits; k++) {
    const reversed = ((k & 1) << 4) | ((k & 2) << 2) | (k & 4) | ((k & 8) >> 2) | ((k & 16) >> 4);
    mask |= 1 << (31 - reversed);
  }
  return mask;
}

/** Validated options plus the two normalized-chunking masks. */
interface Params {
  min: number;
  avg: number;
  max: number;
  /** Harder mask (log2(avg) + 2 bits), used before `avg` bytes. */
  maskS: number;
  /** Easier mask (log2(avg) - 2 bits), used from `avg` bytes on. */
  maskL: number;
}

function resolve(opts: ChunkerOptions): Params {
  const min = opts.minSize ?? DEFAULT_CHUNKING.minSize;
  const avg = opts.avgSize ?? DEFAULT_CHUNKING.avgSize;
  const max = opts.maxSize ?? DEFAULT_CHUNKING.maxSize;
  for (const [name, value] of [["minSize", min], ["avgSize", avg], ["maxSize", max]] as const) {
    if (!Number.isSafeInteger(value)) {
      throw new RangeError(`Invalid chunker ${name} ${value}: not an integer`);
    }
  }
  if (min < MIN_CHUNK_SIZE) {
    throw new RangeError(`Invalid chunker minSize ${min}: must be at least ${MIN_CHUNK_SIZE}`);
  }
  if (max > MAX_CHUNK_SIZE) {
    throw new RangeError(`Invalid chunker maxSize ${max}: must be at most ${MAX_CHUNK_SIZE}`);
  }
  if (!(min < avg && avg < max)) {
    throw new RangeError(`Invalid chunker sizes ${min}/${avg}/${max}: need minSize < avgSize < maxSize`);
  }
  if ((avg & (avg - 1)) !== 0) throw new RangeError(`Invalid chunker avgSize ${avg}: not a power of two`);
  const bits = 31 - Math.clz32(avg);
  return { min, avg, max, maskS: spreadMask(bits + 2), maskL: spreadMask(bits - 2) };
}

/** Gear hash left by the last {@linkcode scan} that ran out of input, to resume from. */
let scanHash = 0;

/**
 * The FastCDC loop. Looks for the end of a chunk that starts at index `base` of `data` (negative when its first
 * bytes were in an earlier buffer), scanning `data[from, end)` with gear hash `h` as it stood before `from`.
 * No hashing happens in the first `min` bytes; then the harder mask applies up to `avg` bytes and the easier
 * one up to `max`. A byte whose hash passes the mask is the chunk's last byte.
 * Returns the index just past the chunk's end, or -1 if `end` came first (the hash is then left in scanHash).
 */
function scan(data: Uint8Array, base: number, from: number, end: number, h: number, p: Params): number {
  const gear = GEAR;
  let i = from;
  const minEnd = base + p.min;
  if (i < minEnd) {
    i = minEnd;
    h = 0;
  }
  const maskS = p.maskS;
  const normEnd = Math.min(base + p.avg, end);
  for (; i < normEnd; i++) {
    h = ((h << 1) + gear[data[i]]) | 0;
    if ((h & maskS) === 0) return i + 1;
  }
  const maskL = p.maskL;
  const maxEnd = base + p.max;
  const stop = Math.min(maxEnd, end);
  for (; i < stop; i++) {
    h = ((h << 1) + gear[data[i]]) | 0;
    if ((h & maskL) === 0) return i + 1;
  }
  if (i === maxEnd) return i;
  scanHash = h;
  return -1;
}

/**
 * Returns the length of the chunk that starts at `data[start]`, looking at the bytes before `end` only.
 * When fewer than `maxSize` bytes remain and no cut point is found, returns `end - start`: the caller knows
 * whether more input follows (then the chunk is not finished) or not (then it is the last chunk).
 * Throws a RangeError for invalid options or bounds.
 *
 * @example
 * ```ts
 * const first = findCut(bytes, 0, bytes.length, DEFAULT_CHUNKING);
 * ```
 */
export function findCut(
  data: Uint8Array,
  start: number,
  end: number,
  opts: Readonly<Required<ChunkerOptions>>,
): number {
  const p = resolve(opts);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || start > end) {
    throw new RangeError(`Invalid chunk bounds ${start}..${end}`);
  }
  if (end > data.length) throw new RangeError(`Invalid chunk end ${end}: beyond ${data.length} bytes`);
  const cut = scan(data, start, start, end, 0, p);
  return cut < 0 ? end - start : cut - start;
}

/**
 * Cuts a whole buffer into content-defined chunks and returns their lengths, in order; they sum to
 * `data.length`, and an empty buffer has no chunks. Throws a RangeError for invalid options.
 *
 * @example
 * ```ts
 * const lengths = chunkLengths(bytes); // e.g. [70112, 41930, ...]
 * ```
 */
export function chunkLengths(data: Uint8Array, opts: ChunkerOptions = {}): number[] {
  const p = resolve(opts);
  const lengths: number[] = [];
  const end = data.length;
  for (let pos = 0; pos < end;) {
    const cut = scan(data, pos, pos, end, 0, p);
    const next = cut < 0 ? end : cut;
    lengths.push(next - pos);
    pos = next;
  }
  return lengths;
}

/**
 * Cuts a byte stream into content-defined chunks and hashes each one. The cuts are exactly those of
 * {@linkcode chunkLengths} over the concatenated input, however the source splits it. A source piece is only
 * read until the next piece is requested, so the source may reuse its buffer; each chunk's bytes are copied
 * once into a buffer of their own (bytes carried across a piece boundary once more). Memory stays within
 * `maxSize` plus one piece. Throws a RangeError at once for invalid options, a TypeError for a piece that is
 * not a Uint8Array.
 *
 * @example
 * ```ts
 * using file = await Deno.open("big.iso");
 * for await (const chunk of chunkStream(file.readable)) console.log(chunk.offset, chunk.id);
 * ```
 */
export function chunkStream(
  source: AsyncIterable<Uint8Array>,
  opts: ChunkerOptions = {},
): AsyncGenerator<Chunk> {
  return streamChunks(source, resolve(opts));
}

async function* streamChunks(source: AsyncIterable<Uint8Array>, p: Params): AsyncGenerator<Chunk> {
  // The unfinished chunk's first bytes, copied out of earlier pieces: always fewer than p.max bytes.
  let carry: Uint8Array | undefined;
  let carryLength = 0;
  let carryHash = 0;
  let offset = 0;
  for await (const piece of source) {
    if (!(piece instanceof Uint8Array)) {
      throw new TypeError(`Cannot chunk a ${typeof piece}: not a Uint8Array`);
    }
    const end = piece.length;
    let pos = 0;
    if (carryLength > 0) {
      const cut = scan(piece, -carryLength, 0, end, carryHash, p);
      if (cut < 0) {
        carry!.set(piece, carryLength);
        carryLength += end;
        carryHash = scanHash;
        continue;
      }
      const data = new Uint8Array(carryLength + cut);
      data.set(carry!.subarray(0, carryLength));
      data.set(piece.subarray(0, cut), carryLength);
      carryLength = 0;
      pos = cut;
      yield { id: sha256Hex(data), data, offset };
      offset += data.length;
    }
    while (pos < end) {
      const cut = scan(piece, pos, pos, end, 0, p);
      if (cut < 0) {
        carry ??= new Uint8Array(p.max);
        carry.set(piece.subarray(pos));
        carryLength = end - pos;
        carryHash = scanHash;
        break;
      }
      const data = piece.slice(pos, cut);
      pos = cut;
      yield { id: sha256Hex(data), data, offset };
      offset += data.length;
    }
  }
  if (carryLength > 0) {
    const data = carry!.slice(0, carryLength);
    yield { id: sha256Hex(data), data, offset };
  }
}

/**
 * Opens the file at `path`, reads it in 1 MiB reads and yields its chunks as {@linkcode chunkStream} does.
 * The file is closed when the generator finishes or is abandoned with `return()` (as `break` does).
 * Throws a RangeError at once for invalid options; file errors come from the first `next()`.
 *
 * @example
 * ```ts
 * const ids: string[] = [];
 * for await (const chunk of chunkFile("notes.txt")) ids.push(chunk.id);
 * ```
 */
export function chunkFile(path: string, opts: ChunkerOptions = {}): AsyncGenerator<Chunk> {
  const p = resolve(opts);
  return (async function* () {
    const file = await Deno.open(path, { read: true });
    try {
      yield* streamChunks(readPieces(file), p);
    } finally {
      file.close();
    }
  })();
}

async function* readPieces(file: Deno.FsFile): AsyncGenerator<Uint8Array> {
  const buffer = new Uint8Array(READ_SIZE);
  for (;;) {
    const n = await file.read(buffer);
    if (n === null) return;
    if (n > 0) yield buffer.subarray(0, n);
  }
}

/** One chunk of a file as {@linkcode rechunkFile} reports it: its id and size, without its bytes. */
export interface ChunkRowOf {
  id: string;
  size: number;
}

/** Most bytes of the buffer {@linkcode rechunkFile} reads through. */
const RECHUNK_BUFFER = 8 * 1024 * 1024;

/**
 * Whether a chunk of `data[start, end)` ends at a cut the chunker would accept there: it has `max` bytes, or
 * the gear hash of its last bytes passes the mask that applies at its length. (The gear hash forgets a byte
 * after 32 more, and restarts at `min` bytes, so only the last 32 bytes after `min` count.)
 */
function isCut(data: Uint8Array, start: number, end: number, p: Params): boolean {
  const length = end - start;
  if (length === p.max) return true;
  if (length < p.min || length > p.max) return false;
  const gear = GEAR;
  let h = 0;
  for (let i = Math.max(start + p.min, end - 32); i < end; i++) h = ((h << 1) + gear[data[i]]) | 0;
  return (h & (end - 1 < start + p.avg ? p.maskS : p.maskL)) === 0;
}

/**
 * Cuts and hashes the file at `path` into the rows {@linkcode chunkFile} would give, using the rows of an
 * earlier version of it (`hint`) to skip the chunker's scan of unchanged parts: where a hinted row starts, its
 * bytes are hashed directly, and if they still have its id (and it ends at a valid cut) the row is kept as it
 * is, because the chunker's cut depends only on a chunk's own bytes. Elsewhere (changed bytes, until the cuts
 * meet the hint again, by offset or by id) the chunker runs as usual. Every row returned is SHA-256 of the
 * bytes read now; a hint only saves work, whatever it holds. Rows of `hint` that came from this chunker give
 * exactly its cuts; forged rows could at worst give other valid cuts of the same bytes.
 *
 * @example
 * ```ts
 * const rows = await rechunkFile("big.iso", previousRows); // the 4 KiB that changed: one or two new rows
 * ```
 */
export async function rechunkFile(
  path: string,
  hint: readonly ChunkRowOf[],
  opts: ChunkerOptions = {},
): Promise<ChunkRowOf[]> {
  const p = resolve(opts);
  const byOffset = new Map<number, number>();
  const byId = new Map<string, number>();
  let at = 0;
  hint.forEach((row, i) => {
    byOffset.set(at, i);
    if (!byId.has(row.id)) byId.set(row.id, i);
    at += row.size;
  });
  using file = await Deno.open(path, { read: true });
  // Sized for the file (a fresh buffer costs page faults per MiB), at least two largest chunks.
  const size = file.statSync().size;
  const buffer = new Uint8Array(Math.max(2 * p.max, Math.min(RECHUNK_BUFFER, size + 1)));
  let start = 0; // buffer[start, end) holds the file's bytes from `pos` on
  let end = 0;
  let eof = false;
  /** Makes the buffer hold `want` bytes from `pos` on, or all that is left of the file. */
  const fill = async (want: number) => {
    if (end - start >= want || eof) return;
    buffer.copyWithin(0, start, end);
    end -= start;
    start = 0;
    while (end < buffer.length && !eof) {
      const n = await file.read(buffer.subarray(end));
      if (n === null) eof = true;
      else end += n;
    }
  };
  const rows: ChunkRowOf[] = [];
  let pos = 0;
  let next = hint.length > 0 ? 0 : -1; // the hinted row expected at `pos`
  for (;;) {
    await fill(p.max);
    if (end === start) break;
    const row = next >= 0 ? hint[next] : undefined;
    const rest = end - start;
    if (
      row && row.size <= rest &&
      (isCut(buffer, start, start + row.size, p) || (eof && row.size === rest && row.size <= p.max))
    ) {
      const id = sha256Hex(buffer.subarray(start, start + row.size));
      if (id === row.id) {
        rows.push({ id, size: row.size });
        start += row.size;
        pos += row.size;
        next = next + 1 < hint.length ? next + 1 : -1;
        continue;
      }
    }
    const cut = scan(buffer, start, start, end, 0, p);
    const length = (cut < 0 ? end : cut) - start;
    const id = sha256Hex(buffer.subarray(start, start + length));
    rows.push({ id, size: length });
    start += length;
    pos += length;
    next = byOffset.get(pos) ?? ((byId.get(id) ?? -2) + 1);
    if (next >= hint.length) next = -1;
  }
  return rows;
}
