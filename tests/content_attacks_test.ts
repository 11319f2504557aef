// Attacks on shared content over a real TLS server: the dedup oracle, manifests poisoned across users, absurd
// size claims, and the largest file and quota limits (protocol level and with real client processes).
import assert from "node:assert/strict";
import { openConnection } from "../client/connection.ts";
import { runAdmin, type RunningServer, startServer as startInProcess } from "../server/server.ts";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import {
  type ChangeResult,
  type ChunkRow,
  decodeRows,
  encodeRows,
  MANIFEST_ROW_BYTES,
  type WireEntry,
} from "../protocol/messages.ts";
import type { RpcPeer } from "../protocol/rpc.ts";
import { chunkLengths } from "../protocol/chunker.ts";
import {
  addUser,
  randomBytes,
  run,
  startClient,
  startServer,
  TempDir,
  waitFor,
  waitForFile,
} from "./harness.ts";

const ALICE = { user: "alice", password: "alice's long password" };
const BOB = { user: "bob", password: "bob's other password" };
const utf8 = (text: string) => new TextEncoder().encode(text);

/** An in-process server with users alice and bob; closes every connection it handed out. */
class TestServer implements AsyncDisposable {
  readonly tmp = new TempDir();
  readonly lines: string[] = [];
  readonly peers: RpcPeer[] = [];
  server!: RunningServer;
  ca = "";

  static async start(
    options: { maxFileBytes?: number | null; quotaBytes?: number } = {},
  ): Promise<TestServer> {
    const t = new TestServer();
    try {
      t.server = await startInProcess({
        dataDir: t.tmp.join("data"),
        port: 0,
        host: "127.0.0.1",
        log: (line) => t.lines.push(line),
        ...options,
      });
      t.ca = Deno.readTextFileSync(t.tmp.join("data", "certs", "ca.pem"));
      for (const { user, password } of [ALICE, BOB]) {
        assert.ok((await runAdmin(t.server.store, { op: "user-add", name: user, password })).ok);
      }
    } catch (error) {
      await t[Symbol.asyncDispose]();
      throw error;
    }
    return t;
  }

  /** A connection logged in with a password as this device. */
  async login(who: { user: string; password: string }, device = "test"): Promise<RpcPeer> {
    const peer = await openConnection({ hostname: "127.0.0.1", port: this.server.port, caPem: this.ca });
    this.peers.push(peer);
    await peer.request("LOGIN", { user: who.user, password: who.password, device });
    return peer;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const peer of this.peers) peer.close();
    await Promise.all(this.peers.map((p) => p.closed));
    if (this.server) await this.server.close();
    await this.tmp[Symbol.asyncDispose]();
  }
}

/** PUTs each chunk; returns its row. */
async function put(peer: RpcPeer, ...texts: string[]): Promise<ChunkRow[]> {
  const rows: ChunkRow[] = [];
  for (const text of texts) {
    const bytes = utf8(text);
    const id = sha256Hex(bytes);
    await peer.request("PUT", { hash: id }, bytes);
    rows.push({ id, size: bytes.length });
  }
  return rows;
}

/** Commits one upload made of these rows (sizes as given); returns its result. */
async function commitRows(
  peer: RpcPeer,
  path: string,
  rows: ChunkRow[],
  options: { baseRev?: number; from?: { hash: string; head: number; tail: number }; size?: number } = {},
): Promise<ChangeResult> {
  const change = {
    op: "upload",
    path,
    baseRev: options.baseRev ?? 0,
    size: options.size ?? rows.reduce((sum, r) => sum + r.size, 0),
    mtime: 1_700_000_000_000,
    hash: fileHashOfChunks(rows.map((r) => r.id)),
    rows: { offset: 0, count: rows.length },
  };
  const reply = await peer.request("COMMIT", { changes: [change] }, encodeRows(rows));
  return (reply.message.results as ChangeResult[])[0];
}

/** The refusal of a result; fails the test for an accepted one. */
function refusal(result: ChangeResult): { code: string; error: string } {
  assert.ok(!result.ok, "expected a refusal, but the change was accepted");
  return result;
}

