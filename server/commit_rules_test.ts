// Table tests for the pure commit rules: one line of data per case (namespace before, changes, what is written).
import assert from "node:assert/strict";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { type Change, type ChunkRow, encodeRows } from "../protocol/messages.ts";
import { baseName, foldName, parentPath } from "../protocol/paths.ts";
import { type CommitLimits, type CommitPlan, type NamespaceView, planCommit } from "./commit_rules.ts";
import type { EntryRecord } from "./metadata_store.ts";
import type { LockRecord } from "./lock_rules.ts";

// ---------------------------------------------------------------------------------------------------------
// Fixtures. A namespace is written "path@rev" per entry, a trailing "/" for a folder: "docs/@1 docs/a@2".

const EMPTY = fileHashOfChunks([]);
const row = (label: string, size = 10): ChunkRow => ({
  id: sha256Hex(new TextEncoder().encode(label)),
  size,
});
const A = row("a");
const B = row("b");
const C = row("c");
const hashOf = (rows: ChunkRow[]) => fileHashOfChunks(rows.map((r) => r.id));

function namespace(spec: string): Map<string, EntryRecord> {
  const map = new Map<string, EntryRecord>();
  for (const item of spec.split(" ").filter(Boolean)) {
    const [name, rev] = item.split("@");
    const dir = name.endsWith("/");
    const path = dir ? name.slice(0, -1) : name;
    map.set(path, {
      path,
      kind: dir ? "dir" : "file",
      hash: dir ? "" : hashOf([A]),
      size: dir ? 0 : A.size,
      mtime: 5,
      rev: Number(rev),
      device: "old",
      time: 100,
    });
  }
  return map;
}

function viewOf(entries: Map<string, EntryRecord>): NamespaceView {
  return {
    entry: (path) => entries.get(path) ?? null,
    children: (path) => ({
      paths: [...entries.keys()].filter((p) => parentPath(p) === path),
      complete: true,
    }),
    manifest: (hash) => hash === hashOf([A, B]) ? [A, B] : hash === hashOf([A]) ? [A] : null,
    sameFolded: (folder, folded) =>
      [...entries.keys()].filter((p) => (parentPath(p) ?? "") === folder && foldName(baseName(p)) === folded),
  };
}

// Changes. Uploads are empty files unless rows are given.
const up = (path: string, baseRev = 0): Change => ({
  op: "upload",
  path,
  baseRev,
  size: 0,
  mtime: 7,
  hash: EMPTY,
  rows: { offset: 0, count: 0 },
});
const upRows = (path: string, baseRev: number, rows: ChunkRow[], o: Record<string, unknown> = {}): Change =>
  ({
    op: "upload",
    path,
    baseRev,
    size: rows.reduce((n, r) => n + r.size, 0),
    mtime: 7,
    hash: hashOf(rows),
    rows: { offset: 0, count: rows.length },
    ...o,
  }) as Change;
const mk = (path: string, baseRev = 0): Change => ({ op: "mkdir", path, baseRev });
const del = (path: string, baseRev: number, kind: "file" | "dir" = "file"): Change => ({
  op: "delete",
  path,
  baseRev,
  kind,
});
const mv = (from: string, path: string, baseRev: number): Change => ({ op: "move", from, path, baseRev });

/**
 * The plan in one line: per result "!code" or its steps joined by " | "; per step its writes ("+dir/@rev",
 * "+file@rev", "-path@rev"), kept versions "v:path@rev" and trash "t:path".
 */
function render(plan: CommitPlan): string {
  let step = 0;
  return plan.results.map((result) => {
    if (!result.ok) return `!${result.code}`;
    const parts: string[] = [];
    let remaining = result.entries.length;
    while (remaining > 0) {
      const s = plan.steps[step++];
      remaining -= s.journal.length;
      const items = s.journal.map((j) =>
        `${j.deleted ? "-" : "+"}${j.path}${j.kind === "dir" ? "/" : ""}@${j.rev}`
      );
      for (const v of s.versions) items.push(`v:${v.path}@${v.rev}`);
      for (const t of s.trash) items.push(`t:${t.path}`);
      parts.push(items.join(" "));
    }
    return parts.join(" | ") || "nothing";
  }).join(" ; ");
}

