// Three-way reconcile: turns the base, local and remote snapshots into the client's ordered plan, with no I/O.

import { ancestorsOf, baseName, comparePaths, depth, parentPath } from "../protocol/paths.ts";
import { conflictCopyPath } from "./conflict_name.ts";

/** Whether an entry is a regular file or a folder. */
export type Kind = "file" | "dir";

/** What this device and the server last agreed on for a path. hash is "" for folders. */
export interface BaseEntry {
  /** File or folder. */
  kind: Kind;
  /** Whole-file content hash; "" for folders. */
  hash: string;
  /** Server revision of the agreed entry. */
  rev: number;
}

/** What the local scan sees now. mtime in ms. hash "" for folders. */
export interface LocalEntry {
  /** File or folder. */
  kind: Kind;
  /** Whole-file content hash; "" for folders. */
  hash: string;
  /** Size in bytes (0 for folders). */
  size: number;
  /** Modification time in milliseconds since the epoch. */
  mtime: number;
}

/** The server's live entry (the client mirrors it from the journal). device = name of the device that wrote it. */
export interface RemoteEntry {
  /** File or folder. */
  kind: Kind;
  /** Whole-file content hash; "" for folders. */
  hash: string;
  /** Size in bytes (0 for folders). */
  size: number;
  /** Modification time in milliseconds since the epoch, as the writing device reported it. */
  mtime: number;
  /** Server revision of this entry; never 0. */
  rev: number;
  /** Name of the device that wrote this entry. */
  device: string;
  /** This entry was written by a `filesync restore` of that version (see WireEntry). */
  restored?: string;
}

/** The three snapshots reconcile compares, keyed by relative "/"-separated NFC path. */
export interface ReconcileInput {
  /** What this device and the server last agreed on. */
  base: ReadonlyMap<string, BaseEntry>;
  /** What the local scan sees now. */
  local: ReadonlyMap<string, LocalEntry>;
  /** The server's live entries (deleted paths are absent). */
  remote: ReadonlyMap<string, RemoteEntry>;
  /**
   * When given, decide only these paths (the caller adds descendants it cares about); any entry of the maps
   * may still be read. Parent folders of these paths are created when needed; a folder that still holds
   * paths not listed is never deleted.
   */
  paths?: Iterable<string>;
  /**
   * Local paths that are symbolic links. What is at or below a link is unknown here, so nothing there is
   * decided: no download, folder or delete is planned for such a path on either side (remote changes wait
   * until the link is gone), and a base entry there is forgotten (a `sync` to null), so that it cannot later
   * read as a local delete. Folders above a link are never removed locally.
   */
  links?: ReadonlySet<string>;
  /**
   * Paths the ignore rules match (`kind` is the entry's kind on some side). They drop out of reconcile on
   * every side: nothing is uploaded, downloaded or deleted for them, a base entry is forgotten (a `sync` to
   * null, never a delete), and they still keep their parent folders from being removed on the sides that
   * hold them. Once no longer ignored they link again like paths first seen on both sides.
   * @default nothing is ignored
   */
  ignored?: (path: string, kind: Kind) => boolean;
}

/** Options of {@linkcode reconcile}. */
export interface ReconcileOptions {
  /** This device's name: names the conflict copies of its own versions. */
  device: string;
  /**
   * Names the conflict copy of `path` for the losing version, written by `device` and last modified at `when`;
   * must return a path for which `taken` is false, in the same folder as `path`.
   * @default {@linkcode conflictCopyPath}: "dir/name (conflicted copy from DEVICE YYYY-MM-DD HHMMSS).ext", UTC
   */
  copyPath?: (path: string, device: string, when: Date, taken: (p: string) => boolean) => string;
}

