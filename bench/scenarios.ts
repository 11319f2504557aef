// Benchmark scenarios: fresh processes in fresh folders measure one thing; then Syncthing does the same work.
import { randomFillSync } from "node:crypto";
import { join } from "node:path";
import { ensureServerCertificate } from "../certs/ca.ts";
import { describeTree, readTreeWhileChanging } from "../tests/harness.ts";
import {
  BenchTimeout,
  BenchWorld,
  copyWithPrefix,
  countFiles,
  countLines,
  delay,
  hashFile,
  KIB,
  loggedContentBytes,
  MIB,
  readAt,
  sizeOf,
  type Snapshot,
  until,
  type Watched,
  writeRandomFile,
} from "./bench_world.ts";
import { EDIT_HOP_LIMIT, type Figures, TARGETS } from "./compare.ts";
import { Arrivals, Dataset, logUniformSizes } from "./dataset.ts";
import { procStats } from "./proc_stats.ts";
import { runSyncthing, type SyncthingMeasure, type SyncthingWorkload } from "./syncthing_runs.ts";
import { scaleOut } from "./scale_out.ts";

/** Settings shared by all scenarios of one run. */
export interface BenchContext {
  /** Folder under which each scenario makes its own temp folder. */
  baseDir: string;
  /** Small sizes for a sanity run. */
  quick: boolean;
  /** Raw TLS loopback throughput measured by the `tls` scenario, if it ran. */
  tlsMiBps: number | null;
  /** The Syncthing binary to run beside filesync, or null when none was found. */
  syncthing: { path: string; version: string } | null;
}

/** Syncthing's figures for the same workload in the same run. */
export interface SyncthingCell {
  result: string;
  /** Syncthing's time for the workload, null when it did not run or failed. */
  seconds: number | null;
  /** CPU seconds A / B. */
  cpu: string;
  /** Peak RSS MB A / B. */
  rss: string;
  notes: string[];
}

/** One line of the report. */
export interface Row {
  name: string;
  /** Duration of the measured interval, in seconds. */
  wallSeconds: number | null;
  result: string;
  aToServer: string;
  serverToB: string;
  reverse: string;
  cpu: string;
  rss: string;
  target: string;
  verdict: "pass" | "miss" | "skipped" | "—";
  notes: string[];
  /** Syncthing on the same data, for scenarios that have a counterpart (undefined: none). */
  syncthing?: SyncthingCell;
  /** What the target of issue #9 is judged on (bench.ts sets the verdict from it when the target is known). */
  figures?: Figures;
}

/** A named benchmark scenario. */
export interface Scenario {
  name: string;
  /** The target as shown in the report (also when the scenario fails). */
  target: string;
  /** One row, or several (a scenario run on several setups, e.g. `scale-out`). */
  run(ctx: BenchContext): Promise<Row | Row[]>;
}

/** Formats a byte count for the report. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "?";
  if (bytes >= 1024 * MIB) return `${(bytes / 1024 / MIB).toFixed(2)} GiB`;
  if (bytes >= MIB) return `${(bytes / MIB).toFixed(1)} MiB`;
  if (bytes >= KIB) return `${(bytes / KIB).toFixed(1)} KiB`;
  return `${Math.round(bytes)} B`;
}

function mb(bytes: number): string {
  return Number.isFinite(bytes) ? (bytes / 1e6).toFixed(0) : "?";
}

function seconds(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : "?";
}

function ofTls(ctx: BenchContext, mibps: number): string {
  return ctx.tlsMiBps ? ` (${((mibps / ctx.tlsMiBps) * 100).toFixed(0)}% of TLS)` : "";
}

/** The `p`th percentile of `values` (nearest rank). */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

function sameBytes(a: Uint8Array | null, b: Uint8Array): boolean {
  return a !== null && a.length === b.length && a.every((x, i) => x === b[i]);
}

function randomData(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) randomFillSync(out.subarray(at, Math.min(size, at + 65536)));
  return out;
}

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Frame bytes of one device between two snapshots: `in` = device to server, `out` = server to device. */
function hop(
  world: BenchWorld,
  before: Snapshot,
  after: Snapshot,
  device: string,
): { in: number; out: number } {
  const key = `${world.user}@${device}`;
  const b = before.traffic[key] ?? { in: 0, out: 0 };
  const a = after.traffic[key] ?? { in: 0, out: 0 };
  return { in: a.in - b.in, out: a.out - b.out };
}

/** Hop bytes, CPU deltas and peak RSS of server, A and B, formatted for a row. */
function measured(
  world: BenchWorld,
  before: Snapshot,
  after: Snapshot,
  rss: Map<string, number> = world.peakRss(),
): Pick<Row, "aToServer" | "serverToB" | "reverse" | "cpu" | "rss"> & {
  aIn: number;
  bOut: number;
  cpuSum: number;
} {
  const a = hop(world, before, after, "A");
  const b = hop(world, before, after, "B");
  const delta = (name: string) => (after.cpu.get(name) ?? NaN) - (before.cpu.get(name) ?? NaN);
  const cpu = (name: string) => seconds(delta(name));
  const hasB = world.clients.has("B");
  return {
    aIn: a.in,
    bOut: b.out,
    cpuSum: delta("server") + delta("A") + (hasB ? delta("B") : 0),
    aToServer: formatBytes(a.in),
    serverToB: hasB ? formatBytes(b.out) : "—",
    reverse: hasB ? `${formatBytes(a.out)} / ${formatBytes(b.in)}` : `${formatBytes(a.out)} / —`,
    cpu: `${cpu("server")} / ${cpu("A")} / ${hasB ? cpu("B") : "—"}`,
    rss: `${mb(rss.get("server") ?? NaN)} / ${mb(rss.get("A") ?? NaN)} / ${
      hasB ? mb(rss.get("B") ?? NaN) : "—"
    }`,
  };
}

/** A server with clients A and B connected. */
async function worldAB(
  ctx: BenchContext,
  name: string,
  serverEnv: Record<string, string> = {},
): Promise<BenchWorld> {
  const world = await BenchWorld.create(ctx.baseDir, name, { serverEnv });
  try {
    await world.client("A");
    await world.client("B");
  } catch (error) {
    await world[Symbol.asyncDispose]();
    throw error;
  }
  return world;
}

