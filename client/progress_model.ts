// Adds up progress events (plan, transfer, uploaded, downloaded, synced) into totals, rate and time left, and words them.
import { formatSize } from "../protocol/sizes.ts";
import type { TimedEvent } from "./events.ts";

/** The window the transfer rate is measured over. */
export const RATE_WINDOW_MS = 5000;

/** Work that is not the initial sync is shown once it has run this long. */
export const SHOW_AFTER_MS = 2000;
/** In plain lines, an initial sync this big shows at once (a smaller one only once it ran SHOW_AFTER_MS). */
export const BIG_INITIAL_BYTES = 16 * 1024 * 1024;

/** A run with no progress for this long is over (its last files failed, say): nothing more is shown for it. */
export const IDLE_MS = 15_000;

/** Samples closer together than this share one (a burst of small files keeps the sample list short). */
const SAMPLE_MS = 100;

/** Where a run of transfers stands. */
export interface ProgressSnapshot {
  /** Files finished, of the files planned. */
  files: { done: number; total: number };
  /** Bytes moved (of files finished and under way), of the bytes planned. */
  bytes: { done: number; total: number };
  /** Bytes per second over the last {@linkcode RATE_WINDOW_MS}; null until there is enough to tell. */
  rate: number | null;
  /** Seconds left at that rate; null when not known (or no bytes are left). */
  secondsLeft: number | null;
  /** When the run began (ms since 1970). */
  startedAt: number;
  /** The first run of transfers since the client started, before it was ever in sync. */
  initial: boolean;
}

/** Options of {@linkcode ProgressModel}. */
export interface ProgressModelOptions {
  /** The window the rate is measured over. @default RATE_WINDOW_MS */
  rateWindowMs?: number;
  /** Later work shows once it ran this long. @default SHOW_AFTER_MS */
  showAfterMs?: number;
  /** A run without progress for this long is over. @default IDLE_MS */
  idleMs?: number;
  /** The initial sync shows at once when it has at least this many bytes to transfer. @default 0 (always) */
  initialMinBytes?: number;
}

interface Run {
  startedAt: number;
  initial: boolean;
  lastActivity: number;
  totalFiles: number;
  totalBytes: number;
  doneFiles: number;
  /** Bytes of the files finished. */
  doneBytes: number;
  /** Bytes so far of files under way, by direction and path. */
  inFlight: Map<string, number>;
  /** Files finished in the current plan, by direction and path (counted once). */
  finished: Set<string>;
  /** (time, bytes done) now and then, the oldest first. */
  samples: { t: number; bytes: number }[];
}

/**
 * A run of transfers as the events tell it: a `plan` starts one (or, while one runs, replaces what was left of
 * the previous plan, which has finished by then), `transfer` events move its bytes, `uploaded` / `downloaded`
 * finish files; it ends when every file is done, at `synced` or `offline`, or after {@linkcode IDLE_MS}
 * without progress. Pure: time comes from the events and from the callers' `now`.
 *
 * @example
 * ```ts
 * const model = new ProgressModel();
 * events.subscribe((event) => model.observe(event));
 * model.snapshot(Date.now()); // null while nothing runs
 * ```
 */
export class ProgressModel {
  #run: Run | null = null;
  /** The run that ended last with every file done, as it stood then (until taken). */
  #finished: ProgressSnapshot | null = null;
  #initialPending = true;
  #rateWindowMs: number;
  #showAfterMs: number;
  #idleMs: number;
  #initialMinBytes: number;

  /** A model with no run under way. */
  constructor(options: ProgressModelOptions = {}) {
    this.#rateWindowMs = options.rateWindowMs ?? RATE_WINDOW_MS;
    this.#showAfterMs = options.showAfterMs ?? SHOW_AFTER_MS;
    this.#idleMs = options.idleMs ?? IDLE_MS;
    this.#initialMinBytes = options.initialMinBytes ?? 0;
  }

  /** Takes one event (others than the progress ones are ignored). */
  observe(event: TimedEvent): void {
    const time = event.time;
    switch (event.type) {
      case "plan": {
        const run = this.#run ?? this.#begin(time);
        // The previous plan has run to its end: what it left unfinished failed and is planned again if needed.
        run.inFlight.clear();
        run.finished.clear();
        run.totalFiles = run.doneFiles + event.uploads.files + event.downloads.files;
        run.totalBytes = run.doneBytes + event.uploads.bytes + event.downloads.bytes;
        run.lastActivity = time;
        if (run.totalFiles === run.doneFiles) this.#end();
        return;
      }
      case "transfer": {
        const run = this.#run;
        const key = `${event.direction}:${event.path}`;
        if (!run || run.finished.has(key)) return;
        if (event.done >= event.total) this.#finish(run, key, event.total, time);
        else {
          run.inFlight.set(key, event.done);
          this.#touch(run, time);
        }
        return;
      }
      case "uploaded":
      case "downloaded": {
        const run = this.#run;
        const key = `${event.type === "uploaded" ? "up" : "down"}:${event.path}`;
        if (run && !run.finished.has(key)) this.#finish(run, key, event.size, time);
        return;
      }
      case "synced":
        this.#initialPending = false;
        this.#run = null;
        return;
      case "offline":
        this.#run = null;
        return;
    }
  }

