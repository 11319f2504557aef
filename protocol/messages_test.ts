// Tests for the wire schema: manifest row encoding, and what each request schema accepts and refuses.

import assert from "node:assert/strict";
import { sha256Hex } from "./hash.ts";
import {
  Change,
  decodeRows,
  encodeRows,
  MANIFEST_ROW_BYTES,
  MAX_BATCH,
  MAX_FETCH_ITEMS,
  MAX_HAVE,
  type Op,
  Requests,
} from "./messages.ts";

const h1 = sha256Hex(new TextEncoder().encode("one"));
const h2 = sha256Hex(new TextEncoder().encode("two"));

/** Paths a hostile or broken peer might send; every path field must refuse each of them. */
const hostilePaths: string[] = [
  "",
  "/etc/passwd",
  "../outside",
  "a/../../b",
  "a/./b",
  "a//b",
  "a/",
  "C:\\Windows",
  "c:evil",
  "\\\\server\\share",
  "a\\b",
  "a\u0000b",
  "line\nbreak",
  ".filesync/state",
  ".FileSync./x",
  "cafe\u0301", // NFD
  "\ud800",
  "x".repeat(256),
  ("y".repeat(200) + "/").repeat(21) + "z",
];

/** Hash values that are not 64 lowercase hex characters. */
const badHashes: unknown[] = [
  "",
  h1.slice(1),
  h1 + "0",
  h1.toUpperCase(),
  h1.slice(0, 63) + "g",
  " " + h1.slice(1),
  123,
  null,
];

/** A valid example of every request, as it arrives on the wire (with id and op). */
const examples: { [K in Op]: Record<string, unknown> } = {
  HELLO: { version: 1, agent: "filesync-client/1.0 (linux)" },
  LOGIN: { user: "alice", password: "correct horse battery staple", device: "laptop" },
  AUTH: { token: "dG9rZW4" },
  PING: {},
  CHANGES: { since: 0, limit: 500 },
  MONITOR: { since: 12 },
  HAVE: { hashes: [h1, h2] },
  PUT: { hash: h1 },
  GET: { hash: h2 },
  DOWNLOAD: { path: "docs/naïve café/日本語.txt" },
  COMMIT: {
    changes: [
      {
        op: "upload",
        path: "a/b.txt",
        baseRev: 0,
        size: 10,
        mtime: 1700000000000,
        hash: h1,
        rows: { offset: 0, count: 1 },
      },
      {
        op: "upload",
        path: "a/big.bin",
        baseRev: 4,
        size: 10,
        mtime: 0,
        hash: h2,
        rows: { offset: 1, count: 0 },
        from: { hash: h1, head: 1, tail: 0 },
      },
      { op: "mkdir", path: "a/c", baseRev: 0 },
      { op: "delete", path: "old.txt", baseRev: 3, kind: "file" },
      { op: "move", from: "a/b.txt", path: "z/b.txt", baseRev: 5 },
    ],
  },
  VERSIONS: { path: "a/b.txt" },
  TRASH: {},
  RESTORE: { path: "a/b.txt", version: "12", as: "a/b (restored).txt" },
  DEVICES: {},
  LOCK: { path: "a/b.txt", minutes: 30 },
  UNLOCK: { path: "a/b.txt", force: true },
  LOCKS: {},
  SHARE: { path: "Project", with: "bob", access: "write" },
  UNSHARE: { path: "Project", with: "bob" },
  SHARES: {},
  FETCH: { items: [{ path: "a/b.txt", rev: 3 }, { path: "c.txt", ns: "share:1", rev: 1 }] },
};

function accepts(op: Op, message: Record<string, unknown>): boolean {
  return Requests[op].safeParse({ id: 1, op, ...message }).success;
}

Deno.test("encodeRows and decodeRows round-trip ids and sizes, including the extremes", () => {
  const rows = [
    { id: h1, size: 0 },
    { id: h2, size: 1 },
    { id: "00".repeat(32), size: 65536 },
    { id: "ff".repeat(32), size: 0xffffffff },
  ];
  const bytes = encodeRows(rows);
  assert.equal(bytes.length, rows.length * MANIFEST_ROW_BYTES);
  assert.deepEqual(decodeRows(bytes), rows);
  assert.deepEqual(decodeRows(encodeRows([])), []);
});

