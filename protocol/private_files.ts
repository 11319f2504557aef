// Private folders for the server's data and the client's state: the folder 0700, what it holds 0600 (0700 for
// folders), so other local users can read nothing, whatever modes existed before.
import { join } from "node:path";

/** What {@linkcode makePrivate} had to change. */
export interface PrivateReport {
  /** The folder's mode before, when it let other users in (e.g. 0o755); null when it was already private. */
  openMode: number | null;
  /** Files and folders whose mode was changed, the folder itself included. */
  fixed: number;
}

/** Options of {@linkcode makePrivate}. */
export interface MakePrivateOptions {
  /**
   * Subfolders whose contents are only walked when the folder itself was open to others (e.g. a large chunk
   * store: behind a private folder the modes inside cannot be reached, so a start need not visit them).
   * @default []
   */
  deepOnlyIfOpen?: string[];
}

/**
 * Makes `dir` mode 0700 and everything in it owner-only (files 0600, folders 0700; symlinks and sockets are
 * left alone). Does nothing on Windows, which has no such modes.
 *
 * @example
 * ```ts
 * const report = await makePrivate("/srv/filesync");
 * if (report.fixed > 0) console.warn(`made ${report.fixed} files private`);
 * ```
 */
export async function makePrivate(dir: string, options: MakePrivateOptions = {}): Promise<PrivateReport> {
  if (Deno.build.os === "windows") return { openMode: null, fixed: 0 };
  const info = await Deno.stat(dir);
  const mode = (info.mode ?? 0) & 0o777;
  const openMode = mode & 0o077 ? mode : null;
  let fixed = 0;
  if (mode !== 0o700) {
    await Deno.chmod(dir, 0o700);
    fixed++;
  }
  const skip = new Set(openMode === null ? options.deepOnlyIfOpen ?? [] : []);
  const walk = async (folder: string, top: boolean) => {
    for await (const entry of Deno.readDir(folder)) {
      const path = join(folder, entry.name);
      if (entry.isSymlink) continue;
      let stat: Deno.FileInfo;
      try {
        stat = await Deno.lstat(path);
      } catch {
        continue; // removed meanwhile
      }
      const current = (stat.mode ?? 0) & 0o777;
      if (stat.isDirectory) {
        if (current !== 0o700) {
          await Deno.chmod(path, 0o700);
          fixed++;
        }
        if (!(top && skip.has(entry.name))) await walk(path, false);
      } else if (stat.isFile && current & 0o077) {
        await Deno.chmod(path, current & 0o700 | 0o600);
        fixed++;
      }
    }
  };
  await walk(dir, true);
  return { openMode, fixed };
}
