// The `filesync client` command: options, password, and running the sync until stopped.
import { readCaFile } from "./ca_file.ts";
import { parseArgs } from "node:util";
import { hostname } from "node:os";
import { join } from "node:path";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { blameConfig, CONFIG_FILE, loadConfig } from "../protocol/config_file.ts";
import { parseServerList } from "./server_list.ts";
import { confirmHeld, findSyncRoot } from "./held_deletes.ts";
import { askAtTerminal, readPassword } from "../cli/password.ts";
import { stopSignals } from "../cli/stop_signals.ts";
import { MASS_DELETE_MIN, MASS_DELETE_PERCENT } from "./safety.ts";
import { forgetCa, saveCa, STATE_DIR } from "./state.ts";
import { SyncClient } from "./sync_client.ts";
import { EventBus } from "./events.ts";
import { startClientControl } from "./control.ts";
import { eventPrinter, type Verbosity } from "./event_printer.ts";
import { ErrorLog, errorLogPath } from "./error_log.ts";
import { desktopNotifier } from "./desktop_notify.ts";
import { ProgressDisplay, progressModeOf } from "./progress.ts";
import { timedLine } from "./event_format.ts";

/** Help text of `filesync client`. */
export const CLIENT_HELP =
  `Usage: filesync client --server HOST:PORT [--server HOST:PORT …] --user NAME --dir DIR [options]

Keeps DIR in sync with the server. The first start asks for the password (or reads
FILESYNC_PASSWORD, or one line of standard input) and keeps a device token in DIR/.filesync/.

Options:
  --server HOST:PORT   server address (IPv6 as [::1]:PORT); give it once per node of a cluster of servers
                       (same journal and users): the client uses the first it can reach and moves to
                       the next when that one is down
  --user NAME          user name
  --dir DIR            folder to sync (created if missing)
  --ca FILE            CA certificate to trust (the server prints its path, DATA/certs/ca.pem);
                       without it the system's trusted CAs are used
  --device NAME        name of this device, shown in conflict copies (default: host name)
  --rescan SECONDS     seconds between full scans of the folder (default 10)
  --mass-delete-percent N
                       safety stop: a scan that would delete more than N% of the files in sync
                       (default ${MASS_DELETE_PERCENT}) ...
  --mass-delete-min N  ... and at least N files (default ${MASS_DELETE_MIN}) sends no delete until
                       "filesync confirm-deletes"; everything else keeps syncing
  --allow-mass-delete  let such deletes through without asking (--no-allow-mass-delete: do not)
  --json               print events as JSON lines (one object per line; schema in README, "Events")
  --quiet              print errors and conflicts only
  --verbose            print detail as well (plans, transfers, "in sync")
  --notify             desktop notifications (notify-send) for conflicts, errors, safety stops, shares,
                       locks by other devices, and downloads (summarised every few seconds)
  -h, --help           show this help

Errors and conflicts are also appended to DIR/.filesync/client.log (rotated at 1 MiB to client.log.1).

Config file: DIR/.filesync/config.json may hold any of these options but --dir, as JSON with the long
option names as keys, e.g. {"server": "host:8443", "user": "alice", "ca": "ca.pem", "rescan": 5}
(a relative "ca" is taken from DIR/.filesync/; several servers as a list: "server": ["a:8443", "b:8443"]).
The command line wins. Never a password.

Safety stop: if the folder is missing, unreadable or replaced by another folder, nothing is deleted
anywhere; syncing resumes by itself when it is back.

Progress: on a terminal a bar shows files, bytes, rate and time left while files transfer (the first
sync at once, later work once it has run about 2 s); otherwise a "progress:" line every 5 s.
`;

/** Help text of `filesync confirm-deletes`. */
export const CONFIRM_HELP = `Usage: filesync confirm-deletes [--dir DIR]

Lets through the deletes that the client's safety stop holds back (the ones pending now, not later
ones): the running client, or its next start, deletes them on the server and on every other device.

Options:
  --dir DIR    the synced folder (default: the synced folder that holds the current directory)
  -h, --help   show this help
`;

/** The verbosity `--quiet` / `--verbose` ask for; both at once is a usage error. */
export function verbosityOf(values: { quiet?: boolean; verbose?: boolean }): Verbosity {
  if (values.quiet && values.verbose) {
    throw new UsageError("--quiet and --verbose cannot be used together (see filesync client --help)");
  }
  return values.quiet ? "quiet" : values.verbose ? "verbose" : "normal";
}

