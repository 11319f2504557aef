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

Deno.test("files written, closed and then chmod'ed or touched reach B without waiting out the open-write hold", async () => {
  await using world = await World.create();
  await world.client("A");
  await world.client("B");
  const a = world.dir("A");
  const b = world.dir("B");
  await Deno.writeTextFile(`${a}/ready.txt`, "ready");
  await waitForFile(`${b}/ready.txt`, "ready");
  // The watcher holds a file written to and not closed for up to a second: a metadata change after the close
  // (as git checkout and builds do) is not such a write, so these arrive well before that second is over.
  for (const change of ["chmod", "touch"] as const) {
    const names = Array.from({ length: 10 }, (_, i) => `${change}-${i}.txt`);
    for (const name of names) Deno.writeTextFileSync(`${a}/${name}`, `${change} ${name}`);
    for (const name of names) {
      if (change === "chmod") Deno.chmodSync(`${a}/${name}`, 0o755);
      else Deno.utimeSync(`${a}/${name}`, new Date(), new Date());
    }
    const changedAt = Date.now();
    await Promise.all(names.map((name) => waitForFile(`${b}/${name}`, `${change} ${name}`)));
    const took = Date.now() - changedAt;
    assert.ok(took < 800, `10 files written then ${change}'ed took ${took} ms to reach B`);
  }
});

Deno.test("a file still open for writing is held back until its writer closes it", async () => {
  await using world = await World.create();
  await world.client("A");
  await world.client("B");
  const a = world.dir("A");
  const b = world.dir("B");
  const file = await Deno.open(`${a}/open.log`, { create: true, write: true });
  const line = new TextEncoder().encode("a line of a log still being written\n");
  let lines = 0;
  try {
    await file.write(line);
    lines++;
    // A file written and closed meanwhile goes through; the open one keeps being written and waits.
    await Deno.writeTextFile(`${a}/closed.txt`, "closed");
    let arrived = false;
    const other = waitForFile(`${b}/closed.txt`, "closed").then(() => arrived = true);
    while (!arrived) {
      await file.write(line);
      lines++;
      await Promise.race([other, new Promise((resolve) => setTimeout(resolve, 50))]);
    }
    await assert.rejects(Deno.lstat(`${b}/open.log`), Deno.errors.NotFound, "a file still open was synced");
  } finally {
    file.close();
  }
  await waitForFile(`${b}/open.log`, new TextEncoder().encode(new TextDecoder().decode(line).repeat(lines)));
});