const CASES: [name: string, before: string, changes: Change[], expect: string, rows?: ChunkRow[]][] = [
  // uploads and compare-and-set
  ["new file at the root", "", [up("a")], "+a@11"],
  [
    "new file creates its parent folders first, one step each",
    "",
    [up("x/y/f")],
    "+x/@11 | +x/y/@12 | +x/y/f@13",
  ],
  ["new file in an existing folder", "x/@1", [up("x/f")], "+x/f@11"],
  ["replace with the current rev keeps the old version", "a@3", [up("a", 3)], "+a@11 v:a@3"],
  ["replace with a stale rev is a conflict", "a@3", [up("a", 2)], "!conflict"],
  ["baseRev 0 on a live path is a conflict", "a@3", [up("a", 0)], "!conflict"],
  ["upload over a deleted path with its old rev is a conflict", "", [up("a", 3)], "!conflict"],
  ["upload below a file is a conflict", "a@3", [up("a/b")], "!conflict"],
  ["upload over an empty folder replaces it", "d/@3", [up("d", 3)], "+d@11"],
  ["upload over a non-empty folder is not_empty", "d/@3 d/x@4", [up("d", 3)], "!not_empty"],
  // folders
  ["mkdir of a new folder", "", [mk("d")], "+d/@11"],
  ["mkdir of an existing folder writes nothing", "d/@2", [mk("d")], "nothing"],
  ["mkdir over a file with its rev keeps the file's version", "d@2", [mk("d", 2)], "+d/@11 v:d@2"],
  ["mkdir over a file with a stale rev is a conflict", "d@2", [mk("d", 1)], "!conflict"],
  // deletes
  ["delete of a file keeps its version and trashes it", "a@3", [del("a", 3)], "-a@11 v:a@3 t:a"],
  ["delete with a stale rev is a conflict", "a@3", [del("a", 2)], "!conflict"],
  ["delete of a missing path writes nothing", "", [del("a", 3)], "nothing"],
  ["delete of an empty folder trashes it", "d/@2", [del("d", 2, "dir")], "-d/@11 t:d"],
  ["delete of a non-empty folder is not_empty", "d/@2 d/x@3", [del("d", 2, "dir")], "!not_empty"],
  [
    "children then their folder in one batch",
    "d/@2 d/x@3 d/y@4",
    [del("d/x", 3), del("d/y", 4), del("d", 2, "dir")],
    "-d/x@11 v:d/x@3 t:d/x ; -d/y@12 v:d/y@4 t:d/y ; -d/@13 t:d",
  ],
  [
    "a folder emptied by a move out can be deleted",
    "d/@2 d/x@3",
    [mv("d/x", "x", 3), del("d", 2, "dir")],
    "-d/x@11 +x@12 ; -d/@13 t:d",
  ],
  [
    "a folder filled in the same batch cannot be deleted",
    "d/@2",
    [up("d/x"), del("d", 2, "dir")],
    "+d/x@11 ; !not_empty",
  ],
  // moves
  ["move keeps content in one step: both halves together", "a@3", [mv("a", "b", 3)], "-a@11 +b@12"],
  ["move creates the target's folders first", "a@3", [mv("a", "x/b", 3)], "+x/@11 | -a@12 +x/b@13"],
  ["move onto an existing path is exists", "a@3 b@4", [mv("a", "b", 3)], "!exists"],
  ["move of a missing file is a conflict", "", [mv("a", "b", 3)], "!conflict"],
  ["move of a changed file is a conflict", "a@3", [mv("a", "b", 2)], "!conflict"],
  ["move of a folder is a conflict (folders move as their files)", "d/@3", [mv("d", "e", 3)], "!conflict"],
  // names every device can hold
  ["a Windows device name is bad_name", "", [up("CON")], "!bad_name"],
  ["a device name with an extension is bad_name", "", [up("d/aux.txt")], "!bad_name"],
  ["a character Windows refuses is bad_name", "", [up("a*?<>|b")], "!bad_name"],
  ["a trailing dot is bad_name", "", [mk("x.")], "!bad_name"],
  ["a trailing space is bad_name", "", [up("x ")], "!bad_name"],
  ["a bidi override is bad_name", "", [up("evil\u202etxt.exe")], "!bad_name"],
  ["a line separator is bad_name", "", [up("a\u2028b")], "!bad_name"],
  ["a byte-order mark is bad_name", "", [up("\ufeffa")], "!bad_name"],
  ["a bad folder name on the way is bad_name", "", [up("nul/a.txt")], "!bad_name"],
  ["a move to a bad name is bad_name", "a@3", [mv("a", "b?", 3)], "!bad_name"],
  [
    "a name differing only in case from a sibling is bad_name",
    "Readme.txt@3",
    [up("README.TXT")],
    "!bad_name",
  ],
  [
    "a case clash within one batch is bad_name",
    "",
    [up("Readme.txt"), up("README.TXT")],
    "+Readme.txt@11 ; !bad_name",
  ],
  ["a case clash of a folder made on the way is bad_name", "docs/@3", [up("Docs/a")], "!bad_name"],
  [
    "a case clash with a name moved in earlier in the batch is bad_name",
    "a@3 d/@4",
    [mv("a", "d/Readme", 3), up("d/README")],
    "-a@11 +d/Readme@12 ; !bad_name",
  ],
  [
    "a name moved away earlier in the batch is no clash",
    "d/@2 d/Readme@3",
    [mv("d/Readme", "e", 3), up("d/README")],
    "-d/Readme@11 +e@12 ; +d/README@13",
  ],
  [
    "the same name in another folder is no clash",
    "a/Readme.txt@3",
    [up("b/README.TXT")],
    "+b/@11 | +b/README.TXT@12",
  ],
  ["a case-only rename is no clash", "readme@3", [mv("readme", "README", 3)], "-readme@11 +README@12"],
  [
    "an existing file with a bad name still takes edits",
    "aux.txt@3",
    [up("aux.txt", 3)],
    "+aux.txt@11 v:aux.txt@3",
  ],
  // batches
  ["a later change sees an earlier one", "", [up("a"), up("a", 11)], "+a@11 ; +a@12 v:a@11"],
  ["a refused change does not stop the others", "a@3", [up("a", 1), up("b")], "!conflict ; +b@11"],
  // content checks
  ["rows outside the data are bad_request", "", [upRows("f", 0, [A, B])], "!bad_request", [A]],
  ["a size that does not match is bad_request", "", [upRows("f", 0, [A], { size: 99 })], "!bad_request", [A]],
  ["a hash that does not match is bad_hash", "", [upRows("f", 0, [A], { hash: hashOf([B]) })], "!bad_hash", [
    A,
  ]],
  ["chunks the caller may not reference are missing_chunks", "", [upRows("f", 0, [C])], "!missing_chunks", [
    C,
  ]],
  [
    "a delta against the current version builds on its head and tail",
    "f@3",
    [upRows("f", 3, [C], { size: 20, hash: hashOf([A, C]), from: { hash: hashOf([A]), head: 1, tail: 0 } })],
    "+f@11 v:f@3",
    [C],
  ],
  [
    "a delta against a version that is not current is bad_base",
    "f@3",
    [upRows("f", 3, [C], { from: { hash: hashOf([A, B]), head: 1, tail: 0 } })],
    "!bad_base",
    [C],
  ],
  [
    "a delta longer than its base is bad_base",
    "f@3",
    [upRows("f", 3, [C], { from: { hash: hashOf([A]), head: 1, tail: 1 } })],
    "!bad_base",
    [C],
  ],
];

