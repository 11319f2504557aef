// The filesync server: TLS listener, sessions, metadata KV, chunk store, admin socket.
import { certificateFingerprint, ensureServerCertificate } from "../certs/ca.ts";
import { ALPN } from "../protocol/messages.ts";
import { formatRemote, listenTls, type TlsListener } from "./tls_listener.ts";
import { makePrivate } from "../protocol/private_files.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";
import { type AdminReply, type AdminRequest, adminRequest, adminSocketPath, serveAdmin } from "./admin.ts";
import { AttackLog, CheckQueue, LoginGuard, type LoginPolicy, makeUser, validateUserName } from "./auth.ts";
import type { ChunkStore } from "./chunk_store.ts";
import { findDevice } from "./devices.ts";
import { openServerChunks } from "./master_key.ts";
import { syncEarlierUploads } from "./upload_recovery.ts";
import { collectGarbage, type GcOptions } from "./gc.ts";
import { Hub } from "./hub.ts";
import { PgGcLock } from "./pg_gc_lock.ts";
import { CATCH_UP_MS, type ClusterBus, type ClusterNote, singleNodeBus } from "./cluster_bus.ts";
import { PgClusterBus } from "./cluster_bus_pg.ts";
import { PgMetadataStore } from "./metadata_pg.ts";
import { closeMetadata, openMetadata } from "./metadata_open.ts";
import type { MetadataStore, RetentionPolicy } from "./metadata_store.ts";
import { DEFAULT_RETENTION } from "./retention.ts";
import { formatSize } from "../protocol/sizes.ts";
import { ConnectionCaps } from "./connection_caps.ts";
import { Session } from "./session.ts";
import { ChunkUsageCache, ServerCounters, type ServerStatus } from "./server_stats.ts";
import { LockService } from "./lock_service.ts";

/** Options of {@linkcode startServer}. */
export interface ServerOptions {
  /** Data folder: KV file, chunks, certificates, admin socket. Created if missing. */
  dataDir: string;
  /** Address to listen on. @default "0.0.0.0" */
  host?: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** PEM certificate chain and key files; both or neither. Without them a local CA is used. */
  certFile?: string;
  keyFile?: string;
  /** Metadata store: a postgres:// URL, or a KV file path or KV Connect URL. @default "DIR/metadata.kv" */
  metadata?: string;
  /** The older name of `metadata` (KV only); not both. */
  kv?: string;
  /** The PostgreSQL password from the config file (else PGPASSWORD or ~/.pgpass). */
  metadataPassword?: string;
  /** Chunk store: a folder path, a `file:` URL or `s3://BUCKET/PREFIX?endpoint=URL&region=REGION`. @default "DIR/chunks" */
  chunks?: string;
  /** An S3 chunk store's keys from the config file (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY win). */
  s3Credentials?: { accessKeyId?: string; secretAccessKey?: string };
  /** The master key file chunks are encrypted with. @default "DIR/keys/master.key", created on first start */
  masterKeyFile?: string;
  /** Stores chunks unencrypted: for tests and benchmarks only, never offered to users. @default false */
  plaintextChunks?: boolean;
  /** What history and trash to keep. @default 30 days, any number of versions */
  retention?: RetentionPolicy;
  /** The clock (tests shift it). @default Date.now */
  now?: () => number;
  /** Where log lines go. @default console.log with a timestamp */
  log?: (line: string) => void;
  /** Login and idle time limits, in ms (tests shorten them). */
  loginTimeoutMs?: number;
  idleTimeoutMs?: number;
  /** Time from connect to a finished TLS handshake, in ms. @default 10000 */
  handshakeTimeoutMs?: number;
  /** Connections at once over all addresses; more are closed at once. @default 512 */
  maxConnections?: number;
  /** Connections at once from one address; more are closed at once. @default 64 */
  maxConnectionsPerAddress?: number;
  /** Login limits (tests shorten them). @default see {@linkcode LoginPolicy} */
  loginPolicy?: LoginPolicy;
  /** Password checks run at once; more wait in a short queue, the rest are refused. @default half the cores */
  passwordChecks?: number;
  /** Hours between automatic garbage collections; 0 turns them off. @default 6 */
  gcIntervalHours?: number;
  /** Test hook passed to the metadata store as its `beforeAtomic` option (see KvMetadataOptions). */
  beforeCommitAtomic?: (index: number) => void | Promise<void>;
  /** Largest file a user may store, in bytes; null for no limit. @default DEFAULT_MAX_FILE_BYTES (1 TiB) */
  maxFileBytes?: number | null;
  /** Most bytes of live files each user may hold (kept versions and trash do not count). @default no limit */
  quotaBytes?: number;
  /**
   * How this node talks to the other nodes serving the same metadata (the server closes it when it stops).
   * @default the bus of a node alone (with metadata on PostgreSQL: LISTEN/NOTIFY on its database)
   */
  clusterBus?: ClusterBus;
}

