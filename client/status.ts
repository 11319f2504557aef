// What `filesync status` reports: a pure tracker fed by the client's events and a few facts the SyncClient gives.
import type { TimedEvent } from "./events.ts";
import type { Action } from "./reconcile.ts";

/** The client's state as status shows it. */
export type ClientStateName = "connected" | "offline" | "connecting" | "paused" | "safety stop";

/** A number of files and their bytes. */
export interface Totals {
  files: number;
  bytes: number;
}

/** Work a plan holds: files to send and to receive. */
export interface PendingWork {
  uploads: Totals;
  downloads: Totals;
}

/** A transfer under way. */
export interface TransferProgress {
  direction: "up" | "down";
  path: string;
  done: number;
  total: number;
}

/** A safety stop waiting for the user: deletes held back (with their count), or a folder that is unusable. */
export type SafetyStopReport =
  | { reason: "mass_delete"; held: number; detail?: string }
  | { reason: "root"; detail: string };

/** What the SyncClient knows when status is asked (the rest comes from events). */
export interface StatusFacts {
  /** `HOST:PORT` of the first server of the list (the one connected to comes from its `connected` event). */
  server: string;
  user: string;
  device: string;
  /** The synced folder (absolute). */
  folder: string;
  /** A connection to the server is up and logged in. */
  connected: boolean;
  paused: boolean;
  /** Files (and their bytes) of the base snapshot: what this device has in sync. */
  inSync: Totals;
  /** The plan held back while paused (null when not paused or not yet known). */
  pending: PendingWork | null;
  /** Deletes the mass-delete stop holds back now (null: none). */
  massStop: { held: number } | null;
  /** Why the folder's root stops all syncing now (null: it does not). */
  rootStop: string | null;
  /** Conflicted copies in the folder (paths). */
  conflicts: string[];
}

/**
 * `filesync status --json`: one object. Times are ms since 1970. Fields are only ever added.
 */
export interface StatusReport {
  state: ClientStateName;
  /** `HOST:PORT`: the server connected to, else the first of the list. */
  server: string;
  user: string;
  device: string;
  folder: string;
  /** Why the client is offline (the last connection error), when it is. */
  offlineReason?: string;
  inSync: Totals;
  pending: PendingWork;
  transfers: TransferProgress[];
  /** When the folder and the server last came into agreement (null: not since the client started). */
  lastSync: number | null;
  conflicts: string[];
  safetyStops: SafetyStopReport[];
  /** Server requests that commands sent through the control socket since the client started. */
  forwarded?: number;
  /** `filesync status --follow` streams connected now. */
  followers?: number;
}

const none = (): PendingWork => ({ uploads: { files: 0, bytes: 0 }, downloads: { files: 0, bytes: 0 } });

/**
 * The uploads and downloads a plan holds (moves and deletes send no content).
 *
 * @example
 * ```ts
 * summarizePlan([{ type: "upload", path: "a", local: { kind: "file", hash: "h", size: 3, mtime: 0 }, baseRev: 0 }]);
 * // { uploads: { files: 1, bytes: 3 }, downloads: { files: 0, bytes: 0 } }
 * ```
 */
export function summarizePlan(plan: readonly Action[]): PendingWork {
  const work = none();
  for (const action of plan) {
    if (action.type === "upload") {
      work.uploads.files++;
      work.uploads.bytes += action.local.size;
    } else if (action.type === "download") {
      work.downloads.files++;
      work.downloads.bytes += action.remote.size;
    }
  }
  return work;
}

function less(totals: Totals, bytes: number): void {
  totals.files = Math.max(0, totals.files - 1);
  totals.bytes = Math.max(0, totals.bytes - bytes);
}

/**
 * Follows a client's events ({@linkcode observe}) and builds the status report from them and the facts of the
 * moment ({@linkcode report}). The facts win where both speak (connected, paused, safety stops).
 *
 * @example
 * ```ts
 * const tracker = new StatusTracker();
 * events.subscribe((event) => tracker.observe(event));
 * const status = tracker.report(client.facts());
 * ```
 */
export class StatusTracker {
  #offline: string | null = null;
  /** The server of the last `connected` event. */
  #server: string | null = null;
  #pending = none();
  #transfers = new Map<string, TransferProgress>();
  #lastSync: number | null = null;
  #massDetail: string | undefined;

  /** Takes one event into account. */
  observe(event: TimedEvent): void {
    switch (event.type) {
      case "connected":
        this.#offline = null;
        this.#server = event.server;
        break;
      case "offline":
        this.#offline = event.reason;
        break;
      case "plan":
        this.#pending = {
          uploads: { ...event.uploads },
          downloads: { ...event.downloads },
        };
        break;
      case "transfer": {
        const key = `${event.direction}:${event.path}`;
        if (event.done >= event.total) this.#transfers.delete(key);
        else {
          this.#transfers.set(key, {
            direction: event.direction,
            path: event.path,
            done: event.done,
            total: event.total,
          });
        }
        break;
      }
      case "uploaded":
        less(this.#pending.uploads, event.size);
        this.#transfers.delete(`up:${event.path}`);
        break;
      case "downloaded":
        less(this.#pending.downloads, event.size);
        this.#transfers.delete(`down:${event.path}`);
        break;
      case "synced":
        this.#lastSync = event.time;
        this.#pending = none();
        this.#transfers.clear();
        break;
      case "safety_stop":
        if (event.reason === "mass_delete") this.#massDetail = event.detail;
        break;
      case "safety_lifted":
        if (event.reason === "mass_delete") this.#massDetail = undefined;
        break;
    }
  }

  /** The status now, from what the events said and the facts of the moment. */
  report(facts: StatusFacts): StatusReport {
    const state: ClientStateName = facts.paused
      ? "paused"
      : facts.rootStop !== null
      ? "safety stop"
      : facts.connected
      ? "connected"
      : this.#offline !== null
      ? "offline"
      : "connecting";
    const safetyStops: SafetyStopReport[] = [];
    if (facts.rootStop !== null) safetyStops.push({ reason: "root", detail: facts.rootStop });
    if (facts.massStop !== null) {
      safetyStops.push({
        reason: "mass_delete",
        held: facts.massStop.held,
        ...(this.#massDetail ? { detail: this.#massDetail } : {}),
      });
    }
    const pending = facts.paused && facts.pending ? facts.pending : this.#pending;
    return {
      state,
      server: facts.connected && this.#server !== null ? this.#server : facts.server,
      user: facts.user,
      device: facts.device,
      folder: facts.folder,
      ...(!facts.connected && this.#offline !== null ? { offlineReason: this.#offline } : {}),
      inSync: { ...facts.inSync },
      pending: { uploads: { ...pending.uploads }, downloads: { ...pending.downloads } },
      transfers: [...this.#transfers.values()].map((t) => ({ ...t })),
      lastSync: this.#lastSync,
      conflicts: [...facts.conflicts],
      safetyStops,
    };
  }
}
