// Tests for garbage collection: what live files, kept versions, trash items and pending uploads keep alive.
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../protocol/hash.ts";
import type { ChunkRow } from "../protocol/messages.ts";
import { ChunkCipher } from "./chunk_cipher.ts";
import { DiskChunkStore } from "./chunk_store.ts";
import { collectGarbage } from "./gc.ts";
import { accepted, Batch, NS } from "./metadata_contract.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
import type { RetentionPolicy } from "./metadata_store.ts";

const DAY = 24 * 3600_000;

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "filesync-gc-" });
  let clock = 1_000_000;
  const store = await KvMetadataStore.open(join(dir, "kv"), { now: () => clock });
  // Encrypted, as a server's: GC sees chunk ids through list() although the files are named otherwise.
  const chunks = new DiskChunkStore(join(dir, "chunks"), {
    cipher: new ChunkCipher(new Uint8Array(32).fill(9)),
  });
  await chunks.open();
  const put = async (text: string): Promise<ChunkRow> => {
    const data = new TextEncoder().encode(text);
    const id = sha256Hex(data);
    await chunks.put(id, data);
    return { id, size: data.length };
  };
  return {
    store,
    chunks,
    put,
    advance: (ms: number) => (clock += ms),
    gc: (retention: RetentionPolicy = { keepDays: 30 }) =>
      collectGarbage(store, chunks, { now: clock, retention }),
    rev: async (path: string) => (await store.getEntry(NS, path))!.rev,
    async stored(): Promise<Set<string>> {
      const ids = new Set<string>();
      for await (const id of chunks.list()) ids.add(id);
      return ids;
    },
    async [Symbol.asyncDispose]() {
      store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("collectGarbage() keeps chunks of live files and fresh uploads, removes the rest", async () => {
  await using t = await setup();
  const a = await t.put("chunk a");
  const b = await t.put("chunk b");
  const pending = await t.put("uploaded, not committed yet");
  await t.put("nobody references me");
  const expired = await t.put("uploaded long ago, never committed");
  await t.store.addPendingChunk(NS, expired.id);
  t.advance(25 * 3600_000);
  await t.store.addPendingChunk(NS, pending.id);
  const { results } = await new Batch().upload("doc.txt", [a, b]).commit(t.store);
  const [entry] = accepted(results[0]);
  const report = await t.gc();
  assert.deepEqual(await t.stored(), new Set([a.id, b.id, pending.id]));
  assert.equal(report.removedChunks, 2);
  assert.ok(await t.store.getManifest(entry.hash), "manifest of a live file is kept");
});

Deno.test("collectGarbage() keeps a deleted file's chunks while its trash item is kept, then removes them", async () => {
  await using t = await setup();
  const a = await t.put("only in the deleted file");
  const shared = await t.put("also in a file that stays");
  await new Batch().upload("gone.txt", [a, shared]).upload("stays.txt", [shared]).commit(t.store);
  const gone = (await t.store.getEntry(NS, "gone.txt"))!;
  accepted((await new Batch().delete("gone.txt", gone.rev).commit(t.store)).results[0]);
  t.advance(29 * DAY);
  let report = await t.gc();
  assert.deepEqual(await t.stored(), new Set([a.id, shared.id]), "kept 29 days after the delete");
  assert.equal((await t.store.listTrash(NS)).length, 1);
  assert.ok(await t.store.getManifest(gone.hash));
  t.advance(1 * DAY);
  report = await t.gc();
  assert.equal(report.removedTrash, 1);
  assert.equal(report.removedVersions, 1);
  assert.deepEqual(await t.stored(), new Set([shared.id]));
  assert.equal(await t.store.getManifest(gone.hash), null);
  assert.deepEqual(await t.store.listTrash(NS), []);
  assert.deepEqual([...await t.store.referencedChunks(NS, [a.id, shared.id])], [shared.id]);
});

Deno.test("collectGarbage() keeps a replaced version's chunks for keepDays after it was replaced", async () => {
  await using t = await setup();
  const v1 = await t.put("version one");
  const v2 = await t.put("version two");
  await new Batch().upload("doc.txt", [v1]).commit(t.store);
  t.advance(40 * DAY); // age of the version itself does not count, only the time since it was replaced
  await new Batch().upload("doc.txt", [v2], await t.rev("doc.txt")).commit(t.store);
  t.advance(10 * DAY);
  await t.gc();
  assert.deepEqual(await t.stored(), new Set([v1.id, v2.id]));
  assert.equal((await t.store.listVersions(NS, "doc.txt")).length, 1);
  await t.gc({ keepDays: 10 });
  assert.deepEqual(await t.stored(), new Set([v2.id]), "a shorter retention drops it");
  assert.deepEqual(await t.store.listVersions(NS, "doc.txt"), []);
});

Deno.test("collectGarbage() with keepVersions keeps the newest earlier versions and shares unchanged chunks", async () => {
  await using t = await setup();
  const common = await t.put("unchanged part");
  const parts = [await t.put("v1"), await t.put("v2"), await t.put("v3"), await t.put("v4")];
  for (const part of parts) {
    const base = (await t.store.getEntry(NS, "f"))?.rev ?? 0;
    accepted((await new Batch().upload("f", [common, part], base).commit(t.store)).results[0]);
    t.advance(1000);
  }
  assert.equal((await t.store.listVersions(NS, "f")).length, 3);
  const report = await t.gc({ keepDays: 30, keepVersions: 2 });
  assert.equal(report.removedVersions, 1);
  assert.deepEqual(await t.stored(), new Set([common.id, parts[1].id, parts[2].id, parts[3].id]));
  assert.deepEqual((await t.store.listVersions(NS, "f")).map((v) => v.rev), [3, 2]);
});

Deno.test("collectGarbage() keeps a trash item's version even when keepVersions is 0", async () => {
  await using t = await setup();
  const old = await t.put("old");
  const last = await t.put("last");
  await new Batch().upload("f", [old]).commit(t.store);
  await new Batch().upload("f", [last], await t.rev("f")).commit(t.store);
  await new Batch().delete("f", await t.rev("f")).commit(t.store);
  await t.gc({ keepDays: 30, keepVersions: 0 });
  assert.deepEqual(await t.stored(), new Set([last.id]), "the deleted content stays restorable");
  assert.deepEqual((await t.store.listVersions(NS, "f")).map((v) => v.rev), [2]);
});

Deno.test("collectGarbage() keeps a pending upload's chunk even when the version that used it expired", async () => {
  await using t = await setup();
  const a = await t.put("a");
  const b = await t.put("b");
  await new Batch().upload("f", [a]).commit(t.store);
  await new Batch().upload("f", [b], await t.rev("f")).commit(t.store);
  t.advance(31 * DAY);
  await t.store.addPendingChunk(NS, a.id); // a device uploads the same content again
  const report = await t.gc();
  assert.equal(report.removedVersions, 1);
  assert.deepEqual(await t.stored(), new Set([a.id, b.id]));
  assert.equal((await t.store.referencedChunks(NS, [a.id])).size, 1);
});
