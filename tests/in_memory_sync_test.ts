// Client–server exchanges over in-memory streams: real Sessions, KV and chunk store, no sockets or TLS.

import assert from "node:assert/strict";
import { join } from "node:path";
import { chunkLengths } from "../protocol/chunker.ts";
import type { Frame } from "../protocol/frame.ts";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import {
  decodeRows,
  encodeRows,
  MANIFEST_ROW_BYTES,
  PROTOCOL_VERSION,
  RESYNC_CODE,
  type WireEntry,
} from "../protocol/messages.ts";
import { memoryPipe, RpcError, RpcPeer } from "../protocol/rpc.ts";
import { LoginGuard, makeUser } from "../server/auth.ts";
import { DiskChunkStore } from "../server/chunk_store.ts";
import { Hub } from "../server/hub.ts";
import { KvMetadataStore } from "../server/metadata_kv.ts";
import { Session } from "../server/session.ts";

const PASSWORD = "correct horse battery staple";

/** Pushes received by a client, to wait on in order. */
class Inbox {
  #frames: Frame[] = [];
  #wake: (() => void) | null = null;

  add = (frame: Frame): void => {
    this.#frames.push(frame);
    this.#wake?.();
  };

  /** The next push, waiting up to `ms` for it. */
  async next(ms = 5000): Promise<Frame> {
    const deadline = Date.now() + ms;
    while (this.#frames.length === 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
      clearTimeout(timer);
      this.#wake = null;
      if (this.#frames.length === 0 && Date.now() >= deadline) throw new Error(`No push within ${ms} ms`);
    }
    return this.#frames.shift()!;
  }

  /** Pushes received and not yet taken. */
  get pending(): number {
    return this.#frames.length;
  }
}

/** One client connection to the in-memory server. */
interface Client {
  peer: RpcPeer;
  session: Session;
  pushes: Inbox;
}

/** The journal epoch the memory server's sessions announce. */
const MEMORY_EPOCH = "memory-epoch";

/** A server made of the real parts (KV file, disk chunk store, hub, login limits) in a temp folder. */
class MemoryServer implements AsyncDisposable {
  readonly log: string[] = [];
  #clients: Client[] = [];

  private constructor(
    readonly dir: string,
    readonly store: KvMetadataStore,
    readonly chunks: DiskChunkStore,
    readonly hub: Hub,
  ) {}

  static async create(users: string[] = ["alice"]): Promise<MemoryServer> {
    const dir = await Deno.makeTempDir({ prefix: "filesync-memory-" });
    const store = await KvMetadataStore.open(join(dir, "metadata.kv"));
    const chunks = new DiskChunkStore(join(dir, "chunks"));
    await chunks.open();
    for (const name of users) assert.ok(await store.addUser(await makeUser(name, PASSWORD)));
    return new MemoryServer(dir, store, chunks, new Hub());
  }

  /** Opens a connection: a Session on one end of a memory pipe, an RpcPeer on the other. */
  connect(): Client {
    const [serverSide, clientSide] = memoryPipe();
    const session = new Session(serverSide, "memory", {
      store: this.store,
      chunks: this.chunks,
      hub: this.hub,
      logins: new LoginGuard(),
      log: (line) => this.log.push(line),
      epoch: MEMORY_EPOCH,
    });
    const pushes = new Inbox();
    const client = { peer: new RpcPeer(clientSide, { onPush: pushes.add }), session, pushes };
    this.#clients.push(client);
    return client;
  }

  /** Connects, says HELLO and logs in. */
  async login(user = "alice", device = "laptop"): Promise<Client & { token: string }> {
    const client = this.connect();
    await client.peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "in-memory-test" });
    const { message } = await client.peer.request("LOGIN", { user, password: PASSWORD, device });
    return { ...client, token: message.token as string };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const { peer } of this.#clients) peer.close();
    await Promise.all(this.#clients.flatMap(({ peer, session }) => [peer.closed, session.peer.closed]));
    this.store.close();
    await Deno.remove(this.dir, { recursive: true });
  }
}

