// End-to-end: content encrypted at rest — what a thief with the server's disk finds, the master key's file and
// errors, and an older version's plaintext data folder migrated at start.
import assert from "node:assert/strict";
import { join } from "node:path";
import { sha256Hex } from "../protocol/hash.ts";
import { ChunkCipher } from "../server/chunk_cipher.ts";
import { ENCRYPTION_FILE } from "../server/chunk_store.ts";
import { defaultMasterKeyPath, readMasterKey } from "../server/master_key.ts";
import { KvMetadataStore } from "../server/metadata_kv.ts";
import {
  addUser,
  randomBytes,
  readTree,
  run,
  startServer,
  TempDir,
  waitFor,
  waitForSameTree,
  World,
} from "./harness.ts";

const encoder = new TextEncoder();
const SECRET = "The launch code is 0000, and this sentence must never be on the server's disk in the clear.";

/** Every file below `root`: its path relative to `root` and its bytes. */
async function filesBelow(root: string, prefix = ""): Promise<{ path: string; bytes: Uint8Array }[]> {
  const out = [];
  for await (const entry of Deno.readDir(join(root, prefix))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory) out.push(...await filesBelow(root, rel));
    else if (entry.isFile) out.push({ path: rel, bytes: await Deno.readFile(join(root, rel)) });
  }
  return out;
}

/** Where `needle` occurs in `haystack` (-1 if nowhere). */
function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
  if (needle.length === 0) return 0;
  const first = needle[0];
  outer: for (let i = haystack.indexOf(first); i !== -1 && i + needle.length <= haystack.length;) {
    for (let j = 1; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) {
        i = haystack.indexOf(first, i + 1);
        continue outer;
      }
    }
    return i;
  }
  return -1;
}

/** The hashes a thief could look for: each file's hash and its chunks' ids (from the stopped server's KV). */
async function knownHashes(dataDir: string, paths: string[]): Promise<string[]> {
  const store = await KvMetadataStore.open(join(dataDir, "metadata.kv"));
  try {
    const hashes: string[] = [];
    for (const path of paths) {
      const entry = await store.getEntry("alice", path);
      assert.ok(entry && entry.kind === "file", `no file entry for ${path}`);
      hashes.push(entry.hash);
      for (const row of (await store.getManifest(entry.hash))!) hashes.push(row.id);
    }
    return hashes;
  } finally {
    store.close();
  }
}

/** A synced world with a secret text file and a multi-chunk random file; the server stopped at the end. */
async function syncedWorld(world: World): Promise<{ big: Uint8Array }> {
  await world.client("A");
  const big = randomBytes(700_000, 42);
  await Deno.writeTextFile(join(world.dir("A"), "secret.txt"), SECRET);
  await Deno.writeFile(join(world.dir("A"), "big.bin"), big);
  await waitFor(() =>
    /upload secret\.txt/.test(world.server.output) && /upload big\.bin/.test(world.server.output)
  );
  return { big };
}

