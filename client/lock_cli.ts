// The `filesync lock|unlock|locks` commands: take, release and list leases on files of a synced folder.
import { parseFolderCommand, serverErrorLine } from "./command_args.ts";
import { join } from "node:path";
import {
  DEFAULT_LEASE_MINUTES,
  describeHolder,
  MAX_LEASE_MINUTES,
  MIN_LEASE_MINUTES,
  type WireLock,
} from "../protocol/locks.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import {
  type CommonOptions,
  connectMounted,
  findSyncedFolder,
  formatTime,
  type SyncedFolder,
  toFolderPath,
} from "./history_cli.ts";

/** Help text of `filesync lock`. */
export const LOCK_HELP = `Usage: filesync lock PATH [--minutes N] [--dir DIR]

Locks a file: while the lock lasts, no other device can change, delete or rename it, and their copies are
made read-only. The lock lasts ${DEFAULT_LEASE_MINUTES} minutes (or N), is renewed while filesync client runs on this
device, and ends with filesync unlock or when it runs out. Locking a file this device holds already renews it.

Options:
  --minutes N  length of the lock in minutes (default ${DEFAULT_LEASE_MINUTES}, at most ${MAX_LEASE_MINUTES})
  --dir DIR    the synced folder (default: the one that holds the current folder)
  -h, --help   show this help
`;

/** Help text of `filesync unlock`. */
export const UNLOCK_HELP = `Usage: filesync unlock PATH [--force] [--dir DIR]

Releases this device's lock on a file. Other devices can then change it again, and edits made there
meanwhile are uploaded.

Options:
  --force     release the lock even if another device holds it (the owner of the files only)
  --dir DIR   the synced folder (default: the one that holds the current folder)
  -h, --help  show this help
`;

/** Help text of `filesync locks`. */
export const LOCKS_HELP = `Usage: filesync locks [--json] [--dir DIR]

Lists the locked files: who holds each lock (user and device) and until when.

Options:
  --json      print the locks as JSON
  --dir DIR   the synced folder (default: the one that holds the current folder)
  -h, --help  show this help
`;

/**
 * Sends a lock request about a local path to the namespace that holds it (LOCKS: asks every namespace the
 * server lists) and returns the reply with its locks' paths as local ones.
 */
async function request(
  folder: SyncedFolder,
  op: "LOCK" | "UNLOCK" | "LOCKS",
  body: { path?: string; minutes?: number; force?: boolean },
): Promise<Record<string, unknown>> {
  const { peer, mounts } = await connectMounted(folder);
  const local = (ns: string, lock: WireLock): WireLock => ({ ...lock, path: mounts.toLocal(ns, lock.path)! });
  try {
    if (op === "LOCKS") {
      const locks: WireLock[] = [];
      for (const { ns, path } of mounts.list) {
        const reply = (await peer.request(op, path ? { ns, path } : { ns })).message;
        for (const lock of (reply.locks ?? []) as WireLock[]) locks.push(local(ns, lock));
      }
      return { locks };
    }
    const at = mounts.fromLocal(body.path!);
    if (at.path === "") throw new UserError(`"${body.path}" is where a share shows, not a file`);
    const message = (await peer.request(op, { ...body, path: at.path, ns: at.ns })).message;
    for (const field of ["lock", "released"]) {
      if (message[field]) message[field] = local(at.ns, message[field] as WireLock);
    }
    return message;
  } catch (error) {
    throw serverErrorLine(error, "support locks");
  } finally {
    peer.close();
  }
}

/** The folder and wire path a lock command acts on; a local folder is refused (only files are locked). */
async function target(
  args: { dir?: string; path: string },
  options: CommonOptions,
): Promise<{ folder: SyncedFolder; path: string }> {
  const cwd = options.cwd ?? Deno.cwd();
  const folder = await findSyncedFolder(cwd, args.dir);
  const path = toFolderPath(args.path, { root: folder.root, cwd });
  const info = await Deno.lstat(join(folder.root, path)).catch(() => null);
  if (info?.isDirectory) throw new UserError(`"${path}" is a folder, not a file: only files can be locked`);
  return { folder, path };
}

/** Minutes as a person reads them: "30 minutes", "1 minute", "0.05 minutes". */
function minutesText(ms: number): string {
  const minutes = Math.round(ms / 600) / 100;
  return `${minutes} minute${minutes === 1 ? "" : "s"}`;
}

/** Runs `filesync lock ARGS`; resolves with the exit code. */
export async function lockCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseFolderCommand(args, { minutes: { type: "string" } }, "lock", 1);
  if (values.help) {
    print(LOCK_HELP);
    return 0;
  }
  let minutes: number | undefined;
  if (values.minutes !== undefined) {
    const text = String(values.minutes);
    minutes = Number(text);
    if (!/^\d+(\.\d+)?$/.test(text) || !(minutes >= MIN_LEASE_MINUTES && minutes <= MAX_LEASE_MINUTES)) {
      throw new UsageError(
        `Invalid --minutes "${text}": give a number of minutes from ${MIN_LEASE_MINUTES} to ${MAX_LEASE_MINUTES}`,
      );
    }
  }
  const { folder, path } = await target(
    { dir: values.dir as string | undefined, path: positionals[0] },
    options,
  );
  const reply = await request(folder, "LOCK", { path, ...(minutes !== undefined ? { minutes } : {}) });
  const lock = reply.lock as WireLock;
  print(
    `${reply.renewed ? "renewed the lock on" : "locked"} ${path} for ${minutesText(lock.leaseMs)} ` +
      `(until ${formatTime(lock.expires)}); renewed while filesync client runs in ${folder.root}`,
  );
  return 0;
}

/** Runs `filesync unlock ARGS`; resolves with the exit code. */
export async function unlockCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseFolderCommand(args, { force: { type: "boolean" } }, "unlock", 1);
  if (values.help) {
    print(UNLOCK_HELP);
    return 0;
  }
  const { folder, path } = await target(
    { dir: values.dir as string | undefined, path: positionals[0] },
    options,
  );
  const reply = await request(folder, "UNLOCK", { path, ...(values.force ? { force: true } : {}) });
  const released = reply.released as WireLock;
  print(`unlocked ${path}${released.mine ? "" : ` (it was locked by ${describeHolder(released)})`}`);
  return 0;
}

/** Runs `filesync locks ARGS`; resolves with the exit code. */
export async function locksCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values } = parseFolderCommand(args, { json: { type: "boolean" } }, "locks", 0);
  if (values.help) {
    print(LOCKS_HELP);
    return 0;
  }
  const folder = await findSyncedFolder(options.cwd ?? Deno.cwd(), values.dir as string | undefined);
  const reply = await request(folder, "LOCKS", {});
  const locks = (reply.locks ?? []) as WireLock[];
  if (values.json) {
    print(JSON.stringify({ locks }, null, 2));
    return 0;
  }
  if (locks.length === 0) {
    print("No file is locked");
    return 0;
  }
  print(`${locks.length} locked file${locks.length === 1 ? "" : "s"}:`);
  for (const lock of locks) {
    print(
      `${lock.path}  locked by ${describeHolder(lock)}${lock.mine ? " (this device)" : ""}  until ${
        formatTime(lock.expires)
      }`,
    );
  }
  return 0;
}
