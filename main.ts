// filesync command-line entry: dispatches to the server, user and client commands.
import { clientCommand, confirmDeletesCommand } from "./client/cli.ts";
import { devicesCommand } from "./client/devices_cli.ts";
import { restoreCommand, trashCommand, versionsCommand } from "./client/history_cli.ts";
import { getCommand, lsCommand, putCommand, rmCommand } from "./client/remote_cli.ts";
import { lockCommand, locksCommand, unlockCommand } from "./client/lock_cli.ts";
import { shareCommand, sharesCommand, unshareCommand } from "./client/share_cli.ts";
import { pauseCommand, statusCommand } from "./client/status_cli.ts";
import { UsageError, UserError } from "./protocol/user_error.ts";
import { gcCommand, serverCommand, userCommand } from "./server/cli.ts";
import { fsckCommand } from "./server/fsck.ts";
import { serverStatusCommand } from "./server/status_cli.ts";
import { migrateCommand } from "./server/migrate_cli.ts";
import { certCommand } from "./server/cert_cli.ts";

/** Version printed by --version. */
export const VERSION = "0.1.0";

const HELP = `filesync ${VERSION}: self-hosted file sync

Usage:
  filesync server --data DIR --port PORT [--host HOST] [--cert FILE --key FILE] [--metadata LOCATION]
  filesync server fsck --data DIR [--json]
  filesync server status --data DIR [--json]
  filesync server migrate --metadata postgres://USER@HOST:PORT/DB [--data DIR]
  filesync server cert --data DIR --name HOST [--name HOST …] --out PREFIX
  filesync user add|passwd|remove|list [NAME] --data DIR
  filesync user devices NAME [--json] --data DIR
  filesync user revoke NAME DEVICE --data DIR
  filesync client --server HOST:PORT [--server HOST:PORT …] --user NAME --dir DIR [--ca FILE] [--device NAME]
  filesync confirm-deletes [--dir DIR]
  filesync status [--dir DIR] [--json] [--follow]
  filesync pause [--dir DIR]
  filesync resume [--dir DIR]
  filesync gc --data DIR
  filesync versions PATH [--json] [--dir DIR]
  filesync restore PATH [--version ID] [--as NEWPATH] [--dir DIR]
  filesync trash [--json] [--dir DIR]
  filesync devices [--json] [--dir DIR]
  filesync lock PATH [--minutes N] [--dir DIR]
  filesync unlock PATH [--force] [--dir DIR]
  filesync locks [--json] [--dir DIR]
  filesync share PATH --with USER [--write] [--dir DIR]
  filesync unshare PATH [--with USER] [--dir DIR]
  filesync shares [--json] [--dir DIR]
  filesync ls [REMOTE_PATH] [--json] [--server HOST:PORT --user NAME] [--ca FILE]
  filesync get REMOTE_PATH [LOCAL] [--force] [--server HOST:PORT --user NAME] [--ca FILE]
  filesync put LOCAL [REMOTE_PATH] [--server HOST:PORT --user NAME] [--ca FILE]
  filesync rm REMOTE_PATH [-r] [--server HOST:PORT --user NAME] [--ca FILE]

Run "filesync COMMAND --help" for a command's options. Passwords are never taken on the command line:
set FILESYNC_PASSWORD, pipe them on standard input, or type them when asked.
`;

async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  switch (command) {
    case "server":
      if (rest[0] === "fsck") return await fsckCommand(rest.slice(1));
      if (rest[0] === "status") return await serverStatusCommand(rest.slice(1));
      if (rest[0] === "migrate") return await migrateCommand(rest.slice(1));
      if (rest[0] === "cert") return await certCommand(rest.slice(1));
      return await serverCommand(rest);
    case "user":
      return await userCommand(rest);
    case "client":
      return await clientCommand(rest);
    case "confirm-deletes":
      return await confirmDeletesCommand(rest);
    case "status":
      return await statusCommand(rest);
    case "pause":
    case "resume":
      return await pauseCommand(command, rest);
    case "gc":
      return await gcCommand(rest);
    case "versions":
      return await versionsCommand(rest);
    case "restore":
      return await restoreCommand(rest);
    case "trash":
      return await trashCommand(rest);
    case "devices":
      return await devicesCommand(rest);
    case "lock":
      return await lockCommand(rest);
    case "unlock":
      return await unlockCommand(rest);
    case "locks":
      return await locksCommand(rest);
    case "share":
      return await shareCommand(rest);
    case "unshare":
      return await unshareCommand(rest);
    case "shares":
      return await sharesCommand(rest);
    case "ls":
      return await lsCommand(rest);
    case "get":
      return await getCommand(rest);
    case "put":
      return await putCommand(rest);
    case "rm":
      return await rmCommand(rest);
    case "--version":
    case "-V":
      console.log(`filesync ${VERSION}`);
      return 0;
    case undefined:
    case "help":
    case "--help":
    case "-h":
      console.log(HELP);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(
        `Unknown command "${command}" (server, server status, user, client, gc, versions, restore, trash, confirm-deletes, status, pause, resume, devices, lock, unlock, locks, share, unshare, shares, ls, get, put, rm; ` +
          "see filesync --help)",
      );
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    const usage = error instanceof UsageError ||
      (error instanceof TypeError && (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"));
    if (error instanceof UserError || usage) {
      console.error(`filesync: ${(error as Error).message}`);
      Deno.exit(usage ? 2 : 1);
    }
    throw error;
  }
}
