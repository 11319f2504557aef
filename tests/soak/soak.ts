// Seeded soak run: three real devices, random ops, restarts, server kill -9; then converge, fsck, no loss.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { chunkLengths } from "../../protocol/chunker.ts";
import { fileHashOfChunks, sha256Hex } from "../../protocol/hash.ts";
import {
  addUser,
  describeTree,
  type Proc,
  randomBytes,
  readTree,
  run as runCommand,
  startClient,
  startServer,
  TempDir,
  waitFor,
} from "../harness.ts";
import type { ServerProc } from "../harness.ts";
import { type DeviceView, DRAWS_PER_OP, type Op, planOp, type Race } from "./generator.ts";
import { indexOf, Rng } from "./rng.ts";
import { type FsckResult, HistoryReader, isUnsupported, runFsck } from "./server_check.ts";

/** Options of {@linkcode runSoak}. */
export interface SoakOptions {
  /** Seed of the run: the same seed replays the same sequence of operation choices. */
  seed: number;
  /** Number of operations. */
  ops: number;
  /** Where progress lines go. @default console.log */
  log?: (line: string) => void;
  /** Print every operation as it runs. @default false */
  verbose?: boolean;
  /** Deadline for the final convergence, in ms. @default 180000 */
  convergeTimeoutMs?: number;
}

/** What a soak run did and found. */
export interface SoakResult {
  seed: number;
  ops: number;
  /** Operations done, by kind (skipped ones are those whose target vanished before they ran). */
  kinds: Record<string, number>;
  skipped: number;
  clientRestarts: { term: number; kill: number };
  serverKills: number;
  /** Times the run confirmed deletes a device's safety stop held (`filesync confirm-deletes`, as a user would). */
  confirmedDeletes: number;
  settles: number;
  settleTimeouts: number;
  converged: boolean;
  /** Contents the run wrote and saw arrive on another device / of those, found nowhere at the end. */
  tracked: number;
  synced: number;
  lost: string[];
  /** Of the lost ones, those no operation of the run replaced or deleted on a device (lost by the sync itself). */
  lostUnreplaced: string[];
  /** False when the server does not serve VERSIONS/TRASH (then overwritten contents cannot be found). */
  historyServed: boolean;
  fsck: FsckResult | null;
  durationMs: number;
  /**
   * SHA-256 (first 16 hex digits) of the operations as run, for comparing two runs of one seed: they match
   * when the devices held the same paths whenever an operation chose its target.
   */
  opsDigest: string;
  /** The operations as run, one line each (what {@linkcode SoakResult.opsDigest} is computed over). */
  opLines: string[];
  /** Everything that is wrong; empty when the run passed. */
  failures: string[];
  /** Last operations and process output, for a failed run. */
  diagnostics: string;
}

const DEVICES = ["A", "B", "C"];
/** How long a pause in the run waits for the running devices to agree (a miss is noted, not a failure). */
const SETTLE_MS = 20_000;
const USER = "alice";
const PASSWORD = "correct horse battery";

interface Tracked {
  sha: string;
  fileHash: string;
  origin: number;
  what: string;
  synced: boolean;
  /** Paths where the run saw it (written there, or found there in a device's folder). */
  seenAt: Set<string>;
  /** A later operation of the run replaced or deleted a path of it (so only history can still hold it). */
  replaced: boolean;
}

/** Reads the environment's FILESYNC_SOAK_SEED / FILESYNC_SOAK_OPS, with defaults. */
export function soakSettings(defaultOps: number): { seed: number; ops: number } {
  const seedText = Deno.env.get("FILESYNC_SOAK_SEED");
  const opsText = Deno.env.get("FILESYNC_SOAK_OPS");
  const seed = seedText ? Number(seedText) : Math.floor(Math.random() * 2 ** 31);
  const ops = opsText ? Number(opsText) : defaultOps;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`Invalid FILESYNC_SOAK_SEED "${seedText}"`);
  }
  if (!Number.isSafeInteger(ops) || ops < 1) throw new RangeError(`Invalid FILESYNC_SOAK_OPS "${opsText}"`);
  return { seed, ops };
}

/** Runs one seeded soak run to the end and reports what it found (it does not throw for what it finds). */
export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const run = new SoakRun(options);
  try {
    return await run.run();
  } finally {
    await run.dispose();
  }
}

