// Benchmark fixture: a fresh server, user and client processes in one folder, with traffic/CPU/memory snapshots.
import { createHash, randomFillSync } from "node:crypto";
import { join } from "node:path";
import { adminRequest } from "../server/admin.ts";
import { addUser, type Proc, type ServerProc, startConnectedClient, startServer } from "../tests/harness.ts";
import { procStats } from "./proc_stats.ts";

/** Bytes in one MiB. */
export const MIB = 1024 * 1024;
/** Bytes in one KiB. */
export const KIB = 1024;

/** Frame bytes a device sent to the server (`in`) and the server sent to it (`out`). */
export type Traffic = Record<string, { in: number; out: number }>;

/** What was measured at one moment: time, traffic per device and CPU seconds per process. */
export interface Snapshot {
  at: number;
  traffic: Traffic;
  cpu: Map<string, number>;
  outputLength: Map<string, number>;
}

/** A failure that a scenario reports as a miss with this message (e.g. a deadline that passed). */
export class BenchTimeout extends Error {
  override name = "BenchTimeout";
}

/** Worlds not yet disposed, so an interrupted run can still clean up. */
export const liveWorlds: Set<BenchWorld> = new Set();

/** One scenario's processes and folders under a fresh temp folder; disposing stops and removes everything. */
export class BenchWorld implements AsyncDisposable {
  readonly root: string;
  readonly user = "alice";
  readonly password = "correct horse battery";
  server: ServerProc | null = null;
  readonly clients: Map<string, Proc> = new Map();

  private constructor(root: string) {
    this.root = root;
    liveWorlds.add(this);
  }

  /**
   * Makes the folder `baseDir/filesync-bench-NAME-*` and, unless `server` is false, starts a server with one user
   * (with `serverEnv` added to its environment, e.g. a test-only switch).
   */
  static async create(
    baseDir: string,
    name: string,
    options: { server?: boolean; serverEnv?: Record<string, string> } = {},
  ): Promise<BenchWorld> {
    const world = new BenchWorld(await Deno.makeTempDir({ dir: baseDir, prefix: `filesync-bench-${name}-` }));
    if (options.server === false) return world;
    try {
      world.server = await startServer(join(world.root, "server"), [], 0, options.serverEnv);
      await addUser(world.server.dataDir, world.user, world.password);
    } catch (error) {
      await world[Symbol.asyncDispose]();
      throw error;
    }
    return world;
  }

  /** A path inside the world's folder. */
  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  /** The synced folder of a device. */
  dir(device: string): string {
    return join(this.root, device);
  }

