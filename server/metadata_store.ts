// The server's metadata behind one small interface: users, tokens, entries, journal, manifests, history, trash.
import type { Change, ChangeResult, ChunkRow, WireDevice, WireEntry } from "../protocol/messages.ts";
import type { CommitLimits } from "./commit_rules.ts";
import type { SharedExclusiveLock } from "./gc_lock.ts";
import type { LockHolder } from "../protocol/locks.ts";
import type { LockRecord } from "./lock_rules.ts";

export type { ChunkRow, LockRecord };

/** A user account. Passwords are stored as scrypt hashes with a per-user salt. */
export interface UserRecord {
  name: string;
  salt: string;
  hash: string;
  created: number;
  /** The user's own quota in bytes of live files; null for none; absent: the server's `--quota`. */
  quota?: number | null;
}

/** A device token, stored under the SHA-256 of the token. */
export interface TokenRecord {
  user: string;
  deviceId: string;
  device: string;
  created: number;
  expires: number;
  /** When the device last logged in or connected with this token (ms since the epoch); absent: not since `created`. */
  lastSeen?: number;
  /** When the device was revoked (ms since the epoch); a revoked token is kept so the device can be told why. */
  revoked?: number;
}

/**
 * A device of a user as `filesync user devices` lists it: one per login (a device that logs in again, after its
 * token was revoked or lost, is a new device with a new id).
 */
export type DeviceRecord = Omit<WireDevice, "current">;

/**
 * A live entry of a namespace (deleted paths have no entry; the journal keeps the deletion). `time` is when the
 * commit that wrote it was made (absent in entries written before history existed).
 */
export type EntryRecord = Omit<WireEntry, "deleted" | "tag"> & { time?: number };

/**
 * A kept earlier version of a file: what the entry was before a commit replaced or deleted it. Versions share
 * the manifest (and so the chunks) of the file they were; nothing is copied.
 */
export interface VersionRecord {
  /** The file's path. */
  path: string;
  /** The rev of the commit that created this version; its id is `String(rev)`. */
  rev: number;
  /** Whole-file hash, which names its manifest. */
  hash: string;
  /** Size in bytes. */
  size: number;
  /** Modification time on the device that committed it (ms since the epoch). */
  mtime: number;
  /** Device that committed this version. */
  device: string;
  /** When this version was committed (ms since the epoch). */
  time: number;
  /** When it stopped being current (replaced or deleted): retention counts from here. */
  until: number;
}

/** A deleted file or folder, kept until retention drops it. */
export interface TrashRecord {
  /** The deleted path. */
  path: string;
  /** What it was. */
  kind: "file" | "dir";
  /** Rev of the deletion in the journal. */
  rev: number;
  /** When it was deleted (ms since the epoch). */
  deletedAt: number;
  /** Device that deleted it. */
  device: string;
  /** Size of the deleted file (0 for folders). */
  size: number;
  /** For a file, the id of its kept version; for a folder, the rev that created the folder. */
  version: string;
}

/** Where a journal was compacted: entries up to `seq` are gone; `tag` was the tag of the entry at `seq`. */
export interface CompactionPoint {
  seq: number;
  tag?: string;
}

/** The journal's latest seq at a time (recorded by garbage collection, so compaction can tell entries' age). */
export interface JournalMark {
  seq: number;
  /** ms since the epoch. */
  time: number;
}

/** How long history and trash are kept. */
export interface RetentionPolicy {
  /** Days a version is kept after it stopped being current, and a trash item after its deletion. @default 30 */
  keepDays: number;
  /** At most this many non-current versions per file (unset: no limit). */
  keepVersions?: number;
}

/**
 * The real sizes (in bytes, as stored) of those of these chunks the caller may reference. An id absent from the
 * map is one it may not: not stored, or never uploaded by the caller nor part of its files.
 */
export type ChunkCheck = (ids: string[]) => Promise<Map<string, number>>;

/** Makes chunks durable before a commit references them. */
export type ChunkSync = (ids: Set<string>) => Promise<void>;

