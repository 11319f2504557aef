// The client: keeps a folder in sync with the server (connect, monitor the journal, scan, reconcile, execute).
import { dirname, join, resolve } from "node:path";
import { RpcError, type RpcPeer } from "../protocol/rpc.ts";
import { DEVICE_REVOKED, RESYNC_CODE, type ResyncReason, type WireNamespace } from "../protocol/messages.ts";
import { BadMessageError, checkPush, type Push } from "../protocol/replies.ts";
import { UserError } from "../protocol/user_error.ts";
import { openConnection, UnreachableError } from "./connection.ts";
import { Executor } from "./executor.ts";
import { confirmWaiting, takeConfirmed, writeHeld } from "./held_deletes.ts";
import { IGNORE_FILE, type IgnoreMatcher, loadIgnoreRules } from "./ignore.ts";
import { type Mount, mountableViews, MountTable, viewKey } from "./mounts.ts";
import { type Action, actionPaths, reconcile } from "./reconcile.ts";
import { keepShareRoots, planReadOnly } from "./read_only.ts";
import { decideSafety, type RootStatus, warningDue } from "./safety.ts";
import {
  checkRoot,
  type RootIdentity,
  rootIdentity,
  RootUnavailable,
  type ScanEntry,
  Scanner,
  ScanStopped,
} from "./scanner.ts";
import { adjustBase, describeResync, isResyncReason } from "./resync.ts";
import {
  ClientState,
  type DeviceInfo,
  existsIn,
  forgetToken,
  readDeviceInfo,
  readToken,
  savedServers,
  saveLogin,
  saveServers,
  saveShownMounts,
} from "./state.ts";
import { type FolderWatch, watchFolder } from "./watcher.ts";
import { WatchLimitAdvisor } from "./watch_limit.ts";
import { loginWithPassword } from "./login.ts";
import { LockGuard, type RenewOutcome } from "./lock_guard.ts";
import type { WireLock } from "../protocol/locks.ts";
import type { ClientEvent, EventBus } from "./events.ts";
import { isConflictCopy } from "./conflict_name.ts";
import { type PendingWork, type StatusFacts, summarizePlan } from "./status.ts";
import { sameServerNames, type ServerAddress, serverName, ServerRotation } from "./server_list.ts";
import { planTotals, transferReporter, transfersAny } from "./progress_events.ts";

/** Options of {@linkcode SyncClient}. */
export interface SyncClientOptions {
  /** The synced folder (created if missing). */
  dir: string;
  /** The servers of the cluster, tried in this order (see {@linkcode ServerRotation}); at least one. */
  servers: ServerAddress[];
  user: string;
  /** Name of this device. @default the host name */
  device: string;
  /** PEM of the CA to trust. */
  caPem?: string;
  /** Gives the password when a login is needed (first start, or a token that stopped working). */
  password: () => Promise<string>;
  /**
   * Asks a person for the password (at a terminal); absent when nobody can be asked. After this device was
   * revoked only this is used: a revoked device never logs in again by itself (with FILESYNC_PASSWORD or
   * standard input), and without it the client stops with a {@linkcode UserError}.
   */
  askPassword?: () => Promise<string>;
  /** Where the client's events go (printed, logged, streamed to `filesync status --follow`, notified). */
  events: EventBus;
  /** Seconds between full scans. @default 10 */
  rescanSeconds?: number;
  /** First and largest wait between rounds of connection attempts, in ms. @default 250 / 30000 */
  backoffMs?: [number, number];
  /** Whether to use Deno.watchFs. @default true */
  watch?: boolean;
  /** Safety stop: a scan may delete at most this percentage of the files in sync unasked. @default 50 */
  massDeletePercent?: number;
  /** Safety stop: fewer file deletes than this never stop. @default 20 */
  massDeleteMin?: number;
  /** Let mass deletes through without asking (`--allow-mass-delete`). @default false */
  allowMassDelete?: boolean;
}

/** Why a revoked client stops when it has no terminal to ask for the password at. */
const REVOKED_CANNOT_ASK =
  "This device was revoked on the server, and there is no terminal here to ask for " +
  "the password: start filesync client again to log in (nothing in the folder was deleted, and changes made " +
  "meanwhile upload after the login)";

/** How often a repeated safety-stop warning is printed again. */
const WARN_EVERY_MS = 60_000;
/** How often the folder's root is checked again, and a confirmation looked for, while a stop is in effect. */
const STOP_POLL_MS = 1000;
/** How many example paths an "ignored now" line names. */
const EXAMPLES = 3;

/** Creates the folder if needed; a file in its place is a {@linkcode UserError}. */
export async function ensureSyncFolder(dir: string): Promise<void> {
  try {
    const info = await Deno.stat(dir);
    if (!info.isDirectory) throw new UserError(`Cannot sync "${dir}": it is a file, not a folder`);
  } catch (error) {
    if (error instanceof UserError) throw error;
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new UserError(`Cannot use "${dir}": ${(error as Error).message}`);
    }
    try {
      await Deno.mkdir(dir, { recursive: true });
    } catch (cause) {
      throw new UserError(`Cannot create folder "${dir}": ${(cause as Error).message}`);
    }
  }
}