Deno.test("a row is the raw 32-byte id then the size as 4 big-endian bytes", () => {
  const bytes = encodeRows([{
    id: "0102030405060708091011121314151617181920212223242526272829303132",
    size: 258,
  }]);
  assert.deepEqual([...bytes.subarray(0, 3)], [1, 2, 3]);
  assert.deepEqual([...bytes.subarray(32)], [0, 0, 1, 2]);
});

Deno.test("decodeRows reads a view into a larger buffer at its own offset", () => {
  const rows = [{ id: h1, size: 7 }, { id: h2, size: 9 }];
  const buffer = new Uint8Array(5 + 2 * MANIFEST_ROW_BYTES + 3).fill(0xee);
  buffer.set(encodeRows(rows), 5);
  assert.deepEqual(decodeRows(buffer.subarray(5, 5 + 2 * MANIFEST_ROW_BYTES)), rows);
});

Deno.test("decodeRows throws a SyntaxError for a length that is not a whole number of rows", () => {
  for (const length of [1, 35, 37, 71]) {
    assert.throws(() => decodeRows(new Uint8Array(length)), (error: unknown) => {
      assert.ok(error instanceof SyntaxError);
      assert.match(error.message, new RegExp(`${length} bytes is not a multiple of 36`));
      return true;
    });
  }
});

Deno.test("every request schema accepts its valid example, with id and op present", () => {
  for (const op of Object.keys(Requests) as Op[]) {
    assert.ok(accepts(op, examples[op]), `${op} refused ${JSON.stringify(examples[op])}`);
  }
  assert.deepEqual(Object.keys(examples).sort(), Object.keys(Requests).sort(), "one example per op");
});

Deno.test("every path field refuses hostile paths", () => {
  const upload = (examples.COMMIT.changes as Record<string, unknown>[])[0];
  const withPath: [string, (path: string) => boolean][] = [
    ["DOWNLOAD.path", (path) => accepts("DOWNLOAD", { path })],
    ["upload.path", (path) => Change.safeParse({ ...upload, path }).success],
    ["mkdir.path", (path) => Change.safeParse({ op: "mkdir", path, baseRev: 0 }).success],
    ["delete.path", (path) => Change.safeParse({ op: "delete", path, baseRev: 1, kind: "dir" }).success],
    ["move.from", (path) => Change.safeParse({ op: "move", from: path, path: "ok", baseRev: 1 }).success],
    ["move.path", (path) => Change.safeParse({ op: "move", from: "ok", path, baseRev: 1 }).success],
  ];
  for (const [field, check] of withPath) {
    assert.ok(check("fine/name.txt"), `${field} refused a valid path`);
    for (const path of hostilePaths) {
      assert.equal(check(path), false, `${field} accepted ${JSON.stringify(path)}`);
    }
    for (const value of [null, 42, ["a"], { toString: () => "a" }]) {
      assert.equal(check(value as unknown as string), false, `${field} accepted ${JSON.stringify(value)}`);
    }
  }
});

Deno.test("every hash field refuses values that are not 64 lowercase hex characters", () => {
  const upload = (examples.COMMIT.changes as Record<string, unknown>[])[1];
  const withHash: [string, (hash: unknown) => boolean][] = [
    ["PUT.hash", (hash) => accepts("PUT", { hash })],
    ["GET.hash", (hash) => accepts("GET", { hash })],
    ["HAVE.hashes", (hash) => accepts("HAVE", { hashes: [h1, hash] })],
    ["upload.hash", (hash) => Change.safeParse({ ...upload, hash }).success],
    ["upload.from.hash", (hash) => Change.safeParse({ ...upload, from: { hash, head: 0, tail: 0 } }).success],
  ];
  for (const [field, check] of withHash) {
    assert.ok(check(h2), `${field} refused a valid hash`);
    for (const hash of badHashes) {
      assert.equal(check(hash), false, `${field} accepted ${JSON.stringify(hash)}`);
    }
  }
});

Deno.test("revisions, sizes and offsets must be non-negative safe integers", () => {
  const upload = (examples.COMMIT.changes as Record<string, unknown>[])[0];
  for (const bad of [-1, 1.5, NaN, Infinity, "1", 2 ** 53]) {
    assert.equal(Change.safeParse({ ...upload, baseRev: bad }).success, false, `baseRev ${bad}`);
    assert.equal(Change.safeParse({ ...upload, size: bad }).success, false, `size ${bad}`);
    assert.equal(
      Change.safeParse({ ...upload, rows: { offset: bad, count: 1 } }).success,
      false,
      `offset ${bad}`,
    );
    assert.equal(accepts("CHANGES", { since: bad }), false, `since ${bad}`);
  }
});

