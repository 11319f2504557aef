// What encryption at rest costs the chunk store: put+sync, get and list of chunks, plaintext and encrypted
// (libcrypto, and the WebCrypto fallback) stores side by side in one run (rounds alternate, medians reported).
// Usage: deno run -A bench/chunk_store_bench.ts [--mib N] [--kib CHUNK_KIB] [--rounds N] [--dir PATH]
import { createHash, randomFillSync } from "node:crypto";
import { join } from "node:path";
import process from "node:process";
import { parseArgs } from "node:util";
import { ChunkCipher, WEB_CRYPTO } from "../server/chunk_cipher.ts";
import { DiskChunkStore } from "../server/chunk_store.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mib: { type: "string", default: "128" },
    kib: { type: "string", default: "64" },
    rounds: { type: "string", default: "5" },
    dir: { type: "string" },
  },
});
const CHUNK = Math.max(1, Math.round(Number(values.kib) * 1024));
const count = Math.max(1, Math.round(Number(values.mib) * 1024 * 1024 / CHUNK));
const rounds = Math.max(1, Number(values.rounds));
const baseDir = values.dir ?? (Deno.statSync("/dev/shm").isDirectory ? "/dev/shm" : undefined);

const chunks = Array.from({ length: count }, () => {
  const data = randomFillSync(new Uint8Array(CHUNK));
  return { id: createHash("sha256").update(data).digest("hex"), data };
});
const mib = count * CHUNK / 1024 / 1024;

/** CPU seconds of this process so far (user + system, every thread): less noisy than wall time on a busy machine. */
function cpuSeconds(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

interface Timing {
  /** Wall seconds. */
  wall: number;
  /** CPU seconds. */
  cpu: number;
}

/** One round on a fresh store: put (all, then one sync), get (all) and list. */
async function round(cipher: ChunkCipher | undefined): Promise<{ put: Timing; get: Timing; list: Timing }> {
  const time = (t: number, c: number): Timing => ({
    wall: (performance.now() - t) / 1000,
    cpu: cpuSeconds() - c,
  });
  const dir = await Deno.makeTempDir({ dir: baseDir, prefix: "filesync-chunk-bench-" });
  try {
    const store = new DiskChunkStore(join(dir, "chunks"), { cipher });
    await store.open();
    let t = performance.now();
    let c = cpuSeconds();
    // 32 at a time, as many PUTs are in flight on a connection.
    for (let i = 0; i < count; i += 32) {
      await Promise.all(chunks.slice(i, i + 32).map((c) => store.put(c.id, c.data)));
    }
    await store.sync(chunks.map((c) => c.id));
    const put = time(t, c);
    t = performance.now();
    c = cpuSeconds();
    for (let i = 0; i < count; i += 32) {
      const got = await Promise.all(chunks.slice(i, i + 32).map((c) => store.get(c.id)));
      if (got.some((g, j) => g?.length !== chunks[i + j].data.length)) {
        throw new Error("wrong chunk read back");
      }
    }
    const get = time(t, c);
    t = performance.now();
    c = cpuSeconds();
    let listed = 0;
    for await (const _ of store.list()) listed++;
    if (listed !== count) throw new Error(`listed ${listed} of ${count}`);
    const list = time(t, c);
    return { put, get, list };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const key = crypto.getRandomValues(new Uint8Array(32));
const stores: [string, ChunkCipher | undefined][] = [
  ["plaintext", undefined],
  [`encrypted (${new ChunkCipher(key).crypto.name})`, new ChunkCipher(key)],
  ["encrypted (WebCrypto)", new ChunkCipher(key, { crypto: WEB_CRYPTO })],
];
const results = new Map(stores.map(([name]) => [name, [] as Awaited<ReturnType<typeof round>>[]]));
for (const [, cipher] of stores) await round(cipher); // warm-up
for (let i = 0; i < rounds; i++) {
  for (const [name, cipher] of stores) results.get(name)!.push(await round(cipher));
}
console.log(
  `${count} chunks of ${CHUNK / 1024} KiB (${mib.toFixed(1)} MiB) in ${
    baseDir ?? "the temp folder"
  }, medians of ${rounds} alternating rounds, load ${
    Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")
  }`,
);
console.log(
  "| store | put + sync MiB/s | CPU µs/chunk | get MiB/s | CPU µs/chunk | list chunks/s | CPU µs/chunk |",
);
console.log("| --- | --- | --- | --- | --- | --- | --- |");
for (const [name, rs] of results) {
  const cells = (["put", "get", "list"] as const).map((op) => {
    const wall = median(rs.map((r) => r[op].wall));
    const cpu = median(rs.map((r) => r[op].cpu)) / count * 1e6;
    return `${op === "list" ? (count / wall).toFixed(0) : (mib / wall).toFixed(0)} | ${cpu.toFixed(1)}`;
  });
  console.log(`| ${name} | ${cells.join(" | ")} |`);
}
