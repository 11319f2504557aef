// The `filesync server` and `filesync user` commands.
import { parseArgs } from "node:util";
import { readPassword } from "../cli/password.ts";
import { onStopSignals } from "../cli/stop_signals.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { describeDevices } from "../protocol/devices.ts";
import { safeText } from "../protocol/replies.ts";
import { formatSize, parseSize } from "../protocol/sizes.ts";
import { type AdminReply, type AdminRequest, adminRequest } from "./admin.ts";
import { validateUserName } from "./auth.ts";
import { openServerChunks } from "./master_key.ts";
import { closeMetadata, metadataSpec, openMetadata } from "./metadata_open.ts";
import { isPostgresUrl, parsePostgresUrl } from "./pg_connect.ts";
import type { MetadataStore } from "./metadata_store.ts";
import { ensureDataDir, runAdmin, startServer } from "./server.ts";
import {
  loadServerConfig,
  metadataConfigPassword,
  s3ConfigCredentials,
  SERVER_FILE_SECRETS,
  SERVER_OPTIONS,
  type StoreOptions,
  storeOptions,
} from "./server_config.ts";
import { blameConfig, CONFIG_FILE } from "../protocol/config_file.ts";

/** Help text of `filesync server`. */
export const SERVER_HELP = `Usage: filesync server --data DIR --port PORT [options]

Runs the server. DIR holds the metadata (Deno KV), the chunk store, the certificates and the admin socket.
Without --cert/--key the first start creates a local CA in DIR/certs/ca.pem and prints its fingerprint;
give that file to clients with --ca. "filesync server fsck --data DIR" checks a stopped server's data folder;
"filesync server status --data DIR" shows a running one's devices, counters and chunk store size;
"filesync server migrate --metadata URL" creates or updates a PostgreSQL metadata schema.

Options:
  --data DIR           data folder (created if missing)
  --port PORT          TCP port (0 picks a free one; the chosen port is printed)
  --host HOST          address to listen on (default 0.0.0.0)
  --cert FILE          PEM certificate chain (with --key), e.g. from a public CA
  --key FILE           PEM private key
  --metadata LOCATION  metadata store: a Deno KV file path (default DIR/metadata.kv), a KV Connect URL,
                       or postgres://USER@HOST:PORT/DB (password from PGPASSWORD, ~/.pgpass or
                       "metadata-password" in DIR/config.json; never in the URL). The schema is
                       created and migrated on start ("filesync server migrate" does it alone)
  --kv PATH_OR_URL     the older name of --metadata, for Deno KV
  --chunks PATH_OR_URL chunk store: a folder path or file: URL (default DIR/chunks), or an S3 bucket
                       s3://BUCKET/PREFIX?endpoint=URL&region=REGION, its keys from AWS_ACCESS_KEY_ID
                       and AWS_SECRET_ACCESS_KEY or the config file (never in the URL)
  --master-key FILE    key the chunks are encrypted with (default DIR/keys/master.key, created on
                       first start); keep a copy apart from the data: without it the content is lost
  --keep-days N        keep replaced and deleted versions and the trash N days (default 30)
  --keep-versions N    keep at most N earlier versions per file (default: no limit)
  --max-file-size SIZE largest file a user may store, e.g. 50G (default 1T; "unlimited" for none)
  --quota SIZE         most bytes of files each user may hold, e.g. 100G (default unlimited)
  --max-connections N  connections at once over all addresses (default 512)
  --max-connections-per-address N
                       connections at once from one address (default 64)
  --handshake-timeout S
                       seconds from connect to a finished TLS handshake (default 10)
  --password-checks N  password checks run at once (default: half the cores, at least 1)
  -h, --help           show this help

Config file: DIR/config.json may hold any of these options but --data, as JSON with the long option
names as keys, e.g. {"port": 8443, "keep-days": 90, "quota": "100G"}; relative paths in it are taken
from DIR. The command line wins. It must be private to the server's user (chmod 600). "filesync gc",
"filesync user" and "filesync server fsck" take --metadata (or --kv), --chunks and --master-key from it too.
Only there: "metadata-password" (of a postgres:// --metadata), "s3-access-key-id" and
"s3-secret-access-key" (the keys of an s3: chunk store).
`;