/**
 * One step of a plan. The executor runs the steps in the order returned and checks each step's expectations
 * (`expect` on the local side, `baseRev` compare-and-set on the server) before it writes; a step whose check
 * fails is skipped and the next reconcile decides again. After a step succeeds the executor records the new
 * base of every path it wrote (and forgets the base of every path it removed).
 *
 * - `sync`: both sides already agree; record `base` (null: forget the path).
 * - `upload`: commit the local file; `baseRev` is the rev of the live remote entry it replaces (0 if none).
 *   When the remote entry is a folder, every remote descendant is gone by then and the upload replaces it.
 * - `mkdirRemote`: create the folder on the server, replacing the file of rev `baseRev` (0 if none).
 * - `deleteRemote`: delete the server entry (a folder only once empty: its children come earlier in the plan).
 * - `moveRemote`: replay a local rename of a file on the server without sending content.
 * - `download`: write the remote file locally; `expect` is what the local path held at scan time (a folder
 *   there is empty by then and is replaced).
 * - `mkdirLocal`: create the folder locally, replacing `expect` (a file) when not null.
 * - `deleteLocal`: remove the local entry (a folder only once empty).
 * - `moveLocal`: replay a remote rename of a file locally.
 * - `conflict`: both sides changed `path` incompatibly. The `keep` side's version stays at `path` on both sides;
 *   the other (always a file) moves to `copyPath` on both sides. keep "remote": rename the local file to
 *   `copyPath`, upload it there, then download or create `remote` at `path`. keep "local": get the remote file
 *   to `copyPath` (download it locally; move it on the server with baseRev `remote.rev`), then upload or
 *   create `local` at `path` with baseRev 0.
 */
export type Action =
  | { type: "sync"; path: string; base: BaseEntry | null }
  | { type: "upload"; path: string; local: LocalEntry; baseRev: number }
  | { type: "mkdirRemote"; path: string; baseRev: number }
  | { type: "deleteRemote"; path: string; kind: Kind; baseRev: number }
  | { type: "moveRemote"; from: string; to: string; baseRev: number; local: LocalEntry }
  | { type: "download"; path: string; remote: RemoteEntry; expect: LocalEntry | null }
  | { type: "mkdirLocal"; path: string; remote: RemoteEntry; expect: LocalEntry | null }
  | { type: "deleteLocal"; path: string; expect: LocalEntry }
  | { type: "moveLocal"; from: string; to: string; expect: LocalEntry; remote: RemoteEntry }
  | {
    type: "conflict";
    path: string;
    keep: "local" | "remote";
    copyPath: string;
    local: LocalEntry;
    remote: RemoteEntry;
  };

/**
 * Every path an action reads or writes: what a caller looks at again when the action did not go as planned.
 *
 * @example
 * ```ts
 * import { actionPaths } from "./reconcile.ts";
 * const local = { kind: "file" as const, hash: "h", size: 1, mtime: 0 };
 * actionPaths({ type: "moveRemote", from: "a.txt", to: "b.txt", baseRev: 3, local }); // ["a.txt", "b.txt"]
 * ```
 */
export function actionPaths(action: Action): string[] {
  if (action.type === "moveLocal" || action.type === "moveRemote") return [action.from, action.to];
  if (action.type === "conflict") return [action.path, action.copyPath];
  return [action.path];
}

/** Anything with a kind and a hash: the part of an entry that decides equality. */
type Shape = { kind: Kind; hash: string } | null;

/** Which side a folder is about to disappear from (deleted, or replaced by a file). */
type Side = "local" | "remote";

/**
 * Decides what to do with every path so that this device and the server converge, and returns the plan in
 * the order the executor must run it: `sync`; folder creations (`mkdirLocal`, `mkdirRemote`, and conflicts
 * whose kept side is a folder) by depth, parents first; moves; file conflicts; downloads and uploads; deletes
 * by depth, children first; last, downloads and uploads that replace a folder emptied by those deletes.
 * Within a group actions are sorted by path. The result depends only on the arguments.
 *
 * @example Local edit, remote unchanged
 * ```ts
 * import { reconcile } from "./reconcile.ts";
 * const plan = reconcile({
 *   base: new Map([["a.txt", { kind: "file", hash: "h1", rev: 4 }]]),
 *   local: new Map([["a.txt", { kind: "file", hash: "h2", size: 3, mtime: 1000 }]]),
 *   remote: new Map([["a.txt", { kind: "file", hash: "h1", size: 3, mtime: 900, rev: 4, device: "laptop" }]]),
 * }, { device: "desk" });
 * // plan: [{ type: "upload", path: "a.txt", local: {...}, baseRev: 4 }]
 * ```
 */