/** What a DOWNLOAD reply tells: its fields besides the entry, and the manifest rows it carries. */
async function download(peer: RpcPeer, path: string, base?: string) {
  const reply = await peer.request("DOWNLOAD", base === undefined ? { path } : { path, base });
  const { entry, ...rest } = reply.message as { entry: WireEntry } & Record<string, unknown>;
  delete rest.re;
  const data = reply.data ?? new Uint8Array();
  const rowBytes = rest.inline ? MANIFEST_ROW_BYTES : data.length;
  return { entry, fields: rest, rows: decodeRows(data.subarray(0, rowBytes)), data };
}

// ---- the dedup oracle ----

Deno.test("a DOWNLOAD base cannot tell bob whether alice stores a file: her hash and a random one look alike", async () => {
  await using t = await TestServer.start();
  const alice = await t.login(ALICE);
  const bob = await t.login(BOB);
  // Alice's secret: one of 10,000 PIN files. Bob can compute the file hash of every candidate.
  const secret = await put(alice, "PIN=4711\n");
  assert.ok((await commitRows(alice, "pin.txt", secret)).ok);
  const aliceHash = fileHashOfChunks(secret.map((r) => r.id));

  // Bob's own file (small: it comes inline) and his own earlier version of it.
  const v1 = await put(bob, "bob's notes, first draft\n");
  const first = await commitRows(bob, "notes.txt", v1);
  assert.ok(first.ok);
  const v2 = await put(bob, "bob's notes, second draft\n");
  assert.ok((await commitRows(bob, "notes.txt", v2, { baseRev: first.entries[0].rev })).ok);

  const random = sha256Hex(utf8("no such file anywhere"));
  const withAlices = await download(bob, "notes.txt", aliceHash);
  const withRandom = await download(bob, "notes.txt", random);
  const withNone = await download(bob, "notes.txt");
  assert.deepEqual(withAlices.fields, withNone.fields, "alice's hash as a base changed the reply");
  assert.deepEqual(withRandom.fields, withNone.fields);
  assert.deepEqual(withAlices.data, withNone.data);
  assert.deepEqual(withRandom.data, withNone.data);
  assert.equal(withAlices.fields.from, undefined);

  // Bob's own earlier version still serves as a base (a delta, nothing inline).
  const own = await download(bob, "notes.txt", fileHashOfChunks(v1.map((r) => r.id)));
  assert.ok(
    own.fields.from,
    `a base from bob's own history should give a delta: ${JSON.stringify(own.fields)}`,
  );

  // The whole PIN space as bob: not one candidate gives a different reply than the others.
  const shapes = new Set<string>();
  for (let pin = 4700; pin < 4720; pin++) {
    const candidate = fileHashOfChunks([sha256Hex(utf8(`PIN=${pin}\n`))]);
    const got = await download(bob, "notes.txt", candidate);
    shapes.add(JSON.stringify(got.fields) + got.data.length);
  }
  assert.equal(shapes.size, 1, `replies differ between candidates: ${[...shapes].join(" / ")}`);

  // A delta in a COMMIT against alice's hash is refused exactly as one against a random hash.
  const current = (await download(bob, "notes.txt")).entry;
  const delta = async (base: string) => {
    const rows = await put(bob, "third draft\n");
    const reply = await bob.request("COMMIT", {
      changes: [{
        op: "upload",
        path: "notes.txt",
        baseRev: current.rev,
        size: rows[0].size,
        mtime: 1,
        hash: fileHashOfChunks(rows.map((r) => r.id)),
        rows: { offset: 0, count: 1 },
        from: { hash: base, head: 0, tail: 0 },
      }],
    }, encodeRows(rows));
    return (reply.message.results as ChangeResult[])[0];
  };
  const againstAlice = refusal(await delta(aliceHash));
  const againstRandom = refusal(await delta(random));
  assert.equal(againstAlice.code, "bad_base");
  assert.equal(againstAlice.error, againstRandom.error);
});

