// Protocol-level attacks on an in-process server: malformed frames, hostile paths, auth abuse, namespace isolation.
import assert from "node:assert/strict";
import { randomFillSync } from "node:crypto";
import { openConnection } from "../client/connection.ts";
import { adminRequest } from "../server/admin.ts";
import { issueToken, TOKEN_LIFETIME_MS } from "../server/auth.ts";
import { runAdmin, type RunningServer, startServer } from "../server/server.ts";
import { type Frame, FrameDecoder } from "../protocol/frame.ts";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import {
  ALPN,
  type ChangeResult,
  encodeRows,
  FETCH_INLINE_BYTES,
  MAX_FETCH_BYTES,
  MAX_FETCH_ITEMS,
  PROTOCOL_VERSION,
  type WireEntry,
} from "../protocol/messages.ts";
import { RpcError, RpcPeer } from "../protocol/rpc.ts";
import { TempDir, waitFor } from "./harness.ts";

const ALICE = { user: "alice", password: "alice's long password" };
const BOB = { user: "bob", password: "bob's other password" };

/** A server in a temp folder with users alice and bob, its log lines, and the peers a test opened. */
class TestServer implements AsyncDisposable {
  readonly tmp = new TempDir();
  readonly lines: string[] = [];
  readonly peers: RpcPeer[] = [];
  readonly conns: Deno.TlsConn[] = [];
  server!: RunningServer;
  ca = "";

  static async start(options: { loginTimeoutMs?: number } = {}): Promise<TestServer> {
    const t = new TestServer();
    try {
      t.server = await startServer({
        dataDir: t.tmp.join("data"),
        port: 0,
        host: "127.0.0.1",
        log: (line) => t.lines.push(line),
        loginTimeoutMs: options.loginTimeoutMs,
      });
      t.ca = Deno.readTextFileSync(t.tmp.join("data", "certs", "ca.pem"));
      for (const { user, password } of [ALICE, BOB]) {
        const reply = await runAdmin(t.server.store, { op: "user-add", name: user, password });
        assert.ok(reply.ok, `cannot add ${user}`);
      }
    } catch (error) {
      await t[Symbol.asyncDispose]();
      throw error;
    }
    return t;
  }

  /** A connection that has said HELLO. */
  async connect(onPush?: (frame: Frame) => void): Promise<RpcPeer> {
    const peer = await openConnection({
      hostname: "127.0.0.1",
      port: this.server.port,
      caPem: this.ca,
      rpc: { onPush },
    });
    this.peers.push(peer);
    return peer;
  }

  /** A connection logged in with a password. */
  async login(who: { user: string; password: string }): Promise<RpcPeer> {
    const peer = await this.connect();
    await peer.request("LOGIN", { user: who.user, password: who.password, device: "test" });
    return peer;
  }

  /** A TLS connection with no protocol on top (nothing sent yet). */
  async raw(): Promise<Deno.TlsConn> {
    const conn = await Deno.connectTls({
      hostname: "127.0.0.1",
      port: this.server.port,
      caCerts: [this.ca],
      alpnProtocols: [ALPN],
    });
    this.conns.push(conn);
    await conn.handshake();
    return conn;
  }

  /** Proves the server still serves a fresh connection: HELLO, token login, CHANGES. */
  async assertServes(): Promise<void> {
    const { token } = await issueToken(this.server.store, ALICE.user, "probe");
    const peer = await this.connect();
    await peer.request("AUTH", { token });
    const reply = await peer.request("CHANGES", { since: 0 });
    assert.ok(Array.isArray(reply.message.events));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const peer of this.peers) peer.close();
    await Promise.all(this.peers.map((p) => p.closed));
    for (const conn of this.conns) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    if (this.server) await this.server.close();
    await this.tmp[Symbol.asyncDispose]();
  }
}

/** Reads frames until the server closes the connection or the time is up. */
async function readUntilClosed(
  conn: Deno.TlsConn,
  timeoutMs = 3000,
): Promise<{ frames: Frame[]; closed: boolean; ms: number }> {
  const started = Date.now();
  const decoder = new FrameDecoder({ maxFrameBytes: 64 * 1024 * 1024 });
  const frames: Frame[] = [];
  const reader = conn.readable.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) =>
    timer = setTimeout(() => resolve("timeout"), timeoutMs)
  );
  try {
    while (true) {
      const next = await Promise.race([
        reader.read().catch(() => ({ done: true as const, value: undefined })),
        timeout,
      ]);
      if (next === "timeout") return { frames, closed: false, ms: Date.now() - started };
      if (next.done) return { frames, closed: true, ms: Date.now() - started };
      frames.push(...decoder.push(next.value));
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
}

/** Writes bytes, ignoring a connection the server already dropped. */
async function writeAll(conn: Deno.TlsConn, bytes: Uint8Array): Promise<void> {
  try {
    let written = 0;
    while (written < bytes.length) written += await conn.write(bytes.subarray(written));
  } catch { /* the server may close before reading everything */ }
}

/** A frame with an arbitrary length field, type byte and body. */
function rawFrame(length: number, type: number, body: Uint8Array = new Uint8Array()): Uint8Array {
  const out = new Uint8Array(5 + body.length);
  new DataView(out.buffer).setUint32(0, length);
  out[4] = type;
  out.set(body, 5);
  return out;
}

/** A well-formed frame of the given type around a body. */
function frameOf(type: number, body: Uint8Array): Uint8Array {
  return rawFrame(body.length + 1, type, body);
}

const utf8 = (text: string) => new TextEncoder().encode(text);

/** Asserts the promise rejects with an RpcError of this code (and message pattern); returns the error. */
async function rejectsWith(promise: Promise<unknown>, code: string, message?: RegExp): Promise<RpcError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof RpcError, `expected an RpcError "${code}", got ${caught ?? "success"}`);
  assert.equal(caught.code, code, `wrong code; message: ${caught.message}`);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** Uploads one single-chunk file (PUT then COMMIT); returns the commit's results. */
