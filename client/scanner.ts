// Local snapshot: walks the synced folder, re-hashing only files whose size, mtime or inode changed.
import { join } from "node:path";
import { chunkFile, chunkLengths } from "../protocol/chunker.ts";
import { FileHasher, sha256Hex } from "../protocol/hash.ts";
import { isValidPath, validatePath } from "../protocol/paths.ts";
import type { ChunkRow } from "../protocol/messages.ts";
import type { IgnoreMatcher } from "./ignore.ts";
import type { LocalEntry } from "./reconcile.ts";
import { STATE_DIR } from "./state.ts";

/** Files up to this size are read whole for hashing. */
const SMALL_FILE_BYTES = 4 * 1024 * 1024;

/** A scanned entry: what reconcile needs plus the stat that identifies this version on disk. */
export interface ScanEntry extends LocalEntry {
  ino: number | null;
}

/** A known hash for a file version identified by its stat. */
export interface KnownHash {
  size: number;
  mtime: number;
  ino: number | null;
  hash: string;
}

/** The chunk rows of a file version the scanner hashed, kept so an upload need not read the file twice. */
export interface HashedFile extends KnownHash {
  rows: ChunkRow[];
}

/** Options of {@linkcode Scanner}. */
export interface ScannerOptions {
  /** Which paths never sync. */
  ignore: IgnoreMatcher;
  /** A hash already known for a path (from the base snapshot), reused when the stat matches. */
  known: (path: string) => KnownHash | undefined;
  /** A hash known for a file with this inode at another path (it was moved), reused when the stat matches. */
  knownByIno?: (ino: number) => KnownHash | undefined;
  /** Told once per path that cannot sync (invalid name, symbolic link, unreadable). */
  onSkip?: (path: string, reason: string) => void;
  /** When it returns true the scan ends early with {@linkcode ScanStopped}. */
  stopped?: () => boolean;
}

/** The scan was abandoned because the client is stopping. */
export class ScanStopped extends Error {
  override name = "ScanStopped";
}

/** Result of hashing a file whose content changed while it was read. */
export class FileChangedError extends Error {
  override name = "FileChangedError";
}

/** Walks and hashes; remembers hashes of files it read so unchanged files are not read twice. */
export class Scanner {
  #root: string;
  #options: ScannerOptions;
  #hashed = new Map<string, HashedFile>();
  /**
   * Files found by the last scans whose content could not be read (changing while read, or unreadable). They are
   * not in the scan result, and must not be taken as deleted: the caller leaves them alone and clears this set.
   */
  readonly unsettled = new Set<string>();
  #skipped = new Set<string>();

  /** A scanner of the folder `root`. */
  constructor(root: string, options: ScannerOptions) {
    this.#root = root;
    this.#options = options;
  }

  /** Replaces the ignore rules (after `.filesyncignore` changed). */
  set ignore(matcher: IgnoreMatcher) {
    this.#options = { ...this.#options, ignore: matcher };
  }

  /** The chunk rows of a file if the scanner hashed this exact version. */
  hashedRows(
    path: string,
    stat: { size: number; mtime: number; ino: number | null },
  ): ChunkRow[] | undefined {
    const h = this.#hashed.get(path);
    if (h && h.size === stat.size && h.mtime === stat.mtime && h.ino === stat.ino) return h.rows;
    return undefined;
  }

  /** Forgets cached chunk rows of a path (after upload). */
  forget(path: string): void {
    this.#hashed.delete(path);
  }

  #skip(path: string, reason: string): void {
    if (this.#skipped.has(path)) return;
    this.#skipped.add(path);
    this.#options.onSkip?.(path, reason);
  }

  /** Walks the whole folder. */
  async scanAll(): Promise<Map<string, ScanEntry>> {
    const out = new Map<string, ScanEntry>();
    const files: [string, Deno.FileInfo][] = [];
    this.#walk(null, out, files);
    await this.#hashAll(files, out);
    return out;
  }

