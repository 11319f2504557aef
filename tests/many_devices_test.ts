// Many devices of one user starting at once (a new office, a restored backup): every one logs in and syncs.
import assert from "node:assert/strict";
import { waitForFile, World } from "./harness.ts";

Deno.test("8 devices of one user logging in with the password at the same moment all connect and sync", async () => {
  await using world = await World.create();
  const devices = Array.from({ length: 8 }, (_, i) => `D${i}`);
  // All LOGINs come from one address while none has been answered: none of them is a failure.
  const clients = await Promise.all(devices.map((d) => world.client(d)));
  assert.equal(clients.length, 8);
  await Deno.writeTextFile(world.tmp.join("D0", "hello.txt"), "from D0");
  for (const d of devices.slice(1)) await waitForFile(world.tmp.join(d, "hello.txt"), "from D0");
});
