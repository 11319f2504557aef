// The client's persistent state in DIR/.filesync/: device identity, token, journal positions, base snapshot,
// remote mirror.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { makePrivate } from "../protocol/private_files.ts";
import { writeMutations } from "../protocol/kv_batches.ts";
import { decodeRows, encodeRows, MANIFEST_ROW_BYTES, type WireEntry } from "../protocol/messages.ts";
import type { ChunkRow } from "../protocol/messages.ts";
import { type Mount, MountTable, viewKey } from "./mounts.ts";
import type { BaseEntry, RemoteEntry } from "./reconcile.ts";

/** Folder of client state inside the synced folder (never synced). */
export const STATE_DIR = ".filesync";

/** A base entry plus the local file's stat when both sides agreed, so unchanged files need no re-hashing. */
export interface BaseRecord extends BaseEntry {
  size: number;
  mtime: number;
  ino: number | null;
}

/** Device identity saved at first login. */
export interface DeviceInfo {
  /** The first server the client was started with, `HOST:PORT` (an IPv6 host without brackets). */
  server: string;
  /** Every server of `--server`, in order, when there are several (then `server` is the first). */
  servers?: string[];
  user: string;
  device: string;
  deviceId: string;
}

const KEY_PATH_MAX = 1500;
const ROWS_PER_PART = Math.floor(60_000 / MANIFEST_ROW_BYTES);

/** The journal position in one namespace, saved in the state: cursor, epoch and tag are written together. */
export interface JournalPosition {
  /** Sequence number of the last journal entry applied to the mirror (the cursor). */
  seq: number;
  /** Epoch of the server's journal the cursor belongs to (from HELLO); null before the first sync. */
  epoch: string | null;
  /** Tag of the journal entry at the cursor, so the server can tell if its history is another one. */
  tag: string | null;
}

/** Options of {@linkcode ClientState.open}. */
export interface StateOptions {
  /** Hears a warning when the state folder's modes had to be made private. */
  warn?: (message: string) => void;
  /**
   * The id of the user's own namespace (the user name), mounted at the folder root: a state written before
   * namespaces kept one cursor, which becomes this namespace's position. @default the user of device.json
   */
  ownNamespace?: string;
}

/** Where a chunk can be read locally: a file of the base snapshot and the chunk's offset in it. */
export interface LocalChunk {
  path: string;
  offset: number;
  size: number;
}

function pathKey(prefix: string, path: string): Deno.KvKey {
  return new TextEncoder().encode(path).length <= KEY_PATH_MAX
    ? [prefix, path]
    : [prefix + "#", createHash("sha256").update(path).digest("hex")];
}

/**
 * Base snapshot, remote mirror and one journal position per namespace, held in memory and written through to a
 * Deno KV file. Base and mirror are keyed by local path: {@linkcode ClientState.mounts} maps each namespace's
 * paths into the folder.
 */
export class ClientState {
  readonly dir: string;
  readonly base = new Map<string, BaseRecord>();
  readonly remote = new Map<string, RemoteEntry>();
  /** Journal position of each namespace followed, by namespace id. */
  readonly positions = new Map<string, JournalPosition>();
  /** Where each namespace shows in the folder. @default the own namespace alone, at the root */
  mounts: MountTable;
  /** Chunk rows of base file versions (for deltas and for building files from local chunks). */
  readonly rows = new Map<string, ChunkRow[]>();
  /** Chunk id -> a place in a base file holding it (may be stale: readers verify the hash). */
  readonly chunkIndex = new Map<string, LocalChunk>();
  #kv: Deno.Kv;
  #dirty = new Map<string, Deno.KvKey>();
  #dirtyRows = new Set<string>();
  /** How many KV parts hold each path's rows on disk. */
  #rowParts = new Map<string, number>();

  private constructor(dir: string, kv: Deno.Kv, own: string) {
    this.dir = dir;
    this.#kv = kv;
    this.mounts = new MountTable([{ ns: own, mount: "" }]);
  }