/** The largest file a server accepts unless told otherwise: 1 TiB. */
export const DEFAULT_MAX_FILE_BYTES = 1024 ** 4;

/** A running server. */
export interface RunningServer {
  port: number;
  hostname: string;
  store: MetadataStore;
  chunks: ChunkStore;
  /** Stops listening, closes every session and the KV. */
  close(): Promise<void>;
}

/** Default log: a timestamped line on stdout. */
export function timestampedLog(line: string): void {
  console.log(`${new Date().toISOString()} ${line}`);
}

/** Creates the data folder or explains in one line why it cannot. */
export async function ensureDataDir(dir: string): Promise<void> {
  try {
    const info = await Deno.stat(dir);
    if (!info.isDirectory) throw new UserError(`Cannot use data folder "${dir}": it is a file`);
    return;
  } catch (error) {
    if (error instanceof UserError) throw error;
    if (error instanceof Deno.errors.NotADirectory || /Not a directory/.test(String(error))) {
      throw new UserError(`Cannot create data folder "${dir}": a parent of it is a file`);
    }
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new UserError(`Cannot use data folder "${dir}": ${(error as Error).message}`);
    }
  }
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    const reason = error instanceof Deno.errors.NotADirectory || /Not a directory/.test(String(error))
      ? "a parent of it is a file"
      : (error as Error).message;
    throw new UserError(`Cannot create data folder "${dir}": ${reason}`);
  }
}