export function reconcile(input: ReconcileInput, options: ReconcileOptions): Action[] {
  const { base, local, remote } = input;
  const requested = new Set<string>(input.paths ?? [...base.keys(), ...local.keys(), ...remote.keys()]);
  // Ancestors of requested paths are decided too, but only the folders they create are kept (rule 5).
  const decided = new Set(requested);
  for (const path of requested) {
    for (const parent of ancestorsOf(path)) {
      if (base.has(parent) || local.has(parent) || remote.has(parent)) decided.add(parent);
    }
  }
  const sorted = [...decided].sort(comparePaths);

  const links = input.links ?? new Set<string>();
  const plan = new Map<string, Action>();
  const removals = new Map<string, Side>();
  const ignoredPaths = new Set<string>();
  for (const path of sorted) {
    const b = base.get(path) ?? null, l = local.get(path) ?? null, r = remote.get(path) ?? null;
    if (links.size > 0 && atOrBelowLink(path, links)) {
      if (b !== null && requested.has(path)) plan.set(path, { type: "sync", path, base: null });
      continue;
    }
    if (input.ignored && [b, l, r].some((e) => e !== null && input.ignored!(path, e.kind))) {
      // Ignored: stop syncing it, never delete it anywhere; only the agreement about it is forgotten.
      ignoredPaths.add(path);
      if (b !== null) plan.set(path, { type: "sync", path, base: null });
      continue;
    }
    const action = decide(path, b, l, r);
    if (action === null) continue;
    plan.set(path, action);
    const removal = folderRemoval(action, local.get(path), remote.get(path));
    if (removal !== null) removals.set(path, removal);
  }

  pairMoves(plan, requested, base, local, remote);
  checkFolderRemovals(plan, removals, { requested, local, remote, links, ignored: ignoredPaths });

  // Keep only the folder-creating decisions of ancestors that were not asked for.
  for (const path of decided) {
    const action = plan.get(path);
    if (!requested.has(path) && action !== undefined && !createsFolder(action)) plan.delete(path);
  }

  nameConflictCopies(plan, base, local, remote, options);
  const actions = [...plan.values()];
  const replacing = new Set<Action>(
    actions.filter((a) =>
      (a.type === "upload" && remote.get(a.path)?.kind === "dir") ||
      (a.type === "download" && a.expect?.kind === "dir")
    ),
  );
  return actions
    .map((action) => ({ action, group: groupOf(action, replacing), key: sortKey(action) }))
    .sort((a, b) => a.group - b.group || depthOrder(a.group, a.key, b.key) || comparePaths(a.key, b.key))
    .map((entry) => entry.action);

  /** Rules 1-4 for one path, before moves, folder checks and copy names. */
  function decide(
    path: string,
    b: BaseEntry | null,
    l: LocalEntry | null,
    r: RemoteEntry | null,
  ): Action | null {
    if (same(l, r)) {
      const want = r === null ? null : { kind: r.kind, hash: r.kind === "dir" ? "" : r.hash, rev: r.rev };
      const agreed = want === null
        ? b === null
        : b !== null && b.kind === want.kind && b.hash === want.hash && b.rev === want.rev;
      return agreed ? null : { type: "sync", path, base: want };
    }
    if (same(l, b)) return applyRemote(path, l, r);
    if (same(r, b)) return sendLocal(path, l, r);
    // Both sides changed, differently.
    if (r === null) return sendLocal(path, l, null); // an edit beats a delete
    if (l === null) return applyRemote(path, null, r); // an edit beats a delete
    // Two files: the server's version got there first (a commit of this one would be refused), so it keeps the
    // name and this device moves its own version aside. Only the device that lost makes a copy, once, and
    // the winning path is never changed on the server, so no other device sees a second conflict.
    if (l.kind === "file" && r.kind === "file") return conflict(path, "remote", l, r);
    return conflict(path, l.kind === "dir" ? "local" : "remote", l, r); // the folder keeps the name
  }
}

