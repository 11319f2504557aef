// End-to-end tests of a server restored from a backup while devices run: nothing they have may be lost.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  describeTree,
  readTree,
  readTreeWhileChanging,
  run,
  startServer,
  waitFor,
  waitForFile,
  waitForSameTree,
  World,
} from "./harness.ts";

const sha = (text: string) => createHash("sha256").update(text).digest("hex");

/** Copies a folder's regular files and folders (a stopped server's data folder: KV, chunks, certificates). */
async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const entry of Deno.readDir(from)) {
    if (entry.isDirectory) await copyTree(join(from, entry.name), join(to, entry.name));
    else if (entry.isFile) await Deno.copyFile(join(from, entry.name), join(to, entry.name));
  }
}

/** Stops the server, replaces its data folder with `backup`, and starts it again on the same port. */
async function restoreBackup(world: World, backup: string): Promise<void> {
  const { dataDir, port } = world.server;
  await world.server.stop();
  await Deno.remove(dataDir, { recursive: true });
  await copyTree(backup, dataDir);
  world.server = await startServer(dataDir, [], port);
}

/** Stops the server, copies its data folder to `backup`, and starts it again on the same port. */
async function takeBackup(world: World, backup: string): Promise<void> {
  const { dataDir, port } = world.server;
  await world.server.stop();
  await copyTree(dataDir, backup);
  world.server = await startServer(dataDir, [], port);
}

/** Writes a file in a device's folder (creating its parents). */
async function write(world: World, device: string, path: string, content: string): Promise<void> {
  await Deno.mkdir(join(world.dir(device), path, ".."), { recursive: true });
  await Deno.writeTextFile(join(world.dir(device), path), content);
}

/** Asserts that every content is in the tree: at its path, or (`copies`) at least as a conflicted copy of it. */
function assertKept(
  tree: Map<string, string>,
  wanted: { path: string; content: string; copyAllowed?: boolean }[],
  what: string,
): void {
  for (const { path, content, copyAllowed } of wanted) {
    const hash = sha(content);
    if (tree.get(path) === hash) continue;
    const stem = path.replace(/\.[^./]*$/, "");
    const copy = [...tree].find(([p, h]) => h === hash && p.startsWith(`${stem} (conflicted copy from `));
    assert.ok(
      copyAllowed && copy,
      `${what}: "${content}" lost (expected at ${path}):\n${describeTree(tree)}`,
    );
  }
}

Deno.test("a server restored from a backup gets back what the devices made after the backup", async () => {
  await using world = await World.create();
  await world.client("A");
  await world.client("B");
  await write(world, "A", "old.txt", "from before the backup");
  await write(world, "A", "edit.txt", "version 1");
  await write(world, "A", "docs/kept.txt", "kept");
  await waitForSameTree(world.dir("A"), world.dir("B"));
  await waitForFile(join(world.dir("B"), "edit.txt"), "version 1");

  const backup = world.tmp.join("backup");
  await takeBackup(world, backup);
  // After the backup: new files and a new folder on A, an edit on B.
  await waitFor(() => world.procs.every((p) => (p.output.match(/connected to /g) ?? []).length >= 2));
  await write(world, "A", "new.txt", "made after the backup");
  await write(world, "A", "newdir/inner.txt", "inner, after the backup");
  await Deno.mkdir(join(world.dir("A"), "emptydir"));
  await write(world, "B", "edit.txt", "version 2, after the backup");
  await waitForFile(join(world.dir("B"), "newdir/inner.txt"), "inner, after the backup");
  await waitForFile(join(world.dir("A"), "edit.txt"), "version 2, after the backup");
  await waitForSameTree(world.dir("A"), world.dir("B"));

  await restoreBackup(world, backup);
  for (const proc of world.procs) await proc.waitForOutput(/resynchronizing/, 20_000);
  const wanted = [
    { path: "old.txt", content: "from before the backup" },
    { path: "docs/kept.txt", content: "kept" },
    { path: "new.txt", content: "made after the backup" },
    { path: "newdir/inner.txt", content: "inner, after the backup" },
    { path: "edit.txt", content: "version 2, after the backup", copyAllowed: true },
  ];
  // A device that joins now sees what the server has: everything the devices had.
  const c = await world.client("C");
  await waitForSameTree(world.dir("A"), world.dir("C"), 30_000);
  await waitForSameTree(world.dir("A"), world.dir("B"), 30_000);
  for (const device of ["A", "B", "C"]) {
    const tree = await readTree(world.dir(device));
    assertKept(tree, wanted, device);
    assert.equal(tree.get("emptydir"), "dir", `${device}: emptydir lost:\n${describeTree(tree)}`);
  }
  assert.doesNotMatch(c.output, /resynchronizing/);
  for (const proc of world.procs) assert.doesNotMatch(proc.output, /deleted (new|newdir|emptydir)/);
});

