// The server's master key (created on first start in DIR/keys/, or read from --master-key FILE) and the chunk
// store it opens.
import { dirname, join } from "node:path";
import { UserError } from "../protocol/user_error.ts";
import { ChunkCipher, defaultChunkCrypto, MASTER_KEY_BYTES } from "./chunk_cipher.ts";
import { type ChunkStore, chunkStoreRecord, isS3Spec, openChunkStore, WrongKeyError } from "./chunk_store.ts";
import type { S3Credentials } from "./s3_location.ts";

/** Where the master key lives unless `--master-key FILE` says otherwise: `DIR/keys/master.key`. */
export function defaultMasterKeyPath(dataDir: string): string {
  return join(dataDir, "keys", "master.key");
}

/** The text of a key file: the key in hex and a newline. */
export function formatMasterKey(key: Uint8Array): string {
  return Buffer.from(key).toString("hex") + "\n";
}

/**
 * The key a key file holds: 64 hex digits (surrounding white space ignored). Refuses, with one line naming the
 * file, a file other local users may read (mode `& 077`, except on Windows) and one of the wrong length.
 * Resolves with null when the file does not exist.
 */
export async function readMasterKey(path: string): Promise<Uint8Array | null> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new UserError(`Cannot read master key ${path}: ${(error as Error).message}`);
  }
  if (!info.isFile) throw new UserError(`Master key ${path} is not a file`);
  const mode = (info.mode ?? 0) & 0o777;
  if (Deno.build.os !== "windows" && mode & 0o077) {
    throw new UserError(
      `Master key ${path} may be read by other users (mode ${
        mode.toString(8)
      }): make it private with chmod 600`,
    );
  }
  let text: string;
  try {
    text = (await Deno.readTextFile(path)).trim();
  } catch (error) {
    throw new UserError(`Cannot read master key ${path}: ${(error as Error).message}`);
  }
  if (!/^[0-9a-fA-F]*$/.test(text) || text.length !== MASTER_KEY_BYTES * 2) {
    throw new UserError(
      `Master key ${path} must hold ${MASTER_KEY_BYTES * 2} hex digits (a 256-bit key), ` +
        `not ${text.length} characters${/^[0-9a-fA-F]*$/.test(text) ? "" : " with other than hex digits"}`,
    );
  }
  return Uint8Array.from(Buffer.from(text, "hex"));
}

/**
 * Writes a new random key to `path` (mode 0600); never replaces a file. With `makeFolder` its folder is made
 * (0700) if missing; otherwise a missing folder is an error (a key file named by the user on a disk that is not
 * mounted must not land on the disk below).
 */
export async function createMasterKey(
  path: string,
  options: { makeFolder?: boolean } = {},
): Promise<Uint8Array> {
  const key = crypto.getRandomValues(new Uint8Array(MASTER_KEY_BYTES));
  try {
    if (options.makeFolder) await Deno.mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(path, formatMasterKey(key), { mode: 0o600, createNew: true });
    if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600); // whatever the umask
    using file = await Deno.open(path, { read: true });
    await file.syncData();
  } catch (error) {
    throw new UserError(`Cannot create master key ${path}: ${(error as Error).message}`);
  }
  return key;
}

/** Options of {@linkcode openServerChunks}. */
export interface ServerChunksOptions {
  /** The server's data folder. */
  dataDir: string;
  /** Chunk store: a folder path, `file:` URL or `s3://BUCKET/PREFIX?endpoint=URL&region=REGION`. @default "DIR/chunks" */
  chunks?: string;
  /** An S3 store's keys from the config file (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY win). */
  s3Credentials?: Partial<S3Credentials>;
  /** The master key file. @default {@linkcode defaultMasterKeyPath} */
  masterKeyFile?: string;
  /** Check only (fsck): create no key, migrate nothing, write nothing. @default false */
  readOnly?: boolean;
  /** Store plaintext: only for tests and benchmarks (FILESYNC_TEST_PLAINTEXT_CHUNKS). @default false */
  plaintext?: boolean;
}

/**
 * Opens the server's chunk store, encrypted with its master key: the key is created on first use (when no
 * encrypted chunk exists yet), read from its file otherwise, and checked against the key check stored with the
 * chunks, so a missing or wrong key is one clear line at start. Plaintext chunks of an older version are
 * encrypted on the way (not with `readOnly`). Resolves with the store, the log lines of what was done, and what
 * the chunks are encrypted with (e.g. "AES-256-GCM through OpenSSL libcrypto.so.3"; null when they are not).
 */
export async function openServerChunks(
  options: ServerChunksOptions,
): Promise<{ store: ChunkStore; lines: string[]; encryption: string | null }> {
  const spec = options.chunks ?? join(options.dataDir, "chunks");
  const keyPath = options.masterKeyFile ?? defaultMasterKeyPath(options.dataDir);
  const lines: string[] = [];
  const fail = (error: unknown): never => {
    if (error instanceof UserError) throw error;
    throw new UserError(`Cannot open the chunk store: ${(error as Error).message}`);
  };
  let root: string;
  let record;
  try {
    ({ where: root, record } = await chunkStoreRecord(spec, { s3Credentials: options.s3Credentials }));
  } catch (error) {
    return fail(error);
  }
  const open = async (cipher: ChunkCipher | null) => {
    try {
      return await openChunkStore(spec, {
        cipher,
        readOnly: options.readOnly,
        s3Credentials: options.s3Credentials,
      });
    } catch (error) {
      if (error instanceof WrongKeyError) {
        throw new UserError(
          `${error.message} (key ${keyPath}); start with the key they were made with (--master-key FILE)`,
        );
      }
      return fail(error);
    }
  };
  if (options.plaintext) {
    const { store } = await open(null);
    lines.push("warning: chunks are stored unencrypted (FILESYNC_TEST_PLAINTEXT_CHUNKS, for tests only)");
    return { store, lines, encryption: null };
  }
  let key = await readMasterKey(keyPath);
  if (!key) {
    if (record) {
      throw new UserError(
        `Master key ${keyPath} is missing, and the chunks in ${root} were encrypted with it: restore it from ` +
          `your backup${options.masterKeyFile ? "" : " (or name its file with --master-key FILE)"}`,
      );
    }
    // A folder of an older version, not yet encrypted: fsck reads it as it is.
    if (options.readOnly) return { store: (await open(null)).store, lines, encryption: null };
    key = await createMasterKey(keyPath, { makeFolder: !options.masterKeyFile });
    lines.push(
      `created master key ${keyPath}: back it up apart from the data (without it the stored content is lost)`,
    );
  }
  if (options.readOnly && !record) return { store: (await open(null)).store, lines, encryption: null };
  const cipher = new ChunkCipher(key);
  key.fill(0);
  const { store, report } = await open(cipher);
  if (report.migrationPending) {
    throw new UserError(
      `The chunks in ${root} are still being encrypted (a start was interrupted): start the server once to finish`,
    );
  }
  if (report.migrated > 0) {
    lines.push(`encrypted ${report.migrated} chunks an older version had stored in plaintext`);
  }
  if (report.unreadable > 0) {
    lines.push(
      `warning: ${report.unreadable} files in ${root} are neither chunks nor encrypted with this key: left as ` +
        `they are (fsck reports the chunks they should hold)`,
    );
  }
  if (isS3Spec(spec)) lines.push(`chunks in ${root}`);
  const { reason } = defaultChunkCrypto();
  const encryption = `AES-256-GCM through ${cipher.crypto.name}` +
    (reason ? ` (libcrypto not used: ${reason})` : "");
  return { store, lines, encryption };
}