async function upload(peer: RpcPeer, path: string, text: string, baseRev = 0): Promise<ChangeResult[]> {
  const bytes = utf8(text);
  const id = sha256Hex(bytes);
  await peer.request("PUT", { hash: id }, bytes);
  return await commitUpload(peer, path, [{ id, size: bytes.length }], baseRev);
}

/** Commits an upload of a file made of these chunk rows (without sending any chunk). */
async function commitUpload(
  peer: RpcPeer,
  path: string,
  rows: { id: string; size: number }[],
  baseRev = 0,
): Promise<ChangeResult[]> {
  const size = rows.reduce((sum, r) => sum + r.size, 0);
  const change = {
    op: "upload",
    path,
    baseRev,
    size,
    mtime: 1_700_000_000_000,
    hash: fileHashOfChunks(rows.map((r) => r.id)),
    rows: { offset: 0, count: rows.length },
  };
  const reply = await peer.request("COMMIT", { changes: [change] }, encodeRows(rows));
  return reply.message.results as ChangeResult[];
}

async function changes(peer: RpcPeer): Promise<WireEntry[]> {
  return (await peer.request("CHANGES", { since: 0 })).message.events as WireEntry[];
}

// ---- malformed frames ----

const MALFORMED: { name: string; bytes: Uint8Array; error: RegExp }[] = [
  { name: "bad JSON", bytes: frameOf(1, utf8('{"id":1,"op":')), error: /not valid UTF-8 JSON/ },
  { name: "invalid UTF-8", bytes: frameOf(1, new Uint8Array([0x7b, 0xff, 0xfe, 0x7d])), error: /UTF-8/ },
  { name: "JSON that is not an object", bytes: frameOf(1, utf8("[1,2,3]")), error: /not a JSON object/ },
  { name: "unknown frame type", bytes: frameOf(7, utf8("{}")), error: /unknown frame type 7/ },
  {
    name: "data frame header overrun",
    bytes: frameOf(2, new Uint8Array([0, 0, 0x10, 0, 0x7b, 0x7d])),
    error: /overruns/,
  },
  { name: "data frame too short", bytes: frameOf(2, new Uint8Array([0, 0])), error: /too short/ },
  { name: "empty frame", bytes: new Uint8Array([0, 0, 0, 0]), error: /empty frame/ },
];

for (const { name, bytes, error } of MALFORMED) {
  Deno.test(`a malformed frame (${name}) gets a bad_frame error push and its connection closed`, async () => {
    await using t = await TestServer.start();
    const bystander = await t.login(ALICE);
    const conn = await t.raw();
    await writeAll(conn, bytes);
    const { frames, closed } = await readUntilClosed(conn);
    assert.ok(closed, "the server kept the connection open");
    const push = frames.find((f) => f.message.push === "error");
    assert.ok(push, `no error push; got ${JSON.stringify(frames.map((f) => f.message))}`);
    assert.equal(push.message.code, "bad_frame");
    assert.match(String(push.message.error), error);
    await bystander.request("PING");
    await t.assertServes();
  });
}

Deno.test("a malformed frame after a valid login still closes only that connection", async () => {
  await using t = await TestServer.start();
  const pushes: Frame[] = [];
  const victim = await t.connect((f) => pushes.push(f));
  const bystander = await t.login(BOB);
  await victim.request("LOGIN", { ...ALICE, device: "victim" });
  const conn = await t.raw();
  await writeAll(conn, frameOf(9, utf8("{}")));
  assert.ok((await readUntilClosed(conn)).closed);
  await victim.request("PING");
  await bystander.request("PING");
  assert.equal(pushes.length, 0, "an unrelated connection received the error push");
});

Deno.test("a message with neither id and op, re, nor push gets a bad_request push and the connection lives", async () => {
  await using t = await TestServer.start();
  const pushes: Frame[] = [];
  const peer = await t.connect((f) => pushes.push(f));
  const conn = await t.raw();
  await writeAll(conn, frameOf(1, utf8('{"op":"PING"}')));
  await writeAll(conn, frameOf(1, utf8('{"id":1,"op":"HELLO","version":1,"agent":"raw"}')));
  const { frames, closed } = await readUntilClosed(conn, 500);
  assert.equal(closed, false, "the server closed a connection for a harmless message");
  assert.equal(frames[0]?.message.push, "error");
  assert.equal(frames[0]?.message.code, "bad_request");
  assert.equal(frames[1]?.message.re, 1);
  assert.equal(frames[1]?.message.ok, true);
  await peer.request("PING");
});

