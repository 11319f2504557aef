// Metadata over Deno KV: users, device tokens, entries, the per-namespace journal, manifests and chunk references.
import { createHash } from "node:crypto";
import { ancestorsOf, baseName, parentPath } from "../protocol/paths.ts";
import { fileHashOfChunks } from "../protocol/hash.ts";
import { SharedExclusiveLock } from "./gc_lock.ts";
import { splitMutations, writeMutations } from "../protocol/kv_batches.ts";
import {
  type Change,
  type ChangeResult,
  decodeRows,
  encodeRows,
  MANIFEST_ROW_BYTES,
  type UploadChange,
  type WireEntry,
} from "../protocol/messages.ts";

/** A user account. Passwords are stored as scrypt hashes with a per-user salt. */
export interface UserRecord {
  name: string;
  salt: string;
  hash: string;
  created: number;
}

/** A device token, stored under the SHA-256 of the token. */
export interface TokenRecord {
  user: string;
  deviceId: string;
  device: string;
  created: number;
  expires: number;
}

/** A live entry of a namespace (deleted paths have no entry; the journal keeps the deletion). */
export type EntryRecord = Omit<WireEntry, "deleted">;

/** One manifest row: a chunk id and its size. */
export interface ChunkRow {
  id: string;
  size: number;
}

/** Checks that the caller may reference these chunks; returns the ids it may not (absent or never uploaded by it). */
export type ChunkCheck = (ids: string[]) => Promise<string[]>;

/** Makes chunks durable before a commit references them. */
export type ChunkSync = (ids: Set<string>) => Promise<void>;

const PARENT_KEY_MAX = 1024;
/** Manifest rows kept in memory (about 100 bytes each). */
const MANIFEST_CACHE_ROWS = 200_000;

/** A least-recently-used cache bounded by a total weight. */
class LruCache<T> {
  #map = new Map<string, T>();
  #weight = 0;
  constructor(readonly capacity: number, readonly weigh: (value: T) => number) {}
  get(key: string): T | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }
  set(key: string, value: T): void {
    this.delete(key);
    const weight = this.weigh(value);
    if (weight > this.capacity) return;
    this.#map.set(key, value);
    this.#weight += weight;
    for (const [oldest, old] of this.#map) {
      if (this.#weight <= this.capacity) break;
      this.#map.delete(oldest);
      this.#weight -= this.weigh(old);
    }
  }
  delete(key: string): void {
    const value = this.#map.get(key);
    if (value === undefined) return;
    this.#map.delete(key);
    this.#weight -= this.weigh(value);
  }
}
const ROWS_PER_PART = Math.floor(60_000 / MANIFEST_ROW_BYTES);
const MUTATIONS_PER_ATOMIC = 800;
const PENDING_CHUNK_MS = 24 * 3600 * 1000;

