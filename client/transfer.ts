// Moves file content: uploads the chunks the server lacks, downloads a version into a verified temp file.
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { chunkFile } from "../protocol/chunker.ts";
import { FileHasher, fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { decodeRows, MANIFEST_ROW_BYTES, MAX_HAVE, type WireEntry } from "../protocol/messages.ts";
import type { RpcPeer } from "../protocol/rpc.ts";
import type { ChunkRow } from "../protocol/messages.ts";
import { FileChangedError, type Scanner } from "./scanner.ts";
import { RawFile } from "./copy_range.ts";

/** Chunks requested ahead of the one being written, per download. */
const DOWNLOAD_AHEAD = 32;
/**
 * Bytes of chunk data in flight per transfer: at most this much of an upload can be on the server's disk without
 * the server having acknowledged it (so after a server crash, at most this much is sent again).
 */
export const WINDOW_BYTES = 8 * 1024 * 1024;
/** Largest in-kernel copy from the base file done without letting the event loop run. */
const COPY_STEP_BYTES = 32 * 1024 * 1024;
/** Files up to this size are sent without a HAVE round trip. */
const ASK_FIRST_BYTES = 128 * 1024;
/** Largest read of adjacent chunks to send. */
const RUN_BYTES = 1024 * 1024;
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
  // All batches at once: a big file's questions cost one round trip, not one per batch.
  const batches: Promise<{ message: Record<string, unknown> }>[] = [];
  for (let i = 0; i < ids.length; i += MAX_HAVE) {
    batches.push(peer.request("HAVE", { hashes: ids.slice(i, i + MAX_HAVE) }));
  }
  const missing = new Set<string>();
  for (const reply of await Promise.all(batches)) {
    for (const id of reply.message.missing as string[]) missing.add(id);
  }
  return missing;
}

/** Options of {@linkcode sendFile}. */
export interface SendOptions {
  /** Chunks the server surely has for this user (chunks of base versions): not asked about. */
  known?: (id: string) => boolean;
  progress?: Progress;
  /** The namespace the file is uploaded to (PUTs name it). @default the caller's own */
  ns?: string;
}

/**
 * Makes sure every chunk of the local file is on the server, sending only missing ones, and returns its rows.
 * Reading, asking (HAVE) and sending (PUT) overlap; at most 32 MiB of chunk data is in flight.
 * Throws {@linkcode FileChangedError} if the file changes while it is read.
 */
export async function sendFile(
  peer: RpcPeer,
  root: string,
  scanner: Pick<Scanner, "hashedRows">,
  path: string,
  stat: { size: number; mtime: number; ino: number | null },
  options: SendOptions = {},
): Promise<SentFile> {
  const known = options.known ?? (() => false);
  const cached = scanner.hashedRows(path, stat);
  if (cached) return await sendKnownRows(peer, root, path, stat, cached, known, options);
  const window = new Window(WINDOW_BYTES);
  const hasher = new FileHasher();
  const rows: ChunkRow[] = [];
  const pending: Promise<void>[] = [];
  const asked = new Set<string>();
  let sent = 0;
  let done = 0;
  let failure: Error | null = null;
  let batch: { id: string; data: Uint8Array }[] = [];
  let batchBytes = 0;
  const flush = () => {
    const current = batch;
    const bytes = batchBytes;
    batch = [];
    batchBytes = 0;
    const ids = current.map((c) => c.id);
    const work = missingOf(peer, ids).then(async (missing) => {
      const puts: Promise<unknown>[] = [];
      for (const chunk of current) {
        if (!missing.has(chunk.id)) continue;
        sent += chunk.data.length;
        puts.push(peer.request("PUT", { hash: chunk.id, ...nsField(options.ns) }, chunk.data));
      }
      await Promise.all(puts);
    }).catch((error) => {
      failure ??= error;
    }).finally(() => window.give(bytes));
    pending.push(work);
  };
  for await (const chunk of chunkFile(join(root, path))) {
    if (failure) throw failure;
    hasher.addChunk(chunk.id);
    rows.push({ id: chunk.id, size: chunk.data.length });
    done += chunk.data.length;
    if (!known(chunk.id) && !asked.has(chunk.id)) {
      asked.add(chunk.id);
      await window.take(chunk.data.length);
      batch.push({ id: chunk.id, data: chunk.data });
      batchBytes += chunk.data.length;
      if (batch.length >= HAVE_BATCH) flush();
    }
    options.progress?.(path, done, stat.size, "up");
  }
  if (batch.length > 0) flush();
  await Promise.all(pending);
  if (failure) throw failure;
  const after = await Deno.lstat(join(root, path));
  if (after.size !== stat.size || (after.mtime?.getTime() ?? 0) !== stat.mtime) {
    throw new FileChangedError(`"${path}" changed while it was uploaded`);
  }
  return { hash: hasher.digest(), rows, sent };
}

