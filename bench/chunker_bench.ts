// Chunker benchmark: throughput of chunkLengths and chunkStream+SHA-256, and edit locality per chunk size set.
// Run: deno run -A bench/chunker_bench.ts [MiB]   (default 256 MiB of seeded pseudo-random bytes, in memory)

import { type ChunkerOptions, chunkLengths, chunkStream } from "../protocol/chunker.ts";

const MIB = 1024 * 1024;
const KIB = 1024;
const PIECE = MIB;

const SIZE_SETS: Required<ChunkerOptions>[] = [
  { minSize: 8 * KIB, avgSize: 32 * KIB, maxSize: 128 * KIB },
  { minSize: 16 * KIB, avgSize: 64 * KIB, maxSize: 256 * KIB },
  { minSize: 32 * KIB, avgSize: 128 * KIB, maxSize: 512 * KIB },
];

/** Seeded pseudo-random bytes (xorshift32 words), so every run measures the same input. */
function seededBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  const words = new Uint32Array(out.buffer, 0, length >>> 2);
  let x = seed | 0;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x;
  }
  return out;
}

/** Yields the concatenation of `parts` in pieces of at most 1 MiB, as a file reader would. */
async function* piecesOf(...parts: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) {
    for (let at = 0; at < part.length; at += PIECE) yield part.subarray(at, at + PIECE);
  }
}

async function streamIds(source: AsyncIterable<Uint8Array>, opts: ChunkerOptions): Promise<string[]> {
  const ids: string[] = [];
  for await (const chunk of chunkStream(source, opts)) ids.push(chunk.id);
  return ids;
}

function countNew(before: string[], after: string[]): number {
  const known = new Set(before);
  return after.filter((id) => !known.has(id)).length;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1];
}

function mibPerSecond(bytes: number, ms: number): number {
  return Math.round(bytes / MIB / (ms / 1000));
}

function label(opts: Required<ChunkerOptions>): string {
  return `${opts.minSize / KIB}/${opts.avgSize / KIB}/${opts.maxSize / KIB}`;
}

async function main(): Promise<void> {
  const mib = Number(Deno.args[0] ?? 256);
  const data = seededBytes(mib * MIB, 0x5eed);
  console.log(
    `# chunker benchmark: ${mib} MiB of pseudo-random bytes in memory, Deno ${Deno.version.deno}\n`,
  );

  // One unmeasured run of each first, so the JIT has compiled the loops.
  chunkLengths(data);
  await streamIds(piecesOf(data), {});
  const lengthRuns: number[] = [];
  for (let run = 0; run < 5; run++) {
    const started = performance.now();
    chunkLengths(data);
    lengthRuns.push(mibPerSecond(data.length, performance.now() - started));
  }
  const streamRuns: number[] = [];
  for (let run = 0; run < 5; run++) {
    const started = performance.now();
    await streamIds(piecesOf(data), {});
    streamRuns.push(mibPerSecond(data.length, performance.now() - started));
  }
  console.log("| what (default 16/64/256 KiB) | MiB/s, median | runs |");
  console.log("|---|---|---|");
  console.log(`| chunkLengths | ${median(lengthRuns)} | ${lengthRuns.join(", ")} |`);
  console.log(`| chunkStream + SHA-256, 1 MiB pieces | ${median(streamRuns)} | ${streamRuns.join(", ")} |`);
  console.log();

  const middle = data.length >> 1;
  const patch = seededBytes(4 * KIB, 0xbad);
  const prefix = seededBytes(10, 0xf00d);
  console.log(
    "| min/avg/max KiB | chunks | mean KiB | chunkLengths MiB/s | changed: 4 KiB overwrite mid | changed: 10 B insert front |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const opts of SIZE_SETS) {
    const started = performance.now();
    const count = chunkLengths(data, opts).length;
    const speed = mibPerSecond(data.length, performance.now() - started);
    const before = await streamIds(piecesOf(data), opts);
    const overwritten = await streamIds(
      piecesOf(data.subarray(0, middle), patch, data.subarray(middle + patch.length)),
      opts,
    );
    const inserted = await streamIds(piecesOf(prefix, data), opts);
    const mean = (data.length / count / KIB).toFixed(1);
    console.log(
      `| ${label(opts)} | ${count} | ${mean} | ${speed} | ${countNew(before, overwritten)} | ${
        countNew(before, inserted)
      } |`,
    );
  }
}

await main();
