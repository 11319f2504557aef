// What a device does about locks: holds back changes of files others lock, makes them read-only, renews its own.
import { join } from "node:path";
import { describeHolder, type LockHolder, type WireLock } from "../protocol/locks.ts";
import { lstatInside } from "./safe_path.ts";
import type { Action } from "./reconcile.ts";
import type { ClientEvent } from "./events.ts";
import { STATE_DIR } from "./state.ts";

/** File in the state folder that remembers which files this device made read-only, and their modes before. */
const READONLY_FILE = "readonly.json";
/** Shortest wait before renewing an own lock (ms), so a very short lease does not renew in a tight loop. */
const MIN_RENEW_WAIT_MS = 200;
/** Wait before trying a renewal again that could not be sent (not connected, or it failed). */
const RENEW_RETRY_MS = 1000;

/**
 * The paths of an action that writes on the server, with whether a lock below a folder path counts too (a
 * folder's delete). Actions that only write here (downloads, local deletes and moves, sync) write none.
 */
function serverWrites(action: Action): { paths: string[]; below: boolean } | null {
  switch (action.type) {
    case "upload":
    case "mkdirRemote":
    case "conflict": // either way the path's server version and this device's version meet: after the lock
      return { paths: [action.path], below: false };
    case "deleteRemote":
      return { paths: [action.path], below: true };
    case "moveRemote":
      return { paths: [action.from, action.to], below: false };
    default:
      return null;
  }
}

/**
 * Splits a plan into what may run now and what waits for a lock of another device to end: every change this
 * device would send of a file such a lock covers (an upload, delete, move away or onto it, a delete of a folder
 * holding it, a conflict on it). The held actions' local files are left as they are: nothing is lost, and the
 * next plan after the lock ends sends them (or makes a conflicted copy, if the file changed meanwhile). Pure.
 *
 * @example
 * ```ts
 * const local = { kind: "file" as const, hash: "h", size: 1, mtime: 0 };
 * const locks = new Map([["a.txt", { path: "a.txt" }]]);
 * holdBackLocked([{ type: "upload", path: "a.txt", local, baseRev: 3 }], locks); // { allowed: [], held: [[…]] }
 * ```
 */
export function holdBackLocked<L extends { path: string }>(
  plan: readonly Action[],
  locks: ReadonlyMap<string, L>,
): { allowed: Action[]; held: [Action, L][] } {
  const allowed: Action[] = [];
  const held: [Action, L][] = [];
  for (const action of plan) {
    const writes = serverWrites(action);
    let lock: L | undefined;
    for (const path of writes?.paths ?? []) {
      lock = locks.get(path);
      if (!lock && writes!.below) {
        for (const [locked, l] of locks) if (locked.startsWith(`${path}/`)) lock ??= l;
      }
      if (lock) break;
    }
    if (lock) held.push([action, lock]);
    else allowed.push(action);
  }
  return { allowed, held };
}

/** How a renewal went (see {@linkcode LockGuardOptions.renew}). */
export type RenewOutcome = "renewed" | "gone" | "retry";

/** What this device did to a file's mode for a lock: the inode it changed, the mode it set, the mode before. */
interface ReadOnlyRecord {
  ino: number | null;
  mode: number;
  previous: number;
}

/** Options of {@linkcode LockGuard}. */
export interface LockGuardOptions {
  /** The synced folder. */
  root: string;
  /** Where what it sees and does is reported (locked, unlocked, errors). */
  emit: (event: ClientEvent) => void;
  /**
   * Sends a renewal of an own lock: resolves "renewed", "gone" (refused for good: the lock ended or was
   * forced open), or "retry" (it could not be sent: not connected).
   */
  renew: (path: string) => Promise<RenewOutcome>;
}

/**
 * The locks of the device's namespace as the server last reported them. Files that other devices lock are made
 * read-only here while the lock lasts (their mode is restored after); changes of them are held back (see
 * {@linkcode holdBackLocked}); this device's own locks are renewed halfway through each lease.
 */
export class LockGuard {
  #o: LockGuardOptions;
  /** Live locks of other devices, by path. */
  #others = new Map<string, WireLock>();
  /** Renewal timers of own locks, with the lease end each was scheduled for. */
  #renewals = new Map<string, { timer: ReturnType<typeof setTimeout>; expires: number }>();
  /** Paths this device holds a lock on. */
  #mine = new Set<string>();
  /** Files made read-only, by path (kept in the state folder, so a restart restores them too). */
  #readonly = new Map<string, ReadOnlyRecord>();
  /** Paths whose changes were held back, and whether the user was told, until their lock ends. */
  #held = new Set<string>();
  #stopped = false;