Deno.test("a base from the caller's own history still gets a delta", async () => {
  await using t = await TestServer.start();
  const alice = await t.login(ALICE);
  const big = Array.from({ length: 3 }, (_, i) => `part ${i} `.repeat(10_000));
  const v1 = await put(alice, ...big);
  const first = await commitRows(alice, "doc.bin", v1);
  assert.ok(first.ok);
  const v2 = [...v1.slice(0, 2), ...await put(alice, "new tail")];
  assert.ok((await commitRows(alice, "doc.bin", v2, { baseRev: first.entries[0].rev })).ok);
  const got = await download(alice, "doc.bin", fileHashOfChunks(v1.map((r) => r.id)));
  assert.deepEqual(got.fields.from, { hash: fileHashOfChunks(v1.map((r) => r.id)), head: 2, tail: 0 });
  assert.equal(got.rows.length, 1, "only the changed row travels");
});

// ---- manifests poisoned across users ----

Deno.test("a manifest with rotated chunk sizes is refused at commit; the owner's upload and other device work", async () => {
  await using t = await TestServer.start();
  const bob = await t.login(BOB);
  // Bob knows alice's file: two chunks of 5 and 9 bytes. He commits it with the sizes swapped: same chunk
  // ids (so the same file hash), same total.
  const parts = ["12345", "abcdefghi"];
  const real = await put(bob, ...parts);
  const rotated = [{ id: real[0].id, size: 9 }, { id: real[1].id, size: 5 }];
  const poisoned = refusal(await commitRows(bob, "trap.bin", rotated));
  assert.equal(poisoned.code, "bad_rows");
  assert.match(poisoned.error, /Chunk 1 of "trap.bin" \([0-9a-f]{12}\) claims 9 bytes, but it holds 5/);
  assert.ok(t.lines.some((l) => /bob@test: refused upload trap\.bin: Chunk 1/.test(l)), t.lines.join("\n"));

  // Alice uploads the same file with the right sizes; her other device gets it whole.
  const laptop = await t.login(ALICE, "laptop");
  const rows = await put(laptop, ...parts);
  assert.ok((await commitRows(laptop, "file.bin", rows)).ok);
  const phone = await t.login(ALICE, "phone");
  const got = await download(phone, "file.bin");
  assert.deepEqual(got.rows, rows, "alice's device got the rows she committed");
  for (const [i, row] of got.rows.entries()) {
    const chunk = await phone.request("GET", { hash: row.id });
    assert.equal(chunk.data?.length, row.size);
    assert.equal(new TextDecoder().decode(chunk.data), parts[i]);
  }
});

Deno.test("a manifest stored wrong by older code is healed by the next correct commit of that file", async () => {
  await using t = await TestServer.start();
  const alice = await t.login(ALICE);
  const parts = ["first part", "second, longer part"];
  const rows = await put(alice, ...parts);
  const hash = fileHashOfChunks(rows.map((r) => r.id));
  // What a wrong manifest looked like before commits checked sizes: written straight into the KV.
  const kv = (t.server.store as unknown as { kv: Deno.Kv }).kv;
  const wrong = [{ id: rows[0].id, size: rows[1].size }, { id: rows[1].id, size: rows[0].size }];
  await kv.set(["mp", hash, 0], encodeRows(wrong));
  await kv.set(["m", hash], { size: 29, count: 2, parts: 1 });
  assert.ok((await commitRows(alice, "f.txt", rows)).ok);
  assert.deepEqual((await download(alice, "f.txt")).rows, rows);
  const stored = await kv.get<Uint8Array>(["mp", hash, 0]);
  assert.deepEqual(
    decodeRows(stored.value!),
    rows,
    "the stored manifest itself is right (not only a cached copy)",
  );
});

// ---- absurd size claims, the largest file and the quota ----

Deno.test("a file claiming 10 TiB in rows of 4 GiB over one 11-byte chunk is refused at commit", async () => {
  await using t = await TestServer.start({ maxFileBytes: null });
  const alice = await t.login(ALICE);
  const [tiny] = await put(alice, "eleven byte");
  const huge = Array.from({ length: 2560 }, () => ({ id: tiny.id, size: 0xffffffff }));
  const claim = refusal(await commitRows(alice, "huge.bin", huge));
  assert.equal(claim.code, "bad_rows");
  assert.match(
    claim.error,
    /Chunk 1 of "huge\.bin" claims 4294967295 bytes: a chunk holds 1 to 4194304 bytes/,
  );
  // The same chunk repeated with its real size is a fine (if odd) file.
  assert.ok((await commitRows(alice, "repeat.bin", [tiny, tiny, tiny])).ok);
  const got = await download(alice, "repeat.bin");
  assert.equal(got.entry.size, 33);
  const events = (await alice.request("CHANGES", { since: 0 })).message.events as WireEntry[];
  assert.deepEqual(events.map((e) => e.path), ["repeat.bin"]);
});

