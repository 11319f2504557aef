// The garbage-collection lock across nodes: the in-process lock plus a PostgreSQL advisory lock.
import type { ReservedSql, Sql } from "postgres";
import { SharedExclusiveLock } from "./gc_lock.ts";

/** The advisory lock key of garbage collection (one per database). */
export const GC_ADVISORY_KEY = 0x46530003;

/**
 * Uploads and commits of every node share it; one node's garbage collection holds it alone. A node holds the
 * advisory lock shared, on one connection of its own, while it has shared holders, and a collection takes it
 * exclusive, so no upload or commit of any node interleaves with it. A collection waiting on other nodes'
 * holders is not starved: `onCollect` tells the other nodes, which {@linkcode SharedExclusiveLock.pause} (no
 * new holder until theirs are done; new ones then queue behind the collection in PostgreSQL).
 */
export class PgGcLock extends SharedExclusiveLock {
  #sql: Sql;
  #conn: Promise<ReservedSql> | null = null;
  /** Advisory lock statements, in order, on the one connection. */
  #chain: Promise<unknown> = Promise.resolve();
  #holders = 0;
  /** Called when this node is about to collect (the server tells the other nodes to pause). */
  onCollect: () => void = () => {};
  /** Called when this node's collection ended (the other nodes forget what they cached about stored chunks). */
  onCollected: () => void = () => {};

  /** A lock on the database `sql` connects to. */
  constructor(sql: Sql) {
    super();
    this.#sql = sql;
  }

  #run(statement: (c: ReservedSql) => Promise<unknown>): Promise<unknown> {
    this.#conn ??= this.#sql.reserve();
    const step = this.#chain.then(async () => await statement(await this.#conn!));
    this.#chain = step.catch(() => {});
    return step;
  }

  override shared<T>(fn: () => Promise<T>): Promise<T> {
    return super.shared(async () => {
      if (this.#holders++ === 0) this.#run((c) => c`select pg_advisory_lock_shared(${GC_ADVISORY_KEY})`);
      try {
        await this.#chain;
        return await fn();
      } finally {
        if (--this.#holders === 0) this.#run((c) => c`select pg_advisory_unlock_shared(${GC_ADVISORY_KEY})`);
      }
    });
  }

  override exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return super.exclusive(async () => {
      this.onCollect();
      await this.#run((c) => c`select pg_advisory_lock(${GC_ADVISORY_KEY})`);
      try {
        return await fn();
      } finally {
        await this.#run((c) => c`select pg_advisory_unlock(${GC_ADVISORY_KEY})`);
        this.onCollected();
      }
    });
  }

  /** Gives the connection back (its advisory locks go with it). */
  async release(): Promise<void> {
    await this.#chain;
    if (this.#conn) (await this.#conn).release();
    this.#conn = null;
  }
}
