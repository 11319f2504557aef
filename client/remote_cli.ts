// The `filesync ls|get|put|rm` commands: one file at a time on the server, without a synced folder.
import { basename, dirname, join, resolve } from "node:path";
import { type ChangeResult, encodeRows, MAX_BATCH, type WireEntry } from "../protocol/messages.ts";
import { formatSize } from "../protocol/sizes.ts";
import { UserError } from "../protocol/user_error.ts";
import {
  CONNECTION_OPTIONS,
  parseCommand,
  progressLines,
  type RemoteCommandOptions,
  withSession,
} from "./remote_args.ts";
import {
  atOrUnder,
  childrenOf,
  deepestFirst,
  formatMtime,
  type Listing,
  listRemote,
  nameOf,
  toRemotePath,
} from "./remote_listing.ts";
import { FileChangedError } from "./scanner.ts";
import { fetchFile, releaseTempFile, sendFile, StaleError } from "./transfer.ts";

/** Help text of `filesync ls`. */
export const LS_HELP = `Usage: filesync ls [REMOTE_PATH] [--json] [options]

Lists a folder of your files on the server (default: the top), or one file: kind, size, modification time
(UTC) and name. --json prints {"path", "kind", "entries": [{"name", "path", "kind", "size", "mtime", "rev",
"device"}]} (mtime in ms since 1970).

${CONNECTION_OPTIONS}
`;

/** Help text of `filesync get`. */
export const GET_HELP = `Usage: filesync get REMOTE_PATH [LOCAL] [--force] [options]

Downloads one file from the server to LOCAL (default: its name in the current folder; into LOCAL when it is a
folder), verified chunk by chunk and as a whole, written to a temp file and renamed into place. An existing
LOCAL is not replaced unless --force is given. A download cut short resumes when run again.

  --force              replace an existing local file

${CONNECTION_OPTIONS}
`;

/** Help text of `filesync put`. */
export const PUT_HELP = `Usage: filesync put LOCAL [REMOTE_PATH] [options]

Uploads one file to REMOTE_PATH on the server (default: its name at the top; into REMOTE_PATH when that is a
folder there or ends with "/"), sending only chunks the server lacks, so an upload cut short resumes when run
again. Missing parent folders are created. A file already there is replaced: the replaced version is kept in
its history (filesync versions / restore). Every synced device receives the change.

${CONNECTION_OPTIONS}
`;

/** Help text of `filesync rm`. */
export const RM_HELP = `Usage: filesync rm REMOTE_PATH [-r] [options]

Deletes a file or an empty folder on the server; it goes to the server's trash (filesync trash / restore from a
synced folder) and disappears from every synced device.

  -r, --recursive      delete a folder and everything in it

${CONNECTION_OPTIONS}
`;

/** One line of `ls`: kind, size, time, name (a folder's with a "/"). */
export function formatLsLine(entry: WireEntry, name: string): string {
  const dir = entry.kind === "dir";
  return `${dir ? "dir " : "file"}  ${(dir ? "-" : formatSize(entry.size)).padStart(10)}  ` +
    `${formatMtime(entry.mtime).padEnd(23)}  ${name}${dir ? "/" : ""}`;
}

/** An entry of `ls --json`. */
function jsonEntry(entry: WireEntry) {
  return {
    name: nameOf(entry.path),
    path: entry.path,
    kind: entry.kind,
    size: entry.size,
    mtime: entry.mtime,
    rev: entry.rev,
    device: entry.device,
  };
}

/** The entry at `path` of a listing, or a UserError saying there is none. */
function entryAt(listing: Listing, path: string, what = "file or folder"): WireEntry {
  const entry = listing.get(path);
  if (!entry) throw new UserError(`No ${what} "${path}" on the server (see filesync ls)`);
  return entry;
}

/** Runs `filesync ls ARGS`; resolves with the exit code. */
export async function lsCommand(args: string[], options: RemoteCommandOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseCommand(args, { json: { type: "boolean" } }, "ls", { min: 0, max: 1 });
  if (values.help) {
    print(LS_HELP);
    return 0;
  }
  const path = toRemotePath(positionals[0] ?? "");
  const listing = await withSession(values, options, (session) => listRemote(session, path));
  const entry = path === "" ? null : entryAt(listing, path);
  const rows = entry?.kind === "file" ? [entry] : childrenOf(listing, path);
  if (values.json) {
    print(JSON.stringify({ path, kind: entry?.kind ?? "dir", entries: rows.map(jsonEntry) }, null, 2));
    return 0;
  }
  if (rows.length === 0) {
    print(`${path === "" ? "Your files on the server are" : `"${path}" is`} empty`);
    return 0;
  }
  for (const row of rows) print(formatLsLine(row, entry?.kind === "file" ? row.path : nameOf(row.path)));
  return 0;
}