class SoakRun {
  readonly o: SoakOptions;
  readonly log: (line: string) => void;
  readonly rng: Rng;
  readonly tmp = new TempDir();
  server!: ServerProc;
  serverUp = false;
  port = 0;
  readonly clients: (Proc | null)[] = DEVICES.map(() => null);
  readonly allProcs: Proc[] = [];
  readonly restartAt: (number | null)[] = DEVICES.map(() => null);
  serverBackAt: number | null = null;
  readonly tracked = new Map<string, Tracked>();
  readonly paths = new Set<string>();
  readonly opLog: string[] = [];
  /** Tree lines (path and hash) a settle gave up waiting for. */
  readonly stuck = new Set<string>();
  /** How far each client's output was searched for safety stops. */
  readonly safetySeen = new Map<Proc, number>();
  readonly result: SoakResult;
  readonly started = Date.now();
  readonly digest = createHash("sha256");

  constructor(options: SoakOptions) {
    this.o = options;
    this.log = options.log ?? ((line) => console.log(line));
    this.rng = new Rng(options.seed);
    this.result = {
      seed: options.seed,
      ops: options.ops,
      kinds: {},
      skipped: 0,
      clientRestarts: { term: 0, kill: 0 },
      serverKills: 0,
      confirmedDeletes: 0,
      settles: 0,
      settleTimeouts: 0,
      converged: false,
      tracked: 0,
      synced: 0,
      lost: [],
      lostUnreplaced: [],
      historyServed: true,
      fsck: null,
      durationMs: 0,
      opsDigest: "",
      opLines: [],
      failures: [],
      diagnostics: "",
    };
  }

  dir(device: number): string {
    return this.tmp.join(DEVICES[device]);
  }

  get dataDir(): string {
    return this.tmp.join("server");
  }

  note(line: string): void {
    this.opLog.push(`${((Date.now() - this.started) / 1000).toFixed(1)}s ${line}`);
    if (this.o.verbose) this.log(`soak: ${line}`);
  }

  async run(): Promise<SoakResult> {
    const { seed, ops } = this.o;
    this.log(
      `soak: seed ${seed}, ${ops} operations (replay: FILESYNC_SOAK_SEED=${seed} FILESYNC_SOAK_OPS=${ops})`,
    );
    this.server = await startServer(this.dataDir);
    this.port = this.server.port;
    this.serverUp = true;
    await addUser(this.dataDir, USER, PASSWORD);
    for (let d = 0; d < DEVICES.length; d++) this.startDevice(d);
    await Promise.all(this.clients.map((c) => c!.waitForOutput(/connected to /, 60_000)));
    // Server kills at fixed points of the run (at least one, always in the middle), more in long runs.
    const kills = new Set([Math.floor(ops * 0.4), Math.floor(ops * 0.75)]);
    for (let k = 1; k * 1000 < ops; k++) kills.add(k * 1000 + 500);
    for (let i = 0; i < ops; i++) {
      const d = this.rng.draws(DRAWS_PER_OP);
      const pace = this.rng.draws(4);
      if (this.serverBackAt !== null && i >= this.serverBackAt) await this.startServerAgain();
      for (let dev = 0; dev < DEVICES.length; dev++) {
        if (this.restartAt[dev] !== null && i >= this.restartAt[dev]!) this.startDevice(dev);
      }
      if (kills.has(i) && this.serverUp) await this.killServer(i, 1 + indexOf(pace[2], 5));
      const device = indexOf(d[0], DEVICES.length);
      const view = await this.view(device);
      const op = planOp(d, view, { index: i, devices: DEVICES.length, device });
      await this.apply(i, device, op);
      if (pace[0] < 0.12) await this.settle();
      else {
        const gap = pace[1] < 0.7 ? Math.floor(pace[3] * 30) : 50 + Math.floor(pace[3] * 250);
        // Pacing of the generator (how fast a user types), not synchronization: nothing waits on it.
        await new Promise((resolve) => setTimeout(resolve, gap));
      }
      if ((i + 1) % 500 === 0) this.log(`soak: ${i + 1}/${ops} operations (${this.elapsed()})`);
    }
    this.result.opsDigest = this.digest.digest("hex").slice(0, 16);
    await this.finish();
    this.result.durationMs = Date.now() - this.started;
    if (this.result.failures.length > 0) this.result.diagnostics = this.diagnostics();
    this.log(
      `soak: seed ${seed}: ${
        this.result.failures.length === 0 ? "PASSED" : "FAILED"
      } in ${this.elapsed()}; ` +
        summary(this.result),
    );
    return this.result;
  }

