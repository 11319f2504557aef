// Table tests of the reply and push schemas the client checks on arrival.
import assert from "node:assert/strict";
import { encodeRows, FETCH_INLINE_BYTES } from "./messages.ts";
import { BadMessageError, checkPush, checkReply, MAX_CHUNK_BYTES, safeText } from "./replies.ts";
import { memoryPipe, RpcError, RpcPeer } from "./rpc.ts";

const H = "a".repeat(64);
const file = { path: "a.txt", kind: "file", hash: H, size: 5, mtime: 1, rev: 1, device: "d" };
const device = { deviceId: "0123456789abcdef", device: "laptop", created: 1, expires: 2 };

Deno.test("checkPush() accepts good pushes and refuses hostile fields", () => {
  assert.deepEqual(checkPush({ push: "events", events: [file] }), { push: "events", events: [file] });
  const bad: [string, Record<string, unknown>][] = [
    ["dotdot", { push: "events", events: [{ ...file, path: "../x" }] }],
    ["inner dotdot", { push: "events", events: [{ ...file, path: "a/../../x" }] }],
    ["absolute", { push: "events", events: [{ ...file, path: "/etc/passwd" }] }],
    ["state folder", { push: "events", events: [{ ...file, path: ".filesync/x" }] }],
    ["state folder, case", { push: "events", events: [{ ...file, path: ".FileSync./x" }] }],
    ["negative size", { push: "events", events: [{ ...file, size: -1 }] }],
    ["fractional size", { push: "events", events: [{ ...file, size: 1.5 }] }],
    ["huge size", { push: "events", events: [{ ...file, size: 2 ** 60 }] }],
    ["string size", { push: "events", events: [{ ...file, size: "5" }] }],
    ["bad hash", { push: "events", events: [{ ...file, hash: "../../x" }] }],
    ["file without hash", { push: "events", events: [{ ...file, hash: "" }] }],
    ["bad kind", { push: "events", events: [{ ...file, kind: "link" }] }],
    ["negative rev", { push: "events", events: [{ ...file, rev: -1 }] }],
    ["mtime past Date", { push: "events", events: [{ ...file, mtime: 9e15 }] }],
    ["device with escape", { push: "events", events: [{ ...file, device: "\u001b[2J" }] }],
    ["events not a list", { push: "events", events: {} }],
    ["snapshot without cursor", { push: "snapshot", entries: [], first: true, last: true }],
    ["snapshot bad cursor", { push: "snapshot", entries: [], first: true, last: true, cursor: -3 }],
    ["unknown push", { push: "nope" }],
  ];
  for (const [name, message] of bad) {
    assert.throws(() => checkPush(message), BadMessageError, name);
  }
  // Deleted entries and folders carry no hash.
  checkPush({
    push: "events",
    events: [{ ...file, hash: "", deleted: true }, { ...file, kind: "dir", hash: "" }],
  });
});

Deno.test("checkPush() and checkReply() refuse values nested too deeply to print, without a RangeError", () => {
  let deep: unknown = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.throws(() => checkPush({ push: deep }), BadMessageError);
  assert.throws(() => checkPush({ push: "events", events: deep }), BadMessageError);
  const refused = checkReply("PING", {}, { message: { re: 1, ok: false, code: deep, error: deep } });
  assert.equal(refused.message.code, "error");
  assert.equal(refused.message.error, "request failed");
});

Deno.test("checkPush() keeps an error push's reason and refuses a hostile one", () => {
  const push = checkPush({
    push: "error",
    code: "auth_token",
    error: "This device was revoked",
    reason: "revoked",
  });
  assert.equal(push.push === "error" && push.reason, "revoked");
  assert.throws(() => checkPush({ push: "error", error: "x", reason: "\u001b[2J" }), BadMessageError);
  assert.throws(() => checkPush({ push: "error", error: "x", reason: 5 }), BadMessageError);
});

Deno.test("checkPush() makes an error push's text safe to log", () => {
  const push = checkPush({ push: "error", error: "boom\u001b[31m\u202e" });
  assert.equal(push.push === "error" && push.error, "boom?[31m?");
  assert.equal(safeText("x".repeat(2000)).length, 1001);
});