  /**
   * Starts a client for `device` and waits until it has connected. Uses the product's default rescan period
   * (10 s) unless `extraArgs` says otherwise.
   */
  async client(device: string, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<Proc> {
    if (!this.server) throw new TypeError("This world has no server");
    const old = this.clients.get(device);
    if (old && old.exitCode === null) throw new TypeError(`Client "${device}" is already running`);
    const client = await startConnectedClient({
      server: this.server,
      user: this.user,
      password: this.password,
      dir: this.dir(device),
      device,
      extraArgs: ["--rescan", "10", ...extraArgs],
      env,
    });
    this.clients.set(device, client);
    return client;
  }

  /**
   * Stops one client (SIGTERM, SIGKILL after `graceMs`) and forgets it; returns its exit code and how long the
   * stop took.
   */
  async stopClient(device: string, graceMs = 8000): Promise<{ code: number | null; seconds: number }> {
    const proc = this.clients.get(device);
    const started = performance.now();
    const code = proc ? await proc.stop(graceMs) : null;
    this.clients.delete(device);
    return { code, seconds: (performance.now() - started) / 1000 };
  }

  /** Every process of the world by name: "server" and the device names. */
  processes(): Map<string, Proc> {
    const out = new Map<string, Proc>();
    if (this.server) out.set("server", this.server);
    for (const [name, proc] of this.clients) out.set(name, proc);
    return out;
  }

  /** Throws if a process of the world has exited (a crash is a finding, not something to wait out). */
  assertAlive(): void {
    for (const [name, proc] of this.processes()) {
      if (proc.exitCode !== null) {
        throw new Error(`${name} exited with code ${proc.exitCode}; last output:\n${tail(proc.output, 20)}`);
      }
    }
  }

  /** Frame bytes per device from the server's admin socket. */
  async traffic(): Promise<Traffic> {
    if (!this.server) return {};
    const reply = await adminRequest(this.server.dataDir, { op: "stats" });
    if (!reply || !reply.ok) throw new Error(`admin stats failed: ${JSON.stringify(reply)}`);
    return ((reply.stats as { traffic?: Traffic } | undefined)?.traffic) ?? {};
  }

  /** Time, traffic, CPU seconds and output length of every process, now. */
  async snapshot(): Promise<Snapshot> {
    const traffic = await this.traffic();
    const cpu = new Map<string, number>();
    const outputLength = new Map<string, number>();
    for (const [name, proc] of this.processes()) {
      cpu.set(name, procStats(proc.child.pid)?.cpuSeconds ?? NaN);
      outputLength.set(name, proc.output.length);
    }
    return { at: performance.now(), traffic, cpu, outputLength };
  }

  /** Peak RSS (VmHWM) of each live process, in bytes. */
  peakRss(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [name, proc] of this.processes()) {
      out.set(name, procStats(proc.child.pid)?.peakRssBytes ?? NaN);
    }
    return out;
  }

  /** Output of a process printed after the snapshot was taken. */
  outputSince(name: string, since: Snapshot): string {
    const proc = this.processes().get(name);
    if (!proc) return "";
    return proc.output.slice(since.outputLength.get(name) ?? 0);
  }

  /**
   * Waits until no device's traffic counters change for `stableMs` (so a measurement starts and ends with the
   * system at rest); gives up silently after `timeoutMs` and returns false.
   */
  async settle(stableMs = 400, timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let last = JSON.stringify(await this.traffic());
    let since = Date.now();
    while (Date.now() < deadline) {
      await delay(50);
      const now = JSON.stringify(await this.traffic());
      if (now !== last) {
        last = now;
        since = Date.now();
      } else if (Date.now() - since >= stableMs) return true;
    }
    return false;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    liveWorlds.delete(this);
    await Promise.all([...this.clients.values()].map((p) => p.stop().catch(() => {})));
    if (this.server) await this.server.stop().catch(() => {});
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

/** Something whose processes a poll checks on each round (a world, a Syncthing pair). */
export interface Watched {
  /** Throws if one of its processes has exited. */
  assertAlive(): void;
}

/** Resolves after `ms` milliseconds (pacing of polls and measurement windows, never synchronization). */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `check` every `intervalMs` until it returns true; throws {@linkcode BenchTimeout} with `what` after
 * `timeoutMs`, and an Error at once if `world` has a process that exited. Returns the time of success.
 */
export async function until(
  check: () => boolean | Promise<boolean>,
  options: { timeoutMs: number; intervalMs?: number; what: string | (() => string); world?: Watched },
): Promise<number> {
  const deadline = performance.now() + options.timeoutMs;
  while (true) {
    if (await check()) return performance.now();
    options.world?.assertAlive();
    if (performance.now() > deadline) {
      const what = typeof options.what === "string" ? options.what : options.what();
      throw new BenchTimeout(`timed out after ${(options.timeoutMs / 1000).toFixed(0)} s: ${what}`);
    }
    await delay(options.intervalMs ?? 10);
  }
}

/** The last `lines` lines of a text. */
export function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Writes `size` bytes of random data to `path` in 1 MiB blocks (never the whole file in memory), optionally
 * after `prefix`; returns the SHA-256 (hex) of what was written.
 */
export async function writeRandomFile(path: string, size: number, prefix?: Uint8Array): Promise<string> {
  const hash = createHash("sha256");
  const block = new Uint8Array(MIB);
  const file = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    if (prefix) {
      await writeAll(file, prefix);
      hash.update(prefix);
    }
    for (let done = 0; done < size; done += block.length) {
      const piece = block.subarray(0, Math.min(block.length, size - done));
      randomFillSync(piece);
      hash.update(piece);
      await writeAll(file, piece);
    }
  } finally {
    file.close();
  }
  return hash.digest("hex");
}

/** Copies `from` to `to` after `prefix`, in 1 MiB pieces; returns the SHA-256 (hex) of the result. */
export async function copyWithPrefix(from: string, to: string, prefix: Uint8Array): Promise<string> {
  const hash = createHash("sha256").update(prefix);
  const out = await Deno.open(to, { write: true, create: true, truncate: true });
  try {
    await writeAll(out, prefix);
    using input = await Deno.open(from);
    const buffer = new Uint8Array(MIB);
    while (true) {
      const n = await input.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
      await writeAll(out, buffer.subarray(0, n));
    }
  } finally {
    out.close();
  }
  return hash.digest("hex");
}

/** SHA-256 (hex) of a file, streamed in 1 MiB pieces; null if it cannot be read. */
export async function hashFile(path: string): Promise<string | null> {
  try {
    using file = await Deno.open(path);
    const hash = createHash("sha256");
    const buffer = new Uint8Array(MIB);
    while (true) {
      const n = await file.read(buffer);
      if (n === null) break;
      hash.update(buffer.subarray(0, n));
    }
    return hash.digest("hex");
  } catch {
    return null;
  }
}

/** Reads `length` bytes at `offset` of a file; null if it cannot be read or is shorter. */
export async function readAt(path: string, offset: number, length: number): Promise<Uint8Array | null> {
  try {
    using file = await Deno.open(path);
    await file.seek(offset, Deno.SeekMode.Start);
    const out = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const n = await file.read(out.subarray(got));
      if (n === null) return null;
      got += n;
    }
    return out;
  } catch {
    return null;
  }
}

