// Local snapshot: walks the synced folder, re-hashing only files whose size, mtime or inode changed.
import { join } from "node:path";
import { chunkLengths, rechunkFile } from "../protocol/chunker.ts";
import { FileHasher, sha256Hex } from "../protocol/hash.ts";
import {
  isPlainChild,
  isValidPath,
  unportableNameReason,
  unportablePathReason,
  validatePath,
} from "../protocol/paths.ts";
import type { ChunkRow } from "../protocol/messages.ts";
import type { IgnoreMatcher } from "./ignore.ts";
import type { LocalEntry } from "./reconcile.ts";
import { linkOnPath } from "./safe_path.ts";
import type { RootStatus } from "./safety.ts";
import { STATE_DIR } from "./state.ts";

/** How a symbolic link in the folder is reported (once per link). */
export const LINK_REASON = "it is a symbolic link; nothing at or below it is synced, written or deleted " +
  "(here or on the server) until it is replaced by a real folder or file";

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
  /**
   * The chunk rows of the path's last synced version (from the base snapshot): hints that let a changed big file
   * be re-cut without scanning its unchanged parts (see {@linkcode rechunkFile}). @default none
   */
  knownRows?: (path: string) => readonly ChunkRow[] | undefined;
  /**
   * Whether a path is in sync already (in the base): a name other devices could not hold is skipped only when
   * it is not, so a file synced before the rule keeps syncing. @default never
   */
  synced?: (path: string) => boolean;
  /** Told once per path that cannot sync (invalid name, symbolic link, unreadable). */
  onSkip?: (path: string, reason: string) => void;
  /** When it returns true the scan ends early with {@linkcode ScanStopped}. */
  stopped?: () => boolean;
}

/** The scan was abandoned because the client is stopping. */
export class ScanStopped extends Error {
  override name = "ScanStopped";
}

/** The synced folder's root could not be listed during a scan: the scan tells nothing about its files. */
export class RootUnavailable extends Error {
  override name = "RootUnavailable";
}

/** What identifies the synced folder on disk: its root's and its state folder's device and inode. */
export interface RootIdentity {
  dev: number;
  ino: number | null;
  stateIno: number | null;
}

/** Reads the identity of the synced folder `root` (its `.filesync/` must exist). */
export function rootIdentity(root: string): RootIdentity {
  const info = Deno.statSync(root);
  return {
    dev: info.dev,
    ino: info.ino ?? null,
    stateIno: Deno.lstatSync(join(root, STATE_DIR)).ino ?? null,
  };
}

/**
 * Checks that `root` is still the readable folder of identity `expected`: a few system calls, no walk.
 *
 * @example
 * ```ts
 * const id = rootIdentity("/home/me/Sync");
 * checkRoot("/home/me/Sync", id); // { kind: "ok" }, or missing / unreadable / replaced with a reason
 * ```
 */
export function checkRoot(root: string, expected: RootIdentity): RootStatus {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(root);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { kind: "missing", reason: "no such folder" };
    return { kind: "unreadable", reason: (error as Error).message };
  }
  if (!info.isDirectory) return { kind: "missing", reason: "a file is there, not a folder" };
  if (info.dev !== expected.dev || (info.ino ?? null) !== expected.ino) {
    return { kind: "replaced", reason: "another folder is there now, not the one this client was syncing" };
  }
  try {
    // Opening the folder for reading needs the permission a listing needs, without reading its entries.
    Deno.openSync(root, { read: true }).close();
  } catch (error) {
    return { kind: "unreadable", reason: (error as Error).message };
  }
  let state: Deno.FileInfo;
  try {
    state = Deno.lstatSync(join(root, STATE_DIR));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return { kind: "replaced", reason: `its ${STATE_DIR}/ state folder vanished` };
    }
    return { kind: "unreadable", reason: (error as Error).message };
  }
  if (!state.isDirectory || (state.ino ?? null) !== expected.stateIno) {
    return { kind: "replaced", reason: `its ${STATE_DIR}/ state folder was replaced` };
  }
  return { kind: "ok" };
}

/** Result of hashing a file whose content changed while it was read. */
export class FileChangedError extends Error {
  override name = "FileChangedError";
}

