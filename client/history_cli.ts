// The `filesync versions|restore|trash` commands: ask the server about a synced folder's history with its token.
import { parseFolderCommand, serverErrorLine } from "./command_args.ts";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import type { WireNamespace, WireTrashItem, WireVersion } from "../protocol/messages.ts";
import { PathError, validatePath } from "../protocol/paths.ts";
import { RpcError, type RpcPeer } from "../protocol/rpc.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { openFirstReachable, parseServerAddress } from "./connection.ts";
import { clientLink, type ServerLink } from "./control_client.ts";
import { formatSize } from "./executor.ts";
import { mountableViews, MountTable } from "./mounts.ts";
import {
  type DeviceInfo,
  existsIn,
  readCa,
  readDeviceInfo,
  readShownMounts,
  readToken,
  savedServers,
  STATE_DIR,
} from "./state.ts";

/** Help text of `filesync versions`. */
export const VERSIONS_HELP = `Usage: filesync versions PATH [--json] [--dir DIR]

Lists the kept versions of a file, newest first: id, time of the commit, size and device.

Options:
  --dir DIR   the synced folder (default: the one that holds the current folder)
  --json      print the versions as JSON
  -h, --help  show this help
`;

/** Help text of `filesync restore`. */
export const RESTORE_HELP = `Usage: filesync restore PATH [--version ID] [--as NEWPATH] [--dir DIR]

Brings back a kept version of a file (or a deleted file or folder, with what it held) as a new change that
every device receives.

Options:
  --version ID   the version to bring back (from filesync versions or filesync trash); default: the newest
                 kept one that is not current
  --as NEWPATH   restore under another path instead
  --dir DIR      the synced folder (default: the one that holds the current folder)
  -h, --help     show this help
`;

/** Help text of `filesync trash`. */
export const TRASH_HELP = `Usage: filesync trash [--json] [--dir DIR]

Lists deleted files and folders that are still kept (newest deletion first): when, from which device, and the
version id to pass to filesync restore.

Options:
  --dir DIR   the synced folder (default: the one that holds the current folder)
  --json      print the list as JSON
  -h, --help  show this help
`;

/** A synced folder found for a command, with what is needed to talk to its server. */
export interface SyncedFolder {
  /** The synced folder (absolute). */
  root: string;
  /** The device identity saved there by `filesync client`. */
  device: DeviceInfo;
}

/**
 * The synced folder for `dir` (which must hold `.filesync/device.json`), or without `dir` the nearest folder
 * at or above `cwd` that does. Throws {@linkcode UserError} when there is none.
 */
export async function findSyncedFolder(cwd: string, dir?: string): Promise<SyncedFolder> {
  if (dir !== undefined) {
    const root = resolve(cwd, dir);
    const device = await readDeviceInfo(root).catch(() => null);
    if (!device) {
      throw new UserError(`"${dir}" is not a synced folder (no ${STATE_DIR}/device.json): check --dir`);
    }
    return { root, device };
  }
  let at = resolve(cwd);
  while (true) {
    const device = await readDeviceInfo(at).catch(() => null);
    if (device) return { root: at, device };
    const up = resolve(at, "..");
    if (up === at) {
      throw new UserError(`"${cwd}" is not inside a synced folder: run this in one, or give --dir`);
    }
    at = up;
  }
}

/**
 * Converts a path typed by the user into a wire path relative to the synced folder `root`. A relative path is
 * taken from `cwd` when `cwd` is inside the folder, else from the folder itself. Throws {@linkcode UserError}
 * for a path outside the folder, the folder itself, or a path the sync rules refuse.
 */
export function toFolderPath(input: string, options: { root: string; cwd: string }): string {
  const { root, cwd } = options;
  const inside = (p: string) => {
    const rel = relative(root, p);
    return rel === "" || (!rel.startsWith("..") && !isAbsolute(rel));
  };
  const absolute = isAbsolute(input) ? resolve(input) : resolve(inside(cwd) ? cwd : root, input);
  const rel = relative(root, absolute);
  if (!inside(absolute)) throw new UserError(`"${input}" is outside the synced folder ${root}`);
  if (rel === "") throw new UserError(`"${input}" is the synced folder itself: name a file or folder in it`);
  const wire = rel.split(sep).join("/").normalize("NFC");
  try {
    return validatePath(wire);
  } catch (error) {
    if (error instanceof PathError) throw new UserError(error.message);
    throw error;
  }
}

