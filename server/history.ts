// History and trash as the ops see them: VERSIONS and TRASH replies, and RESTORE as a new commit.
import type { LockHolder } from "../protocol/locks.ts";
import { isDescendant } from "../protocol/paths.ts";
import {
  type Change,
  type ChunkRow,
  encodeRows,
  type WireEntry,
  type WireTrashItem,
  type WireVersion,
} from "../protocol/messages.ts";
import { RpcError } from "../protocol/rpc.ts";
import type { CommitLimits } from "./commit_rules.ts";
import type {
  ChunkCheck,
  CommitOutcome,
  EntryRecord,
  MetadataStore,
  RetentionPolicy,
  TrashRecord,
  VersionRecord,
} from "./metadata_store.ts";
import { expiredVersions, trashExpired } from "./retention.ts";

/** How far back a folder restore reads the journal for what the folder held. */
const FOLDER_WALK_LIMIT = 200_000;

/** The versions of one path that retention keeps, and those it has dropped but garbage collection has not. */
export function keptVersions(
  versions: readonly VersionRecord[],
  trash: readonly TrashRecord[],
  policy: RetentionPolicy,
  now: number,
): { kept: VersionRecord[]; expired: VersionRecord[] } {
  const needed = new Set(
    trash.filter((t) => t.kind === "file" && !trashExpired(t, policy, now)).map((t) => Number(t.version)),
  );
  const expired = new Set(expiredVersions(versions, policy, now, { needed }));
  const newestFirst = [...versions].sort((a, b) => b.rev - a.rev);
  return {
    kept: newestFirst.filter((v) => !expired.has(v)),
    expired: newestFirst.filter((v) => expired.has(v)),
  };
}

/** The VERSIONS reply: the current version first (when the file exists), then the kept ones, newest first. */
export function versionList(
  entry: EntryRecord | null,
  kept: readonly VersionRecord[],
): WireVersion[] {
  const out: WireVersion[] = [];
  if (entry?.kind === "file") {
    out.push({
      id: String(entry.rev),
      time: entry.time ?? entry.mtime,
      size: entry.size,
      mtime: entry.mtime,
      hash: entry.hash,
      device: entry.device,
      current: true,
    });
  }
  for (const v of kept) {
    out.push({
      id: String(v.rev),
      time: v.time,
      size: v.size,
      mtime: v.mtime,
      hash: v.hash,
      device: v.device,
    });
  }
  return out;
}

/** The TRASH reply: unexpired items whose path does not exist again, newest deletion first. */
export function trashList(
  trash: readonly TrashRecord[],
  policy: RetentionPolicy,
  now: number,
  exists: (path: string) => boolean,
): WireTrashItem[] {
  return [...trash]
    .filter((t) => !trashExpired(t, policy, now) && !exists(t.path))
    .sort((a, b) => b.rev - a.rev)
    .map((t) => ({
      path: t.path,
      kind: t.kind,
      deletedAt: t.deletedAt,
      device: t.device,
      size: t.size,
      version: t.version,
    }));
}

/** What a RESTORE brings back: one file version, or a deleted folder (with what it held). */
export type RestoreSource =
  | { kind: "file"; version: { id: string; hash: string; size: number; mtime: number } }
  | { kind: "folder"; item: TrashRecord };

/**
 * Chooses what a RESTORE of `path` brings back (pure). Without `version`: the newest kept earlier version, or
 * when the path is gone and was last deleted as a folder, that folder. Throws an RpcError with code
 * "not_found", "unknown_version" or "expired".
 */
