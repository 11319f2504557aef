// Tests for the held-deletes files and the synced-folder lookup of confirm-deletes, on real temp folders.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  confirmHeld,
  confirmWaiting,
  findSyncRoot,
  readHeld,
  takeConfirmed,
  writeHeld,
} from "./held_deletes.ts";
import { checkRoot, rootIdentity } from "./scanner.ts";

async function withFolder(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "filesync-held-" });
  try {
    await Deno.mkdir(join(root, ".filesync"));
    await fn(root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("confirmHeld() confirms the deletes listed when it runs, not those listed later", async () => {
  await withFolder(async (root) => {
    assert.equal(await confirmHeld(root), null, "nothing held: nothing to confirm");
    await writeHeld(root, { paths: ["a", "b", "dir"], files: 2 });
    assert.deepEqual(await readHeld(root), { paths: ["a", "b", "dir"], files: 2 });
    assert.deepEqual(await confirmHeld(root), { paths: ["a", "b", "dir"], files: 2 });
    await writeHeld(root, { paths: ["a", "b", "dir", "c"], files: 3 });
    assert.ok(confirmWaiting(root));
    assert.deepEqual(await takeConfirmed(root), new Set(["a", "b", "dir"]));
    assert.ok(!confirmWaiting(root), "a confirmation is taken once");
    assert.equal(await takeConfirmed(root), null);
    await writeHeld(root, { paths: [], files: 0 });
    assert.equal(await readHeld(root), null, "an empty list removes the file");
  });
});

Deno.test("findSyncRoot() walks up to the folder with .filesync/, or gives null", async () => {
  await withFolder(async (root) => {
    await Deno.mkdir(join(root, "a", "b"), { recursive: true });
    assert.equal(findSyncRoot(join(root, "a", "b")), root);
    assert.equal(findSyncRoot(root), root);
    assert.equal(findSyncRoot(join(root, "..")), null);
  });
});

Deno.test("checkRoot() tells a missing, replaced or state-less folder from the one it started with", async () => {
  await withFolder(async (root) => {
    const dir = join(root, "Sync");
    await Deno.mkdir(join(dir, ".filesync"), { recursive: true });
    const id = rootIdentity(dir);
    assert.deepEqual(checkRoot(dir, id), { kind: "ok" });

    await Deno.rename(dir, `${dir}-away`);
    assert.equal(checkRoot(dir, id).kind, "missing");
    await Deno.writeTextFile(dir, "a file now");
    assert.equal(checkRoot(dir, id).kind, "missing");
    await Deno.remove(dir);
    await Deno.mkdir(dir);
    assert.equal(checkRoot(dir, id).kind, "replaced", "an empty folder in its place");
    await Deno.remove(dir);
    await Deno.rename(`${dir}-away`, dir);
    assert.deepEqual(checkRoot(dir, id), { kind: "ok" }, "moved back");

    await Deno.rename(join(dir, ".filesync"), join(dir, "state-away"));
    assert.match(JSON.stringify(checkRoot(dir, id)), /replaced.*state folder vanished/);
    await Deno.mkdir(join(dir, ".filesync"));
    assert.match(JSON.stringify(checkRoot(dir, id)), /replaced.*state folder was replaced/);
  });
});
