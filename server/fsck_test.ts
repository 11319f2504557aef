// Tests of fsck on a real KV store and disk chunk store: clean data passes, each kind of damage is named.
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../protocol/hash.ts";
import { ChunkCipher } from "./chunk_cipher.ts";
import { DiskChunkStore } from "./chunk_store.ts";
import { fsck, type FsckReport } from "./fsck.ts";
import { Batch, NS } from "./metadata_contract.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
import type { ChunkRow } from "./metadata_store.ts";

const encoder = new TextEncoder();

interface Fixture {
  store: KvMetadataStore;
  chunks: DiskChunkStore;
  dir: string;
  /** Rows of the current "a.txt" and of its replaced version. */
  current: ChunkRow[];
  replaced: ChunkRow[];
}

/** Stores chunks for `texts` and returns their rows. */
async function stored(chunks: DiskChunkStore, ...texts: string[]): Promise<ChunkRow[]> {
  const rows: ChunkRow[] = [];
  for (const text of texts) {
    const data = encoder.encode(text);
    const id = sha256Hex(data);
    await chunks.put(id, data);
    rows.push({ id, size: data.length });
  }
  return rows;
}

/** A store with a folder, a file edited once (so one kept version), and a deleted file in the trash. */
async function withFixture(fn: (t: Fixture) => Promise<void>, cipher?: ChunkCipher): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-fsck-" });
  const store = await KvMetadataStore.open(join(dir, "metadata.kv"));
  const chunks = new DiskChunkStore(join(dir, "chunks"), { cipher });
  await chunks.open();
  try {
    const replaced = await stored(chunks, "first part", "second part");
    const current = await stored(chunks, "first part", "edited part");
    const gone = await stored(chunks, "deleted file");
    await new Batch().upload("docs/a.txt", replaced).upload("b.txt", gone).commit(store);
    const rev = await store.latestSeq(NS);
    await new Batch().upload("docs/a.txt", current, rev - 1).delete("b.txt", rev, "file").commit(store);
    await fn({ store, chunks, dir, current, replaced });
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function messages(report: FsckReport): string {
  return report.problems.map((p) => p.message).join("\n");
}

Deno.test("fsck passes a clean store and counts what it checked", async () => {
  await withFixture(async ({ store, chunks }) => {
    const report = await fsck(store, chunks);
    assert.deepEqual(report.problems, []);
    assert.equal(report.entries, 2); // docs, docs/a.txt
    assert.ok(report.versions >= 2, `versions: ${report.versions}`); // a.txt's first version, b.txt's
    assert.equal(report.trash, 1);
    assert.equal(report.journal, await store.latestSeq(NS));
    assert.equal(report.chunks, 4);
  });
});

Deno.test("fsck names a missing chunk and a corrupt chunk", async () => {
  await withFixture(async ({ store, chunks, dir, current, replaced }) => {
    await chunks.delete(current[1].id);
    const corrupt = replaced[1].id;
    await Deno.writeTextFile(join(dir, "chunks", corrupt.slice(0, 2), corrupt), "not the content");
    const report = await fsck(store, chunks);
    const text = messages(report);
    assert.equal(report.problems.length, 2, text);
    assert.match(
      text,
      new RegExp(`chunk ${current[1].id.slice(0, 12)} is missing \\(used by alice: file "docs/a.txt"`),
    );
    assert.match(text, new RegExp(`chunk ${corrupt.slice(0, 12)} is corrupt`));
  });
});

Deno.test("fsck decrypts encrypted chunks: intact ones pass, a tampered or truncated one is named as damaged", async () => {
  const cipher = new ChunkCipher(Uint8Array.from({ length: 32 }, (_, i) => i * 7));
  await withFixture(async ({ store, chunks, dir, current, replaced }) => {
    assert.deepEqual((await fsck(store, chunks)).problems, []);
    const path = (id: string) => join(dir, "chunks", cipher.nameOf(id).slice(0, 2), cipher.nameOf(id));
    const tampered = current[1].id;
    const bytes = await Deno.readFile(path(tampered));
    bytes[bytes.length - 1] ^= 0x80;
    await Deno.writeFile(path(tampered), bytes);
    const truncated = replaced[1].id;
    await Deno.truncate(path(truncated), 30);
    const report = await fsck(store, chunks);
    const text = messages(report);
    assert.equal(report.problems.length, 2, text);
    assert.match(
      text,
      new RegExp(`chunk ${tampered.slice(0, 12)} is damaged: it does not decrypt \\(authentication failed`),
    );
    assert.match(
      text,
      new RegExp(`chunk ${truncated.slice(0, 12)} is damaged: it does not decrypt \\(30 bytes`),
    );
  }, cipher);
});

Deno.test("fsck names a missing manifest", async () => {
  await withFixture(async ({ store, chunks }) => {
    const entry = (await store.getEntry(NS, "docs/a.txt"))!;
    await store.deleteManifest(entry.hash);
    const report = await fsck(store, chunks);
    assert.match(
      messages(report),
      /alice: file "docs\/a\.txt" \(rev \d+\): manifest [0-9a-f]{12} is missing/,
    );
    assert.ok(report.problems.every((p) => p.kind === "manifest"), messages(report));
  });
});

Deno.test("fsck names a stray journal entry beyond the counter and a gap in the journal", async () => {
  await withFixture(async ({ store, chunks }) => {
    const latest = await store.latestSeq(NS);
    const [last] = await store.changesSince(NS, latest - 1, 1);
    await store.kv.set(["j", NS, latest + 1], { ...last, rev: latest + 1, path: "stray.txt" });
    let report = await fsck(store, chunks);
    assert.match(
      messages(report),
      new RegExp(`journal entry ${latest + 1} \\("stray.txt"\\) is beyond the counter ${latest}`),
    );
    await store.kv.delete(["j", NS, latest + 1]);
    await store.kv.delete(["j", NS, 2]);
    report = await fsck(store, chunks);
    assert.match(messages(report), /journal entries 2\.\.2 are missing/);
  });
});

Deno.test("fsck names a file whose manifest does not add up to its size or hash", async () => {
  await withFixture(async ({ store, chunks }) => {
    const entry = (await store.getEntry(NS, "docs/a.txt"))!;
    await store.kv.set(["e", NS, "docs", "a.txt"], { ...entry, size: entry.size + 1 });
    const text = messages(await fsck(store, chunks));
    assert.match(text, /file "docs\/a\.txt" .*: manifest rows add up to \d+ bytes, the file has \d+/);
  });
});

Deno.test("fsck accepts a compacted journal", async () => {
  await withFixture(async ({ store, chunks }) => {
    await store.compactJournal(NS, 2);
    assert.deepEqual((await fsck(store, chunks)).problems, []);
  });
});

Deno.test("fsck names a trash item whose version is gone", async () => {
  await withFixture(async ({ store, chunks }) => {
    const [item] = await store.listTrash(NS);
    const versions = (await store.listVersions(NS, "b.txt")).filter((v) => String(v.rev) === item.version);
    assert.equal(versions.length, 1);
    await store.dropHistory(NS, { versions, trash: [] });
    const report = await fsck(store, chunks);
    assert.match(messages(report), /trash item "b\.txt" \(deleted at rev \d+\) has no kept version \d+/);
  });
});