/** The part of a file's lstat that identifies its version (kept per file found, so no more than that). */
type FileStat = { size: number; mtime: number; ino: number | null };

function fileStat(info: Deno.FileInfo): FileStat {
  return { size: info.size, mtime: info.mtime?.getTime() ?? 0, ino: info.ino ?? null };
}

/** Files a walk found, their hashes not filled in yet: entries and their paths side by side. */
type Found = { entries: ScanEntry[]; paths: string[] };

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
  /**
   * Paths (relative) that are symbolic links, as the last scans found them. What is at or below a link is
   * unknown here: never read as deleted, never written (see {@linkcode ReconcileInput.links}).
   */
  readonly links = new Set<string>();
  /**
   * Folders the last scans could not list: what is inside them is unknown, not deleted. The caller leaves
   * every path below them alone and clears this set.
   */
  readonly unknownDirs = new Set<string>();
  #skipped = new Set<string>();
  /** What the last full scan found (entries are never changed once made, so they can be shared). */
  #last = new Map<string, ScanEntry>();

  /** A scanner of the folder `root`. */
  constructor(root: string, options: ScannerOptions) {
    this.#root = root;
    this.#prefix = join(root, "/");
    this.#options = options;
  }

  /** `root/` normalized once: a walk joins it with each (already valid, relative) path by concatenation. */
  #prefix: string;

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
    const files: Found = { entries: [], paths: [] };
    const before = [...this.links];
    this.links.clear();
    this.#walk(null, out, files);
    // A link that is gone is reported again if it comes back.
    for (const link of before) if (!this.links.has(link)) this.#skipped.delete(link);
    await this.#hashAll(files, out);
    this.#last = out;
    return out;
  }

  /**
   * Scans the given paths (a folder with its contents). Returns an entry per path found, and `null` for each
   * given path that no longer exists (its former contents are the caller's to drop).
   */
  async scanPaths(paths: Iterable<string>): Promise<Map<string, ScanEntry | null>> {
    const out = new Map<string, ScanEntry | null>();
    const found = new Map<string, ScanEntry>();
    const files: Found = { entries: [], paths: [] };
    for (const path of paths) {
      if (!isValidPath(path) || this.#ignored(path) || this.#unportable(path)) continue;
      // A path at or below a link is unknown here: neither found nor gone (lstat alone would follow a link
      // in the middle of the path).
      const link = linkOnPath(this.#root, path);
      if (link !== null) {
        this.links.add(link);
        this.#skip(link, LINK_REASON);
        continue;
      }
      for (const known of [...this.links]) {
        if (known === path || known.startsWith(path + "/")) {
          this.links.delete(known);
          this.#skipped.delete(known);
        }
      }
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(join(this.#root, path));
      } catch (error) {
        // Only "not found" means gone; any other error leaves the path's state unknown.
        if (error instanceof Deno.errors.NotFound) out.set(path, null);
        else this.unsettled.add(path);
        continue;
      }
      if (info.isDirectory) {
        found.set(path, { kind: "dir", hash: "", size: 0, mtime: 0, ino: info.ino ?? null });
        this.#walk(path, found, files);
      } else if (info.isFile) {
        const entry: ScanEntry = { kind: "file", hash: "", ...fileStat(info) };
        files.entries.push(entry);
        files.paths.push(path);
      } else {
        out.set(path, null);
      }
    }
    await this.#hashAll(files, found);
    for (const [path, entry] of found) out.set(path, entry);
    return out;
  }

  /** True (and said once) for a path not in sync whose name some other device could not hold. */
  #unportable(path: string, name?: string): boolean {
    const reason = name === undefined ? unportablePathReason(path) : unportableNameReason(name);
    if (reason === null || this.#options.synced?.(path)) return false;
    this.#skip(
      path,
      `${reason}; other devices could not hold it (it stays here as it is; rename it to sync it)`,
    );
    return true;
  }

  #ignored(path: string, isDir = false): boolean {
    return path === STATE_DIR || path.startsWith(STATE_DIR + "/") ||
      this.#options.ignore.ignores(path, isDir);
  }

  /** {@linkcode Scanner.#ignored} for an entry of a walked (so not ignored) folder. */
  #ignoredEntry(path: string, name: string, isDir: boolean): boolean {
    return path === STATE_DIR || this.#options.ignore.ignoresEntry(path, name, isDir);
  }

  #walk(dir: string | null, out: Map<string, ScanEntry>, files: Found): void {
    const stack = [dir];
    while (stack.length > 0) {
      const current = stack.pop()!;
      const abs = current === null ? this.#root : this.#prefix + current;
      let items: Iterable<Deno.DirEntry>;
      try {
        items = Deno.readDirSync(abs);
      } catch (error) {
        // An unlisted folder is unknown, never empty: the root stops the whole scan, a folder its contents.
        if (current === null) {
          throw new RootUnavailable(`Cannot read "${this.#root}": ${(error as Error).message}`);
        }
        if (!(error instanceof Deno.errors.NotFound)) {
          this.unknownDirs.add(current);
          this.#skip(current, `cannot read folder: ${(error as Error).message}`);
        }
        continue;
      }
      for (const item of items) {
        const name = item.name;
        const path = current === null ? name : `${current}/${name}`;
        if (this.#ignoredEntry(path, name, item.isDirectory)) continue;
        // The folder's own path is valid (it was walked), so a plain name needs no check of the whole path.
        if (!isPlainChild(path, name, current === null)) {
          try {
            validatePath(path);
          } catch (error) {
            this.#skip(path, (error as Error).message);
            continue;
          }
        }
        if (this.#unportable(path, name)) continue;
        if (item.isSymlink) {
          this.links.add(path);
          this.#skip(path, LINK_REASON);
          continue;
        }
        let info: Deno.FileInfo;
        try {
          info = Deno.lstatSync(this.#prefix + path);
        } catch (error) {
          if (!(error instanceof Deno.errors.NotFound)) this.unsettled.add(path);
          continue; // vanished since readDir, or unknown
        }
        if (info.isDirectory) {
          out.set(path, { kind: "dir", hash: "", size: 0, mtime: 0, ino: info.ino ?? null });
          stack.push(path);
        } else if (info.isFile) {
          const size = info.size;
          const mtime = info.mtime?.getTime() ?? 0;
          const ino = info.ino ?? null;
          // The same version as the last full scan found: its entry (and hash) serves again.
          const last = this.#last.get(path);
          if (
            last !== undefined && last.kind === "file" && last.hash !== "" && last.size === size &&
            last.mtime === mtime && last.ino === ino
          ) {
            out.set(path, last);
            continue;
          }
          // The hash is filled in by #hashAll; the path is kept on the side until then.
          const entry: ScanEntry = { kind: "file", hash: "", size, mtime, ino };
          files.entries.push(entry);
          files.paths.push(path);
        }
      }
    }
  }

  async #hashAll(files: Found, out: Map<string, ScanEntry>): Promise<void> {
    for (let i = 0; i < files.entries.length; i++) {
      if (this.#options.stopped?.()) throw new ScanStopped("scan stopped");
      const entry = files.entries[i];
      const path = files.paths[i];
      // Known by path, by this scanner's own cache, or (a file moved or renamed) by its inode.
      const known = this.#options.known(path) ?? this.#hashed.get(path) ??
        (entry.ino !== null ? this.#options.knownByIno?.(entry.ino) : undefined);
      if (known && known.size === entry.size && known.mtime === entry.mtime && known.ino === entry.ino) {
        entry.hash = known.hash;
        out.set(path, entry);
        continue;
      }
      try {
        const hashed = await this.hashFile(path, { size: entry.size, mtime: entry.mtime, ino: entry.ino });
        entry.hash = hashed.hash;
        out.set(path, entry);
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
      // One reused buffer, no copy of each chunk; the rows of an earlier version (if any) let the unchanged
      // parts be hashed without the chunker's scan.
      const hint = this.#hashed.get(path)?.rows ?? this.#options.knownRows?.(path) ?? [];
      for (const row of await rechunkFile(join(this.#root, path), hint)) {
        hasher.addChunk(row.id);
        rows.push(row);
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
