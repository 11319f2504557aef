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
  /** Told when the watch ends with an error (e.g. out of inotify watches); the periodic scan carries on. */
  onError?: (error: unknown) => void;
}

/** A running watch. */
export interface FolderWatch {
  /** Stops watching. */
  stop(): void;
  /** True while a file has been written to and not yet closed by its writer (for at most openWriteMaxMs). */
  beingWritten(path: string): boolean;
}

/**
 * What the watcher knows of one file's writer. inotify reports a write and a metadata change (chmod, utime) both
 * as `modify`, and the writer's close as `access`; the size at that close tells them apart afterwards.
 */
export interface WriteMark {
  /** When the file was last reported changed (written to, or its metadata) after its last close, if it was. */
  modifiedAt?: number;
  /** Its size when its writer last closed it; absent when no close was seen since it was created. */
  closedSize?: number;
  /** When that close was seen. */
  closedAt?: number;
}

/**
 * The mark of a file after a watch event of `kind` at `now` (`undefined`: nothing to remember). `sizeNow` is
 * asked only for a close, so the watch loop stats nothing else.
 */
export function markWrite(
  mark: WriteMark | undefined,
  kind: Deno.FsEvent["kind"],
  now: number,
  sizeNow: () => number | undefined,
): WriteMark | undefined {
  switch (kind) {
    case "create":
      return { modifiedAt: now };
    case "modify":
      return { ...mark, modifiedAt: now };
    case "access": {
      const size = sizeNow();
      return size === undefined ? undefined : { closedSize: size, closedAt: now };
    }
    default:
      return undefined; // removed or renamed: nothing is being written at this name
  }
}

/**
 * Whether a file is held back as still being written: it changed within the last `openWriteMaxMs` and either
 * no writer closed it since, or its size is no longer the size it had at that close (it was opened and written
 * again). A change after the close that left the size alone (chmod, touch) is not a write. `sizeNow` is
 * `undefined` for a folder or nothing at the path: nothing is being written there.
 */
export function heldBack(
  mark: WriteMark | undefined,
  options: { now: number; openWriteMaxMs: number; sizeNow: () => number | undefined },
): boolean {
  if (mark?.modifiedAt === undefined || options.now - mark.modifiedAt > options.openWriteMaxMs) return false;
  const size = options.sizeNow();
  return size !== undefined && size !== mark.closedSize;
}

/** Whether a mark can be forgotten at `now`: neither its hold nor its close can matter any more. */
function stale(mark: WriteMark, now: number, openWriteMaxMs: number): boolean {
  const last = Math.max(mark.modifiedAt ?? -Infinity, mark.closedAt ?? -Infinity);
  return now - last > openWriteMaxMs;
}

/**
 * Watches `root` recursively. Events are hints only (the watcher drops events under load, see PLATFORM.md);
 * the periodic full scan is what makes sync correct.
 */
export function watchFolder(root: string, onChange: ChangeHandler, options: WatchOptions = {}): FolderWatch {
  const debounceMs = options.debounceMs ?? 15;
  const maxDelayMs = options.maxDelayMs ?? 150;
  const openWriteMaxMs = options.openWriteMaxMs ?? 1000;
  const watcher = Deno.watchFs(root, { recursive: true });
  const paths = new Set<string>();
  let full = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let firstAt = 0;
  // Files written to and not yet closed by their writer are held back (up to openWriteMaxMs) so a half-written
  // version is not synced; files closed lately are remembered with their size (see heldBack).
  const marks = new Map<string, WriteMark>();
  let prunedAt = 0;
  const held = (path: string, now: number) =>
    heldBack(marks.get(path), { now, openWriteMaxMs, sizeNow: () => fileSize(root, path) });
  const deliver = () => {
    timer = undefined;
    const now = Date.now();
    if (now - prunedAt > openWriteMaxMs) {
      prunedAt = now;
      for (const [path, mark] of marks) if (stale(mark, now, openWriteMaxMs)) marks.delete(path);
    }
    const ready = new Set<string>();
    for (const path of paths) if (!held(path, now)) ready.add(path);
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
        const now = Date.now();
        for (const abs of event.paths) {
          const rel = relative(root, abs).split(sep).join("/");
          if (rel === "" || rel.startsWith("..") || rel === STATE_DIR || rel.startsWith(STATE_DIR + "/")) {
            continue;
          }
          const mark = markWrite(marks.get(rel), event.kind, now, () => fileSize(root, rel));
          if (mark) marks.set(rel, mark);
          else marks.delete(rel);
          paths.add(rel);
        }
        if (paths.size > 10_000) {
          paths.clear();
          marks.clear();
          full = true;
        }
        schedule();
      }
    } catch (error) {
      // The watch ended (folder removed, watcher closed, or out of watches); the periodic scan carries on.
      options.onError?.(error);
    }
  })();
  return {
    stop() {
      clearTimeout(timer);
      try {
        watcher.close();
      } catch { /* closed */ }
    },
    beingWritten: (path: string) => held(path, Date.now()),
  };
}

/** The size of the file at `path` under `root`; `undefined` for a folder or nothing (nothing is written there). */
function fileSize(root: string, path: string): number | undefined {
  try {
    const info = Deno.lstatSync(join(root, path));
    return info.isDirectory ? undefined : info.size;
  } catch {
    return undefined;
  }
}
