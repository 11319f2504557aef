// The metadata contract on PostgreSQL (when FILESYNC_TEST_POSTGRES is set), plus two stores racing on one database.
import assert from "node:assert/strict";
import { accepted, Batch, chunk, metadataContract, NS, presentAs, refused } from "./metadata_contract.ts";
import { encodeRows } from "../protocol/messages.ts";
import { fileHashOfChunks } from "../protocol/hash.ts";
import { connectPostgres } from "./pg_connect.ts";
import { migrate } from "./pg_schema.ts";
import { PgMetadataStore } from "./metadata_pg.ts";
import { freshDatabase, TEST_POSTGRES, type TestDatabase } from "./pg_test_db.ts";

/** Polls `check` every 20 ms until it holds; fails after 10 s. */
async function until(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("Timed out waiting for the condition");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A store on a database (migrated), with a clock. */
async function storeOn(db: TestDatabase, now?: () => number): Promise<PgMetadataStore> {
  const sql = await connectPostgres(db.target);
  await migrate(sql, db.target.database);
  return new PgMetadataStore(sql, { now });
}

if (TEST_POSTGRES) {
  metadataContract("PgMetadataStore", async ({ now }) => {
    const db = await freshDatabase();
    const store = await storeOn(db, now);
    return {
      store,
      async cleanup() {
        await store.end();
        await db[Symbol.asyncDispose]();
      },
    };
  });

  Deno.test("PgMetadataStore: two stores on one database racing on one path: one commit wins, one conflicts", async () => {
    await using db = await freshDatabase();
    const [a, b] = [await storeOn(db), await storeOn(db)];
    try {
      for (let round = 0; round < 5; round++) {
        const path = `race-${round}.txt`;
        const [one, two] = await Promise.all([
          new Batch().upload(path, [chunk(`a${round}`)]).commit(a),
          new Batch().upload(path, [chunk(`b${round}`)]).commit(b),
        ]);
        const results = [one.results[0], two.results[0]];
        assert.equal(results.filter((r) => r.ok).length, 1, `round ${round}: exactly one wins`);
        refused(results.find((r) => !r.ok)!, "conflict");
      }
      assert.equal(await a.latestSeq(NS), 5);
      const journal = await b.changesSince(NS, 0, 100);
      assert.deepEqual(journal.map((e) => e.rev), [1, 2, 3, 4, 5], "one journal, no gaps, no duplicates");
    } finally {
      await a.end();
      await b.end();
    }
  });

  Deno.test("PgMetadataStore: a commit whose chunks cannot be made durable writes nothing: entries, journal, manifests, counter", async () => {
    await using db = await freshDatabase();
    const store = await storeOn(db);
    try {
      accepted((await new Batch().upload("kept.txt", [chunk("k")]).commit(store)).results[0]);
      const batch = new Batch().upload("d/new.txt", [chunk("n")]).delete("kept.txt", 1);
      await assert.rejects(
        () =>
          store.commit(NS, {
            device: "laptop",
            changes: batch.changes,
            rows: encodeRows(batch.rows),
            checkChunks: presentAs(batch.rows),
            syncChunks: () => Promise.reject(new Error("disk gone")),
          }),
        /disk gone/,
      );
      assert.equal(await store.latestSeq(NS), 1);
      assert.deepEqual((await store.changesSince(NS, 0, 10)).map((e) => e.path), ["kept.txt"]);
      assert.equal(await store.getEntry(NS, "d/new.txt"), null);
      assert.ok(await store.getEntry(NS, "kept.txt"));
      assert.equal(await store.getManifest(fileHashOfChunks([chunk("n").id])), null);
      assert.deepEqual(await store.listTrash(NS), []);
    } finally {
      await store.end();
    }
  });

  Deno.test("PgMetadataStore: a lock taken through one store stops another store's commit", async () => {
    await using db = await freshDatabase();
    const [a, b] = [await storeOn(db), await storeOn(db)];
    try {
      const [entry] = accepted((await new Batch().upload("doc.txt", [chunk("d")]).commit(a)).results[0]);
      const holder = { user: NS, deviceId: "dev-a", device: "laptop" };
      const lock = { path: "doc.txt", ...holder, taken: 1, expires: Date.now() + 60_000, leaseMs: 60_000 };
      await a.changeLock(NS, "doc.txt", () => ({ write: lock, result: null }));
      const change = new Batch().delete("doc.txt", entry.rev);
      const { results } = await b.commit(NS, {
        device: "desktop",
        changes: change.changes,
        rows: new Uint8Array(),
        checkChunks: presentAs([]),
        holder: { user: NS, deviceId: "dev-b", device: "desktop" },
      });
      refused(results[0], "locked");
    } finally {
      await a.end();
      await b.end();
    }
  });

  Deno.test("PgMetadataStore: a commit of 2,000 changes is one transaction of a few statements", async () => {
    await using db = await freshDatabase();
    const store = await storeOn(db);
    try {
      const batch = new Batch();
      for (let i = 0; i < 2000; i++) batch.upload(`big/f${i}.txt`, [chunk(`big${i}`)]);
      const started = performance.now();
      const { results } = await batch.commit(store);
      const ms = performance.now() - started;
      results.forEach((r) => accepted(r));
      assert.equal(await store.latestSeq(NS), 2001);
      // A round trip per row would take seconds; batched statements take well under one.
      assert.ok(ms < 5000, `took ${Math.round(ms)} ms`);
      const again = new Batch();
      for (let i = 0; i < 2000; i++) again.delete(`big/f${i}.txt`, i + 2);
      (await again.commit(store)).results.forEach((r) => accepted(r));
      assert.equal((await store.listTrash(NS)).length, 2000);
    } finally {
      await store.end();
    }
  });

  Deno.test("PgMetadataStore: garbage collection through one store holds off commits through another", async () => {
    await using db = await freshDatabase();
    const [a, b] = [await storeOn(db), await storeOn(db)];
    try {
      let committed = false;
      let pending: Promise<unknown> | undefined;
      await a.gcLock.exclusive(async () => {
        pending = new Batch().upload("f.txt", [chunk("f")]).commit(b).then((r) => (committed = true, r));
        // B's commit waits on the advisory lock A holds (seen in pg_locks), and writes nothing meanwhile.
        await until(async () =>
          (await a.sql`select 1 from pg_locks where locktype = 'advisory' and not granted`).length === 1
        );
        assert.equal(committed, false);
        assert.equal(await a.latestSeq(NS), 0);
      });
      await pending;
      assert.equal(await a.latestSeq(NS), 1);
    } finally {
      await a.end();
      await b.end();
    }
  });
}