/** One synced folder and its connection to the server. */
export class SyncClient {
  #o: SyncClientOptions;
  #state!: ClientState;
  #scanner!: Scanner;
  #local = new Map<string, ScanEntry>();
  #peer: RpcPeer | null = null;
  #watch: FolderWatch | null = null;
  /** Says once when the inotify watch limit is too small for the folder. */
  #watchLimit: WatchLimitAdvisor | null = null;
  #stopped = false;
  #fatal: Error | null = null;
  /** The server said this device was revoked (and no login has happened since). */
  #revoked = false;
  /** A password given for a LOGIN that did not get its answer (the connection dropped); used for the next. */
  #typedPassword: string | null = null;
  #dirty = new Set<string>();
  /** Folders whose rename was reported: their later deletes are part of it (see client/move_report.ts). */
  #renamedFolders = new Set<string>();
  #distrust = new Set<string>();
  /** Changes the server refused for good (too large, over quota, bad name), by path: left out until they change. */
  #refused = new Map<string, { hash: string; code: string }>();
  /** Inode -> path of base files, for recognising moved files without hashing them again. */
  #inoIndex: Map<number, string> | null = null;
  /** The last plan was not empty: the next full scan must reconcile even if the disk looks unchanged. */
  #planPending = true;
  /** `synced` was said and no plan ran since. */
  #inSync = false;
  #fullScanDue = true;
  #cycleRunning = false;
  #cycleAgain = false;
  #rescanTimer: ReturnType<typeof setInterval> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #wake: (() => void) | null = null;
  /** The synced folder's identity at start: a root that no longer matches it stops syncing. */
  #rootId!: RootIdentity;
  /** The root problem that stops syncing now, or null. */
  #rootStop: RootStatus | null = null;
  /** Whether a mass-delete stop holds deletes now (null at start: unknown, a stale list may be on disk). */
  #massStop: boolean | null = null;
  /** Paths whose server delete the user confirmed with `filesync confirm-deletes`. */
  #confirmed = new Set<string>();
  /** The held paths last written to the held-deletes list (null: unknown, rewrite it). */
  #heldWritten: string | null = null;
  #stopTimer: ReturnType<typeof setInterval> | undefined;
  #lastWarning = { message: "", at: 0 };
  #ignore!: IgnoreMatcher;
  /** Locks: others' files read-only here and their changes held back, this device's own renewed. */
  #locks: LockGuard | null = null;
  /** The live locks the server last listed, by namespace (paths as the namespace has them). */
  #lockLists = new Map<string, WireLock[]>();
  /** The connection being set up or in use (the one share changes are followed on), and its journal epoch. */
  #connection: Connection | null = null;
  /**
   * Local paths of shares gone while this client runs: their base is the share's, not the own namespace's, so
   * they say nothing about the own namespace's journal position (reconcile deletes or keeps them).
   */
  #leftShares = new Set<string>();
  /** The caller's role in each mount, by key (from the server's list). */
  #roles = new Map<string, string>();
  /** Lines about read-only shares already said (by kind and path), so each is said once. */
  #told = new Set<string>();
  /** Share changes are followed one after another. */
  #shareChain: Promise<void> = Promise.resolve();
  /** Size, mtime and inode of `.filesyncignore` when its rules were loaded ("" when absent). */
  #ignoreStamp = "";
  /** Paused by `filesync pause`: plans are made (to show what waits) but none runs. Not kept over a restart. */
  #paused = false;
  /** What the last plan made while paused would do. */
  #heldPlan: PendingWork | null = null;
  /** Files whose delete the mass-delete stop holds now. */
  #heldFiles = 0;
  #done: Promise<void>;
  #resolveDone!: () => void;
  #rejectDone!: (e: Error) => void;