/**
 * Sends the missing chunks of a file whose rows the scanner already computed: reads them at their offsets
 * without cutting or hashing the file again (the server verifies every chunk; the stat check catches edits).
 */
async function sendKnownRows(
  peer: RpcPeer,
  root: string,
  path: string,
  stat: { size: number; mtime: number },
  rows: ChunkRow[],
  known: (id: string) => boolean,
  options: SendOptions,
): Promise<SentFile> {
  const ask = [...new Set(rows.filter((r) => !known(r.id)).map((r) => r.id))];
  // A small file is sent without asking first: the question would cost as much as the answer.
  const small = stat.size <= ASK_FIRST_BYTES;
  const missing = small ? new Set(ask) : ask.length > 0 ? await missingOf(peer, ask) : new Set<string>();
  let sent = 0;
  if (missing.size > 0) {
    const window = new Window(WINDOW_BYTES);
    const pending: Promise<unknown>[] = [];
    let failure: Error | null = null;
    using file = Deno.openSync(join(root, path), { read: true });
    const blocks: Uint8Array[] = [];
    // Runs of adjacent missing chunks are read with one read of up to RUN_BYTES and sent as views into it.
    const todo: { row: ChunkRow; at: number }[] = [];
    let offset = 0;
    for (const row of rows) {
      if (missing.delete(row.id)) todo.push({ row, at: offset });
      offset += row.size;
    }
    let i = 0;
    while (i < todo.length) {
      if (failure) throw failure;
      let j = i + 1;
      let runBytes = todo[i].row.size;
      while (
        j < todo.length && todo[j].at === todo[j - 1].at + todo[j - 1].row.size &&
        runBytes + todo[j].row.size <= RUN_BYTES
      ) {
        runBytes += todo[j].row.size;
        j++;
      }
      await window.take(runBytes);
      if (failure) throw failure; // a PUT refused meanwhile: its bytes may still be queued, so no block is reused
      // Long runs are read into reused blocks (a fresh MiB costs page faults); a block is reused once every
      // PUT of its run has its reply, when its bytes are surely written. Short runs get buffers of their own.
      const whole = runBytes > RUN_BYTES / 2 ? blocks.pop() ?? new Uint8Array(RUN_BYTES) : null;
      const block = whole ? whole.subarray(0, runBytes) : new Uint8Array(runBytes);
      let unanswered = j - i;
      const answered = () => {
        if (--unanswered === 0 && whole) blocks.push(whole);
      };
      file.seekSync(todo[i].at, Deno.SeekMode.Start);
      let filled = 0;
      while (filled < block.length) {
        const n = file.readSync(block.subarray(filled));
        if (n === null) throw new FileChangedError(`"${path}" shrank while it was uploaded`);
        filled += n;
      }
      let within = 0;
      for (const { row, at } of todo.slice(i, j)) {
        const data = block.subarray(within, within + row.size);
        within += row.size;
        sent += row.size;
        pending.push(
          peer.request("PUT", { hash: row.id, ...nsField(options.ns) }, data).catch((error) => {
            failure ??= error;
          }).finally(() => {
            answered();
            window.give(row.size);
          }),
        );
        options.progress?.(path, at + row.size, stat.size, "up");
      }
      i = j;
    }
    await Promise.all(pending);
    if (failure) throw failure;
  }
  const after = Deno.lstatSync(join(root, path));
  if (after.size !== stat.size || (after.mtime?.getTime() ?? 0) !== stat.mtime) {
    throw new FileChangedError(`"${path}" changed while it was uploaded`);
  }
  return { hash: fileHashOfChunks(rows.map((r) => r.id)), rows, sent };
}

