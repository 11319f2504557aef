// Garbage collection: drops expired history, then chunks and manifests nothing kept needs any more.
import type { ChunkStore } from "./chunk_store.ts";
import type { ChunkRef, MetadataStore, RetentionPolicy } from "./metadata_store.ts";
import { compactJournals } from "./journal_compaction.ts";
import { DEFAULT_RETENTION, expireHistory } from "./retention.ts";

/** What a collection found and removed. */
export interface GcReport {
  liveManifests: number;
  liveChunks: number;
  removedChunks: number;
  removedManifests: number;
  removedRefs: number;
  removedVersions: number;
  removedTrash: number;
  /** Journal entries older than the retention that were compacted. */
  compactedEntries: number;
}

/** Options of {@linkcode collectGarbage}. */
export interface GcOptions {
  /** The clock. @default Date.now() */
  now?: number;
  /** What history to keep. @default the policy stored by the server, else 30 days */
  retention?: RetentionPolicy;
}

/**
 * Mark and sweep. First expired versions and trash items are dropped (by the retention rules) and journal
 * entries older than the retention are compacted. Live = every
 * chunk of every manifest that a live entry or a kept version of any namespace points at, plus chunks uploaded
 * for commits not yet made (pending references that have not expired). Everything else in the chunk store is
 * removed, as are unreferenced manifests and stale references. Runs under the store's exclusive lock, so no
 * upload or commit interleaves. Goes through the {@linkcode MetadataStore} interface only.
 */
export function collectGarbage(
  store: MetadataStore,
  chunks: ChunkStore,
  options: GcOptions = {},
): Promise<GcReport> {
  const now = options.now ?? Date.now();
  return store.gcLock.exclusive(async () => {
    const retention = options.retention ?? await store.getRetention() ?? DEFAULT_RETENTION;
    await store.settlePending();
    const liveManifests = new Set<string>();
    let removedVersions = 0;
    let removedTrash = 0;
    for await (const ns of store.listNamespaces()) {
      for await (const entry of store.listEntries(ns)) {
        if (entry.kind === "file") liveManifests.add(entry.hash);
      }
      const versions = [];
      for await (const version of store.listAllVersions(ns)) versions.push(version);
      const trash = await store.listTrash(ns);
      const drop = expireHistory(versions, trash, retention, now);
      if (drop.versions.length > 0 || drop.trash.length > 0) await store.dropHistory(ns, drop);
      removedVersions += drop.versions.length;
      removedTrash += drop.trash.length;
      const dropped = new Set(drop.versions);
      for (const version of versions) if (!dropped.has(version)) liveManifests.add(version.hash);
    }
    const compactedEntries = await compactJournals(store, { now, keepDays: retention.keepDays });
    const live = new Set<string>();
    for (const hash of liveManifests) {
      const rows = await store.getManifest(hash);
      if (!rows) throw new Error(`Manifest ${hash} of a kept file is missing: refusing to collect`);
      for (const row of rows) live.add(row.id);
    }
    // Uploads for commits not yet made stay alive until their pending reference expires; a committed
    // reference whose files and versions are all gone means the user no longer holds this chunk.
    const stale: ChunkRef[] = [];
    for await (const ref of store.listChunkRefs()) {
      if (ref.kind === "pending" && (ref.until ?? 0) > now) live.add(ref.id);
      else if (ref.kind === "pending" || !live.has(ref.id)) stale.push(ref);
    }
    // Committed references are listed after pending ones: a pending upload keeps its chunk's committed refs.
    const removable = stale.filter((r) => r.kind === "pending" || !live.has(r.id));
    await store.deleteChunkRefs(removable);
    let removedChunks = 0;
    for await (const id of chunks.list()) {
      if (live.has(id)) continue;
      await chunks.delete(id);
      removedChunks++;
    }
    let removedManifests = 0;
    const deadManifests: string[] = [];
    for await (const hash of store.listManifests()) if (!liveManifests.has(hash)) deadManifests.push(hash);
    for (const hash of deadManifests) {
      await store.deleteManifest(hash);
      removedManifests++;
    }
    return {
      liveManifests: liveManifests.size,
      liveChunks: live.size,
      removedChunks,
      removedManifests,
      removedRefs: removable.length,
      removedVersions,
      removedTrash,
      compactedEntries,
    };
  });
}