  /** A guard for one synced folder; {@linkcode load} reads what an earlier run made read-only. */
  constructor(options: LockGuardOptions) {
    this.#o = options;
  }

  get #file(): string {
    return join(this.#o.root, STATE_DIR, READONLY_FILE);
  }

  /** Reads the files an earlier run made read-only (restored once the server says their lock is gone). */
  load(): void {
    try {
      const saved = JSON.parse(Deno.readTextFileSync(this.#file)) as Record<string, ReadOnlyRecord>;
      for (const [path, record] of Object.entries(saved)) this.#readonly.set(path, record);
    } catch {
      // None yet, or unreadable: nothing of ours to restore.
    }
  }

  #save(): void {
    try {
      const tmp = `${this.#file}.tmp`;
      Deno.writeTextFileSync(tmp, JSON.stringify(Object.fromEntries(this.#readonly)), { mode: 0o600 });
      Deno.renameSync(tmp, this.#file);
    } catch (error) {
      this.#o.emit({
        type: "error",
        message: `cannot record the read-only files: ${(error as Error).message}`,
      });
    }
  }

  /** The live lock of another device on `path`, if any. */
  lockOf(path: string): WireLock | undefined {
    return this.#others.get(path);
  }

  /**
   * Takes the server's list of live locks (after a change, or at connect). Returns the paths to look at again:
   * those whose held-back changes may now be sent.
   */
  update(locks: readonly WireLock[], change?: { path: string; what: string; by?: string }): string[] {
    const others = new Map(locks.filter((l) => !l.mine).map((l) => [l.path, l]));
    const ended: string[] = [];
    for (const path of this.#others.keys()) if (!others.has(path)) ended.push(path);
    for (const [path, lock] of others) {
      // Announced when taken, or when first heard of at connect (`change` absent).
      if (
        !this.#others.has(path) && (change === undefined || (change.path === path && change.what === "taken"))
      ) {
        this.#o.emit({ type: "locked", path, user: lock.user, device: lock.device });
      }
    }
    const mine = new Set(locks.filter((l) => l.mine).map((l) => l.path));
    for (const path of this.#mine) {
      if (!mine.has(path) && change?.path === path && change.what !== "released") {
        const how = change.what === "expired" ? "expired" : "forced";
        this.#o.emit({ type: "unlocked", path, how, mine: true, ...(change.by ? { by: change.by } : {}) });
      }
    }
    this.#mine = mine;
    for (const path of ended) {
      if (change === undefined || change.path === path) {
        const how = change?.what === "expired" ? "expired" : change?.what === "forced" ? "forced" : "ended";
        this.#o.emit({ type: "unlocked", path, how });
      }
    }
    this.#others = others;
    this.#scheduleRenewals(locks.filter((l) => l.mine));
    this.protect();
    const again = new Set<string>();
    for (const path of this.#held) {
      if (this.#coveredBy(path) === undefined) {
        again.add(path);
        this.#held.delete(path);
      }
    }
    for (const path of ended) again.add(path);
    return [...again];
  }

  /** The lock of another device that covers `path` (on it, or on a file below it), if any. */
  #coveredBy(path: string): WireLock | undefined {
    const exact = this.#others.get(path);
    if (exact) return exact;
    for (const [locked, lock] of this.#others) if (locked.startsWith(`${path}/`)) return lock;
    return undefined;
  }

  /**
   * Leaves out of a plan the changes that a lock of another device stops, telling the user once per path. The
   * held paths are looked at again when their lock ends.
   */
  filter(plan: Action[]): Action[] {
    if (this.#others.size === 0) return plan;
    const { allowed, held } = holdBackLocked(plan, this.#others);
    for (const [action, lock] of held) {
      const path = "path" in action ? action.path : action.from;
      for (const p of "from" in action ? [action.from, action.to] : [action.path]) this.#held.add(p);
      if (this.#told.has(path)) continue;
      this.#told.add(path);
      this.#o.emit({
        type: "notice",
        message: `${path} is locked by ${
          describeHolder(lock)
        }: the change made here is kept and sent when the lock ends`,
      });
    }
    return allowed;
  }

  /** Paths the user was told about (one line per path while its lock lasts). */
  #told = new Set<string>();

  /**
   * Records a change the server refused as locked, perhaps before this device heard of the lock: the path is
   * held back (and, with the holder, treated as locked) until the server's next list of locks says otherwise.
   */
  refused(path: string, holder?: LockHolder): void {
    this.#held.add(path);
    this.#told.add(path);
    if (!holder || this.#others.has(path)) return;
    const lock = { path, ...holder, expires: 0, remainingMs: 0, leaseMs: 0, mine: false };
    this.#others.set(path, lock);
    this.protect();
  }

  /**
   * Makes the files other devices lock read-only (write bits off, once per file: a user who puts them back to
   * edit anyway keeps that), and restores the mode of files whose lock ended, unless the user changed it since.
   */
  protect(): void {
    // Windows has no write bits to take away (Deno cannot chmod there): changes are still held back.
    if (Deno.build.os === "windows") return;
    let changed = false;
    for (const path of this.#others.keys()) {
      let info: Deno.FileInfo | null;
      try {
        info = lstatInside(this.#o.root, path);
      } catch {
        continue; // a link on the way: nothing here is touched through it
      }
      if (!info?.isFile || info.mode === null) continue;
      const record = this.#readonly.get(path);
      if (record && record.ino === (info.ino ?? null)) continue;
      const previous = info.mode & 0o7777;
      const mode = previous & ~0o222;
      try {
        if (mode !== previous) Deno.chmodSync(join(this.#o.root, path), mode);
        this.#readonly.set(path, { ino: info.ino ?? null, mode, previous });
      } catch (error) {
        // Said once per file: recorded as left as it was, so it is neither tried again nor "restored" after.
        this.#o.emit({
          type: "error",
          message: `cannot make ${path} read-only: ${(error as Error).message}`,
          path,
        });
        this.#readonly.set(path, { ino: info.ino ?? null, mode: previous, previous });
      }
      changed = true;
    }
    for (const [path, record] of this.#readonly) {
      if (this.#others.has(path)) continue;
      this.#readonly.delete(path);
      changed = true;
      let info: Deno.FileInfo | null = null;
      try {
        info = lstatInside(this.#o.root, path);
      } catch {
        continue;
      }
      if (!info?.isFile || info.mode === null || (info.ino ?? null) !== record.ino) continue;
      if ((info.mode & 0o7777) !== record.mode) continue; // the user set another mode meanwhile: theirs stays
      try {
        Deno.chmodSync(join(this.#o.root, path), record.previous);
      } catch (error) {
        this.#o.emit({
          type: "error",
          message: `cannot restore the mode of ${path}: ${(error as Error).message}`,
          path,
        });
      }
    }
    for (const path of this.#told) if (this.#coveredBy(path) === undefined) this.#told.delete(path);
    if (changed) this.#save();
  }

  /**
   * Renews each own lock halfway through what is left of its lease. A lock whose end did not move keeps its
   * timer, so pushes about other locks (their renewals, say) never put a renewal off.
   */
  #scheduleRenewals(mine: readonly WireLock[]): void {
    const wanted = new Map(mine.map((l) => [l.path, l]));
    for (const [path, renewal] of this.#renewals) {
      if (wanted.get(path)?.expires === renewal.expires) continue;
      clearTimeout(renewal.timer);
      this.#renewals.delete(path);
    }
    if (this.#stopped) return;
    for (const lock of mine) {
      if (this.#renewals.has(lock.path)) continue;
      this.#scheduleRenewal(lock, Math.max(MIN_RENEW_WAIT_MS, lock.remainingMs / 2));
    }
  }

  #scheduleRenewal(lock: WireLock, waitMs: number): void {
    const timer = setTimeout(() => {
      // The server pushes the renewed lock to every device (this one too), which schedules the next renewal;
      // without that push the next one is due halfway through the new lease.
      this.#o.renew(lock.path).then((outcome) => {
        if (this.#renewals.get(lock.path)?.timer !== timer) return; // a newer list took over meanwhile
        this.#renewals.delete(lock.path);
        if (this.#stopped || outcome === "gone") return;
        this.#scheduleRenewal(
          lock,
          outcome === "retry" ? RENEW_RETRY_MS : Math.max(MIN_RENEW_WAIT_MS, lock.leaseMs / 2),
        );
      });
    }, waitMs);
    this.#renewals.set(lock.path, { timer, expires: lock.expires });
  }

  /** Stops renewing. */
  stop(): void {
    this.#stopped = true;
    for (const { timer } of this.#renewals.values()) clearTimeout(timer);
    this.#renewals.clear();
  }
}
