// Tests for protocol/hash.ts: SHA-256 helpers and the whole-file hash over chunk ids.

import assert from "node:assert/strict";
import { FILE_HASH_PREFIX, FileHasher, fileHashOfChunks, isHashHex, sha256Hex, sha256Raw } from "./hash.ts";
import { concatBytes } from "./bytes.ts";

const encoder = new TextEncoder();
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

function hexToBytes(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

/** Joins byte arrays (the tests' shorthand for {@linkcode concatBytes}). */
const concat = (...parts: Uint8Array[]): Uint8Array => concatBytes(parts);

const IDS = ["a", "b", "c", "d"].map((s) => sha256Hex(encoder.encode(s)));

Deno.test("sha256Hex() matches the FIPS 180-2 test vectors", () => {
  assert.equal(sha256Hex(new Uint8Array()), EMPTY_SHA256);
  assert.equal(sha256Hex(encoder.encode("abc")), ABC_SHA256);
});

Deno.test("sha256Hex() hashes only the bytes of a subarray view", () => {
  const bytes = encoder.encode("xxabcxx");
  assert.equal(sha256Hex(bytes.subarray(2, 5)), ABC_SHA256);
});

Deno.test("sha256Raw() returns the 32 bytes that sha256Hex() spells in hex", () => {
  const raw = sha256Raw(encoder.encode("abc"));
  assert.equal(raw.constructor, Uint8Array);
  assert.equal(raw.length, 32);
  assert.deepEqual(raw, hexToBytes(ABC_SHA256));
});

Deno.test("isHashHex() accepts exactly 64 lowercase hex characters", () => {
  assert.equal(isHashHex(ABC_SHA256), true);
  assert.equal(isHashHex("0".repeat(64)), true);
  for (
    const bad of [
      "",
      ABC_SHA256.toUpperCase(),
      ABC_SHA256.slice(1),
      ABC_SHA256 + "0",
      "g" + ABC_SHA256.slice(1),
      ABC_SHA256.slice(0, 63) + "\n",
      " " + ABC_SHA256.slice(1),
    ]
  ) {
    assert.equal(isHashHex(bad), false, JSON.stringify(bad));
  }
});

Deno.test("fileHashOfChunks() hashes the prefix followed by the raw chunk digests", () => {
  const expected = sha256Hex(concat(encoder.encode(FILE_HASH_PREFIX), ...IDS.map(hexToBytes)));
  assert.equal(fileHashOfChunks(IDS), expected);
});

Deno.test("fileHashOfChunks() of an empty file is the hash of the prefix alone", () => {
  assert.equal(FILE_HASH_PREFIX, "filesync-file-v1\n");
  assert.equal(fileHashOfChunks([]), sha256Hex(encoder.encode("filesync-file-v1\n")));
  assert.equal(fileHashOfChunks([]), "cac0ddcf5f2bff6048dfef7474b4489bc5b04409aa2bcc1d27351c259c535d98");
});

Deno.test("FileHasher gives the same hash as fileHashOfChunks() for every prefix of a chunk list", () => {
  for (let n = 0; n <= IDS.length; n++) {
    const hasher = new FileHasher();
    for (const id of IDS.slice(0, n)) hasher.addChunk(id);
    assert.equal(hasher.digest(), fileHashOfChunks(IDS.slice(0, n)));
  }
});

Deno.test("the file hash depends on chunk order and differs from the chunk id", () => {
  assert.notEqual(fileHashOfChunks([IDS[0], IDS[1]]), fileHashOfChunks([IDS[1], IDS[0]]));
  assert.notEqual(fileHashOfChunks([IDS[0]]), IDS[0]);
  assert.notEqual(fileHashOfChunks([IDS[0], IDS[0]]), fileHashOfChunks([IDS[0]]));
});

Deno.test("FileHasher.digest() returns the same value when called again", () => {
  const hasher = new FileHasher();
  hasher.addChunk(IDS[0]);
  const first = hasher.digest();
  assert.equal(hasher.digest(), first);
  assert.equal(isHashHex(first), true);
});

Deno.test("FileHasher.addChunk() rejects malformed ids and ids after digest() with TypeError", () => {
  const hasher = new FileHasher();
  assert.throws(() => hasher.addChunk("ab12"), { name: "TypeError", message: /Cannot add chunk "ab12"/ });
  assert.throws(() => hasher.addChunk(ABC_SHA256.toUpperCase()), TypeError);
  hasher.digest();
  assert.throws(() => hasher.addChunk(ABC_SHA256), { name: "TypeError", message: /already computed/ });
  assert.throws(() => fileHashOfChunks([IDS[0], "nope"]), TypeError);
});