/** Help text of `filesync user`. */
export const USER_HELP = `Usage: filesync user COMMAND [NAME] --data DIR [--metadata LOCATION]

Commands:
  add NAME      create a user; the password comes from FILESYNC_PASSWORD or standard input
                (typed without echo at a terminal)
  passwd NAME   set a new password (and log out every device of that user)
  remove NAME   remove a user with all files
  list          list users
  quota NAME [SIZE]
                show the user's quota and what their files take; with SIZE (e.g. 50G, "unlimited", or
                "default" for the server's --quota) set it. Counts live files only, not history or trash
  devices NAME [--json]
                list the user's devices: name, id, login, last connection, token expiry or revocation
  revoke NAME DEVICE
                revoke a device (by id, or by a name only one device has): its connections close at once
                and it must log in with the password again

Works whether or not the server is running (through the server's admin socket when it is).
`;

function parseServerArgs(args: string[]) {
  // A credential the config file may hold is refused here by name, with where it goes instead.
  const secret = args.filter((arg) => arg.startsWith("--")).map((arg) => arg.slice(2).split("=")[0])
    .find((name) => Object.hasOwn(SERVER_FILE_SECRETS, name));
  if (secret !== undefined) {
    throw new UsageError(
      `--${secret} is refused on the command line (it would show in the process list): put "${secret}" ` +
        `in DATA/${CONFIG_FILE} (chmod 600)`,
    );
  }
  return parseArgs({ args, options: SERVER_OPTIONS, strict: true, allowPositionals: false });
}

/** The values of the server's options. */
type ServerValues = ReturnType<typeof parseServerArgs>["values"];

/** Runs `filesync server ARGS` until SIGINT/SIGTERM. */
export async function serverCommand(args: string[]): Promise<number> {
  const parsed = parseServerArgs(args);
  if (parsed.values.help) {
    console.log(SERVER_HELP);
    return 0;
  }
  // The config file is found through --data, so that one must be on the command line.
  if (!parsed.values.data) throw new UsageError("Missing --data DIR (see filesync server --help)");
  const config = await loadServerConfig(parsed.values.data, parsed.values);
  try {
    return await runServer(config.values as typeof parsed.values);
  } catch (error) {
    throw blameConfig(error, config);
  }
}

/** Runs the server with its options merged from the command line and the config file. */
async function runServer(values: ServerValues): Promise<number> {
  if (values.port === undefined) {
    throw new UsageError(
      `Missing --port PORT (on the command line or in DATA/${CONFIG_FILE}; see filesync server --help)`,
    );
  }
  // The metadata location is checked before anything is made in the data folder.
  const metadata = metadataSpec(values.data!, values);
  if (isPostgresUrl(metadata)) parsePostgresUrl(metadata);
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`Invalid --port "${values.port}"`);
  }
  const keepDays = count("--keep-days", values["keep-days"] ?? "30");
  const keepVersions = values["keep-versions"] === undefined
    ? undefined
    : count("--keep-versions", values["keep-versions"]);
  const maxFileBytes = size("--max-file-size", values["max-file-size"]);
  const quotaBytes = size("--quota", values.quota);
  // Test-only: FILESYNC_TEST_CLOCK_OFFSET_MS shifts the server's clock (history, trash, retention, tokens'
  // pending uploads) so end-to-end tests can check retention without waiting for days. Not for production use.
  const offset = Number(Deno.env.get("FILESYNC_TEST_CLOCK_OFFSET_MS") ?? 0);
  if (!Number.isFinite(offset)) throw new UsageError("Invalid FILESYNC_TEST_CLOCK_OFFSET_MS");
  // Test-only: FILESYNC_TEST_PAUSE_COMMIT_AT_ATOMIC=N makes every commit that needs more than N KV atomics write
  // N of them, print "test: commit paused after N atomics" and then wait forever, so a kill -9 test can kill the
  // server while it is provably in the middle of a commit. Not for production use.
  const pauseText = Deno.env.get("FILESYNC_TEST_PAUSE_COMMIT_AT_ATOMIC");
  const pauseAt = pauseText === undefined
    ? undefined
    : count("FILESYNC_TEST_PAUSE_COMMIT_AT_ATOMIC", pauseText);
  // Test-only: FILESYNC_TEST_PLAINTEXT_CHUNKS=1 stores chunks unencrypted, so the benchmark can measure what
  // encryption costs. Not for production use (a plaintext server refuses a data folder with encrypted chunks).
  const plaintextChunks = Deno.env.get("FILESYNC_TEST_PLAINTEXT_CHUNKS") === "1";
  const server = await startServer({
    dataDir: values.data!,
    port,
    host: values.host,
    certFile: values.cert,
    keyFile: values.key,
    metadata: values.metadata,
    kv: values.kv,
    metadataPassword: metadataConfigPassword(values),
    chunks: values.chunks,
    s3Credentials: s3ConfigCredentials(values),
    masterKeyFile: values["master-key"],
    plaintextChunks,
    retention: { keepDays, ...(keepVersions === undefined ? {} : { keepVersions }) },
    now: offset === 0 ? undefined : () => Date.now() + offset,
    beforeCommitAtomic: pauseAt === undefined ? undefined : (index) => {
      if (index < pauseAt) return;
      console.log(`test: commit paused after ${pauseAt} atomics`);
      return new Promise<void>(() => {});
    },
    ...(maxFileBytes === undefined ? {} : { maxFileBytes }),
    ...(quotaBytes === undefined || quotaBytes === null ? {} : { quotaBytes }),
    maxConnections: positive("--max-connections", values["max-connections"]),
    maxConnectionsPerAddress: positive(
      "--max-connections-per-address",
      values["max-connections-per-address"],
    ),
    handshakeTimeoutMs: seconds("--handshake-timeout", values["handshake-timeout"]),
    passwordChecks: positive("--password-checks", values["password-checks"]),
  });
  await new Promise<void>((resolve) => onStopSignals(resolve));
  console.log(`${new Date().toISOString()} stopping`);
  await server.close();
  return 0;
}

