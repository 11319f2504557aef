// Content-addressed chunk storage: the small interface the server needs, and its disk implementation.
import { join } from "node:path";
import { sha256Hex } from "../protocol/hash.ts";
import { type ChunkCipher, SEAL_OVERHEAD, SEALED_HEAD_BYTES } from "./chunk_cipher.ts";
import { parseS3Spec, type S3Credentials, s3Credentials } from "./s3_location.ts";

/**
 * Where chunk bytes live, addressed by their SHA-256 (lowercase hex). `put` is atomic (a chunk is absent or
 * complete); it becomes durable at the latest when `sync` of its id resolves, which a commit awaits before it
 * references the chunk, so many chunks share one round of syncing.
 */
export interface ChunkStore {
  /** True if the chunk is stored. */
  has(id: string): Promise<boolean>;
  /** The stored chunk's size in bytes, or null if it is not stored (as cheap as `has`: no bytes are read). */
  size(id: string): Promise<number | null>;
  /**
   * The chunk's bytes, or null if it is not stored. A stored copy known to be damaged (an encrypted one that
   * does not authenticate) is a `ChunkDamagedError`, never other bytes.
   */
  get(id: string): Promise<Uint8Array | null>;
  /**
   * Stores a chunk; the caller has verified that `id` is the hash of `data`. Storing a chunk again replaces it
   * with the same bytes (and heals a copy damaged by a crash before it was synced).
   */
  put(id: string, data: Uint8Array): Promise<void>;
  /**
   * Makes the given chunks durable. Chunks this process stored are synced once (those already durable cost
   * nothing); chunks stored by an earlier process (before a restart) only with `earlier`, and those missing
   * are passed over.
   */
  sync(ids: Iterable<string>, options?: ChunkSyncOptions): Promise<void>;
  /** Removes a chunk; removing a missing chunk is a no-op. */
  delete(id: string): Promise<void>;
  /** Every stored chunk id. */
  list(): AsyncIterable<string>;
  /**
   * Optional: how many chunks are stored and the bytes they take in the store (encrypted, as stored). May take
   * a walk of the whole store; callers cache it.
   */
  usage?(): Promise<ChunkUsage>;
}

/** What {@linkcode ChunkStore.usage} reports. */
export interface ChunkUsage {
  /** Stored chunks. */
  chunks: number;
  /** Their bytes as stored. */
  bytes: number;
}

/** Options of {@linkcode ChunkStore.sync}. */
export interface ChunkSyncOptions {
  /**
   * Also sync chunks this process did not store, such as uploads a crashed process wrote but never synced.
   * @default false
   */
  earlier?: boolean;
}

/** Chunk store URL schemes {@linkcode openChunkStore} understands. */
export const CHUNK_STORE_SCHEMES = ["file:", "s3:"] as const;

/** Options of {@linkcode openChunkStore}. */
export interface OpenChunkStoreOptions {
  /**
   * Encrypts what is stored (see {@linkcode ChunkCipher}); null stores plaintext, for tests and benchmarks only
   * (a plaintext store refuses a folder that holds encrypted chunks).
   */
  cipher: ChunkCipher | null;
  /** Only check the key, never migrate or write (fsck). @default false */
  readOnly?: boolean;
  /** An `s3:` store's keys from the config file (the environment's AWS_* win). */
  s3Credentials?: Partial<S3Credentials>;
}

/** True if a chunk store spec names an S3 store (`s3://BUCKET/PREFIX?…`) rather than a folder. */
export function isS3Spec(spec: string): boolean {
  return /^s3:/i.test(spec);
}

/** The chunk store folder a configuration names: a folder path, or a `file:` URL of one (see {@linkcode openChunkStore}). */
export function chunkStoreRoot(spec: string): string {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(spec)?.[1]?.toLowerCase();
  let root = spec;
  if (scheme !== undefined && !/^[a-z]$/i.test(scheme)) {
    if (scheme === "s3") throw new TypeError("An s3: chunk store is an object store, not a folder");
    if (scheme !== "file") {
      throw new TypeError(
        `Unsupported chunk store "${spec}": use a folder path or a ${CHUNK_STORE_SCHEMES.join(", ")} URL`,
      );
    }
    root = decodeURIComponent(new URL(spec).pathname);
  }
  if (root === "") throw new TypeError("Empty chunk store path");
  return root;
}

