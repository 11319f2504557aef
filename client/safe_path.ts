// Path checks before the client writes: no symbolic link between the synced folder and the path it touches.
import { join } from "node:path";

/** The part of a file's lstat the path checks need (a `Deno.FileInfo` has it). */
export interface LinkStat {
  /** True for a folder (not a link to one). */
  isDirectory: boolean;
  /** True for a symbolic link. */
  isSymlink: boolean;
}

/** Reads the lstat of an absolute path without following a final link; null when nothing is there. */
export type Lstat<T extends LinkStat> = (abs: string) => T | null;

/** A component of a path inside the synced folder is a symbolic link: writing there would leave the folder. */
export class LinkError extends Error {
  /** Always "LinkError". */
  override name = "LinkError";
  /** The component that is a link, relative to the synced folder. */
  readonly link: string;

  /** An error naming the link found at the relative path `link`. */
  constructor(link: string) {
    super(`"${link}" is a symbolic link; nothing is written through it`);
    this.link = link;
  }
}

/** `Deno.lstatSync`, with null for a path that does not exist. */
export function lstatOrNull(abs: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(abs);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return null;
    throw error;
  }
}

/**
 * The first component of the relative `path` ("/"-separated, inside `root`) that is a symbolic link, checked
 * with lstat from the top down, including `path` itself; null when there is none. The walk stops at the first
 * component that is missing or is not a folder, since nothing below it can exist. `root` itself is not checked:
 * a synced folder reached through a link is the user's choice.
 *
 * @example
 * ```ts
 * // with DIR/docs -> /tmp/elsewhere
 * linkOnPath("DIR", "docs/a.txt"); // "docs"
 * linkOnPath("DIR", "notes/a.txt"); // null
 * ```
 */
export function linkOnPath<T extends LinkStat = Deno.FileInfo>(
  root: string,
  path: string,
  lstat: Lstat<T> = lstatOrNull as unknown as Lstat<T>,
): string | null {
  try {
    lstatInside(root, path, lstat);
    return null;
  } catch (error) {
    if (error instanceof LinkError) return error.link;
    throw error;
  }
}

/**
 * The lstat of `root/path` (null when absent), after checking that no component of `path`, itself included, is a
 * symbolic link. Every write of the client (download rename, folder creation, move, conflict copy, delete) calls
 * it first. A link created between this check and the write cannot be ruled out without `openat`, which Deno
 * lacks; the scanner and reconcile keep the paths of links they saw out of every plan.
 *
 * @throws {LinkError} when a component is a symbolic link.
 */
export function lstatInside<T extends LinkStat = Deno.FileInfo>(
  root: string,
  path: string,
  lstat: Lstat<T> = lstatOrNull as unknown as Lstat<T>,
): T | null {
  const parts = path.split("/");
  let prefix = "";
  for (let i = 0; i < parts.length; i++) {
    prefix = i === 0 ? parts[0] : `${prefix}/${parts[i]}`;
    const info = lstat(join(root, prefix));
    if (info === null) return null;
    if (info.isSymlink) throw new LinkError(prefix);
    if (i === parts.length - 1) return info;
    if (!info.isDirectory) return null;
  }
  return null;
}