for (const [name, before, changes, expect, rows] of CASES) {
  Deno.test(`planCommit(): ${name}`, () => {
    // C is stored but not the caller's, except where a delta inserts it.
    const sizes = new Map([A, B].map((r) => [r.id, r.size]));
    if (name.includes("delta")) sizes.set(C.id, C.size);
    const plan = planCommit(viewOf(namespace(before)), changes, {
      device: "dev",
      seq: 10,
      now: 1000,
      tag: "t".repeat(16),
      rows: encodeRows(rows ?? []),
      sizes,
    });
    assert.equal(render(plan), expect);
  });
}

Deno.test("planCommit() records versions and trash with the device and times they describe", () => {
  const plan = planCommit(viewOf(namespace("a@3 d/@4")), [up("a", 3), del("a", 11), del("d", 4, "dir")], {
    device: "dev",
    seq: 10,
    now: 1000,
    tag: "abcd",
    rows: new Uint8Array(),
    sizes: new Map(),
  });
  const versions = plan.steps.flatMap((s) => s.versions);
  assert.deepEqual(versions[0], {
    path: "a",
    rev: 3,
    hash: hashOf([A]),
    size: A.size,
    mtime: 5,
    device: "old",
    time: 100,
    until: 1000,
  });
  assert.deepEqual(versions[1], {
    path: "a",
    rev: 11,
    hash: EMPTY,
    size: 0,
    mtime: 7,
    device: "dev",
    time: 1000,
    until: 1000,
  });
  assert.deepEqual(plan.steps.flatMap((s) => s.trash), [
    { path: "a", kind: "file", rev: 12, deletedAt: 1000, device: "dev", size: 0, version: "11" },
    { path: "d", kind: "dir", rev: 13, deletedAt: 1000, device: "dev", size: 0, version: "4" },
  ]);
  assert.ok(plan.steps.every((s) => s.journal.every((j) => j.tag === "abcd")));
  assert.equal(plan.seq, 13);
  assert.deepEqual([...plan.manifests.keys()], [EMPTY]);
});