Deno.test("by default the server accepts files up to 1 TiB and refuses larger ones with file too large", async () => {
  await using t = await TestServer.start();
  const alice = await t.login(ALICE);
  const [big] = await put(alice, "x".repeat(4 * 1024 * 1024));
  const rows = Array.from({ length: 262_145 }, () => big); // 1 TiB and 4 MiB
  const refused = refusal(await commitRows(alice, "disk.img", rows));
  assert.equal(refused.code, "too_large");
  assert.equal(
    refused.error,
    `file too large: "disk.img" is 1.00 TiB, the server accepts files up to 1.00 TiB`,
  );
  assert.ok(
    t.lines.some((l) => l.includes("largest file 1.00 TiB, quota per user unlimited")),
    t.lines.join("\n"),
  );
});

Deno.test("the quota counts each user's live files: replacing counts the difference, deleting frees it", async () => {
  await using t = await TestServer.start({ quotaBytes: 100 });
  const alice = await t.login(ALICE);
  const bob = await t.login(BOB);
  const sixty = await put(alice, "a".repeat(60));
  const first = await commitRows(alice, "a.txt", sixty);
  assert.ok(first.ok);
  const fifty = await put(alice, "b".repeat(50));
  const over = refusal(await commitRows(alice, "b.txt", fifty));
  assert.equal(over.code, "quota_exceeded");
  assert.equal(over.error, `quota exceeded: "b.txt" needs 50 B more, 40 B of 100 B left`);
  // Bob has his own quota.
  assert.ok((await commitRows(bob, "b.txt", await put(bob, "b".repeat(50)))).ok);
  // A replacement of a.txt by 90 bytes adds 30: fits.
  const ninety = await put(alice, "c".repeat(90));
  const replaced = await commitRows(alice, "a.txt", ninety, { baseRev: first.entries[0].rev });
  assert.ok(replaced.ok);
  assert.equal(await t.server.store.usage("alice"), 90);
  // Deleting frees it (kept versions and trash do not count).
  const reply = await alice.request("COMMIT", {
    changes: [{ op: "delete", path: "a.txt", baseRev: replaced.entries[0].rev, kind: "file" }],
  });
  assert.ok((reply.message.results as ChangeResult[])[0].ok);
  assert.equal(await t.server.store.usage("alice"), 0);
  assert.ok((await commitRows(alice, "b.txt", fifty)).ok);
  // A restore is a commit like any other: it is refused past the quota too.
  assert.ok((await commitRows(alice, "c.txt", await put(alice, "d".repeat(45)))).ok);
  let restoreError = "";
  try {
    await alice.request("RESTORE", { path: "a.txt" });
  } catch (error) {
    restoreError = (error as Error).message;
  }
  assert.match(restoreError, /quota exceeded: "a\.txt" needs 90 B more, 5 B of 100 B left/);
});

