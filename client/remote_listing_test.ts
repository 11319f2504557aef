import assert from "node:assert/strict";
import type { WireEntry } from "../protocol/messages.ts";
import { UserError } from "../protocol/user_error.ts";
import {
  applyPushes,
  atOrUnder,
  childrenOf,
  deepestFirst,
  formatMtime,
  type Listing,
  nameOf,
  toRemotePath,
} from "./remote_listing.ts";

const HASH = "ab".repeat(32);

function file(path: string, rev = 1, size = 10): WireEntry {
  return { path, kind: "file", hash: HASH, size, mtime: 1_764_000_000_000, rev, device: "A" };
}

function dir(path: string, rev = 1): WireEntry {
  return { path, kind: "dir", hash: "", size: 0, mtime: 0, rev, device: "A" };
}

function listingOf(...entries: WireEntry[]): Listing {
  return new Map(entries.map((e) => [e.path, e]));
}

Deno.test("toRemotePath() takes what a user types and refuses what the sync rules refuse", () => {
  const ok: [string, string][] = [
    ["a.txt", "a.txt"],
    ["/Docs/a.txt", "Docs/a.txt"],
    ["Docs/", "Docs"],
    ["//Docs//", "Docs"],
    ["/", ""],
    ["", ""],
    [".", ""],
    ["Cafe\u0301.txt", "Caf\u00e9.txt"],
  ];
  for (const [input, want] of ok) assert.equal(toRemotePath(input), want, input);
  const bad: [string, RegExp][] = [
    ["a/../b", /"\.\." is not allowed|\.\./],
    ["./a", /\./],
    [".filesync/token", /filesync/],
    ["a//b", /empty|segment/],
    ["a\u0000b", /control/],
  ];
  for (const [input, want] of bad) {
    assert.throws(
      () => toRemotePath(input),
      (e: Error) => e instanceof UserError && want.test(e.message),
      input,
    );
  }
});

Deno.test("atOrUnder() and nameOf() split paths at slashes only", () => {
  assert.ok(atOrUnder("", "a/b"));
  assert.ok(atOrUnder("a", "a"));
  assert.ok(atOrUnder("a", "a/b"));
  assert.ok(!atOrUnder("a", "ab"));
  assert.equal(nameOf("a/b/c.txt"), "c.txt");
  assert.equal(nameOf("c.txt"), "c.txt");
});

Deno.test("applyPushes() builds the listing from snapshot pages, then journal events", () => {
  const listing: Listing = new Map();
  applyPushes(listing, [
    { push: "snapshot", entries: [dir("Docs"), file("Docs/a.txt")], first: true, last: false, cursor: 5 },
    { push: "snapshot", entries: [file("Docs/b.txt", 2)], first: false, last: true, cursor: 5 },
    {
      push: "events",
      events: [{ ...file("Docs/a.txt", 6), hash: "", deleted: true }, file("Docs/c.txt", 7)],
    },
    { push: "locks", locks: [] },
  ], "Docs");
  assert.deepEqual([...listing.keys()].sort(), ["Docs", "Docs/b.txt", "Docs/c.txt"]);
});

Deno.test("applyPushes() refuses an entry outside the path asked about, and a malformed push", () => {
  const outside = [{ push: "snapshot", entries: [file("Other/x")], first: true, last: true, cursor: 1 }];
  assert.throws(() => applyPushes(new Map(), outside, "Docs"), /not at or under "Docs"/);
  const hostile = [{ push: "events", events: [file("../../etc/passwd")] }];
  assert.throws(() => applyPushes(new Map(), hostile, ""), (e: Error) => e instanceof UserError);
  const noHash = [{ push: "events", events: [{ ...file("a"), hash: "" }] }];
  assert.throws(() => applyPushes(new Map(), noHash, ""), /Refused a message from the server/);
});

Deno.test("childrenOf() lists a folder's own entries by name; deepestFirst() orders a folder's delete", () => {
  const listing = listingOf(
    dir("Docs"),
    file("Docs/b.txt"),
    dir("Docs/Sub"),
    file("Docs/Sub/deep.txt"),
    file("Docs/a.txt"),
    file("top.txt"),
  );
  assert.deepEqual(childrenOf(listing, "").map((e) => e.path), ["Docs", "top.txt"]);
  assert.deepEqual(childrenOf(listing, "Docs").map((e) => e.path), ["Docs/Sub", "Docs/a.txt", "Docs/b.txt"]);
  assert.deepEqual(childrenOf(listing, "Docs/Sub").map((e) => e.path), ["Docs/Sub/deep.txt"]);
  assert.deepEqual(deepestFirst(listing, "Docs").map((e) => e.path), [
    "Docs/Sub/deep.txt",
    "Docs/b.txt",
    "Docs/a.txt",
    "Docs/Sub",
  ]);
  assert.deepEqual(deepestFirst(listing, "top.txt"), []);
});

Deno.test("formatMtime() prints UTC, and a dash for folders (no time)", () => {
  assert.equal(formatMtime(Date.UTC(2026, 11, 1, 20, 18, 27, 500)), "2026-12-01 20:18:27 UTC");
  assert.equal(formatMtime(0), "-");
});