Deno.test("planCommit() of a RESTORE marks the journal entries it writes (not the deletes) as restored", () => {
  const plan = planCommit(viewOf(namespace("a@3 d/@4")), [up("a", 3), del("d", 4, "dir")], {
    device: "dev",
    seq: 10,
    now: 1000,
    tag: "abcd",
    rows: new Uint8Array(),
    sizes: new Map(),
    restored: "3",
  });
  const journal = plan.steps.flatMap((s) => s.journal);
  assert.deepEqual(journal.map((j) => [j.path, j.deleted ?? false, j.restored]), [
    ["a", false, "3"],
    ["d", true, undefined],
  ]);
  const plain = planCommit(viewOf(namespace("a@3")), [up("a", 3)], {
    device: "dev",
    seq: 10,
    now: 1000,
    tag: "abcd",
    rows: new Uint8Array(),
    sizes: new Map(),
  });
  assert.ok(plain.steps.every((s) => s.journal.every((j) => !("restored" in j))));
});

Deno.test("planCommit() treats a folder with uncounted children as not empty", () => {
  const view = viewOf(namespace("d/@2"));
  const plan = planCommit(
    { ...view, children: () => ({ paths: [], complete: false }) },
    [del("d", 2, "dir")],
    {
      device: "dev",
      seq: 10,
      now: 1,
      tag: "x",
      rows: new Uint8Array(),
      sizes: new Map(),
    },
  );
  assert.equal(render(plan), "!not_empty");
});

