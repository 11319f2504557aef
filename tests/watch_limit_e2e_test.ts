// End-to-end test of the inotify limit check: a client whose (fake) watch limit is too small for its folder says
// once how to raise it and keeps syncing.
import assert from "node:assert/strict";
import { join } from "node:path";
import { waitFor, waitForFile, World } from "./harness.ts";

Deno.test("a client with too small an inotify watch limit says once how to raise it and keeps syncing", async () => {
  await using world = await World.create();
  // A fake /proc holding only the limit: 3 watches for a folder of 5 folders (the machine's limit is not touched).
  const proc = world.tmp.join("proc");
  await Deno.mkdir(join(proc, "sys/fs/inotify"), { recursive: true });
  await Deno.writeTextFile(join(proc, "sys/fs/inotify/max_user_watches"), "3\n");
  const dir = world.dir("laptop");
  for (const sub of ["a/b", "c", "d"]) await Deno.mkdir(join(dir, sub), { recursive: true });
  const laptop = await world.client("laptop", { env: { FILESYNC_TEST_PROC_ROOT: proc } });
  await laptop.waitForOutput(/inotify watch limit too small \(.*\); changes are found by the scan every 2 s/);
  assert.match(
    laptop.output,
    /Raise the limit with: echo fs\.inotify\.max_user_watches=524288 \| sudo tee \/etc\/sysctl\.d\/90-filesync\.conf && sudo sysctl --system/,
  );
  await world.client("desktop");
  await Deno.writeTextFile(join(dir, "a/b/note.txt"), "still syncing");
  await waitForFile(join(world.dir("desktop"), "a/b/note.txt"), "still syncing");
  await waitFor(() => /upload a\/b\/note\.txt/.test(world.server.output));
  assert.equal(laptop.output.match(/inotify watch limit/g)?.length, 1, laptop.output);
});
