// The contract every ChunkStore meets (disk always, S3 when FILESYNC_TEST_S3 names one): put, get, list, delete.

import assert from "node:assert/strict";
import { sha256Hex } from "../protocol/hash.ts";
import type { ChunkStore } from "./chunk_store.ts";

const encoder = new TextEncoder();

/** A chunk: its bytes and their SHA-256 id. */
export function chunk(text: string): { id: string; data: Uint8Array } {
  const data = encoder.encode(text);
  return { id: sha256Hex(data), data };
}

/** The ids an iterable yields, sorted. */
export async function collect(ids: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const id of ids) out.push(id);
  return out.sort();
}

/**
 * Registers the behaviour every ChunkStore implementation must have, as tests named after `name`; `withStore`
 * runs a check with a fresh, empty, opened store and removes it afterwards.
 */
export function chunkStoreContract(
  name: string,
  withStore: (fn: (store: ChunkStore) => Promise<void>) => Promise<void>,
) {
  Deno.test(`${name}: a stored chunk can be read back, listed and deleted`, async () => {
    await withStore(async (store) => {
      const a = chunk("alpha");
      const b = chunk("beta");
      assert.equal(await store.has(a.id), false);
      assert.equal(await store.get(a.id), null);
      assert.deepEqual(await collect(store.list()), []);
      await store.put(a.id, a.data);
      await store.put(b.id, b.data);
      assert.equal(await store.has(a.id), true);
      assert.deepEqual(await store.get(a.id), a.data);
      assert.deepEqual(await collect(store.list()), [a.id, b.id].sort());
      await store.delete(a.id);
      assert.equal(await store.has(a.id), false);
      assert.equal(await store.get(a.id), null);
      assert.deepEqual(await collect(store.list()), [b.id]);
    });
  });

  Deno.test(`${name}: an empty chunk and a chunk of every byte value are stored exactly`, async () => {
    await withStore(async (store) => {
      const empty = new Uint8Array();
      const all = Uint8Array.from({ length: 256 * 64 }, (_, i) => i & 0xff);
      await store.put(sha256Hex(empty), empty);
      await store.put(sha256Hex(all), all);
      assert.deepEqual(await store.get(sha256Hex(empty)), empty);
      assert.deepEqual(await store.get(sha256Hex(all)), all);
    });
  });

  Deno.test(`${name}: size() tells a stored chunk's byte count and null for a missing one`, async () => {
    await withStore(async (store) => {
      const a = chunk("eleven char");
      const empty = new Uint8Array();
      assert.equal(await store.size(a.id), null);
      await store.put(a.id, a.data);
      await store.put(sha256Hex(empty), empty);
      assert.equal(await store.size(a.id), 11);
      assert.equal(await store.size(sha256Hex(empty)), 0);
      await store.delete(a.id);
      assert.equal(await store.size(a.id), null);
    });
  });

  Deno.test(`${name}: putting an existing chunk again keeps one copy with its bytes`, async () => {
    await withStore(async (store) => {
      const a = chunk("original");
      await store.put(a.id, a.data);
      await store.put(a.id, a.data);
      assert.deepEqual(await store.get(a.id), a.data);
      assert.deepEqual(await collect(store.list()), [a.id]);
    });
  });

  Deno.test(`${name}: concurrent puts of the same chunk all succeed and store it once`, async () => {
    await withStore(async (store) => {
      const a = chunk("same");
      await Promise.all(Array.from({ length: 8 }, () => store.put(a.id, a.data)));
      assert.deepEqual(await store.get(a.id), a.data);
      assert.deepEqual(await collect(store.list()), [a.id]);
    });
  });

  Deno.test(`${name}: deleting a missing chunk is a no-op`, async () => {
    await withStore(async (store) => {
      await store.delete(chunk("never stored").id);
      assert.deepEqual(await collect(store.list()), []);
    });
  });

  Deno.test(`${name}: list() yields the ids that were put, so GC can compare them with the ids it keeps`, async () => {
    await withStore(async (store) => {
      const all = Array.from({ length: 50 }, (_, i) => chunk(`listed ${i}`));
      await Promise.all(all.map((c) => store.put(c.id, c.data)));
      await store.sync(all.map((c) => c.id));
      assert.deepEqual(await collect(store.list()), all.map((c) => c.id).sort());
      for (const c of all.slice(0, 25)) await store.delete(c.id);
      assert.deepEqual(await collect(store.list()), all.slice(25).map((c) => c.id).sort());
    });
  });
  Deno.test(`${name}: usage() counts the stored chunks and at least their bytes`, async () => {
    await withStore(async (store) => {
      assert.ok(store.usage, "a store without usage() shows no size in server status");
      assert.deepEqual(await store.usage(), { chunks: 0, bytes: 0 });
      const all = Array.from({ length: 5 }, (_, i) => chunk(`usage ${i}`.repeat(i + 1)));
      await Promise.all(all.map((c) => store.put(c.id, c.data)));
      const usage = await store.usage();
      assert.equal(usage.chunks, 5);
      assert.ok(usage.bytes >= all.reduce((sum, c) => sum + c.data.length, 0), `${usage.bytes} bytes`);
      await store.delete(all[0].id);
      assert.equal((await store.usage()).chunks, 4);
    });
  });
}