Deno.test("a thief with the server's chunk files finds neither the content nor any chunk or file hash", async () => {
  await using world = await World.create();
  assert.match(world.server.output, /created master key .*keys\/master\.key: back it up apart from the data/);
  // The server says what encrypts: libcrypto (AES-NI) when it loads, as it does here with --allow-all.
  assert.match(
    world.server.output,
    /chunks encrypted at rest with AES-256-GCM through OpenSSL libcrypto\.so/,
  );
  const { big } = await syncedWorld(world);
  await world.client("B");
  await waitForSameTree(world.dir("A"), world.dir("B"), 30_000);
  await Promise.all(world.procs.map((p) => p.stop()));
  await world.server.stop();
  const data = world.server.dataDir;
  const hashes = await knownHashes(data, ["secret.txt", "big.bin"]);
  assert.ok(hashes.length >= 5, "the big file has several chunks");
  const files = await filesBelow(join(data, "chunks"));
  assert.ok(files.length >= hashes.length - 2, files.map((f) => f.path).join("\n"));
  const needles: { what: string; bytes: Uint8Array }[] = [{
    what: "the secret text",
    bytes: encoder.encode(SECRET),
  }];
  for (let at = 0; at + 64 <= big.length; at += 50_000) {
    needles.push({ what: `64 bytes of big.bin at ${at}`, bytes: big.subarray(at, at + 64) });
  }
  for (const hash of hashes) {
    needles.push({ what: `hash ${hash.slice(0, 12)} in hex`, bytes: encoder.encode(hash) });
    needles.push({
      what: `hash ${hash.slice(0, 12)} in bytes`,
      bytes: Uint8Array.from(Buffer.from(hash, "hex")),
    });
  }
  for (const file of files) {
    for (const hash of hashes) assert.ok(!file.path.includes(hash), `${file.path} is named by a hash`);
    for (const needle of needles) {
      assert.equal(indexOfBytes(file.bytes, needle.bytes), -1, `chunks/${file.path} holds ${needle.what}`);
    }
  }
  // The key: in the data folder, owner-only.
  const keyPath = defaultMasterKeyPath(data);
  assert.equal((await Deno.stat(keyPath)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(join(data, "keys"))).mode! & 0o777, 0o700);
  assert.match(await Deno.readTextFile(keyPath), /^[0-9a-f]{64}\n$/);
  // fsck decrypts every chunk and finds them whole.
  const fsck = await run(["server", "fsck", "--data", data]);
  assert.equal(fsck.code, 0, fsck.output);
  assert.match(fsck.output, /^fsck: clean/);
});

Deno.test("a missing, wrong, loose or malformed master key is one clear line at start; the right one from --master-key works", async () => {
  await using world = await World.create();
  await syncedWorld(world);
  await Promise.all(world.procs.map((p) => p.stop()));
  const expected = await readTree(world.dir("A"));
  await world.server.stop();
  const data = world.server.dataDir;
  const start = (...extra: string[]) =>
    run(["server", "--data", data, "--port", "0", "--host", "127.0.0.1", ...extra], { timeoutMs: 20_000 });
  const oneLine = (output: string, pattern: RegExp) => {
    assert.match(output, pattern);
    assert.equal(output.trim().split("\n").filter((l) => l.startsWith("filesync:")).length, 1, output);
  };

  // Kept apart from the data, as the README advises.
  await using keys = new TempDir();
  const kept = keys.join("master.key");
  await Deno.rename(defaultMasterKeyPath(data), kept);
  let result = await start();
  assert.equal(result.code, 1, result.output);
  oneLine(
    result.output,
    /filesync: Master key .*keys\/master\.key is missing, and the chunks in .* were encrypted with it: restore it from your backup/,
  );
  assert.equal(
    await Deno.stat(defaultMasterKeyPath(data)).then(() => true, () => false),
    false,
    "no new key made",
  );

  const wrong = keys.join("wrong.key");
  await Deno.writeTextFile(wrong, "ab".repeat(32) + "\n", { mode: 0o600 });
  result = await start("--master-key", wrong);
  assert.equal(result.code, 1, result.output);
  oneLine(
    result.output,
    /filesync: The master key does not match the chunks in .*: they were encrypted with another key/,
  );

  await Deno.chmod(kept, 0o644);
  result = await start("--master-key", kept);
  assert.equal(result.code, 1, result.output);
  oneLine(
    result.output,
    /filesync: Master key .* may be read by other users \(mode 644\): make it private with chmod 600/,
  );
  await Deno.chmod(kept, 0o600);

  const short = keys.join("short.key");
  await Deno.writeTextFile(short, "abcd\n", { mode: 0o600 });
  result = await start("--master-key", short);
  assert.equal(result.code, 1, result.output);
  oneLine(
    result.output,
    /filesync: Master key .* must hold 64 hex digits \(a 256-bit key\), not 4 characters/,
  );

  result = await start("--master-key", keys.join("absent.key"));
  assert.equal(result.code, 1, result.output);
  oneLine(
    result.output,
    /filesync: Master key .*absent\.key is missing, and the chunks .* restore it from your backup/,
  );

  // The right key, from outside the data folder: everything is there for a new device.
  world.server = await startServer(data, ["--master-key", kept], world.server.port);
  await world.client("C");
  await waitFor(async () => {
    const tree = await readTree(world.dir("C"));
    return tree.size === expected.size && [...expected].every(([k, v]) => tree.get(k) === v);
  }, { timeoutMs: 30_000 });
});

