// Tests of the progress events a sync emits: plan totals and transfer events throttled per file.
import assert from "node:assert/strict";
import type { LocalEntry, RemoteEntry } from "./reconcile.ts";
import { planTotals, type TransferEvent, transferReporter, transfersAny } from "./progress_events.ts";

const MiB = 1024 * 1024;
const local = (size: number) => ({ kind: "file", hash: "h", size, mtime: 0, ino: 1 }) as LocalEntry;
const remote = (size: number) => ({ kind: "file", hash: "h", size, mtime: 0, rev: 1 }) as RemoteEntry;

Deno.test("planTotals() counts files and bytes each way, deletes and moves", () => {
  const totals = planTotals([
    { type: "upload", path: "a", local: local(10), baseRev: 0 },
    { type: "upload", path: "b", local: local(5), baseRev: 0 },
    { type: "download", path: "c", remote: remote(7), expect: null },
    { type: "deleteLocal", path: "d", expect: local(1) },
    { type: "deleteRemote", path: "e", kind: "file", baseRev: 1 },
    { type: "moveRemote", from: "f", to: "g", baseRev: 1, local: local(3) },
    { type: "mkdirRemote", path: "h", baseRev: 0 },
  ]);
  assert.deepEqual(totals, {
    uploads: { files: 2, bytes: 15 },
    downloads: { files: 1, bytes: 7 },
    deletes: 2,
    moves: 1,
  });
  assert.equal(transfersAny(totals), true);
  assert.equal(transfersAny(planTotals([{ type: "deleteLocal", path: "d", expect: local(1) }])), false);
});

Deno.test("transferReporter() sends at most one event per file every 250 ms, and always the last", () => {
  let now = 0;
  const sent: TransferEvent[] = [];
  const progress = transferReporter((event) => sent.push(event), { now: () => now });
  for (let done = MiB; done <= 40 * MiB; done += MiB) {
    progress("big", done, 40 * MiB, "down");
    progress("other", done, 40 * MiB, "up");
    now += 50; // 20 chunks a second
  }
  const big = sent.filter((e) => e.path === "big");
  // Chunks at 0, 50, …, 1950 ms: one event per 250 ms (0, 250, …, 1750) plus the last.
  assert.deepEqual(big.map((e) => e.done / MiB), [1, 6, 11, 16, 21, 26, 31, 36, 40]);
  assert.ok(big.every((e) => e.direction === "down" && e.total === 40 * MiB));
  assert.equal(sent.filter((e) => e.path === "other" && e.direction === "up").length, big.length);
});

Deno.test("transferReporter() leaves small files to their uploaded / downloaded events", () => {
  const sent: TransferEvent[] = [];
  const progress = transferReporter((event) => sent.push(event));
  progress("small", 1000, 1000, "up");
  progress("edge", MiB - 1, MiB - 1, "down");
  progress("mib", MiB, MiB, "down");
  assert.deepEqual(sent.map((e) => e.path), ["mib"]);
});