/** A size given for an option: bytes, null for "unlimited", undefined when absent; or a UsageError. */
function size(option: string, text: string | undefined): number | null | undefined {
  if (text === undefined) return undefined;
  if (/^(unlimited|none)$/i.test(text.trim())) return null;
  try {
    return parseSize(text);
  } catch (error) {
    throw new UsageError(`Invalid ${option}: ${(error as Error).message}`);
  }
}

/** A whole number ≥ 1 given for an option (undefined when not given), or a UsageError. */
function positive(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = count(option, text);
  if (n < 1) throw new UsageError(`Invalid ${option} "${text}": expected a whole number of at least 1`);
  return n;
}

/** A number of seconds > 0 given for an option, in ms (undefined when not given), or a UsageError. */
function seconds(option: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(n > 0)) {
    throw new UsageError(`Invalid ${option} "${text}": expected a number of seconds above 0`);
  }
  return Math.round(n * 1000);
}

/** A whole number ≥ 0 given for an option, or a UsageError. */
function count(option: string, text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new UsageError(`Invalid ${option} "${text}": expected a whole number`);
  }
  return n;
}

/** Help text of `filesync gc`. */
export const GC_HELP =
  `Usage: filesync gc --data DIR [--metadata LOCATION] [--chunks PATH_OR_URL] [--master-key FILE]

Drops versions and trash items older than the server's retention, then removes stored chunks and manifests
that no file, kept version or pending upload needs (the server also does this every 6 hours).
Works whether or not the server is running (through the server's admin socket when it is; without a running
server it uses the retention the server last ran with).
`;

/** Runs `filesync gc ARGS`. */
export async function gcCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string" },
      metadata: { type: "string" },
      kv: { type: "string" },
      chunks: { type: "string" },
      "master-key": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    console.log(GC_HELP);
    return 0;
  }
  if (!values.data) throw new UsageError("Missing --data DIR (see filesync gc --help)");
  // The stores the server uses, when its config file names them.
  const stores = await storeOptions(values.data, values);
  Object.assign(values, stores);
  let reply = await adminRequest(values.data, { op: "gc" });
  if (!reply) {
    await ensureDataDir(values.data);
    const opened = await openServerChunks({
      dataDir: values.data,
      chunks: values.chunks,
      s3Credentials: stores.s3Credentials,
      masterKeyFile: values["master-key"],
    });
    for (const line of opened.lines) console.log(line);
    const chunks = opened.store;
    const store = await openStore(values.data, stores);
    try {
      for (const line of await store.repair()) console.log(line);
      reply = await runAdmin(store, { op: "gc" }, { chunks });
    } finally {
      await closeMetadata(store);
    }
  }
  if (!reply.ok) throw new UserError(reply.error);
  const r = reply.report ?? {};
  console.log(
    `removed ${r.removedChunks} chunks, ${r.removedManifests} manifests, ${r.removedVersions} versions, ` +
      `${r.removedTrash} trash items and ${
        r.compactedEntries ?? 0
      } journal entries; ${r.liveChunks} chunks in use`,
  );
  return 0;
}

