// The metadata store over Deno KV: key layout, manifest cache, group commit of chunk refs, crash-safe commits.
import { deviceOf, type DeviceRow } from "./device_rows.ts";
import { createHash, randomBytes } from "node:crypto";
import { ancestorsOf, baseName, foldName, parentPath } from "../protocol/paths.ts";
import { packUnits, splitMutations, writeMutations } from "../protocol/kv_batches.ts";
import {
  type ChunkRow,
  decodeRows,
  encodeRows,
  MANIFEST_ROW_BYTES,
  type WireEntry,
} from "../protocol/messages.ts";
import { insertedRows, planCommit, Refusal, type Step } from "./commit_rules.ts";
import { access } from "./access.ts";
import { SharedExclusiveLock } from "./gc_lock.ts";
import type {
  ChunkRef,
  CommitOptions,
  CommitOutcome,
  CompactionPoint,
  DeviceRecord,
  EntryRecord,
  JournalMark,
  LockChange,
  LockRecord,
  MetadataStore,
  NamespaceGrant,
  NamespaceRecord,
  RetentionPolicy,
  TokenRecord,
  TrashRecord,
  UserRecord,
  VersionRecord,
} from "./metadata_store.ts";

export type * from "./metadata_store.ts";

const PATH_KEY_MAX = 1024;
/** Manifest rows kept in memory (about 100 bytes each). */
const MANIFEST_CACHE_ROWS = 200_000;
const ROWS_PER_PART = Math.floor(60_000 / MANIFEST_ROW_BYTES);
const PENDING_PER_ATOMIC = 800;
const PENDING_CHUNK_MS = 24 * 3600 * 1000;

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

/**
 * The key part naming a path: the path itself, or for a long path the raw SHA-256 bytes (a Uint8Array key
 * part, which no string path can equal).
 */
function pathKey(path: string | null): string | Uint8Array {
  if (path === null) return "";
  return new TextEncoder().encode(path).length <= PATH_KEY_MAX
    ? path
    : new Uint8Array(createHash("sha256").update(path).digest());
}

/** The KV key of a path's entry: parent key then name, so a folder's children share a prefix. */
function entryKey(ns: string, path: string): Deno.KvKey {
  return ["e", ns, pathKey(parentPath(path)), baseName(path)];
}

function versionKey(ns: string, path: string, rev: number): Deno.KvKey {
  return ["v", ns, pathKey(path), rev];
}

function trashKey(ns: string, rev: number): Deno.KvKey {
  return ["t", ns, rev];
}

