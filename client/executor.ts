// Runs a reconcile plan: checks that each path still holds what the plan saw, then writes locally or commits.
import type { ClientEvent, EventBus } from "./events.ts";
import { basename, dirname, join } from "node:path";
import {
  type Change,
  type ChangeResult,
  commonEnds,
  encodeRows,
  FETCH_INLINE_BYTES,
  MAX_FETCH_BYTES,
  MAX_FETCH_ITEMS,
  type WireEntry,
} from "../protocol/messages.ts";
import { BAD_NAME_CODE } from "../protocol/paths.ts";
import { LOCKED_CODE, type LockHolder } from "../protocol/locks.ts";
import { type RpcPeer } from "../protocol/rpc.ts";
import { commitBatchSize, UPLOADS_PER_COMMIT } from "./commit_batch.ts";
import { type FolderMove, folderMoves, type MoveLocal } from "./folder_moves.ts";
import { emptiedIn, type FolderDeleted, type MoveDone, reportMoves } from "./move_report.ts";
import type { ChunkRow } from "../protocol/messages.ts";
import type { MountTable } from "./mounts.ts";
import { type Action, actionPaths, type LocalEntry, type RemoteEntry } from "./reconcile.ts";
import { FileChangedError, type ScanEntry, type Scanner } from "./scanner.ts";
import type { BaseRecord, ClientState } from "./state.ts";
import { lstatInside } from "./safe_path.ts";
import {
  type FetchedFile,
  fetchFile,
  fetchSmallFiles,
  type Progress,
  releaseTempFile,
  sendFile,
  StaleError,
} from "./transfer.ts";

/** Small files transferred at once, and the size up to which a file counts as small. */
const PARALLEL_SMALL_FILES = 32;
const SMALL_FILE_BYTES = 1024 * 1024;
/** Most small downloads in one FETCH, and FETCHes in flight at once. */
const FETCH_BATCH = 128;
const PARALLEL_FETCHES = 4;
/** Large files transferred at once (each keeps up to 32 MiB in flight). */
const PARALLEL_LARGE_FILES = 2;
/** How long small uploads wait to be committed together. */
const COMMIT_WAIT_MS = 50;

/** What the executor works with. */
export interface ExecutorContext {
  root: string;
  state: ClientState;
  scanner: Scanner;
  peer: RpcPeer;
  /** The current local snapshot (updated as the executor writes). */
  local: Map<string, ScanEntry>;
  /** Where what it does goes: one event per upload, download, delete, move, conflict (client/events.ts). */
  events?: EventBus;
  /**
   * Folders reported as renamed, kept by the caller from run to run (see client/move_report.ts): their deletes,
   * which may come in a later run, are part of the rename. @default kept for one run only
   */
  renamedFolders?: Set<string>;
  progress?: Progress;
  /** Paths whose last commit lacked chunks the local index said the server had: ask about every chunk. */
  distrust: Set<string>;
  /**
   * Changes the server refused for good (file too large, quota exceeded, a name some device cannot hold): path
   * to the refused content's hash ("" for a folder) and the refusal's code. The caller leaves them out of its
   * plans until the content changes; a quota refusal gets another try once this device deletes something.
   * @default none kept
   */
  refused?: Map<string, { hash: string; code: string }>;
  /**
   * Told of a change the server refused because another device locks the path: it is not retried at once (nor
   * dropped); the caller sends it again once the lock ends. @default nothing more is done
   */
  locked?: (path: string, holder?: LockHolder) => void;
}

/** Refusals that sending the same content again cannot fix: reported once, not retried in a loop. */
const FINAL_REFUSALS = new Set(["too_large", "quota_exceeded", BAD_NAME_CODE]);

/** Counts of what a plan run did. */
export interface ExecutionReport {
  done: number;
  skipped: number;
  /** True when the plan made new local files (conflict copies) that the next cycle must upload. */
  again: boolean;
}

/** Refusals that only mean another device changed the path first. */
const RACE_CODES = new Set(["conflict", "exists", "not_empty"]);

/** A plan's download action. */
type DownloadAction = Extract<Action, { type: "download" }>;

/**
 * Splits small downloads into FETCH batches: at most {@linkcode FETCH_BATCH} files and
 * {@linkcode MAX_FETCH_BYTES} of content each, in plan order.
 */