// ---- oversized frames ----

for (const length of [0xFFFFFFF0, 16 * 1024 * 1024 + 1]) {
  Deno.test(`a frame length of ${length} bytes is refused before its body is read`, async () => {
    await using t = await TestServer.start();
    const bystander = await t.login(ALICE);
    const rssBefore = Deno.memoryUsage().rss;
    const conn = await t.raw();
    // Only the header and type byte: a server that waited for the body would never answer.
    await writeAll(conn, rawFrame(length, 1));
    const { frames, closed, ms } = await readUntilClosed(conn, 2000);
    assert.ok(closed, "the server waited for the body of an oversized frame");
    assert.ok(ms < 1500, `closing took ${ms} ms`);
    const push = frames.find((f) => f.message.push === "error");
    assert.equal(push?.message.code, "bad_frame");
    assert.match(String(push?.message.error), /exceeds the limit/);
    const grownMiB = (Deno.memoryUsage().rss - rssBefore) / 1048576;
    assert.ok(grownMiB < 128, `server memory grew by ${grownMiB.toFixed(0)} MiB`);
    await bystander.request("PING");
    await t.assertServes();
  });
}

// ---- ops out of order, unknown ops, versions ----

Deno.test("an unknown op gets an unknown_op error reply and the connection stays usable", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  for (const op of ["FROB", "constructor", "__proto__", "toString", "hello", ""]) {
    await rejectsWith(peer.request(op), "unknown_op", /Unknown op/);
  }
  await peer.request("PING");
  assert.deepEqual(await changes(peer), []);
});

Deno.test("an unknown op before HELLO is refused and the connection stays usable", async () => {
  await using t = await TestServer.start();
  const peer = new RpcPeer(await t.raw());
  t.peers.push(peer);
  await rejectsWith(peer.request("FROB"), "unknown_op");
  await peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "test" });
});

Deno.test("every op before HELLO is refused with a clear error", async () => {
  await using t = await TestServer.start();
  const peer = new RpcPeer(await t.raw());
  t.peers.push(peer);
  for (const op of ["LOGIN", "AUTH", "PING", "CHANGES", "GET", "COMMIT"]) {
    await rejectsWith(
      peer.request(op, op === "LOGIN" ? { ...ALICE, device: "x" } : {}),
      "bad_request",
      /HELLO must come first/,
    );
  }
  await peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "test" });
  await peer.request("LOGIN", { ...ALICE, device: "x" });
  assert.deepEqual(await changes(peer), []);
});

Deno.test("sync ops before login are refused with code auth", async () => {
  await using t = await TestServer.start();
  const peer = await t.connect();
  const hash = sha256Hex(utf8("x"));
  const attempts: [string, Record<string, unknown>, Uint8Array?][] = [
    ["CHANGES", { since: 0 }],
    ["MONITOR", { since: 0 }],
    ["HAVE", { hashes: [hash] }],
    ["PUT", { hash }, utf8("x")],
    ["GET", { hash }],
    ["DOWNLOAD", { path: "a.txt" }],
    ["COMMIT", { changes: [{ op: "mkdir", path: "evil", baseRev: 0 }] }],
  ];
  for (const [op, body, data] of attempts) {
    await rejectsWith(peer.request(op, body, data), "auth", /Log in first/);
  }
  await peer.request("PING");
  await peer.request("LOGIN", { ...ALICE, device: "x" });
  assert.deepEqual(await changes(peer), [], "an op sent before login changed the namespace");
  assert.equal(await t.server.chunks.has(hash), false, "a chunk sent before login was stored");
});

Deno.test("HELLO with another protocol version is refused with code version", async () => {
  await using t = await TestServer.start();
  for (const version of [PROTOCOL_VERSION + 1, 0, -1]) {
    const peer = new RpcPeer(await t.raw());
    t.peers.push(peer);
    await rejectsWith(
      peer.request("HELLO", { version, agent: "future" }),
      "version",
      new RegExp(`version ${version} is not supported.*version ${PROTOCOL_VERSION}`),
    );
    // Still before HELLO: the session must not have moved on.
    await rejectsWith(peer.request("LOGIN", { ...ALICE, device: "x" }), "bad_request", /HELLO/);
  }
  await t.assertServes();
});

Deno.test("a request whose fields have the wrong types is a bad_request reply, not a crash", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  await rejectsWith(peer.request("CHANGES", { since: -1 }), "bad_request", /Invalid CHANGES: since/);
  await rejectsWith(peer.request("CHANGES", { since: "0" }), "bad_request", /Invalid CHANGES/);
  await rejectsWith(peer.request("GET", { hash: "../../etc/passwd" }), "bad_request", /invalid hash/);
  await rejectsWith(peer.request("PUT", { hash: "A".repeat(64) }, utf8("x")), "bad_request");
  await rejectsWith(peer.request("PUT", { hash: sha256Hex(utf8("x")) }), "bad_request", /no data/);
  await rejectsWith(peer.request("COMMIT", { changes: [] }), "bad_request");
  await rejectsWith(
    peer.request("COMMIT", { changes: [{ op: "chmod", path: "a", baseRev: 0 }] }),
    "bad_request",
  );
  await peer.request("PING");
  assert.ok(!t.lines.some((l) => /internal/i.test(l)), t.lines.join("\n"));
});

