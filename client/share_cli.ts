// The `filesync share|unshare|shares` commands: give other users access to a file or folder, take it back, list.
import { parseFolderCommand, serverErrorLine } from "./command_args.ts";
import type { WireShare } from "../protocol/messages.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import {
  type CommonOptions,
  connectMounted,
  findSyncedFolder,
  type SyncedFolder,
  toFolderPath,
} from "./history_cli.ts";

/** Help text of `filesync share`. */
export const SHARE_HELP = `Usage: filesync share PATH --with USER [--write] [--dir DIR]

Shares a file or folder of your own with another user of the server: read-only, or with --write read-write.
Their devices show it as a top-level item named after it (renamed when they have one of that name already).
Sharing the same path with the same user again changes the access.

Options:
  --with USER  the user to share with (required)
  --write      let them change it too (default: read-only)
  --dir DIR    the synced folder (default: the one that holds the current folder)
  -h, --help   show this help
`;

/** Help text of `filesync unshare`. */
export const UNSHARE_HELP = `Usage: filesync unshare PATH [--with USER] [--dir DIR]

Stops sharing a file or folder: with USER, or with everyone it is shared with. On an item shared with you, it
leaves that share (it goes from your devices; edits never uploaded stay as your own files).

Options:
  --with USER  only this user
  --dir DIR    the synced folder (default: the one that holds the current folder)
  -h, --help   show this help
`;

/** Help text of `filesync shares`. */
export const SHARES_HELP = `Usage: filesync shares [--json] [--dir DIR]

Lists what you share (with whom, which access) and what others share with you (where it shows here).

Options:
  --dir DIR   the synced folder (default: the one that holds the current folder)
  --json      print the lists as JSON
  -h, --help  show this help
`;

/** Connects to the folder's server, sends one request, and closes. */
async function ask<T>(
  folder: SyncedFolder,
  run: (
    peer: Awaited<ReturnType<typeof connectMounted>>["peer"],
    mounts: Awaited<ReturnType<typeof connectMounted>>["mounts"],
  ) => Promise<T>,
): Promise<T> {
  const { peer, mounts } = await connectMounted(folder);
  try {
    return await run(peer, mounts);
  } catch (error) {
    throw serverErrorLine(error, "support sharing");
  } finally {
    peer.close();
  }
}

/** "read-only" or "read-write". */
function describeAccess(access: string): string {
  return access === "write" ? "read-write" : "read-only";
}

/** Runs `filesync share ARGS`; resolves with the exit code. */
export async function shareCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseFolderCommand(
    args,
    { with: { type: "string" }, write: { type: "boolean" } },
    "share",
    1,
  );
  if (values.help) {
    print(SHARE_HELP);
    return 0;
  }
  if (typeof values.with !== "string" || values.with === "") {
    throw new UsageError("Missing --with USER (see filesync share --help)");
  }
  const cwd = options.cwd ?? Deno.cwd();
  const folder = await findSyncedFolder(cwd, values.dir as string | undefined);
  const path = toFolderPath(positionals[0], { root: folder.root, cwd });
  const access = values.write ? "write" : "read";
  const reply = await ask(folder, async (peer, mounts) => {
    const at = mounts.fromLocal(path);
    if (at.path === "") throw new UserError(`"${path}" is where a share shows: only its owner shares it`);
    return (await peer.request("SHARE", { ns: at.ns, path: at.path, with: values.with, access })).message;
  });
  const share = reply.share as WireShare;
  const how = describeAccess(share.access);
  if (reply.changed === "same") print(`${path} is already shared with ${share.user} (${how})`);
  else if (reply.changed === "access") print(`${path} is now ${how} for ${share.user}`);
  else print(`shared ${path} with ${share.user} (${how}); their devices show it as "${share.mount}"`);
  return 0;
}

/** Runs `filesync unshare ARGS`; resolves with the exit code. */
export async function unshareCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseFolderCommand(args, { with: { type: "string" } }, "unshare", 1);
  if (values.help) {
    print(UNSHARE_HELP);
    return 0;
  }
  if (values.with === "") throw new UsageError("Empty --with (see filesync unshare --help)");
  const cwd = options.cwd ?? Deno.cwd();
  const folder = await findSyncedFolder(cwd, values.dir as string | undefined);
  const path = toFolderPath(positionals[0], { root: folder.root, cwd });
  const reply = await ask(folder, async (peer, mounts) => {
    const at = mounts.fromLocal(path);
    if (at.path === "") throw new UserError(`"${path}" is where a share shows, not a shared item`);
    const body: Record<string, unknown> = { ns: at.ns, path: at.path };
    if (typeof values.with === "string") body.with = values.with;
    return (await peer.request("UNSHARE", body)).message;
  });
  const removed = (reply.removed ?? []) as WireShare[];
  if (removed.length === 1 && removed[0].owner !== folder.device.user) print(`left the share ${path}`);
  else print(`stopped sharing ${path} with ${removed.map((s) => s.user).join(", ")}`);
  return 0;
}

/** Runs `filesync shares ARGS`; resolves with the exit code. */
export async function sharesCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values } = parseFolderCommand(args, { json: { type: "boolean" } }, "shares", 0);
  if (values.help) {
    print(SHARES_HELP);
    return 0;
  }
  const folder = await findSyncedFolder(options.cwd ?? Deno.cwd(), values.dir as string | undefined);
  const { mine, withMe } = await ask(folder, async (peer, mounts) => {
    const reply = (await peer.request("SHARES", {})).message;
    const local = (s: WireShare) => ({ ...s, local: mounts.toLocal(s.ns, s.path) ?? s.mount });
    return {
      mine: ((reply.mine ?? []) as WireShare[]).map(local),
      withMe: ((reply.withMe ?? []) as WireShare[]).map(local),
    };
  });
  if (values.json) {
    print(JSON.stringify({ mine, withMe }, null, 2));
    return 0;
  }
  if (mine.length === 0 && withMe.length === 0) {
    print("Nothing is shared, by you or with you");
    return 0;
  }
  if (mine.length > 0) {
    print("Shared by you:");
    for (const s of mine) print(`  ${s.local}  with ${s.user} (${describeAccess(s.access)})`);
  }
  if (withMe.length > 0) {
    print("Shared with you:");
    for (const s of withMe) print(`  ${s.local}  ${s.owner}'s "${s.path}" (${describeAccess(s.access)})`);
  }
  return 0;
}
