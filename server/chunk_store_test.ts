// Tests for the disk chunk store: the ChunkStore contract (chunk_store_contract.ts) against it, plus disk details.

import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../protocol/hash.ts";
import { ChunkCipher, ChunkDamagedError, SEAL_OVERHEAD, WEB_CRYPTO } from "./chunk_cipher.ts";
import {
  DiskChunkStore,
  ENCRYPTION_FILE,
  openChunkStore,
  readEncryptionRecord,
  WrongKeyError,
} from "./chunk_store.ts";

import { chunk, chunkStoreContract, collect } from "./chunk_store_contract.ts";

const encoder = new TextEncoder();

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

/** A fixed test key, and a second one. */
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const OTHER_KEY = Uint8Array.from({ length: 32 }, (_, i) => 255 - i);

/** Runs `fn` with an opened disk store (encrypted when a cipher is given) in a fresh temp folder, removed afterwards. */
async function withDiskStore(
  fn: (store: DiskChunkStore, root: string) => Promise<void>,
  cipher?: ChunkCipher,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-chunks-" });
  try {
    const root = join(dir, "chunks");
    const store = new DiskChunkStore(root, { cipher });
    await store.open();
    await fn(store, root);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

chunkStoreContract("DiskChunkStore (plaintext, tests only)", (fn) => withDiskStore((store) => fn(store)));
chunkStoreContract(
  "DiskChunkStore (encrypted)",
  (fn) => withDiskStore((store) => fn(store), new ChunkCipher(KEY)),
);
chunkStoreContract(
  "DiskChunkStore (encrypted, WebCrypto)",
  (fn) => withDiskStore((store) => fn(store), new ChunkCipher(KEY, { crypto: WEB_CRYPTO })),
);

Deno.test("encrypted DiskChunkStore: a folder written through libcrypto reads through WebCrypto, and back", async () => {
  const native = new ChunkCipher(KEY);
  assert.match(native.crypto.name, /^OpenSSL/, "libcrypto is loaded here");
  const web = new ChunkCipher(KEY, { crypto: WEB_CRYPTO });
  const a = chunk("written natively");
  const b = chunk("written through WebCrypto");
  await withDiskStore(async (first, root) => {
    await first.put(a.id, a.data);
    const second = new DiskChunkStore(root, { cipher: web });
    await second.open();
    assert.deepEqual(await second.get(a.id), a.data);
    await second.put(b.id, b.data);
    assert.deepEqual(await first.get(b.id), b.data);
    assert.deepEqual((await Array.fromAsync(first.list())).sort(), [a.id, b.id].sort());
    assert.deepEqual((await Array.fromAsync(second.list())).sort(), [a.id, b.id].sort());
  }, native);
});

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
    const cipher = new ChunkCipher(KEY);
    const { store: byPath } = await openChunkStore(join(root, "a b"), { cipher });
    await byPath.put(id, data);
    const { store: byUrl } = await openChunkStore(new URL(`file://${join(root, "a b")}`).href, { cipher });
    assert.deepEqual(await byUrl.get(id), data, "the same folder, spaces escaped in the URL");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("openChunkStore() refuses an unknown scheme with a TypeError naming the supported ones", async () => {
  await assert.rejects(openChunkStore("gs://bucket/x", { cipher: null }), (error: Error) => {
    assert.ok(error instanceof TypeError);
    assert.match(
      error.message,
      /Unsupported chunk store "gs:\/\/bucket\/x": use a folder path or a file:, s3: URL/,
    );
    return true;
  });
  await assert.rejects(openChunkStore("", { cipher: null }), TypeError);
});

// ---- encryption at rest ----

/** Every byte of every file below `root`, with its path. */
async function contentsBelow(root: string): Promise<{ path: string; bytes: Uint8Array }[]> {
  const out = [];
  for (const rel of await filesBelow(root)) {
    out.push({ path: rel, bytes: await Deno.readFile(join(root, rel)) });
  }
  return out;
}

function includesBytes(haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

Deno.test("encrypted DiskChunkStore: neither names nor contents on disk reveal a chunk's bytes or its id", async () => {
  const cipher = new ChunkCipher(KEY);
  await withDiskStore(async (store, root) => {
    const a = chunk("a secret sentence that must not be on the disk in the clear");
    await store.put(a.id, a.data);
    await store.sync([a.id]);
    const files = await contentsBelow(root);
    const name = cipher.nameOf(a.id);
    assert.deepEqual(
      files.map((f) => f.path).sort(),
      [`${name.slice(0, 2)}/${name}`, ENCRYPTION_FILE].sort(),
    );
    for (const { path, bytes } of files) {
      assert.ok(!path.includes(a.id), path);
      assert.ok(!includesBytes(bytes, a.data), `${path} holds the plaintext`);
      assert.ok(!includesBytes(bytes, encoder.encode(a.id)), `${path} holds the id in hex`);
      assert.ok(!includesBytes(bytes, Uint8Array.from(Buffer.from(a.id, "hex"))), `${path} holds the id`);
    }
    const stored = files.find((f) => f.path.endsWith(name))!.bytes;
    assert.equal(stored.length, a.data.length + SEAL_OVERHEAD);
    assert.equal(await store.size(a.id), a.data.length, "size() is the chunk's, not the file's");
  }, cipher);
});

Deno.test("encrypted DiskChunkStore: a tampered, truncated or swapped file reads as damaged, never as other data", async () => {
  const cipher = new ChunkCipher(KEY);
  await withDiskStore(async (store, root) => {
    const a = chunk("first chunk, will be tampered with");
    const b = chunk("second chunk, will be cut short");
    const c = chunk("third chunk, copied over the second");
    for (const x of [a, b, c]) await store.put(x.id, x.data);
    const path = (id: string) => join(root, cipher.nameOf(id).slice(0, 2), cipher.nameOf(id));
    const bytes = await Deno.readFile(path(a.id));
    bytes[bytes.length - 20] ^= 1;
    await Deno.writeFile(path(a.id), bytes);
    await assert.rejects(store.get(a.id), (e: Error) => {
      assert.ok(e instanceof ChunkDamagedError);
      assert.match(
        e.message,
        /^Cannot read chunk "[0-9a-f]{12}": its stored copy is damaged \(authentication failed/,
      );
      return true;
    });
    const full = await Deno.readFile(path(b.id));
    await Deno.writeFile(path(b.id), full.subarray(0, full.length - 1));
    await assert.rejects(store.get(b.id), ChunkDamagedError);
    await Deno.writeFile(path(b.id), full.subarray(0, 10));
    await assert.rejects(store.get(b.id), /shorter than any encrypted chunk/);
    assert.equal(
      await store.size(b.id),
      null,
      "too short to hold anything: counts as missing, to be sent again",
    );
    await Deno.copyFile(path(c.id), path(b.id));
    await assert.rejects(store.get(b.id), ChunkDamagedError);
    // Another put heals each of them.
    for (const x of [a, b]) {
      await store.put(x.id, x.data);
      assert.deepEqual(await store.get(x.id), x.data);
    }
    assert.deepEqual(await store.get(c.id), c.data);
  }, cipher);
});

Deno.test("encrypted DiskChunkStore: list() passes over files that are no chunk of this key", async () => {
  const cipher = new ChunkCipher(KEY);
  await withDiskStore(async (store, root) => {
    const a = chunk("kept and listed");
    await store.put(a.id, a.data);
    await Deno.mkdir(join(root, "ab"), { recursive: true });
    await Deno.writeFile(join(root, "ab", "ab".padEnd(64, "0")), new Uint8Array(100));
    const name = cipher.nameOf(chunk("other").id);
    await Deno.mkdir(join(root, name.slice(0, 2)), { recursive: true });
    await Deno.writeFile(
      join(root, name.slice(0, 2), name),
      await new ChunkCipher(OTHER_KEY).seal(a.id, a.data),
    );
    assert.deepEqual(await collect(store.list()), [a.id]);
  }, cipher);
});

Deno.test("encrypted DiskChunkStore: the same chunk gets the same name (dedup) and a fresh nonce each put", async () => {
  const cipher = new ChunkCipher(KEY);
  await withDiskStore(async (store, root) => {
    const a = chunk("deduplicated");
    const name = cipher.nameOf(a.id);
    await store.put(a.id, a.data);
    const first = await Deno.readFile(join(root, name.slice(0, 2), name));
    await store.put(a.id, a.data);
    const second = await Deno.readFile(join(root, name.slice(0, 2), name));
    assert.notDeepEqual(first, second);
    assert.deepEqual(await collect(store.list()), [a.id]);
    assert.equal(new ChunkCipher(OTHER_KEY).nameOf(a.id) === name, false, "names depend on the key");
  }, cipher);
});

Deno.test("encrypted DiskChunkStore: a wrong key is refused at open; a plaintext store refuses the folder", async () => {
  await withDiskStore(async (store, root) => {
    const a = chunk("under the first key");
    await store.put(a.id, a.data);
    assert.equal(readEncryptionRecord(root)?.keyCheck, new ChunkCipher(KEY).keyCheck);
    await assert.rejects(
      new DiskChunkStore(root, { cipher: new ChunkCipher(OTHER_KEY) }).open(),
      (e: Error) => e instanceof WrongKeyError && /does not match the chunks in/.test(e.message),
    );
    await assert.rejects(
      new DiskChunkStore(root).open(),
      /is encrypted: it opens only with the server's master key/,
    );
    const again = new DiskChunkStore(root, { cipher: new ChunkCipher(KEY) });
    await again.open();
    assert.deepEqual(await again.get(a.id), a.data);
  }, new ChunkCipher(KEY));
});

Deno.test("encrypted DiskChunkStore: plaintext chunks of an older version are encrypted and renamed at open", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-chunks-" });
  try {
    const root = join(dir, "chunks");
    // Today's layout: ROOT/ab/<sha-256>, plaintext, as written by a server before encryption.
    const old = new DiskChunkStore(root);
    await old.open();
    const all = Array.from({ length: 300 }, (_, i) => chunk(`older version chunk ${i}`));
    for (const c of all) await old.put(c.id, c.data);
    const rotten = chunk("bit rot before the upgrade");
    await old.put(rotten.id, rotten.data);
    await Deno.writeTextFile(join(root, rotten.id.slice(0, 2), rotten.id), "rotten");
    const cipher = new ChunkCipher(KEY);
    const store = new DiskChunkStore(root, { cipher });
    const report = await store.open();
    assert.deepEqual(report, { migrated: 300, unreadable: 1, firstEncrypted: true, migrationPending: false });
    assert.deepEqual(await collect(store.list()), all.map((c) => c.id).sort());
    for (const c of all) assert.deepEqual(await store.get(c.id), c.data);
    const names = await filesBelow(root);
    for (const c of all) assert.ok(!names.some((n) => n.includes(c.id)), "no plaintext name is left");
    assert.ok(
      names.includes(`${rotten.id.slice(0, 2)}/${rotten.id}`),
      "what cannot be verified is left alone",
    );
    assert.equal(readEncryptionRecord(root)?.allEncrypted, true);
    const reopened = new DiskChunkStore(root, { cipher });
    assert.deepEqual((await reopened.open()).migrated, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encrypted DiskChunkStore: an interrupted migration is finished at the next open; fsck's read-only open says so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-chunks-" });
  try {
    const root = join(dir, "chunks");
    const old = new DiskChunkStore(root);
    await old.open();
    const plain = [chunk("still plaintext 1"), chunk("still plaintext 2")];
    for (const c of plain) await old.put(c.id, c.data);
    const cipher = new ChunkCipher(KEY);
    // As if a start had encrypted one chunk and crashed: the record says "not all encrypted yet".
    const done = chunk("already encrypted");
    const name = cipher.nameOf(done.id);
    await Deno.mkdir(join(root, name.slice(0, 2)), { recursive: true });
    await Deno.writeFile(join(root, name.slice(0, 2), name), await cipher.seal(done.id, done.data));
    const record = { cipher: "AES-256-GCM", keyCheck: cipher.keyCheck, allEncrypted: false };
    await Deno.writeTextFile(join(root, ENCRYPTION_FILE), JSON.stringify(record));
    const readOnly = await new DiskChunkStore(root, { cipher }).open({ readOnly: true });
    assert.equal(readOnly.migrationPending, true);
    await assert.rejects(
      new DiskChunkStore(root, { cipher: new ChunkCipher(OTHER_KEY) }).open(),
      WrongKeyError,
      "the key check is written before the migration starts",
    );
    const store = new DiskChunkStore(root, { cipher });
    assert.deepEqual(await store.open(), {
      migrated: 2,
      unreadable: 0,
      firstEncrypted: false,
      migrationPending: false,
    });
    assert.deepEqual(await collect(store.list()), [...plain, done].map((c) => c.id).sort());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("encrypted DiskChunkStore: with its key check lost, a folder no file of which this key reads is refused", async () => {
  await withDiskStore(async (store, root) => {
    const a = chunk("encrypted under the first key");
    await store.put(a.id, a.data);
    await Deno.remove(join(root, ENCRYPTION_FILE));
    await assert.rejects(
      new DiskChunkStore(root, { cipher: new ChunkCipher(OTHER_KEY) }).open(),
      /none of its 1 files is a plaintext chunk or encrypted with this key/,
    );
    assert.equal(readEncryptionRecord(root), null, "no key check of the wrong key is recorded");
    const right = new DiskChunkStore(root, { cipher: new ChunkCipher(KEY) });
    assert.deepEqual(await right.open(), {
      migrated: 0,
      unreadable: 0,
      firstEncrypted: true,
      migrationPending: false,
    });
    assert.deepEqual(await right.get(a.id), a.data);
  }, new ChunkCipher(KEY));
});