/** Size of a file, or -1 if it does not exist. */
export async function sizeOf(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return -1;
  }
}

/** Number of regular files below `dir` (not counting `.filesync`). */
export async function countFiles(dir: string): Promise<number> {
  let count = 0;
  const walk = async (path: string): Promise<void> => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(path));
    } catch {
      return;
    }
    for (const entry of entries) {
      if (entry.name === ".filesync" && path === dir) continue;
      if (entry.isFile) count++;
      else if (entry.isDirectory) await walk(join(path, entry.name));
    }
  };
  await walk(dir);
  return count;
}

/** Counts log lines of one kind ("uploaded", "downloaded") in an output text. */
export function countLines(output: string, verb: string): number {
  let count = 0;
  const needle = ` ${verb} `;
  for (let at = output.indexOf(needle); at >= 0; at = output.indexOf(needle, at + needle.length)) count++;
  return count;
}

const UNITS: Record<string, number> = { B: 1, KiB: KIB, MiB: MIB, GiB: 1024 * MIB };

/**
 * Content bytes the client logs claim went over the wire: for each "uploaded P (SIZE[, X sent])" and
 * "downloaded P (SIZE[, X received])" line, X if given, else SIZE. Sizes are as printed (one decimal).
 */
export function loggedContentBytes(output: string): { bytes: number; lines: number } {
  let bytes = 0;
  let lines = 0;
  const pattern =
    /(?:uploaded|downloaded) .* \((\d+(?:\.\d+)?) (B|KiB|MiB|GiB)(?:, (\d+(?:\.\d+)?) (B|KiB|MiB|GiB) (?:sent|received))?\)$/gm;
  for (const m of output.matchAll(pattern)) {
    lines++;
    bytes += m[3] ? Number(m[3]) * UNITS[m[4]] : Number(m[1]) * UNITS[m[2]];
  }
  return { bytes, lines };
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length;) at += await file.write(data.subarray(at));
}