Deno.test("a connection that never logs in is dropped after the login timeout", async () => {
  await using t = await TestServer.start({ loginTimeoutMs: 300 });
  const conn = await t.raw();
  await writeAll(conn, frameOf(1, utf8(JSON.stringify({ id: 1, op: "HELLO", version: 1, agent: "slow" }))));
  const { frames, closed, ms } = await readUntilClosed(conn, 3000);
  assert.ok(closed, "the idle unauthenticated connection was kept open");
  assert.ok(ms < 2000, `dropped only after ${ms} ms`);
  assert.ok(frames.some((f) => f.message.push === "error" && f.message.code === "timeout"));
});

// ---- hostile paths ----

const HOSTILE_PATHS = [
  "../x",
  "/etc/passwd",
  "a/../../b",
  "a\u0000b",
  "a\nb",
  ".filesync/x",
  ".filesync",
  ".FileSync./token",
  "",
  "cafe\u0301.txt",
  "a//b",
  "a/",
  "./a",
  "a\\..\\b",
  "C:/Windows",
  "x".repeat(256),
];

function hostileChanges(path: string): Record<string, unknown>[] {
  const hash = sha256Hex(utf8("content"));
  return [
    { op: "mkdir", path, baseRev: 0 },
    {
      op: "upload",
      path,
      baseRev: 0,
      size: 0,
      mtime: 0,
      hash: fileHashOfChunks([]),
      rows: { offset: 0, count: 0 },
    },
    { op: "upload", path, baseRev: 0, size: 7, mtime: 0, hash, rows: { offset: 0, count: 1 } },
    { op: "delete", path, baseRev: 0, kind: "file" },
    { op: "delete", path, baseRev: 0, kind: "dir" },
    { op: "move", from: "ok.txt", path, baseRev: 1 },
    { op: "move", from: path, path: "stolen.txt", baseRev: 0 },
  ];
}

Deno.test("COMMIT with a hostile path is a bad_request and writes nothing", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const bytes = utf8("content");
  await peer.request("PUT", { hash: sha256Hex(bytes) }, bytes);
  const rows = encodeRows([{ id: sha256Hex(bytes), size: bytes.length }]);
  for (const path of HOSTILE_PATHS) {
    for (const change of hostileChanges(path)) {
      const label = `${change.op} ${JSON.stringify(path)}`;
      const error = await rejectsWith(peer.request("COMMIT", { changes: [change] }, rows), "bad_request");
      assert.match(error.message, /invalid path/, `${label}: ${error.message}`);
      // A valid change in the same batch must not be applied either.
      const mixed = [{ op: "mkdir", path: "innocent", baseRev: 0 }, change];
      await rejectsWith(peer.request("COMMIT", { changes: mixed }, rows), "bad_request");
    }
    await rejectsWith(peer.request("DOWNLOAD", { path }), "bad_request", /invalid path/);
  }
  assert.deepEqual(await changes(peer), [], "a hostile commit reached the journal");
  const outside = [...Deno.readDirSync(t.tmp.path)].map((e) => e.name);
  assert.deepEqual(outside, ["data"], "something was written next to the data folder");
  await t.assertServes();
});

// ---- authentication ----

Deno.test("a wrong password and an unknown user get the same auth error", async () => {
  await using t = await TestServer.start();
  const wrong = await rejectsWith(
    (await t.connect()).request("LOGIN", { user: ALICE.user, password: "not it", device: "x" }),
    "auth",
  );
  const unknown = await rejectsWith(
    (await t.connect()).request("LOGIN", { user: "mallory", password: "not it", device: "x" }),
    "auth",
  );
  assert.equal(wrong.message, unknown.message);
  assert.doesNotMatch(wrong.message, /alice|mallory|exist/i);
  const log = t.lines.join("\n");
  assert.ok(!log.includes("not it"), `a tried password was logged:\n${log}`);
  await t.login(ALICE);
  assert.ok(!t.lines.join("\n").includes(ALICE.password), "the password was logged");
});

Deno.test("a login attempt for an unknown user takes as long as one with a wrong password", async () => {
  await using t = await TestServer.start();
  const time = async (user: string) => {
    const peer = await t.connect();
    const started = performance.now();
    await rejectsWith(peer.request("LOGIN", { user, password: "guess", device: "x" }), "auth");
    return performance.now() - started;
  };
  // Two of each stays under the limiter's free attempts; the fastest run of each is compared.
  const wrong = Math.min(await time(ALICE.user), await time(ALICE.user));
  const unknown = Math.min(await time("nobody"), await time("nobody"));
  assert.ok(
    unknown > wrong * 0.5,
    `unknown user answered in ${unknown.toFixed(1)} ms, wrong password in ${wrong.toFixed(1)} ms: ` +
      "the timing reveals which user names exist",
  );
});

Deno.test("after five failed logins even the right password is rate_limited", async () => {
  await using t = await TestServer.start();
  const peer = await t.connect();
  for (let i = 0; i < 5; i++) {
    await rejectsWith(
      peer.request("LOGIN", { user: ALICE.user, password: `guess ${i}`, device: "x" }),
      "auth",
    );
  }
  await rejectsWith(
    peer.request("LOGIN", { ...ALICE, device: "x" }),
    "rate_limited",
    /Too many failed logins/,
  );
  // A new connection does not reset the limit.
  const other = await t.connect();
  await rejectsWith(other.request("LOGIN", { ...ALICE, device: "x" }), "rate_limited");
  // Tokens still work, and so does the server.
  await t.assertServes();
});

