// The garbage collection lock across server processes on one PostgreSQL database (an advisory lock).
import type { ReservedSql, Sql } from "postgres";
import { SharedExclusiveLock } from "./gc_lock.ts";

/** Advisory lock key: garbage collection holds it alone, each node's uploads and commits hold it shared. */
export const GC_LOCK = 0x46530003;

/**
 * The in-process lock, plus the database's. A node holds the advisory lock shared, on a connection reserved
 * while it has shared holders (uploads and commits), and a collection holds it alone, so no upload or commit of
 * any node interleaves with a collection anywhere. A collection waiting for other nodes' holders is not starved:
 * `onCollect` lets the server tell the other nodes, which {@linkcode SharedExclusiveLock.pause} (no new holder
 * until theirs are done; new ones then queue behind the collection in PostgreSQL). If a node's reserved
 * connection drops while it holds the lock, PostgreSQL releases it: the holder's next query fails with it.
 */
export class PgGcLock extends SharedExclusiveLock {
  readonly #sql: Sql;
  #holders = 0;
  /** The connection holding the shared lock while there are holders. */
  #reserved: ReservedSql | null = null;
  /** Taking and giving back the shared lock, in order. */
  #chain: Promise<void> = Promise.resolve();
  /** The step that took the shared lock for the current holders (they wait for it, and fail with it). */
  #taken: Promise<void> = Promise.resolve();
  /** Called when this node is about to collect (the server tells the other nodes to pause). */
  onCollect: () => void = () => {};
  /** Called when this node's collection ended (the other nodes forget what they cached about stored chunks). */
  onCollected: () => void = () => {};

  /** Uses connections of `sql`. */
  constructor(sql: Sql) {
    super();
    this.#sql = sql;
  }

  #step(step: () => Promise<void>): Promise<void> {
    const run = this.#chain.then(step);
    this.#chain = run.catch(() => {});
    return run;
  }

  /** Runs `fn` holding the lock shared, in this process and (for the node) in the database. */
  override shared<T>(fn: () => Promise<T>): Promise<T> {
    return super.shared(async () => {
      if (this.#holders++ === 0) {
        this.#taken = this.#step(async () => {
          const reserved = await this.#sql.reserve();
          try {
            await reserved`select pg_advisory_lock_shared(${GC_LOCK})`;
          } catch (error) {
            reserved.release();
            throw error;
          }
          this.#reserved = reserved;
        });
      }
      try {
        await this.#taken;
        return await fn();
      } finally {
        if (--this.#holders === 0) {
          void this.#step(async () => {
            const reserved = this.#reserved;
            this.#reserved = null;
            if (!reserved) return;
            try {
              await reserved`select pg_advisory_unlock_shared(${GC_LOCK})`;
            } finally {
              reserved.release();
            }
          }).catch(() => {});
        }
      }
    });
  }

  /** Runs `fn` holding the lock alone, in this process and across every process on the database. */
  override exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return super.exclusive(async () => {
      // This node's holders are done (the in-process lock): its shared lock is given back or being given back.
      await this.#chain;
      this.onCollect();
      const reserved = await this.#sql.reserve();
      try {
        await reserved`select pg_advisory_lock(${GC_LOCK})`;
        try {
          return await fn();
        } finally {
          await reserved`select pg_advisory_unlock(${GC_LOCK})`;
          this.onCollected();
        }
      } finally {
        reserved.release();
      }
    });
  }

  /** Resolves once the shared lock taken for the last holders is given back (call before closing the pool). */
  async settled(): Promise<void> {
    await this.#chain;
  }
}