function sha256Hex(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/**
 * The key part naming a folder: its path, or for a long path the raw SHA-256 bytes (a Uint8Array key part,
 * which no string path can equal).
 */
function parentKey(path: string | null): string | Uint8Array {
  if (path === null) return "";
  return new TextEncoder().encode(path).length <= PARENT_KEY_MAX
    ? path
    : new Uint8Array(createHash("sha256").update(path).digest());
}

/** The KV key of a path's entry: parent key then name, so a folder's children share a prefix. */
function entryKey(ns: string, path: string): Deno.KvKey {
  return ["e", ns, parentKey(parentPath(path)), baseName(path)];
}

function toWire(entry: EntryRecord): WireEntry {
  return { ...entry };
}

class Refusal extends Error {
  constructor(readonly code: string, message: string, readonly current?: EntryRecord | null) {
    super(message);
  }
}

/** A simple async mutex, one per namespace, so commits of a namespace run one at a time. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(() => {}, () => {});
    return result;
  }
}

/** The server's metadata. The server process owns the KV; other commands go through it. */
export class MetadataStore {
  readonly kv: Deno.Kv;
  /** Uploads and commits hold it shared; garbage collection holds it alone. */
  readonly gcLock = new SharedExclusiveLock();
  /** Manifests are immutable (named by their content), so recent ones are served from memory. */
  #manifests = new LruCache<ChunkRow[]>(MANIFEST_CACHE_ROWS, (rows) => rows.length + 1);
  #locks = new Map<string, Mutex>();
  #now: () => number;

  /** Wraps an open KV. */
  constructor(kv: Deno.Kv, options: { now?: () => number } = {}) {
    this.kv = kv;
    this.#now = options.now ?? Date.now;
  }

  /** Opens the KV at a file path or KV Connect URL. */
  static async open(pathOrUrl: string, options: { now?: () => number } = {}): Promise<MetadataStore> {
    return new MetadataStore(await Deno.openKv(pathOrUrl), options);
  }

  /** The journal's epoch: a random id made once with the store, so devices can tell another journal. */
  async journalEpoch(): Promise<string> {
    const key = ["meta", "epoch"];
    while (true) {
      const found = await this.kv.get<string>(key);
      if (found.value) return found.value;
      const epoch = crypto.randomUUID();
      if ((await this.kv.atomic().check(found).set(key, epoch).commit()).ok) return epoch;
    }
  }

  /** Closes the KV. */
  close(): void {
    this.kv.close();
  }

  #lock(ns: string): Mutex {
    let lock = this.#locks.get(ns);
    if (!lock) this.#locks.set(ns, lock = new Mutex());
    return lock;
  }

  // ---- users and tokens ----

  /** The user record, or null. */
  async getUser(name: string): Promise<UserRecord | null> {
    return (await this.kv.get<UserRecord>(["user", name])).value;
  }

  /** Creates a user; false if the name is taken. */
  async addUser(user: UserRecord): Promise<boolean> {
    const result = await this.kv.atomic().check({ key: ["user", user.name], versionstamp: null })
      .set(["user", user.name], user).commit();
    return result.ok;
  }

  /** Replaces a user's password hash and revokes every device token of that user. */
  async setPassword(name: string, salt: string, hash: string): Promise<boolean> {
    const user = await this.getUser(name);
    if (!user) return false;
    await this.kv.set(["user", name], { ...user, salt, hash });
    await this.revokeTokens(name);
    return true;
  }

  /** Removes a user, the user's tokens, files and journal. */
  async removeUser(name: string): Promise<boolean> {
    const user = await this.getUser(name);
    if (!user) return false;
    await this.kv.delete(["user", name]);
    await this.revokeTokens(name);
    for (const prefix of [["e", name], ["j", name], ["c", name], ["p", name], ["device", name]]) {
      await this.#deletePrefix(prefix);
    }
    await this.kv.delete(["seq", name]);
    return true;
  }

  /** Every user name. */
  async listUsers(): Promise<UserRecord[]> {
    const users: UserRecord[] = [];
    for await (const entry of this.kv.list<UserRecord>({ prefix: ["user"] })) users.push(entry.value);
    return users;
  }

  async #deletePrefix(prefix: Deno.KvKey): Promise<void> {
    let atomic = this.kv.atomic();
    let count = 0;
    for await (const entry of this.kv.list({ prefix })) {
      atomic.delete(entry.key);
      if (++count % 500 === 0) {
        await atomic.commit();
        atomic = this.kv.atomic();
      }
    }
    await atomic.commit();
  }

  /** Stores a new device token (by its hash). */
  async addToken(tokenHash: string, record: TokenRecord): Promise<void> {
    await this.kv.atomic()
      .set(["token", tokenHash], record)
      .set(["device", record.user, record.deviceId], {
        tokenHash,
        device: record.device,
        created: record.created,
      })
      .commit();
  }

  /** The token record, or null if unknown. Expiry is the caller's check. */
  async getToken(tokenHash: string): Promise<TokenRecord | null> {
    return (await this.kv.get<TokenRecord>(["token", tokenHash])).value;
  }

  /** Extends a token's expiry. */
  async touchToken(tokenHash: string, expires: number): Promise<void> {
    const current = await this.getToken(tokenHash);
    if (current) await this.kv.set(["token", tokenHash], { ...current, expires });
  }

  /** Revokes every token of a user. */
  async revokeTokens(user: string): Promise<void> {
    for await (const entry of this.kv.list<{ tokenHash: string }>({ prefix: ["device", user] })) {
      await this.kv.atomic().delete(["token", entry.value.tokenHash]).delete(entry.key).commit();
    }
  }

  // ---- entries and journal ----

  /** The live entry at a path, or null. */
  async getEntry(ns: string, path: string): Promise<EntryRecord | null> {
    return (await this.kv.get<EntryRecord>(entryKey(ns, path))).value;
  }

  /** The namespace's latest sequence number (0 when empty). */
  async latestSeq(ns: string): Promise<number> {
    return (await this.kv.get<number>(["seq", ns])).value ?? 0;
  }

  /** Journal entries with seq > since, oldest first. */
  async changesSince(ns: string, since: number, limit: number): Promise<WireEntry[]> {
    const out: WireEntry[] = [];
    const iter = this.kv.list<WireEntry>({
      start: ["j", ns, since + 1],
      end: ["j", ns, Number.MAX_SAFE_INTEGER],
    }, {
      limit,
      batchSize: Math.min(limit, 1000),
    });
    for await (const entry of iter) out.push(entry.value);
    return out;
  }

  /** Every live entry of a namespace. */
  async *listEntries(ns: string): AsyncIterable<EntryRecord> {
    for await (const entry of this.kv.list<EntryRecord>({ prefix: ["e", ns] }, { batchSize: 1000 })) {
      yield entry.value;
    }
  }

  // ---- manifests ----

  /** The chunk rows of a file version, or null if the manifest is unknown. */
  async getManifest(hash: string): Promise<ChunkRow[] | null> {
    const cached = this.#manifests.get(hash);
    if (cached) return cached;
    const meta = await this.kv.get<{ size: number; count: number; parts: number }>(["m", hash]);
    if (!meta.value) return null;
    const rows: ChunkRow[] = [];
    for await (const part of this.kv.list<Uint8Array>({ prefix: ["mp", hash] })) {
      rows.push(...decodeRows(part.value));
    }
    if (rows.length !== meta.value.count) throw new Error(`Manifest ${hash} is damaged: ${rows.length} rows`);
    this.#manifests.set(hash, rows);
    return rows;
  }

  /** Forgets a manifest (garbage collection removed it). */
  forgetManifest(hash: string): void {
    this.#manifests.delete(hash);
  }

  /**
   * The KV mutations that store a manifest (parts first, the meta key last: a manifest is visible only once all
   * its parts are written), or none if it is stored already. A commit writes them for all its files at once.
   */
  async #manifestMutations(hash: string, size: number, rows: ChunkRow[]): Promise<[Deno.KvKey, unknown][]> {
    if (this.#manifests.get(hash) || (await this.kv.get(["m", hash])).versionstamp) return [];
    const parts = Math.ceil(rows.length / ROWS_PER_PART);
    const mutations: [Deno.KvKey, unknown][] = [];
    for (let i = 0; i < parts; i++) {
      mutations.push([["mp", hash, i], encodeRows(rows.slice(i * ROWS_PER_PART, (i + 1) * ROWS_PER_PART))]);
    }
    mutations.push([["m", hash], { size, count: rows.length, parts }]);
    return mutations;
  }

  // ---- chunk references ----

  /** Which of these chunk ids the namespace references (uploaded or committed). */
  async referencedChunks(ns: string, ids: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (let i = 0; i < ids.length; i += 10) {
      const slice = ids.slice(i, i + 10);
      const [committed, pending] = await Promise.all([
        this.kv.getMany(slice.map((id) => ["c", ns, id])),
        this.kv.getMany(slice.map((id) => ["p", ns, id])),
      ]);
      slice.forEach((id, j) => {
        if (committed[j].versionstamp || pending[j].versionstamp) found.add(id);
      });
    }
    return found;
  }

  #pendingQueue: { key: Deno.KvKey; done: () => void; fail: (e: Error) => void }[] = [];
  #pendingFlushing = false;

  /**
   * Records that the namespace uploaded a chunk not yet committed (it expires unless a commit references it).
   * Calls made while a write is under way are grouped into the next atomic write (group commit); each call
   * resolves once its record is durable.
   */
  addPendingChunk(ns: string, id: string): Promise<void> {
    const promise = new Promise<void>((done, fail) =>
      this.#pendingQueue.push({ key: ["p", ns, id], done, fail })
    );
    // Group commit: one write at a time; whatever arrives meanwhile goes into the next one.
    if (!this.#pendingFlushing) this.#flushPending();
    return promise;
  }

  /** Resolves once every pending reference recorded so far is written. */
  async settlePending(): Promise<void> {
    while (this.#pendingFlushing || this.#pendingQueue.length > 0) {
      if (!this.#pendingFlushing) this.#flushPending();
      await this.#pendingRun;
    }
  }

  #pendingRun: Promise<void> = Promise.resolve();

  #flushPending(): Promise<void> {
    this.#pendingRun = this.#flushPendingNow();
    return this.#pendingRun;
  }

  async #flushPendingNow(): Promise<void> {
    this.#pendingFlushing = true;
    try {
      while (this.#pendingQueue.length > 0) {
        const until = this.#now() + PENDING_CHUNK_MS;
        const queued = this.#pendingQueue.splice(0, MUTATIONS_PER_ATOMIC);
        const tagged = queued.map((item) =>
          [item.key, { until }, item] as [Deno.KvKey, unknown, typeof item]
        );
        for (const batch of splitMutations(tagged)) {
          const atomic = this.kv.atomic();
          for (const [key, value] of batch) atomic.set(key, value);
          try {
            await atomic.commit();
            for (const [, , item] of batch) item.done();
          } catch (error) {
            for (const [, , item] of batch) item.fail(error as Error);
          }
        }
      }
    } finally {
      this.#pendingFlushing = false;
    }
  }

  async #setPermanentChunks(ns: string, ids: Iterable<string>): Promise<void> {
    await writeMutations(this.kv, [...ids].map((id) => [["c", ns, id], true]));
  }

  // ---- commit ----

  /**
   * Applies a batch of changes to a namespace. Each change is checked on its own against the current state
   * (compare-and-set on its base revision) and either committed with the next sequence numbers or refused with a
   * reason; refused changes do not stop the others. Every accepted change is appended to the journal.
   * Returns one result per change and the journal entries written, in order.
   */
  commit(
    ns: string,
    device: string,
    changes: Change[],
    rows: Uint8Array,
    checkChunks: ChunkCheck,
    syncChunks?: ChunkSync,
  ): Promise<{ results: ChangeResult[]; journal: WireEntry[] }> {
    return this.gcLock.shared(() =>
      this.#lock(ns).run(() => this.#commit(ns, device, changes, rows, checkChunks, syncChunks))
    );
  }

  async #commit(
    ns: string,
    device: string,
    changes: Change[],
    rows: Uint8Array,
    checkChunks: ChunkCheck,
    syncChunks?: ChunkSync,
  ): Promise<{ results: ChangeResult[]; journal: WireEntry[] }> {
    const seqEntry = await this.kv.get<number>(["seq", ns]);
    let seq = seqEntry.value ?? 0;
    const overlay = new Map<string, EntryRecord | null>();
    const journal: WireEntry[] = [];
    const results: ChangeResult[] = [];
    const permanent = new Set<string>();
    const newManifests = new Map<string, { rows: ChunkRow[]; mutations: [Deno.KvKey, unknown][] }>();

    // Read every entry the batch touches (paths, sources, parents) and whether its manifests exist, in a few
    // parallel multi-key reads instead of one read per change.
    const fetched = new Map<string, EntryRecord | null>();
    const wanted = new Set<string>();
    const hashes = new Set<string>();
    for (const change of changes) {
      for (const path of change.op === "move" ? [change.from, change.path] : [change.path]) {
        wanted.add(path);
        for (const ancestor of ancestorsOf(path)) wanted.add(ancestor);
      }
      if (change.op === "upload" && !this.#manifests.get(change.hash)) hashes.add(change.hash);
    }
    const knownManifests = new Set<string>();
    await Promise.all([
      ...chunked([...wanted], 10).map(async (paths) => {
        const got = await this.kv.getMany<EntryRecord[]>(paths.map((p) => entryKey(ns, p)));
        paths.forEach((p, i) => fetched.set(p, got[i].value));
      }),
      ...chunked([...hashes], 10).map(async (list) => {
        const got = await this.kv.getMany(list.map((h) => ["m", h]));
        list.forEach((h, i) => got[i].versionstamp && knownManifests.add(h));
      }),
    ]);
    const current = async (path: string): Promise<EntryRecord | null> => {
      if (overlay.has(path)) return overlay.get(path)!;
      if (fetched.has(path)) return fetched.get(path)!;
      return await this.getEntry(ns, path);
    };
    const hasLiveChildren = async (path: string): Promise<boolean> => {
      for (const [p, e] of overlay) if (e && parentPath(p) === path) return true;
      const prefix = ["e", ns, parentKey(path)];
      for await (const child of this.kv.list<EntryRecord>({ prefix }, { batchSize: 16 })) {
        if (!overlay.has(child.value.path) || overlay.get(child.value.path)) return true;
      }
      return false;
    };

    for (const change of changes) {
      const staged: { path: string; entry: EntryRecord | null; wire: WireEntry }[] = [];
      let nextSeq = seq;
      const stage = (
        path: string,
        entry: Omit<EntryRecord, "rev" | "device"> | null,
        deletedKind = "file",
      ) => {
        const rev = ++nextSeq;
        const record = entry ? { ...entry, path, rev, device } : null;
        const wire: WireEntry = record ? toWire(record) : {
          path,
          kind: deletedKind as "file" | "dir",
          hash: "",
          size: 0,
          mtime: 0,
          rev,
          device,
          deleted: true,
        };
        staged.push({ path, entry: record, wire });
      };
      const view = async (path: string) => {
        for (let i = staged.length - 1; i >= 0; i--) if (staged[i].path === path) return staged[i].entry;
        return await current(path);
      };
      const ensureParents = async (path: string) => {
        for (const ancestor of ancestorsOf(path)) {
          const existing = await view(ancestor);
          if (existing?.kind === "dir") continue;
          if (existing?.kind === "file") {
            throw new Refusal("conflict", `Cannot create "${path}": "${ancestor}" is a file`, existing);
          }
          stage(ancestor, { path: ancestor, kind: "dir", hash: "", size: 0, mtime: 0 });
        }
      };
      try {
        switch (change.op) {
          case "upload": {
            const now = await view(change.path);
            checkBase(change.path, now, change.baseRev);
            if (now?.kind === "dir" && await hasLiveChildren(change.path)) {
              throw new Refusal("not_empty", `Cannot replace folder "${change.path}": it is not empty`, now);
            }
            const { chunkRows, inserted } = await this.#rowsOf(change, rows, now);
            const missing = await checkChunks([...new Set(inserted.map((r) => r.id))]);
            if (missing.length > 0) {
              throw new Refusal("missing_chunks", `${missing.length} chunks of "${change.path}" are missing`);
            }
            if (!newManifests.has(change.hash) && !knownManifests.has(change.hash)) {
              const mutations = await this.#manifestMutations(change.hash, change.size, chunkRows);
              if (mutations.length > 0) newManifests.set(change.hash, { rows: chunkRows, mutations });
            }
            for (const row of inserted) permanent.add(row.id);
            await ensureParents(change.path);
            stage(change.path, {
              path: change.path,
              kind: "file",
              hash: change.hash,
              size: change.size,
              mtime: change.mtime,
            });
            break;
          }
          case "mkdir": {
            const now = await view(change.path);
            if (now?.kind === "dir") break;
            if (now) checkBase(change.path, now, change.baseRev);
            await ensureParents(change.path);
            stage(change.path, { path: change.path, kind: "dir", hash: "", size: 0, mtime: 0 });
            break;
          }
          case "delete": {
            const now = await view(change.path);
            if (!now) break;
            checkBase(change.path, now, change.baseRev);
            if (now.kind === "dir" && await hasLiveChildren(change.path)) {
              throw new Refusal("not_empty", `Cannot delete folder "${change.path}": it is not empty`, now);
            }
            stage(change.path, null, now.kind);
            break;
          }
          case "move": {
            const source = await view(change.from);
            if (!source || source.kind !== "file") {
              throw new Refusal("conflict", `Cannot move "${change.from}": it does not exist`, source);
            }
            checkBase(change.from, source, change.baseRev);
            const target = await view(change.path);
            if (target) throw new Refusal("exists", `Cannot move to "${change.path}": it exists`, target);
            await ensureParents(change.path);
            stage(change.from, null, "file");
            stage(change.path, { ...source, path: change.path });
            break;
          }
        }
      } catch (error) {
        if (!(error instanceof Refusal)) throw error;
        results.push({ ok: false, code: error.code, error: error.message, current: error.current ?? null });
        continue;
      }
      for (const { path, entry } of staged) overlay.set(path, entry);
      const entries = staged.map((s) => s.wire);
      seq = nextSeq;
      journal.push(...entries);
      results.push({ ok: true, entries });
    }

    if (journal.length > 0) {
      await syncChunks?.(permanent);
      await writeMutations(this.kv, [...newManifests.values()].flatMap((m) => m.mutations));
      for (const [hash, { rows }] of newManifests) this.#manifests.set(hash, rows);
      await this.#setPermanentChunks(ns, permanent);
      await this.#write(ns, seqEntry.versionstamp, seq, overlay, journal, seqEntry.value ?? 0);
    }
    return { results, journal };
  }

  async #rowsOf(
    change: UploadChange,
    rows: Uint8Array,
    now: EntryRecord | null,
  ): Promise<{ chunkRows: ChunkRow[]; inserted: ChunkRow[] }> {
    const start = change.rows.offset * MANIFEST_ROW_BYTES;
    const end = start + change.rows.count * MANIFEST_ROW_BYTES;
    if (end > rows.length) throw new Refusal("bad_request", `Rows of "${change.path}" lie outside the data`);
    const inserted = decodeRows(rows.subarray(start, end));
    let chunkRows = inserted;
    if (change.from) {
      if (!now || now.kind !== "file" || now.hash !== change.from.hash) {
        throw new Refusal(
          "bad_base",
          `Cannot apply a delta to "${change.path}": its base version is not current`,
          now,
        );
      }
      const base = await this.getManifest(change.from.hash);
      if (!base || change.from.head + change.from.tail > base.length) {
        throw new Refusal(
          "bad_base",
          `Cannot apply a delta to "${change.path}": base manifest mismatch`,
          now,
        );
      }
      chunkRows = [
        ...base.slice(0, change.from.head),
        ...inserted,
        ...base.slice(base.length - change.from.tail),
      ];
    }
    let size = 0;
    for (const row of chunkRows) size += row.size;
    if (size !== change.size) {
      throw new Refusal(
        "bad_request",
        `Chunks of "${change.path}" add up to ${size} bytes, not ${change.size}`,
      );
    }
    if (fileHashOfChunks(chunkRows.map((r) => r.id)) !== change.hash) {
      throw new Refusal("bad_hash", `Chunks of "${change.path}" do not match its hash`);
    }
    return { chunkRows, inserted };
  }

  async #write(
    ns: string,
    versionstamp: string | null,
    seq: number,
    overlay: Map<string, EntryRecord | null>,
    journal: WireEntry[],
    oldSeq: number,
  ): Promise<void> {
    const mutations: [Deno.KvKey, unknown][] = [];
    for (const [path, entry] of overlay) mutations.push([entryKey(ns, path), entry]);
    for (const wire of journal) mutations.push([["j", ns, wire.rev], wire]);
    let stamp = versionstamp;
    const groups = splitMutations(mutations);
    if (groups.length === 0) groups.push([]);
    for (let g = 0; g < groups.length; g++) {
      const last = g === groups.length - 1;
      const atomic = this.kv.atomic().check({ key: ["seq", ns], versionstamp: stamp });
      for (const [key, value] of groups[g]) value === null ? atomic.delete(key) : atomic.set(key, value);
      // The counter moves in every part (to chain the checks) and reaches `seq` with the last one.
      atomic.set(["seq", ns], last ? seq : oldSeq);
      const result = await atomic.commit();
      if (!result.ok) throw new Error(`Concurrent modification of namespace "${ns}"; retry`);
      stamp = result.versionstamp;
    }
  }
}

function chunked<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function checkBase(path: string, now: EntryRecord | null, baseRev: number): void {
  if (now === null) {
    if (baseRev !== 0) throw new Refusal("conflict", `"${path}" was deleted on the server`, null);
    return;
  }
  if (now.rev !== baseRev) {
    throw new Refusal("conflict", `"${path}" changed on the server (rev ${now.rev}, not ${baseRev})`, now);
  }
}

/** Hex SHA-256 of a token, the form in which tokens are stored. */
export function tokenHash(token: string): string {
  return sha256Hex(token);
}