/** Runs `filesync user ARGS`. */
export async function userCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      data: { type: "string" },
      metadata: { type: "string" },
      kv: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: true,
  });
  if (values.help || positionals.length === 0) {
    console.log(USER_HELP);
    return values.help ? 0 : 2;
  }
  if (!values.data) throw new UsageError("Missing --data DIR (see filesync user --help)");
  // The stores the server uses, when its config file names them.
  const stores = await storeOptions(values.data, values);
  Object.assign(values, stores);
  const [command, name, ...rest] = positionals;
  const quotaArg = command === "quota" ? rest.shift() : undefined;
  const deviceArg = command === "revoke" ? rest.shift() : undefined;
  if (values.json && command !== "devices") throw new UsageError(`--json goes with "devices" only`);
  if (rest.length > 0) throw new UsageError(`Unexpected argument "${rest[0]}"`);
  let request: AdminRequest;
  const needName = () => {
    if (!name) throw new UsageError(`Missing user name: filesync user ${command} NAME --data DIR`);
    try {
      return validateUserName(name);
    } catch (error) {
      throw new UserError((error as Error).message);
    }
  };
  switch (command) {
    case "add":
      request = { op: "user-add", name: needName(), password: await newPassword(name!) };
      break;
    case "passwd":
      request = { op: "user-passwd", name: needName(), password: await newPassword(name!) };
      break;
    case "remove":
      request = { op: "user-remove", name: needName() };
      break;
    case "list":
      request = { op: "user-list" };
      break;
    case "quota": {
      request = { op: "user-quota", name: needName() };
      if (quotaArg !== undefined) {
        const quota = /^default$/i.test(quotaArg.trim()) ? "default" : size("SIZE", quotaArg);
        request.set = { quota: quota ?? null };
      }
      break;
    }
    case "devices":
      request = { op: "user-devices", name: needName() };
      break;
    case "revoke": {
      const user = needName();
      if (!deviceArg) throw new UsageError("Missing device: filesync user revoke NAME DEVICE --data DIR");
      request = { op: "user-revoke", name: user, device: deviceArg };
      break;
    }
    default:
      throw new UsageError(
        `Unknown user command "${command}" (add, passwd, remove, list, quota, devices, revoke)`,
      );
  }
  let reply: AdminReply | null = await adminRequest(values.data, request);
  if (!reply) {
    // No server running: open the KV directly (only one process may own it).
    await ensureDataDir(values.data);
    const store = await openStore(values.data, stores);
    try {
      reply = await runAdmin(store, request);
    } finally {
      await closeMetadata(store);
    }
  }
  if (!reply.ok) throw new UserError(reply.error);
  if (request.op === "user-list") { for (const user of reply.users ?? []) console.log(user); }
  else if (request.op === "user-quota") console.log(describeQuota(name!, reply.quota!));
  else if (request.op === "user-devices") {
    const devices = reply.devices ?? [];
    if (values.json) console.log(JSON.stringify({ user: name, devices }, null, 2));
    else for (const line of describeDevices(devices, { user: name!, now: Date.now() })) console.log(line);
  } else if (request.op === "user-revoke") {
    const { device, already } = reply.revoked!;
    console.log(
      already
        ? `device "${safeText(device.device)}" (${device.deviceId}) of ${name} was already revoked`
        : `revoked device "${
          safeText(device.device)
        }" (${device.deviceId}) of ${name}: its connections are ` +
          "closed and " +
          "it must log in with the password again",
    );
  } else {console.log(
      `${command === "add" ? "added" : command === "remove" ? "removed" : "changed password of"} ${name}`,
    );}
  return 0;
}

/** One line on a user's quota, e.g. "alice: 1.2 MiB used of 10.00 GiB (own quota)". */
function describeQuota(
  name: string,
  quota: { used: number; own?: number | null; serverDefault?: number | null },
): string {
  const used = `${name}: ${formatSize(quota.used)} used`;
  if (quota.own === null) return `${used}, no quota (own setting)`;
  if (quota.own !== undefined) return `${used} of ${formatSize(quota.own)} (own quota)`;
  if (quota.serverDefault === null) return `${used}, no quota (the server has no --quota)`;
  if (quota.serverDefault !== undefined) {
    return `${used} of ${formatSize(quota.serverDefault)} (the server's --quota)`;
  }
  return `${used} (quota: the server's --quota)`;
}

async function newPassword(name: string): Promise<string> {
  const password = await readPassword(`New password for ${name}: `);
  if (password.length < 1) throw new UserError("Empty password");
  return password;
}

/** Opens the metadata store a command without the server uses (its options merged with the config file's). */
export async function openStore(dataDir: string, values: StoreOptions): Promise<MetadataStore> {
  return await openMetadata({
    dataDir,
    metadata: values.metadata,
    kv: values.kv,
    password: values.metadataPassword,
  });
}
