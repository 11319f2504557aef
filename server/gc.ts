// Chunk garbage collection: removes chunks and manifests no live file version needs, never one that is needed.
import type { ChunkStore } from "./chunk_store.ts";
import type { EntryRecord, MetadataStore } from "./metadata.ts";

/** What a collection found and removed. */
export interface GcReport {
  liveManifests: number;
  liveChunks: number;
  removedChunks: number;
  removedManifests: number;
  removedRefs: number;
}

/**
 * Mark and sweep. Live = every chunk of every manifest a live entry of any namespace points at, plus chunks
 * uploaded for commits not yet made (pending references that have not expired). Everything else in the chunk
 * store is removed, as are unreferenced manifests and expired pending references. Runs under the store's
 * exclusive lock, so no upload or commit interleaves.
 */
export function collectGarbage(
  store: MetadataStore,
  chunks: ChunkStore,
  now = Date.now(),
): Promise<GcReport> {
  return store.gcLock.exclusive(async () => {
    await store.settlePending();
    const kv = store.kv;
    const liveManifests = new Set<string>();
    for await (const entry of kv.list<EntryRecord>({ prefix: ["e"] }, { batchSize: 1000 })) {
      if (entry.value.kind === "file") liveManifests.add(entry.value.hash);
    }
    const live = new Set<string>();
    for (const hash of liveManifests) {
      const rows = await store.getManifest(hash);
      if (!rows) throw new Error(`Manifest ${hash} of a live file is missing: refusing to collect`);
      for (const row of rows) live.add(row.id);
    }
    let removedRefs = 0;
    // Uploads for commits not yet made stay alive until their pending reference expires.
    for await (const ref of kv.list<{ until: number }>({ prefix: ["p"] }, { batchSize: 1000 })) {
      if (ref.value.until > now) {
        live.add(ref.key[2] as string);
        continue;
      }
      await kv.delete(ref.key);
      removedRefs++;
    }
    // A committed reference whose files are all gone: the user no longer holds this chunk.
    for await (const ref of kv.list({ prefix: ["c"] }, { batchSize: 1000 })) {
      if (live.has(ref.key[2] as string)) continue;
      await kv.delete(ref.key);
      removedRefs++;
    }
    let removedChunks = 0;
    for await (const id of chunks.list()) {
      if (live.has(id)) continue;
      await chunks.delete(id);
      removedChunks++;
    }
    let removedManifests = 0;
    for await (const meta of kv.list({ prefix: ["m"] }, { batchSize: 1000 })) {
      const hash = meta.key[1] as string;
      if (liveManifests.has(hash)) continue;
      store.forgetManifest(hash);
      const atomic = kv.atomic().delete(meta.key);
      for await (const part of kv.list({ prefix: ["mp", hash] })) atomic.delete(part.key);
      await atomic.commit();
      removedManifests++;
    }
    return {
      liveManifests: liveManifests.size,
      liveChunks: live.size,
      removedChunks,
      removedManifests,
      removedRefs,
    };
  });
}