export function chooseRestore(input: {
  path: string;
  version?: string;
  entry: EntryRecord | null;
  kept: readonly VersionRecord[];
  expired: readonly VersionRecord[];
  /** Trash items of this path, any order. */
  trash: readonly TrashRecord[];
  policy: RetentionPolicy;
  now: number;
  /** True if the journal shows that a version with this id once existed at the path. */
  existed?: boolean;
}): RestoreSource {
  const { path, version, entry, kept, expired } = input;
  const liveTrash = input.trash.filter((t) => !trashExpired(t, input.policy, input.now))
    .sort((a, b) => b.rev - a.rev);
  const asSource = (v: VersionRecord | EntryRecord): RestoreSource => ({
    kind: "file",
    version: { id: String(v.rev), hash: v.hash, size: v.size, mtime: v.mtime },
  });
  if (version !== undefined) {
    if (entry?.kind === "file" && String(entry.rev) === version) return asSource(entry);
    const found = kept.find((v) => String(v.rev) === version);
    if (found) return asSource(found);
    const folder = liveTrash.find((t) => t.kind === "dir" && t.version === version);
    if (folder) return { kind: "folder", item: folder };
    const gone = expired.some((v) => String(v.rev) === version) ||
      input.trash.some((t) => t.version === version) || input.existed;
    if (gone) throw new RpcError("expired", `Version ${version} of "${path}" has expired`);
    throw new RpcError("unknown_version", `No version ${version} of "${path}"`);
  }
  const newestFile = kept[0];
  if (entry?.kind !== "file" && liveTrash[0]?.kind === "dir") return { kind: "folder", item: liveTrash[0] };
  if (newestFile) return asSource(newestFile);
  if (expired.length > 0 || input.trash.length > liveTrash.length) {
    throw new RpcError("expired", `Every earlier version of "${path}" has expired`);
  }
  if (entry?.kind === "dir") {
    throw new RpcError("unknown_version", `"${path}" is a folder with nothing to restore`);
  }
  if (entry) throw new RpcError("unknown_version", `"${path}" has no earlier version`);
  throw new RpcError("not_found", `No file or folder "${path}" in the history`);
}

/**
 * The files and folders a deleted folder held when it was deleted (pure): reading the journal back from the
 * folder's deletion, the deletions below it that went to the trash, up to the last other change below it (or
 * the folder's creation). Newest deletion of each path only. Feed it the journal page by page, newest first;
 * `done` says when more pages cannot change the answer.
 */
export class FolderContents {
  readonly items: TrashRecord[] = [];
  done = false;
  #seen = new Set<string>();
  #created: number;

  /** Starts the walk for a deleted folder; `trashByRev` finds the trash item of a deletion. */
  constructor(readonly folder: TrashRecord, readonly trashByRev: ReadonlyMap<number, TrashRecord>) {
    this.#created = Number(folder.version);
  }

