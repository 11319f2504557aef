// SHA-256 helpers: chunk ids and the whole-file hash, which is defined over the chunk ids.

import { createHash, type Hash } from "node:crypto";

/** The bytes that start every whole-file hash input, so a file hash never equals a chunk hash. */
export const FILE_HASH_PREFIX = "filesync-file-v1\n";

const HASH_HEX = /^[0-9a-f]{64}$/;

/**
 * Returns the SHA-256 of `data` as 64 lowercase hex characters: the id of a chunk.
 *
 * @example
 * ```ts
 * sha256Hex(new Uint8Array()); // "e3b0c442...b855"
 * ```
 */
export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * Returns the raw 32-byte SHA-256 of `data`.
 *
 * @example
 * ```ts
 * sha256Raw(new TextEncoder().encode("abc")).length; // 32
 * ```
 */
export function sha256Raw(data: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("sha256").update(data).digest());
}

/**
 * Tells whether `s` is a SHA-256 digest in the canonical form used on the wire: 64 lowercase hex characters.
 *
 * @example
 * ```ts
 * isHashHex("ab"); // false
 * ```
 */
export function isHashHex(s: string): boolean {
  return HASH_HEX.test(s);
}

/**
 * Computes a whole-file hash from the file's chunk ids, in order, without a second pass over the bytes.
 * The hash is the hex SHA-256 of the ASCII bytes {@linkcode FILE_HASH_PREFIX} followed by the raw 32-byte
 * digest of each chunk. An empty file has no chunks, so its hash is the SHA-256 of the prefix alone.
 *
 * @example
 * ```ts
 * const hasher = new FileHasher();
 * for await (const chunk of chunkFile("big.iso")) hasher.addChunk(chunk.id);
 * const fileHash = hasher.digest();
 * ```
 */
export class FileHasher {
  #hash: Hash = createHash("sha256").update(FILE_HASH_PREFIX, "latin1");
  #digest: string | undefined;

  /**
   * Appends the next chunk's id (64 lowercase hex characters).
   * Throws a TypeError for a malformed id or after {@linkcode FileHasher.digest} was called.
   */
  addChunk(idHex: string): void {
    if (!isHashHex(idHex)) throw new TypeError(`Cannot add chunk "${idHex}": not a SHA-256 hex digest`);
    if (this.#digest !== undefined) {
      throw new TypeError(`Cannot add chunk "${idHex}": the file hash was already computed`);
    }
    this.#hash.update(idHex, "hex");
  }

  /** Returns the file hash as 64 lowercase hex characters; later calls return the same value. */
  digest(): string {
    this.#digest ??= this.#hash.digest("hex");
    return this.#digest;
  }
}

/**
 * Computes the whole-file hash of a file made of the chunks `ids`, in order (see {@linkcode FileHasher}).
 *
 * @example
 * ```ts
 * fileHashOfChunks([]); // the hash of an empty file
 * ```
 */
export function fileHashOfChunks(ids: readonly string[]): string {
  const hasher = new FileHasher();
  for (const id of ids) hasher.addChunk(id);
  return hasher.digest();
}