Deno.test("failed logins for many user names from one address are rate limited too", async () => {
  await using t = await TestServer.start();
  const peer = await t.connect();
  for (let i = 0; i < 10; i++) {
    await rejectsWith(peer.request("LOGIN", { user: `user${i}`, password: "guess", device: "x" }), "auth");
  }
  await rejectsWith(peer.request("LOGIN", { ...BOB, device: "x" }), "rate_limited");
});

Deno.test("an unknown, expired or revoked device token is refused with code auth_token", async () => {
  await using t = await TestServer.start();
  const refused = async (token: string, message: RegExp) => {
    const peer = await t.connect();
    await rejectsWith(peer.request("AUTH", { token }), "auth_token", message);
    await rejectsWith(peer.request("CHANGES", { since: 0 }), "auth", /Log in first/);
  };
  const expired = await issueToken(t.server.store, ALICE.user, "old", Date.now() - TOKEN_LIFETIME_MS - 1000);
  await refused(expired.token, /expired/);
  await refused("A".repeat(43), /unknown or revoked/);
  const before = await issueToken(t.server.store, ALICE.user, "lost");
  assert.ok(
    (await runAdmin(t.server.store, { op: "user-passwd", name: ALICE.user, password: "new one" })).ok,
  );
  await refused(before.token, /unknown or revoked/);
  const fresh = await issueToken(t.server.store, ALICE.user, "new");
  await refused(fresh.token.slice(0, -1), /unknown or revoked/);
  const peer = await t.connect();
  await peer.request("AUTH", { token: fresh.token });
  assert.deepEqual(await changes(peer), []);
});

Deno.test("a removed user's device token stops working", async () => {
  await using t = await TestServer.start();
  const { token } = await issueToken(t.server.store, BOB.user, "laptop");
  assert.ok((await runAdmin(t.server.store, { op: "user-remove", name: BOB.user })).ok);
  await rejectsWith((await t.connect()).request("AUTH", { token }), "auth_token");
  await rejectsWith((await t.connect()).request("LOGIN", { ...BOB, device: "x" }), "auth");
});

Deno.test("a user removed through the admin socket can no longer write over an open connection", async () => {
  await using t = await TestServer.start();
  const bob = await t.login(BOB);
  const removed = await adminRequest(t.tmp.join("data"), { op: "user-remove", name: BOB.user });
  assert.deepEqual(removed, { ok: true });
  let refused: unknown = null;
  try {
    const reply = await bob.request("COMMIT", {
      changes: [{ op: "mkdir", path: "after-removal", baseRev: 0 }],
    });
    const [result] = reply.message.results as ChangeResult[];
    if (!result.ok) refused = result;
  } catch (error) {
    refused = error;
  }
  assert.ok(refused, "the removed user's open connection still committed");
  // A new account with the same name must start empty.
  assert.deepEqual(
    await adminRequest(t.tmp.join("data"), { op: "user-add", name: BOB.user, password: BOB.password }),
    {
      ok: true,
    },
  );
  assert.deepEqual(await changes(await t.login(BOB)), [], "the new bob inherited the removed bob's files");
});

Deno.test("a password change through the admin socket closes that user's open connections", async () => {
  await using t = await TestServer.start();
  const alice = await t.login(ALICE);
  const bob = await t.login(BOB);
  const changed = await adminRequest(t.tmp.join("data"), {
    op: "user-passwd",
    name: ALICE.user,
    password: "a new password",
  });
  assert.deepEqual(changed, { ok: true });
  await waitFor(() => alice.isClosed, { timeoutMs: 3000, message: () => "alice's connection stayed open" });
  await bob.request("PING");
});

// ---- isolation between users ----

Deno.test("bob can neither read, probe, download nor list alice's files", async () => {
  await using t = await TestServer.start();
  const alice = await t.login(ALICE);
  const secret = "alice's secret diary";
  const id = sha256Hex(utf8(secret));
  const [result] = await upload(alice, "diary.txt", secret);
  assert.ok(result.ok, JSON.stringify(result));
  await alice.request("PUT", { hash: sha256Hex(utf8("pending")) }, utf8("pending"));
  assert.equal((await alice.request("GET", { hash: id })).data?.length, secret.length);

  const bob = await t.login(BOB);
  await rejectsWith(bob.request("GET", { hash: id }), "not_found");
  await rejectsWith(bob.request("GET", { hash: sha256Hex(utf8("pending")) }), "not_found");
  const have = await bob.request("HAVE", { hashes: [id, sha256Hex(utf8("pending"))] });
  assert.deepEqual(have.message.missing, [id, sha256Hex(utf8("pending"))], "dedup revealed alice's chunk");
  await rejectsWith(bob.request("DOWNLOAD", { path: "diary.txt" }), "not_found");
  assert.deepEqual(await changes(bob), []);

  // Knowing the chunk id is not enough to claim it.
  const [claim] = await commitUpload(bob, "stolen.txt", [{ id, size: secret.length }]);
  assert.equal(claim.ok, false);
  assert.equal(claim.ok === false && claim.code, "missing_chunks");
  await rejectsWith(bob.request("DOWNLOAD", { path: "stolen.txt" }), "not_found");
  assert.deepEqual(await changes(bob), []);

  // Monitoring bob's namespace shows nothing of alice's later commits.
  const events: WireEntry[] = [];
  const watcher = await t.connect((f) => {
    if (f.message.push === "events") events.push(...(f.message.events as WireEntry[]));
  });
  await watcher.request("LOGIN", { ...BOB, device: "watcher" });
  await watcher.request("MONITOR", { since: 0 });
  await upload(alice, "diary-2.txt", "more secrets");
  const [marker] = await upload(bob, "marker.txt", "bob's own");
  assert.ok(marker.ok);
  await waitFor(() => events.some((e) => e.path === "marker.txt"), { message: () => JSON.stringify(events) });
  assert.deepEqual(events.map((e) => e.path), ["marker.txt"]);
  assert.deepEqual((await changes(alice)).map((e) => e.path), ["diary.txt", "diary-2.txt"]);
});