/** Formats a time of the journal for the terminal: `2026-12-01 20:18:27 UTC`. */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/**
 * Host and port of the address `filesync client` saved in device.json: `HOST:PORT`, where an IPv6 host is saved
 * without brackets (`::1:8443`). Null if it is not one.
 */
export function savedAddress(saved: string): { hostname: string; port: number } | null {
  const match = /^\[?(.+?)\]?:(\d{1,5})$/.exec(saved);
  if (!match) return null;
  try {
    return parseServerAddress(
      match[1].includes(":") ? `[${match[1]}]:${match[2]}` : `${match[1]}:${match[2]}`,
    );
  } catch {
    return null;
  }
}

/**
 * Connects to the folder's server and authenticates with the device's token (never opening the client's
 * state.kv, which a running client owns). Throws {@linkcode UserError} for a missing or refused token, an
 * invalid saved address, or a server that cannot be reached or trusted. The caller closes the peer.
 */
export async function connect(folder: SyncedFolder): Promise<RpcPeer> {
  return (await connectDirect(folder)).peer;
}

/**
 * A link to the folder's server and where its namespaces show in the folder: through the client running for
 * the folder when there is one (its own connection; see client/control.ts), else a connection of its own
 * ({@linkcode connect}). Errors are the same either way.
 */
export async function connectMounted(
  folder: SyncedFolder,
): Promise<{ peer: ServerLink; mounts: MountTable }> {
  const viaClient = await clientLink(folder.root).catch(() => null);
  return viaClient ?? await connectDirect(folder);
}

/** {@linkcode connect}, and where the namespaces the server lists show in the folder. */
async function connectDirect(folder: SyncedFolder): Promise<{ peer: RpcPeer; mounts: MountTable }> {
  const token = await readToken(folder.root);
  if (!token) {
    throw new UserError(
      `This device has no token in ${join(folder.root, STATE_DIR)}: start filesync client there to log in`,
    );
  }
  const addresses = savedServers(folder.device).map((saved) => {
    const address = savedAddress(saved);
    if (!address) {
      throw new UserError(`Saved server address "${saved}" is invalid: start filesync client again`);
    }
    return address;
  });
  // Nodes of one cluster: the first that answers.
  const peer = await openFirstReachable(addresses, { caPem: (await readCa(folder.root)) ?? undefined })
    .catch((error) => {
      if (error instanceof UserError) throw error;
      throw new UserError((error as Error).message);
    });
  try {
    const reply = await peer.request("AUTH", { token });
    // A server before namespaces lists none: the own namespace (the user's name) is at the root.
    const listed = Array.isArray(reply.message.namespaces)
      ? reply.message.namespaces as WireNamespace[]
      : [{ ns: folder.device.user, mount: "" } as WireNamespace];
    // As the client shows them: a new share whose name is in use here is not shown (see mountableViews).
    const shown = await readShownMounts(folder.root);
    const views = mountableViews(
      listed.map(({ ns, mount, path }) => path ? { ns, mount, path } : { ns, mount }),
      shown,
      (name) => existsIn(folder.root, name),
    );
    return { peer, mounts: new MountTable(views) };
  } catch (error) {
    peer.close();
    if (error instanceof RpcError && error.code === "auth_token") {
      throw new UserError(`${error.message}: start filesync client in ${folder.root} to log in again`);
    }
    if (error instanceof TypeError) {
      throw new UserError(`The server's list of namespaces is not usable: ${error.message}`);
    }
    throw serverErrorLine(error, "keep history");
  }
}

/**
 * Sends a history request about local paths (`path`, `as`) to the namespace that holds them, and returns the
 * reply with its paths as local ones. TRASH without a path asks the namespace at the folder root.
 */
async function request(
  folder: SyncedFolder,
  op: "VERSIONS" | "TRASH" | "RESTORE",
  body: { path?: string; as?: string; version?: string },
): Promise<Record<string, unknown>> {
  const { peer, mounts } = await connectMounted(folder);
  try {
    const at = body.path === undefined ? { ns: mounts.root, path: undefined } : mounts.fromLocal(body.path);
    const as = body.as === undefined ? undefined : mounts.fromLocal(body.as);
    if (at.path === "" || as?.path === "") {
      throw new UserError(`"${body.path}" is where a share shows, not a file`);
    }
    if (as && as.ns !== at.ns) {
      throw new UserError(`Cannot restore "${body.path}" as "${body.as}": another share`);
    }
    const message = (await peer.request(op, { ...body, path: at.path, as: as?.path, ns: at.ns })).message;
    const local = (path: unknown) => typeof path === "string" ? mounts.toLocal(at.ns, path) ?? path : path;
    if (typeof message.path === "string") message.path = local(message.path);
    if (Array.isArray(message.items)) {
      message.items = (message.items as WireTrashItem[]).map((item) => ({ ...item, path: local(item.path) }));
    }
    return message;
  } catch (error) {
    throw serverErrorLine(error, "keep history");
  } finally {
    peer.close();
  }
}