Deno.test("E2E: a real client over its quota reports the file once, does not retry it, and syncs the rest", async () => {
  await using tmp = new TempDir();
  const dataDir = tmp.join("server");
  await using server = await startServer(dataDir, ["--quota", "64K"]);
  await addUser(dataDir, ALICE.user, ALICE.password);
  const a = tmp.join("a");
  const b = tmp.join("b");
  await Deno.mkdir(a);
  await Deno.writeTextFile(`${a}/small-1.txt`, "one\n");
  await Deno.writeTextFile(`${a}/small-2.txt`, "two\n");
  await Deno.writeFile(`${a}/big.bin`, new Uint8Array(100 * 1024).fill(7));
  const env = { FILESYNC_TRACE: "1" };
  await using clientA = startClient({ server, ...ALICE, dir: a, device: "a", env });
  await using _clientB = startClient({ server, ...ALICE, dir: b, device: "b" });
  await waitForFile(`${b}/small-1.txt`, "one\n");
  await waitForFile(`${b}/small-2.txt`, "two\n");
  await waitFor(() => /quota exceeded/.test(clientA.output), { message: () => clientA.output });
  const refusedLine = clientA.output.split("\n").find((l) => l.includes("quota exceeded"))!;
  assert.match(
    refusedLine,
    /server refused upload of big\.bin: quota exceeded: "big\.bin" needs 100\.0 KiB more, 64\.0 KiB of 64\.0 KiB left \(not tried again until the file changes\)/,
  );
  // Three more full rescans (every 2 s) and a later file: big.bin is not tried again, the rest still syncs.
  const fullScans = () =>
    clientA.output.split("\n").filter((l) => /TRACE .* cycle start .*full=true/.test(l)).length;
  const seen = fullScans();
  await Deno.writeTextFile(`${a}/later.txt`, "later\n");
  await waitForFile(`${b}/later.txt`, "later\n");
  await waitFor(() => fullScans() >= seen + 3, { timeoutMs: 20_000, message: () => clientA.output });
  const count = (text: string, pattern: RegExp) => text.split("\n").filter((l) => pattern.test(l)).length;
  assert.equal(count(clientA.output, /quota exceeded/), 1, clientA.output);
  assert.equal(count(server.output, /refused upload big\.bin: quota exceeded/), 1, server.output);
  await assert.rejects(Deno.stat(`${b}/big.bin`), Deno.errors.NotFound);
  // Making room lets it through: after a delete on this device, it is tried once more.
  await Deno.remove(`${a}/small-1.txt`);
  await Deno.writeFile(`${a}/big.bin`, new Uint8Array(60 * 1024).fill(8));
  await waitFor(async () => (await Deno.stat(`${b}/big.bin`).catch(() => null))?.size === 60 * 1024, {
    timeoutMs: 20_000,
    message: () => clientA.output,
  });
});

Deno.test("a user's own quota overrides the server's at once, also on an open connection", async () => {
  await using t = await TestServer.start({ quotaBytes: 100 });
  const alice = await t.login(ALICE);
  const rows = await put(alice, "x".repeat(500));
  assert.equal(refusal(await commitRows(alice, "f.bin", rows)).code, "quota_exceeded");
  const set = await runAdmin(t.server.store, { op: "user-quota", name: "alice", set: { quota: 1000 } });
  assert.deepEqual(set, { ok: true, quota: { used: 0, own: 1000 } });
  assert.ok((await commitRows(alice, "f.bin", rows)).ok);
  await runAdmin(t.server.store, { op: "user-quota", name: "alice", set: { quota: null } });
  assert.ok((await commitRows(alice, "g.bin", await put(alice, "y".repeat(5000)))).ok, "no quota at all");
  await runAdmin(t.server.store, { op: "user-quota", name: "alice", set: { quota: "default" } });
  assert.equal(refusal(await commitRows(alice, "h.bin", await put(alice, "z"))).code, "quota_exceeded");
  const unknown = await runAdmin(t.server.store, { op: "user-quota", name: "nobody", set: { quota: 5 } });
  assert.deepEqual(unknown, { ok: false, error: `No user "nobody"` });
});

Deno.test("E2E: filesync user quota shows and sets a user's quota through the running server", async () => {
  await using tmp = new TempDir();
  const dataDir = tmp.join("server");
  await using _server = await startServer(dataDir, ["--quota", "1G"]);
  await addUser(dataDir, "carol", "carol's password!");
  const quota = (...args: string[]) => run(["user", "quota", "carol", ...args, "--data", dataDir]);
  assert.deepEqual(await quota(), {
    code: 0,
    output: "carol: 0 B used of 1.00 GiB (the server's --quota)\n",
  });
  assert.deepEqual(await quota("250M"), { code: 0, output: "carol: 0 B used of 250.0 MiB (own quota)\n" });
  assert.deepEqual(await quota("unlimited"), {
    code: 0,
    output: "carol: 0 B used, no quota (own setting)\n",
  });
  assert.deepEqual(await quota("default"), {
    code: 0,
    output: "carol: 0 B used of 1.00 GiB (the server's --quota)\n",
  });
  const bad = await quota("lots");
  assert.equal(bad.code, 2);
  assert.match(bad.output, /Invalid SIZE: Invalid size "lots"/);
});

