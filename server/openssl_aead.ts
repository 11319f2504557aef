// AES-256-GCM, AES-256-CTR and HMAC-SHA256 through OpenSSL's libcrypto (Deno.dlopen): AES-NI speed, no copies.
import type { ChunkCrypto } from "./chunk_cipher.ts";

/** The libcrypto file names tried, in order (OpenSSL 3, then whatever the unversioned link points at). */
export const LIBCRYPTO_NAMES = [
  "libcrypto.so.3",
  "libcrypto.so",
  "libcrypto.3.dylib",
  "libcrypto.dylib",
] as const;

const SYMBOLS = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_aes_256_ctr: { parameters: [], result: "pointer" },
  EVP_sha256: { parameters: [], result: "pointer" },
  // OpenSSL 3's explicit fetch: a cipher fetched once spares every init the implicit fetch (about 1 µs a call).
  EVP_CIPHER_fetch: { parameters: ["pointer", "buffer", "pointer"], result: "pointer", optional: true },
  EVP_EncryptInit_ex: { parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"], result: "i32" },
  EVP_EncryptUpdate: { parameters: ["pointer", "buffer", "buffer", "buffer", "i32"], result: "i32" },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: { parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptUpdate: { parameters: ["pointer", "buffer", "buffer", "buffer", "i32"], result: "i32" },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
  HMAC: {
    parameters: ["pointer", "buffer", "i32", "buffer", "usize", "buffer", "buffer"],
    result: "pointer",
  },
  // The low-level SHA-256 calls (deprecated in OpenSSL 3, still exported by its usual builds): an HMAC from
  // precomputed pad states saves HMAC()'s fetches and allocations on every call.
  SHA256_Init: { parameters: ["buffer"], result: "i32", optional: true },
  SHA256_Update: { parameters: ["buffer", "buffer", "usize"], result: "i32", optional: true },
  SHA256_Final: { parameters: ["buffer", "buffer"], result: "i32", optional: true },
} as const;

/** Bytes of OpenSSL's SHA256_CTX (112 on every 3.x build), with room to spare. */
const SHA256_CTX_BYTES = 128;

/** EVP_CTRL_GCM_GET_TAG and EVP_CTRL_GCM_SET_TAG of openssl/evp.h. */
const GCM_GET_TAG = 0x10;
const GCM_SET_TAG = 0x11;
const TAG_BYTES = 16;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>;

/** A libcrypto call that failed: a bug or an unusable library, never damaged data (that is `null` from `open`). */
export class LibcryptoError extends Error {
  /** The error's name. */
  override name = "LibcryptoError";
}

/**
 * {@linkcode ChunkCrypto} over libcrypto. One cipher context per call, freed (and so cleansed of the key schedule
 * by OpenSSL) before the call returns; every call is synchronous, so nothing else runs in between.
 */
class OpenSslCrypto implements ChunkCrypto {
  readonly name: string;
  readonly synchronous = true;
  readonly #s: Lib["symbols"];
  readonly #gcm: Deno.PointerValue;
  readonly #ctr: Deno.PointerValue;
  readonly #sha256: Deno.PointerValue;
  /** Output length of the Update/Final calls (they write it; we do not need it: GCM and CTR are length-preserving). */
  readonly #outLen = new Uint8Array(4);

  constructor(lib: Lib, file: string) {
    this.name = `OpenSSL ${file}`;
    this.#s = lib.symbols;
    // Fetched once and held for the process's life (one object per algorithm; the library is never unloaded).
    const fetch = (algorithm: string) =>
      this.#s.EVP_CIPHER_fetch?.(null, new TextEncoder().encode(`${algorithm}\0`), null) ?? null;
    this.#gcm = fetch("AES-256-GCM") ?? this.#s.EVP_aes_256_gcm();
    this.#ctr = fetch("AES-256-CTR") ?? this.#s.EVP_aes_256_ctr();
    this.#sha256 = this.#s.EVP_sha256();
    if (this.#gcm === null || this.#ctr === null || this.#sha256 === null) {
      throw new LibcryptoError(`${file} lacks AES-256-GCM, AES-256-CTR or SHA-256`);
    }
  }

  #ctx(): Deno.PointerObject {
    const ctx = this.#s.EVP_CIPHER_CTX_new();
    if (ctx === null) throw new LibcryptoError("EVP_CIPHER_CTX_new failed (out of memory?)");
    return ctx;
  }

  #check(ok: number, what: string): void {
    if (ok !== 1) throw new LibcryptoError(`${what} failed`);
  }

  hmacSha256(key: Uint8Array): (data: Uint8Array) => Uint8Array {
    const s = this.#s;
    const { SHA256_Init: init, SHA256_Update: update, SHA256_Final: final } = s;
    if (init === null || update === null || final === null || key.length > 64) {
      const copy = key.slice();
      return (data) => {
        const md = new Uint8Array(32);
        if (s.HMAC(this.#sha256, copy, copy.length, data, BigInt(data.length), md, null) === null) {
          throw new LibcryptoError("HMAC-SHA256 failed");
        }
        return md;
      };
    }
    // HMAC(k, m) = H((k ^ opad) | H((k ^ ipad) | m)): both pads' block absorbed once, their states copied per call.
    const padded = (byte: number) => {
      const block = new Uint8Array(64).fill(byte);
      for (let i = 0; i < key.length; i++) block[i] ^= key[i];
      const state = new Uint8Array(SHA256_CTX_BYTES);
      this.#check(init(state), "SHA256_Init");
      this.#check(update(state, block, 64n), "SHA256_Update");
      block.fill(0);
      return state;
    };
    const inner = padded(0x36);
    const outer = padded(0x5c);
    const work = new Uint8Array(SHA256_CTX_BYTES);
    return (data) => {
      const md = new Uint8Array(32);
      work.set(inner);
      update(work, data, BigInt(data.length));
      final(md, work);
      work.set(outer);
      update(work, md, 32n);
      final(md, work);
      work.fill(0);
      return md;
    };
  }

  gcmSeal(
    key: Uint8Array,
    parts: { nonce: Uint8Array; aad: Uint8Array; plain: readonly Uint8Array[] },
    out: Uint8Array,
  ): void {
    const s = this.#s;
    const ctx = this.#ctx();
    try {
      this.#check(s.EVP_EncryptInit_ex(ctx, this.#gcm, null, key, parts.nonce), "EVP_EncryptInit_ex");
      this.#check(s.EVP_EncryptUpdate(ctx, null, this.#outLen, parts.aad, parts.aad.length), "GCM AAD");
      let at = 0;
      for (const plain of parts.plain) {
        if (plain.length === 0) continue;
        this.#check(
          s.EVP_EncryptUpdate(ctx, out.subarray(at), this.#outLen, plain, plain.length),
          "EVP_EncryptUpdate",
        );
        at += plain.length;
      }
      if (out.length !== at + TAG_BYTES) throw new RangeError(`GCM output needs ${at + TAG_BYTES} bytes`);
      this.#check(s.EVP_EncryptFinal_ex(ctx, out.subarray(at), this.#outLen), "EVP_EncryptFinal_ex");
      this.#check(s.EVP_CIPHER_CTX_ctrl(ctx, GCM_GET_TAG, TAG_BYTES, out.subarray(at)), "GCM tag");
    } finally {
      s.EVP_CIPHER_CTX_free(ctx);
    }
  }

  gcmOpen(
    key: Uint8Array,
    parts: { nonce: Uint8Array; aad: Uint8Array; sealed: Uint8Array; inPlace?: boolean },
  ): Uint8Array | null {
    const { sealed } = parts;
    if (sealed.length < TAG_BYTES) return null;
    const s = this.#s;
    const n = sealed.length - TAG_BYTES;
    // In place, the plaintext overwrites the ciphertext (OpenSSL allows exactly that overlap): no new buffer.
    const plain = parts.inPlace ? sealed.subarray(0, n) : new Uint8Array(n);
    // The tag is copied: OpenSSL's SET_TAG takes a writable pointer.
    const tag = sealed.slice(n);
    const ctx = this.#ctx();
    let ok: number;
    try {
      this.#check(s.EVP_DecryptInit_ex(ctx, this.#gcm, null, key, parts.nonce), "EVP_DecryptInit_ex");
      this.#check(s.EVP_DecryptUpdate(ctx, null, this.#outLen, parts.aad, parts.aad.length), "GCM AAD");
      if (n > 0) {
        this.#check(s.EVP_DecryptUpdate(ctx, plain, this.#outLen, sealed, n), "EVP_DecryptUpdate");
      }
      this.#check(s.EVP_CIPHER_CTX_ctrl(ctx, GCM_SET_TAG, TAG_BYTES, tag), "GCM set tag");
      // The tag is checked here; until it passes, `plain` is unauthenticated and never leaves this function.
      ok = s.EVP_DecryptFinal_ex(ctx, plain.subarray(n), this.#outLen);
    } finally {
      s.EVP_CIPHER_CTX_free(ctx);
    }
    if (ok !== 1) {
      plain.fill(0);
      return null;
    }
    return plain;
  }

  ctr(key: Uint8Array, counter: Uint8Array, data: Uint8Array): Uint8Array {
    const s = this.#s;
    const out = new Uint8Array(data.length);
    const ctx = this.#ctx();
    try {
      this.#check(s.EVP_EncryptInit_ex(ctx, this.#ctr, null, key, counter), "EVP_EncryptInit_ex (CTR)");
      if (data.length > 0) {
        this.#check(
          s.EVP_EncryptUpdate(ctx, out, this.#outLen, data, data.length),
          "EVP_EncryptUpdate (CTR)",
        );
      }
    } finally {
      s.EVP_CIPHER_CTX_free(ctx);
    }
    return out;
  }
}

/**
 * Loads libcrypto (the first of {@linkcode LIBCRYPTO_NAMES} that opens) and checks it with a known-answer test.
 * Resolves the reason instead when there is none, the FFI permission is absent, or the test fails.
 *
 * @example
 * ```ts
 * const native = loadOpenSslCrypto();
 * console.log("crypto" in native ? native.crypto.name : `WebCrypto (${native.reason})`);
 * ```
 */
export function loadOpenSslCrypto(
  options: { names?: readonly string[] } = {},
): { crypto: ChunkCrypto } | { reason: string } {
  const reasons: string[] = [];
  for (const file of options.names ?? LIBCRYPTO_NAMES) {
    let lib: Lib;
    try {
      lib = Deno.dlopen(file, SYMBOLS);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
        return { reason: "no FFI permission (--allow-ffi)" };
      }
      reasons.push(
        `${file}: ${(error as Error).message.split("\n")[0].replace(/^(Could not open library: )+/, "")}`,
      );
      continue;
    }
    try {
      const crypto = new OpenSslCrypto(lib, file);
      selfTest(crypto);
      return { crypto };
    } catch (error) {
      lib.close();
      reasons.push(`${file}: ${(error as Error).message}`);
    }
  }
  return { reason: reasons.length > 0 ? reasons.join("; ") : "no library names given" };
}

