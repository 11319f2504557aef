// Tests for the chunk store: a contract every ChunkStore must meet, run against the disk store, plus disk details.

import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../protocol/hash.ts";
import { type ChunkStore, DiskChunkStore, openChunkStore } from "./chunk_store.ts";

const encoder = new TextEncoder();

/** A chunk: its bytes and their SHA-256 id. */
function chunk(text: string): { id: string; data: Uint8Array } {
  const data = encoder.encode(text);
  return { id: sha256Hex(data), data };
}

async function collect(ids: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const id of ids) out.push(id);
  return out.sort();
}

/** Every file below `root`, as paths relative to it. */
async function filesBelow(root: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(join(root, prefix))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) out.push(...await filesBelow(root, rel));
    else out.push(rel);
  }
  return out.sort();
}

/** Runs `fn` with an opened disk store in a fresh temp folder, removed afterwards. */
async function withDiskStore(fn: (store: DiskChunkStore, root: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-chunks-" });
  try {
    const root = join(dir, "chunks");
    const store = new DiskChunkStore(root);
    await store.open();
    await fn(store, root);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The behaviour every ChunkStore implementation must have; a new backend adds one line calling this. */
function chunkStoreContract(
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
}

chunkStoreContract("DiskChunkStore", (fn) => withDiskStore((store) => fn(store)));

Deno.test("DiskChunkStore files chunks as ROOT/ab/abcd… and leaves no temp files", async () => {
  await withDiskStore(async (store, root) => {
    const ids: string[] = [];
    const puts: Promise<void>[] = [];
    for (let i = 0; i < 40; i++) {
      const c = chunk(`chunk ${i}`);
      ids.push(c.id);
      puts.push(store.put(c.id, c.data));
    }
    await Promise.all(puts);
    assert.deepEqual(await filesBelow(root), ids.map((id) => `${id.slice(0, 2)}/${id}`).sort());
  });
});

Deno.test("DiskChunkStore.open() removes stale temp files and keeps chunks", async () => {
  await withDiskStore(async (store, root) => {
    const a = chunk("kept");
    await store.put(a.id, a.data);
    const stale = join(root, a.id.slice(0, 2), `${a.id}.1234.0.tmp`);
    const otherStale = join(root, "ff", `${"f".repeat(64)}.99.7.tmp`);
    await Deno.mkdir(join(root, "ff"), { recursive: true });
    await Deno.writeFile(stale, encoder.encode("half a chu"));
    await Deno.writeFile(otherStale, encoder.encode("x"));
    assert.deepEqual(await collect(store.list()), [a.id], "temp files are never listed as chunks");
    const reopened = new DiskChunkStore(root);
    await reopened.open();
    assert.deepEqual(await filesBelow(root), [`${a.id.slice(0, 2)}/${a.id}`]);
    assert.deepEqual(await reopened.get(a.id), a.data);
  });
});

Deno.test("DiskChunkStore.open() creates a missing root, and list() ignores stray files", async () => {
  await withDiskStore(async (store, root) => {
    await Deno.writeTextFile(join(root, "README"), "not a chunk");
    await Deno.mkdir(join(root, "ab"));
    await Deno.writeTextFile(join(root, "ab", "ABCDEF"), "not a chunk either");
    assert.deepEqual(await collect(store.list()), []);
    const nested = new DiskChunkStore(join(root, "deeper", "still"));
    await nested.open();
    assert.ok((await Deno.stat(join(root, "deeper", "still"))).isDirectory);
  });
});

Deno.test("DiskChunkStore: a damaged copy (as after a crash before sync) is replaced by a later put", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-chunks-" });
  try {
    const store = new DiskChunkStore(dir);
    await store.open();
    const data = new TextEncoder().encode("the real bytes");
    const id = sha256Hex(data);
    await store.put(id, data);
    await Deno.writeFile(`${dir}/${id.slice(0, 2)}/${id}`, new Uint8Array(3));
    await store.put(id, data);
    assert.deepEqual(await store.get(id), data);
    await store.sync([id]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openChunkStore() opens a folder given as a path or a file: URL", async () => {
  const root = await Deno.makeTempDir({ prefix: "filesync-chunks-" });
  try {
    const { id, data } = chunk("by configuration");
    const byPath = await openChunkStore(join(root, "a b"));
    await byPath.put(id, data);
    const byUrl = await openChunkStore(new URL(`file://${join(root, "a b")}`).href);
    assert.deepEqual(await byUrl.get(id), data, "the same folder, spaces escaped in the URL");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("openChunkStore() refuses an unknown scheme with a TypeError naming the supported ones", async () => {
  await assert.rejects(openChunkStore("s3://bucket/x"), (error: Error) => {
    assert.ok(error instanceof TypeError);
    assert.match(
      error.message,
      /Unsupported chunk store "s3:\/\/bucket\/x": use a folder path or a file: URL/,
    );
    return true;
  });
  await assert.rejects(openChunkStore(""), TypeError);
});
