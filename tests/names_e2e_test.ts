// Names some platform cannot hold stay on the device that has them, never reach the server, and are named once.
import assert from "node:assert/strict";
import { join } from "node:path";
import { readTree, waitFor, waitForFile, World } from "./harness.ts";

const UNPORTABLE = [
  "CON",
  "aux.txt",
  "a*?<>|b",
  "trailing dot.",
  "trailing space ",
  "evil\u202etxt.exe",
  "line\u2028break.txt",
  "\ufeffbom.txt",
];

Deno.test("files with names other devices could not hold stay here unsynced, said once; others sync", async () => {
  await using world = await World.create();
  const a = world.dir("a");
  Deno.mkdirSync(join(a, "nul"), { recursive: true });
  Deno.writeTextFileSync(join(a, "nul", "inside.txt"), "in a folder named nul");
  for (const name of UNPORTABLE) Deno.writeTextFileSync(join(a, name), `content of ${name}`);
  Deno.writeTextFileSync(join(a, "Readme.txt"), "mixed case");
  Deno.writeTextFileSync(join(a, "README.TXT"), "upper case");
  Deno.writeTextFileSync(join(a, "normal.txt"), "normal");
  const clientA = await world.client("a");
  const b = world.dir("b");
  await world.client("b");
  await waitForFile(join(b, "normal.txt"), "normal", 30_000).catch((error) => {
    throw new Error(`${(error as Error).message}; a said:\n${clientA.output}`);
  });
  // Of the two names differing only in case, the first committed (README.TXT sorts first) syncs.
  await waitForFile(join(b, "README.TXT"), "upper case");
  await waitFor(
    () => /not syncing Readme\.txt: .*differs only in case from "README\.TXT"/.test(clientA.output),
    {
      message: () => `no case-clash line; a said:\n${clientA.output}`,
    },
  );
  // Watch a few full rescans (every 2 s) go by, then sync one more file: nothing is said twice.
  const since = Date.now();
  await waitFor(() => Date.now() - since > 5000, { timeoutMs: 10_000 });
  Deno.writeTextFileSync(join(a, "later.txt"), "later");
  await waitForFile(join(b, "later.txt"), "later");

  const tree = await readTree(b);
  assert.deepEqual(
    [...tree.keys()].sort(),
    ["README.TXT", "later.txt", "normal.txt"],
    `b holds only portable names`,
  );
  for (const name of [...UNPORTABLE, "nul", "Readme.txt"]) {
    const said = clientA.output.split("\n").filter((line) => line.includes(`not syncing ${name}:`));
    assert.equal(said.length, 1, `"${name}" said ${said.length} times:\n${clientA.output}`);
  }
  // Everything is still on device a, untouched.
  for (const name of UNPORTABLE) assert.equal(Deno.readTextFileSync(join(a, name)), `content of ${name}`);
  assert.equal(Deno.readTextFileSync(join(a, "Readme.txt")), "mixed case");
  assert.equal(Deno.readTextFileSync(join(a, "nul", "inside.txt")), "in a folder named nul");
});
