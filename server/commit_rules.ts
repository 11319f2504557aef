// The commit rules as pure functions: compare-and-set, parent folders, non-empty folders, moves, deltas, history.
import {
  ancestorsOf,
  BAD_NAME_CODE,
  baseName,
  foldName,
  parentPath,
  unportablePathReason,
} from "../protocol/paths.ts";
import { fileHashOfChunks } from "../protocol/hash.ts";
import {
  type Change,
  type ChangeResult,
  type ChunkRow,
  decodeRows,
  MANIFEST_ROW_BYTES,
  type UploadChange,
  type WireEntry,
} from "../protocol/messages.ts";
import { formatSize } from "../protocol/sizes.ts";
import { MAX_CHUNK_BYTES } from "../protocol/replies.ts";
import type { EntryRecord, TrashRecord, VersionRecord } from "./metadata_store.ts";
import { LOCKED_CODE, type LockHolder } from "../protocol/locks.ts";
import { blockingLock, lockedMessage, type LockRecord } from "./lock_rules.ts";

/** A read-only view of a namespace before the batch (a store fills it from what the batch touches). */
export interface NamespaceView {
  /** The entry at a path, or null. */
  entry(path: string): EntryRecord | null;
  /**
   * Paths of children of a folder. `complete: false` means there are more than `paths` (a store may stop after
   * as many as the batch could remove, plus one).
   */
  children(path: string): { paths: readonly string[]; complete: boolean };
  /** The stored manifest of a delta's base version, or null. */
  manifest(hash: string): readonly ChunkRow[] | null;
  /**
   * Paths of the live children of `folder` ("" for the root) whose name has the folded form `folded` (see
   * `foldName`), for the rule that no folder holds two names differing only in case. A view without it
   * does not check case clashes.
   */
  sameFolded?(folder: string, folded: string): readonly string[];
}

/** What the commit knows besides the namespace. */
export interface CommitContext {
  /** Name of the committing device. */
  device: string;
  /** The namespace's latest rev before the batch. */
  seq: number;
  /** Commit time (ms since the epoch). */
  now: number;
  /** Random id of this commit call, carried by every journal entry it writes. */
  tag: string;
  /** The commit is a RESTORE of this version: the journal entries of what it writes say so. @default none */
  restored?: string;
  /** The COMMIT's data: manifest rows. */
  rows: Uint8Array;
  /**
   * The real sizes of the inserted chunks the caller may reference (an inserted id absent here is missing:
   * not stored, or never uploaded by the caller). Every inserted row must claim exactly its chunk's size.
   */
  sizes: ReadonlyMap<string, number>;
  /** Limits on what a commit may store. @default no limits besides {@linkcode DEFAULT_MAX_CHUNK_BYTES} */
  limits?: CommitLimits;
  /** Bytes of the namespace's live files before the batch (what the quota counts). @default 0 */
  usage?: number;
  /**
   * The namespace's locks, and who commits: a change of a file another device holds a live lock on (or of a
   * folder holding one) is refused with {@linkcode LOCKED_CODE}. Without `holder` no lock is checked.
   */
  locks?: readonly LockRecord[];
  /** The committing user and device. */
  holder?: LockHolder;
}

/** Largest chunk the server accepts (PUT refuses larger ones), so no manifest row may claim more. */
export const DEFAULT_MAX_CHUNK_BYTES = MAX_CHUNK_BYTES;

/** What a commit may store. */
export interface CommitLimits {
  /** Largest chunk a row may claim. @default DEFAULT_MAX_CHUNK_BYTES */
  maxChunkBytes?: number;
  /** Largest file, in bytes (unset: no limit). */
  maxFileBytes?: number;
  /** Most bytes of live files the namespace may hold (unset: no limit). Kept versions and trash do not count. */
  quotaBytes?: number;
}

/**
 * One unit of writing: entries that must appear together with their journal entries (a move's two halves, or
 * one created folder, or one file). Any prefix of a plan's steps is a consistent namespace.
 */
export interface Step {
  /** Entries to set (or, for null, delete). */
  writes: { path: string; entry: EntryRecord | null }[];
  /** Their journal entries, in rev order. */
  journal: WireEntry[];
  /** Versions the step keeps (what it replaced or deleted). */
  versions: VersionRecord[];
  /** Paths the step deleted. */
  trash: TrashRecord[];
  /** Bytes of the namespace's live files after the step (absent: unchanged). */
  usage?: number;
}

