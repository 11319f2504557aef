// Live journal fan-out: sessions subscribe to a namespace and receive each commit's journal entries in order;
// and a user's sessions hear when what is shared with the user changes. With other nodes on the same journals,
// entries reach the sessions strictly in order, and what other nodes commit is read from the journal.
import type { WireEntry, WireShare } from "../protocol/messages.ts";
import type { ClusterNote } from "./cluster_bus.ts";
import type { MetadataStore } from "./metadata_store.ts";

/** A share that arrived, changed access or went, told to the grantee's sessions. */
export interface ShareChange {
  change: "new" | "access" | "gone";
  share: WireShare;
}

/** Hears share changes of one user. */
export type ShareListener = (change: ShareChange) => void;

/** Receives journal entries of one namespace, in sequence order. */
export type Listener = (entries: WireEntry[]) => void;

/** Journal entries read per page when catching up. */
const CATCH_UP_PAGE = 1000;

/** Options of {@linkcode Hub}. */
export interface HubOptions {
  /**
   * The journal, when other nodes commit to the same namespaces: entries are then published strictly in rev
   * order, a gap is filled from here, and notes of other nodes' commits are read from here.
   * @default none: this node makes every commit, whose entries are published as they come
   */
  journal?: Pick<MetadataStore, "changesSince" | "latestSeq" | "latestSeqs">;
  /** Tells the other nodes of each commit and share change. @default nobody */
  announce?: (note: ClusterNote) => void;
  /** Where failures to read the journal go. @default nowhere */
  log?: (line: string) => void;
}

/** Where the live sessions of a namespace are in its journal (only with a journal). */
interface Feed {
  /** Every entry up to here went to the listeners (undefined: no listener said where it starts yet). */
  published?: number;
  busy: boolean;
  again: boolean;
}

/** Publish/subscribe of committed journal entries per namespace and of share changes per user. */
export class Hub {
  #listeners = new Map<string, Set<Listener>>();
  #shareListeners = new Map<string, Set<ShareListener>>();
  #feeds = new Map<string, Feed>();
  #journal: HubOptions["journal"];
  #announce: (note: ClusterNote) => void;
  #log: (line: string) => void;

  /** A hub; without options it is one node's, as before there were several. */
  constructor(options: HubOptions = {}) {
    this.#journal = options.journal;
    this.#announce = options.announce ?? (() => {});
    this.#log = options.log ?? (() => {});
  }

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

  /** Tells every session of the grantee (`change.share.user`), here and on the other nodes, about a share change. */
  shareChanged(change: ShareChange): void {
    this.#announce({ kind: "share", change });
    this.#shareLocally(change);
  }

  #shareLocally(change: ShareChange): void {
    for (const listener of this.#shareListeners.get(change.share.user) ?? []) listener(change);
  }

  /**
   * Adds a listener; returns the function that removes it. `from` is the rev the listener has everything up to
   * once it has read the journal itself (with other nodes, the hub publishes from there on).
   */
  subscribe(ns: string, listener: Listener, options: { from?: number } = {}): () => void {
    let set = this.#listeners.get(ns);
    if (!set) this.#listeners.set(ns, set = new Set());
    set.add(listener);
    if (this.#journal) {
      let feed = this.#feeds.get(ns);
      if (!feed) this.#feeds.set(ns, feed = { busy: false, again: false });
      // Entries up to `published` went out before this listener came (it reads them itself) or after (it
      // buffers them): it needs nothing older, so only a feed that does not know its place takes `from`.
      if (feed.published === undefined) feed.published = options.from;
    }
    return () => {
      set.delete(listener);
      if (set.size === 0) {
        this.#listeners.delete(ns);
        this.#feeds.delete(ns);
      }
    };
  }

  /** Delivers a commit's entries (in rev order) to every listener of the namespace and tells the other nodes. */
  publish(ns: string, entries: WireEntry[]): void {
    if (entries.length === 0) return;
    this.#announce({ kind: "journal", ns, seq: entries[entries.length - 1].rev });
    const feed = this.#feeds.get(ns);
    if (!this.#journal) return this.#deliver(ns, entries);
    if (!feed) return;
    if (!feed.busy && feed.published !== undefined && entries[0].rev === feed.published + 1) {
      // The next entries, as on one node: no read.
      this.#deliver(ns, entries);
      feed.published = entries[entries.length - 1].rev;
    } else if (feed.published === undefined || entries[entries.length - 1].rev > feed.published) {
      // Another node's commit came between: read the journal from where the listeners are.
      this.#catchUp(ns);
    }
  }

  /** Acts on another node's note: reads what it committed, or tells the grantee's sessions of a share change. */
  hear(note: ClusterNote): void {
    if (note.kind === "share") return this.#shareLocally(note.change);
    if (note.kind !== "journal" || !this.#journal) return;
    const feed = this.#feeds.get(note.ns);
    if (feed && (feed.published === undefined || note.seq > feed.published)) this.#catchUp(note.ns);
  }

  /** Checks every namespace with listeners for entries not published yet (a lost note); resolves when done. */
  async catchUpAll(): Promise<void> {
    if (!this.#journal || this.#feeds.size === 0) return;
    const feeds = [...this.#feeds];
    let latest: number[];
    try {
      // One read for every namespace followed, however many.
      latest = await this.#journal.latestSeqs(feeds.map(([ns]) => ns));
    } catch (error) {
      this.#log(`cannot check the journals of ${feeds.length} namespace(s): ${(error as Error).message}`);
      return;
    }
    for (const [i, [ns, feed]] of feeds.entries()) {
      if (feed.published === undefined || latest[i] > feed.published) await this.#catchUp(ns);
    }
  }

  /** Runs {@linkcode catchUpAll} every `everyMs` (one at a time); returns the function that stops it. */
  startCatchingUp(everyMs: number): () => Promise<void> {
    if (!this.#journal) return () => Promise.resolve();
    let running: Promise<void> = Promise.resolve();
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      running = this.catchUpAll().finally(() => busy = false);
    }, everyMs);
    return async () => {
      clearInterval(timer);
      await running;
    };
  }

  /** Publishes the namespace's journal after `published`, page by page, until it reads nothing new. */
  async #catchUp(ns: string): Promise<void> {
    const feed = this.#feeds.get(ns);
    if (!feed || !this.#journal) return;
    if (feed.busy) {
      feed.again = true;
      return;
    }
    feed.busy = true;
    try {
      if (feed.published === undefined) feed.published = await this.#journal.latestSeq(ns);
      let more = true;
      while (more && this.#feeds.get(ns) === feed) {
        feed.again = false;
        const page = await this.#journal.changesSince(ns, feed.published, CATCH_UP_PAGE);
        const fresh = page.filter((e) => e.rev > feed.published!);
        if (fresh.length > 0) {
          this.#deliver(ns, fresh);
          feed.published = fresh[fresh.length - 1].rev;
        }
        more = page.length === CATCH_UP_PAGE || feed.again;
      }
    } catch (error) {
      this.#log(`cannot read the journal of namespace "${ns}": ${(error as Error).message}`);
    } finally {
      feed.busy = false;
    }
  }

  #deliver(ns: string, entries: WireEntry[]): void {
    for (const listener of this.#listeners.get(ns) ?? []) listener(entries);
  }
}
