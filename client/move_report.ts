// How a run's moves are reported: the file moves of one renamed folder become one event (`files` counts them).
import type { ClientEvent, Where } from "./events.ts";

/** A move the executor made (here, or on the server). */
export interface MoveDone {
  from: string;
  to: string;
  where: Where;
  note?: string;
}

/** A folder deleted in the same run (its event is left out when the folder was renamed, not deleted). */
export interface FolderDeleted {
  path: string;
  where: Where;
}

/** A `moved` event. */
export type MovedEvent = Extract<ClientEvent, { type: "moved" }>;
/** A `deleted` event. */
export type DeletedEvent = Extract<ClientEvent, { type: "deleted" }>;

/**
 * The folders a file's move implies, when the file kept its name and the path below some folder: `photos/2020/a`
 * -> `pictures/2020/a` implies `photos` -> `pictures`; null when the name changed or no folder is left on
 * either side (`a.txt` -> `docs/a.txt`).
 */
export function impliedFolders(from: string, to: string): { from: string; to: string } | null {
  const a = from.split("/");
  const b = to.split("/");
  let common = 0;
  while (
    common < a.length - 1 && common < b.length - 1 && a[a.length - 1 - common] === b[b.length - 1 - common]
  ) {
    common++;
  }
  if (common === 0) return null;
  return { from: a.slice(0, a.length - common).join("/"), to: b.slice(0, b.length - common).join("/") };
}

/** Most renamed folders {@linkcode ReportOptions.renamed} keeps (the oldest go first). */
export const MAX_RENAMED = 1000;

/** Options of {@linkcode reportMoves}. */
export interface ReportOptions {
  /** Whether `folder` holds nothing any more (here for `server` moves, on the server for `here` ones). */
  emptied: (folder: string, where: Where) => boolean;
  /**
   * Folders reported as renamed (see {@linkcode renamedKey}), kept from run to run: the first delete of each
   * (and deletes of folders in it) belong to that rename and are left out; a folder is forgotten once its own
   * delete was. This run's renames are added. @default none kept
   */
  renamed?: Set<string>;
}

/** The key of a renamed folder in {@linkcode ReportOptions.renamed}. */
export function renamedKey(where: Where, path: string): string {
  return `${where}\u0000${path}`;
}

/**
 * The events of a run's moves and folder deletes. Moves of two or more files that {@linkcode impliedFolders}
 * puts under one folder pair, the same way, whose old folder `emptied` says holds nothing any more, are one
 * event of the folder; the deletes of that folder (and of folders in it) are left out, in this run or a later
 * one: the folder was renamed, not deleted. Everything else is reported as it is, in order. Pure but for
 * `renamed`.
 *
 * @example
 * ```ts
 * const moves = [{ from: "p/a", to: "q/a", where: "server" }, { from: "p/b", to: "q/b", where: "server" }];
 * reportMoves(moves, [], { emptied: () => true });
 * // [{ type: "moved", from: "p", to: "q", where: "server", files: 2 }]
 * ```
 */
export function reportMoves(
  moves: readonly MoveDone[],
  folderDeletes: readonly FolderDeleted[],
  options: ReportOptions,
): (MovedEvent | DeletedEvent)[] {
  const renamed = options.renamed ?? new Set<string>();
  const groups = new Map<string, { from: string; to: string; where: Where; moves: MoveDone[] }>();
  for (const move of moves) {
    const folders = impliedFolders(move.from, move.to);
    if (!folders || move.note !== undefined) continue;
    const key = `${move.where}\u0000${folders.from}\u0000${folders.to}`;
    const group = groups.get(key) ?? { ...folders, where: move.where, moves: [] };
    group.moves.push(move);
    groups.set(key, group);
  }
  const folderOf = new Map<MoveDone, string>();
  for (const [key, group] of groups) {
    if (group.moves.length < 2 || !options.emptied(group.from, group.where)) {
      groups.delete(key);
      continue;
    }
    for (const move of group.moves) folderOf.set(move, key);
    renamed.add(renamedKey(group.where, group.from));
    // Renames whose delete never came (the old folder kept a file no move took) are not kept forever.
    for (const old of renamed) {
      if (renamed.size <= MAX_RENAMED) break;
      renamed.delete(old);
    }
  }
  const events: (MovedEvent | DeletedEvent)[] = [];
  const told = new Set<string>();
  for (const move of moves) {
    const key = folderOf.get(move);
    if (key === undefined) {
      events.push({ type: "moved", from: move.from, to: move.to, where: move.where, ...note(move.note) });
    } else if (!told.has(key)) {
      told.add(key);
      const group = groups.get(key)!;
      events.push({
        type: "moved",
        from: group.from,
        to: group.to,
        where: group.where,
        files: group.moves.length,
      });
    }
  }
  const inRenamed = ({ path, where }: FolderDeleted) => {
    if (renamed.has(renamedKey(where, path))) return true;
    for (let i = path.indexOf("/"); i !== -1; i = path.indexOf("/", i + 1)) {
      if (renamed.has(renamedKey(where, path.slice(0, i)))) return true;
    }
    return false;
  };
  const leftOut = folderDeletes.filter(inRenamed);
  for (const del of folderDeletes) {
    if (!leftOut.includes(del)) {
      events.push({ type: "deleted", path: del.path, kind: "dir", where: del.where });
    }
  }
  for (const del of leftOut) renamed.delete(renamedKey(del.where, del.path));
  return events;
}

function note(text: string | undefined): { note?: string } {
  return text === undefined ? {} : { note: text };
}

/**
 * A test for {@linkcode reportMoves}'s `emptied` over a snapshot's paths: true when no path is `folder` itself
 * (with `gone`) or below it. The folders are indexed once, on first use.
 */
export function emptiedIn(
  paths: () => Iterable<string>,
  options: { gone: boolean },
): (folder: string) => boolean {
  let occupied: Set<string> | null = null;
  return (folder) => {
    if (occupied === null) {
      occupied = new Set();
      for (const path of paths()) {
        if (options.gone) occupied.add(path);
        for (let i = path.indexOf("/"); i !== -1; i = path.indexOf("/", i + 1)) {
          occupied.add(path.slice(0, i));
        }
      }
    }
    return !occupied.has(folder);
  };
}
