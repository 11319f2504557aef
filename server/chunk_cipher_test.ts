// Tests of the chunk cipher (both backends, each way): names, sealing and opening, ids read back from a file's head, key checks.
import assert from "node:assert/strict";
import { sha256Hex } from "../protocol/hash.ts";
import {
  ChunkCipher,
  type ChunkCrypto,
  ChunkDamagedError,
  SEAL_OVERHEAD,
  SEALED_HEAD_BYTES,
  WEB_CRYPTO,
} from "./chunk_cipher.ts";
import { loadOpenSslCrypto } from "./openssl_aead.ts";

const key = (fill: number) => new Uint8Array(32).fill(fill);
const data = new TextEncoder().encode("chunk content");
const id = sha256Hex(data);
const idBytesOf = (hex: string) => Uint8Array.from(hex.match(/../g)!, (b) => parseInt(b, 16));

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
  await assert.rejects(cipher.open(otherId, sealed, { name: cipher.nameOf(id) }), /it holds another chunk/);
});

// Both backends, so each test below runs across every (writer, reader) pair: files written by one are read by
// the other, and damage reads as the same ChunkDamagedError through either.
const native = loadOpenSslCrypto();
if (!("crypto" in native)) throw new Error(`These tests need libcrypto: ${native.reason}`);
const NATIVE: ChunkCrypto = native.crypto;
const BACKENDS: [string, ChunkCrypto][] = [["OpenSSL", NATIVE], ["WebCrypto", WEB_CRYPTO]];
const PAIRS = BACKENDS.flatMap(([w, writer]) => BACKENDS.map(([r, reader]) => ({ w, writer, r, reader })));
const sizes = [0, 1, 15, 16, 17, 4096, 65_536 + 3];

Deno.test("ChunkCipher: a chunk sealed through either backend opens, and names its id, through the other", async () => {
  for (const { w, writer, r, reader } of PAIRS) {
    const sealer = new ChunkCipher(key(7), { crypto: writer });
    const opener = new ChunkCipher(key(7), { crypto: reader });
    assert.equal(sealer.keyCheck, opener.keyCheck);
    for (const size of sizes) {
      const content = Uint8Array.from({ length: size }, (_, i) => (i * 31 + size) & 0xff);
      const contentId = sha256Hex(content);
      const name = sealer.nameOf(contentId);
      assert.equal(opener.nameOf(contentId), name, `${w} → ${r}: names`);
      const sealed = await sealer.seal(contentId, content);
      assert.equal(sealed.length, size + SEAL_OVERHEAD);
      assert.deepEqual(await opener.open(contentId, sealed), content, `${w} → ${r}: ${size} bytes`);
      const copy = sealed.slice();
      assert.deepEqual(
        await opener.open(contentId, copy, { inPlace: true }),
        content,
        `${w} → ${r}: in place`,
      );
      if (writer.synchronous) {
        // Sealed into a view of a bigger reused buffer, as the chunk store does.
        const reused = new Uint8Array(size + SEAL_OVERHEAD + 100).fill(0xee);
        sealer.sealInto(contentId, content, reused.subarray(0, size + SEAL_OVERHEAD));
        assert.ok(
          reused.subarray(size + SEAL_OVERHEAD).every((b) => b === 0xee),
          "nothing written past the view",
        );
        assert.deepEqual(await opener.open(contentId, reused.subarray(0, size + SEAL_OVERHEAD)), content);
      } else {
        assert.throws(
          () => sealer.sealInto(contentId, content, new Uint8Array(size + SEAL_OVERHEAD)),
          TypeError,
        );
      }
      assert.equal(opener.idOf(name, sealed.subarray(0, SEALED_HEAD_BYTES)), contentId, `${w} → ${r}: idOf`);
    }
  }
});

