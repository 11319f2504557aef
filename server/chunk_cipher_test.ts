// Tests of the chunk cipher: names, sealing and opening, ids read back from a file's head, key checks.
import assert from "node:assert/strict";
import { sha256Hex } from "../protocol/hash.ts";
import { ChunkCipher, ChunkDamagedError, SEAL_OVERHEAD, SEALED_HEAD_BYTES } from "./chunk_cipher.ts";

const key = (fill: number) => new Uint8Array(32).fill(fill);
const data = new TextEncoder().encode("chunk content");
const id = sha256Hex(data);

Deno.test("ChunkCipher refuses a key that is not 32 bytes", () => {
  assert.throws(() => new ChunkCipher(new Uint8Array(16)), RangeError);
  assert.throws(() => new ChunkCipher(new Uint8Array(33)), /A master key has 32 bytes, not 33/);
});

Deno.test("ChunkCipher names: 64 hex digits, the same for the same key and id, different otherwise", () => {
  const a = new ChunkCipher(key(1));
  const name = a.nameOf(id);
  assert.match(name, /^[0-9a-f]{64}$/);
  assert.notEqual(name, id);
  assert.equal(new ChunkCipher(key(1)).nameOf(id), name);
  assert.notEqual(new ChunkCipher(key(2)).nameOf(id), name);
  assert.notEqual(a.nameOf(sha256Hex(new Uint8Array(1))), name);
  assert.throws(() => a.nameOf("not an id"), TypeError);
});

Deno.test("ChunkCipher key checks are stable per key and differ between keys", () => {
  assert.equal(new ChunkCipher(key(1)).keyCheck, new ChunkCipher(key(1)).keyCheck);
  assert.notEqual(new ChunkCipher(key(1)).keyCheck, new ChunkCipher(key(2)).keyCheck);
  assert.match(new ChunkCipher(key(1)).keyCheck, /^[0-9a-f]{64}$/);
});

Deno.test("ChunkCipher.seal() output opens to the content, and idOf() reads the id from its head alone", async () => {
  const cipher = new ChunkCipher(key(3));
  const sealed = await cipher.seal(id, data);
  assert.equal(sealed.length, data.length + SEAL_OVERHEAD);
  assert.deepEqual(await cipher.open(id, sealed), data);
  const name = cipher.nameOf(id);
  assert.equal(cipher.idOf(name, sealed.subarray(0, SEALED_HEAD_BYTES)), id);
  assert.equal(cipher.idOf(name, sealed.subarray(0, SEALED_HEAD_BYTES - 1)), null, "too short");
  assert.equal(cipher.idOf(cipher.nameOf(sha256Hex(new Uint8Array(2))), sealed), null, "under another name");
  assert.equal(new ChunkCipher(key(4)).idOf(name, sealed), null, "another key");
  const flipped = sealed.slice();
  flipped[20] ^= 1;
  assert.equal(cipher.idOf(name, flipped), null, "a changed id does not match the name");
  const empty = new Uint8Array();
  const emptyId = sha256Hex(empty);
  assert.deepEqual(await cipher.open(emptyId, await cipher.seal(emptyId, empty)), empty);
});

Deno.test("ChunkCipher.open() names every kind of damage and never returns other bytes", async () => {
  const cipher = new ChunkCipher(key(5));
  const sealed = await cipher.seal(id, data);
  const cases: [string, Uint8Array, RegExp][] = [
    ["truncated", sealed.subarray(0, sealed.length - 1), /authentication failed/],
    ["too short", sealed.subarray(0, 10), /10 bytes, shorter than any encrypted chunk/],
    ["other magic", Uint8Array.from([0, ...sealed.subarray(1)]), /not an encrypted chunk/],
    [
      "flipped tag bit",
      Uint8Array.from(sealed, (b, i) => i === sealed.length - 1 ? b ^ 1 : b),
      /authentication/,
    ],
    ["flipped content bit", Uint8Array.from(sealed, (b, i) => i === 50 ? b ^ 1 : b), /authentication/],
  ];
  for (const [what, bytes, message] of cases) {
    await assert.rejects(cipher.open(id, bytes), (e: Error) => {
      assert.ok(e instanceof ChunkDamagedError, what);
      assert.match(e.message, message, what);
      return true;
    });
  }
  await assert.rejects(new ChunkCipher(key(6)).open(id, sealed), ChunkDamagedError, "another key");
  const otherId = sha256Hex(new Uint8Array(3));
  // Sealed for one id but stored under the name of another: the key differs, so it does not authenticate.
  await assert.rejects(cipher.open(otherId, sealed), ChunkDamagedError);
  // Even with the right name's key, a file that holds another chunk is refused.
  await assert.rejects(cipher.open(otherId, sealed, cipher.nameOf(id)), /it holds another chunk/);
});