/** A batch's plan: results per change, steps to write in order, manifests and chunks it references. */
export interface CommitPlan {
  /** One result per change, in order. */
  results: ChangeResult[];
  /** What to write, in order. */
  steps: Step[];
  /** The new rev after the batch. */
  seq: number;
  /** Bytes of the namespace's live files after the batch. */
  usage: number;
  /** Full manifests of accepted uploads by file hash. */
  manifests: Map<string, { size: number; rows: ChunkRow[] }>;
  /** Chunk ids that accepted uploads inserted (they become committed references). */
  permanent: Set<string>;
}

/** Why a change is refused: code, message, the current entry when it matters, and the lock in the way. */
export class Refusal extends Error {
  /** Builds a refusal. */
  constructor(
    readonly code: string,
    message: string,
    readonly current: EntryRecord | null = null,
    readonly lock?: LockRecord,
  ) {
    super(message);
  }
}

/**
 * The inserted rows of an upload (the rows its COMMIT data carries), or a Refusal when they lie outside the
 * data.
 */
export function insertedRows(change: UploadChange, rows: Uint8Array): ChunkRow[] {
  const start = change.rows.offset * MANIFEST_ROW_BYTES;
  const end = start + change.rows.count * MANIFEST_ROW_BYTES;
  if (end > rows.length) throw new Refusal("bad_request", `Rows of "${change.path}" lie outside the data`);
  return decodeRows(rows.subarray(start, end));
}

/** Refuses unless the current entry has the base revision (0: the path must not exist). */
export function checkBase(path: string, now: EntryRecord | null, baseRev: number): void {
  if (now === null) {
    if (baseRev !== 0) throw new Refusal("conflict", `"${path}" was deleted on the server`, null);
    return;
  }
  if (now.rev !== baseRev) {
    throw new Refusal("conflict", `"${path}" changed on the server (rev ${now.rev}, not ${baseRev})`, now);
  }
}

/** The kept version a file entry becomes when it is replaced or deleted at `until`. */
export function versionOf(entry: EntryRecord, until: number): VersionRecord {
  return {
    path: entry.path,
    rev: entry.rev,
    hash: entry.hash,
    size: entry.size,
    mtime: entry.mtime,
    device: entry.device,
    time: entry.time ?? entry.mtime,
    until,
  };
}

/**
 * Plans a batch: each change is decided against the view plus the earlier accepted changes of the batch.
 * Pure: reads only its arguments.
 */
export function planCommit(view: NamespaceView, changes: readonly Change[], ctx: CommitContext): CommitPlan {
  const overlay = new Map<string, EntryRecord | null>();
  // The overlay's live paths by folder and folded name, so a name check costs the same for the 1,000th change
  // of a batch as for the first (a folder of 1,000 files renamed is one batch of 1,000 moves into one folder).
  const overlayFolded = new Map<string, Set<string>>();
  const foldedKey = (folder: string, folded: string) => `${folder}\u0000${folded}`;
  const keyOf = (path: string) => foldedKey(parentPath(path) ?? "", foldName(baseName(path)));
  const plan: CommitPlan = {
    results: [],
    steps: [],
    seq: ctx.seq,
    usage: ctx.usage ?? 0,
    manifests: new Map(),
    permanent: new Set(),
  };
  for (const change of changes) {
    const decided = decideChange(
      {
        entry: (path) => overlay.has(path) ? overlay.get(path)! : view.entry(path),
        children: (path) => childrenWithOverlay(view, overlay, path),
        manifest: (hash) => plan.manifests.get(hash)?.rows ?? view.manifest(hash),
        sameFolded: view.sameFolded && ((folder, folded) => {
          const paths = new Set(view.sameFolded!(folder, folded).filter((p) => overlay.get(p) !== null));
          for (const p of overlayFolded.get(foldedKey(folder, folded)) ?? []) paths.add(p);
          return [...paths];
        }),
      },
      change,
      { ...ctx, seq: plan.seq, usage: plan.usage },
    );
    if (!decided.ok) {
      plan.results.push({
        ok: false,
        code: decided.code,
        error: decided.error,
        current: decided.current,
        ...(decided.holder ? { holder: decided.holder } : {}),
      });
      continue;
    }
    for (const step of decided.steps) {
      for (const write of step.writes) {
        overlay.set(write.path, write.entry);
        const key = keyOf(write.path);
        const same = overlayFolded.get(key) ?? new Set<string>();
        if (write.entry) same.add(write.path);
        else same.delete(write.path);
        overlayFolded.set(key, same);
      }
      plan.steps.push(step);
    }
    const entries = decided.steps.flatMap((s) => s.journal);
    if (entries.length > 0) plan.seq = entries[entries.length - 1].rev;
    if (decided.steps.length > 0) plan.usage = decided.steps[decided.steps.length - 1].usage ?? plan.usage;
    if (decided.manifest) plan.manifests.set(decided.manifest.hash, decided.manifest);
    for (const id of decided.inserted ?? []) plan.permanent.add(id);
    plan.results.push({ ok: true, entries });
  }
  return plan;
}