Deno.test("checkReply() ties replies to their request and data", () => {
  const row = (size: number) => encodeRows([{ id: H, size }]);
  const ok = (message: Record<string, unknown>, data?: Uint8Array) => ({
    message: { re: 1, ok: true, ...message },
    data,
  });
  const good: [string, Record<string, unknown>, ReturnType<typeof ok>][] = [
    ["MONITOR", { since: 0 }, ok({ cursor: 3 })],
    ["DOWNLOAD", { path: "a.txt" }, ok({ entry: file }, row(5))],
    ["HAVE", { hashes: [H] }, ok({ missing: [H] })],
    ["COMMIT", { changes: [{}] }, ok({ results: [{ ok: true, entries: [file] }] })],
    ["GET", { hash: H }, ok({}, new Uint8Array(3))],
    ["DEVICES", {}, ok({ devices: [device, { ...device, lastSeen: 3, revoked: 4, current: true }] })],
  ];
  for (const [op, request, frame] of good) checkReply(op, request, frame);
  const bad: [string, string, Record<string, unknown>, ReturnType<typeof ok>][] = [
    ["monitor negative", "MONITOR", { since: 0 }, ok({ cursor: -1 })],
    ["download other path", "DOWNLOAD", { path: "b.txt" }, ok({ entry: file }, row(5))],
    ["download a folder", "DOWNLOAD", { path: "a.txt" }, ok({ entry: { ...file, kind: "dir" } }, row(5))],
    ["download rows cut", "DOWNLOAD", { path: "a.txt" }, ok({ entry: file }, new Uint8Array(35))],
    ["download huge row", "DOWNLOAD", { path: "a.txt" }, ok({ entry: file }, row(MAX_CHUNK_BYTES + 1))],
    ["download zero row", "DOWNLOAD", { path: "a.txt" }, ok({ entry: file }, row(0))],
    ["download size mismatch", "DOWNLOAD", { path: "a.txt" }, ok({ entry: file }, row(6))],
    ["download inline short", "DOWNLOAD", { path: "a.txt" }, ok({ entry: file, inline: 1 }, row(5))],
    [
      "download from other base",
      "DOWNLOAD",
      { path: "a.txt", base: H },
      ok({
        entry: file,
        from: { hash: "b".repeat(64), head: 0, tail: 0 },
      }),
    ],
    ["have stray hash", "HAVE", { hashes: [] }, ok({ missing: [H] })],
    ["commit count", "COMMIT", { changes: [{}, {}] }, ok({ results: [{ ok: true, entries: [] }] })],
    [
      "commit bad entry",
      "COMMIT",
      { changes: [{}] },
      ok({
        results: [{ ok: true, entries: [{ ...file, path: "../x" }] }],
      }),
    ],
    ["get no data", "GET", { hash: H }, ok({})],
    ["login bad device id", "LOGIN", {}, ok({ token: "t", deviceId: "../x" })],
    ["versions bad", "VERSIONS", { path: "a" }, ok({ versions: [{ id: "1", time: -1 }] })],
    [
      "trash bad path",
      "TRASH",
      {},
      ok({
        items: [{ path: "/x", kind: "file", deletedAt: 1, device: "d", size: 0, version: "1" }],
      }),
    ],
    [
      "restore bad path",
      "RESTORE",
      { path: "a" },
      ok({
        path: "../a",
        kind: "file",
        version: "1",
        entries: [],
        skipped: [],
      }),
    ],
    ["devices missing", "DEVICES", {}, ok({})],
    ["devices escape in name", "DEVICES", {}, ok({ devices: [{ ...device, device: "\u001b[2J" }] })],
    ["devices bad time", "DEVICES", {}, ok({ devices: [{ ...device, expires: -1 }] })],
    ["devices bad current", "DEVICES", {}, ok({ devices: [{ ...device, current: "yes" }] })],
    ["unknown op", "NOPE", {}, ok({})],
  ];
  for (const [name, op, request, frame] of bad) {
    assert.throws(() => checkReply(op, request, frame), BadMessageError, name);
  }
});