/** Options of the history commands (for tests; the CLI uses the defaults). */
export interface CommonOptions {
  /** Folder that relative paths start from. @default Deno.cwd() */
  cwd?: string;
  /** Output lines (stdout). @default console.log */
  print?: (line: string) => void;
}

/** Runs `filesync versions ARGS`; resolves with the exit code. */
export async function versionsCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals: given } = parseFolderCommand(
    args,
    { json: { type: "boolean" } },
    "versions",
    1,
  );
  if (values.help) {
    print(VERSIONS_HELP);
    return 0;
  }
  const cwd = options.cwd ?? Deno.cwd();
  const folder = await findSyncedFolder(cwd, values.dir as string | undefined);
  const path = toFolderPath(given[0], { root: folder.root, cwd });
  const reply = await request(folder, "VERSIONS", { path });
  const versions = (reply.versions ?? []) as WireVersion[];
  if (values.json) {
    print(JSON.stringify({ path, versions }, null, 2));
    return 0;
  }
  if (versions.length === 0) {
    print(`No kept versions of ${path}`);
    return 0;
  }
  print(`${versions.length} version${versions.length === 1 ? "" : "s"} of ${path}, newest first:`);
  for (const v of versions) {
    print(
      `${v.id}  ${formatTime(v.time)}  ${formatSize(v.size).padStart(10)}  ${v.device}${
        v.current ? "  (current)" : ""
      }`,
    );
  }
  return 0;
}

/** Runs `filesync trash ARGS`; resolves with the exit code. */
export async function trashCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values } = parseFolderCommand(args, { json: { type: "boolean" } }, "trash", 0);
  if (values.help) {
    print(TRASH_HELP);
    return 0;
  }
  const folder = await findSyncedFolder(options.cwd ?? Deno.cwd(), values.dir as string | undefined);
  const reply = await request(folder, "TRASH", {});
  const items = (reply.items ?? []) as WireTrashItem[];
  if (values.json) {
    print(JSON.stringify({ items }, null, 2));
    return 0;
  }
  if (items.length === 0) {
    print("The trash is empty");
    return 0;
  }
  print(`${items.length} deleted item${items.length === 1 ? "" : "s"} kept, newest first:`);
  for (const item of items) {
    const what = item.kind === "dir" ? "folder" : formatSize(item.size);
    print(
      `${formatTime(item.deletedAt)}  ${item.path}${
        item.kind === "dir" ? "/" : ""
      }  (${what}, deleted by ${item.device})  version ${item.version}`,
    );
  }
  return 0;
}

/** Runs `filesync restore ARGS`; resolves with the exit code. */
export async function restoreCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals: given } = parseFolderCommand(
    args,
    { version: { type: "string" }, as: { type: "string" } },
    "restore",
    1,
  );
  if (values.help) {
    print(RESTORE_HELP);
    return 0;
  }
  if (values.version === "") throw new UsageError("Empty --version (see filesync restore --help)");
  const cwd = options.cwd ?? Deno.cwd();
  const folder = await findSyncedFolder(cwd, values.dir as string | undefined);
  const path = toFolderPath(given[0], { root: folder.root, cwd });
  const as = typeof values.as === "string" ? toFolderPath(values.as, { root: folder.root, cwd }) : undefined;
  const body: { path: string; version?: string; as?: string } = { path };
  if (values.version) body.version = String(values.version);
  if (as !== undefined) body.as = as;
  const reply = await request(folder, "RESTORE", body);
  const version = typeof reply.version === "string" ? reply.version : values.version;
  const count = Array.isArray(reply.entries) ? reply.entries.length : 0;
  print(
    `restored ${path}${version ? ` (version ${version})` : ""}${as !== undefined ? ` as ${as}` : ""}${
      count > 1 ? `: ${count} entries` : ""
    }; every device receives it`,
  );
  return 0;
}