function childrenWithOverlay(
  view: NamespaceView,
  overlay: Map<string, EntryRecord | null>,
  path: string,
): { paths: readonly string[]; complete: boolean } {
  const base = view.children(path);
  const paths = new Set(base.paths.filter((p) => !overlay.has(p) || overlay.get(p) !== null));
  for (const [p, e] of overlay) if (e && parentPath(p) === path) paths.add(p);
  return { paths: [...paths], complete: base.complete };
}

/** The decision on one change. */
export type Decision =
  | {
    ok: true;
    steps: Step[];
    manifest?: { hash: string; size: number; rows: ChunkRow[] };
    inserted?: string[];
  }
  | { ok: false; code: string; error: string; current: EntryRecord | null; holder?: LockHolder };

/** Decides one change against a view (the state before it). Pure. */
export function decideChange(view: NamespaceView, change: Change, ctx: CommitContext): Decision {
  const steps: Step[] = [];
  let rev = ctx.seq;
  let usage = ctx.usage ?? 0;
  const staged = new Map<string, EntryRecord | null>();
  const read = (path: string) => staged.has(path) ? staged.get(path)! : view.entry(path);
  const hasLiveChildren = (path: string) => {
    const { paths, complete } = view.children(path);
    return !complete || paths.length > 0 || [...staged].some(([p, e]) => e && parentPath(p) === path);
  };
  const newStep = (): Step => ({ writes: [], journal: [], versions: [], trash: [], usage });
  /** Refuses a new name that some device could not hold, or that differs only in case from a sibling. */
  const checkNewName = (path: string) => {
    const reason = unportablePathReason(path);
    if (reason !== null) {
      throw new Refusal(BAD_NAME_CODE, `"${path}" cannot be held on every device: ${reason}`);
    }
    if (!view.sameFolded) return;
    const folder = parentPath(path) ?? "";
    const folded = foldName(baseName(path));
    const siblings = new Set(view.sameFolded(folder, folded));
    for (const [p, e] of staged) {
      if (e && (parentPath(p) ?? "") === folder && foldName(baseName(p)) === folded) siblings.add(p);
    }
    for (const other of siblings) {
      if (other !== path && read(other) !== null) {
        throw new Refusal(
          BAD_NAME_CODE,
          `"${path}" differs only in case from "${other}", which exists: case-insensitive devices (Windows, ` +
            "macOS) cannot hold both",
        );
      }
    }
  };
  const put = (step: Step, path: string, entry: Omit<EntryRecord, "rev" | "device" | "time">) => {
    if (read(path) === null) checkNewName(path);
    const record: EntryRecord = { ...entry, path, rev: ++rev, device: ctx.device, time: ctx.now };
    const replaced = read(path);
    if (replaced?.kind === "file") usage -= replaced.size;
    step.usage = usage += record.size;
    const { time: _time, ...wire } = record;
    step.writes.push({ path, entry: record });
    step.journal.push({ ...wire, tag: ctx.tag, ...(ctx.restored ? { restored: ctx.restored } : {}) });
    staged.set(path, record);
  };
  const remove = (step: Step, current: EntryRecord) => {
    const path = current.path;
    if (current.kind === "file") step.usage = usage -= current.size;
    step.writes.push({ path, entry: null });
    step.journal.push({
      path,
      kind: current.kind,
      hash: "",
      size: 0,
      mtime: 0,
      rev: ++rev,
      device: ctx.device,
      deleted: true,
      tag: ctx.tag,
    });
    staged.set(path, null);
  };
  const ensureParents = (path: string) => {
    for (const ancestor of ancestorsOf(path)) {
      const existing = read(ancestor);
      if (existing?.kind === "dir") continue;
      if (existing?.kind === "file") {
        throw new Refusal("conflict", `Cannot create "${path}": "${ancestor}" is a file`, existing);
      }
      const step = newStep();
      put(step, ancestor, { path: ancestor, kind: "dir", hash: "", size: 0, mtime: 0 });
      steps.push(step);
    }
  };
  try {
    checkLocks(change, ctx);
    switch (change.op) {
      case "upload": {
        const now = read(change.path);
        checkBase(change.path, now, change.baseRev);
        if (now?.kind === "dir" && hasLiveChildren(change.path)) {
          throw new Refusal("not_empty", `Cannot replace folder "${change.path}": it is not empty`, now);
        }
        checkLimits(change, now, usage, ctx.limits);
        const { chunkRows, inserted } = rowsOf(view, change, ctx.rows, now);
        checkRows(change.path, inserted, ctx);
        ensureParents(change.path);
        const step = newStep();
        if (now?.kind === "file") step.versions.push(versionOf(now, ctx.now));
        put(step, change.path, {
          path: change.path,
          kind: "file",
          hash: change.hash,
          size: change.size,
          mtime: change.mtime,
        });
        steps.push(step);
        return {
          ok: true,
          steps,
          manifest: { hash: change.hash, size: change.size, rows: chunkRows },
          inserted: inserted.map((r) => r.id),
        };
      }
      case "mkdir": {
        const now = read(change.path);
        if (now?.kind === "dir") return { ok: true, steps };
        if (now) checkBase(change.path, now, change.baseRev);
        ensureParents(change.path);
        const step = newStep();
        if (now?.kind === "file") step.versions.push(versionOf(now, ctx.now));
        put(step, change.path, { path: change.path, kind: "dir", hash: "", size: 0, mtime: 0 });
        steps.push(step);
        return { ok: true, steps };
      }
      case "delete": {
        const now = read(change.path);
        if (!now) return { ok: true, steps };
        checkBase(change.path, now, change.baseRev);
        if (now.kind === "dir" && hasLiveChildren(change.path)) {
          throw new Refusal("not_empty", `Cannot delete folder "${change.path}": it is not empty`, now);
        }
        const step = newStep();
        remove(step, now);
        if (now.kind === "file") step.versions.push(versionOf(now, ctx.now));
        step.trash.push({
          path: now.path,
          kind: now.kind,
          rev,
          deletedAt: ctx.now,
          device: ctx.device,
          size: now.kind === "file" ? now.size : 0,
          version: String(now.rev),
        });
        steps.push(step);
        return { ok: true, steps };
      }
      case "move": {
        const source = read(change.from);
        if (!source || source.kind !== "file") {
          throw new Refusal("conflict", `Cannot move "${change.from}": it does not exist`, source);
        }
        checkBase(change.from, source, change.baseRev);
        const target = read(change.path);
        if (target) throw new Refusal("exists", `Cannot move to "${change.path}": it exists`, target);
        ensureParents(change.path);
        // Both halves in one step: a crash never leaves the file at neither path.
        const step = newStep();
        remove(step, source);
        put(step, change.path, {
          path: change.path,
          kind: "file",
          hash: source.hash,
          size: source.size,
          mtime: source.mtime,
        });
        steps.push(step);
        return { ok: true, steps };
      }
    }
  } catch (error) {
    if (!(error instanceof Refusal)) throw error;
    const holder = error.lock &&
      { user: error.lock.user, device: error.lock.device, deviceId: error.lock.deviceId };
    return {
      ok: false,
      code: error.code,
      error: error.message,
      current: error.current,
      ...(holder ? { holder } : {}),
    };
  }
}

