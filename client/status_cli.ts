// The `filesync status|pause|resume` commands: ask the client running for a synced folder through its socket.
import { parseArgs } from "node:util";
import { formatSize } from "../protocol/sizes.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { controlRequest, followEvents } from "./control_client.ts";
import { eventLevel, shown } from "./events.ts";
import { formatEvent, timedLine, toJsonLine } from "./event_format.ts";
import { findSyncRoot } from "./held_deletes.ts";
import { formatTime } from "./history_cli.ts";
import type { PendingWork, StatusReport } from "./status.ts";

/** Help text of `filesync status`. */
export const STATUS_HELP = `Usage: filesync status [--dir DIR] [--json] [--follow [--verbose]]

Asks the client running for a synced folder what it is doing: connected or not, what is in sync, what waits
to be uploaded or downloaded, transfers under way, the last sync, conflicts and safety stops waiting for you.

Options:
  --dir DIR   the synced folder (default: the one that holds the current folder)
  --json      print the status as one JSON object (with --follow: every event as a JSON line)
  --follow    print the client's events as they happen, until it stops or Ctrl-C
  --verbose   with --follow: also plans, progress and "in sync" lines
  -h, --help  show this help
`;

/** Help text of `filesync pause`. */
export const PAUSE_HELP = `Usage: filesync pause [--dir DIR]

Pauses the client running for a synced folder: nothing is uploaded, downloaded or deleted, in either
direction, until filesync resume (or the client restarts). It stays connected and keeps noting changes.

Options:
  --dir DIR   the synced folder (default: the one that holds the current folder)
  -h, --help  show this help
`;

/** Help text of `filesync resume`. */
export const RESUME_HELP = `Usage: filesync resume [--dir DIR]

Resumes a paused client: it looks at the whole folder at once and syncs what changed meanwhile.

Options:
  --dir DIR   the synced folder (default: the one that holds the current folder)
  -h, --help  show this help
`;

/** Options of the commands (for tests; the CLI uses the defaults). */
export interface StatusCommandOptions {
  /** @default Deno.cwd() */
  cwd?: string;
  /** @default console.log */
  print?: (line: string) => void;
  /** Ends `--follow`. @default Ctrl-C */
  signal?: AbortSignal;
}

/** The synced folder of `--dir` or of the current folder, or a {@linkcode UserError}. */
function syncRoot(dir: string | undefined, cwd: string): string {
  const root = findSyncRoot(dir ?? cwd);
  if (root !== null) return root;
  throw new UserError(
    dir
      ? `"${dir}" is not a synced folder (it has no .filesync/ folder)`
      : "Not inside a synced folder: run it there or give --dir DIR",
  );
}

