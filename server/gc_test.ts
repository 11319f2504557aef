import assert from "node:assert/strict";
import { join } from "node:path";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { encodeRows } from "../protocol/messages.ts";
import { DiskChunkStore } from "./chunk_store.ts";
import { collectGarbage } from "./gc.ts";
import { MetadataStore } from "./metadata.ts";

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "filesync-gc-" });
  let clock = 1_000_000;
  const store = await MetadataStore.open(join(dir, "kv"), { now: () => clock });
  const chunks = new DiskChunkStore(join(dir, "chunks"));
  await chunks.open();
  const bytes = (text: string) => new TextEncoder().encode(text);
  const put = async (text: string) => {
    const data = bytes(text);
    const id = sha256Hex(data);
    await chunks.put(id, data);
    return { id, size: data.length };
  };
  return {
    dir,
    store,
    chunks,
    put,
    advance: (ms: number) => (clock += ms),
    now: () => clock,
    async cleanup() {
      store.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function stored(chunks: DiskChunkStore): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const id of chunks.list()) ids.add(id);
  return ids;
}

Deno.test("collectGarbage() keeps chunks of live files and fresh uploads, removes the rest", async () => {
  const t = await setup();
  try {
    const a = await t.put("chunk a");
    const b = await t.put("chunk b");
    const pending = await t.put("uploaded, not committed yet");
    await t.put("nobody references me");
    const expired = await t.put("uploaded long ago, never committed");
    await t.store.addPendingChunk("alice", expired.id);
    t.advance(25 * 3600_000);
    await t.store.addPendingChunk("alice", pending.id);
    const hash = fileHashOfChunks([a.id, b.id]);
    const { results } = await t.store.commit(
      "alice",
      "laptop",
      [{
        op: "upload",
        path: "doc.txt",
        baseRev: 0,
        size: a.size + b.size,
        mtime: 1,
        hash,
        rows: { offset: 0, count: 2 },
      }],
      encodeRows([a, b]),
      () => Promise.resolve([]),
    );
    assert.equal(results[0].ok, true);

    const report = await collectGarbage(t.store, t.chunks, t.now());
    assert.deepEqual(await stored(t.chunks), new Set([a.id, b.id, pending.id]));
    assert.equal(report.removedChunks, 2);
    assert.ok(await t.store.getManifest(hash), "manifest of a live file is kept");
  } finally {
    await t.cleanup();
  }
});

Deno.test("collectGarbage() removes the chunks and manifest of a deleted file once no version needs them", async () => {
  const t = await setup();
  try {
    const a = await t.put("only in the deleted file");
    const shared = await t.put("also in a file that stays");
    const check = () => Promise.resolve([]);
    const upload = (path: string, rows: { id: string; size: number }[]) => ({
      op: "upload" as const,
      path,
      baseRev: 0,
      size: rows.reduce((n, r) => n + r.size, 0),
      mtime: 1,
      hash: fileHashOfChunks(rows.map((r) => r.id)),
      rows: { offset: 0, count: rows.length },
    });
    await t.store.commit(
      "alice",
      "laptop",
      [upload("gone.txt", [a, shared])],
      encodeRows([a, shared]),
      check,
    );
    await t.store.commit("alice", "laptop", [upload("stays.txt", [shared])], encodeRows([shared]), check);
    const gone = await t.store.getEntry("alice", "gone.txt");
    const { results } = await t.store.commit(
      "alice",
      "laptop",
      [
        { op: "delete", path: "gone.txt", kind: "file", baseRev: gone!.rev },
      ],
      new Uint8Array(),
      check,
    );
    assert.equal(results[0].ok, true);

    await collectGarbage(t.store, t.chunks, t.now());
    assert.deepEqual(await stored(t.chunks), new Set([shared.id]));
    assert.equal(await t.store.getManifest(gone!.hash), null);
    assert.deepEqual([...await t.store.referencedChunks("alice", [a.id, shared.id])], [shared.id]);
  } finally {
    await t.cleanup();
  }
});
