// The metadata contract on a real Deno KV file, plus what is particular to it: group commit, crash safety, repair.
import assert from "node:assert/strict";
import { join } from "node:path";
import { accepted, Batch, chunk, chunks, metadataContract, NS } from "./metadata_contract.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
import type { EntryRecord } from "./metadata_store.ts";
import type { WireEntry } from "../protocol/messages.ts";

metadataContract("KvMetadataStore", async (options) => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-metadata-" });
  const store = await KvMetadataStore.open(join(dir, "metadata.kv"), options);
  return {
    store,
    async cleanup() {
      store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
});

/** Runs `fn` with a KV store on a fresh file; the path of that file is passed too. */
async function withKvStore(
  fn: (store: KvMetadataStore, path: string) => Promise<void>,
  options: ConstructorParameters<typeof KvMetadataStore>[1] = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-metadata-" });
  const path = join(dir, "metadata.kv");
  const store = await KvMetadataStore.open(path, options);
  try {
    await fn(store, path);
  } finally {
    try {
      store.close();
    } catch { /* the test closed it */ }
    await Deno.remove(dir, { recursive: true });
  }
}

/** Checks that counter, journal and entries agree: journal 1..seq without gaps, each entry journaled. */
async function assertConsistent(store: KvMetadataStore, ns = NS): Promise<number> {
  const seq = await store.latestSeq(ns);
  const journal: WireEntry[] = [];
  for await (const e of store.kv.list<WireEntry>({ prefix: ["j", ns] })) journal.push(e.value);
  assert.deepEqual(journal.map((e) => e.rev), Array.from({ length: seq }, (_, i) => i + 1), "journal 1..seq");
  const byRev = new Map(journal.map((e) => [e.rev, e]));
  for await (const entry of store.listEntries(ns)) {
    const event = byRev.get(entry.rev);
    assert.ok(event && event.path === entry.path && !event.deleted, `entry ${entry.path} is journaled`);
  }
  return seq;
}

Deno.test("KvMetadataStore: a PUT's pending reference lasts a day from the injected clock and never replaces a committed one", async () => {
  let now = 1_000_000;
  await withKvStore(async (store) => {
    const ids = chunks("p", 3).map((r) => r.id);
    await store.addPendingChunk(NS, ids[0]);
    const row = { id: ids[2], size: 100 };
    await new Batch().upload("f", [row]).commit(store);
    now += 1000;
    await store.addPendingChunk(NS, ids[2]);
    assert.ok((await store.kv.get(["c", NS, ids[2]])).versionstamp, "committed reference stays");
    const pending = await store.kv.get<{ until: number }>(["p", NS, ids[0]]);
    assert.equal(pending.value?.until, 1_000_000 + 24 * 3600 * 1000);
  }, { now: () => now });
});

Deno.test("KvMetadataStore: a commit larger than one atomic stays consistent when it stops between any two atomics", async () => {
  let failAt = -1;
  let atomics = 0;
  await withKvStore(async (store) => {
    // 700 files in a new folder: about 1,400 mutations, so at least two atomics.
    const batch = () => {
      const b = new Batch();
      for (let i = 0; i < 700; i++) b.upload(`big/${failAt}/f${i}.txt`, [chunk(`f${i}`)]);
      return b;
    };
    failAt = Number.MAX_SAFE_INTEGER;
    accepted((await batch().commit(store)).results[0]);
    assert.ok(atomics >= 2, `the commit took ${atomics} atomics`);
    let seq = await assertConsistent(store);
    const total = atomics;
    for (failAt = 1; failAt < total; failAt++) {
      atomics = 0;
      await assert.rejects(batch().commit(store), /injected crash/);
      const after = await assertConsistent(store);
      assert.ok(after > seq, `atomic ${failAt}: the first part is visible`);
      seq = after;
      assert.deepEqual(await store.repair(), [], "nothing to repair");
    }
  }, {
    beforeAtomic: (index) => {
      atomics++;
      if (index === failAt) throw new Error("injected crash");
    },
  });
});

Deno.test("KvMetadataStore: repair() removes journal entries beyond the counter and journals stray entries again", async () => {
  await withKvStore(async (store, path) => {
    await new Batch().upload("a.txt", [chunk("a")]).commit(store);
    assert.equal(await store.latestSeq(NS), 1);
    // What older code left after a kill between atomics: entries and journal beyond the counter.
    const stray: EntryRecord = {
      path: "b.txt",
      kind: "file",
      hash: "h",
      size: 1,
      mtime: 1,
      rev: 2,
      device: "d",
    };
    await store.kv.set(["e", NS, "", "b.txt"], stray);
    await store.kv.set(["j", NS, 2], { ...stray });
    await store.kv.set(["j", NS, 3], { ...stray, path: "c.txt", rev: 3, deleted: true });
    store.close();
    const reopened = await KvMetadataStore.open(path);
    try {
      const lines = await reopened.repair();
      assert.equal(lines.length, 1);
      assert.match(lines[0], /removed 2 journal entries beyond its counter \(1\), journaled 1 entries/);
      assert.equal(await assertConsistent(reopened), 2);
      const [event] = await reopened.changesSince(NS, 1, 10);
      assert.equal(event.path, "b.txt");
      assert.ok(event.tag);
      assert.deepEqual(await reopened.repair(), []);
    } finally {
      reopened.close();
    }
  });
});

Deno.test("KvMetadataStore: a user made before namespace records still owns the namespace named after it", async () => {
  await withKvStore(async (store) => {
    await store.addUser({ name: "old", salt: "s", hash: "h", created: 7 });
    await store.kv.delete(["ns", "old"]); // as a data folder written before namespace records
    const own = { id: "old", owner: "old", kind: "user", name: "old", created: 0 };
    assert.deepEqual(await store.getNamespace("old"), own);
    assert.deepEqual(await store.namespacesOf("old"), [own]);
  });
});

Deno.test("KvMetadataStore: locks survive closing and opening the KV again", async () => {
  await withKvStore(async (store, path) => {
    const lock = { path: "a", user: NS, deviceId: "d1", device: "laptop", taken: 1, expires: 2, leaseMs: 1 };
    await store.changeLock(NS, "a", () => ({ write: lock, result: null }));
    store.close();
    const again = await KvMetadataStore.open(path);
    try {
      assert.deepEqual(await again.listLocks(NS), [lock]);
    } finally {
      again.close();
    }
  });
});
