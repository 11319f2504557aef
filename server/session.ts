// One client connection on the server: HELLO, authentication, then the sync ops, each checked and logged.
import { createHash } from "node:crypto";
import type { z } from "zod";
import { type Frame, MAX_FRAME_BYTES } from "../protocol/frame.ts";
import {
  type Change,
  type ChangeResult,
  commonEnds,
  DEVICE_REVOKED,
  encodeRows,
  FETCH_INLINE_BYTES,
  type FetchItemCode,
  FORBIDDEN_CODE,
  MANIFEST_ROW_BYTES,
  MAX_FETCH_BYTES,
  PROTOCOL_VERSION,
  Requests,
  RESYNC_CODE,
  SHARE_REFUSED_CODE,
  type WireDevice,
  type WireEntry,
  type WireNamespace,
} from "../protocol/messages.ts";
import { MAX_CHUNK_BYTES } from "../protocol/replies.ts";
import { type Duplex, type Reply, RpcError, RpcPeer } from "../protocol/rpc.ts";
import {
  type AttackLog,
  BusyError,
  checkPassword,
  CheckQueue,
  checkToken,
  issueToken,
  type LoginGuard,
  makeUser,
  tokenState,
} from "./auth.ts";
import { access, allows, type Need } from "./access.ts";
import type { ChunkStore } from "./chunk_store.ts";
import { ChunkDamagedError } from "./chunk_cipher.ts";
import type { CommitLimits } from "./commit_rules.ts";
import type { ServerCounters } from "./server_stats.ts";
import type { Hub } from "./hub.ts";
import { keptVersions, restore, trashList, versionList } from "./history.ts";
import { type DeviceCursor, resyncReason } from "./journal_check.ts";
import type { EntryRecord, MetadataStore, NamespaceRecord, RetentionPolicy } from "./metadata_store.ts";
import { DEFAULT_RETENTION } from "./retention.ts";
import { boundedMap } from "./bounded.ts";
import type { ShareChange } from "./hub.ts";
import { namespaceViews, planShare, planUnshare, type SharePlan, under, wireShare } from "./shares.ts";
import { describeHolder, type LockHolder } from "../protocol/locks.ts";
import { type LockEvent, LockService } from "./lock_service.ts";
import { wireLock, wireLocks } from "./lock_rules.ts";

/** The lock service of sessions whose context brings none: one per store, so they all see each other's. */
const STORE_LOCKS = new WeakMap<MetadataStore, LockService>();

/** Stands in for an unknown user during login so the password check takes the usual time. */
const DUMMY_USER = await makeUser("-", crypto.randomUUID());

/** Password checks of sessions whose context brings no queue of its own. */
const SHARED_CHECKS = new CheckQueue();

/** Failed or refused logins one connection may make before it is closed (as OpenSSH's MaxAuthTries). */
const MAX_LOGINS_PER_CONNECTION = 20;

/** Largest frame accepted before login: HELLO, LOGIN and AUTH are small, and nobody unknown may make the
 * server allocate much. */
export const PRELOGIN_FRAME_BYTES = 64 * 1024;

/** What a revoked device is told, on its open sessions and when it tries its token again. */
const REVOKED_MESSAGE = "This device was revoked on the server";

/** A file of one chunk up to this size is sent whole in the DOWNLOAD reply. */
const INLINE_CHUNK_BYTES = 64 * 1024;
/** Chunk sizes a session keeps for the GETs of the files it downloads (a 4 GiB file of 64 KiB chunks). */
const MAX_CHUNK_SIZES = 65_536;
/** What a data reply holds of the reply budget beside its data. */
const REPLY_OVERHEAD_BYTES = 1024;
/** Chunk reads of one FETCH at once (the S3 store has 16 connections; the disk reads overlap too). */
const FETCH_READS_IN_FLIGHT = 16;

/** What every session shares. */
export interface SessionContext {
  store: MetadataStore;
  chunks: ChunkStore;
  hub: Hub;
  /** Login limits, shared by every session. */
  logins: LoginGuard;
  /** Bounds the password checks running at once. @default one queue shared by the process */
  passwordChecks?: CheckQueue;
  /** Rate-limited log of refused logins and other attacks. @default every line to `log` */
  attacks?: AttackLog;
  log: (line: string) => void;
  /** Random id of the metadata store's journal, sent in HELLO and checked by MONITOR (unchecked when absent). */
  epoch?: string;
  /** Time allowed from connect to a successful login. @default 10000 */
  loginTimeoutMs?: number;
  /** Idle time after which the connection is dropped. @default 90000 */
  idleTimeoutMs?: number;
  /** The clock of history, trash and retention. @default Date.now */
  now?: () => number;
  /** What history and trash are kept. @default 30 days */
  retention?: RetentionPolicy;
  /** Bytes in and out per device name, for statistics. */
  traffic?: Map<string, { in: number; out: number }>;
  /** Largest file a commit may store, in bytes. @default no limit */
  maxFileBytes?: number;
  /** Most bytes of live files each user may hold. @default no limit */
  quotaBytes?: number;
  /** Locks: LOCK, UNLOCK, LOCKS and their pushes. @default one service per store, on `now` */
  locks?: LockService;
  /** Counters since start, for `filesync server status`. */
  counters?: ServerCounters;
}

type State = "new" | "hello" | "ready";

/** Serves one connection until it closes. */
export class Session {
  readonly peer: RpcPeer;
  #ctx: SessionContext;
  #remote: string;
  #state: State = "new";
  #user = "";
  #device = "";
  #deviceId = "";
  /**
   * Chunks the caller may reference that the server stores (checked once per session): their real size, or
   * null where it was not looked up yet.
   */
  #known = new Map<string, number | null>();
  #knownGeneration = 0;
  /**
   * The sizes the manifests of files this session downloads give their chunks, until each is asked for: a GET
   * then holds that much of the reply budget instead of a largest chunk's, so more GETs of small chunks overlap.
   */
  #expectedSizes = new Map<string, number>();
  /** The namespaces this session serves (the user's own and those shared with it), by id. */
  #namespaces = new Map<string, NamespaceRecord>();
  /** The journal subscriptions of MONITOR, by {@linkcode monitorKey} (namespace id and followed path). */
  #monitors = new Map<string, () => void>();
  /** The chunks of the shared parts of other users' namespaces, by namespace and parts, as of a journal seq. */
  #shareChunks = new Map<string, { seq: number; ids: Set<string> }>();
  /** Stops hearing share changes of the user (set at login). */
  #unwatchShares = () => {};
  /** Share changes are handled one after another, in the order they came. */
  #shareChain: Promise<void> = Promise.resolve();
  #loginBusy = false;
  #failedLogins = 0;
  /** When the connection was made (ms since 1970). */
  readonly connectedAt: number = Date.now();

  /** The peer's address and port. */
  get remote(): string {
    return this.#remote;
  }

  /** The logged-in device's name ("" before login). */
  get device(): string {
    return this.#device;
  }

  /** The logged-in user ("" before login). */
  get user(): string {
    return this.#user;
  }