Deno.test("RpcPeer with checkReply fails a request whose reply breaks its schema", async () => {
  const [a, b] = memoryPipe();
  const server = new RpcPeer(b, { onRequest: () => Promise.resolve({ body: { cursor: -5 } }) });
  const client = new RpcPeer(a, { checkReply });
  await assert.rejects(
    client.request("MONITOR", { since: 0 }),
    (e: RpcError) => e.code === "bad_reply" && /MONITOR reply: cursor/.test(e.message),
  );
  client.close();
  server.close();
  await Promise.all([client.closed, server.closed]);
});

Deno.test("checkReply() and checkPush() accept the namespaces of a session and refuse hostile ones", () => {
  const own = { ns: "alice", role: "owner", name: "alice", mount: "" };
  const share = { ns: "share:1", role: "read", name: "Team", mount: "Team" };
  const auth = (namespaces: unknown) => ({ message: { re: 1, ok: true, namespaces } });
  const reply = checkReply("AUTH", {}, auth([own, share]));
  assert.deepEqual(reply.message.namespaces, [own, share]);
  assert.equal(checkReply("AUTH", {}, { message: { re: 1, ok: true } }).message.namespaces, undefined);
  const bad: unknown[] = [
    [{ ...share, mount: "a/b" }],
    [{ ...share, mount: "../x" }],
    [{ ...share, mount: ".filesync" }],
    [{ ...share, ns: "../x" }],
    [{ ...share, role: "admin" }],
    [{ ...share, name: "bad\u001b[31m" }],
    "alice",
  ];
  for (const namespaces of bad) {
    assert.throws(
      () => checkReply("AUTH", {}, auth(namespaces)),
      BadMessageError,
      JSON.stringify(namespaces),
    );
  }
  assert.equal(checkPush({ push: "events", ns: "share:1", events: [file] }).push, "events");
  assert.throws(() => checkPush({ push: "events", ns: "../x", events: [] }), BadMessageError);
  assert.throws(
    () => checkPush({ push: "snapshot", ns: "", entries: [], first: true, last: true, cursor: 0 }),
    BadMessageError,
  );
});

Deno.test("checkPush() and checkReply() check locks: paths, holders and times", () => {
  const lock = {
    path: "docs/a.txt",
    user: "alice",
    deviceId: "d1",
    device: "laptop",
    expires: 1_800_000,
    remainingMs: 1_000,
    leaseMs: 1_800_000,
    mine: false,
  };
  const push = { push: "locks", locks: [lock], change: { path: "docs/a.txt", what: "taken", by: "laptop" } };
  assert.deepEqual(checkPush(push), push);
  assert.deepEqual(checkPush({ push: "locks", locks: [] }), { push: "locks", locks: [] });
  for (
    const bad of [
      { ...lock, path: "../x" },
      { ...lock, device: "evil\u001b[2J" },
      { ...lock, expires: -1 },
      { ...lock, mine: "yes" },
    ]
  ) assert.throws(() => checkPush({ push: "locks", locks: [bad] }), BadMessageError, JSON.stringify(bad));
  assert.throws(
    () => checkPush({ ...push, change: { path: "docs/a.txt", what: "stolen" } }),
    BadMessageError,
  );
  const reply = checkReply("LOCKS", {}, { message: { re: 1, ok: true, locks: [lock] } });
  assert.deepEqual(reply.message.locks, [lock]);
  assert.throws(
    () =>
      checkReply("LOCK", { path: "docs/a.txt" }, {
        message: { re: 1, ok: true, lock: { ...lock, path: "/x" } },
      }),
    BadMessageError,
  );
});