/** Runs `filesync get ARGS`; resolves with the exit code. */
export async function getCommand(args: string[], options: RemoteCommandOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseCommand(args, { force: { type: "boolean" } }, "get", {
    min: 1,
    max: 2,
  });
  if (values.help) {
    print(GET_HELP);
    return 0;
  }
  const path = toRemotePath(positionals[0]);
  if (path === "") throw new UserError("Name a file on the server to get (see filesync ls)");
  const cwd = options.cwd ?? Deno.cwd();
  let local = resolve(cwd, positionals[1] ?? nameOf(path));
  if ((await statOrNull(local))?.isDirectory) local = join(local, nameOf(path));
  const existing = await lstatOrNull(local);
  if (existing?.isDirectory) throw new UserError(`"${local}" is a folder: name a file to write`);
  if (existing && !values.force) throw new UserError(`"${local}" exists: pass --force to replace it`);
  const folder = dirname(local);
  if (!(await statOrNull(folder))?.isDirectory) throw new UserError(`Folder "${folder}" does not exist`);
  return await withSession(values, options, async (session) => {
    const entry = entryAt(await listRemote(session, path), path, "file");
    if (entry.kind === "dir") {
      throw new UserError(
        `"${path}" is a folder on the server: filesync get copies one file (filesync ls "${path}" lists it)`,
      );
    }
    // The temp folder is beside the target (same file system, so the rename is atomic); its name is one that
    // the sync ignores, in case the target is in a synced folder. A download cut short is resumed from it.
    const tmpDir = join(folder, TEMP_FOLDER);
    await Deno.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    let fetched;
    try {
      fetched = await fetchFile(session.peer, tmpDir, path, entry.rev, {
        progress: progressLines(options.log ?? console.error),
      });
    } catch (error) {
      if (error instanceof StaleError) {
        throw new UserError(`"${path}" changed on the server while it was downloaded: run the command again`);
      }
      throw error;
    }
    try {
      await Deno.utime(fetched.tmpPath, new Date(), new Date(entry.mtime));
      await place(fetched.tmpPath, local, values.force === true);
      await fsyncFolder(folder);
    } finally {
      await Deno.remove(fetched.tmpPath).catch(() => {});
      releaseTempFile(fetched.tmpPath);
      await Deno.remove(tmpDir).catch(() => {}); // only when empty: another download's leftover stays
    }
    const size = formatSize(entry.size);
    print(`downloaded ${path} to ${local} (${size}, ${formatSize(fetched.received)} received)`);
    return 0;
  });
}

/** Name of the temp folder `get` writes into, beside the target (ignored by the sync: `*.filesync-tmp`). */
export const TEMP_FOLDER = ".filesync-get.filesync-tmp";

/**
 * Moves the verified temp file to `target`. Without `replace`, a hard link makes the new name (it fails if
 * anything is there, even something that appeared since the check) and the temp name goes; where links are not
 * possible, a check then a rename.
 */
async function place(tmp: string, target: string, replace: boolean): Promise<void> {
  if (replace) return await Deno.rename(tmp, target);
  try {
    await Deno.link(tmp, target);
    return;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) {
      throw new UserError(`"${target}" exists: pass --force to replace it`);
    }
  }
  if (await lstatOrNull(target)) throw new UserError(`"${target}" exists: pass --force to replace it`);
  await Deno.rename(tmp, target);
}