/** Waits until B's folder holds `expected` files: by its "downloaded" lines, with a folder count now and then. */
async function untilBHas(
  world: BenchWorld,
  since: Snapshot,
  dir: string,
  expected: number,
  timeoutMs: number,
): Promise<number> {
  let polls = 0;
  let lastCount = 0;
  return await until(async () => {
    if (countLines(world.outputSince("B", since), "downloaded") >= expected) return true;
    if (++polls % 50 === 0) lastCount = await countFiles(dir);
    return lastCount >= expected;
  }, {
    timeoutMs,
    intervalMs: 20,
    world,
    what: () =>
      `B logged ${countLines(world.outputSince("B", since), "downloaded")} downloads of ${expected} files`,
  });
}

/** Waits until two folders hold the same tree (content compared by SHA-256). */
async function untilSameTree(a: string, b: string, timeoutMs: number, world: Watched): Promise<void> {
  let diff = "";
  await until(async () => {
    const [ta, tb] = [await readTreeWhileChanging(a), await readTreeWhileChanging(b)];
    if (ta === null || tb === null) {
      diff = "a folder changed while it was read";
      return false;
    }
    if (describeTree(ta) === describeTree(tb)) return true;
    const missing = [...ta.keys()].filter((p) => !tb.has(p));
    const extra = [...tb.keys()].filter((p) => !ta.has(p));
    const differ = [...ta.keys()].filter((p) => tb.has(p) && tb.get(p) !== ta.get(p));
    diff = `missing on ${b}: ${missing.length} (${missing.slice(0, 3).join(", ")}); extra: ${extra.length} (${
      extra.slice(0, 3).join(", ")
    }); different content: ${differ.length} (${differ.slice(0, 3).join(", ")})`;
    return false;
  }, { timeoutMs, intervalMs: 200, world, what: () => `trees differ: ${diff}` });
}

function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchTimeout(`timed out after ${ms / 1000} s: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function writeAll(target: { write(p: Uint8Array): Promise<number> }, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length;) at += await target.write(data.subarray(at));
}

const tls: Scenario = {
  name: "tls",
  target: "— (reference)",
  async run(ctx) {
    const total = (ctx.quick ? 256 : 1024) * MIB;
    const dir = await Deno.makeTempDir({ dir: ctx.baseDir, prefix: "filesync-bench-tls-" });
    let listener: Deno.TlsListener | undefined;
    let client: Deno.TlsConn | undefined;
    let server: Deno.TlsConn | undefined;
    try {
      const cert = await ensureServerCertificate(dir);
      const ca = await Deno.readTextFile(cert.caPath);
      listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: cert.certPem, key: cert.keyPem });
      const accepted = listener.accept();
      client = await Deno.connectTls({ hostname: "127.0.0.1", port: listener.addr.port, caCerts: [ca] });
      server = await accepted;
      await withDeadline(Promise.all([client.handshake(), server.handshake()]), 10_000, "TLS handshake");
      const block = randomData(MIB);
      const cpuBefore = procStats(Deno.pid)?.cpuSeconds ?? NaN;
      const started = performance.now();
      const receiver = server;
      const reading = (async () => {
        const buffer = new Uint8Array(MIB);
        let got = 0;
        while (got < total) {
          const n = await receiver.read(buffer);
          if (n === null) break;
          got += n;
        }
        return got;
      })();
      const sender = client;
      const writing = (async () => {
        for (let sent = 0; sent < total; sent += MIB) await writeAll(sender, block);
      })();
      const [got] = await withDeadline(Promise.all([reading, writing]), 120_000, "TLS bulk transfer");
      const elapsed = (performance.now() - started) / 1000;
      if (got !== total) throw new Error(`TLS receiver got ${got} of ${total} bytes`);
      const mibps = total / MIB / elapsed;
      ctx.tlsMiBps = mibps;
      const stats = procStats(Deno.pid);
      return {
        name: "tls",
        wallSeconds: elapsed,
        result: `${mibps.toFixed(0)} MiB/s`,
        aToServer: formatBytes(total),
        serverToB: "—",
        reverse: "—",
        cpu: `bench ${seconds((stats?.cpuSeconds ?? NaN) - cpuBefore)} (both ends)`,
        rss: `bench ${mb(stats?.peakRssBytes ?? NaN)}`,
        target: this.target,
        verdict: "—",
        notes: [`${formatBytes(total)} in 1 MiB writes over one TLS connection inside the bench process.`],
      };
    } finally {
      for (const c of [client, server, listener]) {
        try {
          c?.close();
        } catch { /* closed */ }
      }
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
};

const latency: Scenario = {
  name: "latency",
  target: TARGETS.latency.text,
  async run(ctx) {
    const edits = ctx.quick ? 25 : 100;
    await using world = await worldAB(ctx, "latency");
    const a = join(world.dir("A"), "note.txt");
    const b = join(world.dir("B"), "note.txt");
    await Deno.writeTextFile(a, "first version\n");
    await until(async () => (await readText(b)) === "first version\n", {
      timeoutMs: 15_000,
      world,
      what: "first version of note.txt on B",
    });
    await world.settle();
    const before = await world.snapshot();
    const times: number[] = [];
    const loopStart = performance.now();
    for (let i = 0; i < edits; i++) {
      const content = `edit ${i} ${crypto.randomUUID()}\n`;
      const started = performance.now();
      await Deno.writeTextFile(a, content);
      const seen = await until(async () => (await readText(b)) === content, {
        timeoutMs: 10_000,
        intervalMs: 1,
        world,
        what: `edit ${i} of ${edits} to appear on B`,
      });
      times.push(seen - started);
    }
    const loopSeconds = (performance.now() - loopStart) / 1000;
    await world.settle();
    const after = await world.snapshot();
    const m = measured(world, before, after);
    const median = percentile(times, 50);
    const p99 = percentile(times, 99);
    return {
      name: "latency",
      wallSeconds: loopSeconds,
      result: `median ${median.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms`,
      ...m,
      target: this.target,
      verdict: "—",
      figures: { seconds: median / 1000 },
      notes: [
        `${edits} sequential edits of one small file (each waits for the previous one to reach B); min ${
          Math.min(...times).toFixed(0)
        } ms, max ${Math.max(...times).toFixed(0)} ms; B polled every 1 ms.`,
        `Per edit: ${formatBytes(m.aIn / edits)} A→srv, ${formatBytes(m.bOut / edits)} srv→B.`,
      ],
    };
  },
};

/** Seconds and bytes as MiB/s, plus CPU-seconds per GiB summed over the given processes. */
function throughput(bytes: number, elapsed: number, cpuSeconds: number): string {
  return `${(bytes / MIB / elapsed).toFixed(0)} MiB/s, ${
    (cpuSeconds / (bytes / (1024 * MIB))).toFixed(1)
  } CPU-s/GiB`;
}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

/** Syncthing's CPU and RSS cells. */
function syncthingCells(m: SyncthingMeasure): Pick<SyncthingCell, "cpu" | "rss"> {
  return {
    cpu: `${seconds(m.cpu.get("A") ?? NaN)} / ${seconds(m.cpu.get("B") ?? NaN)}`,
    rss: `${mb(m.rss.get("A") ?? NaN)} / ${mb(m.rss.get("B") ?? NaN)}`,
  };
}

/**
 * Runs the Syncthing counterpart of a workload when Syncthing is installed; its failure becomes the cell's text
 * (filesync's row stands on its own).
 */
async function besideSyncthing(
  ctx: BenchContext,
  workload: SyncthingWorkload,
  describe: (m: SyncthingMeasure) => string,
): Promise<SyncthingCell> {
  if (!ctx.syncthing) return { result: "not found", seconds: null, cpu: "—", rss: "—", notes: [] };
  console.error(`bench: ${workload.name} on Syncthing …`);
  try {
    const m = await runSyncthing({ baseDir: ctx.baseDir, binary: ctx.syncthing.path }, workload);
    return {
      result: describe(m),
      seconds: m.seconds,
      ...syncthingCells(m),
      notes: [
        `Syncthing: ${(m.seconds * 1000).toFixed(0)} ms from the scan request until B had it; the REST API ` +
        `reported convergence ${(m.convergeSeconds * 1000).toFixed(0)} ms after that; A sent ${
          formatBytes(m.aSent)
        } to B and received ${
          formatBytes(m.aReceived)
        } (its connection counters, scan request … convergence).`,
      ],
    };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return {
      result: error instanceof BenchTimeout ? "TIMEOUT" : "ERROR",
      seconds: null,
      cpu: "—",
      rss: "—",
      notes: [
        `Syncthing ${error instanceof BenchTimeout ? "timed out" : "failed"}: ${
          message.replaceAll("\n", " / ")
        }`,
      ],
    };
  }
}

/**
 * Syncthing's run of an initial sync of a dataset: the files are linked into a staging folder beside A's,
 * the top-level entries renamed into A's folder, and the clock starts as the scan is requested.
 */
function syncthingInitial(name: string, data: Dataset, timeoutMs: number): SyncthingWorkload {
  let arrivals: Arrivals | null = null;
  return {
    name,
    async change(pair) {
      const staging = pair.path("staging");
      await data.placeInto(staging);
      for (const entry of data.topLevel()) {
        await Deno.rename(join(staging, entry), join(pair.dir("A"), entry));
      }
      arrivals = new Arrivals(pair.dir("B"), data.files);
    },
    done: () => arrivals!.check(),
    what: () => `Syncthing's B to have all ${data.files.length} files (${arrivals?.missing} missing)`,
    verify: (pair) => data.verify(pair.dir("B"), "Syncthing B"),
    timeoutMs,
    intervalMs: data.files.length > 100 ? 50 : 10,
  };
}