  /** Prepares a client; {@linkcode start} runs it. */
  constructor(options: SyncClientOptions) {
    this.#o = options;
    this.#done = new Promise((resolve, reject) => {
      this.#resolveDone = resolve;
      this.#rejectDone = reject;
    });
    // The client can fail (an untrusted certificate, say) before its caller awaits `done`: that is not an
    // unhandled rejection, the caller still receives it from `done`.
    this.#done.catch(() => {});
  }

  /** Resolves when stopped; rejects with a {@linkcode UserError} when the client cannot go on. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Opens the state, starts watching and connecting. */
  async start(): Promise<void> {
    await ensureSyncFolder(this.#o.dir);
    const saved = await readDeviceInfo(this.#o.dir);
    const servers = this.#o.servers.map(serverName);
    if (saved && saved.user !== this.#o.user) {
      throw new UserError(
        `"${this.#o.dir}" is synced for user "${saved.user}", not "${this.#o.user}": use another folder`,
      );
    }
    this.#state = await ClientState.open(this.#o.dir, {
      warn: (message) => this.#notice(message),
      ownNamespace: this.#o.user,
    });
    this.#locks = new LockGuard({
      root: this.#o.dir,
      emit: (event) => this.#emit(event),
      renew: (path) => this.#renewLock(path),
    });
    this.#locks.load();
    if (saved && !sameServerNames(savedServers(saved), servers)) {
      this.#notice(
        `note: this folder was last synced with ${savedServers(saved).join(", ")}; now using ${
          servers.join(", ")
        }`,
      );
    }
    if (saved && savedServers(saved).join(" ") !== servers.join(" ")) await saveServers(this.#o.dir, servers);
    this.#rootId = rootIdentity(this.#o.dir);
    this.#ignoreStamp = this.#ignoreFileStamp();
    this.#ignore = await loadIgnoreRules(this.#o.dir);
    this.#scanner = new Scanner(this.#o.dir, {
      ignore: this.#ignore,
      known: (path) => {
        const base = this.#state.base.get(path);
        return base?.kind === "file" ? base : undefined;
      },
      knownByIno: (ino) => {
        if (!this.#inoIndex) {
          this.#inoIndex = new Map();
          for (const [path, base] of this.#state.base) {
            if (base.kind === "file" && base.ino !== null) this.#inoIndex.set(base.ino, path);
          }
        }
        const path = this.#inoIndex.get(ino);
        const base = path === undefined ? undefined : this.#state.base.get(path);
        return base?.kind === "file" && base.ino === ino ? base : undefined;
      },
      synced: (path) => this.#state.base.has(path),
      knownRows: (path) => this.#state.rows.get(path),
      onSkip: (path, reason) => this.#notice(`not syncing ${path}: ${reason}`),
      stopped: () => this.#stopped,
    });
    this.#startWatch();
    this.#rescanTimer = setInterval(() => {
      this.#fullScanDue = true;
      this.#kick();
    }, (this.#o.rescanSeconds ?? 10) * 1000);
    this.#connectLoop();
  }

  #startWatch(): void {
    this.#watch?.stop();
    this.#watch = null;
    if (this.#o.watch === false) return;
    const limit = this.#watchLimit ??= new WatchLimitAdvisor({
      dir: this.#o.dir,
      rescanSeconds: this.#o.rescanSeconds ?? 10,
      say: (line) => this.#error(line),
    });
    try {
      this.#watch = watchFolder(this.#o.dir, (paths, full) => {
        if (full) this.#fullScanDue = true;
        for (const p of paths) this.#dirty.add(p);
        this.#kick();
      }, { onError: (error) => void limit.watchFailed(error).catch(() => {}) });
      limit.check().catch(() => {});
    } catch (error) {
      limit.watchFailed(error).catch(() => false).then((told) => {
        if (told) return;
        this.#error(`cannot watch ${this.#o.dir} (${(error as Error).message}); relying on periodic scans`);
      });
    }
  }

  #emit(event: ClientEvent): void {
    this.#o.events.emit(event);
  }

  #notice(message: string): void {
    this.#emit({ type: "notice", message });
  }

  #error(message: string, path?: string): void {
    this.#emit(path === undefined ? { type: "error", message } : { type: "error", message, path });
  }

  /** Stops syncing and saves state. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#rescanTimer);
    clearInterval(this.#pingTimer);
    clearInterval(this.#stopTimer);
    this.#locks?.stop();
    this.#watch?.stop();
    this.#peer?.close();
    this.#wake?.();
    while (this.#cycleRunning) await new Promise((r) => setTimeout(r, 10));
    await this.#state?.close();
    if (this.#fatal) this.#rejectDone(this.#fatal);
    else this.#resolveDone();
  }

  /** Pauses syncing (`filesync pause`): no plan runs; the folder is still watched. False if paused already. */
  pause(): boolean {
    if (this.#paused) return false;
    this.#paused = true;
    this.#o.events.emit({ type: "paused" });
    return true;
  }

  /** Resumes syncing with a full scan at once. False if it was not paused. */
  resume(): boolean {
    if (!this.#paused) return false;
    this.#paused = false;
    this.#heldPlan = null;
    this.#inSync = false; // the full scan at once says `synced` again when it finds nothing to do
    this.#planPending = true;
    this.#fullScanDue = true;
    this.#o.events.emit({ type: "resumed" });
    this.#kick();
    return true;
  }

  /** What `filesync status` needs to know from the client now (see client/status.ts). */
  facts(): StatusFacts {
    const inSync = { files: 0, bytes: 0 };
    for (const entry of this.#state.base.values()) {
      if (entry.kind !== "file") continue;
      inSync.files++;
      inSync.bytes += entry.size;
    }
    const conflicts = [...this.#local].filter(([path, e]) => e.kind === "file" && isConflictCopy(path))
      .map(([path]) => path);
    const root = this.#rootStop;
    return {
      server: serverName(this.#o.servers[0]),
      user: this.#o.user,
      device: this.#o.device,
      folder: resolve(this.#o.dir),
      connected: this.connected,
      paused: this.#paused,
      inSync,
      pending: this.#paused ? this.#heldPlan : null,
      massStop: this.#massStop ? { held: this.#heldFiles } : null,
      rootStop: root === null
        ? null
        : decideSafety({ plan: [], baseFiles: 0, root }, { dir: this.#o.dir }).message ?? root.kind,
      conflicts,
    };
  }

  /** Whether a connection to the server is up and logged in now. */
  get connected(): boolean {
    return this.#peer !== null;
  }

  /** Where the namespaces show in the folder now. */
  get mounts(): readonly Mount[] {
    return this.#state.mounts.list;
  }

  /**
   * Sends one server request over this client's connection (for commands run while it runs) and returns the
   * reply's message; {@linkcode RpcError} code `offline` when it is not connected.
   */
  async forward(op: string, body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const peer = this.#peer;
    if (!peer) throw new RpcError("offline", "not connected to the server");
    return (await peer.request(op, body)).message;
  }

  async #fail(error: Error): Promise<void> {
    this.#fatal = error;
    await this.stop();
  }

  /** Logs in (by token, else by password); returns the namespaces the server lists (null: a server before them). */
  async #login(peer: RpcPeer): Promise<WireNamespace[] | null> {
    const token = await readToken(this.#o.dir);
    let password: string | null = null;
    if (token) {
      try {
        const reply = await peer.request("AUTH", { token });
        return namespacesOf(reply.message);
      } catch (error) {
        if (!(error instanceof RpcError) || error.code !== "auth_token") throw error;
        await forgetToken(this.#o.dir);
        if (error.detail.reason === DEVICE_REVOKED) password = await this.#passwordAfterRevocation();
        else this.#notice(`${error.message}: logging in again with the password`);
      }
    }
    // A password typed for a LOGIN whose connection then dropped (the server allows 10 s from connect to login,
    // a person may take longer) is used on the next connection instead of asking again. A revoked device whose
    // token is gone already (its session was closed) still only asks a person.
    password ??= this.#typedPassword ??
      (this.#revoked ? await this.#passwordAfterRevocation() : await this.#o.password());
    this.#typedPassword = password;
    try {
      const reply = await this.#loginWithPassword(peer, password);
      const info: DeviceInfo = {
        server: serverName(this.#o.servers[0]),
        ...(this.#o.servers.length > 1 ? { servers: this.#o.servers.map(serverName) } : {}),
        user: this.#o.user,
        device: this.#o.device,
        deviceId: String(reply.message.deviceId),
      };
      this.#typedPassword = null;
      await saveLogin(this.#o.dir, info, String(reply.message.token));
      this.#revoked = false;
      this.#notice(`logged in as ${this.#o.user} on device "${this.#o.device}"`);
      return namespacesOf(reply.message);
    } catch (error) {
      if (error instanceof RpcError && (error.code === "auth" || error.code === "rate_limited")) {
        this.#typedPassword = null;
        throw new UserError(`Login failed: ${error.message}`);
      }
      throw error;
    }
  }

  /** LOGIN with the password as this device, saying when the server postpones it (see client/login.ts). */
  #loginWithPassword(peer: RpcPeer, password: string) {
    return loginWithPassword(
      peer,
      { user: this.#o.user, password, device: this.#o.device },
      (waitMs) =>
        this.#notice(`the server postponed this login: trying again in ${Math.ceil(waitMs / 1000)} s`),
    );
  }

  /** Says once that this device was revoked; then asks a person, or stops when nobody can be asked. */
  async #passwordAfterRevocation(): Promise<string> {
    this.#announceRevocation();
    if (!this.#o.askPassword) throw new UserError(REVOKED_CANNOT_ASK);
    return await this.#o.askPassword();
  }

  #announceRevocation(): void {
    if (this.#revoked) return;
    this.#revoked = true;
    this.#error(
      "this device was revoked on the server: it no longer syncs until you log in again with the password " +
        "(nothing here is deleted; changes made meanwhile upload after the login)",
    );
  }

  /** The server closed this session because the device was revoked: stop at once when nobody can be asked. */
  async #revokedNow(): Promise<void> {
    this.#announceRevocation();
    if (this.#o.askPassword) return; // the reconnect's AUTH is refused, and the password is asked then
    await forgetToken(this.#o.dir);
    await this.#fail(new UserError(REVOKED_CANNOT_ASK));
  }

  /**
   * Connects to the first server of the list that can be reached, follows the journals and waits for the
   * connection to drop; then moves on to the next server (see {@linkcode ServerRotation}). The journal positions
   * are the cluster's: its nodes share one journal (one epoch), so moving between them needs no resync, and a
   * server with another epoch is another server (MONITOR says so, and the device resyncs with it).
   */
  async #connectLoop(): Promise<void> {
    const rotation = new ServerRotation(this.#o.servers, { backoffMs: this.#o.backoffMs });
    let announced = false;
    let reconnecting = false;
    while (!this.#stopped) {
      const attempt = rotation.next();
      const server = serverName(attempt.server);
      if (attempt.waitMs > 0) {
        // Said once per time offline (not before every try).
        if (reconnecting) this.#emit({ type: "reconnecting", server, inMs: attempt.waitMs });
        reconnecting = false;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, attempt.waitMs);
          this.#wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.#wake = null;
        if (this.#stopped) return;
      }
      let peer: RpcPeer | null = null;
      try {
        let epoch: string | null = null;
        peer = await openConnection({
          ...attempt.server,
          caPem: this.#o.caPem,
          rpc: { onPush: (frame) => this.#onPush(frame.message) },
          onHello: (reply) => epoch = typeof reply.epoch === "string" ? reply.epoch : null,
        });
        const connection: Connection = { peer, epoch, followed: new Set(), pushed: null };
        this.#connection = connection;
        const listed = await this.#login(peer);
        // A share change pushed while the login reply was on its way is newer than the reply's list.
        this.#mount(connection.pushed ?? listed);
        // Catch up with the journals before any cycle runs, so reconcile never sees a half-updated mirror.
        // The locks there are now (changes arrive as pushes from here on): what ended while away is released.
        this.#lockLists.clear();
        for (const mount of this.#state.mounts.list) await this.#follow(connection, mount);
        this.#applyLocks();
        this.#peer = peer;
        this.#emit({ type: "connected", server, user: this.#o.user, device: this.#o.device });
        announced = false;
        rotation.connected();
        this.#pingTimer = setInterval(() => peer?.request("PING").catch(() => {}), 20_000);
        this.#fullScanDue = true;
        this.#kick();
        const reason = await peer.closed;
        clearInterval(this.#pingTimer);
        this.#peer = null;
        this.#connection = null;
        if (this.#stopped) return;
        if (!this.#revoked) this.#emit({ type: "offline", server, reason: reason.message, lost: true });
        reconnecting = true;
        rotation.dropped();
      } catch (error) {
        peer?.close();
        this.#peer = null;
        this.#connection = null;
        if (this.#stopped) return;
        if (error instanceof UserError) {
          await this.#fail(error);
          return;
        }
        if (!announced || !(error instanceof UnreachableError)) {
          this.#emit({ type: "offline", server, reason: (error as Error).message });
          announced = true;
          reconnecting = true;
        }
        rotation.failed();
      }
    }
  }

  /**
   * Follows the namespaces the server lists where it says they show (today the own one alone, at the folder
   * root); a server before namespaces lists none: the own namespace is the user's name, at the root.
   */
  #mount(namespaces: WireNamespace[] | null): void {
    const listed: WireNamespace[] = namespaces ?? [{ ns: this.#o.user, role: "owner", name: "", mount: "" }];
    const state = this.#state;
    const shown = new Map(state.mounts.list.map((m) => [viewKey(m.ns, m.path), m.mount]));
    const inUse = (name: string) =>
      state.base.has(name) || state.remote.has(name) || this.#local.has(name) || existsIn(this.#o.dir, name);
    const list = mountableViews(listed, shown, inUse);
    for (const n of listed) {
      if (list.includes(n) || this.#told.has(`clash:${viewKey(n.ns, n.path)}`)) continue;
      this.#told.add(`clash:${viewKey(n.ns, n.path)}`);
      this.#notice(
        `share: ${n.owner ?? n.ns}'s "${
          n.path ?? n.name
        }" cannot show as "${n.mount}": this device has a file ` +
          `or folder of that name; rename yours and the share appears at the next connection`,
      );
    }
    let mounts: MountTable;
    try {
      mounts = new MountTable(list.map(({ ns, mount, path }) => path ? { ns, mount, path } : { ns, mount }));
    } catch (error) {
      throw new Error(`The server's list of namespaces is not usable: ${(error as Error).message}`);
    }
    const gone = state.setMounts(mounts);
    saveShownMounts(this.#o.dir, mounts.list);
    for (const path of gone) {
      this.#dirty.add(path);
      this.#leftShares.add(path);
    }
    if (gone.length > 0) this.#fullScanDue = true;
    this.#roles = new Map(list.map((n) => [viewKey(n.ns, n.path), n.role]));
  }

  /** Follows one mount on a connection (once): its journal (MONITOR) and its locks (LOCKS). */
  async #follow(connection: Connection, mount: Mount) {
    const key = viewKey(mount.ns, mount.path);
    if (connection.followed.has(key)) return;
    connection.followed.add(key);
    const { peer } = connection;
    await this.#monitor(peer, connection.epoch, key);
    const locks = await peer.request("LOCKS", { ns: mount.ns, ...(mount.path ? { path: mount.path } : {}) })
      .then(
        (reply) => reply.message.locks as WireLock[],
        (error) => {
          if (error instanceof RpcError && error.code === "unknown_op") return []; // a server without locks
          throw error;
        },
      );
    this.#lockLists.set(key, locks);
  }

  /**
   * Subscribes to a namespace's journal from its cursor. A server whose journal is not the one the cursor belongs
   * to (restored from a backup, replaced, or compacted past the cursor) refuses; the device then takes a fresh
   * snapshot of that namespace and adjusts its base so that nothing it has is lost (see {@linkcode adjustBase}).
   */
  async #monitor(peer: RpcPeer, epoch: string | null, ns: string): Promise<void> {
    const state = this.#state;
    const position = state.position(ns);
    const mine = <T>(map: ReadonlyMap<string, T>) =>
      new Map([...map].filter(([path]) => state.mounts.keyOf(path) === ns && !this.#leftShares.has(path)));
    // `ns` is the mount's key: for a share of a part of a namespace, the namespace and that part go on the wire.
    const mount = state.mounts.mountOf(ns);
    const where = mount?.path ? { ns: mount.ns, path: mount.path } : { ns };
    try {
      if (position.seq === 0 && mine(state.base).size > 0) {
        // A base without a journal position (never expected): compare everything, lose nothing.
        throw new RpcError(RESYNC_CODE, "no journal position", { reason: "epoch" });
      }
      await peer.request("MONITOR", {
        since: position.seq,
        ...(position.seq > 0 && position.epoch ? { epoch: position.epoch } : {}),
        ...(position.seq > 0 && position.tag ? { tag: position.tag } : {}),
        ...where,
      });
    } catch (error) {
      if (!(error instanceof RpcError) || error.code !== RESYNC_CODE) throw error;
      const reason: ResyncReason = isResyncReason(error.detail.reason) ? error.detail.reason : "diverged";
      this.#notice(describeResync(reason));
      state.resetRemote(ns);
      // The snapshot arrives as pushes before the reply, so the mirror is complete when the request returns.
      await peer.request("MONITOR", { since: 0, ...where });
      let dropped = 0;
      for (
        const [path, entry] of adjustBase(reason, { base: mine(state.base), remote: mine(state.remote) })
      ) {
        state.setBase(path, entry);
        if (entry === null) {
          dropped++;
          // This server may lack the chunks another one had: upload them rather than trust the local index.
          this.#distrust.add(path);
        }
        this.#dirty.add(path);
      }
      if (dropped > 0) this.#notice(`resync: ${dropped} paths to compare again with the server`);
    }
    position.epoch = epoch;
    await state.flush();
  }

  #onPush(message: Record<string, unknown>): void {
    let push: Push;
    try {
      push = checkPush(message);
    } catch (error) {
      if (!(error instanceof BadMessageError)) throw error;
      this.#error(`refused a message from the server (nothing written): ${error.message}`);
      return;
    }
    if (push.push === "namespaces") {
      this.#onShareChange(push);
      return;
    }
    // A push without `ns` is from a server before namespaces: the own namespace's. One with a `path` is of a
    // share of that part of the namespace: its mount's key names it here.
    const ns = push.push === "error" ? "" : viewKey(push.ns ?? this.#state.mounts.root, push.path);
    if (push.push !== "error" && !this.#state.mounts.has(ns)) {
      this.#error(`refused a message from the server (nothing written): ${push.push} of namespace "${ns}"`);
      return;
    }
    if (push.push === "events") {
      const touched = this.#state.applyEvents(push.events, ns);
      for (const path of touched) this.#dirty.add(path);
      if (touched.length > 0) this.#kick();
    } else if (push.push === "snapshot") {
      const touched = this.#state.applySnapshot(push.entries, {
        first: push.first,
        last: push.last,
        cursor: push.cursor,
        tag: push.tag,
        ns,
      });
      for (const path of touched) this.#dirty.add(path);
      this.#kick();
    } else if (push.push === "error") {
      if (push.code === "auth_token" && push.reason === DEVICE_REVOKED) void this.#revokedNow();
      else this.#error(`server: ${push.error}`);
    } else if (push.push === "locks") {
      this.#lockLists.set(ns, push.locks);
      const change = push.change &&
        { ...push.change, path: this.#state.mounts.localIn(ns, push.change.path) ?? push.change.path };
      this.#applyLocks(change);
    }
  }

  /**
   * Takes the server's lists of live locks (one per namespace, their paths made local); paths whose held-back
   * changes may now go are looked at again.
   */
  #applyLocks(change?: { path: string; what: string; by?: string }): void {
    const mounts = this.#state.mounts;
    const locks = [...this.#lockLists].flatMap(([ns, list]) =>
      mounts.has(ns)
        ? list.flatMap((lock) => {
          const path = mounts.localIn(ns, lock.path);
          return path === null ? [] : [{ ...lock, path }];
        })
        : []
    );
    const again = this.#locks?.update(locks, change) ?? [];
    for (const path of again) this.#dirty.add(path);
    if (again.length > 0) this.#kick();
  }

  /** Renews one of this device's locks. */
  async #renewLock(path: string): Promise<RenewOutcome> {
    const peer = this.#peer;
    if (!peer) return "retry";
    try {
      const at = this.#state.mounts.fromLocal(path);
      await peer.request("LOCK", { path: at.path, ns: at.ns, renew: true });
      return "renewed";
    } catch (error) {
      if (!(error instanceof RpcError) || error.code === "closed") return "retry";
      this.#error(`cannot renew the lock on ${path}: ${error.message}`, path);
      return "gone";
    }
  }

  /**
   * Takes the local changes inside read-only shares out of the plan (see {@linkcode planReadOnly}): an edited or
   * new file is moved out to an own copy at the top of the folder (uploaded as the user's own file by a later
   * cycle), and the shared item is brought back to the owner's version. The user is told, one line each.
   */
  #readOnlyShares(plan: Action[]): Action[] {
    const state = this.#state;
    const mounts = state.mounts;
    // Shares whose mount this device had and no longer has (deleted or renamed away here).
    const gone = mounts.list.filter((m) => m.path !== undefined && m.mount !== "").map((m) => m.mount)
      .filter((root) => state.base.has(root) && !this.#local.has(root) && !existsIn(this.#o.dir, root));
    const whole = keepShareRoots(plan, gone);
    for (const root of whole.restore) {
      const { ns } = mounts.fromLocal(root);
      this.#notice(
        `${root} is shared with you by ${ns}: deleting or renaming it here deletes nothing of it on the server, ` +
          `so it comes back (to take it off your devices, run filesync unshare "${root}")`,
      );
      this.#bringBack(root);
    }
    plan = whole.actions;
    if (whole.restore.length > 0) {
      this.#fullScanDue = true;
      setTimeout(() => this.#kick(), 0);
    }
    if (![...this.#roles.values()].includes("read")) return plan;
    const ro = planReadOnly(plan, {
      readOnly: (path) => this.#roles.get(mounts.keyOf(path)) === "read",
      taken: (path) =>
        this.#local.has(path) || state.base.has(path) || state.remote.has(path) || mounts.isMountPoint(path),
    });
    const abs = (path: string) => join(this.#o.dir, path);
    const moved = new Set<string>();
    for (const { from, to } of ro.keep) {
      try {
        let free = false;
        try {
          Deno.lstatSync(abs(to));
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) throw error;
          free = true;
        }
        if (!free) continue; // the next cycle picks another name
        Deno.mkdirSync(dirname(abs(to)), { recursive: true });
        Deno.renameSync(abs(from), abs(to));
      } catch (error) {
        this.#error(
          `cannot move ${from} out of the read-only share: ${(error as Error).message} (left as it is)`,
          from,
        );
        continue;
      }
      moved.add(from);
      this.#local.delete(from);
      this.#dirty.add(from);
      this.#dirty.add(to);
      if (ro.restore.includes(from)) {
        this.#notice(
          `${from} is in a share you may only read: your change is not uploaded, it is kept as your own file ` +
            `"${to}"` + (state.remote.has(from) ? `; ${from} goes back to the owner's version` : ""),
        );
      } else this.#notice(`${from} is in a share you may only read: moved back to ${to} (not uploaded)`);
    }
    for (const path of ro.restore) {
      const keptOut = ro.keep.some((k) => k.from === path);
      if (keptOut && !moved.has(path)) continue;
      if (!keptOut && !this.#told.has(`restore:${path}`)) {
        this.#told.add(`restore:${path}`);
        this.#notice(
          `${path} is in a share you may only read: it comes back (only the owner deletes or renames it)`,
        );
      }
      this.#bringBack(path);
    }
    for (const path of ro.localOnly) {
      if (this.#told.has(`local:${path}`)) continue;
      this.#told.add(`local:${path}`);
      this.#notice(`${path} is in a share you may only read: the folder stays on this device only`);
    }
    if (ro.keep.length > 0 || ro.restore.length > 0) {
      this.#fullScanDue = true;
      setTimeout(() => this.#kick(), 0);
    }
    return ro.actions;
  }

  /** Forgets the base of a path inside a share (and below it), so the next cycle brings the owner's version back. */
  #bringBack(path: string): void {
    const state = this.#state;
    for (const known of [...state.base.keys()]) {
      if (known === path || known.startsWith(path + "/")) state.setBase(known, null);
    }
    this.#dirty.add(path);
  }

  /**
   * A share of this user arrived, changed access or went: one line says so, and the device follows the new list
   * of namespaces at once (a new share is monitored and downloaded; see {@linkcode #remount}).
   */
  #onShareChange(push: Extract<Push, { push: "namespaces" }>): void {
    const { share, change } = push;
    this.#emit({
      type: "share",
      change: change === "new" ? "added" : change === "access" ? "access" : "removed",
      owner: share.owner,
      path: share.path,
      mount: share.mount,
      access: share.access === "write" ? "write" : "read",
    });
    const connection = this.#connection;
    if (connection) connection.pushed = push.namespaces;
    this.#shareChain = this.#shareChain.then(() => this.#remount(push.namespaces, connection)).catch(
      (error) => {
        if (error instanceof RpcError && error.code === "closed") return; // the next connection lists them again
        this.#error(`cannot follow the change of shares: ${(error as Error).message}`);
      },
    );
  }

  /** Mounts a new list of namespaces on the live connection: new mounts are followed, gone ones forgotten. */
  async #remount(
    namespaces: WireNamespace[],
    connection: Connection | null,
  ): Promise<void> {
    if (connection === null || connection !== this.#connection) return; // the next connection lists them again
    const state = this.#state;
    const before = state.mounts;
    this.#mount(namespaces);
    for (const mount of before.list) {
      const key = viewKey(mount.ns, mount.path);
      if (state.mounts.has(key)) continue;
      connection.followed.delete(key);
      this.#lockLists.delete(key);
    }
    for (const mount of state.mounts.list) await this.#follow(connection, mount);
    this.#applyLocks();
    this.#fullScanDue = true;
    this.#kick();
  }

  #kick(): void {
    if (this.#stopped || !this.#peer) return;
    if (this.#cycleRunning) {
      this.#cycleAgain = true;
      return;
    }
    this.#cycleRunning = true;
    queueMicrotask(() => this.#runCycles());
  }

  async #runCycles(): Promise<void> {
    let rounds = 0;
    try {
      do {
        this.#cycleAgain = false;
        const again = await this.#cycle();
        if (again && rounds++ < 5) this.#cycleAgain = true;
      } while (this.#cycleAgain && !this.#stopped && this.#peer);
    } catch (error) {
      if (!(error instanceof RpcError && error.code === "closed") && !(error instanceof ScanStopped)) {
        this.#error(`sync error: ${(error as Error).message}`);
      }
    } finally {
      this.#cycleRunning = false;
    }
  }

  /** One scan–reconcile–execute round. Returns true if another round is needed. */
  async #cycle(): Promise<boolean> {
    const trace = Deno.env.get("FILESYNC_TRACE")
      ? (m: string) => console.log(`TRACE ${Date.now()} ${m}`)
      : () => {};
    trace(`cycle start dirty=${[...this.#dirty].slice(0, 3)} full=${this.#fullScanDue}`);
    const peer = this.#peer;
    if (!peer) return false;
    // A missing, unreadable or replaced root says nothing about its files: no scan, no plan, nothing deleted.
    if (!this.#rootUsable(checkRoot(this.#o.dir, this.#rootId))) return false;
    if (this.#ignoreFileStamp() !== this.#ignoreStamp) {
      // New rules: the whole folder is looked at again under them (what they match drops out of sync).
      this.#ignoreStamp = this.#ignoreFileStamp();
      this.#ignore = await loadIgnoreRules(this.#o.dir);
      this.#scanner.ignore = this.#ignore;
      this.#fullScanDue = true;
    }
    const ignore = this.#ignore;
    const full = this.#fullScanDue;
    this.#fullScanDue = false;
    this.#inoIndex = null; // rebuilt on first use in this cycle, from the base as it is now
    const dirty = this.#dirty;
    this.#dirty = new Set();
    if (!full && dirty.size === 0) return false;
    const scanFailed = (status: RootStatus) => {
      for (const path of dirty) this.#dirty.add(path);
      this.#fullScanDue = true;
      this.#rootUsable(status);
      return false;
    };
    let paths: Set<string> | undefined;
    if (full) {
      const previous = this.#local;
      let scanned: Map<string, ScanEntry>;
      try {
        scanned = await this.#scanner.scanAll();
      } catch (error) {
        if (!(error instanceof RootUnavailable)) throw error;
        return scanFailed({ kind: "unreadable", reason: error.message });
      }
      // The root may have gone while it was walked: then the walk saw part of it, or another folder.
      const after = checkRoot(this.#o.dir, this.#rootId);
      if (after.kind !== "ok") return scanFailed(after);
      this.#local = scanned;
      // Nothing changed on disk and nothing came from the server: no reconcile of the whole tree needed.
      if (dirty.size === 0 && !this.#planPending && sameSnapshot(previous, this.#local)) {
        trace("scanned: no change");
        return false;
      }
    } else {
      const found = await this.#scanner.scanPaths(dirty);
      const after = checkRoot(this.#o.dir, this.#rootId);
      if (after.kind !== "ok") return scanFailed(after);
      // Below a scanned folder (or a path now gone), whatever the scan did not find is gone.
      const scannedRoots = new Set([...dirty].filter((p) => found.has(p) && found.get(p)?.kind !== "file"));
      if (scannedRoots.size > 0) {
        for (const known of [...this.#local.keys()]) {
          if (!found.has(known) && hasAncestorIn(known, scannedRoots)) this.#local.delete(known);
        }
      }
      for (const [path, entry] of found) {
        if (entry === null) this.#local.delete(path);
        else this.#local.set(path, entry);
      }
      paths = this.#expand(dirty, found);
    }
    trace("scanned");
    const ignored = (path: string, kind: "file" | "dir") => ignore.ignores(path, kind === "dir");
    let plan = reconcile(
      {
        base: this.#state.base,
        local: this.#local,
        remote: this.#state.remote,
        paths,
        links: this.#scanner.links,
        ignored,
      },
      { device: this.#o.device },
    );
    // A file its writer still has open is left for a later cycle, so a half-written version is not sent; a file
    // the scan could not read (it changed meanwhile, or is unreadable) is left alone: unknown is not deleted.
    const unsettled = new Set(this.#scanner.unsettled);
    this.#scanner.unsettled.clear();
    const touches = (a: Action) =>
      ("path" in a && unsettled.has(a.path)) ||
      ("from" in a && (unsettled.has(a.from) || unsettled.has(a.to)));
    // Below a folder the scan could not list, local absence means nothing: leave those paths alone.
    const unknownDirs = new Set(this.#scanner.unknownDirs);
    this.#scanner.unknownDirs.clear();
    if (unknownDirs.size > 0) {
      const below = (p: string) => hasAncestorIn(p, unknownDirs);
      plan = plan.filter((a) => !("path" in a && below(a.path)) && !("from" in a && below(a.from)));
    }
    // What the server refused for good (too large, over quota, a name some device cannot hold) stays here
    // unsynced until it changes.
    plan = plan.filter((a) =>
      !((a.type === "upload" && this.#refused.get(a.path)?.hash === a.local.hash) ||
        (a.type === "mkdirRemote" && this.#refused.get(a.path)?.hash === ""))
    );
    // Changes of files another device locks wait for the lock to end (the local files stay as they are).
    if (this.#locks) plan = this.#locks.filter(plan);
    const unfinished = plan.filter((a) =>
      touches(a) || (a.type === "upload" && this.#watch?.beingWritten(a.path))
    );
    if (unfinished.length > 0) {
      plan = plan.filter((a) => !unfinished.includes(a));
      for (const action of unfinished) {
        if ("path" in action) this.#dirty.add(action.path);
        if ("from" in action) this.#dirty.add(action.from);
      }
      setTimeout(() => this.#kick(), 100);
    }
    if (this.#paused) {
      // Paused: nothing runs (nor moves out of read-only shares). What waits is counted over the whole folder.
      this.#planPending = true;
      if (!full) {
        this.#fullScanDue = true;
        return true;
      }
      this.#heldPlan = summarizePlan(plan);
      return false;
    }
    plan = this.#readOnlyShares(plan);
    if (!full && plan.some((action) => action.type === "deleteRemote" && action.kind === "file")) {
      // A file gone from where the watcher looked may have moved somewhere it did not report (into a folder
      // made just before, say): look at the whole folder before deleting anything, so a move stays a move.
      // Deletes of files are decided on full scans only, which is also where the safety stop counts them. A
      // folder's delete goes at once (a folder renamed with all its files, say): the server deletes empty
      // folders only, so it takes nothing with it, and the safety stop counts files only.
      for (const path of dirty) this.#dirty.add(path);
      this.#fullScanDue = true;
      return true;
    }
    let confirmedNow = 0;
    if (full) {
      if (confirmWaiting(this.#o.dir)) {
        const taken = await takeConfirmed(this.#o.dir);
        if (taken) this.#confirmed = taken;
      }
      // A confirmation covers deletes pending now: one whose file came back is not confirmed for later.
      const deleting = new Set(plan.filter((a) => a.type === "deleteRemote").map((a) => a.path));
      for (const path of this.#confirmed) if (!deleting.has(path)) this.#confirmed.delete(path);
      const decision = decideSafety({
        plan,
        baseFiles: countBaseFiles(this.#state.base),
        root: { kind: "ok" },
        confirmed: this.#confirmed,
      }, {
        dir: this.#o.dir,
        percent: this.#o.massDeletePercent,
        min: this.#o.massDeleteMin,
        allowMassDelete: this.#o.allowMassDelete,
      });
      plan = decision.allowed;
      confirmedNow = plan.filter((a) => a.type === "deleteRemote" && this.#confirmed.has(a.path)).length;
      await this.#setMassStop(decision.held, decision.heldFiles, decision.message, confirmedNow);
    }
    // Only a full reconcile can say that nothing is left to do: a cycle over a few paths (after a refused upload,
    // say) must not hide what an earlier plan left undone from the next full scan.
    this.#planPending = full
      ? plan.length > 0 || this.#massStop === true
      : this.#planPending || plan.length > 0;
    if (plan.length === 0) {
      await this.#state.flush();
      if (full && unfinished.length === 0) this.#reportSynced();
      return false;
    }
    const dropped = plan.filter((a) => a.type === "sync" && a.base === null && this.#state.base.has(a.path))
      .map((a) => "path" in a ? a.path : "")
      .filter((p) => ignored(p, this.#state.base.get(p)!.kind));
    if (dropped.length > 0) {
      const what = `${dropped.length} ${dropped.length === 1 ? "path" : "paths"}`;
      this.#notice(
        `no longer syncing ${what} that ${IGNORE_FILE} now matches (${examplesOf(dropped)}); ` +
          "they stay as they are here, on the server and on other devices",
      );
    }
    const executor = new Executor({
      root: this.#o.dir,
      state: this.#state,
      scanner: this.#scanner,
      peer,
      local: this.#local,
      events: this.#o.events,
      renamedFolders: this.#renamedFolders,
      progress: this.#progress(),
      distrust: this.#distrust,
      refused: this.#refused,
      locked: (path, holder) => this.#locks?.refused(path, holder),
    });
    trace(`plan ${plan.map((p) => p.type).join(",")}`);
    const totals = planTotals(plan);
    if (transfersAny(totals)) this.#o.events.emit({ type: "plan", ...totals });
    this.#inSync = false;
    const report = await executor.run(plan);
    // A download may have replaced a file another device locks: the new file is made read-only too.
    this.#locks?.protect();
    trace(`executed ${JSON.stringify(report)}`);
    if (confirmedNow > 0) this.#confirmed.clear();
    // New rules arrived: the next round looks at the folder under them.
    if (plan.some((a) => a.type === "download" && a.path === IGNORE_FILE)) return true;
    if (report.again || report.skipped > 0) {
      // Something changed under the plan, made new files or was refused by the server: look at those paths
      // again (all of them: a refused rename's target is in no event of the rename that won).
      for (const action of plan) for (const path of actionPaths(action)) this.#dirty.add(path);
      return true;
    }
    if (full && unfinished.length === 0) this.#reportSynced();
    return false;
  }

  /**
   * Records the root's status: while it is not ok, says so (rate-limited), polls it and returns false; when it
   * is ok again after a stop, says so, watches the folder again and returns true.
   */
  #rootUsable(status: RootStatus): boolean {
    if (status.kind === "ok") {
      if (this.#rootStop !== null) {
        this.#rootStop = null;
        this.#emit({ type: "safety_lifted", reason: "root", dir: this.#o.dir });
        this.#lastWarning = { message: "", at: 0 };
        this.#fullScanDue = true;
        this.#startWatch();
        this.#updateStopTimer();
      }
      return true;
    }
    this.#rootStop = status;
    this.#fullScanDue = true;
    const decision = decideSafety({ plan: [], baseFiles: 0, root: status }, { dir: this.#o.dir });
    this.#warn({ type: "safety_stop", reason: "root", detail: decision.message! });
    this.#updateStopTimer();
    return false;
  }

  /** Records the mass-delete stop of a full scan: lists held deletes for confirm-deletes, tells the user. */
  async #setMassStop(
    held: { path: string }[],
    heldFiles: number,
    message: string | null,
    confirmed: number,
  ): Promise<void> {
    const was = this.#massStop;
    this.#massStop = held.length > 0;
    this.#heldFiles = heldFiles;
    const paths = held.map((a) => a.path);
    const key = paths.join("\n");
    if (key !== this.#heldWritten) {
      try {
        await writeHeld(this.#o.dir, { paths, files: heldFiles });
        this.#heldWritten = key;
      } catch (error) {
        this.#error(`cannot record the held deletes: ${(error as Error).message}`);
      }
    }
    if (confirmed > 0) {
      this.#notice(
        `deletes confirmed: deleting ${confirmed} ${confirmed === 1 ? "entry" : "entries"} on the server`,
      );
    }
    if (message !== null) {
      this.#warn({ type: "safety_stop", reason: "mass_delete", held: heldFiles, detail: message });
    } else if (was === true && confirmed === 0) this.#emit({ type: "safety_lifted", reason: "mass_delete" });
    if (!this.#massStop) this.#lastWarning = { message: "", at: 0 };
    this.#updateStopTimer();
  }

  /** Reports a safety stop, but the same one again only after {@linkcode WARN_EVERY_MS}. */
  #warn(event: Extract<ClientEvent, { type: "safety_stop" }>): void {
    const now = Date.now();
    const message = event.detail;
    if (!warningDue(this.#lastWarning, message, now, WARN_EVERY_MS)) return;
    this.#lastWarning = { message, at: now };
    this.#emit(event);
  }

  /** While a stop is in effect, looks again every second: for the root coming back, or a confirmation. */
  #updateStopTimer(): void {
    const stopped = this.#rootStop !== null || this.#massStop === true;
    if (!stopped) {
      clearInterval(this.#stopTimer);
      this.#stopTimer = undefined;
      return;
    }
    if (this.#stopTimer !== undefined || this.#stopped) return;
    this.#stopTimer = setInterval(() => {
      if (this.#rootStop !== null || confirmWaiting(this.#o.dir) || this.#warningDue()) {
        this.#fullScanDue = true;
        this.#kick();
      }
    }, STOP_POLL_MS);
  }

  #warningDue(): boolean {
    return Date.now() - this.#lastWarning.at >= WARN_EVERY_MS;
  }

  /** A cheap fingerprint of `.filesyncignore`: its rules are loaded again when it changes. */
  #ignoreFileStamp(): string {
    try {
      const info = Deno.lstatSync(`${this.#o.dir}/${IGNORE_FILE}`);
      return `${info.size}:${info.mtime?.getTime() ?? 0}:${info.ino ?? 0}`;
    } catch {
      return "";
    }
  }

  /** The dirty paths plus everything below those that are (or were) folders, in any snapshot. */
  #expand(dirty: Set<string>, found: Map<string, ScanEntry | null>): Set<string> {
    const paths = new Set(dirty);
    for (const entry of found.keys()) paths.add(entry);
    const folders = [...dirty].filter((p) =>
      this.#local.get(p)?.kind === "dir" || this.#state.base.get(p)?.kind === "dir" ||
      this.#state.remote.get(p)?.kind === "dir" || found.get(p) === null
    );
    if (folders.length > 0) {
      const roots = new Set(folders);
      for (const map of [this.#state.base, this.#state.remote, this.#local] as Map<string, unknown>[]) {
        for (const path of map.keys()) {
          if (hasAncestorIn(path, roots)) paths.add(path);
        }
      }
    }
    return paths;
  }

  #progress() {
    return transferReporter((event) => this.#o.events.emit(event));
  }

  /** Says `synced` once when a full cycle leaves nothing to do (again after the next plan that ran). */
  #reportSynced(): void {
    if (this.#inSync || this.#massStop === true || this.#rootStop !== null) return;
    this.#inSync = true;
    let files = 0;
    let bytes = 0;
    for (const entry of this.#state.base.values()) {
      if (entry.kind !== "file") continue;
      files++;
      bytes += entry.size;
    }
    this.#o.events.emit({ type: "synced", files, bytes });
  }
}

/** True if two local snapshots hold the same entries with the same stat and hash. */
function sameSnapshot(a: Map<string, ScanEntry>, b: Map<string, ScanEntry>): boolean {
  if (a.size !== b.size) return false;
  for (const [path, x] of b) {
    const y = a.get(path);
    if (y === x) continue; // the scanner hands on an unchanged file's entry itself
    if (
      !y || y.kind !== x.kind || y.hash !== x.hash || y.size !== x.size || y.mtime !== x.mtime ||
      y.ino !== x.ino
    ) {
      return false;
    }
  }
  return true;
}

/** How many files the base snapshot holds: the files this device has in sync. */
function countBaseFiles(base: ReadonlyMap<string, { kind: string }>): number {
  let files = 0;
  for (const entry of base.values()) if (entry.kind === "file") files++;
  return files;
}

/** A few example paths for a message: "a, b, c, …". */
function examplesOf(paths: string[]): string {
  return paths.slice(0, EXAMPLES).join(", ") + (paths.length > EXAMPLES ? ", …" : "");
}

/** True if some proper ancestor of `path` is in `roots` (O(depth)). */
function hasAncestorIn(path: string, roots: ReadonlySet<string>): boolean {
  for (let i = path.indexOf("/"); i !== -1; i = path.indexOf("/", i + 1)) {
    if (roots.has(path.slice(0, i))) return true;
  }
  return false;
}

/** A connection being set up or in use, as share changes are followed on it. */
interface Connection {
  peer: RpcPeer;
  /** The server's journal epoch (from HELLO). */
  epoch: string | null;
  /** Keys of the mounts followed on it (MONITOR and LOCKS sent). */
  followed: Set<string>;
  /** The newest list of namespaces pushed on it (null: none pushed). */
  pushed: WireNamespace[] | null;
}

/** The namespaces a LOGIN or AUTH reply lists (null when the server sent none: a server before namespaces). */
function namespacesOf(reply: Record<string, unknown>): WireNamespace[] | null {
  return Array.isArray(reply.namespaces) ? reply.namespaces as WireNamespace[] : null;
}
