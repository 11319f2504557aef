// Content-addressed chunk storage: the small interface the server needs, and its disk implementation.
import { join } from "node:path";

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
  /** The chunk's bytes, or null if it is not stored. */
  get(id: string): Promise<Uint8Array | null>;
  /**
   * Stores a chunk; the caller has verified that `id` is the hash of `data`. Storing a chunk again replaces it
   * with the same bytes (and heals a copy damaged by a crash before it was synced).
   */
  put(id: string, data: Uint8Array): Promise<void>;
  /** Makes the given chunks durable (those already durable cost nothing). */
  sync(ids: Iterable<string>): Promise<void>;
  /** Removes a chunk; removing a missing chunk is a no-op. */
  delete(id: string): Promise<void>;
  /** Every stored chunk id. */
  list(): AsyncIterable<string>;
}

/** Chunk store URL schemes {@linkcode openChunkStore} understands. */
export const CHUNK_STORE_SCHEMES = ["file:"] as const;

/**
 * Opens the chunk store a configuration names: a folder path, or a `file:` URL of one. Anything else with a
 * URL scheme is a TypeError naming the supported ones (an S3-compatible store will be another scheme).
 *
 * @example
 * ```ts
 * const chunks = await openChunkStore("/srv/filesync/chunks");
 * ```
 */
export async function openChunkStore(spec: string): Promise<ChunkStore> {
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(spec)?.[1]?.toLowerCase();
  let root = spec;
  if (scheme !== undefined && !/^[a-z]$/i.test(scheme)) {
    if (scheme !== "file") {
      throw new TypeError(
        `Unsupported chunk store "${spec}": use a folder path or a ${CHUNK_STORE_SCHEMES.join(", ")} URL`,
      );
    }
    root = decodeURIComponent(new URL(spec).pathname);
  }
  if (root === "") throw new TypeError("Empty chunk store path");
  const store = new DiskChunkStore(root);
  await store.open();
  return store;
}

/**
 * Chunks as files `ROOT/ab/abcdef…`, written to a temp file and renamed into place; synced to disk in batches
 * by {@linkcode DiskChunkStore.sync} (many fsyncs at once cost little more than one).
 */
export class DiskChunkStore implements ChunkStore {
  #root: string;
  #madeDirs = new Set<string>();
  #tmpCounter = 0;
  /** Chunks written by this process and not yet synced. */
  #unsynced = new Set<string>();

  /** Uses (and creates on demand) the folder `root`. */
  constructor(root: string) {
    this.#root = root;
  }

  #path(id: string): string {
    return join(this.#root, id.slice(0, 2), id);
  }

  /** Creates the root folder and removes temp files left by a crash. */
  async open(): Promise<void> {
    await Deno.mkdir(this.#root, { recursive: true, mode: 0o700 });
    for await (const dir of Deno.readDir(this.#root)) {
      if (!dir.isDirectory) continue;
      for await (const file of Deno.readDir(join(this.#root, dir.name))) {
        if (file.name.includes(".tmp")) {
          await Deno.remove(join(this.#root, dir.name, file.name)).catch(() => {});
        }
      }
    }
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
      return Promise.resolve(Deno.lstatSync(this.#path(id)).size);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return Promise.resolve(null);
      return Promise.reject(error);
    }
  }

  get(id: string): Promise<Uint8Array | null> {
    try {
      return Promise.resolve(Deno.readFileSync(this.#path(id)));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return Promise.resolve(null);
      return Promise.reject(error);
    }
  }

  put(id: string, data: Uint8Array): Promise<void> {
    // Always (re)written: cheaper than checking for a copy first, and it heals a copy damaged by a crash.
    // Synchronous calls: a chunk is small and lands in the page cache; the async thread pool would cost more.
    const dir = join(this.#root, id.slice(0, 2));
    if (!this.#madeDirs.has(dir)) {
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.#madeDirs.add(dir);
    }
    const tmp = `${this.#path(id)}.${Deno.pid}.${this.#tmpCounter++}.tmp`;
    try {
      Deno.writeFileSync(tmp, data, { mode: 0o600 });
      Deno.renameSync(tmp, this.#path(id));
    } catch (error) {
      try {
        Deno.removeSync(tmp);
      } catch { /* not created */ }
      return Promise.reject(error);
    }
    this.#unsynced.add(id);
    return Promise.resolve();
  }

  async sync(ids: Iterable<string>): Promise<void> {
    const todo = [...ids].filter((id) => this.#unsynced.has(id));
    if (todo.length === 0) return;
    const dirs = new Set<string>();
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const id = todo[next++];
        using file = await Deno.open(this.#path(id), { read: true });
        await file.syncData();
        dirs.add(id.slice(0, 2));
      }
    };
    await Promise.all(Array.from({ length: Math.min(32, todo.length) }, worker));
    // The renames live in the folders: sync those too, so a synced chunk cannot vanish after a crash.
    await Promise.all([...dirs].map(async (dir) => {
      using handle = await Deno.open(join(this.#root, dir), { read: true });
      await handle.sync().catch(() => {}); // not every platform can sync a folder
    }));
    for (const id of todo) this.#unsynced.delete(id);
  }

  async delete(id: string): Promise<void> {
    await Deno.remove(this.#path(id)).catch((error) => {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    });
  }

  async *list(): AsyncIterable<string> {
    for await (const dir of Deno.readDir(this.#root)) {
      if (!dir.isDirectory) continue;
      for await (const file of Deno.readDir(join(this.#root, dir.name))) {
        if (file.isFile && /^[0-9a-f]{64}$/.test(file.name)) yield file.name;
      }
    }
  }
}