/** Runs admin requests against a metadata store (used by the admin socket and by offline commands). */
export async function runAdmin(
  store: MetadataStore,
  request: AdminRequest,
  options: {
    chunks?: ChunkStore;
    /** The running server's statistics; `chunkStore` asks for the chunk store's size too. */
    stats?: (options: { chunkStore: boolean }) => Promise<Record<string, unknown>>;
    onUserChanged?: (name: string) => void;
    /** Clock and retention for garbage collection. */
    gc?: () => GcOptions;
    /** The running server's `--quota` (null: none), for user-quota replies; absent offline. */
    quotaBytes?: number | null;
    /** Closes the open sessions of a device that was just revoked. */
    onDeviceRevoked?: (name: string, deviceId: string) => void;
    /** The clock of revocations. @default Date.now */
    now?: () => number;
  } = {},
): Promise<AdminReply> {
  const { chunks, stats, onUserChanged } = options;
  switch (request.op) {
    case "ping":
      return { ok: true };
    case "gc": {
      if (!chunks) return { ok: false, error: "No chunk store" };
      return { ok: true, report: { ...await collectGarbage(store, chunks, options.gc?.()) } };
    }
    case "stats":
      return { ok: true, stats: await stats?.({ chunkStore: request.chunkStore === true }) ?? {} };
    case "user-add": {
      validateUserName(request.name);
      const added = await store.addUser(await makeUser(request.name, request.password));
      return added ? { ok: true } : { ok: false, error: `User "${request.name}" already exists` };
    }
    case "user-passwd": {
      const user = await makeUser(request.name, request.password);
      if (!await store.setPassword(request.name, user.salt, user.hash)) {
        return { ok: false, error: `No user "${request.name}"` };
      }
      onUserChanged?.(request.name);
      return { ok: true };
    }
    case "user-remove":
      if (!await store.removeUser(request.name)) return { ok: false, error: `No user "${request.name}"` };
      onUserChanged?.(request.name);
      return { ok: true };
    case "user-list":
      return { ok: true, users: (await store.listUsers()).map((u) => u.name) };
    case "user-quota": {
      if (request.set) {
        const quota = request.set.quota === "default" ? undefined : request.set.quota;
        if (!await store.setQuota(request.name, quota)) {
          return { ok: false, error: `No user "${request.name}"` };
        }
      }
      const user = await store.getUser(request.name);
      if (!user) return { ok: false, error: `No user "${request.name}"` };
      return {
        ok: true,
        quota: {
          used: await store.usage(request.name),
          ...("quota" in user ? { own: user.quota } : {}),
          ...(options.quotaBytes !== undefined ? { serverDefault: options.quotaBytes } : {}),
        },
      };
    }
    case "user-devices": {
      if (!await store.getUser(request.name)) return { ok: false, error: `No user "${request.name}"` };
      return { ok: true, devices: await store.listDevices(request.name) };
    }
    case "user-revoke": {
      if (!await store.getUser(request.name)) return { ok: false, error: `No user "${request.name}"` };
      const match = findDevice(await store.listDevices(request.name), request.device, { user: request.name });
      if (!match.ok) return { ok: false, error: match.error };
      const already = match.device.revoked !== undefined;
      const device = await store.revokeDevice(
        request.name,
        match.device.deviceId,
        (options.now ?? Date.now)(),
      );
      if (!device) return { ok: false, error: `No device "${request.device}" of user "${request.name}"` };
      // Also when revoked before: whatever session it still has (none, normally) goes.
      options.onDeviceRevoked?.(request.name, device.deviceId);
      return { ok: true, revoked: { device, already } };
    }
    default:
      return { ok: false, error: "Unknown admin request" };
  }
}