/** The options of `filesync client`, as parseArgs takes them (and the keys its config file may hold). */
export const CLIENT_OPTIONS = {
  server: { type: "string", multiple: true },
  user: { type: "string" },
  dir: { type: "string" },
  ca: { type: "string" },
  device: { type: "string" },
  rescan: { type: "string" },
  "mass-delete-percent": { type: "string" },
  "mass-delete-min": { type: "string" },
  "allow-mass-delete": { type: "boolean" },
  json: { type: "boolean" },
  quiet: { type: "boolean" },
  verbose: { type: "boolean" },
  notify: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function parseClientArgs(args: string[]) {
  return parseArgs({
    args,
    options: CLIENT_OPTIONS,
    allowPositionals: false,
    allowNegative: true,
    strict: true,
  });
}

/** The values of the client's options. */
type ClientValues = ReturnType<typeof parseClientArgs>["values"];

/** Runs `filesync client ARGS`; resolves with the exit code. */
export async function clientCommand(args: string[]): Promise<number> {
  const parsed = parseClientArgs(args);
  if (parsed.values.help) {
    console.log(CLIENT_HELP);
    return 0;
  }
  // The config file is found through --dir, so that one must be on the command line.
  if (!parsed.values.dir) throw new UsageError(`Missing --dir (see filesync client --help)`);
  const config = await loadConfig({
    options: CLIENT_OPTIONS,
    values: parsed.values,
    file: join(parsed.values.dir, STATE_DIR, CONFIG_FILE),
    command: "filesync client",
    refuse: { dir: "the file is found through --dir, which goes on the command line" },
    paths: ["ca"],
  });
  const values = config.values as typeof parsed.values;
  try {
    return await runClient(values);
  } catch (error) {
    throw blameConfig(error, config);
  }
}

/** Runs the client with its options merged from the command line and the config file. */
async function runClient(values: ClientValues): Promise<number> {
  for (const name of ["server", "user"] as const) {
    if (!values[name]?.length) {
      throw new UsageError(
        `Missing --${name} (give it on the command line or in DIR/.filesync/${CONFIG_FILE}; see filesync client --help)`,
      );
    }
  }
  const servers = parseServerList(values.server!);
  const caPem = values.ca ? await readCaFile(values.ca as string) : undefined;
  const rescan = values.rescan ? Number(values.rescan) : 10;
  if (!(rescan > 0)) throw new UsageError(`Invalid --rescan "${values.rescan}": give a number of seconds`);
  const percent = values["mass-delete-percent"] ?? String(MASS_DELETE_PERCENT);
  const massDeletePercent = Number(percent);
  if (percent.trim() === "" || !(massDeletePercent >= 0 && massDeletePercent <= 100)) {
    throw new UsageError(`Invalid --mass-delete-percent "${percent}": give a number from 0 to 100`);
  }
  const min = values["mass-delete-min"] ?? String(MASS_DELETE_MIN);
  const massDeleteMin = Number(min);
  if (!/^\d+$/.test(min) || !Number.isSafeInteger(massDeleteMin)) {
    throw new UsageError(`Invalid --mass-delete-min "${min}": give a whole number of files`);
  }
  const verbosity = verbosityOf(values);
  const device = (values.device ?? hostname()).trim() || "device";
  const events = new EventBus();
  const progress = new ProgressDisplay({
    mode: progressModeOf({
      json: values.json,
      quiet: verbosity === "quiet",
      terminal: Deno.stdout.isTerminal(),
    }),
    stamp: (line) => timedLine(Date.now(), line),
  });
  events.subscribe(progress.sink);
  const notice = (message: string) => events.emit({ type: "notice", message });
  events.subscribe(eventPrinter({ json: values.json === true, verbosity, write: progress.write }));
  const errorLog = new ErrorLog(errorLogPath(values.dir!), {
    onError: (error) =>
      notice(`cannot write ${errorLogPath(values.dir!)}: ${error.message} (errors are still printed)`),
  });
  events.subscribe(errorLog.sink());
  const notifier = values.notify ? desktopNotifier({ onMissing: notice }) : null;
  if (notifier) events.subscribe(notifier.sink);
  const client = new SyncClient({
    dir: values.dir!,
    servers,
    user: values.user!,
    device,
    caPem,
    password: () => readPassword(`Password for ${values.user}: `),
    askPassword: askAtTerminal(`Password for ${values.user} (this device was revoked): `) ?? undefined,
    events,
    rescanSeconds: rescan,
    massDeletePercent,
    massDeleteMin,
    allowMassDelete: values["allow-mass-delete"] === true,
  });
  const stop = () => client.stop();
  // SIGINT and SIGTERM; SIGBREAK on Windows (no SIGTERM there: removing that listener below does nothing).
  for (const signal of stopSignals()) Deno.addSignalListener(signal, stop);
  await client.start();
  // `filesync status`, `pause`, `resume` and the history, share and lock commands reach the client here.
  const control = await startClientControl({ dir: values.dir!, events, client }).catch(async (error) => {
    await client.stop();
    throw error;
  });
  // Commands such as `filesync versions` run in this folder must trust the same server.
  if (caPem) await saveCa(values.dir!, caPem);
  else await forgetCa(values.dir!);
  notice(`syncing ${values.dir} with ${values.server!.join(", ")} as ${values.user} (device "${device}")`);
  try {
    await client.done;
  } catch (error) {
    // The reason the client stopped is printed by the command's caller; the log keeps it too.
    errorLog.append(`${new Date().toISOString()} ${(error as Error).message}`);
    throw error;
  } finally {
    await control?.close();
    Deno.removeSignalListener("SIGINT", stop);
    Deno.removeSignalListener("SIGTERM", stop);
    progress.stop();
    notifier?.stop();
    await errorLog.flush();
  }
  notice("stopped");
  return 0;
}

/** Runs `filesync confirm-deletes ARGS`; resolves with the exit code. */
export async function confirmDeletesCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { dir: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: false,
    strict: true,
  });
  if (values.help) {
    console.log(CONFIRM_HELP);
    return 0;
  }
  const root = findSyncRoot(values.dir ?? Deno.cwd());
  if (root === null) {
    throw new UserError(
      values.dir
        ? `"${values.dir}" is not a synced folder (it has no .filesync/ folder)`
        : "Not inside a synced folder: run it there or give --dir DIR",
    );
  }
  let held;
  try {
    held = await confirmHeld(root);
  } catch (error) {
    throw new UserError(`Cannot confirm the deletes in "${root}": ${(error as Error).message}`);
  }
  if (held === null) console.log(`nothing to confirm: no deletes are held back in ${root}`);
  else {
    console.log(
      `confirmed: the client will delete ${held.files} ${
        held.files === 1 ? "file" : "files"
      } on the server ` +
        `(and on your other devices)`,
    );
  }
  return 0;
}