export function fetchBatches<T extends { remote: { size: number } }>(actions: readonly T[]): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const action of actions) {
    if (
      current.length >= Math.min(FETCH_BATCH, MAX_FETCH_ITEMS) || bytes + action.remote.size > MAX_FETCH_BYTES
    ) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(action);
    bytes += action.remote.size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

/** Thrown when a local path no longer holds what the plan expected. */
class Changed extends Error {}

interface QueuedChange {
  change: Change;
  rows?: ChunkRow[];
  onDone: (result: ChangeResult) => void | Promise<void>;
  /**
   * The change is (part of) a plan action already counted as done: a refusal that another try may get past
   * (a race, missing chunks) moves it to skipped, so the next cycle looks at its paths again (the server's
   * events may not touch them all: a refused move's target). False for changes whose caller handles the
   * refusal itself.
   */
  counted: boolean;
}

function statOf(info: Deno.FileInfo): { size: number; mtime: number; ino: number | null } {
  return {
    size: info.isFile ? info.size : 0,
    mtime: info.isFile ? info.mtime?.getTime() ?? 0 : 0,
    ino: info.ino ?? null,
  };
}

// Small file-system calls here (lstat, rename, mkdir) are synchronous: they are quick, and the async thread
// pool adds more latency than they cost when many transfers run at once. Only fsync and bulk I/O stay
// asynchronous.

/**
 * fsync of a folder, so that renames into it survive a crash. A folder gone meanwhile (the user removed or moved
 * it just after the rename) holds nothing of this device's to make durable: that is not an error.
 */
function fsyncFolder(path: string): Promise<void> {
  if (Deno.build.os === "windows") return Promise.resolve(); // no folder fsync there: NTFS journals the rename
  let folder: Deno.FsFile;
  try {
    folder = Deno.openSync(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return Promise.resolve();
    return Promise.reject(error);
  }
  return folder.sync().finally(() => folder.close());
}

/**
 * Group commit of folder fsyncs: {@linkcode FolderSyncs.sync} makes what was renamed into a folder before the call
 * durable. Calls for one folder while its fsync runs share the next one: each caller's fsync starts after its
 * call, and a burst of downloads into one folder costs a few fsyncs instead of one per file.
 */
export class FolderSyncs {
  #fsync: (path: string) => Promise<void>;
  /** Per folder: the fsync that has not started yet (callers join it) and the last one started or queued. */
  #slots = new Map<string, { queued: Promise<void> | null; last: Promise<void> }>();

  /** Group commit over `fsync` (of a folder path). @default fsyncFolder */
  constructor(fsync: (path: string) => Promise<void> = fsyncFolder) {
    this.#fsync = fsync;
  }

  /** Resolves once an fsync of `path` that started after this call has finished; rejects if that one failed. */
  sync(path: string): Promise<void> {
    const slot = this.#slots.get(path) ?? { queued: null, last: Promise.resolve() };
    if (slot.queued) return slot.queued;
    const queued = slot.last.catch(() => {}).then(() => {
      slot.queued = null; // started: later callers need the next one
      return this.#fsync(path);
    });
    slot.queued = queued;
    slot.last = queued;
    this.#slots.set(path, slot);
    queued.catch(() => {}).finally(() => {
      if (slot.last === queued) this.#slots.delete(path);
    });
    return queued;
  }
}

const folderSyncs = new FolderSyncs();

/** fsync of the folder `path` through the process's {@linkcode FolderSyncs}. */
function syncFolder(path: string): Promise<void> {
  return folderSyncs.sync(path);
}

/** A byte count for the terminal: `512 B`, `1.5 KiB`, `3.0 MiB`, `1.25 GiB`. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GiB`;
}

/** Runs plans against the local folder and the server. */
export class Executor {
  #ctx: ExecutorContext;
  #queue: QueuedChange[] = [];
  #commitTimer: ReturnType<typeof setTimeout> | undefined;

  #report: ExecutionReport = { done: 0, skipped: 0, again: false };

  /** An executor over one connection. */
  constructor(ctx: ExecutorContext) {
    this.#ctx = ctx;
  }

  /** Runs the plan in order; consecutive actions of one kind run together. */
  async run(plan: Action[]): Promise<ExecutionReport> {
    this.#report = { done: 0, skipped: 0, again: false };
    this.#moves = [];
    this.#folderDeletes = [];
    try {
      await this.#runSegments(plan);
    } finally {
      this.#reportMoves();
    }
    return this.#report;
  }

  #emit(event: ClientEvent): void {
    this.#ctx.events?.emit(event);
  }

  /** Moves and folder deletes of this run, reported together at its end (a folder rename is one event). */
  #moves: MoveDone[] = [];
  #folderDeletes: FolderDeleted[] = [];

  #reportMoves(): void {
    if (this.#moves.length === 0 && this.#folderDeletes.length === 0) return;
    const { local, state } = this.#ctx;
    const emptiedHere = emptiedIn(() => local.keys(), { gone: true });
    // On the server, the old folder (and folders in it) may go in a later commit: what counts is that no file
    // is left in it.
    const remoteFiles = function* () {
      for (const [path, entry] of state.remote) if (entry.kind === "file") yield path;
    };
    const emptiedThere = emptiedIn(remoteFiles, { gone: false });
    const events = reportMoves(this.#moves, this.#folderDeletes, {
      emptied: (folder, where) => where === "server" ? emptiedHere(folder) : emptiedThere(folder),
      renamed: this.#ctx.renamedFolders,
    });
    this.#moves = [];
    this.#folderDeletes = [];
    for (const event of events) this.#emit(event);
  }

  async #runSegments(plan: Action[]): Promise<void> {
    let i = 0;
    while (i < plan.length) {
      const group = groupOf(plan[i]);
      let j = i;
      while (j < plan.length && groupOf(plan[j]) === group) j++;
      let segment = plan.slice(i, j);
      if (group === "move") segment = await this.#moveFolders(segment);
      if (group === "transfer") await this.#parallel(segment);
      else for (const action of segment) await this.#guard(action);
      await this.#settleMoves();
      clearTimeout(this.#commitTimer);
      this.#commitTimer = undefined;
      await this.#flushCommits();
      await this.#ctx.state.flush();
      i = j;
    }
  }

  /** Transfers: many small files at once (their cost is round trips and syncs), a few large ones. */
  async #parallel(actions: Action[]): Promise<void> {
    const sizeOf = (a: Action) =>
      a.type === "upload" ? a.local.size : a.type === "download" ? a.remote.size : 0;
    const fetchable = (a: Action): a is DownloadAction =>
      a.type === "download" && a.remote.kind === "file" && a.remote.size <= FETCH_INLINE_BYTES;
    const batches = fetchBatches(actions.filter(fetchable));
    const small = actions.filter((a) => !fetchable(a) && sizeOf(a) <= SMALL_FILE_BYTES);
    const large = actions.filter((a) => sizeOf(a) > SMALL_FILE_BYTES);
    const pool = async <T>(list: T[], width: number, run: (item: T) => Promise<void>) => {
      let next = 0;
      const worker = async () => {
        while (next < list.length) await run(list[next++]);
      };
      await Promise.all(Array.from({ length: Math.min(width, list.length) }, worker));
    };
    const guard = (action: Action) => this.#guard(action);
    await Promise.all([
      pool(batches, PARALLEL_FETCHES, (batch) => this.#fetchBatch(batch)),
      pool(small, PARALLEL_SMALL_FILES, guard),
      pool(large, PARALLEL_LARGE_FILES, guard),
    ]);
  }

  async #guard(action: Action): Promise<void> {
    try {
      const paths = actionPaths(action);
      if (this.#pendingMoves.some((p) => paths.some((path) => p.paths.includes(path)))) {
        await this.#settleMoves();
      }
      await this.#one(action);
      // Save progress now and then, so a crash in a long run does not lose what was done.
      if (++this.#report.done % 500 === 0) await this.#ctx.state.flush();
    } catch (error) {
      this.#failed(action, error);
    }
  }

  /** Counts a failed action as skipped and says why (unless it only found the path changed). */
  #failed(action: Action, error: unknown): void {
    this.#report.skipped++;
    if (error instanceof Changed || error instanceof StaleError || error instanceof FileChangedError) return;
    if ((error as { code?: string }).code === "closed") throw error;
    const path = "path" in action ? action.path : action.from;
    this.#emit({
      type: "error",
      message: `could not ${describe(action)}: ${(error as Error).message}`,
      path,
    });
  }

  /**
   * Moves renamed on disk whose folder fsyncs, and then base records, are still to come: a run of moves shares
   * its folders' fsyncs (see {@linkcode FolderSyncs}) instead of waiting for two per file. Settled before the
   * segment ends, and before any action on one of their paths.
   */
  #pendingMoves: { paths: string[]; done: Promise<void> }[] = [];

  async #settleMoves(): Promise<void> {
    while (this.#pendingMoves.length > 0) {
      const pending = this.#pendingMoves;
      this.#pendingMoves = [];
      await Promise.all(pending.map((p) => p.done));
    }
  }

  /**
   * A move between namespaces (own files and a share, or two shares) is no move on the server: the new path is
   * uploaded into its namespace (content the server has is not sent again: only the manifest goes) and the old
   * one deleted from its own after. A folder's new path is made there; what it holds follows as new files.
   */
  async #moveAcross(action: Extract<Action, { type: "moveRemote" }>): Promise<void> {
    const { state } = this.#ctx;
    if (action.local.kind === "file") await this.#upload(action.to, action.local, 0);
    else {
      this.#enqueue({ op: "mkdir", path: action.to, baseRev: 0 }, undefined, (r) => {
        if (r.ok) this.#recordRemoteDir(r.entries);
      });
      return; // the old folder goes in a later cycle, once what it held is uploaded at the new place
    }
    this.#enqueue(
      { op: "delete", path: action.from, kind: "file", baseRev: action.baseRev },
      undefined,
      (r) => {
        if (!r.ok) return;
        state.setBase(action.from, null);
        this.#moves.push({
          from: action.from,
          to: action.to,
          where: "server",
          note: "into another namespace",
        });
      },
    );
  }

  #abs(path: string): string {
    return join(this.#ctx.root, path);
  }

  async #one(action: Action): Promise<void> {
    const { state } = this.#ctx;
    switch (action.type) {
      case "sync": {
        if (!action.base) state.setBase(action.path, null);
        else {
          const local = this.#ctx.local.get(action.path);
          const stat = { size: local?.size ?? 0, mtime: local?.mtime ?? 0, ino: local?.ino ?? null };
          const rows = local?.kind === "file" ? this.#ctx.scanner.hashedRows(action.path, stat) : undefined;
          state.setBase(action.path, { ...action.base, ...stat }, rows);
          this.#ctx.scanner.forget(action.path);
        }
        return;
      }
      case "mkdirLocal":
        await this.#mkdirLocal(action.path, action.remote, action.expect);
        return;
      case "mkdirRemote":
        this.#enqueue({ op: "mkdir", path: action.path, baseRev: action.baseRev }, undefined, (r) => {
          if (r.ok) this.#recordRemoteDir(r.entries);
        });
        return;
      case "moveLocal":
        this.#moveLocal(action);
        return;
      case "moveRemote":
        if (state.mounts.keyOf(action.from) !== state.mounts.keyOf(action.to)) {
          await this.#moveAcross(action);
          return;
        }
        this.#enqueue(
          { op: "move", from: action.from, path: action.to, baseRev: action.baseRev },
          undefined,
          (r) => {
            if (!r.ok) return;
            const entry = r.entries.find((e) => e.path === action.to && !e.deleted);
            const local = this.#ctx.local.get(action.to);
            const rows = state.rows.get(action.from);
            state.setBase(action.from, null);
            if (entry && local) {
              const record = { ...baseOf(entry), size: local.size, mtime: local.mtime, ino: local.ino };
              state.setBase(action.to, record, rows);
            }
            this.#recordRemoteDir(r.entries);
            this.#moves.push({ from: action.from, to: action.to, where: "server" });
          },
        );
        return;
      case "conflict":
        await this.#conflict(action);
        return;
      case "download":
        await this.#download(action.path, action.remote, action.expect);
        return;
      case "upload":
        await this.#upload(action.path, action.local, action.baseRev);
        return;
      case "deleteLocal":
        await this.#deleteLocal(action.path, action.expect);
        return;
      case "deleteRemote":
        this.#enqueue(
          { op: "delete", path: action.path, kind: action.kind, baseRev: action.baseRev },
          undefined,
          (r) => {
            if (!r.ok) return;
            state.setBase(action.path, null);
            if (action.kind === "dir") this.#folderDeletes.push({ path: action.path, where: "server" });
            else this.#emit({ type: "deleted", path: action.path, kind: "file", where: "server" });
          },
        );
        return;
    }
  }

  /**
   * Throws {@linkcode Changed} unless the local path still holds `expect` (null: nothing), and a `LinkError`
   * if any component of the path is a symbolic link. Every local write and every upload
   * calls it first, so nothing is ever written or read through a link.
   */
  #check(path: string, expect: LocalEntry | null): Deno.FileInfo | null {
    const info = lstatInside(this.#ctx.root, path);
    if (expect === null) {
      if (info) throw new Changed();
      return null;
    }
    if (!info) throw new Changed();
    if (expect.kind === "dir") {
      if (!info.isDirectory) throw new Changed();
      return info;
    }
    if (!info.isFile || info.size !== expect.size || (info.mtime?.getTime() ?? 0) !== expect.mtime) {
      throw new Changed();
    }
    return info;
  }

  #setLocalBase(
    path: string,
    entry: { kind: "file" | "dir"; hash: string; rev: number },
    rows?: ChunkRow[],
    info: Deno.FileInfo = Deno.lstatSync(this.#abs(path)),
  ): void {
    const stat = statOf(info);
    this.#ctx.state.setBase(path, { kind: entry.kind, hash: entry.hash, rev: entry.rev, ...stat }, rows);
    this.#ctx.local.set(path, { kind: entry.kind, hash: entry.hash, ...stat });
  }

  #recordRemoteDir(entries: WireEntry[]): void {
    // Folders the server made (the path itself or parents created on the way) exist locally: record them.
    for (const entry of entries) {
      if (entry.deleted || entry.kind !== "dir") continue;
      const local = this.#ctx.local.get(entry.path);
      if (local?.kind === "dir") {
        this.#ctx.state.setBase(entry.path, { ...baseOf(entry), size: 0, mtime: 0, ino: local.ino });
      }
    }
  }

  async #mkdirLocal(path: string, remote: RemoteEntry, expect: LocalEntry | null): Promise<void> {
    const info = this.#check(path, expect);
    if (info?.isFile) await Deno.remove(this.#abs(path));
    if (!info?.isDirectory) await Deno.mkdir(this.#abs(path), { recursive: true });
    this.#setLocalBase(path, { kind: "dir", hash: "", rev: remote.rev });
  }

  /**
   * Replays remote renames that move all of a folder's files the same way ({@linkcode folderMoves}) as one rename
   * of the folder; returns the actions left to run one by one (every move of a folder that fails its check).
   */
  async #moveFolders(actions: Action[]): Promise<Action[]> {
    const moves = actions.filter((a): a is MoveLocal => a.type === "moveLocal");
    if (moves.length === 0) return actions;
    const done = new Set<Action>();
    for (const group of folderMoves(moves, this.#ctx.local)) {
      const { mounts } = this.#ctx.state;
      if (mounts.isMountPoint(group.from) || mounts.isMountPoint(group.to)) continue;
      let moved = false;
      try {
        moved = this.#renameFolder(group);
        if (!moved) continue;
        await Promise.all(
          [...new Set([dirname(this.#abs(group.to)), dirname(this.#abs(group.from))])].map(syncFolder),
        );
      } catch (error) {
        if (!moved) continue; // nothing moved: file by file
        for (const move of group.moves) done.add(move);
        this.#report.again = true; // on disk but not recorded: the next cycle finds the files where they are now
        this.#emit({
          type: "error",
          message: `could not move ${group.from} -> ${group.to}: ${(error as Error).message}`,
          path: group.from,
        });
        continue;
      }
      this.#recordFolderMove(group);
      for (const move of group.moves) done.add(move);
    }
    return done.size === 0 ? actions : actions.filter((a) => !done.has(a));
  }

  /** The stat of each file a folder rename moves, taken by its check (the same inodes after the rename). */
  #folderFiles = new Map<MoveLocal, Deno.FileInfo>();

  /**
   * Renames `from` to `to` if, on disk now, `from` holds exactly the files the moves take, each as the plan saw
   * it, and `to` is absent or an empty folder; false (nothing done) otherwise. The old folder is made again,
   * empty, as a file-by-file replay leaves it (the server's delete of it follows).
   */
  #renameFolder({ from, to, moves }: FolderMove): boolean {
    this.#check(from, { kind: "dir", hash: "", size: 0, mtime: 0 }); // a folder, no link on the way
    const target = lstatInside(this.#ctx.root, to);
    if (target && (!target.isDirectory || !Deno.readDirSync(this.#abs(to))[Symbol.iterator]().next().done)) {
      return false;
    }
    const byName = new Map(moves.map((m) => [basename(m.from), m]));
    this.#folderFiles.clear();
    for (const entry of Deno.readDirSync(this.#abs(from))) {
      const move = byName.get(entry.name);
      if (!move || !entry.isFile) return false; // something the plan did not see: file by file
      const info = Deno.lstatSync(join(this.#abs(from), entry.name));
      if (
        !info.isFile || info.size !== move.expect.size || (info.mtime?.getTime() ?? 0) !== move.expect.mtime
      ) {
        return false;
      }
      this.#folderFiles.set(move, info);
    }
    if (this.#folderFiles.size !== moves.length) return false;
    Deno.mkdirSync(dirname(this.#abs(to)), { recursive: true });
    try {
      // Over an empty folder where the system allows it (POSIX); where not, it throws and nothing moved.
      Deno.renameSync(this.#abs(from), this.#abs(to));
    } catch {
      return false;
    }
    try {
      Deno.mkdirSync(this.#abs(from));
    } catch { /* made again meanwhile: it is there */ }
    return true;
  }

  /** Records a folder rename's files (and both folders' new inodes) as the file-by-file replay would. */
  #recordFolderMove({ from, to, moves }: FolderMove): void {
    const { state } = this.#ctx;
    for (const folder of [from, to]) {
      const base = state.base.get(folder);
      const info = lstatInside(this.#ctx.root, folder);
      if (base?.kind === "dir" && info?.isDirectory) this.#setLocalBase(folder, base, undefined, info);
    }
    for (const move of moves) {
      const rows = state.rows.get(move.from);
      state.setBase(move.from, null);
      this.#ctx.local.delete(move.from);
      const entry = { kind: "file" as const, hash: move.remote.hash, rev: move.remote.rev };
      this.#setLocalBase(move.to, entry, rows, this.#folderFiles.get(move)!);
      this.#moves.push({ from: move.from, to: move.to, where: "here" });
      this.#report.done++;
    }
    this.#folderFiles.clear();
  }

  /**
   * Renames a file as the server did. The rename happens now, in plan order; the fsyncs of both folders and
   * then the base record follow in {@linkcode Executor.#pendingMoves}: nothing is recorded before it is durable.
   */
  #moveLocal(action: Extract<Action, { type: "moveLocal" }>): void {
    const { from, to, expect, remote } = action;
    const moved = this.#check(from, expect)!; // its stat still holds after the rename (same inode)
    this.#check(to, null);
    Deno.mkdirSync(dirname(this.#abs(to)), { recursive: true });
    Deno.renameSync(this.#abs(from), this.#abs(to));
    const folders = new Set([dirname(this.#abs(to)), dirname(this.#abs(from))]);
    const done = Promise.all([...folders].map(syncFolder)).then(() => {
      const rows = this.#ctx.state.rows.get(from);
      this.#ctx.state.setBase(from, null);
      this.#ctx.local.delete(from);
      this.#setLocalBase(to, { kind: "file", hash: remote.hash, rev: remote.rev }, rows, moved);
      this.#moves.push({ from, to, where: "here" });
    }).catch((error) => {
      this.#report.done--;
      this.#failed(action, error);
    });
    this.#pendingMoves.push({ paths: [from, to], done });
  }

  async #download(
    path: string,
    remote: RemoteEntry,
    expect: LocalEntry | null,
    quiet = false,
  ): Promise<void> {
    // Checked up front only when something is expected there (a file to replace): a new path is checked once,
    // just before the rename, which is the check that matters.
    if (expect !== null) this.#check(path, expect);
    const { state } = this.#ctx;
    const base = state.base.get(path);
    const baseRows = state.rows.get(path);
    const open = new Map<string, Deno.FsFile | null>();
    const fetched = await fetchFile(this.#ctx.peer, state.tmpDir, path, remote.rev, {
      at: state.mounts.fromLocal(path),
      base: base?.kind === "file" && baseRows ? { hash: base.hash, rows: baseRows } : undefined,
      baseFile: base?.kind === "file" && baseRows
        ? { path: this.#abs(path), size: base.size, mtime: base.mtime, ino: base.ino }
        : undefined,
      localChunk: (id, size) => Promise.resolve(this.#readLocalChunk(id, size, open)),
      progress: this.#ctx.progress,
    }).finally(() => {
      for (const file of open.values()) file?.close();
    });
    const written = this.#place(path, expect, fetched);
    // The rename is durable before the base records it: a crash cannot leave a base entry for a file the
    // folder lost (the next scan would read that as a delete).
    await syncFolder(dirname(this.#abs(path)));
    this.#setLocalBase(
      path,
      { kind: "file", hash: fetched.entry.hash, rev: fetched.entry.rev },
      fetched.rows,
      written,
    );
    if (!quiet) {
      this.#emit(
        remote.restored
          ? { type: "restored", path, version: remote.restored }
          : { type: "downloaded", path, size: fetched.entry.size, fetched: fetched.received },
      );
    }
  }

  /**
   * Renames a verified, fsynced download into place after checking, just before, that the local path still holds
   * what the plan expected (the user may have changed it meanwhile); the temp file goes on failure. Returns the
   * stat of what was put there. The folder's fsync and the base record are the caller's.
   */
  #place(path: string, expect: LocalEntry | null, fetched: FetchedFile): Deno.FileInfo {
    try {
      const info = this.#check(path, expect);
      Deno.mkdirSync(dirname(this.#abs(path)), { recursive: true });
      if (info?.isDirectory) Deno.removeSync(this.#abs(path)); // an emptied folder the file replaces
      Deno.utimeSync(fetched.tmpPath, new Date(), new Date(fetched.entry.mtime));
      // Stat before the rename: the user may remove the file (or its folder) right after it lands, and the base
      // must still record what was put there, so that the next scan reads that as the user's delete.
      const written = Deno.lstatSync(fetched.tmpPath);
      Deno.renameSync(fetched.tmpPath, this.#abs(path));
      return written;
    } catch (error) {
      try {
        Deno.removeSync(fetched.tmpPath);
      } catch {
        // gone already
      }
      throw error;
    } finally {
      releaseTempFile(fetched.tmpPath);
    }
  }

  /** The server answered FETCH with "unknown_op" (it predates FETCH). */
  #fetchUnknown = false;

  /**
   * Downloads small files with one FETCH per batch: each is checked, written and fsynced with the batch, renamed
   * into place with the checks of {@linkcode Executor.#place}, then the batch's folders are fsynced once and only
   * then are the bases recorded. Files the server does not send inline go the single-file way.
   */
  async #fetchBatch(actions: DownloadAction[]): Promise<void> {
    if (this.#fetchUnknown) {
      for (const action of actions) await this.#guard(action);
      return;
    }
    const paths = actions.map((a) => a.path);
    if (this.#pendingMoves.some((p) => paths.some((path) => p.paths.includes(path)))) {
      await this.#settleMoves();
    }
    const { state } = this.#ctx;
    const live: DownloadAction[] = [];
    for (const action of actions) {
      try {
        if (action.expect !== null) this.#check(action.path, action.expect);
        live.push(action);
      } catch (error) {
        this.#failed(action, error);
      }
    }
    if (live.length === 0) return;
    let fetched: (FetchedFile | StaleError | null)[];
    try {
      const wanted = live.map((a) => ({
        path: a.path,
        rev: a.remote.rev,
        at: state.mounts.fromLocal(a.path),
      }));
      fetched = await fetchSmallFiles(this.#ctx.peer, state.tmpDir, wanted);
    } catch (error) {
      if ((error as { code?: string }).code === "unknown_op") {
        // A server from before FETCH: every file goes the single-file way from now on.
        this.#fetchUnknown = true;
        for (const action of live) await this.#guard(action);
        return;
      }
      for (const action of live) this.#failed(action, error);
      return;
    }
    let placed: { action: DownloadAction; file: FetchedFile; written: Deno.FileInfo }[] = [];
    const alone: DownloadAction[] = [];
    for (const [i, action] of live.entries()) {
      const file = fetched[i];
      if (file === null) alone.push(action);
      else if (file instanceof StaleError) this.#failed(action, file);
      else {
        try {
          placed.push({ action, file, written: this.#place(action.path, action.expect, file) });
        } catch (error) {
          this.#failed(action, error);
        }
      }
    }
    // The renames are durable before the bases record them (as for a single download).
    try {
      const folders = new Set(placed.map((p) => dirname(this.#abs(p.action.path))));
      await Promise.all([...folders].map(syncFolder));
    } catch (error) {
      for (const p of placed) this.#failed(p.action, error);
      placed = [];
    }
    const before = this.#report.done;
    for (const { action, file, written } of placed) {
      this.#setLocalBase(
        action.path,
        { kind: "file", hash: file.entry.hash, rev: file.entry.rev },
        file.rows,
        written,
      );
      this.#emit(
        action.remote.restored
          ? { type: "restored", path: action.path, version: action.remote.restored }
          : { type: "downloaded", path: action.path, size: file.entry.size },
      );
    }
    this.#report.done += placed.length;
    // Save progress now and then, as #guard does.
    if (Math.floor(before / 500) !== Math.floor(this.#report.done / 500)) await state.flush();
    for (const action of alone) await this.#guard(action);
  }

  async #upload(path: string, local: LocalEntry, baseRev: number, quiet = false): Promise<void> {
    const scanned = this.#ctx.local.get(path);
    const info = this.#check(path, local);
    const stat = statOf(info!);
    if (scanned?.kind !== "file" || scanned.hash !== local.hash) throw new Changed();
    const { state } = this.#ctx;
    const trustIndex = !this.#ctx.distrust.has(path);
    const sent = await sendFile(this.#ctx.peer, this.#ctx.root, this.#ctx.scanner, path, stat, {
      ns: state.mounts.fromLocal(path).ns,
      known: (id) => trustIndex && state.chunkIndex.has(id),
      progress: this.#ctx.progress,
    });
    if (sent.hash !== local.hash) throw new Changed();
    // Send only the rows that differ from the version being replaced, when this device has that version's rows.
    const base = state.base.get(path);
    const baseRows = state.rows.get(path);
    const remote = state.remote.get(path);
    let rows = sent.rows;
    let from: { hash: string; head: number; tail: number } | undefined;
    if (base?.kind === "file" && baseRows && remote?.hash === base.hash && remote.rev === baseRev) {
      const { head, tail } = commonEnds(baseRows, sent.rows);
      from = { hash: base.hash, head, tail };
      rows = sent.rows.slice(head, sent.rows.length - tail);
    }
    const change: Change = {
      op: "upload",
      path,
      baseRev,
      size: stat.size,
      mtime: stat.mtime,
      hash: sent.hash,
      rows: { offset: 0, count: rows.length },
      ...(from ? { from } : {}),
    };
    this.#enqueue(change, rows, (r) => {
      if (!r.ok) {
        if (r.code === "missing_chunks") this.#ctx.distrust.add(path);
        return;
      }
      this.#ctx.distrust.delete(path);
      const entry = r.entries.find((e) => e.path === path)!;
      state.setBase(path, { kind: "file", hash: entry.hash, rev: entry.rev, ...stat }, sent.rows);
      this.#recordRemoteDir(r.entries);
      this.#ctx.scanner.forget(path);
      if (!quiet) {
        this.#emit({ type: "uploaded", path, size: stat.size, sent: sent.sent });
      }
    });
    // Commit while other files are still transferring: a large file at once (the other devices can start on
    // it), small ones in batches (a full batch, or what gathered within a short wait).
    if (stat.size > SMALL_FILE_BYTES || this.#queue.length >= UPLOADS_PER_COMMIT) {
      this.#flushCommits().catch(() => {});
    } else if (this.#commitTimer === undefined) {
      this.#commitTimer = setTimeout(() => {
        this.#commitTimer = undefined;
        this.#flushCommits().catch(() => {});
      }, COMMIT_WAIT_MS);
    }
  }

  /** Reads a chunk from a local file of the base snapshot, if that file is unchanged; null otherwise. */
  /**
   * Reads a chunk from a local file of the base snapshot, if that file is unchanged; null otherwise. Files stay
   * open in `open` for the rest of the download (the caller closes them), so a file rebuilt from its previous
   * version is read sequentially through one handle.
   */
  #readLocalChunk(id: string, size: number, open: Map<string, Deno.FsFile | null>): Uint8Array | null {
    const where = this.#ctx.state.chunkIndex.get(id);
    if (!where || where.size !== size) return null;
    try {
      let file = open.get(where.path);
      if (file === undefined) {
        const base = this.#ctx.state.base.get(where.path);
        file = null;
        if (base?.kind === "file") {
          const handle = Deno.openSync(this.#abs(where.path), { read: true });
          const info = handle.statSync();
          if (info.size === base.size && (info.mtime?.getTime() ?? 0) === base.mtime) file = handle;
          else handle.close();
        }
        open.set(where.path, file);
      }
      if (!file) return null;
      file.seekSync(where.offset, Deno.SeekMode.Start);
      const data = new Uint8Array(size);
      let at = 0;
      while (at < size) {
        const n = file.readSync(data.subarray(at));
        if (n === null) return null;
        at += n;
      }
      return data; // the caller verifies the hash
    } catch {
      return null;
    }
  }

  async #deleteLocal(path: string, expect: LocalEntry): Promise<void> {
    const info = this.#check(path, expect)!;
    if (expect.kind === "file") this.#removeFile(path, expect, info);
    else {
      try {
        await Deno.remove(this.#abs(path));
      } catch {
        // A folder that gained content is not removed: the next cycle uploads what is in it.
        throw new Changed();
      }
    }
    this.#ctx.state.setBase(path, null);
    this.#ctx.local.delete(path);
    if (expect.kind === "dir") this.#folderDeletes.push({ path, where: "here" });
    else this.#emit({ type: "deleted", path, kind: "file", where: "here" });
  }

  /**
   * Removes a file that the check found as expected, without losing a write that lands after the check: the file
   * is first moved aside (one atomic step, after which a write by path makes a new file the next scan sees),
   * looked at again there, and put back if it changed. Throws {@linkcode Changed} when it was put back.
   */
  #removeFile(path: string, expect: LocalEntry, checked: Deno.FileInfo): void {
    const abs = this.#abs(path);
    const random = Array.from(
      crypto.getRandomValues(new Uint8Array(8)),
      (b) => b.toString(16).padStart(2, "0"),
    );
    const aside = join(this.#ctx.state.tmpDir, `deleting.${random.join("")}`);
    try {
      Deno.renameSync(abs, aside);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) throw new Changed(); // gone already: the next scan sees that
      // Not on the state folder's file system (a mount inside the synced folder): remove it where it is.
      this.#check(path, expect);
      Deno.removeSync(abs);
      return;
    }
    const moved = Deno.lstatSync(aside);
    if (
      moved.isFile && moved.size === expect.size && (moved.mtime?.getTime() ?? 0) === expect.mtime &&
      (checked.ino === null || moved.ino === checked.ino)
    ) {
      Deno.removeSync(aside);
      return;
    }
    // Written meanwhile: back to its name, never over a file made there since (that one keeps the name, and
    // the changed file stays beside it as a copy; the next scan uploads both).
    let back = path;
    for (let n = 2;; n++) {
      try {
        Deno.linkSync(aside, this.#abs(back));
        Deno.removeSync(aside);
        break;
      } catch (error) {
        if (!(error instanceof Deno.errors.AlreadyExists) && lstatInside(this.#ctx.root, back) === null) {
          Deno.renameSync(aside, this.#abs(back)); // no hard links on this file system: a plain rename back
          break;
        }
        back = `${path} (changed while deleted${n > 2 ? ` ${n}` : ""})`;
      }
    }
    throw new Changed();
  }

  async #conflict(action: Extract<Action, { type: "conflict" }>): Promise<void> {
    const { path, copyPath, local, remote } = action;
    if (action.keep === "remote") {
      // The local version moves aside under the copy name (uploaded by the next cycle); the remote takes the name.
      this.#check(path, local);
      this.#check(copyPath, null);
      await Deno.rename(this.#abs(path), this.#abs(copyPath));
      await syncFolder(dirname(this.#abs(copyPath)));
      this.#ctx.local.delete(path);
      this.#report.again = true;
      this.#emit({ type: "conflict", path, copy: copyPath, device: remote.device, copyHolds: "here" });
      if (remote.kind === "dir") await this.#mkdirLocal(path, remote, null);
      else await this.#download(path, remote, null, true);
      return;
    }
    // Keep local: the server's version moves aside under the copy name, locally and on the server.
    this.#check(path, local);
    const moved = await this.#commitNow({ op: "move", from: path, path: copyPath, baseRev: remote.rev });
    if (!moved.ok) throw new Changed();
    const entry = moved.entries.find((e) => e.path === copyPath && !e.deleted)!;
    await this.#download(copyPath, { ...remote, rev: entry.rev }, null, true).catch(() => {
      this.#report.again = true; // it arrives with the journal instead
    });
    this.#emit({ type: "conflict", path, copy: copyPath, device: remote.device, copyHolds: "there" });
    if (local.kind === "dir") {
      const made = await this.#commitNow({ op: "mkdir", path, baseRev: 0 });
      if (made.ok) this.#recordRemoteDir(made.entries);
    } else {
      await this.#upload(path, local, 0, true);
      await this.#flushCommits();
    }
  }

  #enqueue(
    change: Change,
    rows: ChunkRow[] | undefined,
    onDone: QueuedChange["onDone"],
    counted = true,
  ): void {
    this.#queue.push({ change, rows, onDone, counted });
  }

  async #commitNow(change: Change): Promise<ChangeResult> {
    let result!: ChangeResult;
    this.#enqueue(change, undefined, (r) => {
      result = r;
    }, false);
    await this.#flushCommits();
    return result;
  }

  #flushing: Promise<void> = Promise.resolve();

  /** Commits everything queued; calls run one after another so commits keep their order. */
  #flushCommits(): Promise<void> {
    const run = this.#flushing.then(() => this.#commitQueued());
    this.#flushing = run.catch(() => {});
    return run;
  }

  async #commitQueued(): Promise<void> {
    while (this.#queue.length > 0) {
      const queued = this.#queue.splice(0, commitBatchSize(this.#queue.map((q) => q.change)));
      // One COMMIT per run of changes in one namespace, in order.
      for (let start = 0; start < queued.length;) {
        const { ns } = this.#ctx.state.mounts.fromLocal(queued[start].change.path);
        let end = start + 1;
        while (end < queued.length && this.#ctx.state.mounts.fromLocal(queued[end].change.path).ns === ns) {
          end++;
        }
        await this.#commitBatch(ns, queued.slice(start, end));
        start = end;
      }
    }
  }

  /**
   * Commits changes of local paths to one namespace: their paths go to the server as the namespace's, and the
   * results' entries come back as local paths. A change the namespace cannot hold as such (a mount folder
   * itself, a move between namespaces) is refused here without asking.
   */
  async #commitBatch(ns: string, batch: QueuedChange[]): Promise<void> {
    const mounts = this.#ctx.state.mounts;
    const inside = (path: string) => {
      const at = mounts.fromLocal(path);
      return at.ns === ns && at.path !== "" ? at.path : null;
    };
    const shared = (path: string) => mounts.isMountPoint(path) && mounts.mountOf(mounts.keyOf(path))?.path;
    const results: (ChangeResult | undefined)[] = batch.map(({ change }) =>
      inside(change.path) === null || (change.op === "move" && inside(change.from) === null)
        ? { ok: false, code: "bad_request", error: "not a change inside one namespace" }
        : (change.op === "delete" && shared(change.path)) || (change.op === "move" && shared(change.from))
        ? { ok: false, code: "forbidden", error: "a share is deleted or renamed by its owner only" }
        : undefined
    );
    const sending = batch.filter((_, k) => results[k] === undefined);
    if (sending.length > 0) {
      const allRows: ChunkRow[] = [];
      const changes = sending.map(({ change, rows }): Change => {
        const mapped = change.op === "move"
          ? { ...change, from: inside(change.from)!, path: inside(change.path)! }
          : { ...change, path: inside(change.path)! };
        if (mapped.op !== "upload" || !rows) return mapped;
        const withRows = { ...mapped, rows: { offset: allRows.length, count: rows.length } };
        allRows.push(...rows);
        return withRows;
      });
      const data = allRows.length > 0 ? encodeRows(allRows) : undefined;
      const reply = await this.#ctx.peer.request("COMMIT", { changes, ns }, data);
      const replied = (reply.message.results as ChangeResult[]).map((r) => localResult(r, ns, mounts));
      for (let k = 0, next = 0; k < batch.length; k++) results[k] ??= replied[next++];
    }
    for (let k = 0; k < batch.length; k++) {
      const result = results[k]!;
      const change = batch[k].change;
      if (!result.ok && FINAL_REFUSALS.has(result.code)) {
        this.#ctx.refused?.set(change.path, {
          hash: change.op === "upload" ? change.hash : "",
          code: result.code,
        });
      }
      if (!result.ok && result.code === LOCKED_CODE) {
        // A move is refused for the lock on the file it moves (its target does not exist on the server).
        const lockedPath = change.op === "move" ? change.from : change.path;
        this.#ctx.locked?.(lockedPath, result.holder);
        if (change.op === "move") this.#ctx.locked?.(change.path);
        this.#emit({
          type: "notice",
          message: `${result.error}: the change made here is kept and sent when the lock ends`,
        });
      } else if (!result.ok && result.code === BAD_NAME_CODE) {
        this.#emit({
          type: "error",
          message: `not syncing ${change.path}: ${result.error} (it stays here as it is)`,
          path: change.path,
        });
      } else if (!result.ok && !RACE_CODES.has(result.code)) {
        // (Another device getting there first — a race code — is not worth a line: the next cycle decides again.)
        const final = FINAL_REFUSALS.has(result.code) ? " (not tried again until the file changes)" : "";
        this.#emit({
          type: "error",
          message: `server refused ${batch[k].change.op} of ${batch[k].change.path}: ${result.error}${final}`,
          path: batch[k].change.path,
        });
      }
      // Worth another try with what the server has now; a refusal that would only repeat (a bad request)
      // stays counted as done, so it is not sent again at once.
      if (
        !result.ok && batch[k].counted && (RACE_CODES.has(result.code) || result.code === "missing_chunks")
      ) {
        this.#report.done--;
        this.#report.skipped++;
      }
      if (result.ok && batch[k].change.op === "delete" && this.#ctx.refused) {
        // Space was freed: uploads refused for the quota get one more try.
        for (const [p, r] of this.#ctx.refused) {
          if (r.code === "quota_exceeded") this.#ctx.refused.delete(p);
        }
      }
      await batch[k].onDone(result);
    }
  }
}

/** A commit result with the entries' paths (and the current entry's) as local paths. */
function localResult(result: ChangeResult, ns: string, mounts: MountTable): ChangeResult {
  const local = (entry: WireEntry): WireEntry => ({ ...entry, path: mounts.toLocal(ns, entry.path)! });
  if (result.ok) return { ...result, entries: result.entries.map(local) };
  return result.current ? { ...result, current: local(result.current) } : result;
}

function baseOf(entry: WireEntry): Omit<BaseRecord, "size" | "mtime" | "ino"> {
  return { kind: entry.kind, hash: entry.hash, rev: entry.rev };
}

function groupOf(action: Action): string {
  if (action.type === "download" || action.type === "upload") return "transfer";
  if (action.type === "mkdirLocal" || action.type === "mkdirRemote") return "mkdir";
  if (action.type === "moveLocal" || action.type === "moveRemote") return "move";
  if (action.type === "deleteLocal" || action.type === "deleteRemote") return "delete";
  return action.type;
}

function describe(action: Action): string {
  switch (action.type) {
    case "moveLocal":
    case "moveRemote":
      return `move ${action.from} -> ${action.to}`;
    default:
      return `${action.type} ${action.path}`;
  }
}
