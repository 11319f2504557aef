// ClientState with shares of parts of another user's namespace: each view's mirror part and cursor, the mounts
// kept across restarts, and what a share that went takes with it.
import assert from "node:assert/strict";
import type { WireEntry } from "../protocol/messages.ts";
import { MountTable } from "./mounts.ts";
import { ClientState } from "./state.ts";

async function withFolder(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "filesync-state-shares-" });
  try {
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function event(path: string, rev: number): WireEntry {
  return { path, kind: "file", hash: "h", size: 1, mtime: 1, rev, device: "d", tag: `t${rev}` };
}

const own = { ns: "bob", mount: "" };
const project = { ns: "alice", mount: "Project (shared by alice)", path: "work/Project" };
const docs = { ns: "alice", mount: "Docs", path: "Docs" };

Deno.test("a view keeps its own cursor; events outside its part move the cursor only", async () => {
  await withFolder(async (root) => {
    const state = await ClientState.open(root, { ownNamespace: "bob" });
    try {
      state.setMounts(new MountTable([own, project, docs]));
      const key = "alice/work/Project";
      assert.deepEqual(
        state.applyEvents([event("work/Project/a.txt", 4), event("work/secret.txt", 5)], key),
        ["Project (shared by alice)/a.txt"],
      );
      assert.deepEqual(state.position(key), { seq: 5, epoch: null, tag: "t5" });
      assert.deepEqual(state.applyEvents([event("Docs/d.txt", 6)], "alice/Docs"), ["Docs/d.txt"]);
      assert.equal(state.position(key).seq, 5, "each view its own cursor");
      const touched = state.applySnapshot([event("work/Project/b.txt", 9)], {
        first: true,
        last: true,
        cursor: 9,
        ns: key,
      });
      assert.deepEqual(touched, ["Project (shared by alice)/a.txt", "Project (shared by alice)/b.txt"]);
      assert.deepEqual([...state.remote.keys()].sort(), ["Docs/d.txt", "Project (shared by alice)/b.txt"]);
    } finally {
      await state.close();
    }
  });
});

Deno.test("mounts survive a restart; a share gone meanwhile takes its mirror part and cursor with it", async () => {
  await withFolder(async (root) => {
    const state = await ClientState.open(root, { ownNamespace: "bob" });
    try {
      state.setMounts(new MountTable([own, project, docs]));
      state.applyEvents([event("mine.txt", 1)]);
      state.applyEvents([event("work/Project/a.txt", 4)], "alice/work/Project");
      state.applyEvents([event("Docs/d.txt", 6)], "alice/Docs");
      state.setBase("Docs/d.txt", { kind: "file", hash: "h", rev: 6, size: 1, mtime: 1, ino: null });
    } finally {
      await state.close();
    }
    const again = await ClientState.open(root, { ownNamespace: "bob" });
    try {
      assert.deepEqual(again.mounts.list, [own, project, docs], "as the last run left them");
      const gone = again.setMounts(new MountTable([own, project]));
      assert.deepEqual(gone, ["Docs/d.txt"]);
      assert.deepEqual([...again.remote.keys()].sort(), ["Project (shared by alice)/a.txt", "mine.txt"]);
      assert.equal(again.positions.has("alice/Docs"), false);
      assert.ok(again.base.has("Docs/d.txt"), "the base stays: reconcile deletes or keeps the local file");
      assert.deepEqual(again.setMounts(new MountTable([own, project])), [], "nothing more goes");
      // Shown at another place now: taken away from the old one.
      const moved = again.setMounts(new MountTable([own, { ...project, mount: "Project" }]));
      assert.deepEqual(moved, ["Project (shared by alice)/a.txt"]);
    } finally {
      await again.close();
    }
    const third = await ClientState.open(root, { ownNamespace: "bob" });
    try {
      assert.deepEqual(third.mounts.list, [own, { ...project, mount: "Project" }]);
    } finally {
      await third.close();
    }
  });
});
