// End-to-end: a symbolic link named like a synced folder is never written through and never read as a delete.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  describeTree,
  type Proc,
  readTree,
  waitFor,
  waitForFile,
  waitForSameTree,
  World,
} from "./harness.ts";

/** How many times `pattern` occurs in `text`. */
function count(text: string, pattern: RegExp): number {
  return [...text.matchAll(new RegExp(pattern.source, "g"))].length;
}

/** Waits until `proc` has started `n` more full-scan cycles after output offset `from` (needs FILESYNC_TRACE). */
async function waitForFullScans(proc: Proc, from: number, n: number): Promise<void> {
  await waitFor(() => count(proc.output.slice(from), /cycle start .*full=true/) >= n, {
    timeoutMs: 30_000,
    message: () => `${proc.name} ran fewer than ${n} full scans:\n${proc.output.slice(from)}`,
  });
}

/** The names in a folder outside the synced folders, with their content. */
async function contentsOf(dir: string): Promise<string> {
  return describeTree(await readTree(dir));
}

const TRACE = { env: { FILESYNC_TRACE: "1" } };

Deno.test("a folder replaced by a symbolic link is neither written through nor deleted anywhere", async () => {
  await using world = await World.create();
  const a = world.dir("A");
  const b = world.dir("B");
  const clientA = await world.client("A", TRACE);
  const clientB = await world.client("B");
  await Deno.mkdir(join(a, "docs"));
  await Deno.writeTextFile(join(a, "docs/a.txt"), "a, first");
  await Deno.writeTextFile(join(a, "docs/b.txt"), "b, first");
  await Deno.writeTextFile(join(a, "top.txt"), "top");
  await waitForFile(join(b, "docs/b.txt"), "b, first");
  await waitForFile(join(b, "docs/a.txt"), "a, first");
  await waitForSameTree(a, b);

  // On A, docs becomes a link to a folder outside every synced folder.
  const elsewhere = world.tmp.join("elsewhere");
  await Deno.mkdir(elsewhere);
  await Deno.writeTextFile(join(elsewhere, "mine.txt"), "not to be synced");
  const outsideBefore = await contentsOf(elsewhere);
  const [markA, markB, markServer] = [
    clientA.output.length,
    clientB.output.length,
    world.server.output.length,
  ];
  await Deno.remove(join(a, "docs"), { recursive: true });
  await Deno.symlink(elsewhere, join(a, "docs"));
  await clientA.waitForOutput(/not syncing docs: it is a symbolic link/);

  // Remote changes below the link wait on A; they reach B and the server as usual.
  await Deno.writeTextFile(join(b, "docs/a.txt"), "a, edited on B");
  await Deno.writeTextFile(join(b, "docs/c.txt"), "c, new on B");
  await waitFor(() => /uploaded docs\/a\.txt/.test(clientB.output.slice(markB)));
  await waitFor(() => /uploaded docs\/c\.txt/.test(clientB.output.slice(markB)));
  await Deno.writeTextFile(join(a, "after.txt"), "A still syncs the rest");
  await waitForFile(join(b, "after.txt"), "A still syncs the rest");
  await waitForFullScans(clientA, clientA.output.length, 3);

  assert.equal(await contentsOf(elsewhere), outsideBefore, "something was written through the link");
  const outputA = clientA.output.slice(markA);
  assert.equal(count(outputA, /^(deleted|uploaded|downloaded|moved|conflict).*docs/m), 0, outputA);
  assert.equal(count(outputA, /not syncing docs: it is a symbolic link/), 1, outputA);
  const outputB = clientB.output.slice(markB);
  assert.equal(count(outputB, /deleted|downloaded docs/), 0, outputB);
  const serverLines = world.server.output.slice(markServer);
  assert.equal(count(serverLines, /@A: .*docs/), 0, serverLines);
  const treeB = await readTree(b);
  assert.deepEqual(
    [...treeB.keys()].sort(),
    ["after.txt", "docs", "docs/a.txt", "docs/b.txt", "docs/c.txt", "top.txt"],
    describeTree(treeB),
  );
  assert.equal(await Deno.readTextFile(join(b, "docs/b.txt")), "b, first");

  // A new device gets what the server has: nothing below docs was deleted there.
  await world.client("C");
  await waitForSameTree(b, world.dir("C"));

  // Once the link is gone, A receives docs as the server has it.
  await Deno.remove(join(a, "docs"));
  await waitForFile(join(a, "docs/c.txt"), "c, new on B");
  await waitForSameTree(a, b);
  assert.equal(await Deno.readTextFile(join(a, "docs/a.txt")), "a, edited on B");
  assert.equal(await contentsOf(elsewhere), outsideBefore);
});

Deno.test("a new device whose folder holds a link named like a server folder writes nothing through it", async () => {
  await using world = await World.create();
  const a = world.dir("A");
  const clientA = await world.client("A");
  await Deno.mkdir(join(a, "docs/deep"), { recursive: true });
  await Deno.writeTextFile(join(a, "docs/a.txt"), "a");
  await Deno.writeTextFile(join(a, "docs/deep/b.txt"), "b");
  await Deno.writeTextFile(join(a, "top.txt"), "top");
  await waitFor(() => count(clientA.output, /uploaded /) >= 3);

  const d = world.dir("D");
  const elsewhere = world.tmp.join("elsewhere");
  await Deno.mkdir(elsewhere);
  await Deno.mkdir(d);
  await Deno.symlink(elsewhere, join(d, "docs"));
  const markA = clientA.output.length;
  const markServer = world.server.output.length;
  const clientD = await world.client("D", TRACE);
  await waitForFile(join(d, "top.txt"), "top");
  await clientD.waitForOutput(/not syncing docs: it is a symbolic link/);
  await waitForFullScans(clientD, 0, 3);

  assert.deepEqual([...(await readTree(elsewhere)).keys()], [], "something was written through the link");
  assert.equal(
    count(world.server.output.slice(markServer), /@D: /),
    0,
    world.server.output.slice(markServer),
  );
  assert.equal(count(clientA.output.slice(markA), /deleted/), 0, clientA.output.slice(markA));
  assert.deepEqual(
    [...(await readTree(a)).keys()].sort(),
    ["docs", "docs/a.txt", "docs/deep", "docs/deep/b.txt", "top.txt"],
  );
});