  elapsed(): string {
    return `${((Date.now() - this.started) / 1000).toFixed(1)} s`;
  }

  startDevice(device: number): void {
    const client = startClient({
      server: `127.0.0.1:${this.port}`,
      ca: join(this.dataDir, "certs", "ca.pem"),
      user: USER,
      password: PASSWORD,
      dir: this.dir(device),
      device: DEVICES[device],
    });
    this.clients[device] = client;
    this.allProcs.push(client);
    this.restartAt[device] = null;
    this.note(`start client ${DEVICES[device]}`);
  }

  async stopDevice(device: number, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    const client = this.clients[device];
    if (!client) return;
    this.clients[device] = null;
    if (signal === "SIGKILL") {
      client.kill("SIGKILL");
      await client.exited();
      this.result.clientRestarts.kill++;
    } else {
      await client.stop();
      this.result.clientRestarts.term++;
    }
  }

  async killServer(index: number, offlineOps: number): Promise<void> {
    this.note(`kill -9 server (back after ${offlineOps} ops)`);
    this.server.kill("SIGKILL");
    await this.server.exited();
    this.serverUp = false;
    this.serverBackAt = index + offlineOps;
    this.result.serverKills++;
  }

  async startServerAgain(): Promise<void> {
    this.note("start server");
    this.server = await startServer(this.dataDir, [], this.port);
    this.serverUp = true;
    this.serverBackAt = null;
  }