/** Starts a server and returns once it is listening. */
export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const log = options.log ?? timestampedLog;
  const host = options.host ?? "0.0.0.0";
  await ensureDataDir(options.dataDir);
  // Private before anything is read or written: KV (passwords), chunks (content), keys, the admin socket.
  const privacy = await makePrivate(options.dataDir, { deepOnlyIfOpen: ["chunks"] });
  if (privacy.fixed > 0) {
    log(
      `warning: data folder ${options.dataDir} was readable by other local users` +
        (privacy.openMode !== null ? ` (mode ${privacy.openMode.toString(8)})` : "") +
        `: made it 0700 and ${privacy.fixed} files and folders owner-only`,
    );
  }
  if (await adminRequest(options.dataDir, { op: "ping" })) {
    throw new UserError(`Another filesync server is already running with data folder "${options.dataDir}"`);
  }
  const opened = await openServerChunks({
    dataDir: options.dataDir,
    chunks: options.chunks,
    s3Credentials: options.s3Credentials,
    masterKeyFile: options.masterKeyFile,
    plaintext: options.plaintextChunks,
  });
  for (const line of opened.lines) log(line);
  const chunks = opened.store;
  let cert: string, key: string;
  if (options.certFile || options.keyFile) {
    if (!options.certFile || !options.keyFile) throw new UsageError("--cert and --key go together");
    try {
      cert = await Deno.readTextFile(options.certFile);
      key = await Deno.readTextFile(options.keyFile);
    } catch (error) {
      throw new UserError(`Cannot read certificate or key: ${(error as Error).message}`);
    }
    log(`using certificate ${options.certFile} (SHA-256 ${certificateFingerprint(cert)})`);
  } else {
    const hostnames = host === "0.0.0.0" || host === "::" ? [] : [host];
    let made;
    try {
      made = await ensureServerCertificate(options.dataDir, { hostnames });
    } catch (error) {
      throw new UserError((error as Error).message);
    }
    cert = made.certPem;
    key = made.keyPem;
    log(`${made.created ? "created" : "using"} CA ${made.caPath}`);
    log(`CA fingerprint SHA-256 ${made.caFingerprint}`);
    log(`clients trust this server with: --ca ${made.caPath}`);
  }
  const now = options.now ?? Date.now;
  const retention = options.retention ?? DEFAULT_RETENTION;
  const store = await openMetadata({
    dataDir: options.dataDir,
    metadata: options.metadata,
    kv: options.kv,
    password: options.metadataPassword,
    now,
    beforeAtomic: options.beforeCommitAtomic,
    log,
  });
  // KV makes its file and its -wal/-shm companions with the process's umask: they go owner-only too.
  await makePrivate(options.dataDir, { deepOnlyIfOpen: ["chunks"] });
  for (const line of await store.repair()) log(line);
  const recovered = await syncEarlierUploads(store, chunks);
  if (recovered > 0) log(`made ${recovered} chunks uploaded before the last stop durable`);
  const fixed = await store.gcLock.shared(() => store.upgradeManifests((id) => chunks.size(id)));
  if (fixed !== null) {
    log(
      `checked every stored manifest against its chunks' sizes: ${fixed.length} rewritten` +
        (fixed.length > 0 ? ` (${fixed.slice(0, 3).map((h) => h.slice(0, 12)).join(", ")}…)` : ""),
    );
  }
  await store.setRetention(retention);
  log(
    `keeping earlier versions and the trash ${retention.keepDays} days` +
      (retention.keepVersions !== undefined ? `, at most ${retention.keepVersions} versions per file` : ""),
  );
  const maxFileBytes = options.maxFileBytes === null
    ? undefined
    : options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  log(
    `largest file ${maxFileBytes === undefined ? "unlimited" : formatSize(maxFileBytes)}, quota per user ` +
      (options.quotaBytes === undefined ? "unlimited" : formatSize(options.quotaBytes)),
  );
  const attacks = new AttackLog(log, { now });
  const traffic = new Map<string, { in: number; out: number }>();
  const counters = new ServerCounters(Date.now());
  const chunkUsage = new ChunkUsageCache(chunks);
  const sessions = new Set<Session>();
  const stats = async (asked: { chunkStore: boolean }): Promise<ServerStatus & Record<string, unknown>> => {
    const usage = asked.chunkStore ? await chunkUsage.get() : null;
    return {
      ...counters,
      now: Date.now(),
      connections: sessions.size,
      devices: [...sessions].filter((s) => s.user !== "").map((s) => ({
        user: s.user,
        device: s.device,
        deviceId: s.deviceId,
        address: s.remote,
        since: s.connectedAt,
      })).sort((a, b) => a.user < b.user ? -1 : a.user > b.user ? 1 : a.since - b.since),
      ...(usage ? { chunkStore: usage } : {}),
      traffic: Object.fromEntries(traffic),
    };
  };
  // The one place the bus to the other nodes is chosen: with metadata on PostgreSQL, LISTEN/NOTIFY on its
  // database (other nodes may share it); otherwise this node is alone.
  const bus = options.clusterBus ??
    (store instanceof PgMetadataStore ? new PgClusterBus(store.sql, { log }) : singleNodeBus());
  const tell = bus.shared
    ? (note: ClusterNote) => {
      bus.send(note).catch((e) => log(`cannot tell the other nodes: ${(e as Error).message}`));
    }
    : undefined;
  // Commits reach this node's sessions at once; with other nodes, in rev order and read from the journal.
  const hub = new Hub(bus.shared ? { journal: store, announce: tell, log } : {});
  // A removed user, or one whose password changed, is logged out everywhere at once.
  const logOutHere = (name: string) => {
    for (const session of sessions) {
      if (session.user !== name) continue;
      session.peer.push({ push: "error", code: "auth_token", error: "Logged out: the account changed" });
      session.peer.close();
    }
  };
  const logOut = (name: string) => {
    tell?.({ kind: "logout", user: name });
    logOutHere(name);
  };
  // Locks outlive a restart; leases that ended meanwhile are removed (and pushed) by the sweeps.
  const locks = new LockService(store, {
    now,
    announce: tell && ((ns, change) => tell({ kind: "locks", ns, change })),
  });
  const closeSessions = (name: string, deviceId: string): number => {
    let closed = 0;
    for (const session of sessions) {
      if (session.user !== name || session.deviceId !== deviceId) continue;
      session.revoke();
      closed++;
    }
    return closed;
  };
  // A revoked device is told so and closed at once, on every connection it has on every node; its locks are
  // released (here only: the other nodes just close its sessions).
  const closeDevice = (name: string, deviceId: string) => {
    locks.releaseDevice(name, deviceId).then(
      (n) => n > 0 && log(`released ${n} lock${n === 1 ? "" : "s"} of revoked device ${deviceId} of ${name}`),
      (e) => log(`releasing the locks of revoked device ${deviceId} failed: ${(e as Error).message}`),
    );
    tell?.({ kind: "revoked", user: name, deviceId });
    const closed = closeSessions(name, deviceId);
    log(`revoked device ${deviceId} of ${name}: ${closed} connection${closed === 1 ? "" : "s"} closed`);
  };
  // Login limits count the logins of every node (approximately: see LoginGuard.heard).
  const logins = new LoginGuard({ now, ...options.loginPolicy }, {
    announce: tell && ((login) => tell({ kind: "login", ...login })),
  });
  const stopHearing = bus.listen((note) => {
    if (note.kind === "journal" || note.kind === "share") hub.hear(note);
    else if (note.kind === "login") logins.heard(note);
    else if (note.kind === "gc" && note.phase === "start") void store.gcLock.pause();
    else if (note.kind === "gc") store.gcLock.generation++;
    else if (note.kind === "logout") logOutHere(note.user);
    else if (note.kind === "locks") {
      locks.hear(note.ns, note.change).catch((e) =>
        log(`cannot push a lock change of another node: ${(e as Error).message}`)
      );
    } else if (note.kind === "revoked") {
      const closed = closeSessions(note.user, note.deviceId);
      if (closed > 0) {
        log(
          `device ${note.deviceId} of ${note.user} was revoked on another node: ` +
            `${closed} connection${closed === 1 ? "" : "s"} closed`,
        );
      }
    }
  });
  // A collection here pauses the other nodes' uploads and commits (the advisory lock alone would let their
  // steady uploads starve it) and, once done, makes them forget what they cached about stored chunks.
  if (store.gcLock instanceof PgGcLock && tell) {
    store.gcLock.onCollect = () => tell({ kind: "gc", phase: "start" });
    store.gcLock.onCollected = () => tell({ kind: "gc", phase: "done" });
  }
  // Notes lost while the bus was away are caught up from the journal, as are any missed between checks; a
  // collection's end may be among them.
  const stopResume = bus.onResume(() => {
    store.gcLock.generation++;
    void hub.catchUpAll();
  });
  const stopCatchingUp = hub.startCatchingUp(CATCH_UP_MS);
  const stopCluster = async () => {
    stopHearing();
    stopResume();
    await stopCatchingUp();
    await bus.close();
  };
  const admin = await serveAdmin(
    options.dataDir,
    (request) =>
      runAdmin(store, request, {
        chunks,
        stats,
        onUserChanged: logOut,
        onDeviceRevoked: closeDevice,
        gc: gcOptions,
        quotaBytes: options.quotaBytes ?? null,
      }),
  );
  if (!admin) log("no admin socket on this system: stop the server before running filesync user …");
  // Unreferenced chunks are collected a while after start and then every few hours.
  const gcEveryMs = (options.gcIntervalHours ?? 6) * 3600_000;
  const gcOptions = (): GcOptions => ({ now: now(), retention });
  const runGc = () =>
    collectGarbage(store, chunks, gcOptions()).then(
      (r) =>
        log(
          `garbage collection: removed ${r.removedChunks} chunks, ${r.removedManifests} manifests, ` +
            `${r.removedVersions} versions, ${r.removedTrash} trash items, ${r.compactedEntries} journal entries`,
        ),
      (e) => log(`garbage collection failed: ${(e as Error).message}`),
    );
  const gcTimer = gcEveryMs > 0 ? setInterval(runGc, gcEveryMs) : undefined;
  const attackTimer = setInterval(() => attacks.flush(), 60_000);
  const stopSweeping = locks.startSweeping(log);
  const ctx = {
    locks,
    store,
    epoch: await store.journalEpoch(),
    chunks,
    hub,
    logins,
    passwordChecks: new CheckQueue({ concurrency: options.passwordChecks }),
    attacks,
    log,
    now,
    retention,
    loginTimeoutMs: options.loginTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    traffic,
    counters,
    maxFileBytes,
    quotaBytes: options.quotaBytes,
  };
  const caps = new ConnectionCaps({
    maxConnections: options.maxConnections,
    maxConnectionsPerAddress: options.maxConnectionsPerAddress,
  });
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
  let listener: TlsListener;
  try {
    listener = await listenTls({
      hostname: host,
      port: options.port,
      cert,
      key,
      alpnProtocols: [ALPN],
      handshakeTimeoutMs,
      admit: (address) => caps.admit(address),
      onGone: (address) => caps.release(address),
      onDropped: ({ address, remote, reason, message }) => {
        if (reason === "refused") {
          attacks.note(`connections:${address}`, `connection from ${address} refused: ${message}`);
        } else if (reason === "timeout") {
          attacks.note(`handshake:${address}`, `connection from ${remote} closed: ${message}`);
        } else attacks.note(`tls:${address}`, `TLS handshake with ${remote} failed: ${message}`);
      },
      onSecure: (conn) => {
        const remote = formatRemote(conn.remote.address, conn.remote.port);
        log(`connection from ${remote}`);
        const session = new Session(conn, remote, ctx);
        sessions.add(session);
        session.peer.closed.then(() => sessions.delete(session));
      },
    });
  } catch (error) {
    clearInterval(gcTimer);
    clearInterval(attackTimer);
    await stopSweeping();
    await stopCluster();
    admin?.close();
    await Deno.remove(adminSocketPath(options.dataDir)).catch(() => {});
    await closeMetadata(store);
    const code = (error as { code?: string }).code;
    const reason = code === "EADDRINUSE" ? "address already in use" : (error as Error).message;
    throw new UserError(`Cannot listen on ${host}:${options.port}: ${reason}`);
  }
  const addr = listener.addr;
  if (opened.encryption) log(`chunks encrypted at rest with ${opened.encryption}`);
  log(`listening on ${addr.hostname}:${addr.port}`);
  return {
    port: addr.port,
    hostname: addr.hostname,
    store,
    chunks,
    async close() {
      clearInterval(gcTimer);
      clearInterval(attackTimer);
      attacks.flush();
      listener.close();
      admin?.close();
      await Deno.remove(adminSocketPath(options.dataDir)).catch(() => {});
      for (const session of sessions) session.peer.close();
      await Promise.all([...sessions].map((s) => s.peer.closed));
      await stopSweeping();
      await stopCluster();
      await closeMetadata(store);
    },
  };
}