/** A downloaded version, verified, waiting in the temp folder to be renamed into place. */
export interface FetchedFile {
  tmpPath: string;
  entry: WireEntry;
  rows: ChunkRow[];
  /** Bytes of chunk data that came over the network. */
  received: number;
}

/** Options of {@linkcode fetchFile}. */
export interface FetchOptions {
  /** A version of this file held locally: only rows that differ from it are sent. */
  base?: { hash: string; rows: ChunkRow[] };
  /** Reads a chunk from a local file if one holds it (verified by the caller of this hook or here). */
  localChunk?: (id: string, size: number) => Promise<Uint8Array | null>;
  progress?: Progress;
  /** Where the file is on the server: its namespace and path there. @default `path` in the caller's own */
  at?: { ns: string; path: string };
  /**
   * The local file that holds `base` (absolute path) and its stat when the device last synced it. While the open
   * file's stat still matches, the rows the new version shares with `base` are copied from it inside the kernel
   * (copy_file_range) without reading or hashing them again: they are trusted as the base itself is, the same
   * trust that lets the scanner skip hashing a file whose stat is unchanged.
   */
  baseFile?: { path: string; size: number; mtime: number; ino: number | null };
}

/** Whether an open file's stat is still the one the device recorded when it last synced it. */
function statMatches(
  info: Deno.FileInfo,
  want: { size: number; mtime: number; ino: number | null },
): boolean {
  return info.isFile && info.size === want.size && (info.mtime?.getTime() ?? 0) === want.mtime &&
    (want.ino === null || info.ino === want.ino);
}

/**
 * Where each of `rows` can be copied from in the local base file: its offset there, or undefined (fetch it).
 * A row is copied only when the base holds a row with the same id and size; runs of rows whose base offsets are
 * contiguous become single copies.
 */
export function copyPlan(rows: readonly ChunkRow[], baseRows: readonly ChunkRow[]): (number | undefined)[] {
  const at = new Map<string, { offset: number; size: number }>();
  let offset = 0;
  for (const row of baseRows) {
    if (!at.has(row.id)) at.set(row.id, { offset, size: row.size });
    offset += row.size;
  }
  return rows.map((row) => {
    const found = at.get(row.id);
    return found && found.size === row.size ? found.offset : undefined;
  });
}

/**
 * Downloads the server's current version of `path` into a temp file and verifies every chunk and the whole-file
 * hash. Chunks found locally (other files, the previous version, a partial earlier download) are not fetched.
 * Throws {@linkcode StaleError} if the server's version is not `rev`.
 */