  /** Files (with sizes) and folders on a device now; paths that vanish while listing are left out. */
  async view(device: number): Promise<DeviceView> {
    const view: DeviceView = { files: [], dirs: [] };
    const root = this.dir(device);
    const walk = async (rel: string) => {
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(rel ? join(root, rel) : root));
      } catch {
        return;
      }
      for (const entry of entries) {
        const path = rel ? `${rel}/${entry.name}` : entry.name;
        if (path === ".filesync") continue;
        this.paths.add(path);
        if (entry.isDirectory) {
          view.dirs.push(path);
          await walk(path);
        } else if (entry.isFile) {
          try {
            view.files.push({ path, size: (await Deno.lstat(join(root, path))).size });
          } catch { /* gone meanwhile */ }
        }
      }
    };
    await walk("");
    return view;
  }

  content(index: number, device: number, spec: { size: number; seed: number }): Uint8Array {
    if (spec.size === 0) return new Uint8Array();
    const header = new TextEncoder().encode(`soak ${this.o.seed} op ${index} ${DEVICES[device]}\n`);
    const out = new Uint8Array(header.length + spec.size);
    out.set(header);
    out.set(randomBytes(spec.size, spec.seed), header.length);
    return out;
  }

  /** Remembers a content the run wrote (its bytes' SHA-256 and its file hash over chunk ids). */
  track(bytes: Uint8Array, device: number, what: string, path: string): string {
    const sha = createHash("sha256").update(bytes).digest("hex");
    this.tracked.get(sha)?.seenAt.add(path);
    if (bytes.length === 0 || this.tracked.has(sha)) return sha;
    const ids: string[] = [];
    let at = 0;
    for (const length of chunkLengths(bytes)) {
      ids.push(sha256Hex(bytes.subarray(at, at + length)));
      at += length;
    }
    this.tracked.set(sha, {
      sha,
      fileHash: fileHashOfChunks(ids),
      origin: device,
      what,
      synced: false,
      replaced: false,
      seenAt: new Set([path]),
    });
    return sha;
  }

  async apply(index: number, device: number, op: Op): Promise<void> {
    const dev = DEVICES[device];
    await this.markReplaced(device, op);
    const abs = (path: string, on = device) => join(this.dir(on), path);
    const describe = `#${index} ${dev} ${describeOp(op)}`;
    this.digest.update(`${describe}\n`);
    this.result.opLines.push(describe);
    try {
      switch (op.kind) {
        case "create":
        case "overwrite": {
          const bytes = this.content(index, device, op.content);
          await Deno.writeFile(abs(op.path), bytes, { createNew: op.kind === "create" });
          await this.afterWrite(device, op.path, bytes, describe, op.wait);
          break;
        }
        case "append": {
          await Deno.lstat(abs(op.path));
          await Deno.writeFile(abs(op.path), this.content(index, device, op.content), { append: true });
          await this.afterWrite(device, op.path, await Deno.readFile(abs(op.path)), describe, op.wait);
          break;
        }
        case "patch": {
          using file = await Deno.open(abs(op.path), { read: true, write: true });
          await file.seek(op.offset, Deno.SeekMode.Start);
          const bytes = this.content(index, device, op.content);
          for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
          file.close();
          await this.afterWrite(device, op.path, await Deno.readFile(abs(op.path)), describe, op.wait);
          break;
        }
        case "delete":
          await Deno.remove(abs(op.path));
          break;
        case "rename":
        case "renameDir":
          await Deno.lstat(abs(op.to)).then(
            () => Promise.reject(new Deno.errors.AlreadyExists(op.to)),
            () => Deno.rename(abs(op.from), abs(op.to)),
          );
          this.paths.add(op.to);
          break;
        case "mkdir":
          await Deno.mkdir(abs(op.path));
          this.paths.add(op.path);
          for (const file of op.files) {
            const bytes = this.content(index, device, file.content);
            await Deno.writeFile(abs(file.path), bytes);
            this.paths.add(file.path);
            this.track(bytes, device, `${describe} ${file.path}`, file.path);
          }
          break;
        case "rmdir":
          await Deno.remove(abs(op.path), { recursive: true });
          break;
        case "conflict": {
          const mine = this.content(index, device, op.content);
          const theirs = this.content(index, op.other, op.otherContent);
          await Deno.writeFile(abs(op.path), mine);
          this.track(mine, device, describe, op.path);
          try {
            await Deno.writeFile(abs(op.path, op.other), theirs);
            this.track(theirs, op.other, `${describe} (on ${DEVICES[op.other]})`, op.path);
          } catch { /* the folder is not on the other device (yet): a plain edit then */ }
          break;
        }
        case "race":
          await this.race(index, device, op, describe);
          break;
        case "restart":
          if (this.clients[device]) {
            await this.stopDevice(device, op.signal);
            if (op.offlineOps === 0) this.startDevice(device);
            else this.restartAt[device] = index + op.offlineOps;
          } else {
            this.startDevice(device);
          }
          break;
      }
      this.result.kinds[op.kind] = (this.result.kinds[op.kind] ?? 0) + 1;
      this.note(describe);
    } catch (error) {
      // The target changed under the generator (a sync moved or removed it): the operation is skipped.
      this.result.skipped++;
      this.note(`${describe}: skipped (${(error as Error).name})`);
    }
  }

  /** Both halves of a race, back to back; a half whose target is not on its device is left out. */
  async race(index: number, device: number, op: Race, describe: string): Promise<void> {
    const mine = (path: string) => join(this.dir(device), path);
    const theirs = (path: string) => join(this.dir(op.other), path);
    const renameNew = async (from: string, to: string) => {
      await Deno.lstat(to).then(() => Promise.reject(new Deno.errors.AlreadyExists(to)), () => {});
      await Deno.rename(from, to);
    };
    const bytes = this.content(index, op.other, op.content);
    const first = async () => {
      switch (op.variant) {
        case "deleteVsEdit":
          return await Deno.remove(mine(op.path));
        case "renameVsEdit":
        case "renameVsRename":
        case "renameDirVsEdit":
          return await renameNew(mine(op.path), mine(op.to));
        case "rmdirVsCreate":
        case "rmdirVsEdit":
          return await Deno.remove(mine(op.path), { recursive: true });
      }
    };
    const second = async () => {
      switch (op.variant) {
        case "deleteVsEdit":
        case "renameVsEdit":
          await Deno.lstat(theirs(op.path));
          await Deno.writeFile(theirs(op.path), bytes);
          return this.track(bytes, op.other, `${describe} (edit on ${DEVICES[op.other]})`, op.path);
        case "renameVsRename":
          return await renameNew(theirs(op.path), theirs(op.otherTo));
        case "rmdirVsCreate":
        case "renameDirVsEdit":
        case "rmdirVsEdit":
          if (op.variant !== "rmdirVsCreate") await Deno.lstat(theirs(op.inner));
          await Deno.writeFile(theirs(op.inner), bytes);
          return this.track(bytes, op.other, `${describe} (${op.inner} on ${DEVICES[op.other]})`, op.inner);
      }
    };
    const results: PromiseSettledResult<unknown>[] = await Promise.allSettled([first()]);
    results.push(...await Promise.allSettled([second()]));
    for (const path of [op.path, op.to, op.otherTo, op.inner]) if (path) this.paths.add(path);
    if (results.every((r) => r.status === "rejected")) throw (results[0] as PromiseRejectedResult).reason;
  }

  /**
   * Marks the contents an operation is about to replace or delete on the device (read before it runs):
   * those may then survive only in the server's history.
   */
  async markReplaced(device: number, op: Op): Promise<void> {
    const mark = (hash: string) => {
      const t = this.tracked.get(hash);
      if (t) t.replaced = true;
    };
    const markFile = async (on: number, path: string) => {
      try {
        mark(createHash("sha256").update(await Deno.readFile(join(this.dir(on), path))).digest("hex"));
      } catch { /* nothing there */ }
    };
    const markTree = async (on: number, path: string) => {
      try {
        for (const hash of (await readTree(join(this.dir(on), path))).values()) mark(hash);
      } catch { /* gone */ }
    };
    switch (op.kind) {
      case "create":
      case "overwrite":
      case "append":
      case "patch":
      case "delete":
        return await markFile(device, op.path);
      case "conflict":
        await markFile(device, op.path);
        return await markFile(op.other, op.path);
      case "rmdir":
        return await markTree(device, op.path);
      case "race":
        if (op.variant === "deleteVsEdit" || op.variant === "renameVsEdit") await markFile(op.other, op.path);
        if (op.variant === "deleteVsEdit") await markFile(device, op.path);
        if (op.variant === "rmdirVsCreate" || op.variant === "rmdirVsEdit") await markTree(device, op.path);
        if (op.variant === "renameDirVsEdit" || op.variant === "rmdirVsEdit") {
          await markFile(op.other, op.inner);
        }
    }
  }

  async afterWrite(
    device: number,
    path: string,
    bytes: Uint8Array,
    what: string,
    wait: boolean,
  ): Promise<void> {
    this.paths.add(path);
    const sha = this.track(bytes, device, what, path);
    const others = this.runningOthers(device);
    if (!wait || !this.serverUp || others.length === 0 || bytes.length === 0) return;
    // Wait until the content arrives on another running device (marking it synced), with a deadline.
    const arrived = await waitFor(async () => {
      for (const other of others) {
        try {
          const got = await Deno.readFile(join(this.dir(other), path));
          if (createHash("sha256").update(got).digest("hex") === sha) return true;
        } catch { /* not there yet */ }
      }
      return false;
    }, { timeoutMs: 20_000, intervalMs: 50 }).then(() => true, () => false);
    if (arrived) this.tracked.get(sha)!.synced = true;
    else this.note(`  ${path} did not reach another device within 20 s`);
  }

  runningOthers(device: number): number[] {
    return DEVICES.map((_, i) => i).filter((i) => i !== device && this.clients[i] !== null);
  }

  /** Hashed trees of the given devices; marks every tracked content seen off its origin device as synced. */
  async trees(devices: number[]): Promise<Map<string, string>[]> {
    const trees = await Promise.all(devices.map((d) => readTree(this.dir(d)).catch(() => new Map())));
    trees.forEach((tree, k) => {
      for (const [path, hash] of tree) {
        this.paths.add(path);
        const t = this.tracked.get(hash);
        t?.seenAt.add(path);
        if (t && t.origin !== devices[k]) t.synced = true;
      }
    });
    return trees;
  }

  /**
   * Waits (with a deadline) until the running devices hold the same tree; ops are paused meanwhile. After a
   * settle timed out, the differences it ended with are known to be stuck and no longer waited for (so one
   * divergence does not slow the rest of a long run down; the final check still counts them).
   */
  async settle(): Promise<void> {
    const running = DEVICES.map((_, i) => i).filter((i) => this.clients[i] !== null);
    if (!this.serverUp || running.length < 2) return;
    this.result.settles++;
    let diff: string[] = [];
    const ok = await waitFor(async () => {
      await this.confirmHeldDeletes();
      diff = differingLines((await this.trees(running)).map(describeTree));
      return diff.every((line) => this.stuck.has(line));
    }, { timeoutMs: SETTLE_MS, intervalMs: 100 }).then(() => true, () => false);
    if (!ok) {
      this.result.settleTimeouts++;
      for (const line of diff) this.stuck.add(line);
      this.note(
        `settle: ${running.map((d) => DEVICES[d]).join(",")} did not converge within ${SETTLE_MS / 1000} s: ${
          diff.join("; ")
        }`,
      );
      this.log(
        `soak: seed ${this.o.seed}: devices did not converge within ${
          SETTLE_MS / 1000
        } s (${this.elapsed()}): ${diff.join("; ")}`,
      );
    } else this.note(`settled ${running.map((d) => DEVICES[d]).join(",")}`);
  }

  /**
   * The run deletes folders with their files on purpose: when a device's safety stop holds such deletes back
   * (it prints "safety stop: …"), they are confirmed with `filesync confirm-deletes`, as the user would.
   */
  async confirmHeldDeletes(): Promise<void> {
    for (let d = 0; d < DEVICES.length; d++) {
      const client = this.clients[d];
      if (!client) continue;
      const seen = this.safetySeen.get(client) ?? 0;
      if (!/safety stop: this scan would delete/.test(client.output.slice(seen))) continue;
      this.safetySeen.set(client, client.output.length);
      const { code, output } = await runCommand(["confirm-deletes", "--dir", this.dir(d)]);
      this.result.confirmedDeletes++;
      this.note(`confirm-deletes on ${DEVICES[d]} (exit ${code}): ${output.trim()}`);
    }
  }

  async finish(): Promise<void> {
    const failures = this.result.failures;
    if (!this.serverUp) await this.startServerAgain();
    for (let d = 0; d < DEVICES.length; d++) if (!this.clients[d]) this.startDevice(d);
    this.note("ops stopped; waiting for the three folders to converge");
    const all = DEVICES.map((_, i) => i);
    let last: string[] = [];
    const timeoutMs = this.o.convergeTimeoutMs ?? 180_000;
    this.result.converged = await waitFor(async () => {
      await this.confirmHeldDeletes();
      last = (await this.trees(all)).map(describeTree);
      return last.every((l) => l === last[0]);
    }, { timeoutMs, intervalMs: 200 }).then(() => true, () => false);
    const finalTrees = await this.trees(all);
    if (!this.result.converged) {
      failures.push(`the three folders did not converge within ${timeoutMs / 1000} s:\n${diffTrees(last)}`);
    }
    // Every content seen on another device must still be somewhere: a current file (any path, conflicted
    // copies included) on some device, or a kept version / trash item on the server.
    const current = new Set(finalTrees.flatMap((t) => [...t.values()]));
    const synced = [...this.tracked.values()].filter((t) => t.synced);
    this.result.tracked = this.tracked.size;
    this.result.synced = synced.length;
    let missing = synced.filter((t) => !current.has(t.sha));
    if (missing.length > 0) missing = await this.notInHistory(missing);
    this.result.lost = missing.map((t) => t.what);
    const unreplaced = missing.filter((t) => !t.replaced);
    this.result.lostUnreplaced = unreplaced.map((t) => t.what);
    if (unreplaced.length > 0) {
      failures.push(
        `${unreplaced.length} synced contents that no later operation replaced or deleted are gone:\n  ` +
          unreplaced.slice(0, 30).map((t) => t.what).join("\n  "),
      );
    }
    if (missing.length > 0) {
      failures.push(
        `${missing.length} synced contents are neither a current file nor a kept version` +
          `${this.result.historyServed ? "" : " (the server does not serve VERSIONS/TRASH)"}:\n  ` +
          missing.slice(0, 30).map((t) => t.what).join("\n  "),
      );
    }
    for (let d = 0; d < DEVICES.length; d++) await this.stopDevice(d, "SIGTERM");
    await this.server.stop();
    this.serverUp = false;
    this.result.fsck = await runFsck(this.dataDir);
    if (this.result.fsck.code !== 0) {
      failures.push(`fsck exited ${this.result.fsck.code}:\n${this.result.fsck.output.slice(0, 4000)}`);
    }
  }

  /**
   * The contents among `missing` that the server keeps no version of. The paths where the run saw them are
   * asked first; only for what is still missing then, every path the run saw and every trash item.
   */
  async notInHistory(missing: Tracked[]): Promise<Tracked[]> {
    const hashes = new Set<string>();
    const asked = new Set<string>();
    try {
      await using reader = await HistoryReader.open({
        port: this.port,
        caPem: await Deno.readTextFile(join(this.dataDir, "certs", "ca.pem")),
        user: USER,
        password: PASSWORD,
      });
      const ask = async (paths: Iterable<string>) => {
        const list = [...paths].filter((p) => !asked.has(p));
        for (const p of list) asked.add(p);
        for (let at = 0; at < list.length; at += 32) {
          const batch = await Promise.all(list.slice(at, at + 32).map((p) => reader.versionHashes(p)));
          for (const h of batch.flat()) hashes.add(h);
        }
      };
      await ask(missing.flatMap((t) => [...t.seenAt]));
      const left = missing.filter((t) => !hashes.has(t.fileHash));
      if (left.length > 0) await ask([...this.paths, ...await reader.trashPaths()]);
    } catch (error) {
      if (!isUnsupported(error)) throw error;
      this.result.historyServed = false;
    }
    return missing.filter((t) => !hashes.has(t.fileHash));
  }

  diagnostics(): string {
    const tail = (text: string, n: number) => text.trimEnd().split("\n").slice(-n).join("\n");
    const parts = [`last operations:\n${this.opLog.slice(-60).join("\n")}`];
    for (const proc of this.allProcs.slice(-6)) parts.push(`--- ${proc.name}:\n${tail(proc.output, 40)}`);
    parts.push(`--- server:\n${tail(this.server.output, 40)}`);
    return parts.join("\n");
  }

  async dispose(): Promise<void> {
    await Promise.all(this.allProcs.map((p) => p.stop()));
    if (this.server) await this.server.stop();
    await this.tmp[Symbol.asyncDispose]();
  }
}