/** Rule 2: make the local side look like `r`. */
function applyRemote(path: string, l: LocalEntry | null, r: RemoteEntry | null): Action {
  if (r === null) return { type: "deleteLocal", path, expect: l! };
  if (r.kind === "file") return { type: "download", path, remote: r, expect: l };
  return { type: "mkdirLocal", path, remote: r, expect: l };
}

/** Rule 3: make the server look like `l`. */
function sendLocal(path: string, l: LocalEntry | null, r: RemoteEntry | null): Action {
  if (l === null) return { type: "deleteRemote", path, kind: r!.kind, baseRev: r!.rev };
  if (l.kind === "file") return { type: "upload", path, local: l, baseRev: r?.rev ?? 0 };
  return { type: "mkdirRemote", path, baseRev: r?.rev ?? 0 };
}

/** A conflict whose copy path is chosen later, once every conflict of the plan is known. */
function conflict(path: string, keep: Side, local: LocalEntry, remote: RemoteEntry): Action {
  return { type: "conflict", path, keep, copyPath: "", local, remote };
}

/** The side a folder disappears from if `action` runs, or null when it removes no folder. */
function folderRemoval(action: Action, l: LocalEntry | undefined, r: RemoteEntry | undefined): Side | null {
  if ((action.type === "deleteLocal" || action.type === "download") && l?.kind === "dir") return "local";
  if ((action.type === "deleteRemote" || action.type === "upload") && r?.kind === "dir") return "remote";
  return null;
}

/** Rule 6: pair a delete and a new file of the same content on the same side into a move. */
function pairMoves(
  plan: Map<string, Action>,
  requested: ReadonlySet<string>,
  base: ReadonlyMap<string, BaseEntry>,
  local: ReadonlyMap<string, LocalEntry>,
  remote: ReadonlyMap<string, RemoteEntry>,
): void {
  const remoteFrom: string[] = [], remoteTo: string[] = [], localFrom: string[] = [], localTo: string[] = [];
  for (const [path, action] of plan) {
    if (!requested.has(path)) continue;
    if (action.type === "deleteRemote" && action.kind === "file") remoteFrom.push(path);
    if (action.type === "upload" && !base.has(path) && !remote.has(path)) remoteTo.push(path);
    if (action.type === "deleteLocal" && action.expect.kind === "file") localFrom.push(path);
    if (action.type === "download" && !base.has(path) && !local.has(path)) localTo.push(path);
  }
  for (
    const [from, to] of pairByHash(remoteFrom, remoteTo, (p) => base.get(p)!.hash, (p) => local.get(p)!.hash)
  ) {
    plan.delete(from);
    plan.set(to, { type: "moveRemote", from, to, baseRev: remote.get(from)!.rev, local: local.get(to)! });
  }
  for (
    const [from, to] of pairByHash(localFrom, localTo, (p) => local.get(p)!.hash, (p) => remote.get(p)!.hash)
  ) {
    plan.delete(from);
    plan.set(to, { type: "moveLocal", from, to, expect: local.get(from)!, remote: remote.get(to)! });
  }
}