function lockKey(ns: string, path: string): Deno.KvKey {
  return ["lock", ns, pathKey(path)];
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

/** Options of {@linkcode KvMetadataStore}. */
export interface KvMetadataOptions {
  /** The clock. @default Date.now */
  now?: () => number;
  /**
   * Test hook: called (and awaited) before each KV atomic of a commit's entries and journal (index from 0); a
   * throw stops the commit there, as a crash would, and a promise that never settles holds it there.
   */
  beforeAtomic?: (index: number) => void | Promise<void>;
}

/** The server's metadata in Deno KV. The server process owns the KV; other commands go through it. */
export class KvMetadataStore implements MetadataStore {
  readonly kv: Deno.Kv;
  readonly gcLock = new SharedExclusiveLock();
  /** Manifests are immutable (named by their content), so recent ones are served from memory. */
  #manifests = new LruCache<ChunkRow[]>(MANIFEST_CACHE_ROWS, (rows) => rows.length + 1);
  #locks = new Map<string, Mutex>();
  #now: () => number;
  #beforeAtomic?: (index: number) => void | Promise<void>;

  /** Wraps an open KV. */
  constructor(kv: Deno.Kv, options: KvMetadataOptions = {}) {
    this.kv = kv;
    this.#now = options.now ?? Date.now;
    this.#beforeAtomic = options.beforeAtomic;
  }

  /** Opens the KV at a file path or KV Connect URL. */
  static async open(pathOrUrl: string, options: KvMetadataOptions = {}): Promise<KvMetadataStore> {
    return new KvMetadataStore(await Deno.openKv(pathOrUrl), options);
  }

  close(): void {
    this.kv.close();
  }

  #lock(ns: string): Mutex {
    let lock = this.#locks.get(ns);
    if (!lock) this.#locks.set(ns, lock = new Mutex());
    return lock;
  }

  // ---- users and tokens ----

  async getUser(name: string): Promise<UserRecord | null> {
    return (await this.kv.get<UserRecord>(["user", name])).value;
  }

  async addUser(user: UserRecord): Promise<boolean> {
    const own: NamespaceRecord = {
      id: user.name,
      owner: user.name,
      kind: "user",
      name: user.name,
      created: user.created,
    };
    const result = await this.kv.atomic().check({ key: ["user", user.name], versionstamp: null })
      .set(["user", user.name], user).set(["ns", user.name], own).commit();
    return result.ok;
  }

  async setPassword(name: string, salt: string, hash: string): Promise<boolean> {
    const user = await this.getUser(name);
    if (!user) return false;
    await this.kv.set(["user", name], { ...user, salt, hash });
    await this.revokeTokens(name);
    return true;
  }

  async setQuota(name: string, quota: number | null | undefined): Promise<boolean> {
    const entry = await this.kv.get<UserRecord>(["user", name]);
    if (!entry.value) return false;
    const { quota: _old, ...user } = entry.value;
    const result = await this.kv.atomic().check(entry)
      .set(["user", name], quota === undefined ? user : { ...user, quota }).commit();
    return result.ok || await this.setQuota(name, quota);
  }

  async removeUser(name: string): Promise<boolean> {
    const user = await this.getUser(name);
    if (!user) return false;
    await this.kv.delete(["user", name]);
    await this.revokeTokens(name);
    for (const prefix of ["e", "j", "c", "p", "v", "t", "device", "lock"]) {
      await this.#deletePrefix([prefix, name]);
    }
    await this.kv.delete(["seq", name]);
    await this.kv.atomic().delete(["jc", name]).delete(["jm", name]).commit();
    await this.kv.delete(["usage", name]);
    await this.kv.delete(["ns", name]);
    // Grants to the user go with it, so a later user of the same name inherits none of them.
    for await (const entry of this.kv.list({ prefix: ["nsg", name] })) {
      const id = entry.key[2] as string;
      if (id !== name) await this.updateGrants(id, (grants) => grants.filter((g) => g.user !== name));
    }
    await this.#deletePrefix(["nsg", name]);
    return true;
  }

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

  async getToken(tokenHash: string): Promise<TokenRecord | null> {
    return (await this.kv.get<TokenRecord>(["token", tokenHash])).value;
  }

  async touchToken(tokenHash: string, expires: number): Promise<void> {
    await this.#updateToken(tokenHash, (current) => ({ ...current, expires }));
  }

  /** Rewrites a live (not revoked) token record; compare-and-set, so a revocation in between is never undone. */
  async #updateToken(tokenHash: string, change: (current: TokenRecord) => TokenRecord): Promise<void> {
    while (true) {
      const entry = await this.kv.get<TokenRecord>(["token", tokenHash]);
      if (!entry.value || entry.value.revoked !== undefined) return;
      if ((await this.kv.atomic().check(entry).set(entry.key, change(entry.value)).commit()).ok) return;
    }
  }

  async revokeTokens(user: string): Promise<void> {
    for await (const entry of this.kv.list<{ tokenHash: string }>({ prefix: ["device", user] })) {
      await this.kv.atomic().delete(["token", entry.value.tokenHash]).delete(entry.key).commit();
    }
  }

  // ---- devices ----

  async listDevices(user: string): Promise<DeviceRecord[]> {
    const devices: DeviceRecord[] = [];
    for await (const entry of this.kv.list<DeviceRow>({ prefix: ["device", user] })) {
      const token = await this.getToken(entry.value.tokenHash);
      devices.push(deviceOf(String(entry.key[2]), entry.value, token));
    }
    return devices.sort((a, b) => a.created - b.created || a.deviceId.localeCompare(b.deviceId));
  }

  async revokeDevice(user: string, deviceId: string, at: number): Promise<DeviceRecord | null> {
    while (true) {
      const row = await this.kv.get<DeviceRow>(["device", user, deviceId]);
      if (!row.value) return null;
      const token = await this.kv.get<TokenRecord>(["token", row.value.tokenHash]);
      if (row.value.revoked !== undefined) return deviceOf(deviceId, row.value, token.value);
      const revokedRow = { ...row.value, revoked: at };
      const atomic = this.kv.atomic().check(row, token).set(row.key, revokedRow);
      if (token.value) atomic.set(token.key, { ...token.value, revoked: at });
      if ((await atomic.commit()).ok) return deviceOf(deviceId, revokedRow, token.value);
    }
  }

  async markSeen(tokenHash: string, at: number): Promise<void> {
    await this.#updateToken(tokenHash, (current) => ({ ...current, lastSeen: at }));
  }

  // ---- entries and journal ----

  async getEntry(ns: string, path: string): Promise<EntryRecord | null> {
    return (await this.kv.get<EntryRecord>(entryKey(ns, path))).value;
  }

  async getEntries(ns: string, paths: readonly string[]): Promise<(EntryRecord | null)[]> {
    const slices = await Promise.all(
      chunked([...paths], 10).map((slice) =>
        this.kv.getMany<EntryRecord[]>(slice.map((p) => entryKey(ns, p)))
      ),
    );
    return slices.flat().map((got) => got.value);
  }

  async latestSeq(ns: string): Promise<number> {
    return (await this.kv.get<number>(["seq", ns])).value ?? 0;
  }

  async latestSeqs(namespaces: readonly string[]): Promise<number[]> {
    const slices = await Promise.all(
      chunked([...namespaces], 10).map((slice) => this.kv.getMany<number[]>(slice.map((ns) => ["seq", ns]))),
    );
    return slices.flat().map((got) => got.value ?? 0);
  }

  async changesSince(ns: string, since: number, limit: number): Promise<WireEntry[]> {
    const out: WireEntry[] = [];
    const iter = this.kv.list<WireEntry>({
      start: ["j", ns, since + 1],
      end: ["j", ns, Number.MAX_SAFE_INTEGER],
    }, { limit, batchSize: Math.min(limit, 1000) });
    for await (const entry of iter) out.push(entry.value);
    return out;
  }

  async changesBefore(ns: string, before: number, limit: number): Promise<WireEntry[]> {
    const out: WireEntry[] = [];
    const iter = this.kv.list<WireEntry>({ start: ["j", ns, 0], end: ["j", ns, Math.max(0, before)] }, {
      limit,
      reverse: true,
      batchSize: Math.min(limit, 1000),
    });
    for await (const entry of iter) out.push(entry.value);
    return out;
  }

  async *listNamespaces(): AsyncIterable<string> {
    for await (const entry of this.kv.list({ prefix: ["seq"] })) yield entry.key[1] as string;
  }

  async *listEntries(ns: string): AsyncIterable<EntryRecord> {
    for await (const entry of this.kv.list<EntryRecord>({ prefix: ["e", ns] }, { batchSize: 1000 })) {
      yield entry.value;
    }
  }

  // ---- manifests ----

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

  getManifests(hashes: readonly string[]): Promise<(ChunkRow[] | null)[]> {
    // Each is a cache hit or a read of its own (a manifest's parts are a list), all at once.
    return Promise.all(hashes.map((hash) => this.getManifest(hash)));
  }

  async *listManifests(): AsyncIterable<string> {
    for await (const meta of this.kv.list({ prefix: ["m"] }, { batchSize: 1000 })) {
      yield meta.key[1] as string;
    }
  }

  async deleteManifest(hash: string): Promise<void> {
    this.#manifests.delete(hash);
    // The meta key first: a manifest is visible only while it is there, so a crash leaves only dead parts.
    await this.kv.delete(["m", hash]);
    const parts: [Deno.KvKey, unknown][] = [];
    for await (const part of this.kv.list({ prefix: ["mp", hash] })) parts.push([part.key, null]);
    await writeMutations(this.kv, parts);
  }

  async upgradeManifests(sizeOf: (id: string) => Promise<number | null>): Promise<string[] | null> {
    const mark = ["config", "manifests-checked"];
    if ((await this.kv.get(mark)).versionstamp) return null;
    const fixed: string[] = [];
    for await (const hash of this.listManifests()) {
      const rows = await this.getManifest(hash);
      if (!rows) continue;
      let wrong = false;
      const real = await Promise.all(rows.map(async (row) => {
        const size = await sizeOf(row.id);
        if (size === null || size === row.size) return row;
        wrong = true;
        return { id: row.id, size };
      }));
      if (!wrong) continue;
      const size = real.reduce((n, r) => n + r.size, 0);
      await writeMutations(this.kv, this.#manifestMutations(hash, size, real));
      this.#manifests.set(hash, real);
      fixed.push(hash);
    }
    await this.kv.set(mark, { at: this.#now() });
    return fixed;
  }

  /** The KV mutations that store a manifest: parts first, the meta key last (visible once complete). */
  #manifestMutations(hash: string, size: number, rows: ChunkRow[]): [Deno.KvKey, unknown][] {
    const parts = Math.ceil(rows.length / ROWS_PER_PART);
    const mutations: [Deno.KvKey, unknown][] = [];
    for (let i = 0; i < parts; i++) {
      mutations.push([["mp", hash, i], encodeRows(rows.slice(i * ROWS_PER_PART, (i + 1) * ROWS_PER_PART))]);
    }
    mutations.push([["m", hash], { size, count: rows.length, parts }]);
    return mutations;
  }

  // ---- chunk references ----

  async referencedChunks(ns: string, ids: string[]): Promise<Set<string>> {
    const found = new Set<string>();
    // Ten keys per read (the KV's limit), 32 reads at a time: a HAVE of many chunks is not a chain of reads.
    const slices = chunked(ids, 10);
    for (let i = 0; i < slices.length; i += 32) {
      await Promise.all(
        slices.slice(i, i + 32).map(async (slice) => {
          const [committed, pending] = await Promise.all([
            this.kv.getMany(slice.map((id) => ["c", ns, id])),
            this.kv.getMany(slice.map((id) => ["p", ns, id])),
          ]);
          slice.forEach((id, j) => {
            if (committed[j].versionstamp || pending[j].versionstamp) found.add(id);
          });
        }),
      );
    }
    return found;
  }

  #pendingQueue: { key: Deno.KvKey; done: () => void; fail: (e: Error) => void }[] = [];
  #pendingFlushing = false;
  #pendingRun: Promise<void> = Promise.resolve();

  /**
   * Calls made while a write is under way are grouped into the next atomic write (group commit); each call
   * resolves once its record is durable.
   */
  addPendingChunk(ns: string, id: string): Promise<void> {
    const promise = new Promise<void>((done, fail) =>
      this.#pendingQueue.push({ key: ["p", ns, id], done, fail })
    );
    if (!this.#pendingFlushing) this.#flushPending();
    return promise;
  }

  async settlePending(): Promise<void> {
    while (this.#pendingFlushing || this.#pendingQueue.length > 0) {
      if (!this.#pendingFlushing) this.#flushPending();
      await this.#pendingRun;
    }
  }

  #flushPending(): Promise<void> {
    this.#pendingRun = this.#flushPendingNow();
    return this.#pendingRun;
  }

  async #flushPendingNow(): Promise<void> {
    this.#pendingFlushing = true;
    try {
      while (this.#pendingQueue.length > 0) {
        const until = this.#now() + PENDING_CHUNK_MS;
        const queued = this.#pendingQueue.splice(0, PENDING_PER_ATOMIC);
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

  async *listChunkRefs(options: { kind?: ChunkRef["kind"] } = {}): AsyncIterable<ChunkRef> {
    if (options.kind !== "committed") {
      for await (const ref of this.kv.list<{ until: number }>({ prefix: ["p"] }, { batchSize: 1000 })) {
        yield { ns: ref.key[1] as string, id: ref.key[2] as string, kind: "pending", until: ref.value.until };
      }
    }
    if (options.kind === "pending") return;
    for await (const ref of this.kv.list({ prefix: ["c"] }, { batchSize: 1000 })) {
      yield { ns: ref.key[1] as string, id: ref.key[2] as string, kind: "committed" };
    }
  }

  async deleteChunkRefs(refs: ChunkRef[]): Promise<void> {
    await writeMutations(this.kv, refs.map((r) => [[r.kind === "pending" ? "p" : "c", r.ns, r.id], null]));
  }

  // ---- history and trash ----

  async listVersions(ns: string, path: string): Promise<VersionRecord[]> {
    const out: VersionRecord[] = [];
    const prefix = ["v", ns, pathKey(path)];
    for await (const entry of this.kv.list<VersionRecord>({ prefix }, { reverse: true })) {
      if (entry.value.path === path) out.push(entry.value);
    }
    return out;
  }

  async *listAllVersions(ns: string): AsyncIterable<VersionRecord> {
    for await (const entry of this.kv.list<VersionRecord>({ prefix: ["v", ns] }, { batchSize: 1000 })) {
      yield entry.value;
    }
  }

  async listTrash(ns: string): Promise<TrashRecord[]> {
    const out: TrashRecord[] = [];
    for await (const entry of this.kv.list<TrashRecord>({ prefix: ["t", ns] }, { reverse: true })) {
      out.push(entry.value);
    }
    return out;
  }

  async dropHistory(ns: string, drop: { versions: VersionRecord[]; trash: TrashRecord[] }): Promise<void> {
    await writeMutations(this.kv, [
      ...drop.trash.map((t): [Deno.KvKey, unknown] => [trashKey(ns, t.rev), null]),
      ...drop.versions.map((v): [Deno.KvKey, unknown] => [versionKey(ns, v.path, v.rev), null]),
    ]);
  }

  // ---- namespaces ----
  // ["ns", id] holds the record; ["nsg", user, id] says that share id names the user (as owner or in a grant).

  async getNamespace(id: string): Promise<NamespaceRecord | null> {
    const stored = (await this.kv.get<NamespaceRecord>(["ns", id])).value;
    if (stored) return stored;
    // A user made before namespace records: the own namespace is implied by the user.
    const user = await this.getUser(id);
    return user ? { id, owner: id, kind: "user", name: id, created: 0 } : null;
  }

  async putNamespace(record: NamespaceRecord): Promise<void> {
    if (record.kind !== "share") {
      throw new TypeError(`Cannot put namespace "${record.id}": a user's namespace comes with the user`);
    }
    const old = await this.kv.get<NamespaceRecord>(["ns", record.id]);
    const granted = new Set([record.owner, ...(record.grants ?? []).map((g) => g.user)]);
    const atomic = this.kv.atomic().check(old).set(["ns", record.id], record);
    const before = old.value ? [old.value.owner, ...(old.value.grants ?? []).map((g) => g.user)] : [];
    for (const user of before) if (!granted.has(user)) atomic.delete(["nsg", user, record.id]);
    for (const user of granted) atomic.set(["nsg", user, record.id], true);
    if (!(await atomic.commit()).ok) await this.putNamespace(record);
  }

  async namespacesOf(user: string): Promise<NamespaceRecord[]> {
    const own = await this.getNamespace(user);
    const list = own?.kind === "user" ? [own] : [];
    for await (const entry of this.kv.list({ prefix: ["nsg", user] })) {
      const record = await this.getNamespace(entry.key[2] as string);
      if (record && record.id !== user && access(user, record) !== null) list.push(record);
    }
    return list;
  }

  async updateGrants(
    id: string,
    update: (grants: NamespaceGrant[]) => NamespaceGrant[],
  ): Promise<NamespaceRecord | null> {
    while (true) {
      const stored = await this.kv.get<NamespaceRecord>(["ns", id]);
      // A user made before namespace records has its record written now.
      const current = stored.value ?? await this.getNamespace(id);
      if (!current) return null;
      const grants = update([...(current.grants ?? [])]);
      const record: NamespaceRecord = { ...current, grants };
      const holders = (r: NamespaceRecord) => new Set((r.grants ?? []).map((g) => g.user));
      const before = holders(current);
      const after = holders(record);
      const atomic = this.kv.atomic().check(stored).set(["ns", id], record);
      // A user's own namespace comes with the user: the write fails if the user went meanwhile.
      if (current.kind === "user") {
        const user = await this.kv.get(["user", id]);
        if (user.value === null) return null;
        atomic.check(user);
      }
      for (const user of before) {
        if (!after.has(user) && user !== current.owner) atomic.delete(["nsg", user, id]);
      }
      for (const user of after) atomic.set(["nsg", user, id], true);
      if ((await atomic.commit()).ok) return record;
    }
  }

  async journalEpoch(): Promise<string> {
    const key = ["config", "epoch"];
    while (true) {
      const found = await this.kv.get<string>(key);
      if (found.value) return found.value;
      if ((await this.kv.atomic().check(found).set(key, crypto.randomUUID()).commit()).ok) continue;
    }
  }

  async getCompaction(ns: string): Promise<CompactionPoint | null> {
    return (await this.kv.get<CompactionPoint>(["jc", ns])).value;
  }

  async compactJournal(ns: string, seq: number): Promise<number> {
    let through = Math.min(seq, await this.latestSeq(ns));
    const current = await this.getCompaction(ns);
    if (current && current.seq >= through) {
      through = current.seq; // never backwards; finishes a pass a crash interrupted
    } else if (through > 0) {
      const at = (await this.kv.get<WireEntry>(["j", ns, through])).value;
      await this.kv.set(["jc", ns], at?.tag ? { seq: through, tag: at.tag } : { seq: through });
    } else return 0;
    let removed = 0;
    while (true) {
      const keys: Deno.KvKey[] = [];
      const iter = this.kv.list({ start: ["j", ns, 0], end: ["j", ns, through + 1] }, { limit: 500 });
      for await (const entry of iter) keys.push(entry.key);
      if (keys.length === 0) return removed;
      const atomic = this.kv.atomic();
      for (const key of keys) atomic.delete(key);
      await atomic.commit();
      removed += keys.length;
    }
  }

  async getJournalMarks(ns: string): Promise<JournalMark[]> {
    return (await this.kv.get<JournalMark[]>(["jm", ns])).value ?? [];
  }

  async setJournalMarks(ns: string, marks: JournalMark[]): Promise<void> {
    await this.kv.set(["jm", ns], marks);
  }

  async getRetention(): Promise<RetentionPolicy | null> {
    return (await this.kv.get<RetentionPolicy>(["config", "retention"])).value;
  }

  async setRetention(policy: RetentionPolicy): Promise<void> {
    await this.kv.set(["config", "retention"], policy);
  }

  // ---- locks ----

  async listLocks(ns: string): Promise<LockRecord[]> {
    const out: LockRecord[] = [];
    for await (const entry of this.kv.list<LockRecord>({ prefix: ["lock", ns] })) out.push(entry.value);
    return out;
  }

  async *listLockNamespaces(): AsyncIterable<string> {
    let last: string | null = null;
    for await (const entry of this.kv.list({ prefix: ["lock"] })) {
      const ns = entry.key[1] as string;
      if (ns !== last) yield ns;
      last = ns;
    }
  }

  changeLock<T>(
    ns: string,
    path: string,
    decide: (current: LockRecord | null, entry: EntryRecord | null) => LockChange<T>,
  ): Promise<T> {
    return this.#lock(ns).run(async () => {
      const [current, entry] = await this.kv.getMany<[LockRecord, EntryRecord]>([
        lockKey(ns, path),
        entryKey(ns, path),
      ]);
      // A long path shares its hashed key only with a path of the same hash: the stored path decides.
      const lock = current.value?.path === path ? current.value : null;
      const { write, result } = decide(lock, entry.value);
      if (write === null) await this.kv.delete(lockKey(ns, path));
      else if (write !== undefined) await this.kv.set(lockKey(ns, path), write);
      return result;
    });
  }

  // ---- commit ----

  /** The usage counter, or for a namespace written before it existed, the sum over its live files. */
  async usage(ns: string): Promise<number> {
    return (await this.kv.get<number>(["usage", ns])).value ?? await this.#sumEntries(ns);
  }

  async #sumEntries(ns: string): Promise<number> {
    let total = 0;
    for await (const entry of this.listEntries(ns)) if (entry.kind === "file") total += entry.size;
    return total;
  }

  commit(ns: string, options: CommitOptions): Promise<CommitOutcome> {
    return this.gcLock.shared(() => this.#lock(ns).run(() => this.#commit(ns, options)));
  }

  async #commit(ns: string, options: CommitOptions): Promise<CommitOutcome> {
    const { changes, rows } = options;
    const seqEntry = await this.kv.get<number>(["seq", ns]);

    // Read every entry the batch touches (paths, sources, parents), the base manifests of deltas and which
    // manifests exist, in a few parallel multi-key reads instead of one read per change.
    const fetched = new Map<string, EntryRecord | null>();
    const wanted = new Set<string>();
    const bases = new Set<string>();
    const inserted = new Set<string>();
    /** How many changes of the batch touch a direct child of each folder. */
    const childTouches = new Map<string, number>();
    for (const change of changes) {
      for (const path of change.op === "move" ? [change.from, change.path] : [change.path]) {
        wanted.add(path);
        for (const ancestor of ancestorsOf(path)) wanted.add(ancestor);
        const parent = parentPath(path) ?? "";
        childTouches.set(parent, (childTouches.get(parent) ?? 0) + 1);
      }
      if (change.op === "upload") {
        if (change.from) bases.add(change.from.hash);
        try {
          for (const row of insertedRows(change, rows)) inserted.add(row.id);
        } catch (error) {
          if (!(error instanceof Refusal)) throw error; // the rules refuse it again, with this reason
        }
      }
    }
    const baseManifests = new Map<string, ChunkRow[] | null>();
    const [sizes, usage, locks] = await Promise.all([
      inserted.size > 0 ? options.checkChunks([...inserted]) : Promise.resolve(new Map<string, number>()),
      this.usage(ns),
      options.holder ? this.listLocks(ns) : Promise.resolve([]),
      ...chunked([...wanted], 10).map(async (paths) => {
        const got = await this.kv.getMany<EntryRecord[]>(paths.map((p) => entryKey(ns, p)));
        paths.forEach((p, i) => fetched.set(p, got[i].value));
      }),
      ...[...bases].map(async (hash) => baseManifests.set(hash, await this.getManifest(hash))),
    ]);
    // Children of folders the batch deletes or replaces: as many as the batch could remove, plus one.
    const children = new Map<string, { paths: string[]; complete: boolean }>();
    for (const change of changes) {
      if (change.op !== "upload" && change.op !== "delete") continue;
      if (fetched.get(change.path)?.kind !== "dir" || children.has(change.path)) continue;
      const limit = (childTouches.get(change.path) ?? 0) + 1;
      const paths: string[] = [];
      for await (
        const child of this.kv.list<EntryRecord>({ prefix: ["e", ns, pathKey(change.path)] }, {
          limit,
          batchSize: Math.min(limit, 1000),
        })
      ) paths.push(child.value.path);
      children.set(change.path, { paths, complete: paths.length < limit });
    }

    // Every child of each folder where the batch may create a name, by folded name (the case-clash rule).
    const folded = new Map<string, Map<string, string[]>>();
    for (const change of changes) {
      if (change.op === "delete") continue;
      for (const path of [...ancestorsOf(change.path), change.path]) {
        const folder = parentPath(path) ?? "";
        if (fetched.get(path) !== null || folded.has(folder)) continue;
        const byName = new Map<string, string[]>();
        for await (
          const child of this.kv.list<EntryRecord>({ prefix: ["e", ns, pathKey(parentPath(path))] }, {
            batchSize: 1000,
          })
        ) {
          const key = foldName(baseName(child.value.path));
          byName.set(key, [...byName.get(key) ?? [], child.value.path]);
          // The rule reads the siblings it finds: they are fetched here, with the listing.
          if (!fetched.has(child.value.path)) fetched.set(child.value.path, child.value);
        }
        folded.set(folder, byName);
      }
    }

    const plan = planCommit(
      {
        entry: (path) => {
          const entry = fetched.get(path);
          if (entry === undefined) throw new Error(`Commit read "${path}" without fetching it`);
          return entry;
        },
        children: (path) => children.get(path) ?? { paths: [], complete: true },
        manifest: (hash) => baseManifests.get(hash) ?? null,
        sameFolded: (folder, name) => folded.get(folder)?.get(name) ?? [],
      },
      changes,
      {
        device: options.device,
        seq: seqEntry.value ?? 0,
        now: this.#now(),
        tag: randomBytes(8).toString("hex"),
        rows,
        sizes,
        limits: options.limits,
        usage,
        locks,
        holder: options.holder,
        restored: options.restored,
      },
    );
    const journal = plan.steps.flatMap((s) => s.journal);
    if (journal.length > 0) {
      // Immutable parts first (chunks durable, manifests, committed references): a crash after them leaves
      // only unreferenced data for garbage collection.
      await options.syncChunks?.(plan.permanent);
      // Every manifest is written, even one stored before: its rows were just checked against the chunks, and
      // a manifest is named by its chunk ids, so a correct one never differs from what is stored; rewriting
      // heals any wrong one (written by older code) and gives no other user's upload away by its timing.
      const manifestMutations: [Deno.KvKey, unknown][] = [];
      for (const [hash, { size, rows }] of plan.manifests) {
        manifestMutations.push(...this.#manifestMutations(hash, size, rows));
      }
      // The committed references go with the manifests (usually one atomic write instead of two): both only
      // keep data, and both are durable before any step refers to them.
      for (const id of plan.permanent) manifestMutations.push([["c", ns, id], true]);
      await writeMutations(this.kv, manifestMutations);
      for (const [hash, { rows }] of plan.manifests) this.#manifests.set(hash, rows);
      await this.#writeSteps(ns, seqEntry.versionstamp, plan.steps);
    }
    return { results: plan.results, journal };
  }

  /**
   * Writes the steps in as few atomics as the KV limits allow, each carrying whole steps (entries, journal,
   * versions, trash) and setting the counter to the last rev it contains, checked against the versionstamp
   * the previous one left. A crash between atomics leaves a consistent, shorter journal.
   */
  async #writeSteps(ns: string, versionstamp: string | null, steps: Step[]): Promise<string | null> {
    const units = steps.map((step) => {
      const unit: [Deno.KvKey, unknown][] = [];
      for (const { path, entry } of step.writes) unit.push([entryKey(ns, path), entry]);
      for (const wire of step.journal) unit.push([["j", ns, wire.rev], wire]);
      for (const v of step.versions) unit.push([versionKey(ns, v.path, v.rev), v]);
      for (const t of step.trash) unit.push([trashKey(ns, t.rev), t]);
      if (step.usage !== undefined) unit.push([["usage", ns], step.usage]);
      return unit;
    });
    let stamp = versionstamp;
    const groups = packUnits(units);
    let seq = 0;
    for (let g = 0; g < groups.length; g++) {
      await this.#beforeAtomic?.(g);
      const atomic = this.kv.atomic().check({ key: ["seq", ns], versionstamp: stamp });
      let usage: number | undefined;
      for (const [key, value] of groups[g]) {
        // The usage after the group's last step is written once, with the counter it belongs to.
        if (key[0] === "usage") usage = value as number;
        else value === null ? atomic.delete(key) : atomic.set(key, value);
        if (key[0] === "j") seq = Math.max(seq, key[2] as number);
      }
      atomic.set(["seq", ns], seq);
      if (usage !== undefined) atomic.set(["usage", ns], usage);
      const result = await atomic.commit();
      if (!result.ok) throw new Error(`Concurrent modification of namespace "${ns}"; retry`);
      stamp = result.versionstamp;
    }
    return stamp;
  }

  // ---- repair ----

  async repair(): Promise<string[]> {
    const lines: string[] = [];
    for await (const ns of this.listNamespaces()) {
      await this.#lock(ns).run(async () => {
        const seqEntry = await this.kv.get<number>(["seq", ns]);
        const seq = seqEntry.value ?? 0;
        const stray: [Deno.KvKey, unknown][] = [];
        const end = ["j", ns, Number.MAX_SAFE_INTEGER];
        for await (const entry of this.kv.list({ start: ["j", ns, seq + 1], end })) {
          stray.push([entry.key, null]);
        }
        if (stray.length === 0) return;
        // Journal entries beyond the counter were never part of the journal: no device may adopt them.
        await writeMutations(this.kv, stray);
        // Entries an interrupted commit of older code wrote beyond the counter are journaled again, so every
        // device learns of them.
        const orphans: EntryRecord[] = [];
        for await (const entry of this.listEntries(ns)) if (entry.rev > seq) orphans.push(entry);
        orphans.sort((a, b) => a.rev - b.rev);
        const tag = randomBytes(8).toString("hex");
        let rev = seq;
        const steps: Step[] = orphans.map((orphan) => {
          const entry = { ...orphan, rev: ++rev };
          const { time: _time, ...wire } = entry;
          return {
            writes: [{ path: entry.path, entry }],
            journal: [{ ...wire, tag }],
            versions: [],
            trash: [],
          };
        });
        await this.#writeSteps(ns, seqEntry.versionstamp, steps);
        lines.push(
          `repaired namespace "${ns}": removed ${stray.length} journal entries beyond its counter (${seq})` +
            (orphans.length > 0 ? `, journaled ${orphans.length} entries written beyond it again` : ""),
        );
      });
    }
    return lines;
  }
}

function chunked<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