/**
 * An initial sync of generated files A → server → B, then the same files on Syncthing: `large` (4 × 256 MiB)
 * and `mixed` (2,000 files of 1 KiB–8 MiB, about 1.8 GiB, in 20 folders). `large-plain` is `large` with the
 * server storing chunks unencrypted (the test-only FILESYNC_TEST_PLAINTEXT_CHUNKS), so `--only
 * large,large-plain` shows what encryption at rest costs in one run; it has no Syncthing counterpart.
 */
function initialScenario(name: "large" | "large-plain" | "mixed"): Scenario {
  const target = name === "large-plain" ? "— (encryption off, for comparison)" : TARGETS[name].text;
  return { name, target, run: (ctx) => runInitial(ctx, { name, target }) };
}

function initialSpecs(ctx: BenchContext, name: string): { path: string; size: number }[] {
  if (name === "mixed") {
    const sizes = ctx.quick
      ? logUniformSizes(200, { min: KIB, max: 2 * MIB, seed: 2 })
      : logUniformSizes(2000, { min: KIB, max: 8 * MIB, seed: 2 });
    return sizes.map((size, i) => ({
      path: `d${String(i % 20).padStart(2, "0")}/f${String(i).padStart(4, "0")}.bin`,
      size,
    }));
  }
  const size = (ctx.quick ? 16 : 256) * MIB;
  return Array.from({ length: 4 }, (_, i) => ({ path: `big-${i}.bin`, size }));
}

async function runInitial(
  ctx: BenchContext,
  { name, target }: { name: string; target: string },
): Promise<Row> {
  await using data = await Dataset.create(ctx.baseDir, name, initialSpecs(ctx, name));
  const total = data.bytes;
  const timeoutMs = 60_000 + (total / (5 * MIB)) * 1000;
  const row = await filesyncInitial(ctx, { name, target, data, timeoutMs });
  if (name !== "large-plain") {
    row.syncthing = await besideSyncthing(
      ctx,
      syncthingInitial(name, data, timeoutMs),
      (m) => throughput(total, m.seconds, sum(m.cpu.values())),
    );
  }
  return row;
}