Deno.test("a server started on data from older code rewrites every manifest whose rows disagree with its chunks", async () => {
  await using tmp = new TempDir();
  const dataDir = tmp.join("data");
  const lines: string[] = [];
  const start = () => startInProcess({ dataDir, port: 0, host: "127.0.0.1", log: (l) => lines.push(l) });
  let server = await start();
  const parts = ["short", "a longer second part"];
  let hash = "";
  let rows: ChunkRow[] = [];
  try {
    assert.ok((await runAdmin(server.store, { op: "user-add", ...ALICE, name: ALICE.user })).ok);
    const ca = Deno.readTextFileSync(`${dataDir}/certs/ca.pem`);
    const peer = await openConnection({ hostname: "127.0.0.1", port: server.port, caPem: ca });
    try {
      await peer.request("LOGIN", { ...ALICE, device: "laptop" });
      rows = await put(peer, ...parts);
      assert.ok((await commitRows(peer, "f.txt", rows)).ok);
      hash = fileHashOfChunks(rows.map((r) => r.id));
    } finally {
      peer.close();
      await peer.closed;
    }
    // What an older server may have stored: rows with rotated sizes, and no mark of the check.
    const kv = (server.store as unknown as { kv: Deno.Kv }).kv;
    await kv.set(["mp", hash, 0], encodeRows([{ id: rows[0].id, size: 20 }, { id: rows[1].id, size: 5 }]));
    await kv.delete(["config", "manifests-checked"]);
  } finally {
    await server.close();
  }
  server = await start();
  try {
    assert.ok(
      lines.some((l) => l.startsWith("checked every stored manifest against its chunks' sizes: 1 rewritten")),
    );
    assert.deepEqual(await server.store.getManifest(hash), rows);
  } finally {
    await server.close();
  }
  lines.length = 0;
  server = await start();
  await server.close();
  assert.ok(!lines.some((l) => l.startsWith("checked every stored manifest")), "the check runs once");
});

Deno.test("E2E: after bob tries to poison alice's file, her two real devices sync it", async () => {
  await using tmp = new TempDir();
  const dataDir = tmp.join("server");
  await using server = await startServer(dataDir);
  await addUser(dataDir, ALICE.user, ALICE.password);
  await addUser(dataDir, BOB.user, BOB.password);
  // Alice's file, cut as her client cuts it; bob knows its content.
  const content = randomBytes(600 * 1024, 5);
  const lengths = chunkLengths(content);
  assert.ok(lengths.length >= 3, `want several chunks, got ${lengths.length}`);
  const pieces: Uint8Array[] = [];
  for (let at = 0, i = 0; i < lengths.length; at += lengths[i++]) {
    pieces.push(content.subarray(at, at + lengths[i]));
  }
  const bob = await openConnection({
    hostname: "127.0.0.1",
    port: server.port,
    caPem: Deno.readTextFileSync(server.caPath),
  });
  try {
    await bob.request("LOGIN", { ...BOB, device: "attacker" });
    const real: ChunkRow[] = [];
    for (const piece of pieces) {
      const id = sha256Hex(piece);
      await bob.request("PUT", { hash: id }, piece);
      real.push({ id, size: piece.length });
    }
    const rotated = real.map((row, i) => ({ id: row.id, size: real[(i + 1) % real.length].size }));
    assert.equal(refusal(await commitRows(bob, "trap.bin", rotated)).code, "bad_rows");
  } finally {
    bob.close();
    await bob.closed;
  }
  const a = tmp.join("a");
  const b = tmp.join("b");
  await Deno.mkdir(a);
  await Deno.writeFile(`${a}/photo.raw`, content);
  await using clientA = startClient({ server, ...ALICE, dir: a, device: "a" });
  await using clientB = startClient({ server, ...ALICE, dir: b, device: "b" });
  await waitForFile(`${b}/photo.raw`, content, 20_000);
  assert.doesNotMatch(clientA.output + clientB.output, /damaged|refused/);
});
