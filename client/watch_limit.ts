// Linux's inotify watch limit: notices when fs.inotify.max_user_watches is too small for the synced folder (or
// watching failed with ENOSPC), and says once how to raise it; syncing goes on by periodic scans.
import { join } from "node:path";
import { STATE_DIR } from "./state.ts";

/** Where the limit is read, under the proc root. */
export const WATCH_LIMIT_FILE = "sys/fs/inotify/max_user_watches";

/** The limit of the current user namespace (Linux 5.11+; smaller than the other inside some containers). */
export const USER_NS_LIMIT_FILE = "sys/user/max_inotify_watches";

/** The limit suggested to raise to (what most distributions and IDEs suggest), unless more is needed. */
export const SUGGESTED_WATCHES = 524_288;

/** What is known about the watches a folder needs. */
export interface WatchFacts {
  /** fs.inotify.max_user_watches; null when unknown (not Linux, or unreadable). */
  limit: number | null;
  /** The name of the limit, when it is not fs.inotify.max_user_watches (e.g. a user namespace's). */
  limitName?: string;
  /** Watches this user's other processes hold now; null when unknown. */
  used: number | null;
  /** Folders to watch, the root included (one watch each); at most `limit + 1` are counted. */
  folders: number;
  /** The message of a failed Deno.watchFs, if it failed. */
  watchError?: string;
}

/**
 * True for the error of a watch that ran out of inotify watches: ENOSPC ("No space left on device") from
 * inotify_add_watch, which Deno.watchFs reports as "OS file watch limit reached".
 */
export function isWatchLimitError(message: string): boolean {
  return /watch limit reached|No space left on device|ENOSPC|os error 28/i.test(message);
}

/** The limit to suggest for `needed` watches: {@linkcode SUGGESTED_WATCHES}, or a power of two of twice as many. */
export function suggestedLimit(needed: number): number {
  let limit = SUGGESTED_WATCHES;
  while (limit < needed * 2) limit *= 2;
  return limit;
}

/** The command that raises the limit to `limit` now and at every boot. */
export function raiseCommand(limit: number): string {
  return `echo fs.inotify.max_user_watches=${limit} | sudo tee /etc/sysctl.d/90-filesync.conf && sudo sysctl --system`;
}

/**
 * What to tell the user about the watch limit, or null when all is well: the watch failed for lack of watches,
 * or the folder needs more watches than the limit leaves.
 *
 * @example
 * ```ts
 * watchLimitAdvice({ limit: 8192, used: 100, folders: 9000 }, { dir: "/home/me/Sync", rescanSeconds: 10 });
 * // "inotify watch limit too small: /home/me/Sync has 9000 folders to watch, … sudo sysctl --system"
 * ```
 */
export function watchLimitAdvice(
  facts: WatchFacts,
  options: { dir: string; rescanSeconds: number },
): string | null {
  const failed = facts.watchError !== undefined && isWatchLimitError(facts.watchError);
  if (facts.watchError !== undefined && !failed) return null; // another failure: not about the limit
  const used = facts.used ?? 0;
  const short = facts.limit !== null && facts.folders + used > facts.limit;
  if (!failed && !short) return null;
  const counted = facts.limit !== null && facts.folders > facts.limit
    ? `more than ${facts.limit}`
    : `${facts.folders}`;
  const parts = [`${options.dir} has ${counted} folders to watch`];
  if (facts.used !== null) parts.push(`your other programs hold ${facts.used} watches`);
  if (facts.limit !== null) {
    parts.push(`${facts.limitName ?? "fs.inotify.max_user_watches"} is ${facts.limit}`);
  }
  const what = failed ? "cannot watch the folder: out of inotify watches" : "inotify watch limit too small";
  return `${what} (${parts.join(", ")}); changes are found by the scan every ${options.rescanSeconds} s ` +
    `instead of at once. Raise the limit with: ${raiseCommand(suggestedLimit(facts.folders + used))}`;
}

/** Options of {@linkcode readWatchFacts}. */
export interface ReadWatchFactsOptions {
  /** The synced folder. */
  dir: string;
  /** Where /proc is (a test gives a folder holding a fake limit file). @default "/proc" (or $FILESYNC_TEST_PROC_ROOT) */
  procRoot?: string;
  /** Whose watches count (processes of other users are skipped). @default Deno.uid() */
  uid?: number | null;
  /** This process, whose own watches are not counted again. @default Deno.pid */
  pid?: number;
}

