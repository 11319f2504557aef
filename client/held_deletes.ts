// Held deletes on disk: the running client lists them in .filesync/, `filesync confirm-deletes` confirms them.
import { dirname, join, resolve } from "node:path";
import { STATE_DIR } from "./state.ts";

/** File (in DIR/.filesync/) where the client lists the server deletes its safety stop holds back. */
export const HELD_FILE = "held-deletes.json";
/** File (in DIR/.filesync/) by which `filesync confirm-deletes` lets the listed deletes through. */
export const CONFIRM_FILE = "confirm-deletes";

/** The server deletes a safety stop holds back: every path (files and folders), and how many are files. */
export interface HeldDeletes {
  /** Paths whose server delete waits for confirmation. */
  paths: string[];
  /** How many of them are files. */
  files: number;
}

/** Writes (or, for no paths, removes) the list of held deletes of the synced folder `root`. */
export async function writeHeld(root: string, held: HeldDeletes): Promise<void> {
  const path = join(root, STATE_DIR, HELD_FILE);
  if (held.paths.length === 0) {
    await Deno.remove(path).catch(() => {});
    return;
  }
  await writeAtomic(path, JSON.stringify(held));
}

/** Reads the held deletes of `root`; null when none are listed (or the list is unreadable). */
export async function readHeld(root: string): Promise<HeldDeletes | null> {
  return parseHeld(await readOrNull(join(root, STATE_DIR, HELD_FILE)));
}

/**
 * Confirms the deletes listed now: writes them to the confirm file (temp + rename) that the running client, or
 * its next start, takes. Deletes held later are not confirmed by it. Returns what was confirmed, or null.
 */
export async function confirmHeld(root: string): Promise<HeldDeletes | null> {
  const held = await readHeld(root);
  if (held === null || held.paths.length === 0) return null;
  await writeAtomic(join(root, STATE_DIR, CONFIRM_FILE), JSON.stringify(held));
  return held;
}

/** True when a confirmation waits to be taken (one stat: cheap enough to poll). */
export function confirmWaiting(root: string): boolean {
  try {
    Deno.lstatSync(join(root, STATE_DIR, CONFIRM_FILE));
    return true;
  } catch {
    return false;
  }
}

/** Takes (reads and removes) a waiting confirmation: the set of confirmed paths, or null when none waits. */
export async function takeConfirmed(root: string): Promise<Set<string> | null> {
  const path = join(root, STATE_DIR, CONFIRM_FILE);
  const held = parseHeld(await readOrNull(path));
  await Deno.remove(path).catch(() => {});
  return held === null ? null : new Set(held.paths);
}

/**
 * The synced folder that holds `start`: `start` itself or the nearest folder above it with a `.filesync/`
 * folder; null when there is none.
 *
 * @example
 * ```ts
 * findSyncRoot("/home/me/Sync/photos/2026"); // "/home/me/Sync" when /home/me/Sync/.filesync exists
 * ```
 */
export function findSyncRoot(start: string): string | null {
  let dir = resolve(start);
  while (true) {
    try {
      if (Deno.statSync(join(dir, STATE_DIR)).isDirectory) return dir;
    } catch { /* not here */ }
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

function parseHeld(text: string | null): HeldDeletes | null {
  if (text === null) return null;
  try {
    const value = JSON.parse(text) as Partial<HeldDeletes>;
    if (!Array.isArray(value.paths) || !value.paths.every((p) => typeof p === "string")) return null;
    return { paths: value.paths, files: typeof value.files === "number" ? value.files : value.paths.length };
  } catch {
    return null;
  }
}

async function readOrNull(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return null;
  }
}

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600, createNew: true });
  await Deno.rename(tmp, path);
}
