// The metadata store over PostgreSQL: one transaction per commit, serialized per namespace by an advisory lock.
import { deviceOf, type DeviceRow } from "./device_rows.ts";
import { randomBytes } from "node:crypto";
import { Buffer } from "node:buffer";
import type { Sql, TransactionSql } from "postgres";
import { ancestorsOf, baseName, foldName, parentPath } from "../protocol/paths.ts";
import { type ChunkRow, decodeRows, encodeRows, type WireEntry } from "../protocol/messages.ts";
import { insertedRows, planCommit, Refusal } from "./commit_rules.ts";
import { access } from "./access.ts";
import { PgGcLock } from "./pg_gc_lock.ts";
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

/** Advisory lock class of a namespace's commits and lock changes (the second key is the id's hashtext). */
const NAMESPACE_LOCK = 0x46530001;
/** Advisory lock class of a namespace record's changes (grants). */
const RECORD_LOCK = 0x46530002;
/** Rows read per page when listing. */
const PAGE = 1000;
/** Pending references written per statement. */
const PENDING_PER_STATEMENT = 1000;
const PENDING_CHUNK_MS = 24 * 3600 * 1000;

/** Any query runner: the pool or a transaction. */
type Runner = Sql | TransactionSql;

/** A simple async mutex, one per namespace, so a process's commits of a namespace wait here, not in the pool. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(() => {}, () => {});
    return result;
  }
}

/** Options of {@linkcode PgMetadataStore}. */
export interface PgMetadataOptions {
  /** The clock. @default Date.now */
  now?: () => number;
}

/** JSON text of a value, for a `::jsonb` parameter (one parameter carries a whole batch). */
function json(value: unknown): string {
  return JSON.stringify(value);
}

/** The folder key of a path's entry: its parent path, "" for the root. */
function parentOf(path: string): string {
  return parentPath(path) ?? "";
}

/**
 * The server's metadata in PostgreSQL (the schema of `pg_schema.ts`, migrated before). Every change is one
 * transaction, so several server processes may share the database: commits of one namespace take turns under
 * an advisory lock and compare each change's base revision with what is stored.
 */
export class PgMetadataStore implements MetadataStore {
  readonly sql: Sql;
  readonly gcLock: PgGcLock;
  #locks = new Map<string, Mutex>();
  #now: () => number;

  /** Wraps a connected client whose database has the current schema. */
  constructor(sql: Sql, options: PgMetadataOptions = {}) {
    this.sql = sql;
    this.gcLock = new PgGcLock(sql);
    this.#now = options.now ?? Date.now;
  }

  /** Closes the connections (in the background; {@linkcode end} waits for it). */
  close(): void {
    void this.end();
  }

  /** Settles pending references and closes the connections. */
  async end(): Promise<void> {
    await this.settlePending().catch(() => {});
    // The shared GC lock is given back after the last commit returns: a pool closed before that waits its timeout.
    await this.gcLock.settled();
    await this.sql.end({ timeout: 5 });
  }