function noClient(root: string): UserError {
  return new UserError(`no client is running for ${root} (start filesync client there)`);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function pendingText(pending: PendingWork): string {
  const { uploads, downloads } = pending;
  if (uploads.files === 0 && downloads.files === 0) return "nothing";
  return `${plural(uploads.files, "upload")} (${formatSize(uploads.bytes)}), ` +
    `${plural(downloads.files, "download")} (${formatSize(downloads.bytes)})`;
}

/**
 * The readable status: a first line with the folder and state, then aligned `label  value` lines.
 *
 * @example
 * ```ts
 * formatStatus(report); // ["filesync client for /home/me/Sync: connected", "  server     …", …]
 * ```
 */
export function formatStatus(report: StatusReport): string[] {
  const state = report.state === "paused"
    ? "paused (filesync resume syncs again)"
    : report.state === "offline" && report.offlineReason
    ? `offline (${report.offlineReason})`
    : report.state;
  const lines = [`filesync client for ${report.folder}: ${state}`];
  const add = (label: string, value: string) => lines.push(`  ${label.padEnd(10)} ${value}`);
  add("server", `${report.server}, user ${report.user}, device "${report.device}"`);
  add("in sync", `${plural(report.inSync.files, "file")}, ${formatSize(report.inSync.bytes)}`);
  add("pending", pendingText(report.pending));
  for (const t of report.transfers) {
    const percent = t.total > 0 ? Math.floor((t.done / t.total) * 100) : 100;
    add(
      "transfer",
      `${t.direction === "up" ? "uploading" : "downloading"} ${t.path}: ${percent}% of ${
        formatSize(t.total)
      }`,
    );
  }
  add("last sync", report.lastSync === null ? "not yet" : formatTime(report.lastSync));
  if (report.conflicts.length > 0) {
    add("conflicts", `${report.conflicts.length}: ${report.conflicts.join(", ")}`);
  }
  for (const stop of report.safetyStops) {
    add(
      "safety",
      stop.reason === "root"
        ? stop.detail
        : `${plural(stop.held, "delete")} held back: run "filesync confirm-deletes --dir ${report.folder}" ` +
          "to let them through, or put the files back",
    );
  }
  return lines;
}

/** Runs `filesync status ARGS`; resolves with the exit code. */
export async function statusCommand(args: string[], options: StatusCommandOptions = {}): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseArgs({
    args,
    options: {
      dir: { type: "string" },
      json: { type: "boolean" },
      follow: { type: "boolean" },
      verbose: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    print(STATUS_HELP);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument "${positionals[0]}" (see filesync status --help)`);
  }
  if (values.verbose && !values.follow) {
    throw new UsageError("--verbose goes with --follow (see filesync status --help)");
  }
  const root = syncRoot(values.dir, options.cwd ?? Deno.cwd());
  if (values.follow) {
    return await follow(root, {
      json: values.json === true,
      verbose: values.verbose === true,
      print,
      signal: options.signal,
    });
  }
  const reply = await controlRequest(root, { op: "status" });
  if (reply === null) throw noClient(root);
  if (reply.ok !== true) throw new UserError(`The client did not answer: ${String(reply.error)}`);
  const report = reply.status as StatusReport;
  if (values.json) print(JSON.stringify(report, null, 2));
  else for (const line of formatStatus(report)) print(line);
  return 0;
}

async function follow(
  root: string,
  options: { json: boolean; verbose: boolean; print: (line: string) => void; signal?: AbortSignal },
): Promise<number> {
  let signal = options.signal;
  let stopListening = () => {};
  if (!signal) {
    const abort = new AbortController();
    const onInterrupt = () => abort.abort();
    Deno.addSignalListener("SIGINT", onInterrupt);
    stopListening = () => Deno.removeSignalListener("SIGINT", onInterrupt);
    signal = abort.signal;
  }
  try {
    const running = await followEvents(root, (event) => {
      if (options.json) options.print(toJsonLine(event));
      else if (shown(eventLevel(event), options.verbose ? "verbose" : "normal")) {
        options.print(timedLine(event.time, formatEvent(event)));
      }
    }, signal);
    if (!running) throw noClient(root);
    if (!signal.aborted && !options.json) options.print(`the client for ${root} stopped`);
    return 0;
  } finally {
    stopListening();
  }
}

/** Runs `filesync pause ARGS` or `filesync resume ARGS` (`command`); resolves with the exit code. */
export async function pauseCommand(
  command: "pause" | "resume",
  args: string[],
  options: StatusCommandOptions = {},
): Promise<number> {
  const print = options.print ?? console.log;
  const { values, positionals } = parseArgs({
    args,
    options: { dir: { type: "string" }, help: { type: "boolean", short: "h" } },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    print(command === "pause" ? PAUSE_HELP : RESUME_HELP);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument "${positionals[0]}" (see filesync ${command} --help)`);
  }
  const root = syncRoot(values.dir, options.cwd ?? Deno.cwd());
  const reply = await controlRequest(root, { op: command });
  if (reply === null) throw noClient(root);
  if (reply.ok !== true) throw new UserError(`The client did not answer: ${String(reply.error)}`);
  if (command === "pause") {
    print(
      reply.changed
        ? `paused syncing of ${root} (filesync resume syncs again)`
        : `${root} was paused already`,
    );
  } else print(reply.changed ? `resumed syncing of ${root}` : `${root} was not paused`);
  return 0;
}