/**
 * Refuses a change that writes a file another device holds a live lock on: an upload or mkdir at its path, a
 * delete of it or of a folder holding it, a move of it (or onto it). The holder's own changes pass.
 */
export function checkLocks(change: Change, ctx: Pick<CommitContext, "locks" | "holder" | "now">): void {
  if (!ctx.holder || !ctx.locks || ctx.locks.length === 0) return;
  const query = { holder: ctx.holder, now: ctx.now };
  const lock = change.op === "delete"
    ? blockingLock(ctx.locks, { ...query, paths: [change.path] })
    : change.op === "move"
    ? blockingLock(ctx.locks, { ...query, paths: [change.from] }) ??
      blockingLock(ctx.locks, { ...query, paths: [change.path], below: false })
    : blockingLock(ctx.locks, { ...query, paths: [change.path], below: false });
  if (lock) {
    const path = change.op === "move" && lock.path !== change.path ? change.from : change.path;
    throw new Refusal(LOCKED_CODE, lockedMessage(path, lock), null, lock);
  }
}

/**
 * Refuses an upload larger than the largest file allowed, or one that would take the namespace's live files
 * past its quota (`usage` is their size before the upload). Replacing a file counts only what it adds.
 */
export function checkLimits(
  change: UploadChange,
  now: EntryRecord | null,
  usage: number,
  limits: CommitLimits = {},
): void {
  if (limits.maxFileBytes !== undefined && change.size > limits.maxFileBytes) {
    throw new Refusal(
      "too_large",
      `file too large: "${change.path}" is ${formatSize(change.size)}, the server accepts files up to ` +
        formatSize(limits.maxFileBytes),
    );
  }
  const adds = change.size - (now?.kind === "file" ? now.size : 0);
  if (limits.quotaBytes !== undefined && adds > 0 && usage + adds > limits.quotaBytes) {
    throw new Refusal(
      "quota_exceeded",
      `quota exceeded: "${change.path}" needs ${formatSize(adds)} more, ` +
        `${formatSize(Math.max(0, limits.quotaBytes - usage))} of ${formatSize(limits.quotaBytes)} left`,
    );
  }
}