async function filesyncInitial(
  ctx: BenchContext,
  { name, target, data, timeoutMs }: { name: string; target: string; data: Dataset; timeoutMs: number },
): Promise<Row> {
  const plaintext = name === "large-plain";
  const total = data.bytes;
  await using world = await worldAB(ctx, name, plaintext ? { FILESYNC_TEST_PLAINTEXT_CHUNKS: "1" } : {});
  const staging = world.path("staging");
  await data.placeInto(staging);
  await world.settle();
  const arrivals = new Arrivals(world.dir("B"), data.files);
  const before = await world.snapshot();
  const started = performance.now();
  for (const entry of data.topLevel()) await Deno.rename(join(staging, entry), join(world.dir("A"), entry));
  const done = await until(() => arrivals.check(), {
    timeoutMs,
    intervalMs: data.files.length > 100 ? 50 : 10,
    world,
    what: () => `B has ${data.files.length - arrivals.missing} of ${data.files.length} files complete`,
  });
  const elapsed = (done - started) / 1000;
  const rss = world.peakRss();
  await world.settle();
  const after = await world.snapshot();
  await data.verify(world.dir("B"), "B");
  const mibps = total / MIB / elapsed;
  const m = measured(world, before, after, rss);
  const sizes = data.files.map((f) => f.size);
  return {
    name,
    wallSeconds: elapsed,
    result: `${throughput(total, elapsed, m.cpuSum)}${ofTls(ctx, mibps)}`,
    ...m,
    target,
    verdict: "—",
    notes: [
      `${data.files.length} random files (${formatBytes(Math.min(...sizes))}–${
        formatBytes(Math.max(...sizes))
      }, ` +
      `${
        formatBytes(total)
      } in all) written outside the folder, then ${data.topLevel().length} top-level entries renamed into A's folder (clock starts at the renames, stops when B has all at ` +
      `full size); SHA-256 of all verified on B. CPU-s/GiB summed over server, A and B.` +
      (plaintext ? " Server chunks stored unencrypted (FILESYNC_TEST_PLAINTEXT_CHUNKS=1)." : ""),
    ],
    figures: { seconds: elapsed, bytes: total, cpuSeconds: m.cpuSum },
  };
}

const large = initialScenario("large");
const largePlain = initialScenario("large-plain");
const mixed = initialScenario("mixed");

/** Writes in-memory files (with their folders) under `dir`. */
function writeItems(dir: string, folders: string[], items: { path: string; data: Uint8Array }[]): void {
  for (const folder of folders) Deno.mkdirSync(join(dir, folder), { recursive: true });
  for (const item of items) Deno.writeFileSync(join(dir, item.path), item.data);
}

const small: Scenario = {
  name: "small",
  target: TARGETS.small.text,
  async run(ctx) {
    const files = ctx.quick ? 1000 : 10_000;
    const folders = Array.from({ length: 100 }, (_, f) => `d${String(f).padStart(2, "0")}`);
    const items: { path: string; data: Uint8Array }[] = [];
    for (let i = 0; i < files; i++) {
      const size = KIB + Math.floor(Math.random() * 15 * KIB) + 1;
      items.push({
        path: `${folders[i % folders.length]}/f${String(i).padStart(5, "0")}.bin`,
        data: randomData(size),
      });
    }
    const bytes = items.reduce((sum, item) => sum + item.data.length, 0);
    const timeoutMs = 30_000 + files * 20;
    const row = await (async (): Promise<Row> => {
      await using world = await worldAB(ctx, "small");
      await world.settle();
      const before = await world.snapshot();
      const started = performance.now();
      writeItems(world.dir("A"), folders, items);
      const created = performance.now() - started;
      const done = await untilBHas(world, before, world.dir("B"), files, timeoutMs);
      const elapsed = (done - started) / 1000;
      const rss = world.peakRss();
      await untilSameTree(world.dir("A"), world.dir("B"), 15_000, world);
      await world.settle();
      const after = await world.snapshot();
      const rate = files / elapsed;
      return {
        name: "small",
        wallSeconds: elapsed,
        result: `${rate.toFixed(0)} files/s (${(bytes / MIB / elapsed).toFixed(1)} MiB/s)`,
        ...measured(world, before, after, rss),
        target: this.target,
        verdict: "—",
        notes: [
          `${files} files of 1–16 KiB (${
            formatBytes(bytes)
          }) in ${folders.length} folders, written straight into A's ` +
          `folder while A and B run (clock starts at the first write; writing took ${
            (created / 1000).toFixed(2)
          } s of the wall time); clock stops when B has logged all downloads; trees then compared by SHA-256. ` +
          `Syncthing gets the same files written into A's folder before its clock starts at the scan request.`,
        ],
        figures: { seconds: elapsed },
      };
    })();
    let arrivals: Arrivals | null = null;
    row.syncthing = await besideSyncthing(ctx, {
      name: "small",
      change(pair) {
        writeItems(pair.dir("A"), folders, items);
        arrivals = new Arrivals(pair.dir("B"), items.map((i) => ({ path: i.path, size: i.data.length })));
        return Promise.resolve();
      },
      done: () => arrivals!.check(),
      what: () => `Syncthing's B to have all ${files} files (${arrivals?.missing} missing)`,
      verify: (pair) => untilSameTree(pair.dir("A"), pair.dir("B"), 15_000, pair),
      timeoutMs,
      intervalMs: 50,
    }, (m) => `${(files / m.seconds).toFixed(0)} files/s`);
    return row;
  },
};

/** Puts the dataset's big.bin (a copy: it will be changed) in A's folder and waits until B has it. */
async function syncedBigFile(world: BenchWorld, data: Dataset): Promise<void> {
  const staging = world.path("staging");
  await data.placeInto(staging, { copy: true });
  const size = data.files[0].size;
  await Deno.rename(join(staging, "big.bin"), join(world.dir("A"), "big.bin"));
  const b = join(world.dir("B"), "big.bin");
  await until(async () => (await sizeOf(b)) === size, {
    timeoutMs: 30_000 + (size / (10 * MIB)) * 1000,
    intervalMs: 20,
    world,
    what: "initial sync of big.bin to B",
  });
  await data.verify(world.dir("B"), "B (after the initial sync)");
  await world.settle();
}