function describeOp(op: Op): string {
  switch (op.kind) {
    case "create":
    case "overwrite":
    case "append":
      return `${op.kind} ${op.path} (${op.content.size} B${op.wait ? ", wait" : ""})`;
    case "patch":
      return `patch ${op.path} @${op.offset} (${op.content.size} B)`;
    case "delete":
    case "rmdir":
      return `${op.kind} ${op.path}`;
    case "rename":
    case "renameDir":
      return `${op.kind} ${op.from} -> ${op.to}`;
    case "mkdir":
      return `mkdir ${op.path} with ${op.files.length} files`;
    case "conflict":
      return `conflict ${op.path} with ${DEVICES[op.other]}`;
    case "restart":
      return `restart (${op.signal}, offline ${op.offlineOps} ops)`;
    case "race":
      return `race ${op.variant} ${op.path}${op.inner ? ` / ${op.inner}` : ""} with ${DEVICES[op.other]}`;
  }
}

/** The lines (path and hash) that are not in every listing. */
function differingLines(listings: string[]): string[] {
  const sets = listings.map((l) => new Set(l.split("\n").filter(Boolean)));
  const union = new Set(sets.flatMap((set) => [...set]));
  return [...union].filter((line) => !sets.every((set) => set.has(line))).sort();
}

