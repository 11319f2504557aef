// Encryption at rest of stored chunks: names that hide chunk ids, AES-256-GCM under per-chunk keys, a key check.
import { createDecipheriv, createHmac, hkdfSync } from "node:crypto";
import { loadOpenSslCrypto } from "./openssl_aead.ts";
import { concatBytes } from "../protocol/bytes.ts";

/** Bytes of a master key (AES-256). */
export const MASTER_KEY_BYTES = 32;
/** First bytes of every encrypted chunk file: the format ("FSC1"), authenticated with the content. */
const MAGIC = Uint8Array.of(0x46, 0x53, 0x43, 0x31);
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** A chunk id (SHA-256) in bytes: the start of the plaintext, so a stored chunk names itself. */
const ID_BYTES = 32;
/** Bytes before the content's ciphertext: magic, nonce and the encrypted chunk id. Enough for {@linkcode ChunkCipher.idOf}. */
export const SEALED_HEAD_BYTES: number = MAGIC.length + NONCE_BYTES + ID_BYTES;
/** How many bytes an encrypted chunk file holds beyond the chunk itself. */
export const SEAL_OVERHEAD: number = SEALED_HEAD_BYTES + TAG_BYTES;

/** A stored chunk that does not decrypt and authenticate (tampered, truncated, or another file). */
export class ChunkDamagedError extends Error {
  /** The error's name. */
  override name = "ChunkDamagedError";
  /** The chunk id that was asked for. */
  readonly id: string;
  /** What is wrong with the stored copy, e.g. "authentication failed". */
  readonly reason: string;
  /** Explains the damage, e.g. `ChunkDamagedError("ab12…", "authentication failed")`. */
  constructor(id: string, reason: string) {
    super(`Cannot read chunk "${id.slice(0, 12)}": its stored copy is damaged (${reason})`);
    this.id = id;
    this.reason = reason;
  }
}

function idBytes(id: string): Uint8Array {
  if (!/^[0-9a-f]{64}$/.test(id)) throw new TypeError(`Not a chunk id: "${id.slice(0, 70)}"`);
  return Uint8Array.fromHex(id);
}

function startsWithMagic(bytes: Uint8Array): boolean {
  return bytes.length >= MAGIC.length && MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * The primitives a {@linkcode ChunkCipher} is built from, so they can come from OpenSSL's libcrypto (AES-NI, no
 * copies: see server/openssl_aead.ts) or from WebCrypto and node:crypto. Every backend gives the same bytes, so
 * chunks written through one are read through the other.
 */
export interface ChunkCrypto {
  /** What the log line says, e.g. "OpenSSL libcrypto.so.3" or "WebCrypto". */
  readonly name: string;
  /**
   * True if `gcmSeal` and `gcmOpen` finish before they return (never a Promise), so the caller may reuse their
   * buffers right after (see {@linkcode ChunkCipher.sealInto}).
   */
  readonly synchronous: boolean;
  /** HMAC-SHA256 under `key`: a function from data to its 32-byte MAC (the key's pads are prepared once). */
  hmacSha256(key: Uint8Array): (data: Uint8Array) => Uint8Array;
  /**
   * AES-256-GCM of the concatenated `plain` parts with a 16-byte tag, written to `out` (exactly their length
   * plus 16 bytes: ciphertext, then tag).
   */
  gcmSeal(
    key: Uint8Array,
    parts: { nonce: Uint8Array; aad: Uint8Array; plain: readonly Uint8Array[] },
    out: Uint8Array,
  ): void | Promise<void>;
  /**
   * The plaintext of `sealed` (ciphertext, then its 16-byte tag), or null if the tag does not authenticate it.
   * With `inPlace` a backend may write the plaintext over the ciphertext and return a view of it (and then
   * zeroes it when the tag fails); no plaintext is returned before the tag is checked.
   */
  gcmOpen(
    key: Uint8Array,
    parts: { nonce: Uint8Array; aad: Uint8Array; sealed: Uint8Array; inPlace?: boolean },
  ): Uint8Array | null | Promise<Uint8Array | null>;
  /** AES-256-CTR of `data` from the 16-byte `counter` block. */
  ctr(key: Uint8Array, counter: Uint8Array, data: Uint8Array): Uint8Array;
}