  /**
   * Scans the given paths (a folder with its contents). Returns an entry per path found, and `null` for each
   * given path that no longer exists (its former contents are the caller's to drop).
   */
  async scanPaths(paths: Iterable<string>): Promise<Map<string, ScanEntry | null>> {
    const out = new Map<string, ScanEntry | null>();
    const found = new Map<string, ScanEntry>();
    const files: [string, Deno.FileInfo][] = [];
    for (const path of paths) {
      if (!isValidPath(path) || this.#ignored(path)) continue;
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(join(this.#root, path));
      } catch {
        out.set(path, null);
        continue;
      }
      if (info.isDirectory) {
        found.set(path, { kind: "dir", hash: "", size: 0, mtime: 0, ino: info.ino ?? null });
        this.#walk(path, found, files);
      } else if (info.isFile) {
        files.push([path, info]);
      } else {
        out.set(path, null);
      }
    }
    await this.#hashAll(files, found);
    for (const [path, entry] of found) out.set(path, entry);
    return out;
  }

  #ignored(path: string, isDir = false): boolean {
    return path === STATE_DIR || path.startsWith(STATE_DIR + "/") ||
      this.#options.ignore.ignores(path, isDir);
  }

  #walk(dir: string | null, out: Map<string, ScanEntry>, files: [string, Deno.FileInfo][]): void {
    const stack = [dir];
    while (stack.length > 0) {
      const current = stack.pop()!;
      const abs = current === null ? this.#root : join(this.#root, current);
      let items: Deno.DirEntry[];
      try {
        items = [...Deno.readDirSync(abs)];
      } catch (error) {
        if (current !== null) this.#skip(current, `cannot read folder: ${(error as Error).message}`);
        continue;
      }
      for (const item of items) {
        const path = current === null ? item.name : `${current}/${item.name}`;
        if (this.#ignored(path, item.isDirectory)) continue;
        try {
          validatePath(path);
        } catch (error) {
          this.#skip(path, (error as Error).message);
          continue;
        }
        if (item.isSymlink) {
          this.#skip(path, "symbolic links are not synced");
          continue;
        }
        let info: Deno.FileInfo;
        try {
          info = Deno.lstatSync(join(this.#root, path));
        } catch {
          continue; // vanished since readDir
        }
        if (info.isDirectory) {
          out.set(path, { kind: "dir", hash: "", size: 0, mtime: 0, ino: info.ino ?? null });
          stack.push(path);
        } else if (info.isFile) {
          files.push([path, info]);
        }
      }
    }
  }

  async #hashAll(files: [string, Deno.FileInfo][], out: Map<string, ScanEntry>): Promise<void> {
    for (const [path, info] of files) {
      if (this.#options.stopped?.()) throw new ScanStopped("scan stopped");
      const stat = { size: info.size, mtime: info.mtime?.getTime() ?? 0, ino: info.ino ?? null };
      // Known by path, by this scanner's own cache, or (a file moved or renamed) by its inode.
      const known = this.#options.known(path) ?? this.#hashed.get(path) ??
        (stat.ino !== null ? this.#options.knownByIno?.(stat.ino) : undefined);
      if (known && known.size === stat.size && known.mtime === stat.mtime && known.ino === stat.ino) {
        out.set(path, { kind: "file", ...stat, hash: known.hash });
        continue;
      }
      try {
        const hashed = await this.hashFile(path, stat);
        out.set(path, { kind: "file", ...stat, hash: hashed.hash });
      } catch (error) {
        if (error instanceof Deno.errors.NotFound) continue; // deleted meanwhile: absent is the truth
        // Changing under our eyes, or unreadable: its state is unknown, which is not the same as deleted.
        this.unsettled.add(path);
        if (!(error instanceof FileChangedError)) {
          this.#skip(path, `cannot read: ${(error as Error).message}`);
        }
      }
    }
  }

  /** Reads and hashes one file; throws {@linkcode FileChangedError} if it changed while being read. */
  async hashFile(
    path: string,
    stat: { size: number; mtime: number; ino: number | null },
  ): Promise<HashedFile> {
    const hasher = new FileHasher();
    const rows: ChunkRow[] = [];
    if (stat.size <= SMALL_FILE_BYTES) {
      // Small files: one read and in-memory cutting, no stream machinery per file.
      const data = Deno.readFileSync(join(this.#root, path));
      let at = 0;
      for (const length of chunkLengths(data)) {
        const id = sha256Hex(data.subarray(at, at + length));
        hasher.addChunk(id);
        rows.push({ id, size: length });
        at += length;
      }
    } else {
      for await (const chunk of chunkFile(join(this.#root, path))) {
        hasher.addChunk(chunk.id);
        rows.push({ id: chunk.id, size: chunk.data.length });
      }
    }
    const after = Deno.lstatSync(join(this.#root, path));
    if (after.size !== stat.size || (after.mtime?.getTime() ?? 0) !== stat.mtime) {
      throw new FileChangedError(`"${path}" changed while it was read`);
    }
    const hashed = { ...stat, hash: hasher.digest(), rows };
    this.#hashed.set(path, hashed);
    return hashed;
  }
}