Deno.test("list and batch sizes are bounded", () => {
  assert.ok(accepts("HAVE", { hashes: Array(MAX_HAVE).fill(h1) }));
  assert.equal(accepts("HAVE", { hashes: Array(MAX_HAVE + 1).fill(h1) }), false);
  const mkdir = { op: "mkdir", path: "d", baseRev: 0 };
  assert.ok(accepts("COMMIT", { changes: Array(MAX_BATCH).fill(mkdir) }));
  assert.equal(accepts("COMMIT", { changes: Array(MAX_BATCH + 1).fill(mkdir) }), false);
  assert.equal(accepts("COMMIT", { changes: [] }), false);
  assert.equal(accepts("CHANGES", { since: 0, limit: 0 }), false);
  assert.equal(accepts("CHANGES", { since: 0, limit: 5001 }), false);
});

Deno.test("malformed requests are refused", () => {
  assert.equal(accepts("HELLO", { version: 1 }), false, "agent is required");
  assert.equal(accepts("HELLO", { version: 1, agent: "x".repeat(201) }), false);
  assert.equal(accepts("LOGIN", { ...examples.LOGIN, user: "" }), false);
  assert.equal(accepts("LOGIN", { ...examples.LOGIN, password: "p".repeat(1025) }), false);
  assert.equal(accepts("LOGIN", { ...examples.LOGIN, device: "d".repeat(65) }), false);
  assert.equal(accepts("AUTH", { token: "" }), false);
  assert.equal(Change.safeParse({ op: "rename", path: "a", baseRev: 0 }).success, false, "unknown change op");
  assert.equal(Change.safeParse({ op: "delete", path: "a", baseRev: 0, kind: "link" }).success, false);
  assert.equal(
    Change.safeParse({ op: "upload", path: "a", baseRev: 0 }).success,
    false,
    "upload fields missing",
  );
});

Deno.test("ops on files and the journal take an optional namespace id, and refuse malformed ones", () => {
  const withNs: Op[] = [
    "CHANGES",
    "MONITOR",
    "PUT",
    "DOWNLOAD",
    "COMMIT",
    "VERSIONS",
    "TRASH",
    "RESTORE",
    "LOCK",
    "UNLOCK",
    "LOCKS",
  ];
  for (const op of withNs) {
    assert.ok(accepts(op, examples[op]), `${op} without ns`);
    for (const ns of ["alice", "a.b-c_d", "share:0123", "x".repeat(200)]) {
      assert.ok(accepts(op, { ...examples[op], ns }), `${op} refused ns ${ns}`);
    }
    for (const ns of ["", "../alice", "a/b", "a b", "x".repeat(201), "é", 42, null, ["alice"]]) {
      assert.equal(accepts(op, { ...examples[op], ns }), false, `${op} accepted ns ${JSON.stringify(ns)}`);
    }
  }
});

Deno.test("LOCK takes minutes within the lease limits, an optional renew flag, and only a valid path", () => {
  assert.ok(accepts("LOCK", { path: "a.txt" }));
  assert.ok(accepts("LOCK", { path: "a.txt", minutes: 0.05, renew: true }));
  assert.ok(accepts("LOCK", { path: "a.txt", minutes: 10080 }));
  for (const minutes of [0, -1, 0.001, 10081, "30", Number.NaN]) {
    assert.equal(accepts("LOCK", { path: "a.txt", minutes }), false, String(minutes));
  }
  assert.equal(accepts("LOCK", { path: "../a.txt" }), false);
  assert.equal(accepts("UNLOCK", { path: "a.txt", force: "yes" }), false);
});

Deno.test("FETCH takes 1 to MAX_FETCH_ITEMS items, each a valid path, a rev and an optional namespace", () => {
  const item = { path: "a.txt", rev: 1 };
  assert.ok(accepts("FETCH", { items: Array(MAX_FETCH_ITEMS).fill(item) }));
  assert.equal(accepts("FETCH", { items: Array(MAX_FETCH_ITEMS + 1).fill(item) }), false, "too many");
  assert.equal(accepts("FETCH", { items: [] }), false, "none");
  for (
    const bad of [
      { path: "../a", rev: 1 },
      { path: "/etc/passwd", rev: 1 },
      { path: "a.txt" },
      { path: "a.txt", rev: -1 },
      { path: "a.txt", rev: 1, ns: "../bob" },
      "a.txt",
    ]
  ) {
    assert.equal(accepts("FETCH", { items: [bad] }), false, JSON.stringify(bad));
  }
});