Deno.test("an older version's plaintext data folder is encrypted at start and keeps working", async () => {
  await using tmp = new TempDir();
  const data = tmp.join("server");
  // Today's layout (before encryption): the plaintext mode writes chunks exactly as older versions did.
  let server = await startServer(data, [], 0, { FILESYNC_TEST_PLAINTEXT_CHUNKS: "1" });
  await using world = new World();
  world.server = server;
  await addUser(data, "alice", world.password);
  const { big } = await syncedWorld(world);
  await Promise.all(world.procs.map((p) => p.stop()));
  await server.stop();
  const old = await filesBelow(join(data, "chunks"));
  assert.ok(old.length >= 4);
  for (const file of old) {
    assert.equal(
      sha256Hex(file.bytes),
      file.path.split("/").pop(),
      `${file.path}: a plaintext chunk named by its hash`,
    );
  }
  assert.equal(await Deno.stat(join(data, "keys")).then(() => true, () => false), false, "no key yet");

  world.server = server = await startServer(data, [], server.port);
  assert.match(server.output, /created master key/);
  assert.match(
    server.output,
    new RegExp(`encrypted ${old.length} chunks an older version had stored in plaintext`),
  );
  const now = await filesBelow(join(data, "chunks"));
  assert.deepEqual(now.filter((f) => f.path === ENCRYPTION_FILE).length, 1);
  for (const file of now) {
    assert.ok(!old.some((o) => file.path === o.path), `${file.path} was left in plaintext`);
    assert.equal(indexOfBytes(file.bytes, encoder.encode(SECRET)), -1);
    assert.equal(indexOfBytes(file.bytes, big.subarray(1000, 1064)), -1);
  }
  assert.equal(now.length, old.length + 1);
  // A new device gets the files, and a second start has nothing more to migrate.
  await world.client("B");
  await waitForSameTree(world.dir("A"), world.dir("B"), 30_000);
  await Promise.all(world.procs.map((p) => p.stop()));
  await server.stop();
  world.server = server = await startServer(data, [], server.port);
  assert.doesNotMatch(server.output, /encrypted \d+ chunks|created master key/);
  await server.stop();
  const fsck = await run(["server", "fsck", "--data", data]);
  assert.equal(fsck.code, 0, fsck.output);
  // A plaintext (test-only) server refuses the now encrypted folder instead of treating its files as chunks.
  const refused = await run(["server", "--data", data, "--port", "0", "--host", "127.0.0.1"], {
    env: { FILESYNC_TEST_PLAINTEXT_CHUNKS: "1" },
  });
  assert.equal(refused.code, 1, refused.output);
  assert.match(refused.output, /is encrypted: it opens only with the server's master key/);
});

Deno.test("a tampered stored chunk is never served: the server logs it, a new device gets the intact files only", async () => {
  await using world = await World.create();
  await syncedWorld(world);
  await Deno.writeTextFile(join(world.dir("A"), "other.txt"), "an intact file");
  await waitFor(() => /upload other\.txt/.test(world.server.output));
  await Promise.all(world.procs.map((p) => p.stop()));
  await world.server.stop();
  const data = world.server.dataDir;
  const [secretChunk] = await knownHashes(data, ["secret.txt"]).then((h) => h.slice(1));
  const cipher = new ChunkCipher((await readMasterKey(defaultMasterKeyPath(data)))!);
  const name = cipher.nameOf(secretChunk);
  const path = join(data, "chunks", name.slice(0, 2), name);
  const bytes = await Deno.readFile(path);
  bytes[bytes.length - 30] ^= 0x04;
  await Deno.writeFile(path, bytes);
  world.server = await startServer(data, [], world.server.port);
  const c = await world.client("C");
  await waitFor(async () => {
    const tree = await readTree(world.dir("C"));
    return tree.has("other.txt") && tree.has("big.bin");
  }, { timeoutMs: 30_000 });
  await world.server.waitForOutput(
    /Cannot read chunk "[0-9a-f]{12}": its stored copy is damaged .*filesync server fsck/,
  );
  await c.waitForOutput(/could not download secret\.txt: The server's copy of chunk [0-9a-f]{12} is damaged/);
  const got = await Deno.readTextFile(join(world.dir("C"), "secret.txt")).catch(() => null);
  assert.equal(got, null, "nothing is written from a damaged chunk");
  assert.doesNotMatch(world.server.output, /internal error/);
});

/** Runs `start` with filesync processes started by `command` (FILESYNC_CMD), as tests/bundle_test.ts does. */
async function withCommand<T>(command: string, start: () => Promise<T>): Promise<T> {
  const previous = Deno.env.get("FILESYNC_CMD");
  Deno.env.set("FILESYNC_CMD", command);
  try {
    return await start();
  } finally {
    if (previous === undefined) Deno.env.delete("FILESYNC_CMD");
    else Deno.env.set("FILESYNC_CMD", previous);
  }
}

Deno.test("without the FFI permission the server encrypts through WebCrypto, and each backend reads what the other stored", async () => {
  const root = new URL("..", import.meta.url).pathname;
  // Every permission but FFI: libcrypto cannot load, WebCrypto does the work.
  const noFfi = [
    Deno.execPath(),
    "run",
    "--allow-all",
    "--deny-ffi",
    "--unstable-kv",
    "--config",
    join(root, "deno.json"),
    join(root, "main.ts"),
  ].join(" ");
  // The data folder in the default temp folder even when FILESYNC_TEST_TMPDIR is /dev/shm: Deno lets only
  // --allow-all touch /dev paths.
  const own = await Deno.makeTempDir({ prefix: "filesync-test-" });
  try {
    await withoutFfi(noFfi, join(own, "server"));
  } finally {
    await Deno.remove(own, { recursive: true }).catch(() => {});
  }
});

/** The body of the test above, on the data folder `data`. */
async function withoutFfi(noFfi: string, data: string): Promise<void> {
  await using world = new World();
  world.server = await startServer(data);
  await addUser(data, world.user, world.password);
  assert.match(world.server.output, /chunks encrypted at rest with AES-256-GCM through OpenSSL libcrypto/);
  const first = randomBytes(400_000, 91);
  await world.client("A");
  await Deno.writeFile(join(world.dir("A"), "first.bin"), first);
  await waitFor(() => /upload first\.bin/.test(world.server.output));
  await Promise.all(world.procs.map((p) => p.stop()));
  await world.server.stop();

  world.server = await withCommand(noFfi, () => startServer(data, [], world.server.port));
  assert.match(
    world.server.output,
    /chunks encrypted at rest with AES-256-GCM through WebCrypto \(libcrypto not used: no FFI permission/,
  );
  await world.client("B");
  await waitForSameTree(world.dir("A"), world.dir("B"), 30_000); // chunks libcrypto stored, read by WebCrypto
  const second = randomBytes(400_000, 92);
  await Deno.writeFile(join(world.dir("B"), "second.bin"), second);
  await waitFor(() => /upload second\.bin/.test(world.server.output));
  await Promise.all(world.procs.map((p) => p.stop()));
  await world.server.stop();

  world.server = await startServer(data, [], world.server.port);
  await world.client("C");
  await waitFor(async () => {
    const tree = await readTree(world.dir("C"));
    return tree.get("first.bin") === sha256Hex(first) && tree.get("second.bin") === sha256Hex(second);
  }, { timeoutMs: 30_000 });
  await Promise.all(world.procs.map((p) => p.stop()));
  await world.server.stop();
  const fsck = await run(["server", "fsck", "--data", data]);
  assert.equal(fsck.code, 0, fsck.output);
}
