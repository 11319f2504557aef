// What the server holds at and under a path, for ls, get, put and rm: a MONITOR's snapshot, and pure helpers on it.
import { isDescendant, parentPath, PathError, validatePath } from "../protocol/paths.ts";
import type { WireEntry } from "../protocol/messages.ts";
import { BadMessageError, checkPush } from "../protocol/replies.ts";
import { UserError } from "../protocol/user_error.ts";
import type { RemoteSession } from "./remote_session.ts";

/** Live entries by path. */
export type Listing = Map<string, WireEntry>;

/**
 * A path typed by the user for the server, as a wire path: leading and trailing `/` dropped, NFC; "" for the top
 * of the user's files. Throws {@linkcode UserError} naming the rule for a path the sync rules refuse.
 *
 * @example
 * ```ts
 * toRemotePath("/Docs/a.txt"); // "Docs/a.txt"
 * toRemotePath("/"); // ""
 * toRemotePath("a/../b"); // throws UserError: Invalid path "a/../b": ".." is not allowed
 * ```
 */
export function toRemotePath(input: string): string {
  const path = input.normalize("NFC").replace(/^\/+/, "").replace(/\/+$/, "");
  if (path === "" || path === ".") return "";
  try {
    return validatePath(path);
  } catch (error) {
    if (error instanceof PathError) throw new UserError(error.message);
    throw error;
  }
}

/** Whether `path` is `at` or below it ("" holds everything). */
export function atOrUnder(at: string, path: string): boolean {
  return at === "" || path === at || isDescendant(path, at);
}

/**
 * Applies MONITOR pushes (snapshot pages, then journal events) to a listing of what is at or under `at`. Every
 * push is checked against the wire schema, and an entry outside `at` is refused: a server that sends one is not
 * believed. Throws {@linkcode UserError} then.
 */
export function applyPushes(listing: Listing, pushes: readonly Record<string, unknown>[], at: string): void {
  for (const message of pushes) {
    let push;
    try {
      push = checkPush(message);
    } catch (error) {
      if (error instanceof BadMessageError) {
        throw new UserError(`Refused a message from the server: ${error.message}`);
      }
      throw error;
    }
    const entries = push.push === "snapshot" ? push.entries : push.push === "events" ? push.events : null;
    if (entries === null) continue;
    if (push.push === "snapshot" && push.first) listing.clear();
    for (const entry of entries as WireEntry[]) {
      if (!atOrUnder(at, entry.path)) {
        throw new UserError(`Refused a message from the server: "${entry.path}" is not at or under "${at}"`);
      }
      if (entry.deleted) listing.delete(entry.path);
      else listing.set(entry.path, entry);
    }
  }
}

/**
 * What the server holds at and under `at` ("" for everything): the user's own namespace, read through a MONITOR
 * from the start (its snapshot of live entries, then what was committed meanwhile).
 */
export async function listRemote(session: RemoteSession, at: string): Promise<Listing> {
  session.takePushes();
  await session.peer.request("MONITOR", at === "" ? { since: 0 } : { since: 0, path: at });
  const listing: Listing = new Map();
  applyPushes(listing, session.takePushes(), at);
  return listing;
}

/** The entries directly in the folder `folder` ("" for the top), sorted by name. */
export function childrenOf(listing: Listing, folder: string): WireEntry[] {
  const out: WireEntry[] = [];
  for (const entry of listing.values()) {
    if ((parentPath(entry.path) ?? "") === folder) out.push(entry);
  }
  return out.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}

/** The entries strictly under `folder`, deepest first (the order a folder is deleted in). */
export function deepestFirst(listing: Listing, folder: string): WireEntry[] {
  const depth = (p: string) => p.split("/").length;
  return [...listing.values()]
    .filter((e) => e.path !== folder && atOrUnder(folder, e.path))
    .sort((a, b) => depth(b.path) - depth(a.path) || (a.path < b.path ? 1 : a.path > b.path ? -1 : 0));
}

/** The last segment of a wire path. */
export function nameOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** A time of an entry for `ls`: `2026-12-01 20:18:27 UTC`, or `-` when unknown (folders have none). */
export function formatMtime(ms: number): string {
  if (!(ms > 0)) return "-";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}