/** The lines where the listings of the devices differ. */
function diffTrees(listings: string[]): string {
  const sets = listings.map((l) => new Set(l.split("\n").filter(Boolean)));
  const union = new Set(sets.flatMap((s) => [...s]));
  const lines: string[] = [];
  for (const line of [...union].sort()) {
    const on = sets.map((s, i) => s.has(line) ? DEVICES[i] : "-").join("");
    if (on.includes("-")) lines.push(`  ${on}  ${line}`);
  }
  return lines.slice(0, 60).join("\n");
}

/** One line of counts. */
export function summary(r: SoakResult): string {
  const kinds = Object.entries(r.kinds).map(([k, n]) => `${k} ${n}`).join(", ");
  return `${r.ops} ops (${kinds}; ${r.skipped} skipped; digest ${r.opsDigest}), client restarts ${r.clientRestarts.term} SIGTERM + ` +
    `${r.clientRestarts.kill} kill -9, server kill -9 ${r.serverKills}, deletes confirmed ${r.confirmedDeletes}, settles ${r.settles} ` +
    `(${r.settleTimeouts} timed out), converged ${r.converged}, contents ${r.tracked} tracked / ${r.synced} ` +
    `synced / ${r.lost.length} lost (${r.lostUnreplaced.length} never replaced), fsck ${
      r.fsck ? `exit ${r.fsck.code}` : "not run"
    }`;
}
