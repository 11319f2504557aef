// ClientState's journal positions: one per namespace, the cursor of a state from before namespaces kept, and the
// mirror of each namespace mapped through its mount.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { WireEntry } from "../protocol/messages.ts";
import { MountTable } from "./mounts.ts";
import {
  ClientState,
  readDeviceInfo,
  readToken,
  savedServers,
  saveLogin,
  saveServers,
  STATE_DIR,
} from "./state.ts";

async function withFolder(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "filesync-state-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** Writes a state.kv as a client from before namespaces left it: one cursor, one remote entry. */
async function writeOldState(root: string, cursor: unknown): Promise<void> {
  await Deno.mkdir(join(root, STATE_DIR), { recursive: true });
  const kv = await Deno.openKv(join(root, STATE_DIR, "state.kv"));
  await kv.set(["cursor"], cursor);
  await kv.set(["remote", "a.txt"], {
    path: "a.txt",
    kind: "file",
    hash: "h",
    size: 1,
    mtime: 1,
    rev: 7,
    device: "d",
  });
  kv.close();
}

function event(path: string, rev: number, deleted = false): WireEntry {
  return { path, kind: "file", hash: "h", size: 1, mtime: 1, rev, device: "d", deleted, tag: `t${rev}` };
}

Deno.test("an old state.kv keeps its cursor as the own namespace's position, written back under it", async () => {
  await withFolder(async (root) => {
    await writeOldState(root, { seq: 7, epoch: "e1", tag: "t7" });
    let state = await ClientState.open(root, { ownNamespace: "alice" });
    assert.deepEqual(state.position("alice"), { seq: 7, epoch: "e1", tag: "t7" });
    assert.deepEqual([...state.positions.keys()], ["alice"]);
    assert.equal(state.remote.get("a.txt")?.rev, 7);
    await state.close();
    const kv = await Deno.openKv(join(root, STATE_DIR, "state.kv"));
    assert.equal((await kv.get(["cursor"])).value, null, "the old cursor is replaced");
    assert.deepEqual((await kv.get(["position", "alice"])).value, { seq: 7, epoch: "e1", tag: "t7" });
    kv.close();
    state = await ClientState.open(root, { ownNamespace: "alice" });
    assert.deepEqual(state.position("alice"), { seq: 7, epoch: "e1", tag: "t7" });
    await state.close();
  });
});

Deno.test("a cursor from before epochs (a number) belongs to the user of device.json by default", async () => {
  await withFolder(async (root) => {
    await writeOldState(root, 12);
    await saveLogin(root, { server: "s:1", user: "bob", device: "d", deviceId: "id" }, "token");
    const state = await ClientState.open(root);
    try {
      assert.equal(state.mounts.root, "bob");
      assert.deepEqual(state.position("bob"), { seq: 12, epoch: null, tag: null });
    } finally {
      await state.close();
    }
  });
});

Deno.test("setMounts gives the server's root namespace the position migrated under a guessed id", async () => {
  await withFolder(async (root) => {
    await writeOldState(root, { seq: 3, epoch: "e", tag: "t3" });
    const state = await ClientState.open(root, { ownNamespace: "" });
    try {
      state.setMounts(new MountTable([{ ns: "carol", mount: "" }]));
      assert.deepEqual([...state.positions], [["carol", { seq: 3, epoch: "e", tag: "t3" }]]);
      await state.flush();
    } finally {
      await state.close();
    }
    const again = await ClientState.open(root, { ownNamespace: "carol" });
    try {
      assert.deepEqual([...again.positions], [["carol", { seq: 3, epoch: "e", tag: "t3" }]]);
    } finally {
      await again.close();
    }
  });
});

Deno.test("each namespace keeps its own cursor and mirror part, its paths under its mount", async () => {
  await withFolder(async (root) => {
    const state = await ClientState.open(root, { ownNamespace: "alice" });
    try {
      state.setMounts(new MountTable([{ ns: "alice", mount: "" }, { ns: "share:1", mount: "Team" }]));
      assert.deepEqual(state.applyEvents([event("a.txt", 1), event("b.txt", 2)]), ["a.txt", "b.txt"]);
      assert.deepEqual(state.applyEvents([event("plan.txt", 1)], "share:1"), ["Team/plan.txt"]);
      assert.deepEqual(state.applyEvents([event("plan.txt", 1)], "share:1"), [], "an old event is skipped");
      assert.deepEqual(
        state.applyEvents([event("x", 9)], "share:9"),
        [],
        "a namespace not mounted is ignored",
      );
      assert.deepEqual(state.position("alice"), { seq: 2, epoch: null, tag: "t2" });
      assert.deepEqual(state.position("share:1"), { seq: 1, epoch: null, tag: "t1" });
      assert.deepEqual([...state.remote.keys()].sort(), ["Team/plan.txt", "a.txt", "b.txt"]);
      const touched = state.applySnapshot([event("new.txt", 5)], {
        first: true,
        last: true,
        cursor: 5,
        ns: "share:1",
      });
      assert.deepEqual(touched, ["Team/plan.txt", "Team/new.txt"]);
      assert.deepEqual(
        [...state.remote.keys()].sort(),
        ["Team/new.txt", "a.txt", "b.txt"],
        "the own part stays",
      );
      assert.deepEqual(state.resetRemote("alice").sort(), ["a.txt", "b.txt"]);
      assert.deepEqual([...state.remote.keys()], ["Team/new.txt"]);
      assert.equal(state.position("alice").seq, 0);
      assert.equal(state.position("share:1").seq, 5);
      await state.flush();
    } finally {
      await state.close();
    }
    const again = await ClientState.open(root, { ownNamespace: "alice" });
    try {
      assert.equal(again.position("share:1").seq, 5);
      assert.equal(again.position("alice").seq, 0);
    } finally {
      await again.close();
    }
  });
});

Deno.test("applyEvents keeps the version a restore brought back on the mirror entry, and only then", async () => {
  await withFolder(async (root) => {
    const state = await ClientState.open(root, { ownNamespace: "alice" });
    try {
      state.applyEvents([{ ...event("r.txt", 1), restored: "7" }, event("plain.txt", 2)]);
      assert.equal(state.remote.get("r.txt")?.restored, "7");
      assert.ok(!("restored" in state.remote.get("plain.txt")!));
      state.applyEvents([event("r.txt", 3)]);
      assert.ok(!("restored" in state.remote.get("r.txt")!), "a later version is no restore");
    } finally {
      await state.close();
    }
  });
});

Deno.test("device.json keeps the list of servers; an older one with one server reads as a list of one", async () => {
  await withFolder(async (root) => {
    await saveServers(root, ["a:1"]); // before the first login: nothing to update
    assert.equal(await readDeviceInfo(root), null);
    const device = { server: "a:1", user: "bob", device: "d", deviceId: "id" };
    await saveLogin(root, device, "token");
    assert.deepEqual(savedServers((await readDeviceInfo(root))!), ["a:1"]);
    await saveServers(root, ["b:2", "::1:3"]);
    assert.deepEqual(await readDeviceInfo(root), { ...device, server: "b:2", servers: ["b:2", "::1:3"] });
    assert.deepEqual(savedServers((await readDeviceInfo(root))!), ["b:2", "::1:3"]);
    await saveServers(root, ["c:4"]);
    assert.deepEqual(await readDeviceInfo(root), { ...device, server: "c:4" });
    assert.equal(await readToken(root), "token");
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(join(root, STATE_DIR, "device.json"))).mode! & 0o777, 0o600);
    }
    assert.deepEqual(savedServers({ ...device, servers: [] }), ["a:1"]);
  });
});
