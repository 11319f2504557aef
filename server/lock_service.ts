// Locks as the sessions use them: LOCK, UNLOCK and LOCKS over the metadata store, expiry sweeps, live pushes.
import type { LockHolder } from "../protocol/locks.ts";
import {
  decideLock,
  decideUnlock,
  isLive,
  type LockRecord,
  type LockRefusal,
  ownsNamespace,
} from "./lock_rules.ts";
import type { MetadataStore } from "./metadata_store.ts";

/** What happened to a lock: a push's `change`. */
export interface LockChangeNote {
  /** The file whose lock changed. */
  path: string;
  /** What happened to it ("forced": released by a device other than the holder). */
  what: "taken" | "renewed" | "released" | "forced" | "expired";
  /** The device that made the change (absent for expiry). */
  by?: string;
}

/** A change of a namespace's locks: every live lock after it, and what changed. */
export interface LockEvent {
  /** Every live lock of the namespace after the change. */
  locks: LockRecord[];
  /** The change. */
  change: LockChangeNote;
}

/** How often expired locks are looked for (each found is removed and pushed to the namespace's devices). */
export const LOCK_SWEEP_MS = 1000;

/** Options of {@linkcode LockService}. */
export interface LockServiceOptions {
  /** The server's clock. @default Date.now */
  now?: () => number;
  /** Tells the other nodes of each lock change made here. @default nobody */
  announce?: (ns: string, change: LockChangeNote) => void;
}

/** Takes, renews, releases and expires locks, and tells the subscribed sessions of the namespace. */
export class LockService {
  #store: MetadataStore;
  #now: () => number;
  #announce: (ns: string, change: LockChangeNote) => void;
  #listeners = new Map<string, Set<(event: LockEvent) => void>>();

  /** A service over one store. */
  constructor(store: MetadataStore, options: LockServiceOptions = {}) {
    this.#store = store;
    this.#now = options.now ?? Date.now;
    this.#announce = options.announce ?? (() => {});
  }

  /** The server's clock now. */
  now(): number {
    return this.#now();
  }

  /** Adds a listener of a namespace's lock changes; returns the function that removes it. */
  subscribe(ns: string, listener: (event: LockEvent) => void): () => void {
    let set = this.#listeners.get(ns);
    if (!set) this.#listeners.set(ns, set = new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(ns);
    };
  }

  async #publish(ns: string, change: LockChangeNote): Promise<void> {
    this.#announce(ns, change);
    await this.hear(ns, change);
  }

  /** Tells this node's subscribed sessions of a lock change (made here, or on another node). */
  async hear(ns: string, change: LockChangeNote): Promise<void> {
    const listeners = this.#listeners.get(ns);
    if (!listeners || listeners.size === 0) return;
    const event = { locks: await this.live(ns), change };
    for (const listener of listeners) listener(event);
  }

  /** The live locks of a namespace. */
  async live(ns: string): Promise<LockRecord[]> {
    const now = this.#now();
    return (await this.#store.listLocks(ns)).filter((lock) => isLive(lock, now));
  }

  /** LOCK: takes or renews a lease on a file of `ns` for `holder`. */
  async lock(
    ns: string,
    request: { path: string; holder: LockHolder; minutes?: number; renew?: boolean },
  ): Promise<{ ok: true; lock: LockRecord; renewed: boolean } | LockRefusal> {
    const now = this.#now();
    const decided = await this.#store.changeLock(ns, request.path, (current, entry) => {
      const result = decideLock(current, entry, { ...request, now });
      return { write: result.ok ? result.lock : undefined, result };
    });
    if (decided.ok) {
      await this.#publish(ns, {
        path: request.path,
        what: decided.renewed ? "renewed" : "taken",
        by: request.holder.device,
      });
    }
    return decided;
  }

  /**
   * UNLOCK: releases the holder's lock, or with `force` (the namespace's owner) anyone's. `owner` says whether
   * the holder owns the namespace (the caller's access check knows). @default the namespace is the holder's own
   */
  async unlock(
    ns: string,
    request: { path: string; holder: LockHolder; force: boolean; owner?: boolean },
  ): Promise<{ ok: true; released: LockRecord } | LockRefusal> {
    const now = this.#now();
    const owner = request.owner ?? ownsNamespace(request.holder.user, ns);
    const decided = await this.#store.changeLock(ns, request.path, (current) => {
      const result = decideUnlock(current, { ...request, owner, now });
      return { write: result.ok ? null : undefined, result };
    });
    if (decided.ok) {
      const forced = decided.released.deviceId !== request.holder.deviceId ||
        decided.released.user !== request.holder.user;
      await this.#publish(ns, {
        path: request.path,
        what: forced ? "forced" : "released",
        by: request.holder.device,
      });
    }
    return decided;
  }

  /**
   * Releases every lock a device holds (it was revoked: it can neither renew nor unlock them) and tells each
   * namespace's devices; returns how many were released.
   */
  async releaseDevice(user: string, deviceId: string): Promise<number> {
    let released = 0;
    const namespaces: string[] = [];
    for await (const ns of this.#store.listLockNamespaces()) namespaces.push(ns);
    for (const ns of namespaces) {
      for (const lock of await this.#store.listLocks(ns)) {
        if (lock.user !== user || lock.deviceId !== deviceId) continue;
        const gone = await this.#store.changeLock(
          ns,
          lock.path,
          (current) =>
            current?.user === user && current.deviceId === deviceId
              ? { write: null, result: true }
              : { result: false },
        );
        if (!gone) continue;
        released++;
        await this.#publish(ns, { path: lock.path, what: "released", by: lock.device });
      }
    }
    return released;
  }

  /** Removes every expired lock and tells each namespace's devices; returns how many were removed. */
  async sweep(): Promise<number> {
    const now = this.#now();
    let removed = 0;
    const namespaces: string[] = [];
    for await (const ns of this.#store.listLockNamespaces()) namespaces.push(ns);
    for (const ns of namespaces) {
      for (const lock of await this.#store.listLocks(ns)) {
        if (isLive(lock, now)) continue;
        const gone = await this.#store.changeLock(
          ns,
          lock.path,
          (current) =>
            current !== null && !isLive(current, now) ? { write: null, result: true } : { result: false },
        );
        if (!gone) continue;
        removed++;
        await this.#publish(ns, { path: lock.path, what: "expired" });
      }
    }
    return removed;
  }

  /**
   * Sweeps now and then every {@linkcode LOCK_SWEEP_MS} (one sweep at a time); returns the function that stops
   * it and resolves once no sweep runs.
   */
  startSweeping(log: (line: string) => void): () => Promise<void> {
    let running: Promise<void> = Promise.resolve();
    let busy = false;
    const run = () => {
      if (busy) return;
      busy = true;
      running = this.sweep().then(
        (n) => n > 0 ? log(`locks: ${n} expired`) : undefined,
        (error) => log(`lock sweep failed: ${(error as Error).message}`),
      ).finally(() => busy = false);
    };
    run();
    const timer = setInterval(run, LOCK_SWEEP_MS);
    return async () => {
      clearInterval(timer);
      await running;
    };
  }
}
