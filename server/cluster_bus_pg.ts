// The cluster bus over PostgreSQL: one LISTEN/NOTIFY channel on the metadata database, checked and re-listened.
import type { Sql } from "postgres";
import {
  type ClusterBus,
  type ClusterNote,
  encodeNote,
  newNodeId,
  type NoteListener,
} from "./cluster_bus.ts";
import { decodeNote } from "./cluster_bus.ts";

/** The one channel every node listens on. */
export const CLUSTER_CHANNEL = "filesync_cluster";

/** How often a node sends itself a ping through the database, to know its LISTEN still hears, in ms. */
export const PING_MS = 2000;

/** Re-listening after a failure waits this long at first, doubling up to {@linkcode MAX_BACKOFF_MS}. */
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

/** Options of {@linkcode PgClusterBus}. */
export interface PgClusterBusOptions {
  /** The channel. @default CLUSTER_CHANNEL */
  channel?: string;
  /** How often the node pings itself. @default PING_MS */
  pingMs?: number;
  /** Where lines about losing and regaining the channel go. @default nowhere */
  log?: (line: string) => void;
}

/**
 * Notes through PostgreSQL's NOTIFY on one channel (payloads are small JSON texts under its 8000-byte limit).
 * porsager's client keeps the LISTEN on a connection of its own and listens again after it drops; on top of
 * that the node pings itself every {@linkcode PING_MS}, and when its pings stop coming back it listens again,
 * with backoff. After every such gap the resume listeners run (the node then catches up from the journal).
 */
export class PgClusterBus implements ClusterBus {
  readonly shared = true;
  /** This node's id, in every note it sends. */
  readonly id: string = newNodeId();
  #sql: Sql;
  #channel: string;
  #log: (line: string) => void;
  #listeners = new Set<NoteListener>();
  #resume = new Set<() => void>();
  /** Sends go one after another, so the other nodes hear them in order. */
  #tail: Promise<unknown> = Promise.resolve();
  /** Bumped at each listen: notes reaching an older one's handler are dropped (it may linger in the client). */
  #generation = 0;
  #unlisten: () => Promise<void> = () => Promise.resolve();
  #ping: string;
  #lastPing = Date.now();
  #timer: ReturnType<typeof setInterval>;
  #relistening = false;
  #backoff = FIRST_BACKOFF_MS;
  #closed = false;
  #ready: Promise<void>;

  /** A bus on the database `sql` connects to (the metadata store's client); starts listening at once. */
  constructor(sql: Sql, options: PgClusterBusOptions = {}) {
    this.#sql = sql;
    this.#channel = options.channel ?? CLUSTER_CHANNEL;
    this.#log = options.log ?? (() => {});
    this.#ping = JSON.stringify({ from: this.id, kind: "ping" });
    this.#ready = this.#listen(false).then(
      (ok) => ok ? undefined : this.#relisten(),
    );
    const pingMs = options.pingMs ?? PING_MS;
    this.#timer = setInterval(() => {
      if (this.#closed) return;
      if (!this.#relistening && Date.now() - this.#lastPing > 3 * pingMs) {
        this.#log("cluster bus: the database stopped passing notes: listening again");
        void this.#relisten();
      }
      this.#sql.notify(this.#channel, this.#ping).catch(() => {});
    }, pingMs);
  }

  /** Resolves once the first LISTEN is in place (or given up on, to be retried). */
  ready(): Promise<void> {
    return this.#ready;
  }

  /** Listens with a new handler; true when the LISTEN is in place. */
  async #listen(again: boolean): Promise<boolean> {
    const generation = ++this.#generation;
    await this.#unlisten().catch(() => {});
    let first = true;
    try {
      const handle = await this.#sql.listen(this.#channel, (payload) => {
        if (generation !== this.#generation || this.#closed) return;
        this.#heard(payload);
      }, () => {
        // The client listens again by itself after a dropped connection: notes may have been lost meanwhile.
        if (!first && generation === this.#generation) this.#resumed();
        first = false;
      });
      this.#unlisten = handle.unlisten;
      this.#lastPing = Date.now();
      if (again) this.#resumed();
      return true;
    } catch (error) {
      this.#log(`cluster bus: cannot listen: ${(error as Error).message}`);
      return false;
    }
  }

  /** Listens again until it works, waiting longer after each failure. */
  async #relisten(): Promise<void> {
    if (this.#relistening) return;
    this.#relistening = true;
    try {
      while (!this.#closed && !await this.#listen(true)) {
        await new Promise((r) => setTimeout(r, this.#backoff));
        this.#backoff = Math.min(MAX_BACKOFF_MS, this.#backoff * 2);
      }
      this.#backoff = FIRST_BACKOFF_MS;
    } finally {
      this.#relistening = false;
    }
  }

  #resumed(): void {
    this.#lastPing = Date.now();
    for (const listener of this.#resume) listener();
  }

  #heard(payload: string): void {
    if (payload === this.#ping) {
      this.#lastPing = Date.now();
      return;
    }
    const decoded = decodeNote(payload);
    if (!decoded || decoded.from === this.id) return;
    for (const listener of this.#listeners) listener(decoded.note);
  }

  send(note: ClusterNote): Promise<void> {
    if (this.#closed) return Promise.resolve();
    let text: string;
    try {
      text = encodeNote(this.id, note);
    } catch (error) {
      return Promise.reject(error);
    }
    const sent = this.#tail.then(() => this.#sql.notify(this.#channel, text));
    this.#tail = sent.catch(() => {});
    return sent.then(() => {});
  }

  listen(listener: NoteListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onResume(listener: () => void): () => void {
    this.#resume.add(listener);
    return () => this.#resume.delete(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#listeners.clear();
    this.#resume.clear();
    await this.#tail;
    this.#generation++;
    await this.#unlisten().catch(() => {});
  }
}
