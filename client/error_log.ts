// The client's error log: errors and conflicts appended to DIR/.filesync/client.log, rotated at a bounded size.
import { join } from "node:path";
import { eventLevel, type EventSink, type TimedEvent } from "./events.ts";
import { formatEvent } from "./event_format.ts";
import { STATE_DIR } from "./state.ts";

/** The log file's name in the state folder; the previous one is `client.log.1`. */
export const ERROR_LOG_FILE = "client.log";
/** Size at which the log is rotated (one older file is kept): at most about twice this on disk. */
export const ERROR_LOG_MAX_BYTES = 1024 * 1024;

/** Options of {@linkcode ErrorLog}. */
export interface ErrorLogOptions {
  /** Rotate when the file would grow past this. @default ERROR_LOG_MAX_BYTES */
  maxBytes?: number;
  /** Told once when the log cannot be written (syncing goes on without it). @default nothing */
  onError?: (error: Error) => void;
}

/** The path of a synced folder's error log. */
export function errorLogPath(root: string): string {
  return join(root, STATE_DIR, ERROR_LOG_FILE);
}

/**
 * Appends lines to a file (mode 0600) in the background, one write after another; when a line would take the
 * file past `maxBytes` it is first renamed to `FILE.1` (replacing the older one). A failed write is dropped:
 * the log never stops or slows what produces the lines.
 *
 * @example
 * ```ts
 * const log = new ErrorLog(errorLogPath(dir));
 * events.subscribe(log.sink());
 * ```
 */
export class ErrorLog {
  readonly path: string;
  #maxBytes: number;
  #onError?: (error: Error) => void;
  #failed = false;
  #chain: Promise<void> = Promise.resolve();
  #encoder = new TextEncoder();

  constructor(path: string, options: ErrorLogOptions = {}) {
    this.path = path;
    this.#maxBytes = options.maxBytes ?? ERROR_LOG_MAX_BYTES;
    this.#onError = options.onError;
  }

  /** Queues one line (a newline is added); returns at once. */
  append(line: string): void {
    const data = this.#encoder.encode(line.endsWith("\n") ? line : `${line}\n`);
    this.#chain = this.#chain.then(() => this.#write(data)).catch((error) => {
      if (this.#failed) return;
      this.#failed = true;
      this.#onError?.(error as Error);
    });
  }

  /** Resolves once every queued line was written (or dropped). */
  flush(): Promise<void> {
    return this.#chain;
  }

  /** A sink that logs error and conflict events as `ISO-time line`. */
  sink(): EventSink {
    return (event: TimedEvent) => {
      const level = eventLevel(event);
      if (level !== "error" && level !== "conflict") return;
      this.append(`${new Date(event.time).toISOString()} ${formatEvent(event)}`);
    };
  }

  async #write(data: Uint8Array): Promise<void> {
    let size = 0;
    try {
      size = (await Deno.stat(this.path)).size;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (size > 0 && size + data.length > this.#maxBytes) await Deno.rename(this.path, `${this.path}.1`);
    const file = await Deno.open(this.path, { append: true, create: true, mode: 0o600 });
    try {
      for (let at = 0; at < data.length;) at += await file.write(data.subarray(at));
    } finally {
      file.close();
    }
  }
}