/** {@linkcode ChunkCrypto} through WebCrypto (AES-GCM) and node:crypto (HMAC, CTR): the fallback when libcrypto is not loaded. */
export const WEB_CRYPTO: ChunkCrypto = {
  name: "WebCrypto",
  synchronous: false,
  hmacSha256: (key) => (data) => new Uint8Array(createHmac("sha256", key).update(data).digest()),
  async gcmSeal(key, parts, out) {
    const plain = parts.plain.length === 1 ? parts.plain[0] : concatBytes(parts.plain);
    const cryptoKey = await crypto.subtle.importKey("raw", key as Uint8Array<ArrayBuffer>, "AES-GCM", false, [
      "encrypt",
    ]);
    const sealed = await crypto.subtle.encrypt(
      {
        name: "AES-GCM",
        iv: parts.nonce as Uint8Array<ArrayBuffer>,
        additionalData: parts.aad as Uint8Array<ArrayBuffer>,
      },
      cryptoKey,
      plain as Uint8Array<ArrayBuffer>,
    );
    if (sealed.byteLength !== out.length) throw new RangeError(`GCM output needs ${sealed.byteLength} bytes`);
    out.set(new Uint8Array(sealed));
  },
  async gcmOpen(key, parts) {
    const cryptoKey = await crypto.subtle.importKey("raw", key as Uint8Array<ArrayBuffer>, "AES-GCM", false, [
      "decrypt",
    ]);
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: parts.nonce as Uint8Array<ArrayBuffer>,
            additionalData: parts.aad as Uint8Array<ArrayBuffer>,
          },
          cryptoKey,
          parts.sealed as Uint8Array<ArrayBuffer>,
        ),
      );
    } catch {
      return null;
    }
  },
  ctr: (key, counter, data) => new Uint8Array(createDecipheriv("aes-256-ctr", key, counter).update(data)),
};

let chosen: { crypto: ChunkCrypto; reason?: string } | undefined;

/**
 * The process's chunk crypto, chosen once: libcrypto when it loads ({@linkcode loadOpenSslCrypto}), otherwise
 * {@linkcode WEB_CRYPTO} with the reason (no library, no FFI permission).
 */
export function defaultChunkCrypto(): { crypto: ChunkCrypto; reason?: string } {
  if (!chosen) {
    const native = loadOpenSslCrypto();
    chosen = "crypto" in native ? { crypto: native.crypto } : { crypto: WEB_CRYPTO, reason: native.reason };
  }
  return chosen;
}

/** Options of {@linkcode ChunkCipher.seal} and {@linkcode ChunkCipher.open}. */
export interface SealOptions {
  /** The chunk's stored name, if the caller has it already. @default {@linkcode ChunkCipher.nameOf} of the id */
  name?: string;
}

/** Options of {@linkcode ChunkCipher}. */
export interface ChunkCipherOptions {
  /** Where AES-GCM, AES-CTR and HMAC come from. @default {@linkcode defaultChunkCrypto} */
  crypto?: ChunkCrypto;
}

/**
 * The server's chunk encryption, from its master key. Three subkeys are derived with HKDF-SHA256 under distinct
 * labels: one names stored chunks (`name = HMAC(K_name, id)`, so the stored name reveals nothing about the
 * content's hash, and equal chunks still get equal names: dedup works), one derives each chunk's own AES-256-GCM
 * key (`HMAC(K_chunk, name)`: a function of the chunk id that needs the master key), and one is the key check
 * value stored beside the data so a wrong key is noticed at start.
 *
 * A stored chunk is `"FSC1" | nonce (12) | AES-256-GCM(id (32) | content) | tag (16)`, with the magic as
 * additional data. The nonce is random: each key encrypts only the rare re-uploads of one chunk, so a 96-bit
 * random nonce never repeats in practice, and nothing has to be remembered between writes.
 *
 * @example
 * ```ts
 * const cipher = new ChunkCipher(crypto.getRandomValues(new Uint8Array(32)));
 * const sealed = await cipher.seal(id, data);
 * const back = await cipher.open(id, sealed); // equal to data, or a ChunkDamagedError
 * ```
 */
export class ChunkCipher {
  readonly #nameMac: (data: Uint8Array) => Uint8Array;
  readonly #chunkKeyMac: (data: Uint8Array) => Uint8Array;
  /** Where the primitives come from (its `name` is what the server's start log says). */
  readonly crypto: ChunkCrypto;
  /** Hex value stored beside the data: equal for the same master key, unrelated for any other. */
  readonly keyCheck: string;

  /** Derives the subkeys; a key that is not {@linkcode MASTER_KEY_BYTES} long is a RangeError. */
  constructor(masterKey: Uint8Array, options: ChunkCipherOptions = {}) {
    if (masterKey.length !== MASTER_KEY_BYTES) {
      throw new RangeError(`A master key has ${MASTER_KEY_BYTES} bytes, not ${masterKey.length}`);
    }
    this.crypto = options.crypto ?? defaultChunkCrypto().crypto;
    const derive = (label: string) =>
      new Uint8Array(hkdfSync("sha256", masterKey, new Uint8Array(), `filesync ${label} v1`, 32));
    const nameKey = derive("chunk names");
    const chunkKeys = derive("chunk keys");
    this.#nameMac = this.crypto.hmacSha256(nameKey);
    this.#chunkKeyMac = this.crypto.hmacSha256(chunkKeys);
    this.keyCheck = derive("key check").toHex();
  }

  /** The stored name of a chunk: 64 hex digits that only the master key links to `id`. */
  nameOf(id: string): string {
    return this.#nameMac(idBytes(id)).toHex();
  }