Deno.test("devices notice a restored server that received more commits than their cursor", async () => {
  await using world = await World.create();
  const a = await world.client("A");
  await write(world, "A", "edit.txt", "version 1");
  await write(world, "A", "base.txt", "base");
  await waitFor(async () => (await readTreeWhileChanging(world.dir("A")))?.size === 2);
  await waitFor(() =>
    /upload edit\.txt/.test(world.server.output) && /upload base\.txt/.test(world.server.output)
  );

  const backup = world.tmp.join("backup");
  await takeBackup(world, backup);
  await a.waitForOutput(/connected to [^\n]*\n[^]*connected to /);
  await write(world, "A", "after.txt", "after the backup");
  await write(world, "A", "edit.txt", "version 2 from A");
  await waitFor(() =>
    /upload after\.txt/.test(world.server.output) && /upload edit\.txt/.test(world.server.output)
  );
  await a.stop();

  // The restored server gets more commits from another device than A's cursor holds, A being offline.
  await restoreBackup(world, backup);
  const c = await world.client("C");
  await waitForFile(join(world.dir("C"), "edit.txt"), "version 1");
  for (let i = 0; i < 12; i++) await write(world, "C", `c/${i}.txt`, `file ${i} from C`);
  await write(world, "C", "edit.txt", "version 3 from C");
  await waitFor(() =>
    /upload c\/11\.txt/.test(world.server.output) && /upload edit\.txt/.test(world.server.output)
  );

  const again = world.startClient("A");
  await again.waitForOutput(/another history|resynchronizing/, 20_000);
  await waitForSameTree(world.dir("A"), world.dir("C"), 30_000);
  const tree = await readTree(world.dir("A"));
  assertKept(tree, [
    { path: "base.txt", content: "base" },
    { path: "after.txt", content: "after the backup" },
    { path: "c/11.txt", content: "file 11 from C" },
    { path: "edit.txt", content: "version 2 from A", copyAllowed: true },
    { path: "edit.txt", content: "version 3 from C", copyAllowed: true },
  ], "A");
  assert.doesNotMatch(c.output, /resynchronizing/);
});

Deno.test("a device whose cursor was compacted away catches up from a snapshot: nothing lost, nothing doubled", async () => {
  await using world = await World.create();
  await world.client("A");
  const b = await world.client("B");
  for (const name of ["stays", "deleted", "edited"]) await write(world, "A", `${name}.txt`, `${name} v1`);
  await waitForSameTree(world.dir("A"), world.dir("B"));
  await b.stop();
  // While B is offline: changes on A (a delete, an edit, a new file) and an unsynced change on B.
  await Deno.remove(join(world.dir("A"), "deleted.txt"));
  await write(world, "A", "edited.txt", "edited v2 on A");
  await write(world, "A", "new-on-a.txt", "new on A");
  await write(world, "B", "new-on-b.txt", "new on B, offline");
  await waitFor(() =>
    /upload new-on-a\.txt/.test(world.server.output) && /delete deleted\.txt/.test(world.server.output)
  );
  await waitFor(() => /upload edited\.txt/.test(world.server.output));

  // A collection marks the journal; 31 days later (the server's test clock) the next one compacts it.
  const gc = async () => {
    const { code, output } = await run(["gc", "--data", world.server.dataDir]);
    assert.equal(code, 0, output);
    return output;
  };
  await gc();
  const { dataDir, port } = world.server;
  await world.server.stop();
  world.server = await startServer(dataDir, [], port, {
    FILESYNC_TEST_CLOCK_OFFSET_MS: String(31 * 24 * 3600 * 1000),
  });
  assert.match(await gc(), /[1-9]\d* journal entries/);

  const again = world.startClient("B");
  await again.waitForOutput(/no longer keeps the journal/, 20_000);
  await waitForFile(join(world.dir("A"), "new-on-b.txt"), "new on B, offline");
  await waitForSameTree(world.dir("A"), world.dir("B"), 30_000);
  const tree = await readTree(world.dir("B"));
  assert.deepEqual([...tree.keys()].sort(), ["edited.txt", "new-on-a.txt", "new-on-b.txt", "stays.txt"]);
  assert.equal(tree.get("edited.txt"), sha("edited v2 on A"));
  // A, whose cursor is at the compaction point or later, was not disturbed.
  const a = world.procs.find((p) => p.name === "client A")!;
  assert.doesNotMatch(a.output, /no longer keeps the journal|resynchronizing/);
});