  /** True while a run is under way at `now` (ends it if it has been idle too long). */
  active(now: number): boolean {
    if (this.#run && now - this.#run.lastActivity > this.#idleMs) this.#end();
    return this.#run !== null;
  }

  /**
   * True if the run under way should be shown: the initial sync at once (if it has `initialMinBytes`), other work
   * once it ran a while.
   */
  visible(now: number): boolean {
    if (!this.active(now)) return false;
    const run = this.#run!;
    return (run.initial && run.totalBytes >= this.#initialMinBytes) ||
      now - run.startedAt >= this.#showAfterMs;
  }

  /** Where the run under way stands at `now`; null when none runs. */
  snapshot(now: number): ProgressSnapshot | null {
    if (!this.active(now)) return null;
    return this.#snapshotOf(this.#run!, now);
  }

  /** The run that ended last with every file done, as it stood at its end, once; null if none did since. */
  takeFinished(): ProgressSnapshot | null {
    const finished = this.#finished;
    this.#finished = null;
    return finished;
  }

  #snapshotOf(run: Run, now: number): ProgressSnapshot {
    const done = bytesDone(run);
    const rate = this.#rate(run, done, now);
    const left = Math.max(0, run.totalBytes - done);
    return {
      files: { done: run.doneFiles, total: run.totalFiles },
      bytes: { done, total: run.totalBytes },
      rate,
      secondsLeft: rate !== null && rate > 0 && left > 0 ? left / rate : null,
      startedAt: run.startedAt,
      initial: run.initial,
    };
  }

  #begin(time: number): Run {
    this.#finished = null;
    this.#run = {
      startedAt: time,
      initial: this.#initialPending,
      lastActivity: time,
      totalFiles: 0,
      totalBytes: 0,
      doneFiles: 0,
      doneBytes: 0,
      inFlight: new Map(),
      finished: new Set(),
      samples: [{ t: time, bytes: 0 }],
    };
    return this.#run;
  }

  #end(): void {
    if (this.#run?.initial) this.#initialPending = false;
    this.#run = null;
  }

  #finish(run: Run, key: string, size: number, time: number): void {
    run.inFlight.delete(key);
    run.finished.add(key);
    run.doneFiles++;
    run.doneBytes += size;
    this.#touch(run, time);
    if (run.doneFiles >= run.totalFiles) {
      this.#finished = this.#snapshotOf(run, time);
      this.#end();
    }
  }

  #touch(run: Run, time: number): void {
    run.lastActivity = time;
    const bytes = bytesDone(run);
    const last = run.samples[run.samples.length - 1];
    if (run.samples.length > 1 && Math.floor(last.t / SAMPLE_MS) === Math.floor(time / SAMPLE_MS)) {
      last.t = time;
      last.bytes = bytes;
    } else run.samples.push({ t: time, bytes });
  }

  /** Bytes per second since the last sample at or before the window's start (or the oldest one). */
  #rate(run: Run, done: number, now: number): number | null {
    const from = now - this.#rateWindowMs;
    const samples = run.samples;
    let base = 0;
    while (base + 1 < samples.length && samples[base + 1].t <= from) base++;
    if (base > 0) samples.splice(0, base);
    const elapsed = now - samples[0].t;
    if (elapsed < SAMPLE_MS * 5) return null;
    return ((done - samples[0].bytes) * 1000) / elapsed;
  }
}

function bytesDone(run: Run): number {
  let bytes = run.doneBytes;
  for (const part of run.inFlight.values()) bytes += part;
  return bytes;
}

/**
 * A duration for a person: "17 s", "3 min 5 s", "2 h 10 min".
 *
 * @example
 * ```ts
 * formatDuration(185); // "3 min 5 s"
 * ```
 */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** The parts of a progress report: files, bytes, and rate and time left where known. */
function parts(snapshot: ProgressSnapshot): string[] {
  const { files, bytes, rate, secondsLeft } = snapshot;
  const out = [
    `${files.done}/${files.total} ${files.total === 1 ? "file" : "files"}`,
    `${formatSize(bytes.done)} of ${formatSize(bytes.total)}`,
  ];
  if (rate !== null) out.push(`${formatSize(Math.round(rate))}/s`);
  if (secondsLeft !== null) out.push(`about ${formatDuration(secondsLeft)} left`);
  return out;
}

/**
 * The plain progress line printed when output is not a terminal.
 *
 * @example
 * ```ts
 * progressLine(snapshot); // "progress: 120/400 files, 310.0 MiB of 1.20 GiB, 54.0 MiB/s, about 17 s left"
 * ```
 */
export function progressLine(snapshot: ProgressSnapshot): string {
  return `progress: ${parts(snapshot).join(", ")}`;
}

/** The text beside the bar on a terminal: the same parts as {@linkcode progressLine}, shorter. */
export function barText(snapshot: ProgressSnapshot): string {
  return parts(snapshot).join(" | ");
}

/** How far the run is, from 0 to 1: by bytes, or by files when there are no bytes to move. */
export function fraction(snapshot: ProgressSnapshot): number {
  const { files, bytes } = snapshot;
  if (bytes.total > 0) return Math.min(1, bytes.done / bytes.total);
  return files.total > 0 ? Math.min(1, files.done / files.total) : 1;
}
