// End-to-end tests of `filesync server fsck`: a data folder synced by a real client, then damaged on purpose.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ChunkCipher } from "../server/chunk_cipher.ts";
import { DiskChunkStore } from "../server/chunk_store.ts";
import { defaultMasterKeyPath, readMasterKey } from "../server/master_key.ts";
import { KvMetadataStore } from "../server/metadata_kv.ts";
import { randomBytes, run, startServer, waitFor, World } from "./harness.ts";

/** A stopped server's data folder holding a few synced files (one large enough for several chunks). */
async function syncedDataFolder(world: World): Promise<string> {
  await world.client("A");
  await Deno.writeTextFile(join(world.dir("A"), "a.txt"), "hello");
  await Deno.writeFile(join(world.dir("A"), "big.bin"), randomBytes(600_000, 7));
  await Deno.mkdir(join(world.dir("A"), "docs"));
  await Deno.writeTextFile(join(world.dir("A"), "docs/b.txt"), "first");
  await waitFor(() =>
    /upload docs\/b\.txt/.test(world.server.output) && /upload big\.bin/.test(world.server.output)
  );
  await Deno.writeTextFile(join(world.dir("A"), "docs/b.txt"), "second");
  await Deno.remove(join(world.dir("A"), "a.txt"));
  await waitFor(() =>
    (world.server.output.match(/upload docs\/b\.txt/g) ?? []).length === 2 &&
    /delete a\.txt/.test(world.server.output)
  );
  await world.server.stop();
  return world.server.dataDir;
}

async function fsck(data: string, ...extra: string[]) {
  return await run(["server", "fsck", "--data", data, ...extra]);
}

/** The chunks of a stopped server's data folder: each id and the path of its (encrypted) file. */
async function chunkFiles(data: string): Promise<{ id: string; path: string }[]> {
  const cipher = new ChunkCipher((await readMasterKey(defaultMasterKeyPath(data)))!);
  const store = new DiskChunkStore(join(data, "chunks"), { cipher });
  await store.open({ readOnly: true });
  const files = [];
  for await (const id of store.list()) {
    const name = cipher.nameOf(id);
    files.push({ id, path: join(data, "chunks", name.slice(0, 2), name) });
  }
  return files.sort((a, b) => a.id < b.id ? -1 : 1);
}

Deno.test("fsck passes a clean data folder and refuses while the server runs", async () => {
  await using world = await World.create();
  const running = await fsck(world.server.dataDir);
  assert.equal(running.code, 1, running.output);
  assert.match(
    running.output,
    /^filesync: A filesync server is running with data folder .*: stop it before fsck\n$/,
  );
  const data = await syncedDataFolder(world);
  const clean = await fsck(data);
  assert.equal(clean.code, 0, clean.output);
  assert.match(
    clean.output,
    /^fsck: clean \(\d+ entries, [1-9]\d* versions, 1 trash items, \d+ journal entries, \d+ chunks\)\n$/,
  );
  const json = await fsck(data, "--json");
  assert.equal(json.code, 0, json.output);
  const report = JSON.parse(json.output);
  assert.equal(report.ok, true);
  assert.deepEqual(report.problems, []);
  assert.ok(report.checked.chunks >= 3, json.output);
  const usage = await run(["server", "fsck"]);
  assert.equal(usage.code, 2, usage.output);
  const notData = await fsck(world.tmp.join("A"));
  assert.equal(notData.code, 1, notData.output);
  assert.match(notData.output, /holds no metadata\.kv/);
});

Deno.test("fsck names a deleted chunk, a tampered and a truncated encrypted chunk, a missing manifest and a stray journal entry", async () => {
  await using world = await World.create();
  const data = await syncedDataFolder(world);
  const files = await chunkFiles(data);
  assert.ok(files.length >= 4, files.map((f) => f.id).join("\n"));
  const [deleted, tampered, truncated] = files;
  await Deno.remove(deleted.path);
  const bytes = await Deno.readFile(tampered.path);
  bytes[bytes.length >> 1] ^= 0x01; // one bit flipped in the ciphertext
  await Deno.writeFile(tampered.path, bytes);
  await Deno.writeTextFile(truncated.path, "bit rot");

  let result = await fsck(data);
  assert.equal(result.code, 1, result.output);
  assert.match(result.output, new RegExp(`chunk ${deleted.id.slice(0, 12)} is missing \\(used by alice: `));
  assert.match(
    result.output,
    new RegExp(`chunk ${tampered.id.slice(0, 12)} is damaged: it does not decrypt`),
  );
  assert.match(
    result.output,
    new RegExp(`chunk ${truncated.id.slice(0, 12)} is damaged: it does not decrypt`),
  );
  assert.match(result.output, /fsck: 3 problems/);
  const json = JSON.parse((await fsck(data, "--json")).output);
  assert.equal(json.ok, false);
  assert.deepEqual(json.problems.map((p: { kind: string }) => p.kind), ["chunk", "chunk", "chunk"]);

  // Damage the metadata too (the server is stopped, so this process may open its KV).
  const store = await KvMetadataStore.open(join(data, "metadata.kv"));
  try {
    const entry = (await store.getEntry("alice", "docs/b.txt"))!;
    await store.deleteManifest(entry.hash);
    const latest = await store.latestSeq("alice");
    const [last] = await store.changesSince("alice", latest - 1, 1);
    await store.kv.set(["j", "alice", latest + 1], { ...last, rev: latest + 1, path: "stray.txt" });
  } finally {
    store.close();
  }
  result = await fsck(data);
  assert.equal(result.code, 1, result.output);
  assert.match(result.output, /alice: file "docs\/b\.txt" \(rev \d+\): manifest [0-9a-f]{12} is missing/);
  assert.match(result.output, /alice: journal entry \d+ \("stray\.txt"\) is beyond the counter \d+/);

  // The server repairs the stray entry at start; fsck then reports only what is still wrong.
  world.server = await startServer(data, [], world.server.port);
  await world.server.stop();
  result = await fsck(data);
  assert.doesNotMatch(result.output, /stray\.txt/);
  assert.match(result.output, /manifest [0-9a-f]{12} is missing/);
});