/** The row of an edit/insert scenario from its measurements. */
function deltaRow(
  name: string,
  target: string,
  world: BenchWorld,
  before: Snapshot,
  after: Snapshot,
  elapsed: number,
  what: string,
): Row {
  const m = measured(world, before, after);
  const up = loggedContentBytes(world.outputSince("A", before));
  const down = loggedContentBytes(world.outputSince("B", before));
  return {
    name,
    wallSeconds: elapsed,
    result: `${(elapsed * 1000).toFixed(0)} ms`,
    ...m,
    target,
    verdict: "—",
    notes: [
      what,
      `Content per the client logs: A uploaded ${
        formatBytes(up.bytes)
      } (${up.lines} line(s)), B downloaded ` +
      `${formatBytes(down.bytes)} (${down.lines} line(s)). Limit per hop: ${
        formatBytes(EDIT_HOP_LIMIT)
      } of frames (3 chunks of the 256 KiB maximum + 64 KiB, as before issue #9).`,
    ],
    figures: { seconds: elapsed, hopBytes: Math.max(m.aIn, m.bOut) },
  };
}

/** A change to a synced 256 MiB file: how to make it on A and how to see it arrived on B. */
interface BigFileChange {
  name: "edit" | "insert";
  /** Makes the change (before the clock starts) and returns what completes it on A, run after the clock started. */
  prepare(a: string, staging: string): Promise<() => Promise<void>>;
  arrived(b: string): Promise<boolean>;
  what: string;
  describe(size: number): string;
}

function bigFileScenario(change: BigFileChange): Scenario {
  return {
    name: change.name,
    target: TARGETS[change.name].text,
    async run(ctx) {
      const size = (ctx.quick ? 32 : 256) * MIB;
      await using data = await Dataset.create(ctx.baseDir, change.name, [{ path: "big.bin", size }]);
      const row = await (async (): Promise<Row> => {
        await using world = await worldAB(ctx, change.name);
        await syncedBigFile(world, data);
        const a = join(world.dir("A"), "big.bin");
        const b = join(world.dir("B"), "big.bin");
        const finish = await change.prepare(a, world.path("staging"));
        const before = await world.snapshot();
        const started = performance.now();
        await finish();
        const done = await until(() => change.arrived(b), {
          timeoutMs: 30_000,
          intervalMs: 2,
          world,
          what: change.what,
        });
        await world.settle();
        const after = await world.snapshot();
        const [ha, hb] = [await hashFile(a), await hashFile(b)];
        if (ha !== hb) {
          throw new Error(`WRONG CONTENT: after the ${change.name} A's big.bin is ${ha}, B's is ${hb}`);
        }
        return deltaRow(
          change.name,
          this.target,
          world,
          before,
          after,
          (done - started) / 1000,
          change.describe(size),
        );
      })();
      row.syncthing = await besideSyncthing(ctx, {
        name: change.name,
        setup: (pair) => data.placeInto(pair.dir("A"), { copy: true }),
        async change(pair) {
          await Deno.mkdir(pair.path("staging"), { recursive: true });
          await (await change.prepare(join(pair.dir("A"), "big.bin"), pair.path("staging")))();
        },
        done: (pair) => change.arrived(join(pair.dir("B"), "big.bin")),
        what: () => `Syncthing: ${change.what}`,
        async verify(pair) {
          const [ha, hb] = [
            await hashFile(join(pair.dir("A"), "big.bin")),
            await hashFile(join(pair.dir("B"), "big.bin")),
          ];
          if (ha !== hb) throw new Error(`WRONG CONTENT: Syncthing's B has big.bin ${hb}, A ${ha}`);
        },
        timeoutMs: 60_000,
        intervalMs: 2,
      }, (m) => `${(m.seconds * 1000).toFixed(0)} ms, ${formatBytes(m.aSent)} A→B`);
      return row;
    },
  };
}

/** The 4 KiB patch of the edit scenario (the same bytes for both tools in a run). */
const editPatch = randomData(4 * KIB);
/** The 10 bytes of the insert scenario. */
const insertPrefix = randomData(10);

const edit = bigFileScenario({
  name: "edit",
  prepare(a) {
    return Promise.resolve(async () => {
      using file = await Deno.open(a, { write: true });
      const size = (await file.stat()).size;
      await file.seek(size / 2, Deno.SeekMode.Start);
      await writeAll(file, editPatch);
    });
  },
  async arrived(b) {
    const size = await sizeOf(b);
    return size > 0 && sameBytes(await readAt(b, size / 2, editPatch.length), editPatch);
  },
  what: "the 4 KiB patch to appear in B's big.bin",
  describe: (size) =>
    `4 KiB overwritten in place at the middle of a ${
      formatBytes(size)
    } file on A (clock starts at the write); ` +
    `whole-file SHA-256 equal after.`,
});

const insert = bigFileScenario({
  name: "insert",
  async prepare(a, staging) {
    await Deno.mkdir(staging, { recursive: true });
    const staged = join(staging, "big.new");
    await copyWithPrefix(a, staged, insertPrefix);
    return () => Deno.rename(staged, a);
  },
  async arrived(b) {
    const size = await sizeOf(b);
    return size > 0 && size % MIB === 10 && sameBytes(await readAt(b, 0, 10), insertPrefix);
  },
  what: "the 10-byte insert to reach B's big.bin",
  describe: (size) =>
    `10 bytes inserted at the front of a ${formatBytes(size)} file: the new version was written beside the ` +
    `folder and renamed over A's file (as editors save; clock starts at the rename); whole-file SHA-256 equal after.`,
});