  /** Chunk `name`'s own AES key; the caller zeroes it after use. */
  #rawKey(name: string): Uint8Array {
    return this.#chunkKeyMac(Uint8Array.fromHex(name));
  }

  /** The bytes to store for chunk `id` (its content `data`), in a buffer of their own; a fresh nonce each time. */
  async seal(id: string, data: Uint8Array, options: SealOptions = {}): Promise<Uint8Array> {
    const out = new Uint8Array(SEAL_OVERHEAD + data.length);
    await this.#sealTo(id, data, out, options.name ?? this.nameOf(id));
    return out;
  }

  /**
   * {@linkcode ChunkCipher.seal} into `out` (exactly {@linkcode SEAL_OVERHEAD} + `data.length` bytes, e.g. a view
   * of a buffer reused for every chunk), finished when it returns. Only with a
   * {@linkcode ChunkCrypto.synchronous} backend (libcrypto); a TypeError otherwise.
   */
  sealInto(id: string, data: Uint8Array, out: Uint8Array, options: SealOptions = {}): void {
    if (!this.crypto.synchronous) throw new TypeError(`${this.crypto.name} cannot seal synchronously`);
    void this.#sealTo(id, data, out, options.name ?? this.nameOf(id));
  }

  #sealTo(id: string, data: Uint8Array, out: Uint8Array, name: string): void | Promise<void> {
    if (out.length !== SEAL_OVERHEAD + data.length) {
      throw new RangeError(
        `A sealed chunk of ${data.length} bytes takes ${SEAL_OVERHEAD + data.length} bytes`,
      );
    }
    out.set(MAGIC);
    const nonce = crypto.getRandomValues(out.subarray(MAGIC.length, MAGIC.length + NONCE_BYTES));
    const key = this.#rawKey(name);
    const parts = { nonce, aad: MAGIC, plain: [idBytes(id), data] };
    const zero = () => key.fill(0);
    let pending;
    try {
      pending = this.crypto.gcmSeal(key, parts, out.subarray(MAGIC.length + NONCE_BYTES));
    } catch (error) {
      zero();
      throw error;
    }
    if (pending) return pending.finally(zero);
    zero();
  }

  /**
   * Chunk `id`'s content from its stored bytes; anything tampered or truncated is a {@linkcode ChunkDamagedError}.
   * With `inPlace` the content may be decrypted over `stored` (a buffer the caller gives up) instead of copied.
   */
  async open(
    id: string,
    stored: Uint8Array,
    options: SealOptions & { inPlace?: boolean } = {},
  ): Promise<Uint8Array> {
    if (stored.length < SEAL_OVERHEAD) {
      throw new ChunkDamagedError(id, `${stored.length} bytes, shorter than any encrypted chunk`);
    }
    if (!startsWithMagic(stored)) throw new ChunkDamagedError(id, "not an encrypted chunk");
    const key = this.#rawKey(options.name ?? this.nameOf(id));
    let plain: Uint8Array | null;
    try {
      plain = await this.crypto.gcmOpen(key, {
        nonce: stored.subarray(MAGIC.length, MAGIC.length + NONCE_BYTES),
        aad: MAGIC,
        sealed: stored.subarray(MAGIC.length + NONCE_BYTES),
        inPlace: options.inPlace,
      });
    } finally {
      key.fill(0);
    }
    if (plain === null) {
      throw new ChunkDamagedError(
        id,
        "authentication failed: tampered, truncated or encrypted with another key",
      );
    }
    const expected = idBytes(id);
    if (!expected.every((b, i) => plain[i] === b)) throw new ChunkDamagedError(id, "it holds another chunk");
    return plain.subarray(ID_BYTES);
  }

  /**
   * The chunk id a stored file holds, from its name and first {@linkcode SEALED_HEAD_BYTES} bytes, without reading
   * the rest (how `list()` yields ids): the id's ciphertext is decrypted with the GCM keystream (AES-CTR from
   * counter 2) and accepted only if it names the file, which authenticates it (`nameOf(id) === name`). Null for
   * a file that is no encrypted chunk of this key.
   */
  idOf(name: string, head: Uint8Array): string | null {
    if (!/^[0-9a-f]{64}$/.test(name) || head.length < SEALED_HEAD_BYTES || !startsWithMagic(head)) {
      return null;
    }
    const counter = new Uint8Array(16);
    counter.set(head.subarray(MAGIC.length, MAGIC.length + NONCE_BYTES));
    counter[15] = 2; // GCM with a 96-bit nonce encrypts from inc32(nonce | 0^31 | 1)
    const key = this.#rawKey(name);
    let idBytes: Uint8Array;
    try {
      idBytes = this.crypto.ctr(key, counter, head.subarray(MAGIC.length + NONCE_BYTES, SEALED_HEAD_BYTES));
    } finally {
      key.fill(0);
    }
    const id = idBytes.toHex();
    return this.nameOf(id) === name ? id : null;
  }
}