Deno.test("bob uploading the same content as alice gets his own copy, and alice's deletion leaves it", async () => {
  await using t = await TestServer.start();
  const alice = await t.login(ALICE);
  const bob = await t.login(BOB);
  const [a] = await upload(alice, "same.txt", "common content");
  const [b] = await upload(bob, "mine.txt", "common content");
  assert.ok(a.ok && b.ok);
  const [del] = (await alice.request("COMMIT", {
    changes: [{ op: "delete", path: "same.txt", baseRev: a.entries[0].rev, kind: "file" }],
  })).message.results as ChangeResult[];
  assert.ok(del.ok);
  const got = await bob.request("DOWNLOAD", { path: "mine.txt" });
  assert.equal((got.message.entry as WireEntry).path, "mine.txt");
  assert.equal((await bob.request("GET", { hash: sha256Hex(utf8("common content")) })).data?.length, 14);
});

// ---- chunk and commit integrity ----

Deno.test("PUT with data that does not match its hash is refused with bad_hash and stores nothing", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const claimed = sha256Hex(utf8("what I say"));
  await rejectsWith(peer.request("PUT", { hash: claimed }, utf8("what I send")), "bad_hash");
  assert.equal(await t.server.chunks.has(claimed), false);
  assert.equal(await t.server.chunks.has(sha256Hex(utf8("what I send"))), false);
  assert.deepEqual((await peer.request("HAVE", { hashes: [claimed] })).message.missing, [claimed]);
  await peer.request("PING");
});

Deno.test("PUT of a chunk larger than the limit is refused with too_large", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const big = new Uint8Array(4 * 1024 * 1024 + 1);
  await rejectsWith(peer.request("PUT", { hash: sha256Hex(big) }, big), "too_large");
  await peer.request("PING");
});

Deno.test("COMMIT of an upload whose chunks were never PUT is refused with missing_chunks", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const never = utf8("never uploaded");
  const put = utf8("uploaded");
  await peer.request("PUT", { hash: sha256Hex(put) }, put);
  const rows = [{ id: sha256Hex(put), size: put.length }, { id: sha256Hex(never), size: never.length }];
  const [result] = await commitUpload(peer, "partial.bin", rows);
  assert.equal(result.ok, false);
  assert.equal(result.ok === false && result.code, "missing_chunks");
  assert.deepEqual(await changes(peer), []);
  await rejectsWith(peer.request("DOWNLOAD", { path: "partial.bin" }), "not_found");
});

Deno.test("COMMIT whose rows, size or hash do not add up is refused and writes nothing", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const bytes = utf8("chunk");
  const id = sha256Hex(bytes);
  await peer.request("PUT", { hash: id }, bytes);
  const good = {
    op: "upload",
    path: "f.txt",
    baseRev: 0,
    size: bytes.length,
    mtime: 0,
    hash: fileHashOfChunks([id]),
    rows: { offset: 0, count: 1 },
  };
  const rows = encodeRows([{ id, size: bytes.length }]);
  const bad: [Record<string, unknown>, Uint8Array, string][] = [
    [{ ...good, rows: { offset: 0, count: 2 } }, rows, "bad_request"],
    [{ ...good, rows: { offset: 5, count: 1 } }, rows, "bad_request"],
    [good, new Uint8Array(), "bad_request"],
    [{ ...good, size: bytes.length + 1 }, rows, "bad_request"],
    [{ ...good, hash: sha256Hex(utf8("other")) }, rows, "bad_hash"],
    [{ ...good, from: { hash: sha256Hex(utf8("x")), head: 1, tail: 0 } }, rows, "bad_base"],
  ];
  for (const [change, data, code] of bad) {
    const reply = await peer.request("COMMIT", { changes: [change] }, data);
    const [result] = reply.message.results as ChangeResult[];
    assert.equal(result.ok, false, JSON.stringify(change));
    assert.equal(result.ok === false && result.code, code, JSON.stringify(result));
  }
  // Rows that are not a whole number of manifest rows.
  const [odd] = (await peer.request("COMMIT", { changes: [good] }, rows.subarray(0, 35))).message
    .results as ChangeResult[];
  assert.equal(odd.ok === false && odd.code, "bad_request", JSON.stringify(odd));
  assert.deepEqual(await changes(peer), []);
  const [ok] = (await peer.request("COMMIT", { changes: [good] }, rows)).message.results as ChangeResult[];
  assert.ok(ok.ok, "the valid commit was refused after the bad ones");
});

