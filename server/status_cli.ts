// The `filesync server status` command: a running server's devices, counters and chunk store size.
import { parseArgs } from "node:util";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { adminRequest, adminSocketPath } from "./admin.ts";
import { describeStatus, type ServerStatus } from "./server_stats.ts";

/** Help text of `filesync server status`. */
export const STATUS_HELP = `Usage: filesync server status --data DIR [--json]

Shows what the server running with data folder DIR is doing, through its admin socket: uptime, connections,
the devices connected per user (address, connected since), changes committed and bytes uploaded and
downloaded since start, and the chunk store's size (measured at most once a minute).

Options:
  --data DIR   the server's data folder
  --json       print it as JSON (times in ms since 1970)
  -h, --help   show this help
`;

/** Runs `filesync server status ARGS`. */
export async function serverStatusCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { data: { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(STATUS_HELP);
    return 0;
  }
  if (!values.data) throw new UsageError("Missing --data DIR (see filesync server status --help)");
  const reply = await adminRequest(values.data, { op: "stats", chunkStore: true });
  if (!reply) {
    throw new UserError(
      `No server is running with data folder "${values.data}" (nothing answers on ${
        adminSocketPath(values.data)
      })`,
    );
  }
  if (!reply.ok) throw new UserError(reply.error);
  const status = reply.stats as unknown as ServerStatus;
  if (values.json) console.log(JSON.stringify(status, null, 2));
  else for (const line of describeStatus(status)) console.log(line);
  return 0;
}
