// What one server node tells the others (commits, share changes, revocations, lock changes), and a bus in-process.
import type { ShareChange } from "./hub.ts";
import type { LockChangeNote } from "./lock_service.ts";
import type { LoginOutcome } from "./auth.ts";

/**
 * A note from one node to the others. The journal stays the source of truth: a `journal` note only says how far
 * a namespace's journal got, and the node hearing it reads the entries from the metadata store.
 */
export type ClusterNote =
  /** Namespace `ns` committed entries up to rev `seq`. */
  | { kind: "journal"; ns: string; seq: number }
  /** What is shared with `change.share.user` changed. */
  | { kind: "share"; change: ShareChange }
  /** Device `deviceId` of `user` was revoked: close its sessions (its locks are released by the sender). */
  | { kind: "revoked"; user: string; deviceId: string }
  /** The account of `user` changed (password, removal): log its sessions out. */
  | { kind: "logout"; user: string }
  /** The locks of namespace `ns` changed. */
  | { kind: "locks"; ns: string; change: LockChangeNote }
  /** Garbage collection starts (the other nodes pause their uploads and commits) or ended (they forget what
   * they cached about stored chunks). */
  | { kind: "gc"; phase: "start" | "done" }
  /** A login was checked (the login rate limits count it on every node). */
  | ({ kind: "login" } & LoginOutcome);

/**
 * Largest encoded note, in UTF-8 bytes: under PostgreSQL's NOTIFY limit of 8000 bytes, with room for the
 * sender's id. The longest path (4096 bytes) and the longest names fit.
 */
export const MAX_NOTE_BYTES = 7900;

/** How often a node checks every namespace its sessions follow for commits it was not told of, in ms. */
export const CATCH_UP_MS = 3000;

/** Hears notes of other nodes. */
export type NoteListener = (note: ClusterNote) => void;

/**
 * How the nodes serving the same metadata talk. A bus never delivers a node its own notes, delivers one sender's
 * notes in the order they were sent, and may lose notes when a connection drops: then it calls the resume
 * listeners once it hears again, and the node catches up from the journal.
 */
export interface ClusterBus {
  /** Whether other nodes may commit to the same journals (so this node reads what they commit). */
  readonly shared: boolean;
  /** Tells the other nodes; rejects with a RangeError for a note over {@linkcode MAX_NOTE_BYTES}. */
  send(note: ClusterNote): Promise<void>;
  /** Adds a listener of the other nodes' notes; returns the function that removes it. */
  listen(listener: NoteListener): () => void;
  /** Adds a listener called after notes may have been lost (a reconnect); returns the function that removes it. */
  onResume(listener: () => void): () => void;
  /** Stops hearing and sending. */
  close(): Promise<void>;
}

/** A note as the bus carries it: JSON, with the sender's id. */
export function encodeNote(from: string, note: ClusterNote): string {
  const text = JSON.stringify({ from, ...note });
  const bytes = new TextEncoder().encode(text).length;
  if (bytes > MAX_NOTE_BYTES) {
    throw new RangeError(`Cannot send a ${note.kind} note of ${bytes} bytes: the limit is ${MAX_NOTE_BYTES}`);
  }
  return text;
}

/** The sender and note of an encoded note, or null for anything that is not one (ignored, never thrown). */
export function decodeNote(text: string): { from: string; note: ClusterNote } | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { from, ...note } = value as Record<string, unknown>;
  if (typeof from !== "string") return null;
  const str = (v: unknown) => typeof v === "string";
  switch (note.kind) {
    case "journal":
      if (!str(note.ns) || !Number.isSafeInteger(note.seq)) return null;
      break;
    case "share": {
      const change = note.change as ShareChange | undefined;
      if (typeof change !== "object" || change === null || typeof change.share !== "object") return null;
      if (!str(change.share?.user) || !str(change.share?.ns)) return null;
      break;
    }
    case "revoked":
      if (!str(note.user) || !str(note.deviceId)) return null;
      break;
    case "logout":
      if (!str(note.user)) return null;
      break;
    case "gc":
      if (note.phase !== "start" && note.phase !== "done") return null;
      break;
    case "login":
      if (!str(note.user) || !str(note.address) || !["success", "failure"].includes(note.outcome as string)) {
        return null;
      }
      break;
    case "locks":
      if (!str(note.ns) || typeof note.change !== "object" || note.change === null) return null;
      break;
    default:
      return null;
  }
  return { from, note: note as ClusterNote };
}

/** A random id for a node (notes carry it so a node skips its own). */
export function newNodeId(): string {
  return crypto.randomUUID();
}

/**
 * Nodes in one process: each {@linkcode InProcessNetwork.node} is a bus whose notes reach every other node of the
 * network. A server alone gets a network of one ({@linkcode singleNodeBus}): nothing is sent anywhere.
 */
export class InProcessNetwork {
  #nodes = new Set<InProcessBus>();
  #shared: boolean;

  /** A network; `shared` says whether its nodes commit to the same journals. @default true */
  constructor(options: { shared?: boolean } = {}) {
    this.#shared = options.shared ?? true;
  }

  /** A new node on the network. */
  node(): InProcessBus {
    const bus = new InProcessBus(this.#shared, (from, text) => {
      for (const other of this.#nodes) if (other !== from) other.deliver(text);
    }, () => this.#nodes.delete(bus));
    this.#nodes.add(bus);
    return bus;
  }
}

/** The bus of a server that is the only node: today's behaviour, nothing read from the store for other nodes. */
export function singleNodeBus(): ClusterBus {
  return new InProcessNetwork({ shared: false }).node();
}

/** One node of an {@linkcode InProcessNetwork}. */
export class InProcessBus implements ClusterBus {
  readonly shared: boolean;
  readonly id: string = newNodeId();
  #listeners = new Set<NoteListener>();
  #resume = new Set<() => void>();
  #broadcast: (from: InProcessBus, text: string) => void;
  #leave: () => void;
  #closed = false;

  /** Made by {@linkcode InProcessNetwork.node}. */
  constructor(shared: boolean, broadcast: (from: InProcessBus, text: string) => void, leave: () => void) {
    this.shared = shared;
    this.#broadcast = broadcast;
    this.#leave = leave;
  }

  send(note: ClusterNote): Promise<void> {
    if (this.#closed) return Promise.resolve();
    try {
      // Encoded as on PostgreSQL, so the bound and the copy hold the same on both.
      this.#broadcast(this, encodeNote(this.id, note));
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve();
  }

  /** Hands an encoded note to this node's listeners, after the current task (as a socket would). */
  deliver(text: string): void {
    queueMicrotask(() => {
      if (this.#closed) return;
      const decoded = decodeNote(text);
      if (!decoded || decoded.from === this.id) return;
      for (const listener of this.#listeners) listener(decoded.note);
    });
  }

  listen(listener: NoteListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  onResume(listener: () => void): () => void {
    this.#resume.add(listener);
    return () => this.#resume.delete(listener);
  }

  /** Calls the resume listeners, as after a reconnect (tests). */
  resume(): void {
    for (const listener of this.#resume) listener();
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#leave();
    this.#listeners.clear();
    this.#resume.clear();
    return Promise.resolve();
  }
}
