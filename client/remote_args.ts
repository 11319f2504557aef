// What the remote commands (ls, get, put, rm) share: their options, which kept login they use, the session, progress.
import { readCaFile } from "./ca_file.ts";
import { parseArgs } from "node:util";
import { hostname } from "node:os";
import { askAtTerminal, readPassword } from "../cli/password.ts";
import { RpcError } from "../protocol/rpc.ts";
import { formatSize } from "../protocol/sizes.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { parseServerAddress } from "./connection.ts";
import { openRemote, type RemoteSession } from "./remote_session.ts";
import { configDir, listStoredLogins, type StoredLogin } from "./token_store.ts";
import type { Progress } from "./transfer.ts";

/** The options every remote command takes, for its help text. */
export const CONNECTION_OPTIONS =
  `Options to reach the server (the first use needs --server and --user; later, with one login kept,
they may be left out):
  --server HOST:PORT   server address (IPv6 as [::1]:PORT)
  --user NAME          user name
  --ca FILE            CA certificate to trust (the server prints its path, DATA/certs/ca.pem); kept with the
                       login, so later commands need not repeat it
  --device NAME        device name of a new login (default: "HOST (cli)")
  -h, --help           show this help

The first use asks the password (or reads FILESYNC_PASSWORD, or one line of standard input) and keeps a device
token in $XDG_CONFIG_HOME/filesync/logins/ (default ~/.config/filesync/logins/), mode 0600.`;

/** Options of the commands (for tests; the CLI uses the defaults). */
export interface RemoteCommandOptions {
  /** Output lines (stdout). @default console.log */
  print?: (line: string) => void;
  /** What happens on the way (logins): stderr. @default console.error */
  log?: (line: string) => void;
  /** Folder that local paths start from. @default Deno.cwd() */
  cwd?: string;
  /** Environment that locates the config folder. @default Deno.env */
  env?: Record<string, string | undefined>;
}

/** Server and user of a command, from the options or the one login kept. */
export interface Target {
  hostname: string;
  port: number;
  user: string;
}

/**
 * Which server and user a command means: `--server` and `--user` when both are given; otherwise the one kept
 * login that fits what is given. Throws {@linkcode UsageError} when none or several fit.
 *
 * @example
 * ```ts
 * pickTarget({ server: "h:1", user: "alice" }, []); // { hostname: "h", port: 1, user: "alice" }
 * pickTarget({}, [login]); // the server and user of `login`
 * ```
 */
export function pickTarget(given: { server?: string; user?: string }, logins: readonly Target[]): Target {
  const address = given.server === undefined ? null : parseServerAddress(given.server);
  if (address && given.user !== undefined) return { ...address, user: given.user };
  const fits = logins.filter((l) =>
    (address === null ||
      (l.hostname.toLowerCase() === address.hostname.toLowerCase() && l.port === address.port)) &&
    (given.user === undefined || l.user === given.user)
  );
  if (fits.length === 1) return { hostname: fits[0].hostname, port: fits[0].port, user: fits[0].user };
  const missing = [address ? null : "--server", given.user === undefined ? "--user" : null].filter(Boolean);
  if (fits.length === 0) {
    throw new UsageError(`Missing ${missing.join(" and ")}: no login is kept for that yet (see --help)`);
  }
  const names = fits.map((l) => `${l.user} on ${l.hostname}:${l.port}`).join(", ");
  throw new UsageError(`Missing ${missing.join(" and ")}: several logins are kept (${names})`);
}

/** The default device name of a login made by these commands. */
export function defaultDevice(host: string): string {
  const name = `${host.trim() || "device"} (cli)`;
  return name.length <= 64 ? name : `${name.slice(0, 58).trimEnd()} (cli)`;
}

/** Parsed options of a command. */
export type Values = Record<string, string | boolean | undefined>;

/** Parses a command's options and checks the count of its positionals. */
export function parseCommand(
  args: string[],
  extra: Record<string, { type: "string" | "boolean"; short?: string }>,
  command: string,
  counts: { min: number; max: number },
): { values: Values; positionals: string[] } {
  const { values, positionals } = parseArgs({
    args,
    options: {
      server: { type: "string" },
      user: { type: "string" },
      ca: { type: "string" },
      device: { type: "string" },
      help: { type: "boolean", short: "h" },
      ...extra,
    },
    allowPositionals: true,
    strict: true,
  });
  if (!values.help && (positionals.length < counts.min || positionals.length > counts.max)) {
    throw new UsageError(`Wrong number of paths (see filesync ${command} --help)`);
  }
  return { values: values as Values, positionals };
}

/** Logs in as the options say and runs `work` on the session; the connection is closed after. */
export async function withSession<T>(
  values: Values,
  options: RemoteCommandOptions,
  work: (session: RemoteSession) => Promise<T>,
): Promise<T> {
  const config = configDir(options.env ?? Deno.env.toObject());
  const given = { server: values.server as string | undefined, user: values.user as string | undefined };
  const logins: StoredLogin[] = given.server !== undefined && given.user !== undefined
    ? []
    : await listStoredLogins(config);
  const target = pickTarget(given, logins);
  const caPem = typeof values.ca === "string" ? await readCaFile(values.ca as string) : undefined;
  const device = typeof values.device === "string" ? values.device.trim() : undefined;
  if (device !== undefined && (device === "" || device.length > 64)) {
    throw new UsageError("--device must be 1 to 64 characters");
  }
  const session = await openRemote({
    ...target,
    device,
    defaultDevice: defaultDevice(hostname()),
    config,
    caPem,
    password: () => readPassword(`Password for ${target.user}: `),
    askPassword: askAtTerminal(`Password for ${target.user} (this device was revoked): `),
    log: options.log ?? console.error,
  });
  try {
    return await work(session);
  } catch (error) {
    if (error instanceof UserError) throw error;
    if (error instanceof RpcError) throw new UserError(error.message);
    throw error;
  } finally {
    session.peer.close();
  }
}

/** When the first progress line of a transfer is printed, and how often the next ones. */
const PROGRESS_FIRST_MS = 2000;
const PROGRESS_EVERY_MS = 5000;

/**
 * Plain progress lines for a transfer that lasts (`uploading big.bin: 45% of 1.00 GiB`): none in its first two
 * seconds, then one every five seconds, so a quick command prints only its result.
 *
 * @example
 * ```ts
 * const progress = progressLines(console.error);
 * await sendFile(peer, root, scanner, path, stat, { progress });
 * ```
 */
export function progressLines(log: (line: string) => void, now: () => number = Date.now): Progress {
  const start = now();
  let next = start + PROGRESS_FIRST_MS;
  return (path, done, total, direction) => {
    const at = now();
    if (at < next || done >= total) return;
    next = at + PROGRESS_EVERY_MS;
    const percent = total > 0 ? Math.floor((done / total) * 100) : 100;
    log(`${direction === "up" ? "uploading" : "downloading"} ${path}: ${percent}% of ${formatSize(total)}`);
  };
}
