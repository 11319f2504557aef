// Generated benchmark data written once per scenario, so filesync and Syncthing sync the very same files.
import { dirname, join } from "node:path";
import { hashFile, writeRandomFile } from "./bench_world.ts";

/** One generated file: its path relative to the dataset, size and SHA-256 (hex). */
export interface DataFile {
  path: string;
  size: number;
  hash: string;
}

/**
 * File sizes drawn log-uniformly between `min` and `max` bytes by a seeded generator (the same sizes every run):
 * as many small files as large ones per doubling, as real folders have. 2,000 files of 1 KiB–8 MiB total about
 * 1.8 GiB.
 */
export function logUniformSizes(
  count: number,
  options: { min: number; max: number; seed: number },
): number[] {
  let state = options.seed >>> 0;
  const next = () => {
    // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const [low, high] = [Math.log(options.min), Math.log(options.max)];
  return Array.from({ length: count }, () => Math.round(Math.exp(low + (high - low) * next())));
}

/** Random files under `baseDir/bench-data-NAME-*`, removed on dispose. */
export class Dataset implements AsyncDisposable {
  readonly root: string;
  readonly files: DataFile[];

  private constructor(root: string, files: DataFile[]) {
    this.root = root;
    this.files = files;
  }

  /** Writes a random file of each given size at each given path (written in 1 MiB blocks). */
  static async create(
    baseDir: string,
    name: string,
    specs: { path: string; size: number }[],
  ): Promise<Dataset> {
    const root = await Deno.makeTempDir({ dir: baseDir, prefix: `bench-data-${name}-` });
    try {
      const files: DataFile[] = [];
      for (const spec of specs) {
        const path = join(root, spec.path);
        await Deno.mkdir(dirname(path), { recursive: true });
        files.push({ ...spec, hash: await writeRandomFile(path, spec.size) });
      }
      return new Dataset(root, files);
    } catch (error) {
      await Deno.remove(root, { recursive: true }).catch(() => {});
      throw error;
    }
  }

  /** Total bytes of all files. */
  get bytes(): number {
    return this.files.reduce((sum, f) => sum + f.size, 0);
  }

  /** The top-level names (files and folders) of the dataset. */
  topLevel(): string[] {
    return [...new Set(this.files.map((f) => f.path.split("/")[0]))].sort();
  }

  /**
   * Puts every file at the same relative path under `dir`: hard links (no copy, same bytes) unless `copy` is
   * set, which a scenario that later changes the file in place needs.
   */
  async placeInto(dir: string, options: { copy?: boolean } = {}): Promise<void> {
    for (const file of this.files) {
      const to = join(dir, file.path);
      await Deno.mkdir(dirname(to), { recursive: true });
      const from = join(this.root, file.path);
      if (options.copy) await Deno.copyFile(from, to);
      else {
        try {
          await Deno.link(from, to);
        } catch {
          await Deno.copyFile(from, to);
        }
      }
    }
  }

  /** Throws a WRONG CONTENT error naming the first file under `dir` whose SHA-256 is not the generated one. */
  async verify(dir: string, who: string): Promise<void> {
    for (const file of this.files) {
      const got = await hashFile(join(dir, file.path));
      if (got !== file.hash) {
        throw new Error(
          `WRONG CONTENT: ${who}'s ${file.path} has SHA-256 ${got}, the generated file ${file.hash}`,
        );
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

/**
 * Tracks which expected files have arrived under `dir` at their full size (a poll stats only those still
 * missing). Both tools write a temp file and rename it into place, so a full-size file is a complete one.
 */
export class Arrivals {
  readonly #dir: string;
  readonly #pending: Map<string, number>;

  constructor(dir: string, files: { path: string; size: number }[]) {
    this.#dir = dir;
    this.#pending = new Map(files.map((f) => [f.path, f.size]));
  }

  /** True when every file is there at its size. */
  check(): boolean {
    for (const [path, size] of this.#pending) {
      let got = -1;
      try {
        got = Deno.statSync(join(this.#dir, path)).size;
      } catch { /* not there yet */ }
      if (got === size) this.#pending.delete(path);
    }
    return this.#pending.size === 0;
  }

  /** How many are still missing. */
  get missing(): number {
    return this.#pending.size;
  }
}