const rename: Scenario = {
  name: "rename",
  target: TARGETS.rename.text,
  async run(ctx) {
    const files = ctx.quick ? 200 : 1000;
    const contents = Array.from({ length: files }, () => randomData(4 * KIB));
    const writePhotos = (dir: string) => {
      Deno.mkdirSync(join(dir, "photos"));
      contents.forEach((data, i) =>
        Deno.writeFileSync(join(dir, "photos", `img-${String(i).padStart(4, "0")}.jpg`), data)
      );
    };
    const renamed = async (dir: string) =>
      !(await exists(join(dir, "photos"))) && (await countFiles(join(dir, "albums"))) === files;
    const row = await (async (): Promise<Row> => {
      await using world = await worldAB(ctx, "rename");
      const setup = await world.snapshot();
      writePhotos(world.dir("A"));
      await untilBHas(world, setup, world.dir("B"), files, 30_000 + files * 20);
      await untilSameTree(world.dir("A"), world.dir("B"), 15_000, world);
      await world.settle();
      const before = await world.snapshot();
      const started = performance.now();
      await Deno.rename(join(world.dir("A"), "photos"), join(world.dir("A"), "albums"));
      const done = await until(() => renamed(world.dir("B")), {
        timeoutMs: 30_000,
        intervalMs: 5,
        world,
        what: () => `B to have albums/ with ${files} files and no photos/`,
      });
      const elapsed = (done - started) / 1000;
      await world.settle();
      const after = await world.snapshot();
      await untilSameTree(world.dir("A"), world.dir("B"), 10_000, world);
      const m = measured(world, before, after);
      const up = loggedContentBytes(world.outputSince("A", before));
      const down = loggedContentBytes(world.outputSince("B", before));
      const moves = countLines(world.outputSince("A", before), "moved") +
        countLines(world.outputSince("B", before), "moved");
      return {
        name: "rename",
        wallSeconds: elapsed,
        result: `${(elapsed * 1000).toFixed(0)} ms`,
        ...m,
        target: this.target,
        verdict: "—",
        notes: [
          `Folder of ${files} × 4 KiB renamed on A (clock starts at the rename). Content per the client logs: A ` +
          `uploaded ${formatBytes(up.bytes)} (${up.lines} files), B downloaded ${
            formatBytes(down.bytes)
          } (${down.lines} ` +
          `files); ${moves} "moved" log line(s). Hop columns are total frame bytes. Trees compared by SHA-256 after.`,
        ],
        figures: { seconds: elapsed, hopBytes: Math.max(up.bytes, down.bytes) },
      };
    })();
    row.syncthing = await besideSyncthing(ctx, {
      name: "rename",
      setup: (pair) => Promise.resolve(writePhotos(pair.dir("A"))),
      change: (pair) => Deno.rename(join(pair.dir("A"), "photos"), join(pair.dir("A"), "albums")),
      done: (pair) => renamed(pair.dir("B")),
      what: () => `Syncthing's B to have albums/ with ${files} files and no photos/`,
      verify: (pair) => untilSameTree(pair.dir("A"), pair.dir("B"), 15_000, pair),
      timeoutMs: 60_000,
      intervalMs: 5,
    }, (m) => `${(m.seconds * 1000).toFixed(0)} ms`);
    return row;
  },
};

/** 10 files written in place then chmod'ed (`saveall`) or touched (`saveall-touch`), as `git checkout` does. */
function saveAllScenario(name: "saveall" | "saveall-touch"): Scenario {
  const after = name === "saveall" ? "chmod'ed" : "touched";
  return {
    name,
    target: TARGETS[name].text,
    async run(ctx) {
      const files = 10;
      const paths = Array.from({ length: files }, (_, i) => `src/file-${i}.txt`);
      const first = paths.map(() => randomData(KIB + Math.floor(Math.random() * 31 * KIB)));
      const second = paths.map(() => randomData(KIB + Math.floor(Math.random() * 31 * KIB)));
      const writeAllFiles = (dir: string, contents: Uint8Array[], then: boolean) => {
        Deno.mkdirSync(join(dir, "src"), { recursive: true });
        paths.forEach((path, i) => {
          const full = join(dir, path);
          Deno.writeFileSync(full, contents[i]);
          if (!then) return;
          if (name === "saveall") Deno.chmodSync(full, 0o600);
          else {
            const now = new Date();
            Deno.utimeSync(full, now, now);
          }
        });
      };
      const has = (dir: string, contents: Uint8Array[]) =>
        paths.every((path, i) => {
          try {
            return sameBytes(Deno.readFileSync(join(dir, path)), contents[i]);
          } catch {
            return false;
          }
        });
      const row = await (async (): Promise<Row> => {
        await using world = await worldAB(ctx, name);
        writeAllFiles(world.dir("A"), first, false);
        await until(() => has(world.dir("B"), first), {
          timeoutMs: 30_000,
          intervalMs: 20,
          world,
          what: "the first versions on B",
        });
        await world.settle();
        const before = await world.snapshot();
        const started = performance.now();
        writeAllFiles(world.dir("A"), second, true);
        const done = await until(() => has(world.dir("B"), second), {
          timeoutMs: 30_000,
          intervalMs: 2,
          world,
          what: `the ${files} new versions on B`,
        });
        const elapsed = (done - started) / 1000;
        await world.settle();
        const snapshotAfter = await world.snapshot();
        await untilSameTree(world.dir("A"), world.dir("B"), 10_000, world);
        return {
          name,
          wallSeconds: elapsed,
          result: `${(elapsed * 1000).toFixed(0)} ms`,
          ...measured(world, before, snapshotAfter),
          target: this.target,
          verdict: "—",
          notes: [
            `${files} synced files of 1–32 KiB each rewritten in place (truncate + write, close) and then ${after}, ` +
            `one after the other (clock starts at the first write, stops when B has all new contents; modes are ` +
            `not compared, filesync does not sync them); trees compared by SHA-256 after.`,
          ],
          figures: { seconds: elapsed },
        };
      })();
      row.syncthing = await besideSyncthing(ctx, {
        name,
        setup: (pair) => Promise.resolve(writeAllFiles(pair.dir("A"), first, false)),
        change: (pair) => Promise.resolve(writeAllFiles(pair.dir("A"), second, true)),
        done: (pair) => has(pair.dir("B"), second),
        what: () => `Syncthing's B to have the ${files} new versions`,
        verify: (pair) => untilSameTree(pair.dir("A"), pair.dir("B"), 15_000, pair),
        timeoutMs: 60_000,
        intervalMs: 2,
      }, (m) => `${(m.seconds * 1000).toFixed(0)} ms`);
      return row;
    },
  };
}

const saveAll = saveAllScenario("saveall");
const saveAllTouch = saveAllScenario("saveall-touch");

