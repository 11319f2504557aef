// Which planned changes wait for another device's lock (a table), and what the guard does to files' modes.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { WireLock } from "../protocol/locks.ts";
import { holdBackLocked, LockGuard } from "./lock_guard.ts";
import { formatEvent } from "./event_format.ts";
import type { Action } from "./reconcile.ts";

const local = { kind: "file" as const, hash: "h", size: 1, mtime: 0 };
const remote = { kind: "file" as const, hash: "r", size: 1, mtime: 0, rev: 4, device: "a" };

const CASES: [name: string, action: Action, locked: string[], held: boolean][] = [
  ["an upload of a locked file", { type: "upload", path: "a", local, baseRev: 3 }, ["a"], true],
  ["an upload of another file", { type: "upload", path: "b", local, baseRev: 3 }, ["a"], false],
  ["a delete of a locked file", { type: "deleteRemote", path: "a", kind: "file", baseRev: 3 }, ["a"], true],
  ["a delete of a folder holding one", { type: "deleteRemote", path: "d", kind: "dir", baseRev: 3 }, [
    "d/e/a",
  ], true],
  ["a delete of a folder with a similar name", { type: "deleteRemote", path: "d", kind: "dir", baseRev: 3 }, [
    "dd/a",
  ], false],
  [
    "a move away of a locked file",
    { type: "moveRemote", from: "a", to: "b", baseRev: 3, local },
    ["a"],
    true,
  ],
  ["a move onto a locked path", { type: "moveRemote", from: "b", to: "a", baseRev: 3, local }, ["a"], true],
  ["a folder made over a locked file", { type: "mkdirRemote", path: "a", baseRev: 3 }, ["a"], true],
  [
    "a conflict on a locked file (kept here)",
    {
      type: "conflict",
      path: "a",
      keep: "local",
      copyPath: "a (conflicted copy)",
      local,
      remote,
    },
    ["a"],
    true,
  ],
  [
    "a conflict on a locked file (kept there)",
    {
      type: "conflict",
      path: "a",
      keep: "remote",
      copyPath: "a (conflicted copy)",
      local,
      remote,
    },
    ["a"],
    true,
  ],
  [
    "a download of the holder's version",
    { type: "download", path: "a", remote, expect: local },
    ["a"],
    false,
  ],
  ["a local delete", { type: "deleteLocal", path: "a", expect: local }, ["a"], false],
];

for (const [name, action, locked, held] of CASES) {
  Deno.test(`holdBackLocked(): ${name} ${held ? "waits" : "runs"}`, () => {
    const locks = new Map(locked.map((p) => [p, { path: p }]));
    const result = holdBackLocked([action], locks);
    assert.equal(result.held.length === 1, held);
    assert.equal(result.allowed.length === 1, !held);
  });
}

const lockOn = (path: string, mine = false): WireLock => ({
  path,
  user: "u",
  deviceId: mine ? "me" : "other",
  device: mine ? "here" : "there",
  expires: 1,
  remainingMs: 600_000,
  leaseMs: 600_000,
  mine,
});

async function withFolder(fn: (root: string, guard: LockGuard, lines: string[]) => void | Promise<void>) {
  const root = await Deno.makeTempDir({ prefix: "filesync-guard-" });
  await Deno.mkdir(join(root, ".filesync"));
  const lines: string[] = [];
  const guard = new LockGuard({
    root,
    emit: (event) => lines.push(formatEvent(event)),
    renew: () => Promise.resolve("renewed" as const),
  });
  try {
    await fn(root, guard, lines);
  } finally {
    guard.stop();
    await Deno.remove(root, { recursive: true });
  }
}

const modeOf = (path: string) => Deno.statSync(path).mode! & 0o777;

Deno.test("LockGuard makes another device's locked file read-only and restores the mode after", async () => {
  await withFolder((root, guard, lines) => {
    const file = join(root, "a.txt");
    Deno.writeTextFileSync(file, "x");
    Deno.chmodSync(file, 0o664);
    assert.deepEqual(guard.update([lockOn("a.txt")], { path: "a.txt", what: "taken", by: "there" }), []);
    assert.equal(modeOf(file), 0o444);
    assert.match(lines.join("\n"), /a\.txt is locked by u on device "there": read-only here/);
    // A new run reads what the earlier one changed, and restores it once the lock is gone.
    const again = new LockGuard({ root, emit: () => {}, renew: () => Promise.resolve("renewed" as const) });
    again.load();
    assert.deepEqual(again.update([]), []);
    assert.equal(modeOf(file), 0o664);
  });
});