/** Deterministic pseudo-random bytes (xorshift), so content-defined chunking finds several cuts. */
function bytesOf(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A file cut into chunks the way clients cut it. */
function fileOf(data: Uint8Array): { chunks: { id: string; data: Uint8Array }[]; hash: string } {
  const chunks: { id: string; data: Uint8Array }[] = [];
  let at = 0;
  for (const length of chunkLengths(data)) {
    const piece = data.slice(at, at + length);
    chunks.push({ id: sha256Hex(piece), data: piece });
    at += length;
  }
  return { chunks, hash: fileHashOfChunks(chunks.map((c) => c.id)) };
}

/** Uploads a file the way the client does: HAVE, PUT what is missing, COMMIT. Returns the COMMIT's results. */
async function uploadFile(
  peer: RpcPeer,
  path: string,
  data: Uint8Array,
  baseRev = 0,
): Promise<{ ok: boolean; entries?: WireEntry[]; code?: string }[]> {
  const file = fileOf(data);
  const have = await peer.request("HAVE", { hashes: file.chunks.map((c) => c.id) });
  const missing = new Set(have.message.missing as string[]);
  await Promise.all(
    file.chunks.filter((c) => missing.has(c.id)).map((c) => peer.request("PUT", { hash: c.id }, c.data)),
  );
  const rows = file.chunks.map((c) => ({ id: c.id, size: c.data.length }));
  const change = {
    op: "upload",
    path,
    baseRev,
    size: data.length,
    mtime: 1_700_000_000_000,
    hash: file.hash,
    rows: { offset: 0, count: rows.length },
  };
  const reply = await peer.request("COMMIT", { changes: [change] }, encodeRows(rows));
  return reply.message.results as { ok: boolean; entries?: WireEntry[] }[];
}

/**
 * Downloads a file: DOWNLOAD for its manifest, then GET for each chunk. A small file's only chunk comes inline
 * with the manifest (`inline: 1`: the row, then the bytes), and is checked against its row.
 */
async function downloadFile(peer: RpcPeer, path: string): Promise<{ entry: WireEntry; data: Uint8Array }> {
  const reply = await peer.request("DOWNLOAD", { path });
  if (reply.message.inline === 1) {
    const [row] = decodeRows(reply.data!.subarray(0, MANIFEST_ROW_BYTES));
    const data = reply.data!.subarray(MANIFEST_ROW_BYTES);
    assert.equal(sha256Hex(data), row.id, "the inline bytes are the file's chunk");
    return { entry: reply.message.entry as WireEntry, data };
  }
  const rows = decodeRows(reply.data!);
  const parts = await Promise.all(rows.map((row) => peer.request("GET", { hash: row.id })));
  const data = new Uint8Array(rows.reduce((n, r) => n + r.size, 0));
  let at = 0;
  parts.forEach((part, i) => {
    assert.equal(part.data!.length, rows[i].size);
    data.set(part.data!, at);
    at += part.data!.length;
  });
  return { entry: reply.message.entry as WireEntry, data };
}

/** Asserts that `promise` rejects with an RpcError of `code`. */
async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof RpcError, `expected RpcError, got ${error}`);
    assert.equal(error.code, code, error.message);
    return true;
  });
}

Deno.test("a file uploaded by one client reaches a monitoring client and downloads byte for byte", async () => {
  await using server = await MemoryServer.create();
  const uploader = server.connect();
  const hello = await uploader.peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "test" });
  assert.equal(hello.message.version, PROTOCOL_VERSION);
  const login = await uploader.peer.request("LOGIN", { user: "alice", password: PASSWORD, device: "laptop" });
  assert.equal(login.message.user, "alice");
  assert.equal(typeof login.message.token, "string");

  // The second device logs in with the first one's token and watches the journal.
  const watcher = server.connect();
  await watcher.peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "test" });
  const auth = await watcher.peer.request("AUTH", { token: login.message.token });
  assert.equal(auth.message.user, "alice");
  const monitor = await watcher.peer.request("MONITOR", { since: 0 });
  assert.equal(monitor.message.cursor, 0);

  const data = bytesOf(300_000, 7);
  const file = fileOf(data);
  assert.ok(file.chunks.length >= 3, `only ${file.chunks.length} chunks`);
  const ids = file.chunks.map((c) => c.id);
  const before = await uploader.peer.request("HAVE", { hashes: ids });
  assert.deepEqual(before.message.missing, ids);
  for (const c of file.chunks) await uploader.peer.request("PUT", { hash: c.id }, c.data);
  const after = await uploader.peer.request("HAVE", { hashes: ids });
  assert.deepEqual(after.message.missing, []);
  const rows = file.chunks.map((c) => ({ id: c.id, size: c.data.length }));
  const commit = await uploader.peer.request("COMMIT", {
    changes: [{
      op: "upload",
      path: "docs/report.bin",
      baseRev: 0,
      size: data.length,
      mtime: 1_700_000_000_000,
      hash: file.hash,
      rows: { offset: 0, count: rows.length },
    }],
  }, encodeRows(rows));
  const [result] = commit.message.results as { ok: boolean; entries: WireEntry[] }[];
  assert.ok(result.ok, JSON.stringify(result));
  assert.deepEqual(result.entries.map((e) => [e.rev, e.path, e.kind]), [[1, "docs", "dir"], [
    2,
    "docs/report.bin",
    "file",
  ]]);

  const push = await watcher.pushes.next();
  assert.equal(push.message.push, "events");
  assert.deepEqual(push.message.events, result.entries);

  const download = await downloadFile(watcher.peer, "docs/report.bin");
  assert.equal(download.entry.hash, file.hash);
  assert.equal(download.entry.device, "laptop");
  assert.deepEqual(download.data, data);
  assert.ok(
    server.log.some((line) => line.includes('login alice on device "laptop"')),
    server.log.join("\n"),
  );
});