/** Bytes free for files under `dir` (for tmpfs also bounded by available memory), or null if unknown. */
async function freeSpace(dir: string): Promise<{ bytes: number; fs: string } | null> {
  try {
    const out = await new Deno.Command("df", {
      args: ["-P", "-B1", "-T", dir],
      stdout: "piped",
      stderr: "null",
    })
      .output();
    const fields = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1)!.split(/\s+/);
    let bytes = Number(fields[4]);
    const fs = fields[1];
    if (fs === "tmpfs") {
      const available = /MemAvailable:\s+(\d+) kB/.exec(await Deno.readTextFile("/proc/meminfo"));
      if (available) bytes = Math.min(bytes, Number(available[1]) * 1024);
    }
    return Number.isFinite(bytes) ? { bytes, fs } : null;
  } catch {
    return null;
  }
}

const memory: Scenario = {
  name: "memory",
  target: TARGETS.memory.text,
  async run(ctx) {
    const size = ctx.quick ? 512 * MIB : 4096 * MIB;
    const need = 3 * size + 2048 * MIB;
    const free = await freeSpace(ctx.baseDir);
    if (free && free.bytes < need) {
      return {
        name: "memory",
        wallSeconds: null,
        result: "—",
        aToServer: "—",
        serverToB: "—",
        reverse: "—",
        cpu: "—",
        rss: "—",
        target: this.target,
        verdict: "skipped",
        notes: [
          `Skipped: needs ${formatBytes(need)} free in ${ctx.baseDir} (${free.fs}), has ${
            formatBytes(free.bytes)
          }.`,
        ],
      };
    }
    await using world = await worldAB(ctx, "memory");
    const staging = world.path("staging");
    await Deno.mkdir(staging);
    const hash = await writeRandomFile(join(staging, "huge.bin"), size);
    await world.settle();
    const before = await world.snapshot();
    const started = performance.now();
    await Deno.rename(join(staging, "huge.bin"), join(world.dir("A"), "huge.bin"));
    const b = join(world.dir("B"), "huge.bin");
    const done = await until(async () => (await sizeOf(b)) === size, {
      timeoutMs: 60_000 + (size / (10 * MIB)) * 1000,
      intervalMs: 50,
      world,
      what: `B to have huge.bin (${formatBytes(size)})`,
    });
    const elapsed = (done - started) / 1000;
    const rss = world.peakRss();
    await world.settle();
    const after = await world.snapshot();
    const got = await hashFile(b);
    if (got !== hash) throw new Error(`WRONG CONTENT: B's huge.bin has SHA-256 ${got}, A wrote ${hash}`);
    const peaks = ["server", "A", "B"].map((n) => rss.get(n) ?? NaN);
    const mibps = size / MIB / elapsed;
    return {
      name: "memory",
      wallSeconds: elapsed,
      result: `max RSS ${mb(Math.max(...peaks))} MB; ${mibps.toFixed(0)} MiB/s`,
      ...measured(world, before, after, rss),
      target: this.target,
      verdict: "—",
      figures: { seconds: elapsed, peakRssBytes: Math.max(...peaks) },
      notes: [
        `One ${
          formatBytes(size)
        } random file (written in 1 MiB blocks beside the folder, renamed in) synced ` +
        `A→B; RSS is VmHWM (lifetime peak) of each process; SHA-256 verified on B.`,
      ],
    };
  },
};

interface ScanTiming {
  startupMs: number | null;
  windowMs: number[];
  plans: number;
}

/** Full-scan durations from FILESYNC_TRACE lines ("cycle start … full=true" then "scanned"). */
function scanTimes(output: string): number[] {
  const out: number[] = [];
  let start: number | null = null;
  for (const line of output.split("\n")) {
    const m = /TRACE (\d+) (cycle start .*full=(true|false)|scanned)/.exec(line);
    if (!m) continue;
    if (m[3] === "true") start = Number(m[1]);
    else if (m[3] === "false") start = null;
    else if (start !== null) {
      out.push(Number(m[1]) - start);
      start = null;
    }
  }
  return out;
}