  #mutex(ns: string): Mutex {
    let lock = this.#locks.get(ns);
    if (!lock) this.#locks.set(ns, lock = new Mutex());
    return lock;
  }

  /**
   * Runs `fn` in a transaction holding the namespace's lock (in this process and in the database). A commit
   * holds the garbage collection lock through `gcLock.shared` around this, never inside the transaction (a
   * second shared lock there could queue behind a waiting collection, which waits for the node's: a deadlock
   * PostgreSQL cannot see).
   */
  #inNamespace<T>(ns: string, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
    return this.#mutex(ns).run(() =>
      this.sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(${NAMESPACE_LOCK}, hashtext(${ns}))`;
        return await fn(tx);
      }) as Promise<T>
    );
  }

  // ---- users and tokens ----

  async getUser(name: string): Promise<UserRecord | null> {
    const rows = await this.sql`select rec from users where name = ${name}`;
    return rows.length ? rows[0].rec as UserRecord : null;
  }

  async addUser(user: UserRecord): Promise<boolean> {
    const own: NamespaceRecord = {
      id: user.name,
      owner: user.name,
      kind: "user",
      name: user.name,
      created: user.created,
    };
    return await this.sql.begin(async (tx) => {
      const added = await tx`insert into users (name, rec) values (${user.name}, ${json(user)}::text::jsonb)
        on conflict do nothing returning 1`;
      if (added.length === 0) return false;
      await tx`insert into namespaces (id, rec) values (${user.name}, ${json(own)}::text::jsonb)
        on conflict (id) do update set rec = excluded.rec`;
      return true;
    }) as boolean;
  }

  async setPassword(name: string, salt: string, hash: string): Promise<boolean> {
    return await this.sql.begin(async (tx) => {
      const changed = await tx`update users set rec = rec || ${json({ salt, hash })}::text::jsonb
        where name = ${name} returning 1`;
      if (changed.length === 0) return false;
      await revokeTokensIn(tx, name);
      return true;
    }) as boolean;
  }

  async setQuota(name: string, quota: number | null | undefined): Promise<boolean> {
    const changed = quota === undefined
      ? await this.sql`update users set rec = rec - 'quota' where name = ${name} returning 1`
      : await this.sql`update users set rec = rec || ${
        json({ quota })
      }::text::jsonb where name = ${name} returning 1`;
    return changed.length > 0;
  }

  async removeUser(name: string): Promise<boolean> {
    return await this.#inNamespace(name, async (tx) => {
      const removed = await tx`delete from users where name = ${name} returning 1`;
      if (removed.length === 0) return false;
      await revokeTokensIn(tx, name);
      for (
        const table of [
          "entries",
          "journal",
          "committed_chunks",
          "pending_chunks",
          "versions",
          "trash",
          "locks",
          "counters",
          "compactions",
          "journal_marks",
        ]
      ) await tx`delete from ${tx(table)} where ns = ${name}`;
      await tx`delete from namespaces where id = ${name}`;
      // Grants to the user go with it, so a later user of the same name inherits none of them.
      const granted = await tx`select ns from grantees where username = ${name} and ns <> ${name}`;
      for (const { ns } of granted) {
        await tx`select pg_advisory_xact_lock(${RECORD_LOCK}, hashtext(${ns}))`;
        const rows = await tx`select rec from namespaces where id = ${ns}`;
        if (rows.length === 0) continue;
        const record = rows[0].rec as NamespaceRecord;
        const grants = (record.grants ?? []).filter((g) => g.user !== name);
        await tx`update namespaces set rec = ${json({ ...record, grants })}::text::jsonb where id = ${ns}`;
      }
      await tx`delete from grantees where username = ${name} or ns = ${name}`;
      return true;
    });
  }

  async listUsers(): Promise<UserRecord[]> {
    return (await this.sql`select rec from users order by name`).map((r) => r.rec as UserRecord);
  }

  async addToken(tokenHash: string, record: TokenRecord): Promise<void> {
    const row: DeviceRow = { tokenHash, device: record.device, created: record.created };
    await this.sql.begin(async (tx) => {
      await tx`insert into tokens (hash, rec) values (${tokenHash}, ${json(record)}::text::jsonb)
        on conflict (hash) do update set rec = excluded.rec`;
      await tx`insert into devices (username, device_id, rec)
        values (${record.user}, ${record.deviceId}, ${json(row)}::text::jsonb)
        on conflict (username, device_id) do update set rec = excluded.rec`;
    });
  }

  async getToken(tokenHash: string): Promise<TokenRecord | null> {
    const rows = await this.sql`select rec from tokens where hash = ${tokenHash}`;
    return rows.length ? rows[0].rec as TokenRecord : null;
  }

  async touchToken(tokenHash: string, expires: number): Promise<void> {
    await this.#updateToken(tokenHash, { expires });
  }

  /** Changes a live (not revoked) token record in one statement, so a revocation is never undone. */
  async #updateToken(tokenHash: string, change: Partial<TokenRecord>): Promise<void> {
    await this.sql`update tokens set rec = rec || ${json(change)}::text::jsonb
      where hash = ${tokenHash} and not (rec ? 'revoked')`;
  }

  async revokeTokens(user: string): Promise<void> {
    await this.sql.begin((tx) => revokeTokensIn(tx, user));
  }

  // ---- devices ----

  async listDevices(user: string): Promise<DeviceRecord[]> {
    const rows = await this.sql`select d.device_id, d.rec, t.rec as token from devices d
      left join tokens t on t.hash = d.rec->>'tokenHash' where d.username = ${user}`;
    return rows.map((r) => deviceOf(r.device_id, r.rec as DeviceRow, r.token as TokenRecord | null))
      .sort((a, b) => a.created - b.created || a.deviceId.localeCompare(b.deviceId));
  }

  async revokeDevice(user: string, deviceId: string, at: number): Promise<DeviceRecord | null> {
    return await this.sql.begin(async (tx) => {
      const rows = await tx`select rec from devices where username = ${user} and device_id = ${deviceId}
        for update`;
      if (rows.length === 0) return null;
      const row = rows[0].rec as DeviceRow;
      const tokens = await tx`select rec from tokens where hash = ${row.tokenHash} for update`;
      const token = tokens.length ? tokens[0].rec as TokenRecord : null;
      if (row.revoked !== undefined) return deviceOf(deviceId, row, token);
      const revokedRow = { ...row, revoked: at };
      await tx`update devices set rec = ${json(revokedRow)}::text::jsonb
        where username = ${user} and device_id = ${deviceId}`;
      if (token) {
        await tx`update tokens set rec = ${
          json({ ...token, revoked: at })
        }::text::jsonb where hash = ${row.tokenHash}`;
      }
      return deviceOf(deviceId, revokedRow, token);
    }) as DeviceRecord | null;
  }

  async markSeen(tokenHash: string, at: number): Promise<void> {
    await this.#updateToken(tokenHash, { lastSeen: at });
  }

  // ---- entries and journal ----

  async getEntry(ns: string, path: string): Promise<EntryRecord | null> {
    const rows = await this.sql`select rec from entries where ns = ${ns} and k = fs_key(${path})`;
    return rows.length ? rows[0].rec as EntryRecord : null;
  }

  async getEntries(ns: string, paths: readonly string[]): Promise<(EntryRecord | null)[]> {
    if (paths.length === 0) return [];
    const rows = await this.sql`select path, rec from entries where ns = ${ns} and k in
      (select fs_key(value) from jsonb_array_elements_text(${json(paths)}::text::jsonb))`;
    const found = new Map(rows.map((r) => [r.path as string, r.rec as EntryRecord]));
    return paths.map((path) => found.get(path) ?? null);
  }

  async *listEntries(ns: string): AsyncIterable<EntryRecord> {
    let after = Buffer.alloc(0);
    while (true) {
      const rows = await this.sql`select k, rec from entries where ns = ${ns} and k > ${after}
        order by k limit ${PAGE}`;
      for (const row of rows) yield row.rec as EntryRecord;
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1].k;
    }
  }

  async latestSeq(ns: string): Promise<number> {
    return await latestSeqIn(this.sql, ns);
  }

  async latestSeqs(namespaces: readonly string[]): Promise<number[]> {
    if (namespaces.length === 0) return [];
    const rows = await this.sql`select ns, seq from counters where ns in
      (select value from jsonb_array_elements_text(${json(namespaces)}::text::jsonb))`;
    const found = new Map(rows.map((r) => [r.ns as string, Number(r.seq)]));
    return namespaces.map((ns) => found.get(ns) ?? 0);
  }

  async changesSince(ns: string, since: number, limit: number): Promise<WireEntry[]> {
    const rows = await this.sql`select rec from journal where ns = ${ns} and rev > ${since}
      order by rev limit ${limit}`;
    return rows.map((r) => r.rec as WireEntry);
  }

  async changesBefore(ns: string, before: number, limit: number): Promise<WireEntry[]> {
    const rows = await this.sql`select rec from journal where ns = ${ns} and rev < ${before}
      order by rev desc limit ${limit}`;
    return rows.map((r) => r.rec as WireEntry);
  }

  async *listNamespaces(): AsyncIterable<string> {
    for await (const [ns] of this.#pages("counters", ["ns"])) yield ns as string;
  }

  /** Every row of a table by its key columns, a page at a time (keyset paging: no connection is held). */
  async *#pages(table: string, key: string[], where?: string): AsyncIterable<unknown[]> {
    let after: unknown[] | null = null;
    const cols = key.join(", ");
    while (true) {
      const conditions = [where, after && `(${cols}) > (${key.map((_, i) => `$${i + 1}`).join(", ")})`]
        .filter(Boolean);
      const text = `select ${cols} from ${table}${
        conditions.length ? ` where ${conditions.join(" and ")}` : ""
      }
        order by ${cols} limit ${PAGE}`;
      // deno-lint-ignore no-explicit-any
      const rows: Record<string, unknown>[] = await this.sql.unsafe(text, (after ?? []) as any[], {
        prepare: true,
      });
      for (const row of rows) yield key.map((c) => row[c]);
      if (rows.length < PAGE) return;
      const last: Record<string, unknown> = rows[rows.length - 1];
      after = key.map((c) => last[c]);
    }
  }

  // ---- manifests ----

  async getManifest(hash: string): Promise<ChunkRow[] | null> {
    const found = await this.sql`select count, rows from manifests where hash = ${hash}`;
    if (found.length === 0) return null;
    const rows = decodeRows(found[0].rows);
    if (rows.length !== found[0].count) throw new Error(`Manifest ${hash} is damaged: ${rows.length} rows`);
    return rows;
  }

  async getManifests(hashes: readonly string[]): Promise<(ChunkRow[] | null)[]> {
    if (hashes.length === 0) return [];
    const found = await this.sql`select hash, count, rows from manifests where hash in
      (select value from jsonb_array_elements_text(${json(hashes)}::text::jsonb))`;
    const byHash = new Map<string, ChunkRow[]>();
    for (const row of found) {
      const rows = decodeRows(row.rows);
      if (rows.length !== row.count) throw new Error(`Manifest ${row.hash} is damaged: ${rows.length} rows`);
      byHash.set(row.hash as string, rows);
    }
    return hashes.map((hash) => byHash.get(hash) ?? null);
  }

  async *listManifests(): AsyncIterable<string> {
    for await (const [hash] of this.#pages("manifests", ["hash"])) yield hash as string;
  }

  async deleteManifest(hash: string): Promise<void> {
    await this.sql`delete from manifests where hash = ${hash}`;
  }

  async upgradeManifests(sizeOf: (id: string) => Promise<number | null>): Promise<string[] | null> {
    const mark = await this.sql`select 1 from meta where key = 'manifests-checked'`;
    if (mark.length > 0) return null;
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
      await writeManifests(this.sql, [[hash, { size: real.reduce((n, r) => n + r.size, 0), rows: real }]]);
      fixed.push(hash);
    }
    await this.sql`insert into meta (key, value) values ('manifests-checked', ${
      json({ at: this.#now() })
    }::text::jsonb)
      on conflict (key) do update set value = excluded.value`;
    return fixed;
  }

  // ---- chunk references ----

  async referencedChunks(ns: string, ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.sql`with wanted as (select value as id from jsonb_array_elements_text(${
      json(ids)
    }::text::jsonb))
      select id from committed_chunks where ns = ${ns} and id in (select id from wanted)
      union select id from pending_chunks where ns = ${ns} and id in (select id from wanted)`;
    return new Set(rows.map((r) => r.id as string));
  }

  #pendingQueue: { ns: string; id: string; done: () => void; fail: (e: Error) => void }[] = [];
  #pendingFlushing = false;
  #pendingRun: Promise<void> = Promise.resolve();

  /** Calls made while a write is under way go into the next statement (group commit). */
  addPendingChunk(ns: string, id: string): Promise<void> {
    const promise = new Promise<void>((done, fail) => this.#pendingQueue.push({ ns, id, done, fail }));
    if (!this.#pendingFlushing) this.#pendingRun = this.#flushPending();
    return promise;
  }

  async settlePending(): Promise<void> {
    while (this.#pendingFlushing || this.#pendingQueue.length > 0) {
      if (!this.#pendingFlushing) this.#pendingRun = this.#flushPending();
      await this.#pendingRun;
    }
  }

  async #flushPending(): Promise<void> {
    this.#pendingFlushing = true;
    try {
      while (this.#pendingQueue.length > 0) {
        const batch = this.#pendingQueue.splice(0, PENDING_PER_STATEMENT);
        const until = this.#now() + PENDING_CHUNK_MS;
        // One row per reference (a statement may not upsert the same row twice).
        const refs = new Map(
          batch.map((item) => [`${item.ns}\u0000${item.id}`, { ns: item.ns, id: item.id }]),
        );
        try {
          await this.sql`insert into pending_chunks (ns, id, until)
            select x.ns, x.id, ${until} from jsonb_to_recordset(${json([...refs.values()])}::text::jsonb)
              as x(ns text, id text)
            on conflict (ns, id) do update set until = excluded.until`;
          for (const item of batch) item.done();
        } catch (error) {
          for (const item of batch) item.fail(error as Error);
        }
      }
    } finally {
      this.#pendingFlushing = false;
    }
  }

  async *listChunkRefs(options: { kind?: ChunkRef["kind"] } = {}): AsyncIterable<ChunkRef> {
    if (options.kind !== "committed") {
      let after: [string, string] = ["", ""];
      while (true) {
        const rows = await this.sql`select ns, id, until from pending_chunks
          where (ns, id) > (${after[0]}, ${after[1]}) order by ns, id limit ${PAGE}`;
        for (const r of rows) yield { ns: r.ns, id: r.id, kind: "pending", until: Number(r.until) };
        if (rows.length < PAGE) break;
        after = [rows[rows.length - 1].ns, rows[rows.length - 1].id];
      }
    }
    if (options.kind === "pending") return;
    for await (const [ns, id] of this.#pages("committed_chunks", ["ns", "id"])) {
      yield { ns: ns as string, id: id as string, kind: "committed" };
    }
  }

  async deleteChunkRefs(refs: ChunkRef[]): Promise<void> {
    const of = (kind: ChunkRef["kind"]) =>
      json(refs.filter((r) => r.kind === kind).map(({ ns, id }) => ({ ns, id })));
    await this.sql.begin(async (tx) => {
      await tx`delete from pending_chunks p using jsonb_to_recordset(${
        of("pending")
      }::text::jsonb) as x(ns text, id text)
        where p.ns = x.ns and p.id = x.id`;
      await tx`delete from committed_chunks c using jsonb_to_recordset(${of("committed")}::text::jsonb)
          as x(ns text, id text)
        where c.ns = x.ns and c.id = x.id`;
    });
  }

  // ---- history and trash ----

  async listVersions(ns: string, path: string): Promise<VersionRecord[]> {
    const rows = await this.sql`select rec from versions where ns = ${ns} and k = fs_key(${path})
      and path = ${path} order by rev desc`;
    return rows.map((r) => r.rec as VersionRecord);
  }

  async *listAllVersions(ns: string): AsyncIterable<VersionRecord> {
    let after: [Uint8Array, number] = [Buffer.alloc(0), 0];
    while (true) {
      const rows = await this.sql`select k, rev, rec from versions where ns = ${ns}
        and (k, rev) > (${after[0]}, ${after[1]}) order by k, rev limit ${PAGE}`;
      for (const r of rows) yield r.rec as VersionRecord;
      if (rows.length < PAGE) return;
      after = [rows[rows.length - 1].k, Number(rows[rows.length - 1].rev)];
    }
  }

  async listTrash(ns: string): Promise<TrashRecord[]> {
    const rows = await this.sql`select rec from trash where ns = ${ns} order by rev desc`;
    return rows.map((r) => r.rec as TrashRecord);
  }

  async dropHistory(ns: string, drop: { versions: VersionRecord[]; trash: TrashRecord[] }): Promise<void> {
    await this.sql.begin(async (tx) => {
      await tx`delete from trash where ns = ${ns} and rev in
        (select value::bigint from jsonb_array_elements_text(${
        json(drop.trash.map((t) => t.rev))
      }::text::jsonb))`;
      const versions = json(drop.versions.map((v) => ({ path: v.path, rev: v.rev })));
      await tx`delete from versions v using jsonb_to_recordset(${versions}::text::jsonb) as x(path text, rev bigint)
        where v.ns = ${ns} and v.k = fs_key(x.path) and v.rev = x.rev`;
    });
  }

  async getRetention(): Promise<RetentionPolicy | null> {
    return await this.#meta<RetentionPolicy>("retention");
  }

  async setRetention(policy: RetentionPolicy): Promise<void> {
    await this.sql`insert into meta (key, value) values ('retention', ${json(policy)}::text::jsonb)
      on conflict (key) do update set value = excluded.value`;
  }

  async #meta<T>(key: string): Promise<T | null> {
    const rows = await this.sql`select value from meta where key = ${key}`;
    return rows.length ? rows[0].value as T : null;
  }

  // ---- journal identity ----

  async journalEpoch(): Promise<string> {
    await this.sql`insert into meta (key, value) values ('epoch', ${json(crypto.randomUUID())}::text::jsonb)
      on conflict (key) do nothing`;
    return (await this.#meta<string>("epoch"))!;
  }

  async getCompaction(ns: string): Promise<CompactionPoint | null> {
    const rows = await this.sql`select rec from compactions where ns = ${ns}`;
    return rows.length ? rows[0].rec as CompactionPoint : null;
  }

  async compactJournal(ns: string, seq: number): Promise<number> {
    return await this.#inNamespace(ns, async (tx) => {
      let through = Math.min(seq, await latestSeqIn(tx, ns));
      const current = await tx`select rec from compactions where ns = ${ns}`;
      const point = current.length ? current[0].rec as CompactionPoint : null;
      if (point && point.seq >= through) through = point.seq; // never backwards
      else if (through > 0) {
        const at = await tx`select rec->>'tag' as tag from journal where ns = ${ns} and rev = ${through}`;
        const tag = at.length ? at[0].tag as string | null : null;
        const record: CompactionPoint = tag ? { seq: through, tag } : { seq: through };
        await tx`insert into compactions (ns, rec) values (${ns}, ${json(record)}::text::jsonb)
          on conflict (ns) do update set rec = excluded.rec`;
      } else return 0;
      const removed = await tx`delete from journal where ns = ${ns} and rev <= ${through}`;
      return removed.count;
    });
  }

  async getJournalMarks(ns: string): Promise<JournalMark[]> {
    const rows = await this.sql`select marks from journal_marks where ns = ${ns}`;
    return rows.length ? rows[0].marks as JournalMark[] : [];
  }

  async setJournalMarks(ns: string, marks: JournalMark[]): Promise<void> {
    await this.sql`insert into journal_marks (ns, marks) values (${ns}, ${json(marks)}::text::jsonb)
      on conflict (ns) do update set marks = excluded.marks`;
  }

  // ---- namespaces ----

  async getNamespace(id: string): Promise<NamespaceRecord | null> {
    return await namespaceIn(this.sql, id);
  }

  async putNamespace(record: NamespaceRecord): Promise<void> {
    if (record.kind !== "share") {
      throw new TypeError(`Cannot put namespace "${record.id}": a user's namespace comes with the user`);
    }
    await this.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${RECORD_LOCK}, hashtext(${record.id}))`;
      const granted = [record.owner, ...(record.grants ?? []).map((g) => g.user)];
      await tx`insert into namespaces (id, rec) values (${record.id}, ${json(record)}::text::jsonb)
        on conflict (id) do update set rec = excluded.rec`;
      await setGrantees(tx, record.id, granted);
    });
  }

  async namespacesOf(user: string): Promise<NamespaceRecord[]> {
    const own = await this.getNamespace(user);
    const list = own?.kind === "user" ? [own] : [];
    const rows = await this.sql`select n.rec from grantees g join namespaces n on n.id = g.ns
      where g.username = ${user} order by g.ns`;
    for (const { rec } of rows) {
      const record = rec as NamespaceRecord;
      if (record.id !== user && access(user, record) !== null) list.push(record);
    }
    return list;
  }

  async updateGrants(
    id: string,
    update: (grants: NamespaceGrant[]) => NamespaceGrant[],
  ): Promise<NamespaceRecord | null> {
    return await this.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${RECORD_LOCK}, hashtext(${id}))`;
      const current = await namespaceIn(tx, id);
      if (!current) return null;
      if (current.kind === "user") {
        // A user's own namespace comes with the user: nothing is written once the user is gone.
        const user = await tx`select 1 from users where name = ${id} for share`;
        if (user.length === 0) return null;
      }
      const record: NamespaceRecord = { ...current, grants: update([...(current.grants ?? [])]) };
      await tx`insert into namespaces (id, rec) values (${id}, ${json(record)}::text::jsonb)
        on conflict (id) do update set rec = excluded.rec`;
      const holders = (record.grants ?? []).map((g) => g.user).filter((u) => u !== current.owner);
      await setGrantees(tx, id, current.kind === "share" ? [current.owner, ...holders] : holders);
      return record;
    }) as NamespaceRecord | null;
  }

  // ---- locks ----

  async listLocks(ns: string): Promise<LockRecord[]> {
    return await locksIn(this.sql, ns);
  }

  async *listLockNamespaces(): AsyncIterable<string> {
    let after = "";
    while (true) {
      const rows = await this
        .sql`select distinct ns from locks where ns > ${after} order by ns limit ${PAGE}`;
      for (const r of rows) yield r.ns as string;
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1].ns;
    }
  }

  changeLock<T>(
    ns: string,
    path: string,
    decide: (current: LockRecord | null, entry: EntryRecord | null) => LockChange<T>,
  ): Promise<T> {
    return this.#inNamespace(ns, async (tx) => {
      const [locks, entries] = await Promise.all([
        tx`select rec from locks where ns = ${ns} and k = fs_key(${path}) and path = ${path}`,
        tx`select rec from entries where ns = ${ns} and k = fs_key(${path})`,
      ]);
      const { write, result } = decide(
        locks.length ? locks[0].rec as LockRecord : null,
        entries.length ? entries[0].rec as EntryRecord : null,
      );
      if (write === null) await tx`delete from locks where ns = ${ns} and k = fs_key(${path})`;
      else if (write !== undefined) {
        await tx`insert into locks (ns, path, rec) values (${ns}, ${path}, ${json(write)}::text::jsonb)
          on conflict (ns, k) do update set rec = excluded.rec`;
      }
      return result;
    });
  }

  // ---- commit ----

  async usage(ns: string): Promise<number> {
    return await usageIn(this.sql, ns);
  }

  commit(ns: string, options: CommitOptions): Promise<CommitOutcome> {
    return this.gcLock.shared(() => this.#commit(ns, options));
  }

  async #commit(ns: string, options: CommitOptions): Promise<CommitOutcome> {
    const { changes, rows } = options;
    // What the batch reads: every path it touches with its ancestors, the base manifests of deltas, the
    // inserted chunks (checked before the transaction: their answer does not depend on the namespace).
    const wanted = new Set<string>();
    const bases = new Set<string>();
    const inserted = new Set<string>();
    /** How many changes of the batch touch a direct child of each folder. */
    const childTouches = new Map<string, number>();
    for (const change of changes) {
      for (const path of change.op === "move" ? [change.from, change.path] : [change.path]) {
        wanted.add(path);
        for (const ancestor of ancestorsOf(path)) wanted.add(ancestor);
        childTouches.set(parentOf(path), (childTouches.get(parentOf(path)) ?? 0) + 1);
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
    const sizes = inserted.size > 0 ? await options.checkChunks([...inserted]) : new Map<string, number>();

    return await this.#inNamespace(ns, async (tx) => {
      const [counter, found, manifestRows, locks] = await Promise.all([
        tx`select seq, usage from counters where ns = ${ns}`,
        tx`select rec from entries where ns = ${ns} and k in
          (select fs_key(value) from jsonb_array_elements_text(${json([...wanted])}::text::jsonb))`,
        bases.size === 0 ? Promise.resolve([]) : tx`select hash, count, rows from manifests where hash in
          (select value from jsonb_array_elements_text(${json([...bases])}::text::jsonb))`,
        options.holder ? locksIn(tx, ns) : Promise.resolve([]),
      ]);
      const seq = counter.length ? Number(counter[0].seq) : 0;
      const usage = counter.length ? Number(counter[0].usage) : 0;
      const fetched = new Map<string, EntryRecord | null>([...wanted].map((p) => [p, null]));
      for (const { rec } of found) fetched.set((rec as EntryRecord).path, rec as EntryRecord);
      const baseManifests = new Map<string, ChunkRow[]>();
      for (const m of manifestRows) {
        const decoded = decodeRows(m.rows);
        if (decoded.length === m.count) baseManifests.set(m.hash, decoded);
      }

      // Children of folders the batch deletes or replaces (as many as the batch could remove, plus one), and
      // the children with the same folded name of each name the batch may create (the case-clash rule).
      const folders = new Map<string, number>();
      for (const change of changes) {
        if (change.op !== "upload" && change.op !== "delete") continue;
        if (fetched.get(change.path)?.kind !== "dir") continue;
        folders.set(change.path, (childTouches.get(change.path) ?? 0) + 1);
      }
      const names = new Map<string, { folder: string; folded: string }>();
      for (const change of changes) {
        if (change.op === "delete") continue;
        for (const path of [...ancestorsOf(change.path), change.path]) {
          if (fetched.get(path) !== null) continue;
          const name = { folder: parentOf(path), folded: foldName(baseName(path)) };
          names.set(`${name.folder}\u0000${name.folded}`, name);
        }
      }
      const [childRows, foldedRows] = await Promise.all([
        folders.size === 0 ? Promise.resolve([]) : tx`select f.folder, e.path
          from jsonb_to_recordset(${
          json([...folders].map(([folder, lim]) => ({ folder, lim })))
        }::text::jsonb)
            as f(folder text, lim int)
          cross join lateral (select path from entries
            where ns = ${ns} and parent = fs_key(f.folder) limit f.lim) e`,
        names.size === 0 ? Promise.resolve([]) : tx`select f.folder, f.folded, e.path, e.rec
          from jsonb_to_recordset(${json([...names.values()])}::text::jsonb) as f(folder text, folded text)
          join entries e on e.ns = ${ns} and e.parent = fs_key(f.folder) and e.folded = f.folded`,
      ]);
      const children = new Map<string, string[]>([...folders.keys()].map((f) => [f, []]));
      for (const r of childRows) children.get(r.folder)!.push(r.path);
      const folded = new Map<string, string[]>([...names.keys()].map((k) => [k, []]));
      for (const r of foldedRows) {
        folded.get(`${r.folder}\u0000${r.folded}`)!.push(r.path);
        // The rules read a clashing sibling's entry too.
        if (!fetched.has(r.path)) fetched.set(r.path, r.rec as EntryRecord);
      }

      const plan = planCommit(
        {
          entry: (path) => {
            const entry = fetched.get(path);
            if (entry === undefined) throw new Error(`Commit read "${path}" without fetching it`);
            return entry;
          },
          children: (path) => {
            const paths = children.get(path) ?? [];
            return { paths, complete: paths.length < (folders.get(path) ?? 1) };
          },
          manifest: (hash) => baseManifests.get(hash) ?? null,
          sameFolded: (folder, name) => {
            const paths = folded.get(`${folder}\u0000${name}`);
            if (paths === undefined) throw new Error(`Commit read folder "${folder}" without fetching it`);
            return paths;
          },
        },
        changes,
        {
          device: options.device,
          seq,
          now: this.#now(),
          tag: randomBytes(8).toString("hex"),
          rows,
          sizes,
          limits: options.limits,
          usage,
          locks: locks as LockRecord[],
          holder: options.holder,
        },
      );
      const journal = plan.steps.flatMap((s) => s.journal);
      if (journal.length === 0) return { results: plan.results, journal };
      await options.syncChunks?.(plan.permanent);

      const final = new Map<string, EntryRecord | null>();
      for (const step of plan.steps) for (const { path, entry } of step.writes) final.set(path, entry);
      const removed = [...final].filter(([, e]) => e === null).map(([p]) => p);
      const written = [...final.values()].filter((e): e is EntryRecord => e !== null).map((rec) => ({
        path: rec.path,
        parent: parentOf(rec.path),
        folded: foldName(baseName(rec.path)),
        rec,
      }));
      const versions = plan.steps.flatMap((s) => s.versions);
      const trash = plan.steps.flatMap((s) => s.trash);
      await Promise.all([
        writeManifests(tx, [...plan.manifests]),
        plan.permanent.size === 0 ? null : tx`insert into committed_chunks (ns, id)
          select ${ns}, value from jsonb_array_elements_text(${json([...plan.permanent])}::text::jsonb)
          on conflict do nothing`,
        removed.length === 0 ? null : tx`delete from entries where ns = ${ns} and k in
          (select fs_key(value) from jsonb_array_elements_text(${json(removed)}::text::jsonb))`,
        written.length === 0 ? null : tx`insert into entries (ns, path, parent, folded, rec)
          select ${ns}, x.path, fs_key(x.parent), x.folded, x.rec
          from jsonb_to_recordset(${
          json(written)
        }::text::jsonb) as x(path text, parent text, folded text, rec jsonb)
          on conflict (ns, k) do update
            set parent = excluded.parent, folded = excluded.folded, rec = excluded.rec`,
        tx`insert into journal (ns, rev, rec)
          select ${ns}, (x->>'rev')::bigint, x from jsonb_array_elements(${json(journal)}::text::jsonb) x`,
        versions.length === 0 ? null : tx`insert into versions (ns, path, rev, rec)
          select ${ns}, x->>'path', (x->>'rev')::bigint, x from jsonb_array_elements(${
          json(versions)
        }::text::jsonb) x
          on conflict (ns, k, rev) do update set rec = excluded.rec`,
        trash.length === 0 ? null : tx`insert into trash (ns, rev, rec)
          select ${ns}, (x->>'rev')::bigint, x from jsonb_array_elements(${json(trash)}::text::jsonb) x
          on conflict (ns, rev) do update set rec = excluded.rec`,
      ]);
      // Compare-and-set on the counter: it must still be what the plan was made against.
      const moved = await tx`insert into counters (ns, seq, usage) values (${ns}, ${plan.seq}, ${plan.usage})
        on conflict (ns) do update set seq = excluded.seq, usage = excluded.usage where counters.seq = ${seq}
        returning 1`;
      if (moved.length === 0) throw new Error(`Concurrent modification of namespace "${ns}"; retry`);
      return { results: plan.results, journal };
    });
  }

  // ---- repair ----

  /** Nothing to repair: every change is one transaction, so no crash leaves half of one. */
  repair(): Promise<string[]> {
    return Promise.resolve([]);
  }
}

