// Chunks in an S3-compatible object store (AWS S3, Ceph radosgw, MinIO), named and encrypted as on disk.
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { sha256Hex } from "../protocol/hash.ts";
import { UserError } from "../protocol/user_error.ts";
import { type S3Credentials, type S3Location, s3Where } from "./s3_location.ts";
import { type ChunkCipher, ChunkDamagedError, SEAL_OVERHEAD, SEALED_HEAD_BYTES } from "./chunk_cipher.ts";
import {
  ChunkNames,
  type ChunkStore,
  type ChunkUsage,
  ENCRYPTION_FILE,
  type EncryptionRecord,
  HEX_NAME,
  type OpenReport,
  parseEncryptionRecord,
  WrongKeyError,
} from "./chunk_store.ts";

/** How many requests one store has in flight at most (radosgw on 2 cores is saturated by 16). */
export const S3_MAX_IN_FLIGHT = 16;

/** At most `limit` calls at once; the others wait their turn. */
class Limiter {
  #free: number;
  #waiting: (() => void)[] = [];

  constructor(limit: number) {
    this.#free = limit;
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

/** The HTTP status of an S3 error (undefined for one that never got an answer, e.g. a refused connection). */
function statusOf(error: unknown): number | undefined {
  if (error instanceof S3ServiceException) return error.$metadata?.httpStatusCode;
  const meta = (error as { $metadata?: { httpStatusCode?: number } })?.$metadata;
  return meta?.httpStatusCode;
}

/** Options of {@linkcode S3ChunkStore}. */
export interface S3ChunkStoreOptions {
  /** The store's keys. */
  credentials: S3Credentials;
  /** Encrypts every chunk and hides its id in the object key, as on disk. @default plaintext (tests only) */
  cipher?: ChunkCipher;
  /** Requests in flight at most. @default {@linkcode S3_MAX_IN_FLIGHT} */
  maxInFlight?: number;
}

/**
 * Chunks as objects `PREFIX/ab/abcdef…` of a bucket: the same names, contents and `encryption.json` as the disk
 * store's folder (a copy of one is the other). A PUT is a conditional create (`If-None-Match: *`); S3 answers
 * a PUT only once the object is durable, so `sync` has nothing left to do.
 */
export class S3ChunkStore implements ChunkStore {
  readonly #client: S3Client;
  readonly #location: S3Location;
  readonly #cipher: ChunkCipher | undefined;
  readonly #names: ChunkNames;
  readonly #limit: Limiter;

  /** A store at `location`; nothing is sent before {@linkcode S3ChunkStore.open}. */
  constructor(location: S3Location, options: S3ChunkStoreOptions) {
    this.#location = location;
    this.#cipher = options.cipher;
    this.#names = new ChunkNames(options.cipher);
    const sockets = options.maxInFlight ?? S3_MAX_IN_FLIGHT;
    this.#limit = new Limiter(sockets);
    this.#client = new S3Client({
      endpoint: location.endpoint,
      region: location.region,
      credentials: options.credentials,
      forcePathStyle: true,
      // S3-compatible servers (radosgw 16) refuse the aws-chunked uploads with trailing checksums that the SDK
      // sends by default (411 MissingContentLength): checksums only where an API requires them.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      requestHandler: {
        connectionTimeout: 5_000,
        requestTimeout: 120_000,
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: sockets }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: sockets }),
      },
    });
  }

  /** `s3://BUCKET/PREFIX`, for messages. */
  get where(): string {
    return s3Where(this.#location);
  }

  #key(name: string): string {
    return this.#location.prefix + ChunkNames.path(name);
  }

  #send<T>(fn: (client: S3Client) => Promise<T>): Promise<T> {
    return this.#limit.run(() => fn(this.#client));
  }

  /** One line for a failure to reach or use the store at start. */
  #startError(error: unknown): UserError {
    const status = statusOf(error);
    const at = `${this.#location.endpoint ?? `AWS S3 (${this.#location.region})`}`;
    const bucket = this.#location.bucket;
    if (status === 404) {
      return new UserError(
        `Bucket "${bucket}" does not exist at ${at}: create it first (filesync never creates one)`,
      );
    }
    if (status === 403 || status === 401) {
      return new UserError(
        `${at} refused the keys for bucket "${bucket}" (HTTP ${status}): check AWS_ACCESS_KEY_ID and ` +
          `AWS_SECRET_ACCESS_KEY (or s3-access-key-id and s3-secret-access-key in DATA/config.json)`,
      );
    }
    if (status !== undefined) return new UserError(`${at} answered HTTP ${status} for bucket "${bucket}"`);
    const message = (error as Error).message || (error as Error).name;
    return new UserError(`Cannot reach the S3 endpoint ${at}: ${message}`);
  }

  /** The stored {@linkcode ENCRYPTION_FILE} record, or null when there is none; a one-line error if unreachable. */
  async readRecord(): Promise<EncryptionRecord | null> {
    try {
      await this.#send((c) => c.send(new HeadBucketCommand({ Bucket: this.#location.bucket })));
    } catch (error) {
      throw this.#startError(error);
    }
    const bytes = await this.#getObject(this.#location.prefix + ENCRYPTION_FILE);
    if (bytes === null) return null;
    return parseEncryptionRecord(new TextDecoder().decode(bytes), `${this.where}${ENCRYPTION_FILE}`);
  }

  /**
   * Checks the bucket and the key: a wrong master key ({@linkcode WrongKeyError}) is refused, a new store gets
   * its key check (not with `readOnly`). A plaintext store refuses an encrypted one. There is nothing to
   * migrate: object stores came after encryption.
   */
  async open(options: { readOnly?: boolean } = {}): Promise<OpenReport> {
    const report: OpenReport = { migrated: 0, unreadable: 0, firstEncrypted: false, migrationPending: false };
    const record = await this.readRecord();
    const cipher = this.#cipher;
    if (!cipher) {
      if (record) {
        throw new TypeError(`Chunk store "${this.where}" is encrypted: it opens only with the master key`);
      }
      return report;
    }
    if (record && record.keyCheck !== cipher.keyCheck) {
      throw new WrongKeyError(
        `The master key does not match the chunks in "${this.where}": they were encrypted with another key`,
      );
    }
    if (record || options.readOnly) return report;
    // No key check yet: a store with chunks of another key (its record lost) is refused, not adopted.
    let first: string | undefined;
    for await (const page of this.#pages()) {
      first = page.Contents?.find((o) => this.#nameIn(o.Key) !== null)?.Key;
      break;
    }
    if (first !== undefined) {
      const name = this.#nameIn(first)!;
      const head = await this.#getObject(first, SEALED_HEAD_BYTES);
      if (head === null || cipher.idOf(name, head) === null) {
        throw new WrongKeyError(
          `The master key does not match the chunks in "${this.where}": its objects are not encrypted with ` +
            `this key, and its ${ENCRYPTION_FILE} is missing`,
        );
      }
    }
    report.firstEncrypted = first === undefined;
    const text = JSON.stringify(
      { cipher: "AES-256-GCM", keyCheck: cipher.keyCheck, allEncrypted: true },
      null,
      2,
    );
    for (let attempt = 0;; attempt++) {
      try {
        await this.#send((c) =>
          c.send(
            new PutObjectCommand({
              Bucket: this.#location.bucket,
              Key: this.#location.prefix + ENCRYPTION_FILE,
              Body: new TextEncoder().encode(text + "\n"),
              ContentType: "application/json",
              IfNoneMatch: "*",
            }),
          )
        );
        return report;
      } catch (error) {
        const status = statusOf(error);
        if (status !== 412 && status !== 409) throw error;
        // Another node is writing it or wrote it first: it must be the same key.
        const theirs = await this.readRecord();
        if (theirs === null && attempt < 5) continue; // 409: their write has not landed yet
        if (theirs?.keyCheck !== cipher.keyCheck) {
          throw new WrongKeyError(
            `The master key does not match the chunks in "${this.where}": another server just stored them ` +
              `with another key`,
          );
        }
        report.firstEncrypted = false;
        return report;
      }
    }
  }

  /** The chunk name an object key holds (`PREFIX/ab/ab…`), or null for any other object. */
  #nameIn(key: string | undefined): string | null {
    if (key === undefined || !key.startsWith(this.#location.prefix)) return null;
    const rest = key.slice(this.#location.prefix.length);
    const name = rest.slice(3);
    return rest.length === 67 && rest[2] === "/" && HEX_NAME.test(name) && rest.startsWith(name.slice(0, 2))
      ? name
      : null;
  }

  /** An object's bytes (its first `head` bytes only, if given), or null if it does not exist. */
  async #getObject(key: string, head?: number): Promise<Uint8Array | null> {
    try {
      return await this.#send(async (c) => {
        const reply = await c.send(
          new GetObjectCommand({
            Bucket: this.#location.bucket,
            Key: key,
            Range: head === undefined ? undefined : `bytes=0-${head - 1}`,
          }),
        );
        return await reply.Body!.transformToByteArray();
      });
    } catch (error) {
      if (statusOf(error) === 404) return null;
      // A range past the end of a shorter (damaged) object.
      if (head !== undefined && statusOf(error) === 416) return new Uint8Array();
      throw error;
    }
  }

  async #storedSize(id: string): Promise<number | null> {
    try {
      const reply = await this.#send((c) =>
        c.send(new HeadObjectCommand({ Bucket: this.#location.bucket, Key: this.#key(this.#names.of(id)) }))
      );
      return reply.ContentLength ?? 0;
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw error;
    }
  }

  async has(id: string): Promise<boolean> {
    return await this.#storedSize(id) !== null;
  }

  async size(id: string): Promise<number | null> {
    const stored = await this.#storedSize(id);
    if (stored === null) return null;
    const size = stored - (this.#cipher ? SEAL_OVERHEAD : 0);
    // An object too short to be an encrypted chunk counts as missing, so the next upload of it replaces it.
    return size < 0 ? null : size;
  }

  async get(id: string): Promise<Uint8Array | null> {
    const name = this.#names.of(id);
    const stored = await this.#getObject(this.#key(name));
    if (stored === null) return null;
    return this.#cipher ? await this.#cipher.open(id, stored, { name, inPlace: true }) : stored;
  }

  /** Whether the stored copy of chunk `id` reads back as `data` (false when damaged or missing). */
  async #intact(id: string, data: Uint8Array): Promise<boolean> {
    try {
      const back = await this.get(id);
      return back !== null && back.length === data.length &&
        (this.#cipher !== undefined || sha256Hex(back) === id);
    } catch (error) {
      if (error instanceof ChunkDamagedError) return false;
      throw error;
    }
  }

  /**
   * Creates the object unless it exists (`If-None-Match: *`). An existing copy is read back, and replaced if it
   * is damaged: as on disk, storing a chunk again heals it. Durable when it resolves.
   */
  async put(id: string, data: Uint8Array): Promise<void> {
    const name = this.#names.of(id);
    const body = this.#cipher ? await this.#cipher.seal(id, data, { name }) : data;
    const write = (create: boolean) =>
      this.#send((c) =>
        c.send(
          new PutObjectCommand({
            Bucket: this.#location.bucket,
            Key: this.#key(name),
            Body: body,
            ContentLength: body.length,
            IfNoneMatch: create ? "*" : undefined,
          }),
        )
      );
    for (let attempt = 0;; attempt++) {
      try {
        await write(true);
        return;
      } catch (error) {
        const status = statusOf(error);
        // 409: a concurrent conditional write of the same key (AWS asks to retry).
        if (status === 409 && attempt < 5) continue;
        if (status !== 412) throw error;
      }
      if (await this.#intact(id, data)) return;
      await write(false);
      return;
    }
  }

  /** Nothing to do: S3 answers a PUT once the object is durable. */
  sync(): Promise<void> {
    return Promise.resolve();
  }

  async delete(id: string): Promise<void> {
    try {
      await this.#send((c) =>
        c.send(new DeleteObjectCommand({ Bucket: this.#location.bucket, Key: this.#key(this.#names.of(id)) }))
      );
    } catch (error) {
      if (statusOf(error) !== 404) throw error;
    }
  }

  /** The pages of ListObjectsV2 under the prefix. */
  async *#pages(): AsyncIterable<ListObjectsV2CommandOutput> {
    let token: string | undefined;
    do {
      const page = await this.#send((c) =>
        c.send(
          new ListObjectsV2Command({
            Bucket: this.#location.bucket,
            Prefix: this.#location.prefix,
            ContinuationToken: token,
          }),
        )
      );
      yield page;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Every stored chunk id. Encrypted objects are named by their stored name: each one's id is read from its first
   * bytes (a range GET, many at once); an object that yields none (damaged, or another key's) is not listed.
   */
  async *list(): AsyncIterable<string> {
    for await (const page of this.#pages()) {
      const names = (page.Contents ?? []).map((o) => this.#nameIn(o.Key)).filter((n) => n !== null);
      const cipher = this.#cipher;
      if (!cipher) {
        yield* names;
        continue;
      }
      const ids = await Promise.all(names.map(async (name) => {
        const head = await this.#getObject(this.#key(name), SEALED_HEAD_BYTES);
        return head === null ? null : cipher.idOf(name, head);
      }));
      for (const id of ids) if (id !== null) yield id;
    }
  }

  /** Counts the chunk objects and sums their sizes, from the listing alone. */
  async usage(): Promise<ChunkUsage> {
    let chunks = 0;
    let bytes = 0;
    for await (const page of this.#pages()) {
      for (const object of page.Contents ?? []) {
        if (this.#nameIn(object.Key) === null) continue;
        chunks++;
        bytes += object.Size ?? 0;
      }
    }
    return { chunks, bytes };
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.#client.destroy();
  }
}
