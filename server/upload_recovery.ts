// At start: chunks uploaded before a crash (pending, never synced by the process that wrote them) made durable.
import type { ChunkStore } from "./chunk_store.ts";
import type { MetadataStore } from "./metadata_store.ts";

/**
 * Syncs every stored chunk that has a pending reference, so a commit that later refers to one (its sync()
 * passes over chunks an earlier process wrote) never reports committed what a power loss could still take.
 * Returns how many chunks were synced; pending references whose chunk is gone are passed over (the commit
 * that names them is refused as missing chunks).
 */
export async function syncEarlierUploads(metadata: MetadataStore, chunks: ChunkStore): Promise<number> {
  const ids = new Set<string>();
  for await (const ref of metadata.listChunkRefs({ kind: "pending" })) ids.add(ref.id);
  const stored: string[] = [];
  for (const id of ids) if (await chunks.size(id) !== null) stored.push(id);
  await chunks.sync(stored, { earlier: true });
  return stored.length;
}
