// PgGcLock on a real PostgreSQL (FILESYNC_TEST_POSTGRES): one node's collection and another's uploads exclude.
import assert from "node:assert/strict";
import postgres, { type Sql } from "postgres";
import { GC_LOCK, PgGcLock } from "./pg_gc_lock.ts";
import { until } from "./cluster_bus_contract.ts";
import { freshDatabase, TEST_POSTGRES } from "./pg_test_db.ts";

/** Polls until some session waits for the collection's advisory lock. */
async function someoneWaits(sql: Sql): Promise<void> {
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    const rows = await sql`select 1 from pg_locks
      where locktype = 'advisory' and objid = ${GC_LOCK} and not granted`;
    if (rows.length > 0) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error("Timed out: nobody waits for the advisory lock");
}

if (TEST_POSTGRES) {
  Deno.test("PgGcLock: a collection on one node waits for another node's upload, which then waits for it", async () => {
    await using db = await freshDatabase();
    const sql1 = postgres(db.url, { onnotice: () => {} });
    const sql2 = postgres(db.url, { onnotice: () => {} });
    const node1 = new PgGcLock(sql1);
    const node2 = new PgGcLock(sql2);
    try {
      const order: string[] = [];
      let endUpload!: () => void;
      const upload = node1.shared(async () => {
        order.push("upload");
        await new Promise<void>((r) => endUpload = r);
        order.push("upload done");
      });
      await until(() => order.length === 1, "the upload started");
      let collecting = 0;
      node2.onCollect = () => collecting++;
      let endGc!: () => void;
      const gc = node2.exclusive(async () => {
        order.push("gc");
        await new Promise<void>((r) => endGc = r);
        order.push("gc done");
      });
      await someoneWaits(sql1);
      assert.equal(collecting, 1);
      assert.deepEqual(order, ["upload"], "the collection waits for the other node's upload");
      endUpload();
      await upload;
      await until(() => order.includes("gc"), "the collection runs once the upload is done");
      // A new upload on node 1 waits for the collection.
      const second = node1.shared(() => {
        order.push("second upload");
        return Promise.resolve();
      });
      await someoneWaits(sql2);
      assert.deepEqual(order, ["upload", "upload done", "gc"]);
      endGc();
      await gc;
      await second;
      assert.deepEqual(order, ["upload", "upload done", "gc", "gc done", "second upload"]);
      // With no holder left, no node holds the advisory lock (its reserved connection went back to the pool).
      const held = async () =>
        (await sql1`select 1 from pg_locks where locktype = 'advisory' and objid = ${GC_LOCK}`).length;
      const deadline = Date.now() + 5000;
      while (await held() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(await held(), 0);
    } finally {
      await sql1.end({ timeout: 1 });
      await sql2.end({ timeout: 1 });
    }
  });
}