/** Pairs sources and targets of equal hash, each at most once: same base name first, then in path order. */
function pairByHash(
  froms: string[],
  tos: string[],
  fromHash: (p: string) => string,
  toHash: (p: string) => string,
): [string, string][] {
  const groups = new Map<string, { froms: string[]; tos: string[] }>();
  for (const from of froms) {
    const hash = fromHash(from);
    if (hash === "") continue;
    if (!groups.has(hash)) groups.set(hash, { froms: [], tos: [] });
    groups.get(hash)!.froms.push(from);
  }
  for (const to of tos) groups.get(toHash(to))?.tos.push(to);
  const pairs: [string, string][] = [];
  for (const group of groups.values()) {
    const fromList = group.froms.sort(comparePaths);
    const toList = group.tos.sort(comparePaths);
    const used = new Set<string>();
    const left: string[] = [];
    for (const from of fromList) {
      const to = toList.find((t) => !used.has(t) && baseName(t) === baseName(from));
      if (to === undefined) {
        left.push(from);
        continue;
      }
      used.add(to);
      pairs.push([from, to]);
    }
    const rest = toList.filter((t) => !used.has(t));
    for (let i = 0; i < left.length && i < rest.length; i++) pairs.push([left[i], rest[i]]);
  }
  return pairs;
}

/**
 * Rule 5: a folder disappears from a side only if nothing would remain inside it there once the plan has run.
 * Otherwise it stays: a deleted folder is recreated where it was deleted, and a folder replaced by a file wins
 * a type conflict (the file goes to a copy name). A folder that still holds paths this call does not decide
 * (see {@linkcode ReconcileInput.paths}) is left alone: a later call with those paths decides it.
 */
function checkFolderRemovals(
  plan: Map<string, Action>,
  removals: ReadonlyMap<string, Side>,
  sides: {
    requested: ReadonlySet<string>;
    local: ReadonlyMap<string, LocalEntry>;
    remote: ReadonlyMap<string, RemoteEntry>;
    links: ReadonlySet<string>;
    ignored: ReadonlySet<string>;
  },
): void {
  const { requested, local, remote, links, ignored } = sides;
  // An ignored path stays where it is on each side: it pins its folders there like an undecided path.
  const kept = (path: string) => {
    const action = plan.get(path);
    return action !== undefined && !ignored.has(path) && (requested.has(path) || createsFolder(action));
  };
  const inMap = (side: Side, path: string) => side === "local" ? local.has(path) : remote.has(path);
  // After the plan a path with a kept action is present on both sides or absent on both; others stay as they are.
  const goneAfter = new Set<string>();
  for (const [path, action] of plan) {
    if (!kept(path)) continue;
    if (action.type === "moveLocal" || action.type === "moveRemote") goneAfter.add(action.from);
    else if (action.type === "deleteLocal" || action.type === "deleteRemote") goneAfter.add(path);
    else if (action.type === "sync" && action.base === null) goneAfter.add(path);
  }
  /** Folders with something inside after the plan, and folders with something undecided inside. */
  const occupied = { local: new Set<string>(), remote: new Set<string>() };
  const pinned = { local: new Set<string>(), remote: new Set<string>() };
  const mark = (set: Set<string>, path: string) => {
    for (const parent of ancestorsOf(path)) set.add(parent);
  };
  const settle = (path: string) => {
    for (const side of ["local", "remote"] as const) {
      if (goneAfter.has(path)) continue;
      if (kept(path) || inMap(side, path)) mark(occupied[side], path);
      if (!kept(path) && inMap(side, path)) mark(pinned[side], path);
    }
  };
  for (const path of new Set([...local.keys(), ...remote.keys(), ...plan.keys()])) {
    if (!removals.has(path)) settle(path);
  }
  // A link holds something unknown: the folders above it stay here.
  for (const link of links) mark(pinned.local, link);

  const deepestFirst = [...removals.keys()].sort((a, b) => depth(b) - depth(a) || comparePaths(a, b));
  for (const path of deepestFirst) {
    const side = removals.get(path)!;
    const action = plan.get(path)!;
    if (pinned[side].has(path)) {
      plan.delete(path);
      goneAfter.delete(path);
    } else if (occupied[side].has(path)) {
      const l = local.get(path)!, r = remote.get(path)!;
      if (action.type === "deleteLocal") plan.set(path, { type: "mkdirRemote", path, baseRev: 0 });
      else if (action.type === "deleteRemote") {
        plan.set(path, { type: "mkdirLocal", path, remote: r, expect: null });
      } else plan.set(path, conflict(path, side, l, r));
      goneAfter.delete(path);
    }
    settle(path);
  }
}