/**
 * Reads the limit, the watches this user's other processes hold (from `/proc/PID/fdinfo` of their inotify
 * descriptors: one `inotify wd:` line per watch) and the folders under `dir` (not following links, without
 * `.filesync/`, stopping past the limit). Never throws: what cannot be read is null.
 */
export async function readWatchFacts(
  options: ReadWatchFactsOptions,
): Promise<Omit<WatchFacts, "watchError">> {
  // Test-only: FILESYNC_TEST_PROC_ROOT gives a fake /proc (e.g. a small limit), as a test cannot lower the real one.
  const procRoot = options.procRoot ?? Deno.env.get("FILESYNC_TEST_PROC_ROOT") ?? "/proc";
  const [system, namespace] = [
    await readLimit(procRoot, WATCH_LIMIT_FILE),
    await readLimit(procRoot, USER_NS_LIMIT_FILE),
  ];
  const inNamespace = namespace !== null && (system === null || namespace < system);
  const limit = inNamespace ? namespace : system;
  const used = limit === null
    ? null
    : await usedWatches(procRoot, options.uid ?? Deno.uid(), options.pid ?? Deno.pid);
  const folders = await countFolders(options.dir, limit === null ? Infinity : limit + 1);
  return {
    limit,
    used,
    folders,
    ...(inNamespace ? { limitName: "this user namespace's user.max_inotify_watches" } : {}),
  };
}

async function readLimit(procRoot: string, file: string): Promise<number | null> {
  try {
    const n = Number((await Deno.readTextFile(join(procRoot, file))).trim());
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

/** Watches held by `uid`'s processes other than `pid`; null when /proc cannot be listed. */
async function usedWatches(procRoot: string, uid: number | null, pid: number): Promise<number | null> {
  let total = 0;
  try {
    for await (const proc of Deno.readDir(procRoot)) {
      if (!/^\d+$/.test(proc.name) || Number(proc.name) === pid) continue;
      const dir = join(procRoot, proc.name);
      try {
        if (uid !== null && (await Deno.stat(dir)).uid !== uid) continue;
        for await (const fd of Deno.readDir(join(dir, "fd"))) {
          if ((await Deno.readLink(join(dir, "fd", fd.name)).catch(() => "")) !== "anon_inode:inotify") {
            continue;
          }
          const info = await Deno.readTextFile(join(dir, "fdinfo", fd.name)).catch(() => "");
          total += info.split("\n").filter((line) => line.startsWith("inotify wd:")).length;
        }
      } catch {
        // gone meanwhile, or not ours to read
      }
    }
  } catch {
    return null;
  }
  return total;
}

/** Folders under `dir` and `dir` itself, counted up to `cap`. */
async function countFolders(dir: string, cap: number): Promise<number> {
  let count = 0;
  const pending = [dir];
  while (pending.length > 0 && count < cap) {
    const folder = pending.pop()!;
    count++;
    try {
      for await (const entry of Deno.readDir(folder)) {
        if (entry.isDirectory && !(folder === dir && entry.name === STATE_DIR)) {
          pending.push(join(folder, entry.name));
        }
      }
    } catch {
      // unreadable or gone: the scan reports it
    }
  }
  return count;
}

/**
 * Says at most once per client what {@linkcode watchLimitAdvice} finds: after a watch failed, and at start (on
 * Linux) from {@linkcode readWatchFacts}.
 */
export class WatchLimitAdvisor {
  #said = false;
  #options: { dir: string; rescanSeconds: number; say: (line: string) => void; procRoot?: string };

  constructor(
    options: { dir: string; rescanSeconds: number; say: (line: string) => void; procRoot?: string },
  ) {
    this.#options = options;
  }

  /** A watch failed with `error`: true when that was the limit (then the advice was given, once). */
  async watchFailed(error: unknown): Promise<boolean> {
    const message = error instanceof Error ? error.message : String(error);
    if (!isWatchLimitError(message)) return false;
    const facts = await readWatchFacts({ dir: this.#options.dir, procRoot: this.#options.procRoot });
    this.#say(watchLimitAdvice({ ...facts, watchError: message }, this.#options));
    return true;
  }

  /** Checks the limit against the folder (Linux only); gives the advice once if it is too small. */
  async check(): Promise<void> {
    if (this.#said || (Deno.build.os !== "linux" && this.#options.procRoot === undefined)) return;
    const facts = await readWatchFacts({ dir: this.#options.dir, procRoot: this.#options.procRoot });
    this.#say(watchLimitAdvice(facts, this.#options));
  }

  #say(advice: string | null): void {
    if (advice === null || this.#said) return;
    this.#said = true;
    this.#options.say(advice);
  }
}
