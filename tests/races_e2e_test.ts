// Two devices change the same path at the same moment (found by the soak run): they must still converge.
import assert from "node:assert/strict";
import { join } from "node:path";
import { waitForFile, waitForSameTree, World } from "./harness.ts";

Deno.test("two devices renaming one file to two names at once converge on the same folder (soak seed 7)", async () => {
  await using world = await World.create();
  await world.client("A");
  await world.client("B");
  const [a, b] = [world.dir("A"), world.dir("B")];
  await Deno.writeTextFile(join(a, "f.txt"), "renamed twice");
  await waitForFile(join(b, "f.txt"), "renamed twice");
  await Promise.all([
    Deno.rename(join(a, "f.txt"), join(a, "r.txt")),
    Deno.rename(join(b, "f.txt"), join(b, "o.txt")),
  ]);
  await waitForSameTree(a, b, 30_000);
  // Neither rename is lost: the file is under both new names on both devices, and the old name is gone.
  for (const dir of [a, b]) {
    assert.equal(await Deno.readTextFile(join(dir, "r.txt")), "renamed twice");
    assert.equal(await Deno.readTextFile(join(dir, "o.txt")), "renamed twice");
    await assert.rejects(Deno.lstat(join(dir, "f.txt")), Deno.errors.NotFound);
  }
});