/** True if `path` or one of its ancestors is in `links` (O(depth)). */
function atOrBelowLink(path: string, links: ReadonlySet<string>): boolean {
  if (links.has(path)) return true;
  for (let i = path.indexOf("/"); i !== -1; i = path.indexOf("/", i + 1)) {
    if (links.has(path.slice(0, i))) return true;
  }
  return false;
}

/** Whether an action creates a folder on some side (kept even for ancestors that were not asked for). */
function createsFolder(action: Action): boolean {
  return action.type === "mkdirLocal" || action.type === "mkdirRemote" ||
    (action.type === "conflict" && (action.local.kind === "dir" || action.remote.kind === "dir"));
}

/** Fills each conflict's copy path, in path order, so that no two copies and no known path (base too) collide. */
function nameConflictCopies(
  plan: Map<string, Action>,
  base: ReadonlyMap<string, BaseEntry>,
  local: ReadonlyMap<string, LocalEntry>,
  remote: ReadonlyMap<string, RemoteEntry>,
  options: ReconcileOptions,
): void {
  const name = options.copyPath ?? conflictCopyPath;
  const chosen = new Set<string>();
  // Base paths count too: a path deleted on both sides still gets a `sync` that forgets it.
  const taken = (p: string) => local.has(p) || remote.has(p) || base.has(p) || chosen.has(p);
  for (const path of [...plan.keys()].sort(comparePaths)) {
    const action = plan.get(path)!;
    if (action.type !== "conflict") continue;
    const loser = action.keep === "local" ? action.remote : action.local;
    const loserDevice = action.keep === "local" ? action.remote.device : options.device;
    const mtime = new Date(loser.mtime);
    const copyPath = name(path, loserDevice, Number.isNaN(mtime.getTime()) ? new Date(0) : mtime, taken);
    if (taken(copyPath) || parentPath(copyPath) !== parentPath(path)) {
      throw new RangeError(`Cannot name conflict copy of "${path}": "${copyPath}" is taken or elsewhere`);
    }
    chosen.add(copyPath);
    action.copyPath = copyPath;
  }
}

/** Plan groups, in execution order. */
const Group = { Sync: 0, Mkdir: 1, Move: 2, Conflict: 3, Transfer: 4, Delete: 5, Replace: 6 } as const;
type Group = typeof Group[keyof typeof Group];

function groupOf(action: Action, replacing: ReadonlySet<Action>): Group {
  switch (action.type) {
    case "sync":
      return Group.Sync;
    case "mkdirLocal":
    case "mkdirRemote":
      return Group.Mkdir;
    case "moveLocal":
    case "moveRemote":
      return Group.Move;
    case "conflict":
      return createsFolder(action) ? Group.Mkdir : Group.Conflict;
    case "download":
    case "upload":
      return replacing.has(action) ? Group.Replace : Group.Transfer;
    case "deleteLocal":
    case "deleteRemote":
      return Group.Delete;
  }
}

/** Parents first when creating folders, children first when deleting; otherwise no depth order. */
function depthOrder(group: Group, a: string, b: string): number {
  if (group === Group.Mkdir) return depth(a) - depth(b);
  if (group === Group.Delete) return depth(b) - depth(a);
  return 0;
}

function sortKey(action: Action): string {
  return action.type === "moveLocal" || action.type === "moveRemote" ? action.from : action.path;
}

/** Equal entries: same kind and, for files, same hash; two folders are always equal; absent equals absent. */
function same(a: Shape, b: Shape): boolean {
  if (a === null || b === null) return a === b;
  return a.kind === b.kind && (a.kind === "dir" || a.hash === b.hash);
}