  /**
   * Opens (creating) the state of the synced folder `root`. The state folder is made 0700 and its files 0600
   * whatever they were before; `warn` hears a warning when that had to change anything.
   */
  static async open(root: string, options: StateOptions = {}): Promise<ClientState> {
    const dir = join(root, STATE_DIR);
    await Deno.mkdir(join(dir, "tmp"), { recursive: true, mode: 0o700 });
    const privacy = await makePrivate(dir);
    if (privacy.fixed > 0) {
      options.warn?.(
        `warning: ${dir} was readable by other local users` +
          (privacy.openMode !== null ? ` (mode ${privacy.openMode.toString(8)})` : "") +
          `: made it 0700 and ${privacy.fixed} files and folders owner-only`,
      );
    }
    const kv = await Deno.openKv(join(dir, "state.kv"));
    // KV makes its file and its -wal/-shm companions with the process's umask: they go owner-only too.
    await makePrivate(dir);
    const own = options.ownNamespace ?? (await readDeviceInfo(root))?.user ?? "";
    const state = new ClientState(dir, kv, own);
    for (const prefix of ["base", "base#"]) {
      for await (
        const e of kv.list<BaseRecord & { path: string }>({ prefix: [prefix] }, { batchSize: 1000 })
      ) {
        const { path, ...record } = e.value;
        state.base.set(path, record);
      }
    }
    for (const prefix of ["remote", "remote#"]) {
      for await (
        const e of kv.list<RemoteEntry & { path: string }>({ prefix: [prefix] }, { batchSize: 1000 })
      ) {
        const { path, ...entry } = e.value;
        state.remote.set(path, entry);
      }
    }
    const parts = new Map<string, Uint8Array[]>();
    for await (
      const e of kv.list<{ path: string; bytes: Uint8Array }>({ prefix: ["rows"] }, { batchSize: 1000 })
    ) {
      const list = parts.get(e.value.path) ?? [];
      list[e.key[e.key.length - 1] as number] = e.value.bytes;
      parts.set(e.value.path, list);
    }
    for (const [path, list] of parts) {
      state.#rowParts.set(path, list.length);
      if (state.base.get(path)?.kind !== "file") continue;
      state.#indexRows(path, list.flatMap((bytes) => decodeRows(bytes)));
    }
    for await (const e of kv.list<JournalPosition>({ prefix: ["position"] })) {
      const ns = e.key[1] as string;
      state.positions.set(ns, { ...e.value });
      state.#saved.set(ns, JSON.stringify(e.value));
    }
    // Where shares showed when this device last ran, so a share gone meanwhile is found and taken away.
    const mounts = (await kv.get<Mount[]>(["mounts"])).value;
    if (Array.isArray(mounts)) {
      try {
        const table = new MountTable(mounts);
        if (table.root === own) {
          state.mounts = table;
          state.#savedMounts = JSON.stringify(mounts);
        }
      } catch {
        // Not a usable table (never expected): the server's list replaces it at login.
      }
    }
    // Written before namespaces: the one cursor is the own namespace's (a number: before journals had an epoch).
    const legacy = (await kv.get<number | JournalPosition>(["cursor"])).value;
    if (legacy !== null) {
      state.#legacyCursor = true;
      if (!state.positions.has(own)) {
        state.positions.set(
          own,
          typeof legacy === "number" ? { seq: legacy, epoch: null, tag: null } : legacy,
        );
      }
    }
    return state;
  }

  /** The journal position of a namespace (a fresh one, at 0, for a namespace not followed before). */
  position(ns: string): JournalPosition {
    let position = this.positions.get(ns);
    if (!position) this.positions.set(ns, position = { seq: 0, epoch: null, tag: null });
    return position;
  }

  /**
   * Sets where namespaces show (from the server's list). A root namespace with another id than before takes the
   * old root's journal position when it has none (a cursor migrated under a guessed id). Returns the local paths
   * whose mirror entries went with a share no longer listed.
   */
  setMounts(mounts: MountTable): string[] {
    const before = this.mounts.root;
    if (mounts.root !== before && !this.positions.has(mounts.root) && this.positions.has(before)) {
      this.positions.set(mounts.root, this.positions.get(before)!);
      this.positions.delete(before);
    }
    // A share gone (or shown elsewhere now): its part of the mirror goes, so what this device has of it is
    // deleted where unchanged, and what changed here and was never uploaded stays, as the user's own files.
    const touched: string[] = [];
    for (const old of this.mounts.list) {
      if (old.mount === "") continue;
      const key = viewKey(old.ns, old.path);
      const now = mounts.mountOf(key);
      if (now && now.mount === old.mount) continue;
      for (const path of [...this.remote.keys()]) {
        if (this.mounts.keyOf(path) !== key) continue;
        this.remote.delete(path);
        this.#dirty.set("r" + path, pathKey("remote", path));
        touched.push(path);
      }
      this.positions.delete(key);
    }
    this.mounts = mounts;
    return touched;
  }