Deno.test("share schemas: SHARE, UNSHARE and SHARES replies and the namespaces push; hostile fields refused", () => {
  const share = {
    ns: "alice",
    path: "Project",
    owner: "alice",
    user: "bob",
    access: "write",
    mount: "Project",
  };
  const ok = (message: Record<string, unknown>) => ({ message: { re: 1, ok: true, ...message } });
  checkReply("SHARE", {}, ok({ share, changed: "new" }));
  checkReply("UNSHARE", {}, ok({ removed: [share] }));
  checkReply("SHARES", {}, ok({ mine: [share], withMe: [] }));
  const bad: [string, string, Record<string, unknown>][] = [
    ["access", "SHARE", { share: { ...share, access: "owner" }, changed: "new" }],
    ["nested mount", "SHARE", { share: { ...share, mount: "a/b" }, changed: "new" }],
    ["dotdot path", "UNSHARE", { removed: [{ ...share, path: "../x" }] }],
    ["bad ns", "SHARES", { mine: [{ ...share, ns: "a/b" }], withMe: [] }],
    ["escape in owner", "SHARES", { mine: [], withMe: [{ ...share, owner: "\u001b[2J" }] }],
  ];
  for (const [label, op, message] of bad) {
    assert.throws(() => checkReply(op, {}, ok(message)), BadMessageError, label);
  }
  const namespaces = [
    { ns: "bob", role: "owner", name: "bob", mount: "" },
    { ns: "alice", role: "write", name: "Project", mount: "Project", path: "Project", owner: "alice" },
  ];
  const push = { push: "namespaces", namespaces, change: "access", share };
  assert.deepEqual(checkPush(push), push);
  assert.deepEqual(checkPush({ push: "events", ns: "alice", path: "Project", events: [] }).push, "events");
  for (
    const hostile of [
      { ...push, change: "stolen" },
      { ...push, namespaces: [{ ...namespaces[1], path: "/etc" }] },
      { ...push, namespaces: [{ ...namespaces[1], mount: "../up" }] },
      { push: "events", ns: "alice", path: "../x", events: [] },
    ]
  ) {
    assert.throws(() => checkPush(hostile), BadMessageError, JSON.stringify(hostile));
  }
});

Deno.test("checkReply() ties a FETCH reply to the items asked, in order, and its bytes to their entries", () => {
  const request = { items: [{ path: "a.txt", rev: 1 }, { path: "b.txt", ns: "share:1", rev: 2 }] };
  const b = { ...file, path: "b.txt", size: 3, rev: 2 };
  const reply = (items: unknown[], data?: Uint8Array) => ({ message: { re: 1, ok: true, items }, data });
  const good = [
    { path: "a.txt", entry: file, at: 0 },
    { path: "b.txt", ns: "share:1", entry: b, at: 5 },
  ];
  checkReply("FETCH", request, reply(good, new Uint8Array(8)));
  checkReply(
    "FETCH",
    request,
    reply([good[0], { path: "b.txt", ns: "share:1", code: "forbidden" }], new Uint8Array(5)),
  );
  checkReply(
    "FETCH",
    request,
    reply([{ path: "a.txt", code: "not_inline" }, { ...good[1], at: 0 }], new Uint8Array(3)),
  );
  const big = { ...file, size: FETCH_INLINE_BYTES + 1 };
  const bad: [string, unknown[], Uint8Array | undefined][] = [
    ["one item missing", [good[0]], new Uint8Array(5)],
    ["an extra item", [...good, { path: "c.txt", code: "not_found" }], new Uint8Array(8)],
    ["order swapped", [good[1], good[0]], new Uint8Array(8)],
    ["another namespace", [good[0], { ...good[1], ns: "bob" }], new Uint8Array(8)],
    [
      "entry for another path",
      [{ ...good[0], entry: { ...file, path: "z.txt" } }, good[1]],
      new Uint8Array(8),
    ],
    ["another rev", [{ ...good[0], entry: { ...file, rev: 9 } }, good[1]], new Uint8Array(8)],
    ["a folder", [{ ...good[0], entry: { ...file, kind: "dir", hash: "" } }, good[1]], new Uint8Array(8)],
    [
      "too large to be inline",
      [{ ...good[0], entry: big }, { ...good[1], at: big.size }],
      new Uint8Array(big.size + 3),
    ],
    ["data short", good, new Uint8Array(7)],
    ["data long", good, new Uint8Array(9)],
    ["no data", good, undefined],
    ["overlapping offsets", [good[0], { ...good[1], at: 2 }], new Uint8Array(8)],
    ["code and entry", [{ ...good[0], code: "stale" }, good[1]], new Uint8Array(8)],
    ["neither", [{ path: "a.txt" }, good[1]], new Uint8Array(8)],
    ["unknown code", [{ path: "a.txt", code: "nope" }, { ...good[1], at: 0 }], new Uint8Array(3)],
    ["bad path", [{ ...good[0], path: "../a.txt" }, good[1]], new Uint8Array(8)],
  ];
  for (const [name, items, data] of bad) {
    assert.throws(() => checkReply("FETCH", request, reply(items, data)), BadMessageError, name);
  }
});
