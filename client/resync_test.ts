// Tests for the base-adjust rule of a resync: a table of cases, then random trees checked through reconcile.
import assert from "node:assert/strict";
import type { ResyncReason } from "../protocol/messages.ts";
import { type BaseEntry, type LocalEntry, reconcile, type RemoteEntry } from "./reconcile.ts";
import { adjustBase } from "./resync.ts";

const file = (hash: string, rev = 1): BaseEntry => ({ kind: "file", hash, rev });
const dir = (rev = 1): BaseEntry => ({ kind: "dir", hash: "", rev });
const remoteOf = (entry: BaseEntry): RemoteEntry => ({
  ...entry,
  size: entry.hash.length,
  mtime: 1000,
  device: "server",
});

Deno.test("adjustBase keeps a base entry only where the snapshot has the same content", () => {
  type Case = [string, ResyncReason, BaseEntry | null, BaseEntry | null, BaseEntry | null | "unchanged"];
  const cases: Case[] = [
    // description, reason, base, snapshot entry, expected base
    ["same file, same rev", "behind", file("h1", 4), file("h1", 4), "unchanged"],
    ["same file, another rev: takes the server's", "behind", file("h1", 9), file("h1", 3), file("h1", 3)],
    ["other content: dropped", "behind", file("h2", 9), file("h1", 3), null],
    ["missing on the server: dropped", "diverged", file("h1", 9), null, null],
    ["folder kept as folder", "epoch", dir(7), dir(2), dir(2)],
    ["folder became a file: dropped", "epoch", dir(7), file("h1", 2), null],
    ["file became a folder: dropped", "diverged", file("h1", 7), dir(2), null],
    ["missing folder: dropped", "behind", dir(5), null, null],
    ["no base: nothing to do", "behind", null, file("h1", 3), "unchanged"],
    ["expired: base stays although content differs", "expired", file("h2", 9), file("h1", 3), "unchanged"],
    ["expired: base stays although the path is gone", "expired", file("h2", 9), null, "unchanged"],
  ];
  for (const [what, reason, base, remote, expected] of cases) {
    const changes = adjustBase(reason, {
      base: new Map(base ? [["p", base]] : []),
      remote: new Map(remote ? [["p", remoteOf(remote)]] : []),
    });
    if (expected === "unchanged") assert.equal(changes.size, 0, what);
    else assert.deepEqual(changes.get("p"), expected, what);
  }
});

Deno.test("adjustBase keeps the stat fields of a base record it keeps", () => {
  const base = new Map([["a", { kind: "file" as const, hash: "h", rev: 8, size: 1, mtime: 5, ino: 42 }]]);
  const changes = adjustBase("behind", { base, remote: new Map([["a", remoteOf(file("h", 2))]]) });
  assert.deepEqual(changes.get("a"), { kind: "file", hash: "h", rev: 2, size: 1, mtime: 5, ino: 42 });
});

/** xorshift32: deterministic random numbers in [0, 1). */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

Deno.test("after adjustBase (not expired), reconcile never deletes or overwrites a local file", () => {
  for (let seed = 1; seed <= 300; seed++) {
    const rand = random(seed);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)];
    const paths = ["a", "b", "c", "d/e", "d/f", "g"];
    const base = new Map<string, BaseEntry>();
    const local = new Map<string, LocalEntry>();
    const remote = new Map<string, RemoteEntry>();
    const content = () => pick(["h1", "h2", "h3"]);
    for (const path of paths) {
      const b = rand() < 0.7 ? file(content(), 1 + Math.floor(rand() * 9)) : null;
      if (b) base.set(path, b);
      // The device: unchanged since the base, edited, deleted, or new.
      const l = rand() < 0.5 ? b : rand() < 0.7 ? file(content()) : null;
      if (l) local.set(path, { kind: "file", hash: l.hash, size: 2, mtime: 1000 + Math.floor(rand() * 10) });
      // The restored server: the base, an older version, or missing.
      const r = rand() < 0.4 ? b : rand() < 0.6 ? file(content(), 1 + Math.floor(rand() * 9)) : null;
      if (r) remote.set(path, { ...remoteOf(r), mtime: 1000 + Math.floor(rand() * 10) });
    }
    for (const parent of ["d"]) {
      base.set(parent, dir());
      local.set(parent, { kind: "dir", hash: "", size: 0, mtime: 0 });
      if ([...remote.keys()].some((p) => p.startsWith("d/")) || rand() < 0.5) {
        remote.set(parent, remoteOf(dir(2)));
      }
    }
    const reason = pick<ResyncReason>(["behind", "diverged", "epoch"]);
    const adjusted = new Map(base);
    for (const [path, entry] of adjustBase(reason, { base, remote })) {
      if (entry) adjusted.set(path, entry);
      else adjusted.delete(path);
    }
    const plan = reconcile({ base: adjusted, local, remote }, { device: "A" });
    const context = () => `seed ${seed}: ${JSON.stringify(plan)}`;
    for (const action of plan) {
      assert.notEqual(action.type, "deleteLocal", context());
      if (action.type === "download" || action.type === "mkdirLocal") {
        assert.equal(action.expect, null, `overwrites a local entry: ${context()}`);
      }
      if (action.type === "deleteRemote") {
        // Only what this device deleted itself since a base the server still has.
        assert.equal(local.has(action.path), false, context());
        assert.deepEqual(adjusted.get(action.path)?.hash, remote.get(action.path)?.hash, context());
      }
    }
    // Every local file the server lacks is uploaded (or moved there, or kept beside a conflicted copy).
    for (const [path, entry] of local) {
      if (entry.kind !== "file" || remote.get(path)?.hash === entry.hash) continue;
      const handled = plan.some((a) =>
        ((a.type === "upload" || a.type === "conflict") && a.path === path) ||
        (a.type === "moveRemote" && a.to === path)
      );
      assert.ok(handled, `${path} neither uploaded nor a conflict: ${context()}`);
    }
  }
});