export async function fetchFile(
  peer: RpcPeer,
  tmpDir: string,
  path: string,
  rev: number,
  options: FetchOptions = {},
): Promise<FetchedFile> {
  let reply;
  try {
    const where = options.at ? { path: options.at.path, ns: options.at.ns } : { path };
    reply = await peer.request("DOWNLOAD", { ...where, base: options.base?.hash });
  } catch (error) {
    if ((error as { code?: string }).code === "not_found") {
      throw new StaleError(`"${path}" is gone from the server`);
    }
    throw error;
  }
  const entry = reply.message.entry as WireEntry;
  if (entry.rev !== rev) throw new StaleError(`"${path}" changed on the server`);
  // `inline`: the data holds the manifest row of the file's only chunk, then the chunk itself.
  const inline = reply.message.inline === 1
    ? (reply.data ?? new Uint8Array()).subarray(MANIFEST_ROW_BYTES)
    : null;
  const rowBytes = reply.data ?? new Uint8Array();
  let rows = decodeRows(inline ? rowBytes.subarray(0, MANIFEST_ROW_BYTES) : rowBytes);
  const from = reply.message.from as { hash: string; head: number; tail: number } | undefined;
  if (from) {
    const baseRows = options.base?.hash === from.hash ? options.base.rows : null;
    if (!baseRows || from.head + from.tail > baseRows.length) throw new Error(`Bad delta for "${path}"`);
    rows = [...baseRows.slice(0, from.head), ...rows, ...baseRows.slice(baseRows.length - from.tail)];
  }
  if (fileHashOfChunks(rows.map((r) => r.id)) !== entry.hash) {
    throw new Error(`Manifest of "${path}" does not match its hash`);
  }
  // Sizes were checked row by row on arrival (see checkReply); with a delta, only the whole is known here.
  const total = rows.reduce((sum, row) => sum + row.size, 0);
  if (total !== entry.size) {
    throw new Error(`Manifest of "${path}" holds ${total} bytes, the server says ${entry.size}`);
  }
  // The temp file is private to this download; one left by an earlier download of this version is taken
  // over, so a download cut short resumes from what it already wrote.
  const tmpPath = claimTempFile(tmpDir, entry.hash);
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(tmpPath, { read: true, write: true, create: true, mode: 0o600 });
  } catch (error) {
    releaseTempFile(tmpPath);
    throw error;
  }
  let received = 0;
  const cleanup: RawFile[] = [];
  try {
    const existing = file.statSync().size;
    let offset = 0;
    let resumed = 0;
    for (const row of rows) {
      if (offset + row.size > existing) break;
      const data = new Uint8Array(row.size);
      await file.seek(offset, Deno.SeekMode.Start);
      let at = 0;
      while (at < data.length) {
        const n = await file.read(data.subarray(at));
        if (n === null) break;
        at += n;
      }
      if (at < data.length || sha256Hex(data) !== row.id) break;
      offset += row.size;
      resumed++;
    }
    if (existing > offset) file.truncateSync(offset);
    if (offset > 0) file.seekSync(offset, Deno.SeekMode.Start);
    // Rows shared with the base are copied from the local base file while its stat holds (see `baseFile`).
    const copy = openBaseCopy(options, tmpPath);
    if (copy) cleanup.push(copy.source, copy.target);
    const copyFrom = copy ? copyPlan(rows, options.base!.rows) : [];
    // At most DOWNLOAD_AHEAD chunks (8 MiB at the largest chunk size) requested ahead, written in order.
    const requests: (Promise<{ data: Uint8Array; remote: boolean }> | undefined)[] = [];
    let next = resumed;
    let written = resumed;
    const issue = () => {
      const index = next++;
      if (copyFrom[index] !== undefined) return;
      const row = rows[index];
      const request = (async () => {
        const local = await options.localChunk?.(row.id, row.size);
        if (local && local.length === row.size && sha256Hex(local) === row.id) {
          return { data: local, remote: false };
        }
        const data = inline && rows.length === 1
          ? inline
          : (await peer.request("GET", { hash: row.id })).data ??
            new Uint8Array();
        if (data.length !== row.size || sha256Hex(data) !== row.id) {
          throw new Error(`Chunk ${row.id.slice(0, 12)} of "${path}" is damaged`);
        }
        return { data, remote: true };
      })();
      request.catch(() => {}); // awaited in order below; this only keeps an early failure from being "unhandled"
      requests[index] = request;
    };
    while (written < rows.length) {
      if (next < written) next = written;
      while (next < rows.length && next - written < DOWNLOAD_AHEAD) issue();
      const from = copyFrom[written];
      if (copy && from !== undefined) {
        // A run of rows that lie back to back in the base file: one in-kernel copy.
        let end = written + 1;
        let length = rows[written].size;
        while (end < rows.length && copyFrom[end] === copyFrom[end - 1]! + rows[end - 1].size) {
          length += rows[end].size;
          end++;
        }
        // In steps, with the event loop let run between them (a copy blocks this thread while it lasts).
        for (let done = 0; done < length; done += COPY_STEP_BYTES) {
          if (done > 0) await new Promise((resolve) => setTimeout(resolve, 0));
          const step = {
            from: from + done,
            to: offset + done,
            length: Math.min(COPY_STEP_BYTES, length - done),
          };
          if (!copy.source.copyTo(copy.target, step)) throw new BaseCopyFailed();
        }
        offset += length;
        written = end;
        file.seekSync(offset, Deno.SeekMode.Start);
        options.progress?.(path, offset, entry.size, "down");
        continue;
      }
      const { data, remote } = await requests[written]!;
      requests[written] = undefined;
      let at = 0;
      while (at < data.length) at += file.writeSync(data.subarray(at));
      offset += data.length;
      written++;
      if (remote) received += data.length;
      options.progress?.(path, offset, entry.size, "down");
    }
    // The copied bytes are the base's only if the base file did not change while they were copied.
    if (copy && !statMatches(copy.source.stat(), options.baseFile!)) throw new BaseCopyFailed();
    if (offset !== entry.size) throw new Error(`"${path}" has ${offset} bytes, expected ${entry.size}`);
    await file.syncData();
  } catch (error) {
    file.close();
    for (const raw of cleanup) raw.close();
    if (!(error as { code?: string }).code || (error as { code?: string }).code !== "closed") {
      await Deno.remove(tmpPath).catch(() => {});
    }
    releaseTempFile(tmpPath); // kept when the connection closed: the next download of this version resumes it
    if (error instanceof BaseCopyFailed) {
      // The base file changed under the copy (or the kernel refused it): download again, verifying every chunk.
      return await fetchFile(peer, tmpDir, path, rev, { ...options, baseFile: undefined });
    }
    throw error;
  }
  file.close();
  for (const raw of cleanup) raw.close();
  return { tmpPath, entry, rows, received };
}