/**
 * The key check stored with the chunks a configuration names, or null when there is none (a new or plaintext
 * store), and where it is for messages. An S3 store that cannot be reached is a one-line UserError.
 */
export async function chunkStoreRecord(
  spec: string,
  options: Pick<OpenChunkStoreOptions, "s3Credentials"> = {},
): Promise<{ where: string; record: EncryptionRecord | null }> {
  if (!isS3Spec(spec)) {
    const root = chunkStoreRoot(spec);
    return { where: root, record: readEncryptionRecord(root) };
  }
  const location = parseS3Spec(spec);
  const credentials = s3Credentials(options.s3Credentials);
  const { S3ChunkStore } = await import("./chunk_store_s3.ts");
  const store = new S3ChunkStore(location, { credentials });
  try {
    return { where: store.where, record: await store.readRecord() };
  } finally {
    store.close();
  }
}

/**
 * Opens the chunk store a configuration names: a folder path, a `file:` URL of one, or an S3 bucket
 * `s3://BUCKET/PREFIX?endpoint=URL&region=REGION` (loaded only then: the default pays nothing for it). Anything
 * else with a URL scheme is a TypeError naming the supported ones.
 *
 * @example
 * ```ts
 * const chunks = await openChunkStore("/srv/filesync/chunks", { cipher: new ChunkCipher(masterKey) });
 * ```
 */
export async function openChunkStore(
  spec: string,
  options: OpenChunkStoreOptions,
): Promise<{ store: ChunkStore; report: OpenReport }> {
  if (isS3Spec(spec)) {
    const location = parseS3Spec(spec);
    const credentials = s3Credentials(options.s3Credentials);
    const { S3ChunkStore } = await import("./chunk_store_s3.ts");
    const store = new S3ChunkStore(location, { credentials, cipher: options.cipher ?? undefined });
    try {
      return { store, report: await store.open({ readOnly: options.readOnly }) };
    } catch (error) {
      store.close();
      throw error;
    }
  }
  const store = new DiskChunkStore(chunkStoreRoot(spec), { cipher: options.cipher ?? undefined });
  const report = await store.open({ readOnly: options.readOnly });
  return { store, report };
}

/** A master key that does not match the key check stored with the chunks. */
export class WrongKeyError extends Error {
  /** The error's name. */
  override name = "WrongKeyError";
}

/** What {@linkcode DiskChunkStore.open} found and did. */
export interface OpenReport {
  /** Plaintext chunks of an older version that were encrypted and renamed. */
  migrated: number;
  /** Files that are neither a plaintext chunk (content hashing to the name) nor encrypted with this key; left alone. */
  unreadable: number;
  /** Whether the folder was new to encryption (no key check was stored yet). */
  firstEncrypted: boolean;
  /** Read-only open of a folder whose migration has not finished (fsck): only encrypted chunks are readable. */
  migrationPending: boolean;
}

/** The file beside the chunks that records the key check and whether every chunk is encrypted. */
export const ENCRYPTION_FILE = "encryption.json";

/** The contents of {@linkcode ENCRYPTION_FILE}. */
export interface EncryptionRecord {
  /** The cipher every chunk is encrypted with. */
  cipher: "AES-256-GCM";
  /** {@linkcode ChunkCipher.keyCheck} of the master key the chunks are encrypted with. */
  keyCheck: string;
  /** False while plaintext chunks of an older version may still be there (a migration to finish). */
  allEncrypted: boolean;
}