  /** Reads the next page of journal entries (newest first). */
  add(page: readonly WireEntry[]): void {
    for (const e of page) {
      if (this.done) return;
      if (e.rev >= this.folder.rev) continue;
      if (e.rev <= this.#created || e.path === this.folder.path) {
        this.done = true;
        return;
      }
      if (!isDescendant(e.path, this.folder.path)) continue;
      if (!e.deleted) {
        this.done = true;
        return;
      }
      const item = this.trashByRev.get(e.rev);
      if (!item || this.#seen.has(item.path)) continue; // moved away, not deleted
      this.#seen.add(item.path);
      this.items.push(item);
    }
  }
}

/** Options of {@linkcode restore}. */
export interface RestoreOptions {
  store: MetadataStore;
  ns: string;
  device: string;
  path: string;
  version?: string;
  as?: string;
  policy: RetentionPolicy;
  now: number;
  /** The real sizes of those of these chunks that are stored (a restore needs every chunk it brings back). */
  chunkSizes: ChunkCheck;
  /** Largest file and quota, as for any commit. */
  limits?: CommitLimits;
  /** Who restores: files another device holds a lock on are not restored over. @default no lock checked */
  holder?: LockHolder;
}

/** What a restore committed. */
export interface RestoreResult {
  outcome: CommitOutcome;
  /** Where it was restored. */
  path: string;
  /** The id of the version (or the folder's) brought back. */
  version: string;
  kind: "file" | "dir";
  /** Paths inside a restored folder that could not come back, with the reason. */
  skipped: { path: string; code: string; error: string }[];
}

/**
 * Brings back a version (or a deleted folder with what it held) as a new commit against whatever is at the
 * target now. Throws an RpcError when nothing can be restored.
 */
export async function restore(options: RestoreOptions): Promise<RestoreResult> {
  const { store, ns, path, policy, now } = options;
  const target = options.as ?? path;
  const [entry, versions, allTrash] = await Promise.all([
    store.getEntry(ns, path),
    store.listVersions(ns, path),
    store.listTrash(ns),
  ]);
  const trash = allTrash.filter((t) => t.path === path);
  const { kept, expired } = keptVersions(versions, trash, policy, now);
  let existed = false;
  if (options.version !== undefined && /^[1-9]\d{0,15}$/.test(options.version)) {
    const rev = Number(options.version);
    const [event] = await store.changesSince(ns, rev - 1, 1);
    existed = event?.rev === rev && event.path === path && !event.deleted;
  }
  const source = chooseRestore({ ...options, entry, kept, expired, trash, existed });
  const changes: Change[] = [];
  const rows: ChunkRow[] = [];
  const skipped: RestoreResult["skipped"] = [];
  const addFile = async (at: string, version: { hash: string; size: number; mtime: number }) => {
    const manifest = await store.getManifest(version.hash);
    if (!manifest) throw new RpcError("storage", `The content of "${at}" is missing on the server`);
    const current = await store.getEntry(ns, at);
    changes.push({
      op: "upload",
      path: at,
      baseRev: current?.rev ?? 0,
      size: version.size,
      mtime: version.mtime,
      hash: version.hash,
      rows: { offset: rows.length, count: manifest.length },
    });
    rows.push(...manifest);
  };
  let versionId: string;
  if (source.kind === "file") {
    versionId = source.version.id;
    await addFile(target, source.version);
  } else {
    versionId = source.item.version;
    const current = await store.getEntry(ns, target);
    if (current?.kind === "file") {
      throw new RpcError("exists", `Cannot restore folder "${path}" at "${target}": a file is there now`);
    }
    changes.push({ op: "mkdir", path: target, baseRev: current?.rev ?? 0 });
    const contents = new FolderContents(source.item, new Map(allTrash.map((t) => [t.rev, t])));
    let cursor = source.item.rev;
    for (let read = 0; !contents.done && read < FOLDER_WALK_LIMIT; read += 1000) {
      const page = await store.changesBefore(ns, cursor, 1000);
      if (page.length === 0) break;
      contents.add(page);
      cursor = page[page.length - 1].rev;
    }
    const moved = (p: string) => target + p.slice(path.length);
    // Shallow paths first, so a restored subfolder exists before what goes in it.
    const byDepth = [...contents.items].sort((a, b) => a.path.split("/").length - b.path.split("/").length);
    for (const item of byDepth) {
      const at = moved(item.path);
      if (item.kind === "dir") {
        const here = await store.getEntry(ns, at);
        changes.push({ op: "mkdir", path: at, baseRev: here?.rev ?? 0 });
        continue;
      }
      const version = (await store.listVersions(ns, item.path)).find((v) => String(v.rev) === item.version);
      if (!version) {
        skipped.push({ path: at, code: "expired", error: `"${item.path}" has expired` });
        continue;
      }
      await addFile(at, version);
    }
  }
  // The chunk check runs inside the commit, under the lock garbage collection waits for.
  const outcome = await store.commit(ns, {
    device: options.device,
    changes,
    rows: encodeRows(rows),
    checkChunks: options.chunkSizes,
    limits: options.limits,
    holder: options.holder,
    restored: versionId,
  });
  const first = outcome.results[0];
  if (!first.ok) throw new RpcError(first.code, `Cannot restore "${path}" at "${target}": ${first.error}`);
  outcome.results.forEach((result, i) => {
    if (!result.ok) skipped.push({ path: changes[i].path, code: result.code, error: result.error });
  });
  return {
    outcome,
    path: target,
    version: versionId,
    kind: source.kind === "file" ? "file" : "dir",
    skipped,
  };
}