async function latestSeqIn(sql: Runner, ns: string): Promise<number> {
  const rows = await sql`select seq from counters where ns = ${ns}`;
  return rows.length ? Number(rows[0].seq) : 0;
}

async function usageIn(sql: Runner, ns: string): Promise<number> {
  const rows = await sql`select usage from counters where ns = ${ns}`;
  return rows.length ? Number(rows[0].usage) : 0;
}

async function locksIn(sql: Runner, ns: string): Promise<LockRecord[]> {
  return (await sql`select rec from locks where ns = ${ns}`).map((r) => r.rec as LockRecord);
}

async function namespaceIn(sql: Runner, id: string): Promise<NamespaceRecord | null> {
  const rows = await sql`select rec from namespaces where id = ${id}`;
  return rows.length ? rows[0].rec as NamespaceRecord : null;
}

/** Makes exactly `users` the grantees of namespace `id` (who see it in `namespacesOf`). */
async function setGrantees(tx: TransactionSql, id: string, users: string[]): Promise<void> {
  const list = json([...new Set(users)]);
  await tx`delete from grantees where ns = ${id} and username not in
    (select value from jsonb_array_elements_text(${list}::text::jsonb))`;
  await tx`insert into grantees (username, ns) select value, ${id} from jsonb_array_elements_text(${list}::text::jsonb)
    on conflict do nothing`;
}

/** Deletes every token and device of a user. */
async function revokeTokensIn(tx: TransactionSql, user: string): Promise<void> {
  await tx`delete from tokens where hash in (select rec->>'tokenHash' from devices where username = ${user})`;
  await tx`delete from devices where username = ${user}`;
}

/** Stores manifests (rewriting any stored under the same hash) in one statement. */
async function writeManifests(
  sql: Runner,
  manifests: [string, { size: number; rows: ChunkRow[] }][],
): Promise<void> {
  if (manifests.length === 0) return;
  const list = manifests.map(([hash, { size, rows }]) => ({
    hash,
    size,
    count: rows.length,
    rows: Buffer.from(encodeRows(rows)).toString("base64"),
  }));
  await sql`insert into manifests (hash, size, count, rows)
    select x.hash, x.size, x.count, decode(x.rows, 'base64')
    from jsonb_to_recordset(${json(list)}::text::jsonb) as x(hash text, size bigint, count int, rows text)
    on conflict (hash) do update set size = excluded.size, count = excluded.count, rows = excluded.rows`;
}