Deno.test("COMMIT with a stale baseRev gets ok:false code conflict and keeps the newer version", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const [first] = await upload(peer, "doc.txt", "version 1");
  assert.ok(first.ok);
  const rev1 = first.entries[0].rev;
  const [second] = await upload(peer, "doc.txt", "version 2", rev1);
  assert.ok(second.ok);
  const rev2 = second.entries[0].rev;

  const [stale] = await upload(peer, "doc.txt", "version 3 from a stale device", rev1);
  assert.equal(stale.ok, false);
  assert.equal(stale.ok === false && stale.code, "conflict");
  assert.equal(stale.ok === false && stale.current?.rev, rev2);

  const staleDelete = (await peer.request("COMMIT", {
    changes: [{ op: "delete", path: "doc.txt", baseRev: rev1, kind: "file" }],
  })).message.results as ChangeResult[];
  assert.equal(staleDelete[0].ok === false && staleDelete[0].code, "conflict");
  const staleMove = (await peer.request("COMMIT", {
    changes: [{ op: "move", from: "doc.txt", path: "moved.txt", baseRev: rev1 }],
  })).message.results as ChangeResult[];
  assert.equal(staleMove[0].ok === false && staleMove[0].code, "conflict");
  const [created] = await upload(peer, "new.txt", "claims to replace", 7);
  assert.equal(created.ok === false && created.code, "conflict");

  const entry = (await peer.request("DOWNLOAD", { path: "doc.txt" })).message.entry as WireEntry;
  assert.equal(entry.rev, rev2);
  assert.deepEqual((await changes(peer)).map((e) => e.rev), [rev1, rev2]);
});

// ---- FETCH: many small files in one request ----

Deno.test("FETCH checks access per item: another user's files are forbidden and nothing of them is sent", async () => {
  await using t = await TestServer.start();
  const alice = await t.login(ALICE);
  const secret = "alice's secret diary";
  const [diary] = await upload(alice, "diary.txt", secret);
  const [pub] = await upload(alice, "pub/notes.txt", "shared notes");
  assert.ok(diary.ok && pub.ok);
  const shared = await alice.request("SHARE", { path: "pub", with: BOB.user, access: "read" });
  const ns = (shared.message.share as { ns: string }).ns;
  const bob = await t.login(BOB);
  const [mine] = await upload(bob, "mine.txt", "bob's own");
  assert.ok(mine.ok);
  const revOf = (r: ChangeResult) => r.ok ? r.entries.find((e) => e.kind === "file")!.rev : -1;
  const asked = [
    { path: "diary.txt", ns, rev: revOf(diary) }, // alice's namespace, outside what she shares
    { path: "pub/notes.txt", ns, rev: revOf(pub) }, // shared with bob: sent
    { path: "diary.txt", ns: "share:nobody", rev: 1 }, // no such namespace
    { path: "diary.txt", rev: revOf(diary) }, // bob's own namespace: not there
    { path: "mine.txt", rev: revOf(mine) + 1 }, // another rev than bob's file is at
    { path: "mine.txt", rev: revOf(mine) },
  ];
  const reply = await bob.request("FETCH", { items: asked });
  const items = reply.message.items as { path: string; code?: string; entry?: WireEntry; at?: number }[];
  assert.deepEqual(items.map((i) => i.code ?? "sent"), [
    "forbidden",
    "sent",
    "forbidden",
    "not_found",
    "stale",
    "sent",
  ]);
  assert.deepEqual(items.map((i) => i.path), asked.map((a) => a.path));
  assert.equal(items[0].entry, undefined);
  assert.equal(new TextDecoder().decode(reply.data), "shared notesbob's own");
  assert.ok(!JSON.stringify(reply.message).includes(sha256Hex(utf8(secret))), "the diary's chunk id leaked");
  assert.ok(!JSON.stringify(reply.message).includes(fileHashOfChunks([sha256Hex(utf8(secret))])));
});