Deno.test("ChunkCipher: both backends give the same bytes for the same nonce (one format, byte for byte)", async () => {
  const nonce = Uint8Array.from({ length: 12 }, (_, i) => i + 1);
  const aad = new TextEncoder().encode("FSC1");
  const k = new Uint8Array(32).fill(0x42);
  for (const size of sizes) {
    const plain = [idBytesOf(id), Uint8Array.from({ length: size }, (_, i) => i & 0xff)];
    const outs = await Promise.all(BACKENDS.map(async ([, backend]) => {
      const out = new Uint8Array(32 + size + 16);
      await backend.gcmSeal(k, { nonce, aad, plain }, out);
      return out;
    }));
    assert.deepEqual(outs[0], outs[1], `${size} bytes`);
  }
  for (const macKey of [k, new Uint8Array(0), new Uint8Array(64).fill(1), new Uint8Array(100).fill(2)]) {
    const [nativeMac, webMac] = [NATIVE.hmacSha256(macKey), WEB_CRYPTO.hmacSha256(macKey)];
    for (const size of sizes) {
      const message = new Uint8Array(size).fill(size & 0xff);
      assert.deepEqual(nativeMac(message), webMac(message), `HMAC, ${macKey.length}-byte key, ${size} bytes`);
      assert.deepEqual(nativeMac(message), webMac(message), "the same again (pads reused)");
    }
  }
  const counter = new Uint8Array(16).fill(7);
  assert.deepEqual(NATIVE.ctr(k, counter, data), WEB_CRYPTO.ctr(k, counter, data));
});

Deno.test("ChunkCipher: tampering is the same ChunkDamagedError through either backend, whichever wrote it", async () => {
  const content = new Uint8Array(1000).fill(9);
  const contentId = sha256Hex(content);
  const damage: [string, (s: Uint8Array) => Uint8Array, RegExp][] = [
    ["tag bit", (s) => s.map((b, i) => i === s.length - 1 ? b ^ 0x80 : b), /authentication failed/],
    [
      "ciphertext bit",
      (s) => s.map((b, i) => i === SEALED_HEAD_BYTES + 500 ? b ^ 1 : b),
      /authentication failed/,
    ],
    ["id bit", (s) => s.map((b, i) => i === SEALED_HEAD_BYTES - 1 ? b ^ 1 : b), /authentication failed/],
    ["nonce bit", (s) => s.map((b, i) => i === 5 ? b ^ 1 : b), /authentication failed/],
    ["truncated", (s) => s.subarray(0, s.length - 1), /authentication failed/],
    ["tag only", (s) => s.subarray(0, SEAL_OVERHEAD), /authentication failed/],
    ["magic", (s) => s.map((b, i) => i === 3 ? 0x32 : b), /not an encrypted chunk/],
  ];
  for (const { w, writer, r, reader } of PAIRS) {
    const sealed = await new ChunkCipher(key(8), { crypto: writer }).seal(contentId, content);
    const opener = new ChunkCipher(key(8), { crypto: reader });
    for (const [what, tamper, reason] of damage) {
      for (const inPlace of [false, true]) {
        const bytes = tamper(sealed).slice();
        await assert.rejects(opener.open(contentId, bytes, { inPlace }), (e: Error) => {
          assert.ok(e instanceof ChunkDamagedError, `${w} → ${r}: ${what}: ${e}`);
          assert.match(e.reason, reason, `${w} → ${r}: ${what}`);
          return true;
        });
        // Whatever was decrypted in place before the tag failed is gone: no unauthenticated plaintext is left.
        const plainLeft = bytes.subarray(SEALED_HEAD_BYTES, SEALED_HEAD_BYTES + 1000);
        assert.ok(!plainLeft.every((b) => b === 9), `${w} → ${r}: ${what}: plaintext left in the buffer`);
      }
    }
    await assert.rejects(
      new ChunkCipher(key(9), { crypto: reader }).open(contentId, sealed),
      /authentication failed/,
      `${w} → ${r}: another key`,
    );
  }
});

Deno.test("loadOpenSslCrypto() names why it did not load, and the fallback is WebCrypto without the FFI permission", async () => {
  const missing = loadOpenSslCrypto({ names: ["libfilesync-no-such-crypto.so"] });
  assert.ok(
    "reason" in missing && /libfilesync-no-such-crypto\.so/.test(missing.reason),
    JSON.stringify(missing),
  );
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      script,
      `import { defaultChunkCrypto } from ${
        JSON.stringify(new URL("./chunk_cipher.ts", import.meta.url).href)
      };\n` +
        `const { crypto, reason } = defaultChunkCrypto();\nconsole.log(crypto.name + " | " + reason);\n`,
    );
    const run = async (permissions: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--no-config", "--allow-read", "--allow-env", ...permissions, script],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return new TextDecoder().decode(out.stdout).trim() + new TextDecoder().decode(out.stderr).trim();
    };
    assert.equal(await run([]), "WebCrypto | no FFI permission (--allow-ffi)");
    assert.match(await run(["--allow-ffi"]), /^OpenSSL libcrypto\.so(\.3)? \| undefined$/);
  } finally {
    await Deno.remove(script);
  }
});