const rescan: Scenario = {
  name: "rescan",
  target: TARGETS.rescan.text,
  async run(ctx) {
    const files = ctx.quick ? 10_000 : 100_000;
    const perFolder = 1000;
    await using world = await BenchWorld.create(ctx.baseDir, "rescan");
    const dirA = world.dir("A");
    const createStart = performance.now();
    for (let f = 0; f < files / perFolder; f++) {
      const folder = join(dirA, `d${String(f).padStart(3, "0")}`);
      Deno.mkdirSync(folder, { recursive: true });
      for (let i = 0; i < perFolder; i++) {
        Deno.writeTextFileSync(join(folder, `f${String(i).padStart(4, "0")}.txt`), `file ${f}/${i}\n`);
      }
    }
    const created = (performance.now() - createStart) / 1000;
    const syncStart = performance.now();
    await world.client("A");
    const first = await world.snapshot();
    await until(() => countLines(world.outputSince("A", first), "uploaded") >= files, {
      timeoutMs: 60_000 + files * 5,
      intervalMs: 100,
      world,
      what: () => `A logged ${countLines(world.outputSince("A", first), "uploaded")} uploads of ${files}`,
    });
    const initialSync = (performance.now() - syncStart) / 1000;
    await world.settle();
    // A client with many files can take a while to save its state on SIGTERM: give it time, so the restart
    // measures an unchanged tree rather than recovery from a killed client.
    const stopped = await world.stopClient("A", 120_000);

    // Restart A with a full rescan every second and the engine's trace, which times each scan.
    await world.client("A", ["--rescan", "1"], { FILESYNC_TRACE: "1" });
    const proc = world.clients.get("A")!;
    let startupMs: number | null = null;
    let startupTimedOut = false;
    try {
      await until(() => scanTimes(proc.output).length >= 1, {
        timeoutMs: 120_000,
        intervalMs: 20,
        world,
        what: "the start-up scan of the restarted A (TRACE lines)",
      });
      startupMs = scanTimes(proc.output)[0];
    } catch (error) {
      if (!(error instanceof BenchTimeout)) throw error;
      startupTimedOut = true;
    }
    await world.settle(400, 10_000);
    const before = await world.snapshot();
    await delay(10_000);
    const after = await world.snapshot();
    const since = world.outputSince("A", before);
    const timing: ScanTiming = {
      startupMs,
      windowMs: scanTimes(since),
      plans: (since.match(/TRACE \d+ plan /g) ?? []).length,
    };
    const cpuA = (after.cpu.get("A") ?? NaN) - (before.cpu.get("A") ?? NaN);
    const scans = timing.windowMs.length;
    const perScan = cpuA / (scans || 10);
    const medianScan = scans ? percentile(timing.windowMs, 50) : null;
    const uploads = countLines(since, "uploaded");
    const m = measured(world, before, after);
    const notes = [
      `${files} files (${files / perFolder} folders) written before A started (${created.toFixed(1)} s); ` +
      `initial upload by A took ${initialSync.toFixed(1)} s (${
        (files / initialSync).toFixed(0)
      } files/s incl. ` +
      `client start). A then took ${
        stopped.seconds.toFixed(1)
      } s to stop on SIGTERM (exit code ${stopped.code}) ` +
      `and was restarted with --rescan 1 and FILESYNC_TRACE=1 and watched for 10 s idle.`,
      scans
        ? `Scan time measured from the engine's trace lines ("cycle start … full=true" → "scanned"): ${
          timing.windowMs.map((x) => x.toFixed(0)).join(", ")
        } ms; start-up scan ${
          startupMs ?? "?"
        } ms. CPU per rescan = A's CPU over the 10 s window / ${scans} scans.`
        : `No trace lines found: CPU per rescan assumes 10 rescans in the 10 s window.`,
    ];
    if (startupTimedOut) notes.push("MISS: the restarted A did not finish its start-up scan within 120 s.");
    if (timing.plans > 0 || uploads > 0) {
      notes.push(
        `UNEXPECTED: the no-change rescans produced ${timing.plans} plan(s) and ${uploads} upload(s).`,
      );
    }
    return {
      name: "rescan",
      wallSeconds: medianScan === null ? null : medianScan / 1000,
      result:
        `${medianScan === null ? "scan ?" : `scan ${medianScan.toFixed(0)} ms (median of ${scans})`}; ` +
        `A CPU ${perScan.toFixed(2)} s per rescan`,
      ...m,
      target: this.target,
      verdict: startupTimedOut || timing.plans > 0 || uploads > 0 ? "miss" : "—",
      notes,
      figures: {
        seconds: medianScan === null ? null : medianScan / 1000,
        peakRssBytes: world.peakRss().get("A") ?? NaN,
      },
    };
  },
};

const clients: Scenario = {
  name: "clients",
  target: "— (all 400 files on all 8 devices)",
  async run(ctx) {
    const n = 8;
    const per = 50;
    await using world = await BenchWorld.create(ctx.baseDir, "clients");
    const devices = Array.from({ length: n }, (_, i) => `C${i + 1}`);
    await Promise.all(devices.map((d) => world.client(d)));
    const contents = devices.map(() =>
      Array.from({ length: per }, () => randomData(KIB + Math.floor(Math.random() * 3 * KIB)))
    );
    await world.settle();
    const before = await world.snapshot();
    const started = performance.now();
    devices.forEach((device, k) => {
      const folder = join(world.dir(device), `from-${device}`);
      Deno.mkdirSync(folder);
      contents[k].forEach((data, j) =>
        Deno.writeFileSync(join(folder, `f${String(j).padStart(2, "0")}.bin`), data)
      );
    });
    const counts = new Map<string, number>();
    const done = await until(async () => {
      for (const d of devices) counts.set(d, await countFiles(world.dir(d)));
      return [...counts.values()].every((c) => c >= n * per);
    }, {
      timeoutMs: 120_000,
      intervalMs: 25,
      world,
      what: () =>
        `all folders to hold ${n * per} files: ${[...counts].map(([d, c]) => `${d}=${c}`).join(" ")}`,
    });
    const elapsed = (done - started) / 1000;
    const rss = world.peakRss();
    for (const d of devices.slice(1)) await untilSameTree(world.dir(devices[0]), world.dir(d), 15_000, world);
    await world.settle();
    const after = await world.snapshot();
    let up = 0;
    let down = 0;
    let cpuClients = 0;
    let rssClients = 0;
    for (const d of devices) {
      const h = hop(world, before, after, d);
      up += h.in;
      down += h.out;
      cpuClients += (after.cpu.get(d) ?? NaN) - (before.cpu.get(d) ?? NaN);
      rssClients = Math.max(rssClients, rss.get(d) ?? NaN);
    }
    const cpuServer = (after.cpu.get("server") ?? NaN) - (before.cpu.get("server") ?? NaN);
    return {
      name: "clients",
      wallSeconds: elapsed,
      result:
        `${(n * per / elapsed).toFixed(0)} files/s committed, ${(n * per * (n - 1) / elapsed).toFixed(0)} ` +
        `deliveries/s`,
      aToServer: `Σ ${formatBytes(up)}`,
      serverToB: `Σ ${formatBytes(down)}`,
      reverse: "(in the Σ columns)",
      cpu: `${seconds(cpuServer)} / Σ${n} ${seconds(cpuClients)}`,
      rss: `${mb(rss.get("server") ?? NaN)} / max of ${n} ${mb(rssClients)}`,
      target: this.target,
      verdict: "pass",
      notes: [
        `${n} clients of one user, each writing ${per} files of 1–4 KiB into its own subfolder at the same ` +
        `moment; clock stops when every folder holds all ${n * per}; all trees compared by SHA-256 after. ` +
        `Byte columns: Σ over clients of client→srv and srv→client frames; CPU and RSS: server / clients.`,
      ],
    };
  },
};

/** All scenarios, in report order. */
export const SCENARIOS: Scenario[] = [
  tls,
  latency,
  large,
  largePlain,
  mixed,
  small,
  edit,
  insert,
  rename,
  saveAll,
  saveAllTouch,
  memory,
  rescan,
  clients,
  scaleOut,
];