/** Options of {@linkcode MetadataStore.commit}. */
export interface CommitOptions {
  /** Name of the committing device (recorded in entries, versions and trash). */
  device: string;
  /** The changes, applied in order. */
  changes: Change[];
  /** The COMMIT's data: manifest rows the upload changes point into. */
  rows: Uint8Array;
  /** The real sizes of the inserted chunks the caller may reference (every inserted row is checked against them). */
  checkChunks: ChunkCheck;
  /** Largest chunk, largest file and the namespace's quota. @default no limits besides the largest chunk */
  limits?: CommitLimits;
  /** Makes the referenced chunks durable before anything points at them. */
  syncChunks?: ChunkSync;
  /**
   * The committing user and device: changes of files another device holds a live lock on are refused (see
   * `checkLocks` in commit_rules.ts). @default no lock is checked (server-internal commits)
   */
  holder?: LockHolder;
  /** The commit is a RESTORE of this version: its journal entries say so (`restored`). @default none */
  restored?: string;
}

/** What {@linkcode MetadataStore.changeLock}'s decision writes: a lock, null to remove it, or nothing. */
export interface LockChange<T> {
  /** The lock to store at the path, null to remove the one there, undefined to leave it as it is. */
  write?: LockRecord | null;
  /** Passed back to the caller. */
  result: T;
}

/** What a commit did: one result per change, and the journal entries written, in order. */
export interface CommitOutcome {
  /** One result per change, in order. */
  results: ChangeResult[];
  /** Every journal entry written, in rev order (to publish to the namespace's devices). */
  journal: WireEntry[];
}

/**
 * A grant of a right in a namespace to a user other than its owner (sharing writes them; none exist yet).
 * `path` ("" or absent: the whole namespace) limits it to a file or folder inside.
 */
export interface NamespaceGrant {
  user: string;
  role: "read" | "write";
  path?: string;
  /** Where the grantee's devices show a share of `path` (a top-level name, chosen when it was shared). */
  mount?: string;
  /** When it was granted (ms since the epoch). */
  created?: number;
}

/**
 * A namespace: what a journal, its entries, history and trash belong to. Every user owns one, of kind "user",
 * whose id is the user's name (so data written before namespaces were records keeps its keys); a share (later)
 * is a namespace of kind "share" with grants, whose id is never a valid user name (it holds a ":").
 */
export interface NamespaceRecord {
  /** Unique id: the user name for kind "user". */
  id: string;
  /** The user who owns it. */
  owner: string;
  kind: "user" | "share";
  /** Display name (for a share, the folder its grantees see it as). */
  name: string;
  /** When it was made (ms since the epoch; 0 when unknown, as for users made before namespace records). */
  created: number;
  /** Rights given to other users. */
  grants?: NamespaceGrant[];
}

/** A chunk reference of a namespace: `pending` (uploaded, expires at `until`) or `committed`. */
export interface ChunkRef {
  /** The namespace holding the reference. */
  ns: string;
  /** The chunk id. */
  id: string;
  /** Uploaded for a commit not made yet, or part of a committed file. */
  kind: "pending" | "committed";
  /** Expiry of a pending reference (ms since the epoch). */
  until?: number;
}

/**
 * The server's metadata. One implementation per database (Deno KV today: `KvMetadataStore`); every one passes
 * the contract suite in `metadata_contract.ts`. Methods reject only on storage failures; refusals of changes
 * are results, not errors. The commit rules themselves are pure (`commit_rules.ts`); a store applies them.
 */
export interface MetadataStore {
  /** Uploads and commits hold it shared; garbage collection holds it alone. */
  readonly gcLock: SharedExclusiveLock;

  // ---- users and tokens ----
  /** The user record, or null. */
  getUser(name: string): Promise<UserRecord | null>;
  /** Creates a user; false if the name is taken. */
  addUser(user: UserRecord): Promise<boolean>;
  /** Replaces a user's password hash and revokes every device token of that user; false for an unknown user. */
  setPassword(name: string, salt: string, hash: string): Promise<boolean>;
  /** Sets (a number or null for no limit) or clears (undefined) a user's own quota; false for an unknown user. */
  setQuota(name: string, quota: number | null | undefined): Promise<boolean>;
  /** Removes a user with tokens, files, journal, history and trash; false for an unknown user. */
  removeUser(name: string): Promise<boolean>;
  /** Every user. */
  listUsers(): Promise<UserRecord[]>;
  /** Stores a new device token (by its hash). */
  addToken(tokenHash: string, record: TokenRecord): Promise<void>;
  /** The token record, or null if unknown. Expiry is the caller's check. */
  getToken(tokenHash: string): Promise<TokenRecord | null>;
  /** Extends a token's expiry (never that of a revoked token, nor brings one back). */
  touchToken(tokenHash: string, expires: number): Promise<void>;
  /** Revokes every token of a user. */
  revokeTokens(user: string): Promise<void>;