/** Runs `filesync put ARGS`; resolves with the exit code. */
export async function putCommand(args: string[], options: RemoteCommandOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseCommand(args, {}, "put", { min: 1, max: 2 });
  if (values.help) {
    print(PUT_HELP);
    return 0;
  }
  const local = resolve(options.cwd ?? Deno.cwd(), positionals[0]);
  const info = await statOrNull(local);
  if (!info) throw new UserError(`No file "${positionals[0]}"`);
  if (info.isDirectory) {
    throw new UserError(
      `"${positionals[0]}" is a folder: filesync put sends one file (filesync client syncs a folder)`,
    );
  }
  if (!info.isFile) throw new UserError(`"${positionals[0]}" is not a regular file`);
  const name = toRemotePath(basename(local));
  const given = positionals[1];
  const into = given === undefined || given.endsWith("/") || toRemotePath(given) === "";
  const named = given === undefined ? "" : toRemotePath(given);
  let path = into ? toRemotePath(named === "" ? name : `${named}/${name}`) : named;
  return await withSession(values, options, async (session) => {
    let listing = await listRemote(session, path);
    if (!into && listing.get(path)?.kind === "dir") {
      // An existing folder: the file goes into it, as with cp.
      path = toRemotePath(`${path}/${name}`);
      listing = new Map([...listing].filter(([p]) => atOrUnder(path, p)));
    }
    let current = listing.get(path) ?? null;
    if (current?.kind === "dir") {
      throw new UserError(`"${path}" is a folder on the server: name a file to write`);
    }
    const stat = { size: info.size, mtime: info.mtime?.getTime() ?? 0, ino: info.ino ?? null };
    let sent;
    try {
      sent = await sendFile(session.peer, dirname(local), NO_HASHED_ROWS, basename(local), stat, {
        progress: progressLines(options.log ?? console.error),
      });
    } catch (error) {
      if (error instanceof FileChangedError) throw new UserError(`${error.message}: run the command again`);
      throw error;
    }
    for (let attempt = 0;; attempt++) {
      if (current?.kind === "file" && current.hash === sent.hash) {
        print(`${path} is already on the server with the same content (nothing changed)`);
        return 0;
      }
      const change = {
        op: "upload" as const,
        path,
        baseRev: current?.rev ?? 0,
        size: stat.size,
        mtime: stat.mtime,
        hash: sent.hash,
        rows: { offset: 0, count: sent.rows.length },
      };
      const data = sent.rows.length > 0 ? encodeRows(sent.rows) : undefined;
      const reply = await session.peer.request("COMMIT", { changes: [change] }, data);
      const result = (reply.message.results as ChangeResult[])[0];
      if (result.ok) {
        const replaced = current ? "; the version it replaced is kept in its history" : "";
        print(`uploaded ${path} (${formatSize(stat.size)}, ${formatSize(sent.sent)} sent)${replaced}`);
        return 0;
      }
      // Another device changed the file meanwhile: replace what is there now (it is kept in history too).
      if (result.code === "conflict" && attempt < 3 && result.current?.kind !== "dir") {
        current = result.current ?? null;
        continue;
      }
      throw new UserError(`The server refused ${path}: ${result.error}`);
    }
  });
}

/** Runs `filesync rm ARGS`; resolves with the exit code. */
export async function rmCommand(args: string[], options: RemoteCommandOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseCommand(
    args,
    { recursive: { type: "boolean", short: "r" } },
    "rm",
    { min: 1, max: 1 },
  );
  if (values.help) {
    print(RM_HELP);
    return 0;
  }
  const path = toRemotePath(positionals[0]);
  if (path === "") throw new UserError("Refusing to delete all your files: name a file or folder");
  return await withSession(values, options, async (session) => {
    const listing = await listRemote(session, path);
    const entry = entryAt(listing, path);
    const below = entry.kind === "dir" ? deepestFirst(listing, path) : [];
    if (below.length > 0 && !values.recursive) {
      throw new UserError(
        `"${path}" is a folder holding ${below.length} ${below.length === 1 ? "item" : "items"}: ` +
          "pass -r to delete it with everything in it",
      );
    }
    const changes = [...below, entry].map((e) => ({
      op: "delete" as const,
      path: e.path,
      baseRev: e.rev,
      kind: e.kind,
    }));
    for (let start = 0; start < changes.length; start += MAX_BATCH) {
      const batch = changes.slice(start, start + MAX_BATCH);
      const reply = await session.peer.request("COMMIT", { changes: batch });
      const results = reply.message.results as ChangeResult[];
      const refused = results.findIndex((r) => !r.ok);
      if (refused !== -1) {
        const result = results[refused] as { code: string; error: string };
        const again = result.code === "conflict"
          ? " (it changed on the server meanwhile: run the command again)"
          : "";
        throw new UserError(`Cannot delete ${batch[refused].path}: ${result.error}${again}`);
      }
    }
    const what = below.length > 0
      ? ` and the ${below.length} ${below.length === 1 ? "item" : "items"} in it`
      : "";
    print(`deleted ${path}${what} (kept in the server's trash: filesync trash, filesync restore)`);
    return 0;
  });
}

/** A scanner that has hashed nothing: `put` reads and hashes the file as it sends it. */
const NO_HASHED_ROWS = { hashedRows: () => undefined };

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return null;
    throw error;
  }
}

async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) return null;
    throw error;
  }
}

/** fsync of a folder, so that a rename into it survives a crash (nothing to do on Windows). */
async function fsyncFolder(path: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  using folder = await Deno.open(path, { read: true });
  await folder.sync();
}
