// The progress events a sync emits: what a plan will transfer, transfer progress throttled per file, "in sync".
import type { ClientEvent, Direction } from "./events.ts";
import type { Action } from "./reconcile.ts";
import type { Progress } from "./transfer.ts";

/** The `plan` event's fields. */
export type PlanTotals = Omit<Extract<ClientEvent, { type: "plan" }>, "type">;

/** A `transfer` event. */
export type TransferEvent = Extract<ClientEvent, { type: "transfer" }>;

/** Least time between two `transfer` events of one file (its last one always goes). */
export const TRANSFER_EVERY_MS = 250;

/**
 * Files smaller than this get no `transfer` events: they move in one go, and their `uploaded` / `downloaded`
 * event is their progress.
 */
export const TRANSFER_MIN_BYTES = 1024 * 1024;

/**
 * What a plan transfers: files and bytes each way, deletes and moves (both sides).
 *
 * @example
 * ```ts
 * planTotals(plan); // { uploads: { files: 1, bytes: 10 }, downloads: { files: 0, bytes: 0 }, deletes: 0, moves: 0 }
 * ```
 */
export function planTotals(plan: readonly Action[]): PlanTotals {
  const totals: PlanTotals = {
    uploads: { files: 0, bytes: 0 },
    downloads: { files: 0, bytes: 0 },
    deletes: 0,
    moves: 0,
  };
  for (const action of plan) {
    if (action.type === "upload") {
      totals.uploads.files++;
      totals.uploads.bytes += action.local.size;
    } else if (action.type === "download") {
      totals.downloads.files++;
      totals.downloads.bytes += action.remote.size;
    } else if (action.type === "deleteLocal" || action.type === "deleteRemote") totals.deletes++;
    else if (action.type === "moveLocal" || action.type === "moveRemote") totals.moves++;
  }
  return totals;
}

/** True if a plan moves file content (a `plan` event is sent for it). */
export function transfersAny(totals: PlanTotals): boolean {
  return totals.uploads.files + totals.downloads.files > 0;
}

/** Options of {@linkcode transferReporter}. */
export interface TransferReporterOptions {
  /** The clock. @default Date.now */
  now?: () => number;
  /** Least time between two events of one file. @default TRANSFER_EVERY_MS */
  everyMs?: number;
  /** Smaller files get no events. @default TRANSFER_MIN_BYTES */
  minBytes?: number;
}

/**
 * A {@linkcode Progress} callback that turns the per-chunk progress of transfers into `transfer` events: for
 * files of at least `minBytes`, at most one per `everyMs` per file, plus the one that reaches the end.
 *
 * @example
 * ```ts
 * const progress = transferReporter((event) => events.emit(event));
 * ```
 */
export function transferReporter(
  emit: (event: TransferEvent) => void,
  options: TransferReporterOptions = {},
): Progress {
  const now = options.now ?? Date.now;
  const everyMs = options.everyMs ?? TRANSFER_EVERY_MS;
  const minBytes = options.minBytes ?? TRANSFER_MIN_BYTES;
  /** When each running transfer last sent an event, by direction and path. */
  const last = new Map<string, number>();
  return (path: string, done: number, total: number, direction: Direction) => {
    if (total < minBytes) return;
    const key = `${direction}:${path}`;
    const at = now();
    const finished = done >= total;
    const previous = last.get(key);
    if (!finished && previous !== undefined && at - previous < everyMs) return;
    if (finished) last.delete(key);
    else last.set(key, at);
    emit({ type: "transfer", direction, path, done, total });
  };
}