Deno.test("LockGuard leaves a mode the user set while locked, and never touches its own locks' files", async () => {
  await withFolder((root, guard) => {
    const file = join(root, "a.txt");
    const mine = join(root, "mine.txt");
    Deno.writeTextFileSync(file, "x");
    Deno.writeTextFileSync(mine, "y");
    Deno.chmodSync(file, 0o644);
    Deno.chmodSync(mine, 0o644);
    guard.update([lockOn("a.txt"), lockOn("mine.txt", true)]);
    assert.equal(modeOf(file), 0o444);
    assert.equal(modeOf(mine), 0o644);
    Deno.chmodSync(file, 0o600); // the user takes write access back to edit anyway
    guard.protect();
    assert.equal(modeOf(file), 0o600, "not made read-only a second time");
    const again = guard.update([lockOn("mine.txt", true)], { path: "a.txt", what: "released", by: "there" });
    assert.deepEqual(again, ["a.txt"]);
    assert.equal(modeOf(file), 0o600, "the user's mode stays");
  });
});

Deno.test("LockGuard holds back changes of a locked file, tells once, and gives the path back when it ends", async () => {
  await withFolder((_root, guard, lines) => {
    guard.update([lockOn("a")]);
    const upload: Action = { type: "upload", path: "a", local, baseRev: 3 };
    assert.deepEqual(guard.filter([upload]), []);
    assert.deepEqual(guard.filter([upload]), []);
    const told = lines.filter((l) => l.includes("kept and sent when the lock ends"));
    assert.equal(told.length, 1);
    assert.deepEqual(guard.update([], { path: "a", what: "expired" }), ["a"]);
    assert.deepEqual(guard.filter([upload]), [upload]);
    assert.match(lines.join("\n"), /the lock on a ran out/);
  });
});

Deno.test("LockGuard renews its own locks halfway through the lease, whatever other locks do", async () => {
  const root = await Deno.makeTempDir({ prefix: "filesync-guard-" });
  const renewed: string[] = [];
  let resolve!: () => void;
  const done = new Promise<void>((r) => resolve = r);
  const guard = new LockGuard({
    root,
    emit: () => {},
    renew: (path) => {
      renewed.push(path);
      if (renewed.length === 2) resolve();
      return Promise.resolve("renewed" as const);
    },
  });
  try {
    const lock = { ...lockOn("mine.txt", true), remainingMs: 400, leaseMs: 400 };
    guard.update([lock]);
    // Lists about other locks (their renewals) do not put this one's renewal off.
    const others = setInterval(() => guard.update([lock, { ...lockOn("b"), expires: Date.now() }]), 50);
    try {
      await done; // renewed, and without a push of the renewed lock renewed again halfway through the lease
    } finally {
      clearInterval(others);
    }
    assert.deepEqual(renewed, ["mine.txt", "mine.txt"]);
  } finally {
    guard.stop();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("LockGuard treats a path the server refused as locked as locked, until the server's next list", async () => {
  await withFolder((root, guard) => {
    const file = join(root, "a");
    Deno.writeTextFileSync(file, "x");
    Deno.chmodSync(file, 0o644);
    const upload: Action = { type: "upload", path: "a", local, baseRev: 3 };
    guard.refused("a", { user: "u", deviceId: "other", device: "there" });
    assert.deepEqual(guard.filter([upload]), [], "held, not sent again");
    assert.equal(modeOf(file), 0o444);
    // The push of the lock arrives: still held. Its end: sent again, the mode back.
    assert.deepEqual(guard.update([lockOn("a")], { path: "a", what: "taken", by: "there" }), []);
    assert.deepEqual(guard.filter([upload]), []);
    assert.deepEqual(guard.update([], { path: "a", what: "released", by: "there" }), ["a"]);
    assert.deepEqual(guard.filter([upload]), [upload]);
    assert.equal(modeOf(file), 0o644);
  });
});