/** The base file changed while rows were copied from it, or the kernel refused the copy. */
class BaseCopyFailed extends Error {
  override name = "BaseCopyFailed";
}

/**
 * The base file (whose stat must still be the synced one) and the temp file, opened for in-kernel copies; null
 * when there is nothing to copy from or copies are not available.
 */
function openBaseCopy(options: FetchOptions, tmpPath: string): { source: RawFile; target: RawFile } | null {
  if (!options.baseFile || !options.base) return null;
  const source = RawFile.open(options.baseFile.path, "read");
  if (!source) return null;
  try {
    if (!statMatches(source.stat(), options.baseFile)) {
      source.close();
      return null;
    }
  } catch {
    source.close();
    return null;
  }
  const target = RawFile.open(tmpPath, "write");
  if (!target) {
    source.close();
    return null;
  }
  return { source, target };
}

/** One file asked of {@linkcode fetchSmallFiles}: its local path, the rev planned and where it is on the server. */
export interface SmallFileWanted {
  path: string;
  rev: number;
  at: { ns: string; path: string };
}

/**
 * Downloads small files with one FETCH: verifies every file's bytes against its entry's hash before writing
 * any (a reply that fails a check writes nothing and throws), writes each to its private temp file, then
 * fsyncs them all at once. Per file, in the order asked: the fetched file, a {@linkcode StaleError} (gone or
 * changed on the server), or null for one to download alone (not inline, or refused: DOWNLOAD says why).
 */
export async function fetchSmallFiles(
  peer: RpcPeer,
  tmpDir: string,
  wanted: readonly SmallFileWanted[],
): Promise<(FetchedFile | StaleError | null)[]> {
  const reply = await peer.request("FETCH", {
    items: wanted.map((w) => ({ path: w.at.path, ns: w.at.ns, rev: w.rev })),
  });
  // Paths, order, revs, offsets and sizes were checked on arrival (see checkReply); the content is checked here.
  const items = reply.message.items as { entry?: WireEntry; at?: number; code?: string }[];
  const data = reply.data ?? new Uint8Array();
  const contents = items.map((item, i) => {
    if (!item.entry) return null;
    const bytes = data.subarray(item.at!, item.at! + item.entry.size);
    const rows = bytes.length === 0 ? [] : [{ id: sha256Hex(bytes), size: bytes.length }];
    if (fileHashOfChunks(rows.map((r) => r.id)) !== item.entry.hash) {
      throw new Error(`FETCH reply: "${wanted[i].path}" does not match its hash`);
    }
    return { entry: item.entry, bytes, rows };
  });
  const results: (FetchedFile | StaleError | null)[] = [];
  const open: { file: Deno.FsFile; tmpPath: string }[] = [];
  try {
    for (const [i, item] of items.entries()) {
      const content = contents[i];
      if (!content) {
        const stale = item.code === "not_found" || item.code === "stale";
        results.push(stale ? new StaleError(`"${wanted[i].path}" changed on the server`) : null);
        continue;
      }
      const tmpPath = claimTempFile(tmpDir, content.entry.hash);
      let file: Deno.FsFile;
      try {
        file = Deno.openSync(tmpPath, { write: true, create: true, truncate: true, mode: 0o600 });
      } catch (error) {
        releaseTempFile(tmpPath);
        throw error;
      }
      open.push({ file, tmpPath });
      let at = 0;
      while (at < content.bytes.length) at += file.writeSync(content.bytes.subarray(at));
      const received = content.bytes.length;
      results.push({ tmpPath, entry: content.entry, rows: content.rows, received });
    }
    // One round of fsyncs for the whole batch instead of one wait per file.
    await Promise.all(open.map(({ file }) => file.syncData()));
  } catch (error) {
    for (const { tmpPath } of open) {
      try {
        Deno.removeSync(tmpPath);
      } catch {
        // gone already
      }
      releaseTempFile(tmpPath);
    }
    throw error;
  } finally {
    for (const { file } of open) file.close();
  }
  return results;
}

