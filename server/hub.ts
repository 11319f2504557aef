// Live journal fan-out: sessions subscribe to a namespace and receive each commit's journal entries in order.
import type { WireEntry } from "../protocol/messages.ts";

/** Receives journal entries of one namespace, in sequence order. */
export type Listener = (entries: WireEntry[]) => void;

/** In-process publish/subscribe of committed journal entries per namespace. */
export class Hub {
  #listeners = new Map<string, Set<Listener>>();

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