// Rows, sizes and limits: [name, namespace before, changes, rows sent, limits, usage before, expect, usage after].
const BIG = row("big", 4 * 1024 * 1024);
const LIMIT_CASES: [
  name: string,
  before: string,
  changes: Change[],
  rows: ChunkRow[],
  limits: CommitLimits,
  usage: number,
  expect: string,
  after: number,
][] = [
  ["rows with their real sizes commit", "", [upRows("f", 0, [A, B])], [A, B], {}, 0, "+f@11", 20],
  [
    "sizes moved between rows (same total, same hash) are bad_rows",
    "",
    [upRows("f", 0, [{ ...A, size: 5 }, { ...B, size: 15 }])],
    [{ ...A, size: 5 }, { ...B, size: 15 }],
    {},
    0,
    "!bad_rows",
    0,
  ],
  [
    "a row claiming more than the largest chunk is bad_rows",
    "",
    [upRows("f", 0, [{ ...A, size: 0xffffffff }])],
    [{ ...A, size: 0xffffffff }],
    {},
    0,
    "!bad_rows",
    0,
  ],
  [
    "a row claiming zero bytes is bad_rows",
    "",
    [upRows("f", 0, [{ ...A, size: 0 }])],
    [{ ...A, size: 0 }],
    {},
    0,
    "!bad_rows",
    0,
  ],
  ["the largest chunk itself is fine", "", [upRows("f", 0, [BIG])], [BIG], {}, 0, "+f@11", BIG.size],
  [
    "a file above the largest file size is too_large",
    "",
    [upRows("f", 0, [A, B])],
    [A, B],
    { maxFileBytes: 19 },
    0,
    "!too_large",
    0,
  ],
  [
    "a file of exactly the largest size is fine",
    "",
    [upRows("f", 0, [A, B])],
    [A, B],
    { maxFileBytes: 20 },
    0,
    "+f@11",
    20,
  ],
  [
    "an upload past the quota is quota_exceeded",
    "",
    [upRows("f", 0, [A, B])],
    [A, B],
    { quotaBytes: 25 },
    10,
    "!quota_exceeded",
    10,
  ],
  [
    "an upload up to the quota is fine",
    "",
    [upRows("f", 0, [A, B])],
    [A, B],
    { quotaBytes: 30 },
    10,
    "+f@11",
    30,
  ],
  [
    "replacing a file counts only what it adds",
    "f@3",
    [upRows("f", 3, [A, B])],
    [A, B],
    { quotaBytes: 20 },
    10,
    "+f@11 v:f@3",
    20,
  ],
  [
    "a smaller file is accepted even over the quota",
    "f@3",
    [up("f", 3)],
    [],
    { quotaBytes: 5 },
    10,
    "+f@11 v:f@3",
    0,
  ],
  [
    "a delete in the same batch makes room",
    "g@3",
    [del("g", 3), upRows("f", 0, [A, B])],
    [A, B],
    { quotaBytes: 20 },
    10,
    "-g@11 v:g@3 t:g ; +f@12",
    20,
  ],
  ["a move changes no usage", "g@3", [mv("g", "h", 3)], [], { quotaBytes: 1 }, 10, "-g@11 +h@12", 10],
  ["a folder made over a file frees its size", "g@3", [mk("g", 3)], [], {}, 10, "+g/@11 v:g@3", 0],
];

for (const [name, before, changes, rows, limits, usage, expect, after] of LIMIT_CASES) {
  Deno.test(`planCommit(): ${name}`, () => {
    const sizes = new Map([A, B, BIG].map((r) => [r.id, r.size]));
    const plan = planCommit(viewOf(namespace(before)), changes, {
      device: "dev",
      seq: 10,
      now: 1000,
      tag: "t",
      rows: encodeRows(rows),
      sizes,
      limits,
      usage,
    });
    assert.equal(render(plan), expect);
    assert.equal(plan.usage, after, "usage after the batch");
  });
}

Deno.test("planCommit() names the file, its size and the limit in too_large and quota_exceeded", () => {
  const ctx = {
    device: "d",
    seq: 0,
    now: 1,
    tag: "t",
    rows: encodeRows([A, B]),
    sizes: new Map([A, B].map((r) => [r.id, r.size])),
  };
  const big = planCommit(viewOf(namespace("")), [upRows("big.iso", 0, [A, B])], {
    ...ctx,
    limits: { maxFileBytes: 10 },
  });
  assert.ok(!big.results[0].ok);
  assert.equal(
    big.results[0].error,
    `file too large: "big.iso" is 20 B, the server accepts files up to 10 B`,
  );
  const full = planCommit(viewOf(namespace("")), [upRows("f", 0, [A, B])], {
    ...ctx,
    limits: { quotaBytes: 2048 },
    usage: 2040,
  });
  assert.ok(!full.results[0].ok);
  assert.equal(full.results[0].error, `quota exceeded: "f" needs 20 B more, 8 B of 2.0 KiB left`);
});

// ---------------------------------------------------------------------------------------------------------
// Locks: a lock is written "path:holder" (holder A or B, both devices of user "u"), live until 2000 unless
// written "path:holder:expires". Device B commits at time 1000.

const HOLDERS = {
  A: { user: "u", deviceId: "A", device: "dev-a" },
  B: { user: "u", deviceId: "B", device: "dev-b" },
};

