// The garbage collection lock across server processes on one PostgreSQL database (an advisory lock).
import type { Sql, TransactionSql } from "postgres";
import { SharedExclusiveLock } from "./gc_lock.ts";

/** Advisory lock key: garbage collection holds it alone, commits hold it shared (in their transaction). */
const GC_LOCK = 0x46530003;

/**
 * The in-process lock, plus the database's: `exclusive` also holds the advisory lock on a reserved connection,
 * so a commit through any process (which takes it shared with {@linkcode sharedInTransaction}) waits while
 * garbage collection runs anywhere. Uploads still share only the in-process lock (see the README's notes on
 * several nodes).
 */
export class PgGcLock extends SharedExclusiveLock {
  readonly #sql: Sql;

  /** Uses connections of `sql`. */
  constructor(sql: Sql) {
    super();
    this.#sql = sql;
  }

  /** Runs `fn` holding the lock alone, in this process and across every process on the database. */
  override exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return super.exclusive(async () => {
      const reserved = await this.#sql.reserve();
      try {
        await reserved`select pg_advisory_lock(${GC_LOCK})`;
        try {
          return await fn();
        } finally {
          await reserved`select pg_advisory_unlock(${GC_LOCK})`;
        }
      } finally {
        reserved.release();
      }
    });
  }

  /**
   * Takes the database lock shared until the transaction ends. Take it before any other lock of the
   * transaction: garbage collection takes namespace locks while it holds this one.
   */
  async sharedInTransaction(tx: TransactionSql): Promise<void> {
    await tx`select pg_advisory_xact_lock_shared(${GC_LOCK})`;
  }
}