/** The encryption record of a chunk folder, or null if it has none (a new or plaintext folder). */
export function readEncryptionRecord(root: string): EncryptionRecord | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(join(root, ENCRYPTION_FILE));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
  return parseEncryptionRecord(text, join(root, ENCRYPTION_FILE));
}

/** An {@linkcode ENCRYPTION_FILE}'s text as a record; a SyntaxError naming `where` if it is not one. */
export function parseEncryptionRecord(text: string, where: string): EncryptionRecord {
  let record: EncryptionRecord;
  try {
    record = JSON.parse(text);
  } catch {
    throw new SyntaxError(`${where} is not valid JSON`);
  }
  if (typeof record?.keyCheck !== "string" || typeof record.allEncrypted !== "boolean") {
    throw new SyntaxError(`${where} lacks its key check`);
  }
  return record;
}

/** Options of {@linkcode DiskChunkStore}. */
export interface DiskChunkStoreOptions {
  /** Encrypts every stored chunk and hides its id in the file name. @default plaintext (tests and benchmarks) */
  cipher?: ChunkCipher;
}

/** A stored chunk's name (its id, or {@linkcode ChunkCipher.nameOf} it): 64 lowercase hex digits. */
export const HEX_NAME = /^[0-9a-f]{64}$/;
/** How many chunk names a store keeps at hand (about 300 bytes each). */
const NAME_CACHE_SIZE = 4096;

/**
 * The stored names of chunks (the id itself without a cipher), with the recently used ones kept at hand: a name
 * is an HMAC, and one upload and its commit need it about four times. Shared by every store, so a chunk has the
 * same name on disk and in an object store.
 */
export class ChunkNames {
  #cipher: ChunkCipher | undefined;
  #names = new Map<string, string>();

  /** Names chunks by `cipher` (by their ids without one). */
  constructor(cipher: ChunkCipher | undefined) {
    this.#cipher = cipher;
  }

  /** Chunk `id`'s stored name. */
  of(id: string): string {
    if (!this.#cipher) return id;
    let name = this.#names.get(id);
    if (name === undefined) {
      name = this.#cipher.nameOf(id);
      if (this.#names.size >= NAME_CACHE_SIZE) this.#names.delete(this.#names.keys().next().value!);
      this.#names.set(id, name);
    }
    return name;
  }

  /** Where a chunk named `name` lives below the store's root: `ab/abcdef…`. */
  static path(name: string): string {
    return `${name.slice(0, 2)}/${name}`;
  }
}

/**
 * The entries of a folder, read synchronously: the async `Deno.readDir` costs a trip through the thread pool
 * per entry (about two thirds of `list()`'s time), the sync one a system call per few hundred. A chunk folder
 * is a 256th of the store, so the event loop is held for milliseconds at most.
 */
function listDir(path: string): Deno.DirEntry[] {
  return Array.from(Deno.readDirSync(path));
}

/** The first `n` bytes of a file (fewer if it is shorter). */
function readHead(path: string, n: number): Uint8Array {
  using file = Deno.openSync(path, { read: true });
  const buf = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const read = file.readSync(buf.subarray(got));
    if (read === null || read === 0) break;
    got += read;
  }
  return buf.subarray(0, got);
}

/**
 * Chunks as files `ROOT/ab/abcdef…`, written to a temp file and renamed into place; synced to disk in batches
 * by {@linkcode DiskChunkStore.sync} (many fsyncs at once cost little more than one). With a cipher (always, for
 * a server) the file name is the chunk's stored name ({@linkcode ChunkCipher.nameOf}) and the content is
 * encrypted; `ROOT/encryption.json` holds the key check. Without one (tests, benchmarks) the name is the id.
 */
export class DiskChunkStore implements ChunkStore {
  #root: string;
  #cipher: ChunkCipher | undefined;
  #madeDirs = new Set<string>();
  #tmpCounter = 0;
  /** Where chunks are sealed on their way to disk (with libcrypto); grown to the largest chunk. */
  #sealBuffer = new Uint8Array(0);
  /** Chunks written by this process and not yet synced, with their stored names. */
  #unsynced = new Map<string, string>();
  #names: ChunkNames;