  /** Starts serving the connection. */
  constructor(duplex: Duplex, remote: string, ctx: SessionContext) {
    this.#ctx = ctx;
    this.#remote = remote;
    if (ctx.counters) ctx.counters.sessions++;
    this.peer = new RpcPeer(duplex, {
      onRequest: (frame) => this.#handle(frame),
      maxFrameBytes: PRELOGIN_FRAME_BYTES,
      idleTimeoutMs: ctx.idleTimeoutMs ?? 90_000,
      onBytes: (direction, count) => {
        if (!ctx.traffic) return;
        const key = this.#device ? `${this.#user}@${this.#device}` : "(not logged in)";
        let counter = ctx.traffic.get(key);
        if (!counter) ctx.traffic.set(key, counter = { in: 0, out: 0 });
        counter[direction] += count;
      },
    });
    const loginTimer = setTimeout(() => {
      if (this.#state !== "ready") {
        this.peer.push({ push: "error", code: "timeout", error: "Login took too long" });
        this.peer.close(new RpcError("timeout", "login timeout"));
      }
    }, ctx.loginTimeoutMs ?? 10_000);
    this.peer.closed.then((reason) => {
      clearTimeout(loginTimer);
      for (const unsubscribe of this.#monitors.values()) unsubscribe();
      this.#monitors.clear();
      this.#unwatchShares();
      const who = this.#user ? `${this.#user}@${this.#device}` : remote;
      ctx.log(`disconnected ${who}${reason.code === "closed" ? "" : ` (${reason.message})`}`);
    });
  }

  #parse<K extends keyof typeof Requests>(
    op: K,
    message: Record<string, unknown>,
  ): z.infer<(typeof Requests)[K]> {
    const result = Requests[op].safeParse(message);
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new RpcError(
        "bad_request",
        `Invalid ${op}: ${issue.path.join(".") || "message"}: ${issue.message}`,
      );
    }
    return result.data as z.infer<(typeof Requests)[K]>;
  }

  async #handle(frame: Frame): Promise<Reply> {
    const op = frame.message.op as string;
    if (!Object.hasOwn(Requests, op)) throw new RpcError("unknown_op", `Unknown op "${op}"`);
    if (this.#state === "new" && op !== "HELLO") throw new RpcError("bad_request", "HELLO must come first");
    if (this.#state === "hello" && !["LOGIN", "AUTH", "PING"].includes(op)) {
      throw new RpcError("auth", "Log in first");
    }
    switch (op as keyof typeof Requests) {
      case "HELLO":
        return this.#hello(this.#parse("HELLO", frame.message));
      case "LOGIN":
        return await this.#login(this.#parse("LOGIN", frame.message));
      case "AUTH":
        return await this.#auth(this.#parse("AUTH", frame.message));
      case "PING":
        return {};
      case "CHANGES": {
        const { since, limit, ns: named, path: part } = this.#parse("CHANGES", frame.message);
        const ns = this.#target(named, "read", [part ?? ""]);
        const latest = await this.#ctx.store.latestSeq(ns);
        const compacted = await this.#ctx.store.getCompaction(ns);
        if (compacted && since < compacted.seq) {
          throw new RpcError(RESYNC_CODE, `The journal before ${compacted.seq} was compacted`, {
            reason: "expired",
            latest,
          });
        }
        const events = await this.#ctx.store.changesSince(ns, since, limit ?? 1000);
        return {
          body: { events: part === undefined ? events : events.filter((e) => under(part, e.path)), latest },
        };
      }
      case "MONITOR":
        return await this.#monitor(this.#parse("MONITOR", frame.message));
      case "HAVE": {
        const { hashes } = this.#parse("HAVE", frame.message);
        return { body: { missing: await this.#missingChunks(hashes) } };
      }
      case "PUT": {
        const { hash, ns } = this.#parse("PUT", frame.message);
        return await this.#put(this.#target(ns, "write"), hash, frame.data);
      }
      case "GET": {
        const { hash } = this.#parse("GET", frame.message);
        const size = this.#expectedSizes.get(hash);
        this.#expectedSizes.delete(hash);
        return await this.#withinBudget(
          () => this.#get(hash),
          size === undefined ? undefined : size + REPLY_OVERHEAD_BYTES,
        );
      }
      case "DOWNLOAD": {
        const { path, base, ns } = this.#parse("DOWNLOAD", frame.message);
        const target = this.#target(ns, "read", [path]);
        return await this.#withinBudget(() => this.#download(target, path, base));
      }
      case "COMMIT": {
        const { changes, ns } = this.#parse("COMMIT", frame.message);
        const paths = changes.flatMap((c) => c.op === "move" ? [c.from, c.path] : [c.path]);
        const target = this.#target(ns, "write", paths);
        this.#keepSharedItem(target, changes);
        return await this.#commit(target, changes, frame.data);
      }
      case "VERSIONS": {
        const { path, ns } = this.#parse("VERSIONS", frame.message);
        return await this.#versions(this.#target(ns, "read", [path]), path);
      }
      case "TRASH":
        return await this.#trash(this.#target(this.#parse("TRASH", frame.message).ns, "read", [""]));
      case "RESTORE": {
        const { ns, ...request } = this.#parse("RESTORE", frame.message);
        const paths = request.as === undefined ? [request.path] : [request.path, request.as];
        return await this.#restore(this.#target(ns, "write", paths), request);
      }
      case "DEVICES":
        this.#parse("DEVICES", frame.message);
        return await this.#devices();
      case "LOCK": {
        const { ns, ...request } = this.#parse("LOCK", frame.message);
        return await this.#lockOp(this.#target(ns, "write", [request.path]), request);
      }
      case "UNLOCK": {
        const { ns, ...request } = this.#parse("UNLOCK", frame.message);
        return await this.#unlockOp(this.#target(ns, "write", [request.path]), request);
      }
      case "LOCKS": {
        const { ns: named, path: part } = this.#parse("LOCKS", frame.message);
        const ns = this.#target(named, "read", [part ?? ""]);
        const live = (await this.#locks.live(ns)).filter((l) => part === undefined || under(part, l.path));
        return { body: { locks: wireLocks(live, this.#holder, this.#locks.now()) } };
      }
      case "SHARE":
        return await this.#share(this.#parse("SHARE", frame.message));
      case "UNSHARE":
        return await this.#unshare(this.#parse("UNSHARE", frame.message));
      case "SHARES":
        this.#parse("SHARES", frame.message);
        return await this.#shares();
      case "FETCH": {
        const { items } = this.#parse("FETCH", frame.message);
        return await this.#withinBudget(() => this.#fetch(items));
      }
    }
  }

  /** The logged-in user and device, as lock holders are named. */
  get #holder(): LockHolder {
    return { user: this.#user, deviceId: this.#deviceId, device: this.#device };
  }

  get #locks(): LockService {
    if (this.#ctx.locks) return this.#ctx.locks;
    let service = STORE_LOCKS.get(this.#ctx.store);
    if (!service) {
      STORE_LOCKS.set(this.#ctx.store, service = new LockService(this.#ctx.store, { now: this.#ctx.now }));
    }
    return service;
  }

  async #lockOp(ns: string, request: { path: string; minutes?: number }): Promise<Reply> {
    const who = this.#who(ns);
    const decided = await this.#locks.lock(ns, { ...request, holder: this.#holder });
    if (!decided.ok) {
      this.#ctx.log(`${who}: lock ${request.path} refused: ${decided.error}`);
      throw new RpcError(decided.code, decided.error, decided.lock ? { holder: holderOf(decided.lock) } : {});
    }
    const minutes = Math.round(decided.lock.leaseMs / 600) / 100;
    this.#ctx.log(
      `${who}: ${decided.renewed ? "renewed lock on" : "locked"} ${request.path} (${minutes} min)`,
    );
    return {
      body: { lock: wireLock(decided.lock, this.#holder, this.#locks.now()), renewed: decided.renewed },
    };
  }

  async #unlockOp(ns: string, request: { path: string; force?: boolean }): Promise<Reply> {
    const who = this.#who(ns);
    const decided = await this.#locks.unlock(ns, {
      path: request.path,
      holder: this.#holder,
      force: request.force === true,
      owner: access(this.#user, this.#namespaces.get(ns) ?? null) === "owner",
    });
    if (!decided.ok) {
      this.#ctx.log(`${who}: unlock ${request.path} refused: ${decided.error}`);
      throw new RpcError(decided.code, decided.error, decided.lock ? { holder: holderOf(decided.lock) } : {});
    }
    const forced = decided.released.deviceId !== this.#deviceId;
    this.#ctx.log(
      `${who}: unlocked ${request.path}${
        forced ? ` (forced; it was held by ${describeHolder(decided.released)})` : ""
      }`,
    );
    return { body: { released: wireLock(decided.released, this.#holder, this.#locks.now()) } };
  }

  /** Pushes a namespace's locks after a change (with `part`, a share's path: only the locks at or under it). */
  #pushLocks(ns: string, part: string | undefined, event: LockEvent): void {
    if (part !== undefined && !under(part, event.change.path)) return;
    const locks = part === undefined ? event.locks : event.locks.filter((l) => under(part, l.path));
    this.peer.push({
      push: "locks",
      ns,
      ...(part === undefined ? {} : { path: part }),
      locks: wireLocks(locks, this.#holder, this.#locks.now()),
      change: event.change,
    });
  }

  #hello(hello: { version: number; agent: string }): Reply {
    if (hello.version !== PROTOCOL_VERSION) {
      throw new RpcError(
        "version",
        `Protocol version ${hello.version} is not supported: this server speaks version ${PROTOCOL_VERSION}`,
      );
    }
    this.#state = "hello";
    return { body: { version: PROTOCOL_VERSION, server: "filesync", epoch: this.#ctx.epoch } };
  }

  async #login(login: { user: string; password: string; device: string }): Promise<Reply> {
    const address = this.#remote.replace(/:\d+$/, "");
    if (++this.#failedLogins > MAX_LOGINS_PER_CONNECTION) {
      this.peer.push({
        push: "error",
        code: "rate_limited",
        error: "Too many failed logins on this connection",
      });
      this.peer.close(new RpcError("rate_limited", "too many failed logins"));
      throw new RpcError("rate_limited", "Too many failed logins on this connection");
    }
    if (this.#loginBusy) {
      this.#noteAttack(
        `login:${address}`,
        `login refused from ${address}: several at once on one connection`,
      );
      throw new RpcError("rate_limited", "One login at a time on a connection: wait for the answer");
    }
    // Counted before the password is hashed, so pipelined and parallel attempts cannot slip past the limits.
    const decision = this.#ctx.logins.begin(login.user, address);
    if (!decision.ok) {
      const why = decision.reason === "user"
        ? "too many failed attempts for this user from new addresses"
        : "too many failed attempts";
      this.#noteAttack(
        `login:${login.user}@${address}`,
        `login refused for ${login.user} from ${address}: ${why}`,
      );
      throw new RpcError(
        "rate_limited",
        `Too many failed logins: try again in ${Math.ceil(decision.waitMs / 1000)} s`,
        { retryMs: decision.waitMs },
      );
    }
    this.#loginBusy = true;
    let user;
    try {
      user = await (this.#ctx.passwordChecks ?? SHARED_CHECKS).run(async () => {
        const found = await this.#ctx.store.getUser(login.user);
        // An unknown user costs the same hashing as a wrong password: timing does not reveal which names exist.
        return (await checkPassword(found ?? DUMMY_USER, login.password)) ? found : null;
      });
    } catch (error) {
      this.#ctx.logins.end(decision.ticket, "cancelled");
      if (!(error instanceof BusyError)) throw error;
      this.#noteAttack("login:busy", "login refused: too many password checks at once");
      throw new RpcError("busy", "The server is busy with other logins: try again in a few seconds");
    } finally {
      this.#loginBusy = false;
    }
    if (!user) {
      this.#ctx.logins.end(decision.ticket, "failure");
      this.#noteAttack(
        `failed:${login.user}@${address}`,
        `login failed for ${login.user} from ${this.#remote}`,
      );
      throw new RpcError("auth", "Wrong user name or password");
    }
    this.#ctx.logins.end(decision.ticket, "success");
    const { token, record } = await issueToken(this.#ctx.store, user.name, login.device);
    const namespaces = await this.#ctx.store.namespacesOf(record.user);
    this.#ready(record.user, record.device, record.deviceId, "login", namespaces);
    return {
      body: {
        token,
        deviceId: record.deviceId,
        user: record.user,
        expires: record.expires,
        namespaces: this.#wireNamespaces(),
      },
    };
  }

  #noteAttack(key: string, line: string): void {
    if (this.#ctx.attacks) this.#ctx.attacks.note(key, line);
    else this.#ctx.log(line);
  }

  async #auth({ token }: { token: string }): Promise<Reply> {
    const check = await checkToken(this.#ctx.store, token);
    if (!check.ok) {
      this.#ctx.log(`token refused from ${this.#remote}: ${check.reason}`);
      if (check.reason === "revoked") {
        throw new RpcError("auth_token", REVOKED_MESSAGE, { reason: DEVICE_REVOKED });
      }
      throw new RpcError(
        "auth_token",
        check.reason === "expired" ? "Device token expired" : "Device token unknown or revoked",
      );
    }
    const { record } = check;
    const namespaces = await this.#ctx.store.namespacesOf(record.user);
    this.#ready(record.user, record.device, record.deviceId, "token", namespaces);
    // A revocation that ran between the check and #ready looked for this session before it had its device id:
    // look again now that it has one (a revocation from here on finds it).
    const state = await tokenState(this.#ctx.store, token);
    if (state === "revoked") {
      this.revoke();
      throw new RpcError("auth_token", REVOKED_MESSAGE, { reason: DEVICE_REVOKED });
    }
    if (state === "unknown") {
      // Gone meanwhile with its user, or by a password change (whose logout looked for sessions too early).
      this.peer.close(new RpcError("auth_token", "logged out"));
      throw new RpcError("auth_token", "Device token unknown or revoked");
    }
    return {
      body: {
        user: record.user,
        deviceId: record.deviceId,
        device: record.device,
        namespaces: this.#wireNamespaces(),
      },
    };
  }

  /** The logged-in device's id ("" before login). */
  get deviceId(): string {
    return this.#deviceId;
  }

  /** Tells the device that it was revoked and closes the connection at once. */
  revoke(): void {
    this.peer.push({ push: "error", code: "auth_token", reason: DEVICE_REVOKED, error: REVOKED_MESSAGE });
    this.peer.close(new RpcError("auth_token", "device revoked"));
  }

  async #devices(): Promise<Reply> {
    const devices = await this.#ctx.store.listDevices(this.#user);
    return {
      body: {
        devices: devices.map((d): WireDevice => d.deviceId === this.#deviceId ? { ...d, current: true } : d),
      },
    };
  }

  /** Remembers the sizes of a downloaded file's chunks for its GETs (the latest {@linkcode MAX_CHUNK_SIZES}). */
  #expectChunks(rows: readonly { id: string; size: number }[]): void {
    for (const row of rows.slice(-MAX_CHUNK_SIZES)) {
      this.#expectedSizes.delete(row.id);
      this.#expectedSizes.set(row.id, Math.min(row.size, MAX_CHUNK_BYTES));
    }
    for (const id of this.#expectedSizes.keys()) {
      if (this.#expectedSizes.size <= MAX_CHUNK_SIZES) break;
      this.#expectedSizes.delete(id); // the oldest first
    }
  }

  /**
   * Runs a handler whose reply carries data inside the connection's reply budget: a chunk's worth (`bytes`
   * when the chunk's size is known, else a largest chunk's) is held before the data is read and kept, at its
   * real size, until the reply is written. A client that sends requests without reading the replies thus stops
   * being read from, instead of growing the server.
   */
  async #withinBudget(run: () => Promise<Reply>, bytes = MAX_CHUNK_BYTES): Promise<Reply> {
    const reservation = await this.peer.reserve(bytes);
    try {
      const reply = await run();
      if (this.#ctx.counters) this.#ctx.counters.downloadedBytes += reply.data?.length ?? 0;
      reservation.resize((reply.data?.length ?? 0) + REPLY_OVERHEAD_BYTES);
      return { ...reply, onSent: () => reservation.release() };
    } catch (error) {
      reservation.release();
      throw error;
    }
  }

  #ready(user: string, device: string, deviceId: string, how: string, namespaces: NamespaceRecord[]): void {
    this.#state = "ready";
    this.peer.maxFrameBytes = MAX_FRAME_BYTES;
    this.#user = user;
    this.#device = device;
    this.#deviceId = deviceId;
    this.#namespaces = new Map(namespaces.map((n) => [n.id, n]));
    this.#unwatchShares();
    this.#unwatchShares = this.#ctx.hub.watchShares(user, (change) => {
      this.#shareChain = this.#shareChain.then(() => this.#onShareChange(change)).catch((error) => {
        this.#ctx.log(`${user}@${device}: cannot apply a share change: ${(error as Error).message}`);
      });
    });
    this.#ctx.log(`login ${user} on device "${device}" (${deviceId}) from ${this.#remote} by ${how}`);
  }

  /** The namespaces this session serves, as LOGIN and AUTH list them (the own one at the folder root). */
  #wireNamespaces(): WireNamespace[] {
    return namespaceViews(this.#user, [...this.#namespaces.values()]);
  }

  /**
   * The namespace an op acts on, checked before anything else: `named` (absent: the caller's own namespace, as
   * clients from before namespaces send) must be one this session serves, and the caller's role there must allow
   * `need` at each of `paths` ("" for the whole namespace; none: anywhere in it). A refusal names the namespace
   * and changes nothing.
   */
  #target(named: string | undefined, need: Need, paths: string[] = []): string {
    const id = named ?? this.#user;
    const record = this.#namespaces.get(id) ?? null;
    const checks: (string | undefined)[] = paths.length > 0 ? paths : [undefined];
    for (const path of checks) {
      const role = access(this.#user, record, path);
      if (allows(role, need)) continue;
      const where = path ? ` at "${path}"` : "";
      this.#ctx.log(`${this.#user}@${this.#device}: refused ${need} in namespace "${id}"${where}`);
      throw new RpcError(
        FORBIDDEN_CODE,
        role === null
          ? `No access to namespace "${id}"${where}`
          : `Namespace "${id}" is read-only for you${where}`,
        { ns: id },
      );
    }
    return id;
  }

  /** The namespaces whose chunks the caller may learn about: those it can read as a whole. */
  get #readable(): string[] {
    return [...this.#namespaces.values()].filter((n) => access(this.#user, n, "") !== null).map((n) => n.id);
  }

  /** The tag of the journal entry at `seq` (undefined if none is kept or it has no tag). */
  async #tagAt(ns: string, seq: number): Promise<string | undefined> {
    if (seq <= 0) return undefined;
    const [entry] = await this.#ctx.store.changesSince(ns, seq - 1, 1);
    if (entry?.rev === seq) return entry.tag;
    const compacted = await this.#ctx.store.getCompaction(ns);
    return compacted?.seq === seq ? compacted.tag : undefined;
  }

  async #monitor(request: DeviceCursor & { ns?: string; path?: string }): Promise<Reply> {
    const ns = this.#target(request.ns, "read", [request.path ?? ""]);
    const key = monitorKey(ns, request.path);
    if (this.#monitors.has(key)) {
      throw new RpcError(
        "bad_request",
        `Already monitoring namespace "${ns}"${request.path === undefined ? "" : ` at "${request.path}"`}`,
      );
    }
    // Held from here, so two MONITORs of one namespace sent at once cannot both subscribe.
    this.#monitors.set(key, () => {});
    try {
      return await this.#monitorNamespace(ns, request.path, request);
    } catch (error) {
      this.#monitors.get(key)?.();
      this.#monitors.delete(key);
      throw error;
    } finally {
      // Closed while it subscribed: the close already unsubscribed what there was then, this goes too.
      if (this.peer.isClosed) {
        this.#monitors.get(key)?.();
        this.#monitors.delete(key);
      }
    }
  }

  /**
   * Streams a namespace's journal from the device's cursor, then live. With `part` (a share's path) only the
   * entries at or under it are sent; the cursor is still the namespace's sequence number.
   */
  async #monitorNamespace(ns: string, part: string | undefined, request: DeviceCursor): Promise<Reply> {
    const key = monitorKey(ns, part);
    const inPart = (e: { path: string }) => part === undefined || under(part, e.path);
    const where = part === undefined ? {} : { path: part };
    const { since } = request;
    const latest = await this.#ctx.store.latestSeq(ns);
    const reason = resyncReason(request, {
      epoch: this.#ctx.epoch,
      latest,
      compacted: await this.#ctx.store.getCompaction(ns),
      tagAtSince: since > 0 && since <= latest ? await this.#tagAt(ns, since) : undefined,
    });
    if (reason !== null) {
      this.#ctx.log(
        `${this.#user}@${this.#device}: cursor ${since} of namespace "${ns}" is not in its journal (${reason}): resync`,
      );
      throw new RpcError(RESYNC_CODE, `Cursor ${since} does not belong to the server's journal (${reason})`, {
        reason,
        latest,
      });
    }
    let live = false;
    let cursor = since;
    const buffered: WireEntry[] = [];
    const send = (events: WireEntry[]) => {
      const fresh = events.filter((e) => e.rev > cursor);
      if (fresh.length === 0) return;
      cursor = fresh[fresh.length - 1].rev;
      const shown = fresh.filter(inPart);
      if (shown.length > 0) this.peer.push({ push: "events", ns, ...where, events: shown });
    };
    const unsubscribeJournal = this.#ctx.hub.subscribe(
      ns,
      (events) => live ? send(events) : buffered.push(...events),
      // Where this session starts reading the journal itself (with other nodes, the hub goes on from there).
      { from: since === 0 ? latest : since },
    );
    // Lock changes go out as they happen (the device asks LOCKS for the locks there are now).
    const unsubscribeLocks = this.#locks.subscribe(ns, (event) => this.#pushLocks(ns, part, event));
    this.#monitors.set(key, () => {
      unsubscribeJournal();
      unsubscribeLocks();
    });
    if (since === 0 && latest > 0) {
      // A new device gets the live entries instead of the whole history, then the journal from that point.
      // Commits made while listing are in the journal after `latest` and are replayed on top.
      const latestTag = await this.#tagAt(ns, latest);
      let page: WireEntry[] = [];
      let first = true;
      const flush = async (last: boolean) => {
        this.peer.push({
          push: "snapshot",
          ns,
          ...where,
          entries: page,
          first,
          last,
          cursor: latest,
          tag: latestTag,
        });
        first = false;
        page = [];
        await this.peer.drain();
      };
      for await (const entry of this.#ctx.store.listEntries(ns)) {
        if (!inPart(entry)) continue;
        page.push(wireOf(entry));
        if (page.length >= 1000) await flush(false);
      }
      await flush(true);
      cursor = latest;
    }
    while (true) {
      const page = await this.#ctx.store.changesSince(ns, cursor, 1000);
      if (page.length === 0) break;
      send(page);
      await this.peer.drain();
    }
    send(buffered);
    live = true;
    return { body: { cursor } };
  }

  async #missingChunks(ids: string[]): Promise<string[]> {
    if (this.#knownGeneration !== this.#ctx.store.gcLock.generation) {
      // A garbage collection ran: what this session knew about stored chunks may be stale.
      this.#known.clear();
      this.#knownGeneration = this.#ctx.store.gcLock.generation;
    }
    const unknown = ids.filter((id) => !this.#known.has(id));
    if (unknown.length === 0) return [];
    const referenced = new Set<string>();
    for (const ns of this.#readable) {
      const left = unknown.filter((id) => !referenced.has(id));
      if (left.length === 0) break;
      for (const id of await this.#ctx.store.referencedChunks(ns, left)) referenced.add(id);
    }
    const left = unknown.filter((id) => !referenced.has(id));
    if (left.length > 0) { for (const id of await this.#sharedChunks(left)) referenced.add(id); }
    const missing: string[] = [];
    for (const id of unknown) {
      // Only chunks of namespaces the caller reads as a whole are looked up at all: nothing here depends on
      // data the caller cannot read.
      const size = referenced.has(id) ? await this.#ctx.chunks.size(id) : null;
      if (size !== null) this.#known.set(id, size);
      else missing.push(id);
    }
    return missing;
  }

  /**
   * Which of `ids` the files the caller sees through shares of a part of a namespace (not readable as a whole)
   * are made of: only those chunks, so a grantee learns nothing about the owner's other files.
   */
  async #sharedChunks(ids: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (const n of this.#namespaces.values()) {
      if (access(this.#user, n, "") !== null) continue;
      const parts = (n.grants ?? []).filter((g) => g.user === this.#user && g.path).map((g) => g.path!);
      if (parts.length === 0) continue;
      const chunks = await this.#chunksUnder(n.id, parts);
      for (const id of ids) if (chunks.has(id)) found.add(id);
      if (found.size === ids.length) break;
    }
    return found;
  }

  /** The chunks of the live files under `parts` of a namespace, listed again only after the namespace changed. */
  async #chunksUnder(ns: string, parts: string[]): Promise<Set<string>> {
    const seq = await this.#ctx.store.latestSeq(ns);
    const key = `${ns}\u0000${parts.join("\u0000")}`;
    const cached = this.#shareChunks.get(key);
    if (cached?.seq === seq) return cached.ids;
    const ids = new Set<string>();
    for await (const entry of this.#ctx.store.listEntries(ns)) {
      if (entry.kind !== "file" || !entry.hash || !parts.some((p) => under(p, entry.path))) continue;
      for (const row of await this.#ctx.store.getManifest(entry.hash) ?? []) ids.add(row.id);
    }
    this.#shareChunks.set(key, { seq, ids });
    return ids;
  }

  /** The real sizes of those chunks the caller may reference (absent: missing), for the commit's row check. */
  async #chunkSizes(ids: string[]): Promise<Map<string, number>> {
    const missing = new Set(await this.#missingChunks(ids));
    const sizes = new Map<string, number>();
    for (const id of ids) {
      if (missing.has(id)) continue;
      const size = this.#known.get(id) ?? await this.#ctx.chunks.size(id);
      if (size === null) continue;
      this.#known.set(id, size);
      sizes.set(id, size);
    }
    return sizes;
  }

  async #put(ns: string, id: string, data: Uint8Array | undefined): Promise<Reply> {
    if (!data) throw new RpcError("bad_request", "PUT carries no data");
    if (data.length > MAX_CHUNK_BYTES) {
      throw new RpcError("too_large", `Chunk of ${data.length} bytes exceeds ${MAX_CHUNK_BYTES}`);
    }
    const actual = createHash("sha256").update(data).digest("hex");
    if (actual !== id) {
      throw new RpcError("bad_hash", `Chunk data does not match its hash ${id.slice(0, 12)}`);
    }
    return await this.#ctx.store.gcLock.shared(() => this.#store(ns, id, data));
  }

  async #store(ns: string, id: string, data: Uint8Array): Promise<Reply> {
    try {
      await this.#ctx.chunks.put(id, data);
    } catch (error) {
      this.#ctx.log(`cannot store chunk ${id.slice(0, 12)}: ${(error as Error).message}`);
      if (/No space|ENOSPC|os error 28/i.test(String(error))) {
        throw new RpcError("no_space", "The server is out of disk space");
      }
      throw new RpcError("storage", "The server could not store the chunk");
    }
    // Durable before the reply, so a chunk acknowledged once is never asked for again after a crash; the
    // references of concurrent PUTs share one KV write (group commit).
    await this.#ctx.store.addPendingChunk(ns, id);
    this.#known.set(id, data.length);
    if (this.#ctx.counters) this.#ctx.counters.uploadedBytes += data.length;
    return {};
  }

  async #get(id: string): Promise<Reply> {
    if ((await this.#missingChunks([id])).length > 0) {
      throw new RpcError("not_found", `No chunk ${id.slice(0, 12)}`);
    }
    const data = await this.#readChunk(id);
    if (!data) throw new RpcError("not_found", `No chunk ${id.slice(0, 12)}`);
    return { data };
  }

  /** A stored chunk's bytes (null if missing); a damaged stored copy is a "storage" error, logged once here. */
  async #readChunk(id: string): Promise<Uint8Array | null> {
    try {
      return await this.#ctx.chunks.get(id);
    } catch (error) {
      if (!(error instanceof ChunkDamagedError)) throw error;
      this.#ctx.log(`${error.message}: run "filesync server fsck"`);
      throw new RpcError("storage", `The server's copy of chunk ${id.slice(0, 12)} is damaged`);
    }
  }

  async #download(ns: string, path: string, base: string | undefined): Promise<Reply> {
    const found = await this.#ctx.store.getEntry(ns, path);
    if (!found || found.kind !== "file") throw new RpcError("not_found", `No file "${path}"`);
    const entry = wireOf(found);
    const rows = await this.#ctx.store.getManifest(entry.hash);
    if (!rows) throw new RpcError("storage", `Manifest of "${path}" is missing`);
    for (const row of rows) if (!this.#known.has(row.id)) this.#known.set(row.id, null);
    this.#expectChunks(rows);
    const baseRows = base && base !== entry.hash && await this.#keeps(ns, path, base)
      ? await this.#ctx.store.getManifest(base)
      : null;
    if (baseRows) {
      // Only the rows between the common head and tail travel; the client has the rest.
      const { head, tail } = commonEnds(baseRows, rows);
      const from = { hash: base, head, tail };
      return { body: { entry, from }, data: encodeRows(rows.slice(head, rows.length - tail)) };
    }
    if (rows.length === 1 && rows[0].size <= INLINE_CHUNK_BYTES) {
      // A small file's only chunk travels with its manifest: one round trip instead of two.
      const chunk = await this.#readChunk(rows[0].id);
      if (chunk) {
        const data = new Uint8Array(MANIFEST_ROW_BYTES + chunk.length);
        data.set(encodeRows(rows));
        data.set(chunk, MANIFEST_ROW_BYTES);
        return { body: { entry, inline: 1 }, data };
      }
    }
    return { body: { entry }, data: encodeRows(rows) };
  }

  /**
   * FETCH: each item's file with its bytes when it is at most one chunk of {@linkcode FETCH_INLINE_BYTES} and the
   * reply's bytes stay within {@linkcode MAX_FETCH_BYTES}, else a code. Access is checked per item as DOWNLOAD
   * checks it: a refused item says "forbidden" and nothing of the file (not even whether it exists).
   */
  async #fetch(items: { path: string; ns?: string; rev: number }[]): Promise<Reply> {
    const answers: Record<string, unknown>[] = [];
    const parts: Uint8Array[] = [];
    const refused: string[] = [];
    let total = 0;
    // The reads overlap: every entry in one read per namespace, the manifests of those that may go inline in
    // one, and their chunks a few at a time ahead of the answers; the answers below are then made in item order
    // exactly as one read after another would make them.
    const targets = items.map((item) => this.#readableAt(item.ns, item.path));
    const found = await this.#entriesAt(items.map((item) => item.path), targets);
    const small = items.map((item, i) => {
      const record = found[i];
      if (!record || record.kind !== "file") return null;
      const entry = wireOf(record);
      return entry.rev === item.rev && entry.size <= FETCH_INLINE_BYTES ? entry : null;
    });
    const hashes = [...new Set(small.flatMap((entry) => entry ? [entry.hash] : []))];
    const got = await this.#ctx.store.getManifests(hashes);
    const manifests = new Map(hashes.map((hash, i) => [hash, got[i]]));
    const chunkOf = (i: number) => {
      const rows = manifests.get(small[i]!.hash);
      return rows?.length === 1 ? rows[0] : null;
    };
    // Read ahead only what fits the reply if every item before it does (the usual case, and an exact one then).
    const ahead: number[] = [];
    let fits = 0;
    for (const [i, entry] of small.entries()) {
      if (!entry || fits + entry.size > MAX_FETCH_BYTES || !chunkOf(i)) continue;
      ahead.push(i);
      fits += entry.size;
    }
    // A damaged or unreadable chunk is "not_inline": DOWNLOAD reports it.
    const readChunk = (i: number) => this.#readChunk(chunkOf(i)!.id).catch(() => null);
    const started = boundedMap(ahead, FETCH_READS_IN_FLIGHT, readChunk);
    const reads = new Map(ahead.map((index, k) => [index, started[k]]));
    for (const [i, item] of items.entries()) {
      const asked = item.ns === undefined ? { path: item.path } : { path: item.path, ns: item.ns };
      const answer = (code: FetchItemCode) => answers.push({ ...asked, code });
      if (targets[i] === null) {
        refused.push(`"${item.ns ?? this.#user}" at "${item.path}"`);
        answer("forbidden");
        continue;
      }
      const record = found[i];
      if (!record || record.kind !== "file") {
        answer("not_found");
        continue;
      }
      const entry = wireOf(record);
      if (entry.rev !== item.rev) {
        answer("stale");
        continue;
      }
      if (entry.size > FETCH_INLINE_BYTES || total + entry.size > MAX_FETCH_BYTES) {
        answer("not_inline");
        continue;
      }
      const rows = manifests.get(entry.hash);
      if (!rows || rows.length > 1) {
        answer("not_inline"); // DOWNLOAD says what is wrong with a missing manifest
        continue;
      }
      let chunk: Uint8Array | null = new Uint8Array();
      if (rows.length === 1) {
        this.#known.set(rows[0].id, this.#known.get(rows[0].id) ?? null);
        chunk = await (reads.get(i) ?? readChunk(i));
      }
      if (!chunk || chunk.length !== entry.size) {
        answer("not_inline");
        continue;
      }
      answers.push({ ...asked, entry, at: total });
      parts.push(chunk);
      total += chunk.length;
    }
    if (refused.length > 0) {
      // One line per request, however many items it was refused: a FETCH cannot flood the log.
      const more = refused.length > 1 ? ` and ${refused.length - 1} more` : "";
      this.#ctx.log(`${this.#user}@${this.#device}: refused read in namespace ${refused[0]}${more}`);
    }
    const data = new Uint8Array(total);
    let at = 0;
    for (const part of parts) {
      data.set(part, at);
      at += part.length;
    }
    return { body: { items: answers }, data };
  }

  /** The entries at `paths` in their namespaces (null: none, or not readable), in one read per namespace. */
  async #entriesAt(paths: string[], targets: (string | null)[]): Promise<(EntryRecord | null)[]> {
    const byNs = new Map<string, number[]>();
    targets.forEach((ns, i) => {
      if (ns === null) return;
      const indices = byNs.get(ns);
      if (indices) indices.push(i);
      else byNs.set(ns, [i]);
    });
    const found: (EntryRecord | null)[] = paths.map(() => null);
    await Promise.all([...byNs].map(async ([ns, indices]) => {
      const entries = await this.#ctx.store.getEntries(ns, indices.map((i) => paths[i]));
      indices.forEach((index, j) => found[index] = entries[j]);
    }));
    return found;
  }

  /**
   * The namespace of a FETCH item when the caller may read `path` there (as `#target` decides for DOWNLOAD),
   * else null.
   */
  #readableAt(named: string | undefined, path: string): string | null {
    const id = named ?? this.#user;
    return allows(access(this.#user, this.#namespaces.get(id) ?? null, path), "read") ? id : null;
  }

  /**
   * Whether the namespace keeps a version of `path` with this hash. A DOWNLOAD's base is honoured only then: the
   * answer depends on the history of that path alone (which the caller may read), so a base can never tell
   * whether some other user stores that content (an unknown base gets the full download, as a random hash does).
   */
  async #keeps(ns: string, path: string, hash: string): Promise<boolean> {
    const versions = await this.#ctx.store.listVersions(ns, path);
    return versions.some((v) => v.hash === hash);
  }

  /**
   * The limits of a commit to a namespace now: its owner's own quota (read each time, so a change applies at
   * once) or the server's.
   */
  async #limits(ns: string): Promise<CommitLimits> {
    const owner = this.#namespaces.get(ns)?.owner ?? this.#user;
    const user = await this.#ctx.store.getUser(owner);
    const quota = user && "quota" in user ? user.quota ?? undefined : this.#ctx.quotaBytes;
    return { maxChunkBytes: MAX_CHUNK_BYTES, maxFileBytes: this.#ctx.maxFileBytes, quotaBytes: quota };
  }

  async #commit(ns: string, changes: Change[], data: Uint8Array | undefined): Promise<Reply> {
    const { results, journal } = await this.#ctx.store.commit(ns, {
      device: this.#device,
      changes,
      rows: data ?? new Uint8Array(),
      checkChunks: (ids) => this.#chunkSizes(ids),
      syncChunks: (ids) => this.#ctx.chunks.sync(ids),
      limits: await this.#limits(ns),
      holder: this.#holder,
    });
    this.#logCommit(ns, changes, results);
    if (this.#ctx.counters) this.#ctx.counters.commits += results.filter((r) => r.ok).length;
    this.#ctx.hub.publish(ns, journal);
    return { body: { results } };
  }

  get #now(): number {
    return (this.#ctx.now ?? Date.now)();
  }

  get #retention(): RetentionPolicy {
    return this.#ctx.retention ?? DEFAULT_RETENTION;
  }

  async #versions(ns: string, path: string): Promise<Reply> {
    const store = this.#ctx.store;
    const [entry, versions, trash] = await Promise.all([
      store.getEntry(ns, path),
      store.listVersions(ns, path),
      store.listTrash(ns),
    ]);
    const { kept } = keptVersions(versions, trash.filter((t) => t.path === path), this.#retention, this.#now);
    const list = versionList(entry, kept);
    if (list.length === 0) {
      if (entry) throw new RpcError("not_found", `"${path}" is a folder: folders have no versions`);
      throw new RpcError("not_found", `No file "${path}" in the history`);
    }
    return { body: { versions: list } };
  }

  async #trash(ns: string): Promise<Reply> {
    const store = this.#ctx.store;
    const trash = await store.listTrash(ns);
    const paths = [...new Set(trash.map((t) => t.path))];
    const existing = new Set<string>();
    for (let i = 0; i < paths.length; i += 16) {
      await Promise.all(
        paths.slice(i, i + 16).map(async (p) => {
          if (await store.getEntry(ns, p)) existing.add(p);
        }),
      );
    }
    return { body: { items: trashList(trash, this.#retention, this.#now, (p) => existing.has(p)) } };
  }

  async #restore(ns: string, request: { path: string; version?: string; as?: string }): Promise<Reply> {
    const who = this.#who(ns);
    let result;
    try {
      result = await restore({
        store: this.#ctx.store,
        ns,
        device: this.#device,
        ...request,
        policy: this.#retention,
        now: this.#now,
        limits: await this.#limits(ns),
        holder: this.#holder,
        chunkSizes: async (ids) => {
          const sizes = new Map<string, number>();
          for (const id of ids) {
            const size = await this.#ctx.chunks.size(id);
            if (size !== null) sizes.set(id, size);
          }
          return sizes;
        },
      });
    } catch (error) {
      if (error instanceof RpcError) {
        this.#ctx.log(`${who}: restore ${request.path} refused: ${error.message}`);
      }
      throw error;
    }
    const { outcome, skipped } = result;
    const last = outcome.journal[outcome.journal.length - 1];
    this.#ctx.log(
      `${who}: restore ${request.path} version ${result.version}` +
        (result.path !== request.path ? ` as ${result.path}` : "") +
        ` (${outcome.journal.length} journal entries${last ? `, rev ${last.rev}` : ""}` +
        (skipped.length > 0 ? `, ${skipped.length} paths skipped` : "") + ")",
    );
    this.#ctx.hub.publish(ns, outcome.journal);
    return {
      body: {
        path: result.path,
        kind: result.kind,
        version: result.version,
        entries: outcome.journal,
        skipped,
      },
    };
  }

  /**
   * Refuses a grantee's delete or rename of the shared item itself (what it was given is the owner's: the owner
   * deletes it, the grantee leaves the share with UNSHARE).
   */
  #keepSharedItem(ns: string, changes: Change[]): void {
    const record = this.#namespaces.get(ns);
    if (!record || record.owner === this.#user) return;
    const roots = new Set(
      (record.grants ?? []).filter((g) => g.user === this.#user).map((g) => g.path ?? ""),
    );
    for (const c of changes) {
      const gone = c.op === "delete" ? c.path : c.op === "move" ? c.from : null;
      if (gone === null || !roots.has(gone)) continue;
      throw new RpcError(
        FORBIDDEN_CODE,
        `"${gone}" is shared with you by ${record.owner}: only the owner deletes or renames it`,
        { ns },
      );
    }
  }

  async #share(
    request: { ns?: string; path: string; with: string; access: "read" | "write" },
  ): Promise<Reply> {
    const store = this.#ctx.store;
    const id = request.ns ?? this.#user;
    if (access(this.#user, this.#namespaces.get(id) ?? null, request.path) === null) {
      throw new RpcError(FORBIDDEN_CODE, `No access to namespace "${id}" at "${request.path}"`, { ns: id });
    }
    const [grantee, entry, taken] = await Promise.all([
      store.getUser(request.with),
      store.getEntry(id, request.path),
      this.#takenNames(request.with),
    ]);
    let plan: SharePlan | null = null;
    const record = await store.updateGrants(id, (grants) => {
      const namespace = { ...this.#namespaces.get(id)!, grants };
      plan = planShare({
        namespace,
        caller: this.#user,
        path: request.path,
        user: request.with,
        access: request.access,
        userExists: grantee !== null,
        pathExists: entry !== null,
        taken,
        now: this.#now,
      });
      return plan.ok ? plan.grants : grants;
    });
    const outcome = plan as SharePlan | null;
    if (!record || !outcome) throw new RpcError(FORBIDDEN_CODE, `No access to namespace "${id}"`, { ns: id });
    if (!outcome.ok) {
      this.#ctx.log(`${this.#who(id)}: share ${request.path} with ${request.with} refused: ${outcome.error}`);
      const code = outcome.code === "refused" ? SHARE_REFUSED_CODE : outcome.code;
      throw new RpcError(code, outcome.error, { ns: id });
    }
    this.#namespaces.set(id, record);
    const share = wireShare(record, outcome.grant);
    if (outcome.changed !== "same") {
      this.#ctx.log(`${this.#who(id)}: share ${request.path} with ${request.with} (${request.access})`);
      this.#ctx.hub.shareChanged({ change: outcome.changed === "new" ? "new" : "access", share });
    }
    return { body: { share, changed: outcome.changed } };
  }

  /** Top-level names the user's devices already show (own files, mounts of shares), lower case. */
  async #takenNames(user: string): Promise<Set<string>> {
    const taken = new Set<string>();
    if (!(await this.#ctx.store.getUser(user))) return taken;
    for await (const entry of this.#ctx.store.listEntries(user)) {
      if (!entry.path.includes("/")) taken.add(entry.path.toLowerCase());
    }
    for (const view of namespaceViews(user, await this.#ctx.store.namespacesOf(user))) {
      if (view.mount !== "") taken.add(view.mount.toLowerCase());
    }
    return taken;
  }

  /** UNSHARE: the owner takes back grants of a path; a grantee may leave a share (its own grant only). */
  async #unshare(request: { ns?: string; path: string; with?: string }): Promise<Reply> {
    const id = request.ns ?? this.#user;
    const known = this.#namespaces.get(id);
    if (!known) throw new RpcError(FORBIDDEN_CODE, `No access to namespace "${id}"`, { ns: id });
    const owner = known.owner === this.#user;
    if (!owner && request.with !== undefined && request.with !== this.#user) {
      throw new RpcError(
        FORBIDDEN_CODE,
        `Cannot unshare "${request.path}" for ${request.with}: it is shared with you by ${known.owner}`,
        { ns: id },
      );
    }
    const user = owner ? request.with : this.#user;
    let removed: ReturnType<typeof planUnshare>["removed"] = [];
    const record = await this.#ctx.store.updateGrants(id, (grants) => {
      const plan = planUnshare(grants, request.path, user);
      removed = plan.removed;
      return plan.grants;
    });
    if (!record) throw new RpcError(FORBIDDEN_CODE, `No access to namespace "${id}"`, { ns: id });
    if (removed.length === 0) {
      throw new RpcError(
        SHARE_REFUSED_CODE,
        `"${request.path}" is not shared${user === undefined ? "" : ` with ${user}`}`,
        { ns: id },
      );
    }
    const shares = removed.map((g) => wireShare(record, g));
    this.#namespaces.set(id, record);
    for (const share of shares) {
      this.#ctx.log(`${this.#who(id)}: unshare ${share.path} with ${share.user}`);
      this.#ctx.hub.shareChanged({ change: "gone", share });
    }
    return { body: { removed: shares } };
  }

  async #shares(): Promise<Reply> {
    const records = await this.#ctx.store.namespacesOf(this.#user);
    // Grants of a path (what SHARE makes); a grant of a whole namespace is no share of a file or folder.
    const shared = (n: NamespaceRecord) => (n.grants ?? []).filter((g) => g.path);
    const mine = records.filter((n) => n.owner === this.#user).flatMap((n) =>
      shared(n).map((g) => wireShare(n, g))
    );
    const withMe = records.filter((n) => n.owner !== this.#user)
      .flatMap((n) => shared(n).filter((g) => g.user === this.#user).map((g) => wireShare(n, g)));
    return { body: { mine, withMe } };
  }

  /**
   * A share of this user arrived, changed access or went: the session serves the new set of namespaces at once
   * (a MONITOR of what is no longer readable stops) and tells the device, which re-lists its mounts.
   */
  async #onShareChange(change: ShareChange): Promise<void> {
    const records = await this.#ctx.store.namespacesOf(this.#user);
    this.#namespaces = new Map(records.map((n) => [n.id, n]));
    for (const [key, stop] of [...this.#monitors]) {
      const { ns, path } = parseMonitorKey(key);
      if (access(this.#user, this.#namespaces.get(ns) ?? null, path ?? "") !== null) continue;
      stop();
      this.#monitors.delete(key);
    }
    this.peer.push({ push: "namespaces", namespaces: this.#wireNamespaces(), ...change });
  }

  /** Who acts, for the log: user@device, and the namespace when it is not the user's own. */
  #who(ns: string): string {
    return `${this.#user}@${this.#device}${ns === this.#user ? "" : ` in ${ns}`}`;
  }

  #logCommit(ns: string, changes: Change[], results: ChangeResult[]): void {
    const who = this.#who(ns);
    const lines: string[] = [];
    results.forEach((result, i) => {
      const change = changes[i];
      if (!result.ok) {
        lines.push(`${who}: refused ${change.op} ${change.path}: ${result.error}`);
        return;
      }
      for (const e of result.entries) {
        // A move shows as one line; its two journal entries (old path gone, new path) are one change.
        if (change.op === "move" && e.path === change.from) continue;
        const what = change.op === "move" && e.path === change.path
          ? `move ${change.from} ->`
          : e.deleted
          ? "delete"
          : e.kind === "dir"
          ? "mkdir"
          : "upload";
        lines.push(`${who}: ${what} ${e.path} (rev ${e.rev})`);
      }
    });
    if (lines.length <= 20) { for (const line of lines) this.#ctx.log(line); }
    else this.#ctx.log(`${who}: committed ${changes.length} changes (${lines.length} journal entries)`);
  }
}

/** The key of a MONITOR subscription: the namespace id, and the followed path after a NUL. */
function monitorKey(ns: string, path: string | undefined): string {
  return path === undefined ? ns : `${ns}\u0000${path}`;
}

/** The namespace id and followed path of a {@linkcode monitorKey}. */
function parseMonitorKey(key: string): { ns: string; path?: string } {
  const nul = key.indexOf("\u0000");
  return nul === -1 ? { ns: key } : { ns: key.slice(0, nul), path: key.slice(nul + 1) };
}

/** Who holds a lock, as a refusal names it. */
function holderOf(lock: LockHolder): LockHolder {
  return { user: lock.user, deviceId: lock.deviceId, device: lock.device };
}

/** An entry as the wire carries it (without the server-side commit time). */
function wireOf(entry: EntryRecord): WireEntry {
  const { time: _time, ...wire } = entry;
  return wire;
}