  // ---- devices ----
  /** Every device of a user (revoked ones included), in order of login; empty for an unknown user. */
  listDevices(user: string): Promise<DeviceRecord[]>;
  /**
   * Marks a device's token revoked at `at` (AUTH is then refused with the reason); a device revoked before keeps
   * its first revocation time. Returns the device as it is now, or null for a device the user does not have.
   */
  revokeDevice(user: string, deviceId: string, at: number): Promise<DeviceRecord | null>;
  /** Records that a token's device connected at `at`; nothing for an unknown or revoked token. */
  markSeen(tokenHash: string, at: number): Promise<void>;

  // ---- entries and journal ----
  /** The live entry at a path, or null. */
  getEntry(ns: string, path: string): Promise<EntryRecord | null>;
  /** The live entries at these paths, in their order (null where none): {@linkcode getEntry} in one read. */
  getEntries(ns: string, paths: readonly string[]): Promise<(EntryRecord | null)[]>;
  /** Every live entry of a namespace (any order). */
  listEntries(ns: string): AsyncIterable<EntryRecord>;
  /** The namespace's latest sequence number (0 when empty). */
  latestSeq(ns: string): Promise<number>;
  /** The latest sequence numbers of these namespaces, in their order: {@linkcode latestSeq} in one read. */
  latestSeqs(namespaces: readonly string[]): Promise<number[]>;
  /** Journal entries with rev > since, oldest first, at most `limit`. */
  changesSince(ns: string, since: number, limit: number): Promise<WireEntry[]>;
  /** Journal entries with rev < before, newest first, at most `limit`. */
  changesBefore(ns: string, before: number, limit: number): Promise<WireEntry[]>;
  /** Every namespace that has a journal. */
  listNamespaces(): AsyncIterable<string>;

  // ---- commit ----
  /**
   * Applies a batch of changes to a namespace. Each change is checked on its own against the current state
   * (compare-and-set on its base revision) and either committed with the next sequence numbers or refused;
   * refused changes do not stop the others. A crash at any point leaves the journal counter and entries in
   * agreement: whole changes are either visible with their journal entries or not at all.
   */
  commit(ns: string, options: CommitOptions): Promise<CommitOutcome>;
  /**
   * Bytes of the namespace's live files (what a quota counts; kept versions and trash do not), as of the last
   * commit. Every commit keeps it in step with the entries it writes.
   */
  usage(ns: string): Promise<number>;

  // ---- manifests ----
  /** The chunk rows of a file version, or null if the manifest is unknown. */
  getManifest(hash: string): Promise<ChunkRow[] | null>;
  /** The chunk rows of these file versions, in their order (null where unknown): {@linkcode getManifest} at once. */
  getManifests(hashes: readonly string[]): Promise<(ChunkRow[] | null)[]>;
  /** Every stored manifest hash. */
  listManifests(): AsyncIterable<string>;
  /** Removes a manifest (garbage collection). */
  deleteManifest(hash: string): Promise<void>;
  /**
   * Once per store (a mark in the store records it): checks every stored manifest's rows against the real sizes
   * of their chunks (`sizeOf`, null for a chunk not stored) and rewrites those that disagree with them. Servers
   * before this check stored rows as clients claimed them; a manifest is named by its chunk ids alone, so its
   * chunks' real sizes are the only right ones. Returns the hashes rewritten, or null if it had run before.
   */
  upgradeManifests(sizeOf: (id: string) => Promise<number | null>): Promise<string[] | null>;

  // ---- chunk references ----
  /** Which of these chunk ids the namespace references (uploaded or committed). */
  referencedChunks(ns: string, ids: string[]): Promise<Set<string>>;
  /** Records that the namespace uploaded a chunk not yet committed; resolves once durable. */
  addPendingChunk(ns: string, id: string): Promise<void>;
  /** Resolves once every pending reference recorded so far is written. */
  settlePending(): Promise<void>;
  /** Every chunk reference of every namespace, or only those of one kind. */
  listChunkRefs(options?: { kind?: ChunkRef["kind"] }): AsyncIterable<ChunkRef>;
  /** Removes chunk references. */
  deleteChunkRefs(refs: ChunkRef[]): Promise<void>;