/** Known answers (NIST GCM test case 14, RFC 4231 HMAC case 2): a library that gets them wrong is not used. */
function selfTest(crypto: OpenSslCrypto): void {
  const key = new Uint8Array(32);
  const out = new Uint8Array(32);
  crypto.gcmSeal(key, { nonce: new Uint8Array(12), aad: new Uint8Array(), plain: [new Uint8Array(16)] }, out);
  if (out.toHex() !== "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919") {
    throw new LibcryptoError("AES-256-GCM gave a wrong answer");
  }
  const opened = crypto.gcmOpen(key, { nonce: new Uint8Array(12), aad: new Uint8Array(), sealed: out });
  out[31] ^= 1;
  const tampered = crypto.gcmOpen(key, { nonce: new Uint8Array(12), aad: new Uint8Array(), sealed: out });
  if (opened === null || opened.some((b) => b !== 0) || tampered !== null) {
    throw new LibcryptoError("AES-256-GCM decryption does not check its tag");
  }
  const mac = crypto.hmacSha256(new TextEncoder().encode("Jefe"))(
    new TextEncoder().encode("what do ya want for nothing?"),
  );
  if (mac.toHex() !== "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843") {
    throw new LibcryptoError("HMAC-SHA256 gave a wrong answer");
  }
  // CTR from counter 2 is GCM's keystream: the first ciphertext block above, from the same key and nonce.
  const counter = new Uint8Array(16);
  counter[15] = 2;
  if (crypto.ctr(key, counter, new Uint8Array(16)).toHex() !== "cea7403d4d606b6e074ec5d3baf39d18") {
    throw new LibcryptoError("AES-256-CTR gave a wrong answer");
  }
}
