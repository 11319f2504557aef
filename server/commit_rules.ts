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
import type { EntryRecord, TrashRecord, VersionRecord } from "./metadata_store.ts";

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
  /** The COMMIT's data: manifest rows. */
  rows: Uint8Array;
  /** Inserted chunk ids the caller may not reference. */
  missing: ReadonlySet<string>;
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
}

/** A batch's plan: results per change, steps to write in order, manifests and chunks it references. */
export interface CommitPlan {
  /** One result per change, in order. */
  results: ChangeResult[];
  /** What to write, in order. */
  steps: Step[];
  /** The new rev after the batch. */
  seq: number;
  /** Full manifests of accepted uploads by file hash. */
  manifests: Map<string, { size: number; rows: ChunkRow[] }>;
  /** Chunk ids that accepted uploads inserted (they become committed references). */
  permanent: Set<string>;
}

/** Why a change is refused: code, message and the current entry when it matters. */
export class Refusal extends Error {
  /** Builds a refusal. */
  constructor(readonly code: string, message: string, readonly current: EntryRecord | null = null) {
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
  const plan: CommitPlan = {
    results: [],
    steps: [],
    seq: ctx.seq,
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
          for (const [p, e] of overlay) {
            if (e && (parentPath(p) ?? "") === folder && foldName(baseName(p)) === folded) paths.add(p);
          }
          return [...paths];
        }),
      },
      change,
      { ...ctx, seq: plan.seq },
    );
    if (!decided.ok) {
      plan.results.push({ ok: false, code: decided.code, error: decided.error, current: decided.current });
      continue;
    }
    for (const step of decided.steps) {
      for (const write of step.writes) overlay.set(write.path, write.entry);
      plan.steps.push(step);
    }
    const entries = decided.steps.flatMap((s) => s.journal);
    if (entries.length > 0) plan.seq = entries[entries.length - 1].rev;
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
  | { ok: false; code: string; error: string; current: EntryRecord | null };

/** Decides one change against a view (the state before it). Pure. */
export function decideChange(view: NamespaceView, change: Change, ctx: CommitContext): Decision {
  const steps: Step[] = [];
  let rev = ctx.seq;
  const staged = new Map<string, EntryRecord | null>();
  const read = (path: string) => staged.has(path) ? staged.get(path)! : view.entry(path);
  const hasLiveChildren = (path: string) => {
    const { paths, complete } = view.children(path);
    return !complete || paths.length > 0 || [...staged].some(([p, e]) => e && parentPath(p) === path);
  };
  const newStep = (): Step => ({ writes: [], journal: [], versions: [], trash: [] });
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
    const { time: _time, ...wire } = record;
    step.writes.push({ path, entry: record });
    step.journal.push({ ...wire, tag: ctx.tag });
    staged.set(path, record);
  };
  const remove = (step: Step, current: EntryRecord) => {
    const path = current.path;
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
    switch (change.op) {
      case "upload": {
        const now = read(change.path);
        checkBase(change.path, now, change.baseRev);
        if (now?.kind === "dir" && hasLiveChildren(change.path)) {
          throw new Refusal("not_empty", `Cannot replace folder "${change.path}": it is not empty`, now);
        }
        const { chunkRows, inserted } = rowsOf(view, change, ctx.rows, now);
        const missing = [...new Set(inserted.map((r) => r.id))].filter((id) => ctx.missing.has(id));
        if (missing.length > 0) {
          throw new Refusal("missing_chunks", `${missing.length} chunks of "${change.path}" are missing`);
        }
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
    return { ok: false, code: error.code, error: error.message, current: error.current };
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