function locksOf(spec: string): LockRecord[] {
  return spec.split(" ").filter(Boolean).map((item) => {
    const [path, who, expires] = item.split(":");
    const holder = HOLDERS[who as "A" | "B"];
    return { path, ...holder, taken: 0, expires: Number(expires ?? 2000), leaseMs: 2000 };
  });
}

const LOCK_CASES: [name: string, before: string, locks: string, changes: Change[], expect: string][] = [
  ["an upload of a file locked by another device is locked", "a@3", "a:A", [up("a", 3)], "!locked"],
  ["the holder's own upload passes", "a@3", "a:B", [up("a", 3)], "+a@11 v:a@3"],
  ["an expired lock stops nothing", "a@3", "a:A:1000", [up("a", 3)], "+a@11 v:a@3"],
  ["a lock on another file stops nothing", "a@3 b@4", "b:A", [up("a", 3)], "+a@11 v:a@3"],
  ["a delete of a locked file is locked", "a@3", "a:A", [del("a", 3)], "!locked"],
  ["a move of a locked file away is locked", "a@3", "a:A", [mv("a", "b", 3)], "!locked"],
  ["a move onto a locked path is locked", "a@3", "b:A", [mv("a", "b", 3)], "!locked"],
  ["a mkdir over a locked file is locked", "a@3", "a:A", [mk("a", 3)], "!locked"],
  [
    "a delete of a folder holding a locked file is locked",
    "d/@2 d/e/@3 d/e/x@4",
    "d/e/x:A",
    [del("d", 2, "dir")],
    "!locked",
  ],
  [
    "a folder rename (its files moved one by one) stops at the locked file",
    "d/@2 d/x@3 d/y@4",
    "d/y:A",
    [mv("d/x", "e/x", 3), mv("d/y", "e/y", 4)],
    "+e/@11 | -d/x@12 +e/x@13 ; !locked",
  ],
  ["a new file beside a locked one passes", "d/@2 d/x@3", "d/x:A", [up("d/z")], "+d/z@11"],
  ["a mkdir of a folder holding a locked file writes nothing", "d/@2 d/x@3", "d/x:A", [mk("d")], "nothing"],
  [
    "the lock stops only its change in a batch",
    "a@3",
    "a:A",
    [up("a", 3), up("b")],
    "!locked ; +b@11",
  ],
  ["a lock held by the same user on another device still stops it", "a@3", "a:A", [del("a", 3)], "!locked"],
];

for (const [name, before, locks, changes, expect] of LOCK_CASES) {
  Deno.test(`planCommit() with locks: ${name}`, () => {
    const plan = planCommit(viewOf(namespace(before)), changes, {
      device: "dev-b",
      seq: 10,
      now: 1000,
      tag: "t".repeat(16),
      rows: new Uint8Array(),
      sizes: new Map(),
      locks: locksOf(locks),
      holder: HOLDERS.B,
    });
    assert.equal(render(plan), expect);
  });
}

Deno.test("planCommit() names the holder of the lock that refused a change", () => {
  const plan = planCommit(viewOf(namespace("d/@2 d/x@3")), [del("d/x", 3), del("d", 2, "dir")], {
    device: "dev-b",
    seq: 10,
    now: 1000,
    tag: "t".repeat(16),
    rows: new Uint8Array(),
    sizes: new Map(),
    locks: locksOf("d/x:A"),
    holder: HOLDERS.B,
  });
  const [file, folder] = plan.results;
  assert.ok(!file.ok && !folder.ok);
  assert.equal(file.code, "locked");
  assert.equal(file.error, `"d/x" is locked by u on device "dev-a"`);
  assert.deepEqual(file.holder, HOLDERS.A);
  assert.equal(folder.error, `"d" holds "d/x", which is locked by u on device "dev-a"`);
});

Deno.test("planCommit() without a holder checks no lock (server-internal commits)", () => {
  const plan = planCommit(viewOf(namespace("a@3")), [up("a", 3)], {
    device: "dev",
    seq: 10,
    now: 1000,
    tag: "t",
    rows: new Uint8Array(),
    sizes: new Map(),
    locks: locksOf("a:A"),
  });
  assert.equal(render(plan), "+a@11 v:a@3");
});
