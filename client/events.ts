// What a running client reports: one typed event per thing that happened, printed as a line or as JSON.

/** Where a change was made: `server` = made here and sent to the server; `here` = received and applied here. */
export type Where = "server" | "here";

/** A transfer's direction. */
export type Direction = "up" | "down";

/**
 * Everything a client reports, one object per event. The JSON line of an event (`--json`, `status --follow
 * --json`) is this object plus `time` (ISO 8601), `level` and `message` (the readable line); see
 * {@linkcode toJsonLine}. Fields are only ever added, never renamed: consumers ignore what they do not know.
 */
export type ClientEvent =
  /** A file's content was sent to the server. `sent` is the bytes of chunks the server lacked. */
  | { type: "uploaded"; path: string; size: number; sent?: number; note?: string }
  /** A file's content was written here from the server. `fetched` is the bytes that came over the wire. */
  | { type: "downloaded"; path: string; size: number; fetched?: number; note?: string }
  /** A file or folder was deleted: here and sent (`server`), or by another device and applied here (`here`). */
  | { type: "deleted"; path: string; kind: "file" | "dir"; where: Where; note?: string }
  /** A file or folder was moved (a folder's move is one event; `files` counts what it held). */
  | { type: "moved"; from: string; to: string; where: Where; files?: number; note?: string }
  /** Two devices changed one path: `path` keeps the winner, `copy` holds the other side. */
  | {
    type: "conflict";
    path: string;
    copy: string;
    device?: string;
    note?: string;
    /** Whose version the copy holds: this device's (`here`) or the other device's (`there`). */
    copyHolds?: "here" | "there";
  }
  /** An earlier version or a trash item came back (by `filesync restore` on some device). */
  | { type: "restored"; path: string; version?: string }
  /** A share of another user's file or folder arrived, changed access or went. */
  | {
    type: "share";
    change: "added" | "access" | "removed";
    owner: string;
    path: string;
    mount: string;
    access: "read" | "write";
  }
  /** A path was locked (by this or another device) or its lock ended. */
  | { type: "locked"; path: string; user: string; device: string }
  /**
   * `how` the lock ended (`ended` by its holder, `expired`, `forced` open); `mine` when it was this device's
   * lock (then `by` names the device that forced it open).
   */
  | { type: "unlocked"; path: string; how?: "ended" | "expired" | "forced"; mine?: boolean; by?: string }
  /** The connection to the server came up, went, or is being tried again. */
  | { type: "connected"; server: string; user: string; device: string }
  /** `lost`: a connection that was up dropped (else connecting failed). */
  | { type: "offline"; server: string; reason: string; lost?: boolean }
  | { type: "reconnecting"; server: string; inMs: number }
  /** Syncing was paused or resumed (`filesync pause` / `resume`). */
  | { type: "paused" }
  | { type: "resumed" }
  /** The safety stop holds deletes back, or the folder is unusable; `lifted` when syncing goes on as usual. */
  | { type: "safety_stop"; reason: "mass_delete" | "root"; held?: number; detail: string }
  /** `dir`: the synced folder, for a root that is back. */
  | { type: "safety_lifted"; reason: "mass_delete" | "root"; dir?: string }
  /** Something failed; `path` when it concerns one path. */
  | { type: "error"; message: string; path?: string }
  /** Anything else a person should read (login, ignore rules, skipped names, …). */
  | { type: "notice"; message: string; detail?: boolean }
  /** A plan is about to run: what it will transfer. */
  | {
    type: "plan";
    uploads: { files: number; bytes: number };
    downloads: { files: number; bytes: number };
    deletes: number;
    moves: number;
  }
  /** Progress of one file's transfer (sent now and then while it runs, and once at the end). */
  | { type: "transfer"; direction: Direction; path: string; done: number; total: number }
  /** A full cycle ended with the folder and the server in agreement. */
  | { type: "synced"; files: number; bytes: number };

/** The `type` of a {@linkcode ClientEvent}. */
export type EventType = ClientEvent["type"];

/**
 * How much an event matters: `--quiet` prints `error` and `conflict` only; the default adds `info`; `--verbose`
 * adds `detail`.
 */
export type EventLevel = "error" | "conflict" | "info" | "detail";

/** The level of an event. */
export function eventLevel(event: ClientEvent): EventLevel {
  switch (event.type) {
    case "error":
    case "safety_stop":
      return "error";
    case "conflict":
      return "conflict";
    case "plan":
    case "transfer":
    case "synced":
      return "detail";
    case "notice":
      return event.detail ? "detail" : "info";
    default:
      return "info";
  }
}

/** Whether an event of `level` is shown at `verbosity`. */
export function shown(level: EventLevel, verbosity: "quiet" | "normal" | "verbose"): boolean {
  if (verbosity === "verbose") return true;
  if (verbosity === "quiet") return level === "error" || level === "conflict";
  return level !== "detail";
}

/** An event with the time it happened. */
export type TimedEvent = ClientEvent & { time: number };

/** Receives events. */
export type EventSink = (event: TimedEvent) => void;

/** Fans events out to any number of sinks; a sink that throws is dropped from nothing and breaks nothing. */
export class EventBus {
  #sinks = new Set<EventSink>();
  #now: () => number;

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Sends an event to every sink. */
  emit(event: ClientEvent): void {
    const timed = { ...event, time: this.#now() } as TimedEvent;
    for (const sink of this.#sinks) {
      try {
        sink(timed);
      } catch {
        // A sink's failure (a closed socket, say) is the sink's business.
      }
    }
  }

  /** Adds a sink; returns the function that removes it. */
  subscribe(sink: EventSink): () => void {
    this.#sinks.add(sink);
    return () => this.#sinks.delete(sink);
  }
}
