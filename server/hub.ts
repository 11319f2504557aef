// Live journal fan-out: sessions subscribe to a namespace and receive each commit's journal entries in order;
// and a user's sessions hear when what is shared with the user changes.
import type { WireEntry, WireShare } from "../protocol/messages.ts";

/** A share that arrived, changed access or went, told to the grantee's sessions. */
export interface ShareChange {
  change: "new" | "access" | "gone";
  share: WireShare;
}

/** Hears share changes of one user. */
export type ShareListener = (change: ShareChange) => void;

/** Receives journal entries of one namespace, in sequence order. */
export type Listener = (entries: WireEntry[]) => void;

/** In-process publish/subscribe of committed journal entries per namespace. */
export class Hub {
  #listeners = new Map<string, Set<Listener>>();
  #shareListeners = new Map<string, Set<ShareListener>>();

  /** Adds a listener of the share changes of `user`; returns the function that removes it. */
  watchShares(user: string, listener: ShareListener): () => void {
    let set = this.#shareListeners.get(user);
    if (!set) this.#shareListeners.set(user, set = new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#shareListeners.delete(user);
    };
  }

  /** Tells every session of the grantee (`change.share.user`) about a share change. */
  shareChanged(change: ShareChange): void {
    for (const listener of this.#shareListeners.get(change.share.user) ?? []) listener(change);
  }

  /** Adds a listener; returns the function that removes it. */
  subscribe(ns: string, listener: Listener): () => void {
    let set = this.#listeners.get(ns);
    if (!set) this.#listeners.set(ns, set = new Set());
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(ns);
    };
  }

  /** Delivers entries to every listener of the namespace. */
  publish(ns: string, entries: WireEntry[]): void {
    if (entries.length === 0) return;
    for (const listener of this.#listeners.get(ns) ?? []) listener(entries);
  }
}
