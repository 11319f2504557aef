// Which remote renames of files replay locally as one rename of their folder: only when the plan moves every
// file the folder holds, the same way, and the folder holds nothing else (the executor checks the disk again).
import { basename, dirname } from "node:path";
import type { Action, LocalEntry } from "./reconcile.ts";

/** A remote rename of a file to replay locally. */
export type MoveLocal = Extract<Action, { type: "moveLocal" }>;

/** A folder `from` whose every file moves into `to` under the same name: one rename of the folder. */
export interface FolderMove {
  from: string;
  to: string;
  moves: MoveLocal[];
}

/** Fewer files than this are renamed one by one (the folder's check would cost as much). */
export const MIN_FOLDER_MOVE_FILES = 8;

/**
 * The folder renames among `moves` (the rest stay file by file). A folder qualifies when all of these hold in
 * the local snapshot: every entry under `from` is a file directly in it and is the source of one of the moves,
 * each to `to` under its own name; `to` is absent or an empty folder; neither folder is inside the other; at
 * least {@linkcode MIN_FOLDER_MOVE_FILES} files move. Anything else under `from` (a subfolder, a file changed
 * or made here that no move takes along, a file the plan leaves) keeps the moves file by file. Pure.
 */
export function folderMoves(
  moves: readonly MoveLocal[],
  local: ReadonlyMap<string, LocalEntry>,
): FolderMove[] {
  const groups = new Map<string, FolderMove>();
  for (const move of moves) {
    if (basename(move.from) !== basename(move.to)) continue;
    const from = folderOf(move.from);
    const to = folderOf(move.to);
    if (from === "" || to === "" || from === to || inside(from, to) || inside(to, from)) continue;
    const key = `${from}\u0000${to}`;
    const group = groups.get(key) ?? { from, to, moves: [] };
    group.moves.push(move);
    groups.set(key, group);
  }
  // A folder whose files go to two places is no folder rename.
  const sources = new Map<string, number>();
  for (const group of groups.values()) sources.set(group.from, (sources.get(group.from) ?? 0) + 1);
  const under = new Map<string, string[]>();
  const wanted = new Set([...groups.values()].flatMap((g) => [g.from, g.to]));
  for (const path of local.keys()) {
    for (let folder = folderOf(path); folder !== ""; folder = folderOf(folder)) {
      if (!wanted.has(folder)) continue;
      const list = under.get(folder) ?? [];
      list.push(path);
      under.set(folder, list);
    }
  }
  const out: FolderMove[] = [];
  for (const group of groups.values()) {
    if (sources.get(group.from) !== 1 || group.moves.length < MIN_FOLDER_MOVE_FILES) continue;
    if (local.get(group.from)?.kind !== "dir") continue;
    const target = local.get(group.to);
    if (target !== undefined && target.kind !== "dir") continue;
    if ((under.get(group.to) ?? []).length > 0) continue;
    const moved = new Set(group.moves.map((m) => m.from));
    const held = under.get(group.from) ?? [];
    if (held.length !== moved.size) continue;
    if (!held.every((p) => moved.has(p) && local.get(p)?.kind === "file" && folderOf(p) === group.from)) {
      continue;
    }
    out.push(group);
  }
  return out;
}

function folderOf(path: string): string {
  const folder = dirname(path);
  return folder === "." ? "" : folder;
}

function inside(path: string, folder: string): boolean {
  return path.startsWith(`${folder}/`);
}