Deno.test("MONITOR first pushes the journal since the cursor, then live changes", async () => {
  await using server = await MemoryServer.create();
  const writer = await server.login();
  for (const name of ["a.txt", "b.txt", "c.txt"]) {
    assert.ok((await uploadFile(writer.peer, name, bytesOf(1000, name.length + name.charCodeAt(0))))[0].ok);
  }
  const reader = await server.login("alice", "phone");
  const monitor = await reader.peer.request("MONITOR", { since: 1 });
  assert.equal(monitor.message.cursor, 3);
  const catchUp = await reader.pushes.next();
  assert.deepEqual((catchUp.message.events as WireEntry[]).map((e) => [e.rev, e.path]), [[2, "b.txt"], [
    3,
    "c.txt",
  ]]);
  await uploadFile(writer.peer, "a.txt", bytesOf(2000, 99), 1);
  const live = await reader.pushes.next();
  assert.deepEqual((live.message.events as WireEntry[]).map((e) => [e.rev, e.path]), [[4, "a.txt"]]);
  await rejectsWith(reader.peer.request("MONITOR", { since: 0 }), "bad_request");
  const ahead = await server.login("alice", "tablet");
  await rejectsWith(ahead.peer.request("MONITOR", { since: 99 }), RESYNC_CODE);
});

Deno.test("MONITOR refuses a cursor of another journal history with the reason; HELLO and snapshots carry the identity", async () => {
  await using server = await MemoryServer.create();
  const writer = await server.login();
  for (const name of ["a", "b", "c"]) await uploadFile(writer.peer, name, bytesOf(100, name.charCodeAt(0)));
  const hello = await server.connect().peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "t" });
  assert.equal(hello.message.epoch, MEMORY_EPOCH);
  const fresh = await server.login("alice", "new");
  await fresh.peer.request("MONITOR", { since: 0 });
  const snapshot = await fresh.pushes.next();
  assert.equal(snapshot.message.push, "snapshot");
  assert.equal(snapshot.message.cursor, 3);
  const [atThree] = (await writer.peer.request("CHANGES", { since: 2 })).message.events as WireEntry[];
  assert.ok(atThree.tag);
  assert.equal(snapshot.message.tag, atThree.tag);

  const refusal = async (request: Record<string, unknown>): Promise<unknown> => {
    const client = await server.login("alice", "old");
    const error = await client.peer.request("MONITOR", request).then(() => null, (e) => e);
    if (error === null) return null;
    assert.ok(error instanceof RpcError && error.code === RESYNC_CODE, String(error));
    assert.equal(error.detail.latest, 3);
    return error.detail.reason;
  };
  assert.equal(await refusal({ since: 3, epoch: MEMORY_EPOCH, tag: atThree.tag }), null);
  assert.equal(await refusal({ since: 3, epoch: MEMORY_EPOCH, tag: "other" }), "diverged");
  assert.equal(await refusal({ since: 3, epoch: "another", tag: atThree.tag }), "epoch");
  assert.equal(await refusal({ since: 7, epoch: MEMORY_EPOCH }), "behind");
  await server.store.compactJournal("alice", 2);
  assert.equal(await refusal({ since: 1, epoch: MEMORY_EPOCH }), "expired");
  assert.equal(await refusal({ since: 2, epoch: MEMORY_EPOCH }), null);
  await rejectsWith(writer.peer.request("CHANGES", { since: 1 }), RESYNC_CODE);
});

Deno.test("CHANGES pages through the journal with the latest seq", async () => {
  await using server = await MemoryServer.create();
  const client = await server.login();
  for (let i = 0; i < 5; i++) await uploadFile(client.peer, `f${i}`, bytesOf(100, i + 1));
  const page = await client.peer.request("CHANGES", { since: 2, limit: 2 });
  assert.equal(page.message.latest, 5);
  assert.deepEqual((page.message.events as WireEntry[]).map((e) => e.path), ["f2", "f3"]);
});

