// Tests of the master key file and of opening the server's chunk store with it.
import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../protocol/user_error.ts";
import { readEncryptionRecord } from "./chunk_store.ts";
import { createMasterKey, defaultMasterKeyPath, openServerChunks, readMasterKey } from "./master_key.ts";

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-key-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const HEX = "0123456789abcdef".repeat(4);

Deno.test("readMasterKey() reads 64 hex digits, null for a missing file, one line for anything else", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "k");
    assert.equal(await readMasterKey(path), null);
    await Deno.writeTextFile(path, `  ${HEX.toUpperCase()}\n`, { mode: 0o600 });
    assert.deepEqual(await readMasterKey(path), Uint8Array.from(Buffer.from(HEX, "hex")));
    const refused: [string, string, number, RegExp][] = [
      ["short", "abcd", 0o600, /must hold 64 hex digits \(a 256-bit key\), not 4 characters$/],
      ["long", HEX + "00", 0o600, /not 66 characters$/],
      ["not hex", "z".repeat(64), 0o600, /not 64 characters with other than hex digits$/],
      ["empty", "", 0o600, /not 0 characters$/],
      [
        "readable by others",
        HEX,
        0o644,
        /may be read by other users \(mode 644\): make it private with chmod 600$/,
      ],
      ["readable by the group", HEX, 0o640, /\(mode 640\)/],
    ];
    for (const [what, text, mode, message] of refused) {
      await Deno.writeTextFile(path, text);
      await Deno.chmod(path, mode);
      await assert.rejects(readMasterKey(path), (e: Error) => {
        assert.ok(e instanceof UserError, what);
        assert.match(e.message, message, what);
        assert.ok(!e.message.includes("\n"), what);
        return true;
      });
    }
    await assert.rejects(readMasterKey(dir), /is not a file/);
  });
});

Deno.test("createMasterKey() writes a random key 0600 in a 0700 folder and never replaces a file", async () => {
  await withTemp(async (dir) => {
    const path = join(dir, "keys", "master.key");
    await assert.rejects(
      createMasterKey(path),
      /Cannot create master key .*: No such file/,
      "folder not made",
    );
    const key = await createMasterKey(path, { makeFolder: true });
    assert.equal(key.length, 32);
    assert.deepEqual(await readMasterKey(path), key);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(join(dir, "keys"))).mode! & 0o777, 0o700);
    await assert.rejects(createMasterKey(path), /Cannot create master key/);
    assert.deepEqual(await readMasterKey(path), key, "the first key stays");
    assert.notDeepEqual(await createMasterKey(join(dir, "other.key")), key);
  });
});

Deno.test("openServerChunks() makes the key on first start, uses it after, and refuses a lost or wrong one", async () => {
  await withTemp(async (dataDir) => {
    const first = await openServerChunks({ dataDir });
    assert.match(
      first.lines.join("\n"),
      /^created master key .*keys\/master\.key: back it up apart from the data/,
    );
    const data = new TextEncoder().encode("x");
    const id = "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
    await first.store.put(id, data);
    const again = await openServerChunks({ dataDir });
    assert.deepEqual(again.lines, []);
    assert.deepEqual(await again.store.get(id), data);

    // Kept elsewhere and named by the option.
    const elsewhere = join(dataDir, "..", `${dataDir.split("/").pop()}-key`);
    await Deno.rename(defaultMasterKeyPath(dataDir), elsewhere);
    try {
      await assert.rejects(
        openServerChunks({ dataDir }),
        /master\.key is missing, and the chunks in .* were encrypted/,
      );
      await assert.rejects(openServerChunks({ dataDir, readOnly: true }), /is missing/);
      const moved = await openServerChunks({ dataDir, masterKeyFile: elsewhere });
      assert.deepEqual(await moved.store.get(id), data);
      await Deno.writeTextFile(elsewhere + ".wrong", "ff".repeat(32), { mode: 0o600 });
      await assert.rejects(
        openServerChunks({ dataDir, masterKeyFile: elsewhere + ".wrong" }),
        (e: Error) =>
          e instanceof UserError &&
          /does not match the chunks .* \(key .*\.wrong\); start with the key/.test(e.message),
      );
    } finally {
      await Deno.remove(elsewhere).catch(() => {});
      await Deno.remove(elsewhere + ".wrong").catch(() => {});
    }
  });
});

Deno.test("openServerChunks() read-only (fsck) creates no key and reads an older plaintext folder as it is", async () => {
  await withTemp(async (dataDir) => {
    await Deno.mkdir(join(dataDir, "chunks"));
    const { store, lines } = await openServerChunks({ dataDir, readOnly: true });
    assert.deepEqual(lines, []);
    assert.equal(await Deno.stat(join(dataDir, "keys")).then(() => true, () => false), false);
    assert.equal(readEncryptionRecord(join(dataDir, "chunks")), null, "nothing written");
    assert.equal(await store.get("00".repeat(32)), null);
  });
});
