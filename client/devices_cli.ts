// The `filesync devices` command: lists the devices of this folder's user, asking the server with the token.
import { parseArgs } from "node:util";
import { describeDevices } from "../protocol/devices.ts";
import type { WireDevice } from "../protocol/messages.ts";
import { RpcError } from "../protocol/rpc.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { type CommonOptions, connect, findSyncedFolder } from "./history_cli.ts";

/** Help text of `filesync devices`. */
export const DEVICES_HELP = `Usage: filesync devices [--json] [--dir DIR]

Lists the devices of this folder's user, asking the server with this device's token: name, id, login,
last connection, and token expiry or revocation; this device is marked "(this device)".
Revoking a device is done on the server host: filesync user revoke NAME DEVICE --data DIR.

Options:
  --dir DIR   the synced folder (default: the one that holds the current folder)
  --json      print the list as JSON
  -h, --help  show this help
`;

/** Runs `filesync devices ARGS`; resolves with the exit code. */
export async function devicesCommand(args: string[], options: CommonOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseArgs({
    args,
    options: { dir: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    print(DEVICES_HELP);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument "${positionals[0]}" (see filesync devices --help)`);
  }
  const folder = await findSyncedFolder(options.cwd ?? Deno.cwd(), values.dir);
  const peer = await connect(folder);
  let devices: WireDevice[];
  try {
    devices = (await peer.request("DEVICES", {})).message.devices as WireDevice[];
  } catch (error) {
    if (error instanceof RpcError && error.code === "unknown_op") {
      throw new UserError("The server does not list devices (it is older than this client)");
    }
    if (error instanceof RpcError) throw new UserError(error.message);
    throw new UserError(`Server request failed: ${(error as Error).message}`);
  } finally {
    peer.close();
  }
  if (values.json) print(JSON.stringify({ user: folder.device.user, devices }, null, 2));
  else {for (const line of describeDevices(devices, { user: folder.device.user, now: Date.now() })) {
      print(line);
    }}
  return 0;
}