Deno.test("the session enforces HELLO, then login, before anything else", async () => {
  await using server = await MemoryServer.create();
  const client = server.connect();
  await rejectsWith(client.peer.request("PING"), "bad_request");
  await rejectsWith(client.peer.request("NOPE"), "unknown_op");
  await rejectsWith(
    client.peer.request("HELLO", { version: PROTOCOL_VERSION + 1, agent: "future" }),
    "version",
  );
  await rejectsWith(client.peer.request("HELLO", { version: "1" }), "bad_request");
  await client.peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "test" });
  await rejectsWith(client.peer.request("CHANGES", { since: 0 }), "auth");
  await client.peer.request("PING");
  await rejectsWith(client.peer.request("LOGIN", { user: "alice", password: "wrong", device: "x" }), "auth");
  await rejectsWith(
    client.peer.request("LOGIN", { user: "mallory", password: PASSWORD, device: "x" }),
    "auth",
  );
  await rejectsWith(client.peer.request("AUTH", { token: "forged" }), "auth_token");
  await rejectsWith(client.peer.request("CHANGES", { since: 0 }), "auth");
  await client.peer.request("LOGIN", { user: "alice", password: PASSWORD, device: "x" });
  await client.peer.request("CHANGES", { since: 0 });
  assert.ok(server.log.some((line) => line.includes("login failed for mallory")));
});

Deno.test("a PUT whose bytes do not match its hash, or that carries no bytes, is refused", async () => {
  await using server = await MemoryServer.create();
  const { peer } = await server.login();
  const good = bytesOf(500, 3);
  await rejectsWith(peer.request("PUT", { hash: sha256Hex(good) }, bytesOf(500, 4)), "bad_hash");
  await rejectsWith(peer.request("PUT", { hash: sha256Hex(good) }), "bad_request");
  assert.equal(await server.chunks.has(sha256Hex(good)), false);
  const have = await peer.request("HAVE", { hashes: [sha256Hex(good)] });
  assert.deepEqual(have.message.missing, [sha256Hex(good)]);
});

Deno.test("a COMMIT of chunks that were never uploaded is refused as missing_chunks", async () => {
  await using server = await MemoryServer.create();
  const { peer } = await server.login();
  const data = bytesOf(50_000, 5);
  const file = fileOf(data);
  const rows = file.chunks.map((c) => ({ id: c.id, size: c.data.length }));
  const reply = await peer.request("COMMIT", {
    changes: [{
      op: "upload",
      path: "x.bin",
      baseRev: 0,
      size: data.length,
      mtime: 0,
      hash: file.hash,
      rows: { offset: 0, count: rows.length },
    }],
  }, encodeRows(rows));
  const [result] = reply.message.results as { ok: boolean; code: string }[];
  assert.equal(result.code, "missing_chunks");
  await rejectsWith(peer.request("DOWNLOAD", { path: "x.bin" }), "not_found");
});

Deno.test("chunks stored for one user cannot be fetched or referenced by another", async () => {
  await using server = await MemoryServer.create(["alice", "bob"]);
  const alice = await server.login("alice");
  const data = bytesOf(100_000, 11);
  assert.ok((await uploadFile(alice.peer, "secret.bin", data))[0].ok);
  const file = fileOf(data);
  const bob = await server.login("bob", "bobs-laptop");
  for (const c of file.chunks) await rejectsWith(bob.peer.request("GET", { hash: c.id }), "not_found");
  const have = await bob.peer.request("HAVE", { hashes: file.chunks.map((c) => c.id) });
  assert.equal((have.message.missing as string[]).length, file.chunks.length, "bob must upload them himself");
  await rejectsWith(bob.peer.request("DOWNLOAD", { path: "secret.bin" }), "not_found");
  const rows = file.chunks.map((c) => ({ id: c.id, size: c.data.length }));
  const reply = await bob.peer.request("COMMIT", {
    changes: [{
      op: "upload",
      path: "stolen.bin",
      baseRev: 0,
      size: data.length,
      mtime: 0,
      hash: file.hash,
      rows: { offset: 0, count: rows.length },
    }],
  }, encodeRows(rows));
  assert.equal((reply.message.results as { code: string }[])[0].code, "missing_chunks");
  // Once bob uploads the same bytes himself, he may commit them.
  assert.ok((await uploadFile(bob.peer, "mine.bin", data))[0].ok);
  assert.deepEqual((await downloadFile(bob.peer, "mine.bin")).data, data);
});

Deno.test("a conflicting upload is refused and the winner's version is what downloads", async () => {
  await using server = await MemoryServer.create();
  const one = await server.login("alice", "one");
  const two = await server.login("alice", "two");
  const first = bytesOf(20_000, 21);
  assert.ok((await uploadFile(one.peer, "shared.txt", first))[0].ok);
  const [lost] = await uploadFile(two.peer, "shared.txt", bytesOf(20_000, 22), 0);
  assert.equal(lost.ok, false);
  assert.equal(lost.code, "conflict");
  assert.deepEqual((await downloadFile(two.peer, "shared.txt")).data, first);
});

Deno.test("a session that is not monitoring gets no event pushes for its commits", async () => {
  await using server = await MemoryServer.create();
  const client = await server.login();
  await uploadFile(client.peer, "quiet.txt", bytesOf(10, 1));
  // A push would travel before the COMMIT reply on the same stream, so it would be here by now.
  assert.equal(client.pushes.pending, 0);
});