Deno.test("FETCH of many files answers in item order, within MAX_FETCH_BYTES, as one read by one", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const files = Array.from({ length: 41 }, (_, i) => ({
    path: `f${i}.bin`,
    bytes: randomFillSync(new Uint8Array(i === 40 ? 1000 : i === 5 ? 0 : 120_000 + i)),
  }));
  files.push({ path: "big.bin", bytes: randomFillSync(new Uint8Array(FETCH_INLINE_BYTES + 1)) });
  const revs = new Map<string, number>();
  for (const { path, bytes } of files) {
    const id = sha256Hex(bytes);
    if (bytes.length > 0) await peer.request("PUT", { hash: id }, bytes);
    const [result] = await commitUpload(peer, path, bytes.length > 0 ? [{ id, size: bytes.length }] : []);
    assert.ok(result.ok);
    revs.set(path, result.entries.find((e) => e.kind === "file")!.rev);
  }
  await t.server.chunks.delete(sha256Hex(files[2].bytes)); // unreadable: not_inline, and its budget goes on
  const asked = files.map(({ path }) => ({ path, rev: revs.get(path)! }));
  asked.splice(7, 0, { path: "f7.bin", rev: revs.get("f7.bin")! + 1 }, { path: "nothing.bin", rev: 1 });
  // What one read after another answers.
  const expected: (string | number)[] = [];
  const sent: number[] = [];
  let total = 0;
  for (const item of asked) {
    const file = files.find((f) => f.path === item.path);
    if (!file) expected.push("not_found");
    else if (item.rev !== revs.get(item.path)) expected.push("stale");
    else if (file === files[2] || file.bytes.length > FETCH_INLINE_BYTES) expected.push("not_inline");
    else if (total + file.bytes.length > MAX_FETCH_BYTES) expected.push("not_inline");
    else {
      expected.push(total);
      sent.push(...file.bytes);
      total += file.bytes.length;
    }
  }
  // The budget ends the 120 kB files (the one without its chunk leaves room for one more); the small one fits.
  assert.deepEqual(expected.slice(-3).map((e) => typeof e), ["string", "number", "string"]);
  assert.equal(expected.filter((e) => typeof e === "number").length, 36);
  const reply = await peer.request("FETCH", { items: asked });
  const items = reply.message.items as { path: string; code?: string; entry?: WireEntry; at?: number }[];
  assert.deepEqual(items.map((i) => i.path), asked.map((a) => a.path));
  assert.deepEqual(items.map((i) => i.code ?? i.at!), expected);
  assert.deepEqual(reply.data, new Uint8Array(sent));
  for (const item of items) if (item.entry) assert.equal(item.entry.rev, revs.get(item.path));
});

Deno.test("GETs of a downloaded file's small chunks overlap past four largest chunks' reply budget", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const parts = Array.from({ length: 12 }, () => randomFillSync(new Uint8Array(1000)));
  for (const part of parts) await peer.request("PUT", { hash: sha256Hex(part) }, part);
  const rows = parts.map((part) => ({ id: sha256Hex(part), size: part.length }));
  const [result] = await commitUpload(peer, "parts.bin", rows);
  assert.ok(result.ok);
  await peer.request("DOWNLOAD", { path: "parts.bin" });
  // Reads wait until every GET is being served at once (4 would be all with a largest chunk held per GET).
  const chunks = t.server.chunks;
  const read = chunks.get.bind(chunks);
  let reading = 0;
  let open!: () => void;
  const gate = new Promise<void>((resolve) => open = resolve);
  chunks.get = async (id) => {
    reading++;
    await gate;
    return await read(id);
  };
  const gets = rows.map((row) => peer.request("GET", { hash: row.id }));
  try {
    await waitFor(() => reading === rows.length, {
      timeoutMs: 5_000,
      message: () => `${reading} GETs being served`,
    });
  } finally {
    open();
  }
  assert.deepEqual((await Promise.all(gets)).map((reply) => reply.data), parts);
});

Deno.test("FETCH refuses too many items, no items, bad paths and bad namespace ids as a whole", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const item = { path: "a.txt", rev: 1 };
  await rejectsWith(peer.request("FETCH", { items: Array(MAX_FETCH_ITEMS + 1).fill(item) }), "bad_request");
  await rejectsWith(peer.request("FETCH", { items: [] }), "bad_request");
  for (const path of ["../etc/passwd", "/etc/passwd", "a/../../b", ".filesync/state"]) {
    await rejectsWith(
      peer.request("FETCH", { items: [item, { path, rev: 1 }] }),
      "bad_request",
      /invalid path/,
    );
  }
  await rejectsWith(peer.request("FETCH", { items: [{ ...item, ns: "../bob" }] }), "bad_request");
  const full = await peer.request("FETCH", { items: Array(MAX_FETCH_ITEMS).fill(item) });
  assert.equal((full.message.items as unknown[]).length, MAX_FETCH_ITEMS);
  await peer.request("PING");
});

Deno.test("FETCH answers a file of more than one chunk with not_inline (for DOWNLOAD) and sends the others", async () => {
  await using t = await TestServer.start();
  const peer = await t.login(ALICE);
  const a = crypto.getRandomValues(new Uint8Array(40_000));
  const b = crypto.getRandomValues(new Uint8Array(40_000));
  await peer.request("PUT", { hash: sha256Hex(a) }, a);
  await peer.request("PUT", { hash: sha256Hex(b) }, b);
  const [two] = await commitUpload(peer, "two.bin", [{ id: sha256Hex(a), size: a.length }, {
    id: sha256Hex(b),
    size: b.length,
  }]);
  const [one] = await commitUpload(peer, "one.bin", [{ id: sha256Hex(a), size: a.length }]);
  assert.ok(two.ok && one.ok);
  const rev = (r: ChangeResult) => r.ok ? r.entries.find((e) => e.kind === "file")!.rev : -1;
  const reply = await peer.request("FETCH", {
    items: [{ path: "two.bin", rev: rev(two) }, { path: "one.bin", rev: rev(one) }],
  });
  const items = reply.message.items as { code?: string }[];
  assert.deepEqual(items.map((i) => i.code ?? "sent"), ["not_inline", "sent"]);
  assert.deepEqual(reply.data, a);
});
