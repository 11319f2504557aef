// Filesystem change hints from Deno.watchFs: collects paths, debounces bursts, asks for a full scan on overflow.
import { join, relative, sep } from "node:path";
import { STATE_DIR } from "./state.ts";

/** Receives the relative paths that changed, or `full` when only a full scan can tell. */
export type ChangeHandler = (paths: Set<string>, full: boolean) => void;

/** Options of {@linkcode watchFolder}. */
export interface WatchOptions {
  /** Quiet time before a burst is delivered. @default 15 */
  debounceMs?: number;
  /** Longest delay of a delivery during a continuous burst. @default 150 */
  maxDelayMs?: number;
  /** Longest time a file still open for writing is held back. @default 1000 */
  openWriteMaxMs?: number;
}

/**
 * Watches `root` recursively. Events are hints only (the watcher drops events under load, see PLATFORM.md);
 * the periodic full scan is what makes sync correct.
 */
/** A running watch. */
export interface FolderWatch {
  /** Stops watching. */
  stop(): void;
  /** True while a file has been written to and not yet closed by its writer (for at most openWriteMaxMs). */
  beingWritten(path: string): boolean;
}

export function watchFolder(root: string, onChange: ChangeHandler, options: WatchOptions = {}): FolderWatch {
  const debounceMs = options.debounceMs ?? 15;
  const maxDelayMs = options.maxDelayMs ?? 150;
  const openWriteMaxMs = options.openWriteMaxMs ?? 1000;
  const watcher = Deno.watchFs(root, { recursive: true });
  const paths = new Set<string>();
  let full = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let firstAt = 0;
  // Files written to and not yet closed by their writer (inotify's close-write shows as "access"): a file
  // still being written is held back (up to openWriteMaxMs) so a half-written version is not synced.
  const writing = new Map<string, number>();
  const deliver = () => {
    timer = undefined;
    const now = Date.now();
    const ready = new Set<string>();
    for (const path of paths) {
      const since = writing.get(path);
      if (since === undefined || now - since > openWriteMaxMs || isFolder(root, path)) {
        writing.delete(path);
        ready.add(path);
      }
    }
    for (const path of ready) paths.delete(path);
    const wasFull = full;
    full = false;
    if (ready.size > 0 || wasFull) onChange(ready, wasFull);
    if (paths.size > 0) timer = setTimeout(deliver, Math.max(debounceMs, 50));
  };
  const schedule = () => {
    const now = Date.now();
    if (timer === undefined) firstAt = now;
    clearTimeout(timer);
    timer = setTimeout(deliver, now - firstAt >= maxDelayMs ? 0 : debounceMs);
  };
  (async () => {
    try {
      for await (const event of watcher) {
        if (event.flag === "rescan" || event.kind === "other") full = true;
        for (const abs of event.paths) {
          const rel = relative(root, abs).split(sep).join("/");
          if (rel === "" || rel.startsWith("..") || rel === STATE_DIR || rel.startsWith(STATE_DIR + "/")) {
            continue;
          }
          if (event.kind === "create" || event.kind === "modify") writing.set(rel, Date.now());
          else writing.delete(rel);
          paths.add(rel);
        }
        if (paths.size > 10_000) {
          paths.clear();
          writing.clear();
          full = true;
        }
        schedule();
      }
    } catch {
      // The watch ended (folder removed or watcher closed); the periodic scan carries on.
    }
  })();
  return {
    stop() {
      clearTimeout(timer);
      try {
        watcher.close();
      } catch { /* closed */ }
    },
    beingWritten(path: string): boolean {
      const since = writing.get(path);
      return since !== undefined && Date.now() - since <= openWriteMaxMs;
    },
  };
}

function isFolder(root: string, path: string): boolean {
  try {
    return Deno.lstatSync(join(root, path)).isDirectory;
  } catch {
    return true; // gone: nothing is being written there
  }
}