  // ---- history and trash ----
  /** The kept versions of a path, newest first (expired ones included until garbage collection drops them). */
  listVersions(ns: string, path: string): Promise<VersionRecord[]>;
  /** Every kept version of a namespace (any order). */
  listAllVersions(ns: string): AsyncIterable<VersionRecord>;
  /** The trash of a namespace, newest deletion first (expired items included until collected). */
  listTrash(ns: string): Promise<TrashRecord[]>;
  /** Drops versions and trash items (garbage collection of expired history). */
  dropHistory(ns: string, drop: { versions: VersionRecord[]; trash: TrashRecord[] }): Promise<void>;
  /** The retention policy the server last ran with (so offline garbage collection keeps what it keeps). */
  getRetention(): Promise<RetentionPolicy | null>;
  /** Records the retention policy. */
  setRetention(policy: RetentionPolicy): Promise<void>;

  // ---- journal identity ----
  /**
   * The journal's epoch: a random id made once with the store and kept with its data (a restored backup keeps
   * it, a new data folder has another), so devices can tell whether their cursor belongs to this journal.
   */
  journalEpoch(): Promise<string>;
  /** Where the namespace's journal was compacted: entries up to `seq` are gone. Null if never compacted. */
  getCompaction(ns: string): Promise<CompactionPoint | null>;
  /**
   * Deletes the journal entries with rev <= `seq` (at most the latest) and records the compaction point with
   * the tag of the entry at `seq`; the point is recorded first, so a crash part way only leaves entries nobody
   * reads. Returns how many entries were deleted.
   */
  compactJournal(ns: string, seq: number): Promise<number>;
  /** The namespace's journal marks (when the journal reached which seq), oldest first. */
  getJournalMarks(ns: string): Promise<JournalMark[]>;
  /** Replaces the namespace's journal marks. */
  setJournalMarks(ns: string, marks: JournalMark[]): Promise<void>;

  // ---- namespaces ----
  /**
   * The namespace record, or null for an unknown id. A user's own namespace exists as long as the user does
   * (users made before namespace records get one that says so: `created` 0).
   */
  getNamespace(id: string): Promise<NamespaceRecord | null>;
  /** Creates or replaces a namespace record of kind "share" (a "user" namespace comes and goes with its user). */
  putNamespace(record: NamespaceRecord): Promise<void>;
  /** Every namespace the user can see: the own one first, then the shares the user owns or has a grant in (by id). */
  namespacesOf(user: string): Promise<NamespaceRecord[]>;
  /**
   * Replaces the grants of a namespace (a user's own or a share) by what `update` makes of the current ones, in
   * one atomic step (re-run on a concurrent change, so `update` must be pure). Returns the record as written, or
   * null for an unknown namespace (nothing written). The grantees see the namespace in
   * {@linkcode namespacesOf} exactly while they hold a grant.
   */
  updateGrants(
    id: string,
    update: (grants: NamespaceGrant[]) => NamespaceGrant[],
  ): Promise<NamespaceRecord | null>;

  // ---- locks ----
  /** Every stored lock of a namespace, live or expired (any order). */
  listLocks(ns: string): Promise<LockRecord[]>;
  /** Every namespace with at least one stored lock. */
  listLockNamespaces(): AsyncIterable<string>;
  /**
   * Changes the lock at `path`: `decide` gets the stored lock (or null) and the live entry at the path (or null)
   * and says what to write. Runs one at a time with the namespace's commits and other lock changes, so a commit
   * sees each lock as it was before the change or after it, never half. Locks survive a restart.
   */
  changeLock<T>(
    ns: string,
    path: string,
    decide: (current: LockRecord | null, entry: EntryRecord | null) => LockChange<T>,
  ): Promise<T>;

  // ---- lifecycle ----
  /** Repairs what a crash of older code may have left behind; one line per repair (empty when clean). */
  repair(): Promise<string[]>;
  /** Closes the store. */
  close(): void;
}
