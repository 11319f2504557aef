// Moves file content: uploads the chunks the server lacks, downloads a version into a verified temp file.
import { join } from "node:path";
import { chunkFile } from "../protocol/chunker.ts";
import { FileHasher, fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { decodeRows, MAX_HAVE, type WireEntry } from "../protocol/messages.ts";
import type { RpcPeer } from "../protocol/rpc.ts";
import type { ChunkRow } from "../server/metadata.ts";
import { FileChangedError, type Scanner } from "./scanner.ts";

/** Bytes of chunk data in flight per transfer. */
const WINDOW_BYTES = 32 * 1024 * 1024;
/** Chunks asked about per HAVE while streaming a file. */
const HAVE_BATCH = 64;

/** Reports transfer progress of big files. */
export type Progress = (path: string, done: number, total: number, direction: "up" | "down") => void;

/** The server's version changed since it was planned; the newer journal event will follow. */
export class StaleError extends Error {
  override name = "StaleError";
}

/** Limits bytes in flight; waiters resume in order. */
class Window {
  #free: number;
  #waiters: { bytes: number; resolve: () => void }[] = [];
  constructor(bytes: number) {
    this.#free = bytes;
  }
  async take(bytes: number): Promise<void> {
    if (this.#free >= bytes && this.#waiters.length === 0) {
      this.#free -= bytes;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push({ bytes, resolve }));
  }
  give(bytes: number): void {
    this.#free += bytes;
    while (
      this.#waiters.length > 0 && (this.#free >= this.#waiters[0].bytes || this.#free === WINDOW_BYTES)
    ) {
      const next = this.#waiters.shift()!;
      this.#free -= next.bytes;
      next.resolve();
    }
  }
}

/** A file ready to commit: its chunk rows are on the server. */
export interface SentFile {
  hash: string;
  rows: ChunkRow[];
  /** Bytes of chunk data actually sent. */
  sent: number;
}

/** Which of these ids the server lacks (for this user). */
async function missingOf(peer: RpcPeer, ids: string[]): Promise<Set<string>> {
  const missing = new Set<string>();
  for (let i = 0; i < ids.length; i += MAX_HAVE) {
    const reply = await peer.request("HAVE", { hashes: ids.slice(i, i + MAX_HAVE) });
    for (const id of reply.message.missing as string[]) missing.add(id);
  }
  return missing;
}

/**
 * Makes sure every chunk of the local file is on the server, sending only missing ones, and returns its rows.
 * Throws {@linkcode FileChangedError} if the file changes while it is read.
 */
export async function sendFile(
  peer: RpcPeer,
  root: string,
  scanner: Scanner,
  path: string,
  stat: { size: number; mtime: number; ino: number | null },
  progress?: Progress,
): Promise<SentFile> {
  const cached = scanner.hashedRows(path, stat);
  if (cached) {
    const missing = await missingOf(peer, [...new Set(cached.map((r) => r.id))]);
    if (missing.size === 0) return { hash: fileHashOfChunks(cached.map((r) => r.id)), rows: cached, sent: 0 };
  }
  const window = new Window(WINDOW_BYTES);
  const hasher = new FileHasher();
  const rows: ChunkRow[] = [];
  const pending: Promise<void>[] = [];
  const sentIds = new Set<string>();
  let sent = 0;
  let done = 0;
  let failure: Error | null = null;
  let batch: { id: string; data: Uint8Array }[] = [];
  const flush = async () => {
    const current = batch;
    batch = [];
    const missing = await missingOf(peer, [...new Set(current.map((c) => c.id))]);
    for (const chunk of current) {
      if (!missing.has(chunk.id) || sentIds.has(chunk.id)) continue;
      sentIds.add(chunk.id);
      await window.take(chunk.data.length);
      sent += chunk.data.length;
      pending.push(
        peer.request("PUT", { hash: chunk.id }, chunk.data).then(
          () => window.give(chunk.data.length),
          (error) => {
            window.give(chunk.data.length);
            failure ??= error;
          },
        ),
      );
    }
  };
  for await (const chunk of chunkFile(join(root, path))) {
    if (failure) throw failure;
    hasher.addChunk(chunk.id);
    rows.push({ id: chunk.id, size: chunk.data.length });
    batch.push({ id: chunk.id, data: chunk.data });
    done += chunk.data.length;
    if (batch.length >= HAVE_BATCH) {
      await flush();
      progress?.(path, done, stat.size, "up");
    }
  }
  if (batch.length > 0) await flush();
  await Promise.all(pending);
  if (failure) throw failure;
  const after = await Deno.lstat(join(root, path));
  if (after.size !== stat.size || (after.mtime?.getTime() ?? 0) !== stat.mtime) {
    throw new FileChangedError(`"${path}" changed while it was uploaded`);
  }
  return { hash: hasher.digest(), rows, sent };
}

/** A downloaded version, verified, waiting in the temp folder to be renamed into place. */
export interface FetchedFile {
  tmpPath: string;
  entry: WireEntry;
  received: number;
}

/**
 * Downloads the server's current version of `path` into a temp file and verifies every chunk and the whole-file
 * hash. Throws {@linkcode StaleError} if the server's version is not `rev`.
 */
export async function fetchFile(
  peer: RpcPeer,
  tmpDir: string,
  path: string,
  rev: number,
  progress?: Progress,
): Promise<FetchedFile> {
  let reply;
  try {
    reply = await peer.request("DOWNLOAD", { path });
  } catch (error) {
    if ((error as { code?: string }).code === "not_found") {
      throw new StaleError(`"${path}" is gone from the server`);
    }
    throw error;
  }
  const entry = reply.message.entry as WireEntry;
  if (entry.rev !== rev) throw new StaleError(`"${path}" changed on the server`);
  const rows = decodeRows(reply.data ?? new Uint8Array());
  if (fileHashOfChunks(rows.map((r) => r.id)) !== entry.hash) {
    throw new Error(`Manifest of "${path}" does not match its hash`);
  }
  const tmpPath = join(tmpDir, `${crypto.randomUUID()}.download`);
  const file = await Deno.open(tmpPath, { write: true, createNew: true, mode: 0o600 });
  let received = 0;
  try {
    // At most 64 chunk requests (16 MiB at the largest chunk size) in flight, written in order as they arrive.
    const requests: Promise<Uint8Array>[] = [];
    let next = 0;
    let written = 0;
    const issue = () => {
      const row = rows[next++];
      const request = peer.request("GET", { hash: row.id }).then((f) => {
        const data = f.data ?? new Uint8Array();
        if (data.length !== row.size || sha256Hex(data) !== row.id) {
          throw new Error(`Chunk ${row.id.slice(0, 12)} of "${path}" is damaged`);
        }
        return data;
      });
      request.catch(() => {}); // awaited in order below; this only keeps an early failure from being "unhandled"
      requests.push(request);
    };
    while (written < rows.length) {
      while (next < rows.length && next - written < 64) issue();
      const data = await requests[written];
      requests[written] = undefined as unknown as Promise<Uint8Array>;
      let at = 0;
      while (at < data.length) at += await file.write(data.subarray(at));
      written++;
      received += data.length;
      progress?.(path, received, entry.size, "down");
    }
    if (received !== entry.size) throw new Error(`"${path}" has ${received} bytes, expected ${entry.size}`);
    await file.syncData();
  } catch (error) {
    file.close();
    await Deno.remove(tmpPath).catch(() => {});
    throw error;
  }
  file.close();
  return { tmpPath, entry, received };
}
