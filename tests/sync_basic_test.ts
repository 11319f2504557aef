// End-to-end: files and folders created, edited, deleted and moved on one device reach the other.
import assert from "node:assert/strict";
import { randomBytes, readTree, waitForFile, waitForGone, waitForSameTree, World } from "./harness.ts";

Deno.test("files of every kind created on A appear on B, and B's on A", async () => {
  await using world = await World.create();
  await world.client("A");
  await world.client("B");
  const a = world.dir("A");
  const b = world.dir("B");
  await Deno.writeTextFile(`${a}/hello.txt`, "hello\n");
  await Deno.writeFile(`${a}/empty`, new Uint8Array());
  await Deno.mkdir(`${a}/nested/deeper/deepest`, { recursive: true });
  await Deno.writeFile(`${a}/nested/deeper/binary.bin`, randomBytes(3 * 1024 * 1024 + 17, 7));
  await Deno.writeTextFile(`${a}/naïve 日本語 🎉.txt`, "unicode");
  await Deno.mkdir(`${a}/empty folder`);
  await Deno.writeTextFile(`${b}/from-b.txt`, "made on B");
  await waitForSameTree(a, b);
  const tree = await readTree(b);
  assert.equal(tree.get("empty folder"), "dir");
  assert.equal(tree.get("nested/deeper/deepest"), "dir");
  assert.ok(tree.has("naïve 日本語 🎉.txt"));
  assert.equal(await Deno.readTextFile(`${a}/from-b.txt`), "made on B");
  assert.equal((await Deno.stat(`${b}/empty`)).size, 0);
});

Deno.test("edits, deletes of non-empty folders and renames propagate both ways", async () => {
  await using world = await World.create();
  await world.client("A");
  await world.client("B");
  const a = world.dir("A");
  const b = world.dir("B");
  await Deno.mkdir(`${a}/docs/old`, { recursive: true });
  await Deno.writeTextFile(`${a}/docs/old/one.txt`, "one");
  await Deno.writeTextFile(`${a}/docs/two.txt`, "two");
  await Deno.writeTextFile(`${a}/edit.txt`, "version 1");
  await waitForSameTree(a, b);

  await Deno.writeTextFile(`${b}/edit.txt`, "version 2, longer");
  await waitForFile(`${a}/edit.txt`, "version 2, longer");

  await Deno.rename(`${a}/docs/two.txt`, `${a}/docs/renamed.txt`);
  await waitForFile(`${b}/docs/renamed.txt`, "two");
  await waitForGone(`${b}/docs/two.txt`);

  await Deno.remove(`${b}/docs/old`, { recursive: true });
  await waitForGone(`${a}/docs/old`);
  await waitForSameTree(a, b);
});

Deno.test("a stopped device catches up on start, and a server restart is survived", async () => {
  await using world = await World.create();
  const clientB = await world.client("B");
  await world.client("A");
  const a = world.dir("A");
  const b = world.dir("B");
  await Deno.writeTextFile(`${a}/before.txt`, "before");
  await waitForFile(`${b}/before.txt`, "before");
  await clientB.stop();
  await Deno.writeTextFile(`${a}/while-b-was-away.txt`, "missed");
  await Deno.remove(`${a}/before.txt`);
  await world.client("B");
  await waitForSameTree(a, b);

  await world.restartServer();
  await Deno.writeTextFile(`${a}/after-restart.txt`, "still syncing");
  await waitForFile(`${b}/after-restart.txt`, "still syncing", 20_000);
});