/** Temp files (full paths) that a download of this process is writing or has not yet moved into place. */
const tempInUse = new Set<string>();

/** Whether `name` is a temp file of a download of the version `hash`: `HASH.partial` or `HASH.RANDOM.partial`. */
function isTempOf(name: string, hash: string): boolean {
  return name.startsWith(hash) && /^(?:\.[0-9a-f]+)?\.partial$/.test(name.slice(hash.length));
}

/**
 * A temp file path in `tmpDir` private to one download of the version `hash`, `HASH.RANDOM.partial`, marked in
 * use until {@linkcode releaseTempFile}. A file left by an earlier download of the same version that no download
 * uses now (the client was killed, or the connection dropped) is taken over by renaming it to the new name, the
 * largest first: a rename succeeds for one claimant only, so two downloads never share a file, and the new owner
 * resumes from what is in it (its chunks are verified before they count).
 *
 * @example
 * ```ts
 * const path = claimTempFile(".filesync/tmp", hash); // ".filesync/tmp/HASH.3f9a….partial"
 * // … write, verify, rename into place …
 * releaseTempFile(path);
 * ```
 */
export function claimTempFile(tmpDir: string, hash: string): string {
  const random = Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  );
  const mine = join(tmpDir, `${hash}.${random.join("")}.partial`);
  const unused = leftoversIn(tmpDir);
  const leftovers: { path: string; size: number }[] = [];
  for (const path of unused) {
    if (!isTempOf(basename(path), hash) || tempInUse.has(path)) continue;
    try {
      leftovers.push({ path, size: Deno.lstatSync(path).size });
    } catch {
      unused.delete(path); // gone meanwhile
    }
  }
  leftovers.sort((a, b) => b.size - a.size);
  for (const leftover of leftovers) {
    unused.delete(leftover.path);
    try {
      Deno.renameSync(leftover.path, mine);
      break;
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error; // taken by another claimant
    }
  }
  tempInUse.add(mine);
  return mine;
}

/**
 * Temp files in a temp folder that no download uses now: listed once per folder and process (at its first
 * claim: what earlier runs left), then kept up to date by claims and releases, so a download does not list the
 * folder each time.
 */
const leftoverTemps = new Map<string, Set<string>>();

function leftoversIn(folder: string): Set<string> {
  const tmpDir = join(folder); // the same key as dirname() of a path in it
  let unused = leftoverTemps.get(tmpDir);
  if (unused) return unused;
  unused = new Set();
  try {
    for (const item of Deno.readDirSync(tmpDir)) {
      const path = join(tmpDir, item.name);
      if (item.isFile && item.name.endsWith(".partial") && !tempInUse.has(path)) unused.add(path);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  leftoverTemps.set(tmpDir, unused);
  return unused;
}

/** Ends the claim of {@linkcode claimTempFile} on `path` (after it was moved into place, removed or kept). */
export function releaseTempFile(path: string): void {
  tempInUse.delete(path);
  // Kept (the connection dropped): a later download of this version takes it over. `existsSync` answers for a
  // missing file without building an error, which matters once per download.
  if (existsSync(path)) leftoverTemps.get(dirname(path))?.add(path);
}

/** The `ns` field of a request: absent for the caller's own namespace when none is given. */
function nsField(ns: string | undefined): { ns?: string } {
  return ns === undefined ? {} : { ns };
}