  /** Uses (and creates on demand) the folder `root`. */
  constructor(root: string, options: DiskChunkStoreOptions = {}) {
    this.#root = root;
    this.#cipher = options.cipher;
    this.#names = new ChunkNames(options.cipher);
  }

  #name(id: string): string {
    return this.#names.of(id);
  }

  #path(id: string): string {
    const name = this.#name(id);
    return join(this.#root, name.slice(0, 2), name);
  }

  /**
   * Creates the root folder and removes temp files left by a crash. With a cipher: checks the key against the
   * stored key check ({@linkcode WrongKeyError} if it differs), and encrypts and renames the plaintext chunks an
   * older version left (a crash in between is finished at the next open). Without one: refuses a folder that
   * holds encrypted chunks.
   */
  async open(options: { readOnly?: boolean } = {}): Promise<OpenReport> {
    const report: OpenReport = { migrated: 0, unreadable: 0, firstEncrypted: false, migrationPending: false };
    if (!options.readOnly) {
      await Deno.mkdir(this.#root, { recursive: true, mode: 0o700 });
      for (const dir of listDir(this.#root)) {
        if (!dir.isDirectory) continue;
        for (const file of listDir(join(this.#root, dir.name))) {
          if (file.name.includes(".tmp")) {
            await Deno.remove(join(this.#root, dir.name, file.name)).catch(() => {});
          }
        }
      }
    }
    const record = readEncryptionRecord(this.#root);
    const cipher = this.#cipher;
    if (!cipher) {
      if (record) {
        throw new TypeError(
          `Chunk store "${this.#root}" is encrypted: it opens only with the server's master key`,
        );
      }
      return report;
    }
    if (record && record.keyCheck !== cipher.keyCheck) {
      throw new WrongKeyError(
        `The master key does not match the chunks in "${this.#root}": they were encrypted with another key`,
      );
    }
    if (record?.allEncrypted) return report;
    if (options.readOnly) {
      report.migrationPending = true;
      return report;
    }
    report.firstEncrypted = record === null;
    // The key check first: from now on a wrong key is refused, even if this migration is interrupted.
    if (!record) {
      await this.#writeRecord({ cipher: "AES-256-GCM", keyCheck: cipher.keyCheck, allEncrypted: false });
    }
    const migration = await this.#migrate(cipher);
    if (!record && migration.unreadable > 0 && migration.migrated === 0 && migration.ours === 0) {
      // Only files this key cannot read and no key check (lost?): most likely the wrong key. Record nothing.
      await Deno.remove(join(this.#root, ENCRYPTION_FILE));
      throw new WrongKeyError(
        `The master key does not match the chunks in "${this.#root}": none of its ${migration.unreadable} ` +
          `files is a plaintext chunk or encrypted with this key, and its ${ENCRYPTION_FILE} is missing`,
      );
    }
    report.migrated = migration.migrated;
    report.unreadable = migration.unreadable;
    await this.#writeRecord({ cipher: "AES-256-GCM", keyCheck: cipher.keyCheck, allEncrypted: true });
    return report;
  }

  async #writeRecord(record: EncryptionRecord): Promise<void> {
    const path = join(this.#root, ENCRYPTION_FILE);
    const tmp = `${path}.${Deno.pid}.tmp`;
    await Deno.writeTextFile(tmp, JSON.stringify(record, null, 2) + "\n", { mode: 0o600 });
    using file = await Deno.open(tmp, { read: true });
    await file.syncData();
    await Deno.rename(tmp, path);
    await syncFolder(this.#root);
  }

  /** Encrypts and renames every plaintext chunk (a file whose content hashes to its name); the rest stays. */
  async #migrate(cipher: ChunkCipher): Promise<{ migrated: number; unreadable: number; ours: number }> {
    // Where a chunk can be: ROOT/ab/ab… (either layout).
    const files: { dir: string; name: string }[] = [];
    for (const dir of listDir(this.#root)) {
      if (!dir.isDirectory || !/^[0-9a-f]{2}$/.test(dir.name)) continue;
      for (const file of listDir(join(this.#root, dir.name))) {
        if (file.isFile && HEX_NAME.test(file.name) && file.name.startsWith(dir.name)) {
          files.push({ dir: dir.name, name: file.name });
        }
      }
    }
    let migrated = 0;
    let unreadable = 0;
    let ours = 0;
    let batch: { id: string; old: string }[] = [];
    const flush = async () => {
      // The encrypted copies are durable before the plaintext ones go: a crash leaves a chunk twice, never lost.
      await this.sync(batch.map((b) => b.id));
      for (const { old } of batch) await Deno.remove(old).catch(() => {});
      migrated += batch.length;
      batch = [];
    };
    for (const { dir, name } of files) {
      const path = join(this.#root, dir, name);
      if (cipher.idOf(name, readHead(path, SEALED_HEAD_BYTES)) !== null) {
        ours++; // already encrypted
        continue;
      }
      const data = Deno.readFileSync(path);
      if (sha256Hex(data) !== name) {
        unreadable++;
        continue;
      }
      await this.put(name, data);
      batch.push({ id: name, old: path });
      if (batch.length >= 256) await flush();
    }
    await flush();
    if (migrated > 0) {
      // The removals too are durable before the record says "all encrypted": no plaintext copy comes back.
      const dirs = new Set(files.map((file) => file.dir));
      await Promise.all([...dirs].map((dir) => syncFolder(join(this.#root, dir))));
    }
    return { migrated, unreadable, ours };
  }

  // Small synchronous file operations: far cheaper here than a trip through the async thread pool; only the
  // fsync, which can take milliseconds, is asynchronous.

  has(id: string): Promise<boolean> {
    try {
      Deno.lstatSync(this.#path(id));
      return Promise.resolve(true);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return Promise.resolve(false);
      return Promise.reject(error);
    }
  }

  size(id: string): Promise<number | null> {
    try {
      const size = Deno.lstatSync(this.#path(id)).size - (this.#cipher ? SEAL_OVERHEAD : 0);
      // A file too short to be an encrypted chunk counts as missing, so the next upload of it replaces it.
      return Promise.resolve(size < 0 ? null : size);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return Promise.resolve(null);
      return Promise.reject(error);
    }
  }

  async get(id: string): Promise<Uint8Array | null> {
    const name = this.#name(id);
    let stored: Uint8Array;
    try {
      stored = Deno.readFileSync(join(this.#root, name.slice(0, 2), name));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return null;
      throw error;
    }
    // Decrypted over the buffer just read: no second buffer per chunk.
    return this.#cipher ? await this.#cipher.open(id, stored, { name, inPlace: true }) : stored;
  }

  async put(id: string, data: Uint8Array): Promise<void> {
    // Always (re)written: cheaper than checking for a copy first, and it heals a copy damaged by a crash.
    // Synchronous calls: a chunk is small and lands in the page cache; the async thread pool would cost more.
    const name = this.#name(id);
    let stored = data;
    const cipher = this.#cipher;
    if (cipher?.crypto.synchronous) {
      // Sealed into one buffer reused for every chunk (a fresh one costs more than the encryption), and
      // written out below before anything else can run.
      const size = SEAL_OVERHEAD + data.length;
      if (this.#sealBuffer.length < size) {
        this.#sealBuffer = new Uint8Array(Math.max(size, 2 * this.#sealBuffer.length));
      }
      stored = this.#sealBuffer.subarray(0, size);
      cipher.sealInto(id, data, stored, { name });
    } else if (cipher) {
      stored = await cipher.seal(id, data, { name });
    }
    const dir = join(this.#root, name.slice(0, 2));
    if (!this.#madeDirs.has(dir)) {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.#madeDirs.add(dir);
    }
    const path = join(dir, name);
    const tmp = `${path}.${Deno.pid}.${this.#tmpCounter++}.tmp`;
    try {
      Deno.writeFileSync(tmp, stored, { mode: 0o600 });
      Deno.renameSync(tmp, path);
    } catch (error) {
      try {
        Deno.removeSync(tmp);
      } catch { /* not created */ }
      throw error;
    }
    this.#unsynced.set(id, name);
  }

  async sync(ids: Iterable<string>, options: ChunkSyncOptions = {}): Promise<void> {
    const todo = [...ids].filter((id) => options.earlier || this.#unsynced.has(id));
    if (todo.length === 0) return;
    const names = todo.map((id) => this.#unsynced.get(id) ?? this.#name(id));
    const dirs = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const name = names[next++];
        const dir = name.slice(0, 2);
        try {
          await this.syncFile(join(this.#root, dir, name));
        } catch (error) {
          if (error instanceof Deno.errors.NotFound && !this.#unsynced.has(todo[next - 1])) continue;
          throw error;
        }
        dirs.add(dir);
      }
    };
    await Promise.all(Array.from({ length: Math.min(32, todo.length) }, worker));
    // The renames live in the folders: sync those too, so a synced chunk cannot vanish after a crash.
    await Promise.all([...dirs].map((dir) => syncFolder(join(this.#root, dir))));
    for (const id of todo) this.#unsynced.delete(id);
  }

  /** Makes one stored file's data durable (a seam for tests that check what is synced). */
  protected async syncFile(path: string): Promise<void> {
    // Opening is a quick system call, cheaper done here than through the async thread pool; the sync is not.
    using file = Deno.openSync(path, { read: true });
    await file.syncData();
  }

  async delete(id: string): Promise<void> {
    await Deno.remove(this.#path(id)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }

  /**
   * Every stored chunk id. Encrypted files are named by their stored name: each one's id is read from its first
   * bytes ({@linkcode ChunkCipher.idOf}); a file that yields none (damaged, or another key's) is not listed.
   */
  async *list(): AsyncIterable<string> {
    for (const dir of listDir(this.#root)) {
      if (!dir.isDirectory) continue;
      for (const file of listDir(join(this.#root, dir.name))) {
        if (!file.isFile || !HEX_NAME.test(file.name)) continue;
        if (!this.#cipher) {
          yield file.name;
          continue;
        }
        let head: Uint8Array;
        try {
          head = readHead(join(this.#root, dir.name, file.name), SEALED_HEAD_BYTES);
        } catch (error) {
          if (error instanceof Deno.errors.NotFound) continue; // deleted meanwhile
          throw error;
        }
        const id = this.#cipher.idOf(file.name, head);
        if (id !== null) yield id;
      }
    }
  }

  /**
   * Counts the stored chunk files and sums their sizes: a walk of the store, one folder (a 256th of it) at a
   * time with a turn of the event loop in between, so other requests go on meanwhile.
   */
  async usage(): Promise<ChunkUsage> {
    let chunks = 0;
    let bytes = 0;
    let dirs: Deno.DirEntry[];
    try {
      dirs = listDir(this.#root);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return { chunks, bytes };
      throw error;
    }
    for (const dir of dirs) {
      if (!dir.isDirectory) continue;
      const folder = join(this.#root, dir.name);
      let files: Deno.DirEntry[];
      try {
        files = listDir(folder);
      } catch {
        continue; // removed meanwhile
      }
      for (const file of files) {
        if (!file.isFile || !HEX_NAME.test(file.name)) continue;
        try {
          bytes += Deno.lstatSync(join(folder, file.name)).size;
          chunks++;
        } catch { /* deleted meanwhile */ }
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    return { chunks, bytes };
  }
}

/**
 * fsync of a folder, so that renames into it survive a crash. Windows cannot open a folder to sync it (NTFS
 * journals the rename itself): nothing to do there; elsewhere a platform that refuses the sync is not an error.
 */
async function syncFolder(path: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  using dir = await Deno.open(path, { read: true });
  await dir.sync().catch(() => {});
}
