// Tests for syncEarlierUploads: chunks uploaded before a server crash are made durable before any commit.

import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../protocol/hash.ts";
import { DiskChunkStore } from "./chunk_store.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
import { syncEarlierUploads } from "./upload_recovery.ts";

/** A disk store that records which chunk files it fsyncs. */
class RecordingStore extends DiskChunkStore {
  synced: string[] = [];
  protected override async syncFile(path: string): Promise<void> {
    this.synced.push(path);
    await super.syncFile(path);
  }
}

Deno.test("a chunk uploaded (not committed) before a crash is fsynced by the next process at start", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const data = new TextEncoder().encode("uploaded just before the crash");
    const id = sha256Hex(data);
    const other = new TextEncoder().encode("uploaded and committed long ago");
    // The process that crashed: stored the chunk and its pending reference, never synced the chunk.
    const before = new DiskChunkStore(join(dir, "chunks"));
    await before.open();
    await before.put(id, data);
    await before.put(sha256Hex(other), other);
    const kv = await KvMetadataStore.open(join(dir, "metadata.kv"));
    try {
      await kv.addPendingChunk("alice", id);
      await kv.settlePending();
      // The next process: its own sync() only knows chunks it wrote itself.
      const after = new RecordingStore(join(dir, "chunks"));
      await after.open();
      await after.sync([id]);
      assert.equal(after.synced.length, 0, "a plain sync() passes over chunks of an earlier process");
      const count = await syncEarlierUploads(kv, after);
      assert.equal(count, 1);
      assert.equal(after.synced.length, 1);
      assert.ok(after.synced[0].endsWith(id), `${after.synced[0]} is the chunk's file`);
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("syncEarlierUploads passes over a pending reference whose chunk file is gone", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const kv = await KvMetadataStore.open(join(dir, "metadata.kv"));
    try {
      await kv.addPendingChunk("alice", sha256Hex(new Uint8Array([1])));
      await kv.settlePending();
      const store = new RecordingStore(join(dir, "chunks"));
      await store.open();
      assert.equal(await syncEarlierUploads(kv, store), 0);
      assert.equal(store.synced.length, 0);
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
