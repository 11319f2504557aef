// Content-addressed chunk storage: the small interface the server needs, and its disk implementation.
import { join } from "node:path";

/**
 * Where chunk bytes live, addressed by their SHA-256 (lowercase hex). Implementations must make `put` atomic
 * (a chunk is either absent or complete) and durable before it resolves.
 */
export interface ChunkStore {
  /** True if the chunk is stored. */
  has(id: string): Promise<boolean>;
  /** The chunk's bytes, or null if it is not stored. */
  get(id: string): Promise<Uint8Array | null>;
  /** Stores a chunk; the caller has verified that `id` is the hash of `data`. Storing an existing chunk is a no-op. */
  put(id: string, data: Uint8Array): Promise<void>;
  /** Removes a chunk; removing a missing chunk is a no-op. */
  delete(id: string): Promise<void>;
  /** Every stored chunk id. */
  list(): AsyncIterable<string>;
}

/** Chunks as files `ROOT/ab/abcdef…`, written to a temp file, synced, then renamed into place. */
export class DiskChunkStore implements ChunkStore {
  #root: string;
  #madeDirs = new Set<string>();
  #tmpCounter = 0;

  /** Uses (and creates on demand) the folder `root`. */
  constructor(root: string) {
    this.#root = root;
  }

  #path(id: string): string {
    return join(this.#root, id.slice(0, 2), id);
  }

  /** Creates the root folder and removes temp files left by a crash. */
  async open(): Promise<void> {
    await Deno.mkdir(this.#root, { recursive: true });
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

  get(id: string): Promise<Uint8Array | null> {
    try {
      return Promise.resolve(Deno.readFileSync(this.#path(id)));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return Promise.resolve(null);
      return Promise.reject(error);
    }
  }

  async put(id: string, data: Uint8Array): Promise<void> {
    if (await this.has(id)) return;
    const dir = join(this.#root, id.slice(0, 2));
    if (!this.#madeDirs.has(dir)) {
      Deno.mkdirSync(dir, { recursive: true });
      this.#madeDirs.add(dir);
    }
    const tmp = `${this.#path(id)}.${Deno.pid}.${this.#tmpCounter++}.tmp`;
    const file = Deno.openSync(tmp, { write: true, create: true, truncate: true });
    try {
      let written = 0;
      while (written < data.length) written += file.writeSync(data.subarray(written));
      await file.syncData();
    } catch (error) {
      file.close();
      Deno.removeSync(tmp);
      throw error;
    }
    file.close();
    Deno.renameSync(tmp, this.#path(id));
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