/**
 * Refuses inserted rows that the caller may not reference, or that claim a size other than their chunk's real
 * size (so no stored manifest ever disagrees with the chunks, and no file claims more than its chunks hold).
 */
export function checkRows(
  path: string,
  inserted: readonly ChunkRow[],
  ctx: Pick<CommitContext, "sizes" | "limits">,
): void {
  const maxChunk = ctx.limits?.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
  const missing = new Set<string>();
  inserted.forEach((row, i) => {
    if (row.size === 0 || row.size > maxChunk) {
      throw new Refusal(
        "bad_rows",
        `Chunk ${i + 1} of "${path}" claims ${row.size} bytes: a chunk holds 1 to ${maxChunk} bytes`,
      );
    }
    const real = ctx.sizes.get(row.id);
    if (real === undefined) missing.add(row.id);
    else if (real !== row.size) {
      throw new Refusal(
        "bad_rows",
        `Chunk ${i + 1} of "${path}" (${row.id.slice(0, 12)}) claims ${row.size} bytes, but it holds ${real}`,
      );
    }
  });
  if (missing.size > 0) {
    throw new Refusal("missing_chunks", `${missing.size} chunks of "${path}" are missing`);
  }
}

function rowsOf(
  view: NamespaceView,
  change: UploadChange,
  rows: Uint8Array,
  now: EntryRecord | null,
): { chunkRows: ChunkRow[]; inserted: ChunkRow[] } {
  const inserted = insertedRows(change, rows);
  let chunkRows = inserted;
  if (change.from) {
    if (!now || now.kind !== "file" || now.hash !== change.from.hash) {
      throw new Refusal(
        "bad_base",
        `Cannot apply a delta to "${change.path}": its base version is not current`,
        now,
      );
    }
    const base = view.manifest(change.from.hash);
    if (!base || change.from.head + change.from.tail > base.length) {
      throw new Refusal("bad_base", `Cannot apply a delta to "${change.path}": base manifest mismatch`, now);
    }
    chunkRows = [
      ...base.slice(0, change.from.head),
      ...inserted,
      ...base.slice(base.length - change.from.tail),
    ];
  }
  let size = 0;
  for (const row of chunkRows) size += row.size;
  if (size !== change.size) {
    throw new Refusal(
      "bad_request",
      `Chunks of "${change.path}" add up to ${size} bytes, not ${change.size}`,
    );
  }
  if (fileHashOfChunks(chunkRows.map((r) => r.id)) !== change.hash) {
    throw new Refusal("bad_hash", `Chunks of "${change.path}" do not match its hash`);
  }
  return { chunkRows, inserted };
}
