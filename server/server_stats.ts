// What `filesync server status` reports: counters since start kept by the sessions, the connected devices, and
// the chunk store's size (measured by a walk, cached a minute).
import { formatSize } from "../protocol/sizes.ts";
import type { ChunkStore, ChunkUsage } from "./chunk_store.ts";

/** Counters of a running server since its start, bumped by the sessions. */
export class ServerCounters {
  /** When the server started (ms since 1970). */
  readonly startedAt: number;
  /** Connections that finished TLS. */
  sessions = 0;
  /** Changes committed (uploads, deletes, moves, folders), refused ones not counted. */
  commits = 0;
  /** Chunk bytes received by PUT. */
  uploadedBytes = 0;
  /** Bytes of file content and manifests sent in GET, DOWNLOAD and FETCH replies. */
  downloadedBytes = 0;

  constructor(now: number) {
    this.startedAt = now;
  }
}

/** One connected device, as `server status` lists it. */
export interface ConnectedDevice {
  user: string;
  device: string;
  deviceId: string;
  /** The peer's address and port, e.g. "127.0.0.1:51234" or "[::1]:51234". */
  address: string;
  /** When the connection was made (ms since 1970). */
  since: number;
}

/** The `stats` answer of the admin socket: what `filesync server status --json` prints. */
export interface ServerStatus {
  /** When the server started, and now (ms since 1970). */
  startedAt: number;
  now: number;
  /** Open connections (logged in or not). */
  connections: number;
  /** Connections since start. */
  sessions: number;
  commits: number;
  uploadedBytes: number;
  downloadedBytes: number;
  /** Logged-in connections, by user then device. */
  devices: ConnectedDevice[];
  /** Stored chunks and their bytes on disk as of `measuredAt`; absent when the store cannot tell. */
  chunkStore?: ChunkUsage & { measuredAt: number };
  /** Wire bytes in and out per `user@device` (what the benchmarks read). */
  traffic: Record<string, { in: number; out: number }>;
}

/** How long a measured chunk store size is reused before it is measured again. */
export const CHUNK_USAGE_MAX_AGE_MS = 60_000;

/**
 * The chunk store's size, measured when first asked and again when the last measure is older than
 * {@linkcode CHUNK_USAGE_MAX_AGE_MS}; one measure runs at a time, and callers meanwhile share it.
 */
export class ChunkUsageCache {
  #store: ChunkStore;
  #now: () => number;
  #last: (ChunkUsage & { measuredAt: number }) | null = null;
  #running: Promise<(ChunkUsage & { measuredAt: number }) | null> | null = null;

  constructor(store: ChunkStore, now: () => number = Date.now) {
    this.#store = store;
    this.#now = now;
  }

  /** The size (null when the store cannot tell). */
  get(): Promise<(ChunkUsage & { measuredAt: number }) | null> {
    const usage = this.#store.usage?.bind(this.#store);
    if (!usage) return Promise.resolve(null);
    if (this.#last && this.#now() - this.#last.measuredAt < CHUNK_USAGE_MAX_AGE_MS) {
      return Promise.resolve(this.#last);
    }
    this.#running ??= usage().then((u) => this.#last = { ...u, measuredAt: this.#now() }).finally(() => {
      this.#running = null;
    });
    return this.#running;
  }
}

/** Readable lines of a status, e.g. for `filesync server status`. */
export function describeStatus(status: ServerStatus): string[] {
  const lines = [
    `server up ${duration(status.now - status.startedAt)} (since ${utc(status.startedAt)})`,
    `${status.connections} ${plural(status.connections, "connection")} open, ${status.sessions} since start`,
    `since start: ${status.commits} ${plural(status.commits, "change")} committed, ` +
    `${formatSize(status.uploadedBytes)} uploaded, ${formatSize(status.downloadedBytes)} downloaded`,
    status.chunkStore
      ? `chunk store: ${status.chunkStore.chunks} ${plural(status.chunkStore.chunks, "chunk")}, ` +
        `${formatSize(status.chunkStore.bytes)} (measured ${utc(status.chunkStore.measuredAt)})`
      : "chunk store: size unknown",
  ];
  const users = new Map<string, ConnectedDevice[]>();
  for (const d of status.devices) users.set(d.user, [...users.get(d.user) ?? [], d]);
  if (users.size === 0) lines.push("no devices connected");
  for (const [user, devices] of [...users].sort(([a], [b]) => a < b ? -1 : 1)) {
    lines.push(`${user}: ${devices.length} ${plural(devices.length, "device")} connected`);
    for (const d of devices) {
      lines.push(`  ${d.device} (${d.deviceId}) from ${d.address}, connected since ${utc(d.since)}`);
    }
  }
  return lines;
}

function plural(n: number, word: string): string {
  return n === 1 ? word : `${word}s`;
}

/** "2026-12-01 20:18:27 UTC". */
function utc(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + " UTC";
}

/** "3 d 4 h", "2 h 5 min", "4 min 10 s", "12 s". */
function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const [d, h, m] = [Math.floor(s / 86400), Math.floor(s / 3600) % 24, Math.floor(s / 60) % 60];
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}
