// The `filesync client` command: options, password, and running the sync until stopped.
import { parseArgs } from "node:util";
import { hostname } from "node:os";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { parseServerAddress } from "./connection.ts";
import { readPassword } from "./password.ts";
import { forgetCa, saveCa } from "./state.ts";
import { SyncClient } from "./sync_client.ts";

/** Help text of `filesync client`. */
export const CLIENT_HELP = `Usage: filesync client --server HOST:PORT --user NAME --dir DIR [options]

Keeps DIR in sync with the server. The first start asks for the password (or reads
FILESYNC_PASSWORD, or one line of standard input) and keeps a device token in DIR/.filesync/.

Options:
  --server HOST:PORT   server address (IPv6 as [::1]:PORT)
  --user NAME          user name
  --dir DIR            folder to sync (created if missing)
  --ca FILE            CA certificate to trust (the server prints its path, DATA/certs/ca.pem);
                       without it the system's trusted CAs are used
  --device NAME        name of this device, shown in conflict copies (default: host name)
  --rescan SECONDS     seconds between full scans of the folder (default 10)
  -h, --help           show this help
`;

function log(line: string): void {
  const time = new Date().toTimeString().slice(0, 8);
  console.log(`${time} ${line}`);
}

/** Runs `filesync client ARGS`; resolves with the exit code. */
export async function clientCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      server: { type: "string" },
      user: { type: "string" },
      dir: { type: "string" },
      ca: { type: "string" },
      device: { type: "string" },
      rescan: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    console.log(CLIENT_HELP);
    return 0;
  }
  for (const name of ["server", "user", "dir"] as const) {
    if (!values[name]) throw new UsageError(`Missing --${name} (see filesync client --help)`);
  }
  const { hostname: host, port } = parseServerAddress(values.server!);
  let caPem: string | undefined;
  if (values.ca) {
    try {
      caPem = await Deno.readTextFile(values.ca);
    } catch (error) {
      throw new UserError(`Cannot read --ca "${values.ca}": ${(error as Error).message}`);
    }
    if (!caPem.includes("BEGIN CERTIFICATE")) {
      throw new UserError(`--ca "${values.ca}" holds no PEM certificate`);
    }
  }
  const rescan = values.rescan ? Number(values.rescan) : 10;
  if (!(rescan > 0)) throw new UsageError(`Invalid --rescan "${values.rescan}": give a number of seconds`);
  const device = (values.device ?? hostname()).trim() || "device";
  const client = new SyncClient({
    dir: values.dir!,
    hostname: host,
    port,
    user: values.user!,
    device,
    caPem,
    password: () => readPassword(`Password for ${values.user}: `),
    log,
    rescanSeconds: rescan,
  });
  const stop = () => client.stop();
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await client.start();
  // Commands such as `filesync versions` run in this folder must trust the same server.
  if (caPem) await saveCa(values.dir!, caPem);
  else await forgetCa(values.dir!);
  log(`syncing ${values.dir} with ${values.server} as ${values.user} (device "${device}")`);
  try {
    await client.done;
  } finally {
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
  }
  log("stopped");
  return 0;
}