  /** Path of the temp folder for downloads. */
  get tmpDir(): string {
    return join(this.dir, "tmp");
  }

  /**
   * Sets or clears the base of a path (written on the next flush). `rows` are the chunk rows of the file version
   * when known; without them, rows already recorded are kept only if the content hash is unchanged.
   */
  setBase(path: string, record: BaseRecord | null, rows?: ChunkRow[]): void {
    const before = this.base.get(path);
    if (record) this.base.set(path, record);
    else this.base.delete(path);
    this.#dirty.set("b" + path, pathKey("base", path));
    if (record?.kind === "file" && rows) this.setRows(path, rows);
    else if (this.rows.has(path) && (record?.kind !== "file" || before?.hash !== record.hash)) {
      this.setRows(path, null);
    }
  }

  /** Records (or forgets, with null) the chunk rows of the base version of a file. */
  setRows(path: string, rows: ChunkRow[] | null): void {
    if (rows) this.#indexRows(path, rows);
    else this.rows.delete(path);
    this.#dirtyRows.add(path);
  }

  #indexRows(path: string, rows: ChunkRow[]): void {
    this.rows.set(path, rows);
    let offset = 0;
    for (const row of rows) {
      this.chunkIndex.set(row.id, { path, offset, size: row.size });
      offset += row.size;
    }
  }

  /**
   * Applies journal events of a namespace (default: the root one; for a share of a part of one, the mount's
   * viewKey) to the remote mirror; returns the local paths they touched (none for a namespace not
   * mounted here).
   */
  applyEvents(events: WireEntry[], ns: string = this.mounts.root): string[] {
    const paths: string[] = [];
    if (!this.mounts.has(ns)) return paths;
    const position = this.position(ns);
    for (const event of events) {
      if (event.rev <= position.seq) continue;
      const path = this.mounts.localIn(ns, event.path);
      if (path === null) {
        // Not shown here (outside a share's part): only the cursor moves.
        position.seq = event.rev;
        position.tag = event.tag ?? null;
        continue;
      }
      if (event.deleted) this.remote.delete(path);
      else {
        this.remote.set(path, {
          kind: event.kind,
          hash: event.hash,
          size: event.size,
          mtime: event.mtime,
          rev: event.rev,
          device: event.device,
          ...(event.restored ? { restored: event.restored } : {}),
        });
      }
      this.#dirty.set("r" + path, pathKey("remote", path));
      position.seq = event.rev;
      position.tag = event.tag ?? null;
      paths.push(path);
    }
    return paths;
  }

  /**
   * Applies one page of a snapshot of a namespace's live entries (`ns`, default: the root one): the first page
   * clears the namespace's part of the mirror, the last sets its cursor (and `tag`, the tag of the journal entry
   * at the cursor). Returns the local paths touched (including those the snapshot dropped).
   */
  applySnapshot(
    entries: WireEntry[],
    page: { first: boolean; last: boolean; cursor: number; tag?: string; ns?: string },
  ): string[] {
    const { first, last, cursor } = page;
    const ns = page.ns ?? this.mounts.root;
    const touched: string[] = [];
    if (!this.mounts.has(ns)) return touched;
    if (first) touched.push(...this.resetRemote(ns));
    for (const wire of entries) {
      const path = this.mounts.localIn(ns, wire.path);
      if (path === null) continue;
      const entry = { ...wire, path };
      this.remote.set(entry.path, {
        kind: entry.kind,
        hash: entry.hash,
        size: entry.size,
        mtime: entry.mtime,
        rev: entry.rev,
        device: entry.device,
      });
      this.#dirty.set("r" + entry.path, pathKey("remote", entry.path));
      touched.push(entry.path);
    }
    if (last) {
      const position = this.position(ns);
      position.seq = cursor;
      position.tag = page.tag ?? null;
    }
    return touched;
  }

  /**
   * Forgets a namespace's part of the remote mirror (default: the root one's) and its cursor (the server's
   * journal was reset); returns the local paths it held.
   */
  resetRemote(ns: string = this.mounts.root): string[] {
    const dropped: string[] = [];
    for (const path of this.remote.keys()) {
      if (this.mounts.keyOf(path) !== ns) continue;
      this.#dirty.set("r" + path, pathKey("remote", path));
      dropped.push(path);
    }
    for (const path of dropped) this.remote.delete(path);
    const position = this.position(ns);
    position.seq = 0;
    position.tag = null;
    return dropped;
  }

  #rowsMutations(): [Deno.KvKey, unknown][] {
    const mutations: [Deno.KvKey, unknown][] = [];
    for (const path of this.#dirtyRows) {
      const id = new TextEncoder().encode(path).length <= KEY_PATH_MAX
        ? path
        : "#" + createHash("sha256").update(path).digest("hex");
      const rows = this.rows.get(path);
      const count = rows ? Math.ceil(rows.length / ROWS_PER_PART) : 0;
      for (let part = 0; part < count; part++) {
        const bytes = encodeRows(rows!.slice(part * ROWS_PER_PART, (part + 1) * ROWS_PER_PART));
        mutations.push([["rows", id, part], { path, bytes }]);
      }
      for (let part = count; part < (this.#rowParts.get(path) ?? 0); part++) {
        mutations.push([["rows", id, part], null]);
      }
      if (count > 0) this.#rowParts.set(path, count);
      else this.#rowParts.delete(path);
    }
    this.#dirtyRows.clear();
    return mutations;
  }

  #flushChain: Promise<void> = Promise.resolve();
  /** The positions as last written, by namespace (JSON). */
  #saved = new Map<string, string>();
  /** The mounts as last written (JSON). */
  #savedMounts = JSON.stringify([]);
  /** A cursor from before namespaces is still on disk (deleted once the positions are written). */
  #legacyCursor = false;

  /** Writes pending changes to disk, in as few atomic writes as the KV limits allow; calls run in order. */
  flush(): Promise<void> {
    const run = this.#flushChain.then(() => this.#flushNow());
    this.#flushChain = run.catch(() => {});
    return run;
  }

  async #flushNow(): Promise<void> {
    const positions = [...this.positions].filter(([ns, p]) => this.#saved.get(ns) !== JSON.stringify(p));
    const forgotten = [...this.#saved.keys()].filter((ns) => !this.positions.has(ns));
    const cursorSaved = positions.length === 0 && forgotten.length === 0 && !this.#legacyCursor;
    const mounts = JSON.stringify(this.mounts.list);
    const mountsSaved = mounts === this.#savedMounts;
    if (this.#dirty.size === 0 && this.#dirtyRows.size === 0 && cursorSaved && mountsSaved) return;
    const mutations = this.#rowsMutations();
    for (const [tag, key] of this.#dirty) {
      const path = tag.slice(1);
      const value = tag[0] === "b"
        ? (this.base.has(path) ? { path, ...this.base.get(path)! } : null)
        : (this.remote.has(path) ? { path, ...this.remote.get(path)! } : null);
      mutations.push([key, value]);
    }
    this.#dirty.clear();
    // Last, so a crash part way leaves the old positions: the next start resynchronises again. The cursor of
    // before namespaces goes after the positions that replace it.
    if (!mountsSaved) mutations.push([["mounts"], JSON.parse(mounts)]);
    const written = positions.map(([ns, p]) => [ns, { ...p }] as const);
    for (const [ns, p] of written) mutations.push([["position", ns], p]);
    for (const ns of forgotten) mutations.push([["position", ns], null]);
    if (this.#legacyCursor) mutations.push([["cursor"], null]);
    await writeMutations(this.#kv, mutations);
    for (const [ns, p] of written) this.#saved.set(ns, JSON.stringify(p));
    for (const ns of forgotten) this.#saved.delete(ns);
    this.#legacyCursor = false;
    this.#savedMounts = mounts;
  }

  /** Flushes and closes the KV. */
  async close(): Promise<void> {
    await this.flush();
    this.#kv.close();
  }
}

/** File of the mounts the client shows, for the commands run beside it (they never open state.kv). */
const SHOWN_MOUNTS = "mounts.json";

/** Saves where the client shows each namespace (mode 0600, via temp file and rename). */
export function saveShownMounts(root: string, mounts: readonly Mount[]): void {
  const path = join(root, STATE_DIR, SHOWN_MOUNTS);
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  Deno.writeTextFileSync(tmp, JSON.stringify(mounts) + "\n", { mode: 0o600, createNew: true });
  Deno.renameSync(tmp, path);
}

/** Whether the synced folder has anything (a file, folder or link) at `path`. */
export function existsIn(root: string, path: string): boolean {
  try {
    Deno.lstatSync(join(root, path));
    return true;
  } catch {
    return false;
  }
}

/** Where the client last showed each namespace: mount by {@linkcode viewKey} (empty before it ran). */
export async function readShownMounts(root: string): Promise<Map<string, string>> {
  try {
    const list = JSON.parse(await Deno.readTextFile(join(root, STATE_DIR, SHOWN_MOUNTS))) as Mount[];
    return new Map(list.map((m) => [viewKey(m.ns, m.path), m.mount]));
  } catch {
    return new Map();
  }
}

/** Reads the saved device identity, or null before the first login. */
export async function readDeviceInfo(root: string): Promise<DeviceInfo | null> {
  try {
    return JSON.parse(await Deno.readTextFile(join(root, STATE_DIR, "device.json"))) as DeviceInfo;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** The servers a device identity names, in order: `servers`, or else the one `server`. */
export function savedServers(info: DeviceInfo): string[] {
  return Array.isArray(info.servers) && info.servers.length > 0 ? info.servers : [info.server];
}

/**
 * Saves the servers the client now uses in the device identity (mode 0600, via temp file and rename), so that
 * the folder's other commands (versions, share, lock, …) reach them; does nothing before the first login.
 */
export async function saveServers(root: string, servers: string[]): Promise<void> {
  const info = await readDeviceInfo(root);
  if (!info) return;
  const { servers: _old, ...rest } = info;
  const updated: DeviceInfo = { ...rest, server: servers[0], ...(servers.length > 1 ? { servers } : {}) };
  await writePrivate(join(root, STATE_DIR, "device.json"), JSON.stringify(updated, null, 2) + "\n");
}

/** Saves the device identity and its token (mode 0600, via temp file and rename). */
export async function saveLogin(root: string, info: DeviceInfo, token: string): Promise<void> {
  const dir = join(root, STATE_DIR);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await writePrivate(join(dir, "token"), token);
  await writePrivate(join(dir, "device.json"), JSON.stringify(info, null, 2) + "\n");
}

/** The saved token, or null. */
export async function readToken(root: string): Promise<string | null> {
  try {
    return (await Deno.readTextFile(join(root, STATE_DIR, "token"))).trim() || null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/** Removes a saved token that the server no longer accepts. */
export async function forgetToken(root: string): Promise<void> {
  await Deno.remove(join(root, STATE_DIR, "token")).catch(() => {});
}

/** Saves the PEM of the CA the client trusts, so other commands of this folder can reach the server too. */
export async function saveCa(root: string, pem: string): Promise<void> {
  await Deno.mkdir(join(root, STATE_DIR), { recursive: true, mode: 0o700 });
  await writePrivate(join(root, STATE_DIR, "ca.pem"), pem);
}

/** Removes a saved CA (the client now trusts the system's CAs). */
export async function forgetCa(root: string): Promise<void> {
  await Deno.remove(join(root, STATE_DIR, "ca.pem")).catch(() => {});
}

/** The saved CA PEM, or null (the system's trusted CAs are used then). */
export async function readCa(root: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(join(root, STATE_DIR, "ca.pem"));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

async function writePrivate(path: string, text: string): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600, createNew: true });
  await Deno.rename(tmp, path);
}
