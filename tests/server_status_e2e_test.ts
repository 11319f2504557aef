// End-to-end test of `filesync server status`: a running server's devices, counters and chunk store size.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ServerStatus } from "../server/server_stats.ts";
import { run, TempDir, waitFor, World } from "./harness.ts";

Deno.test("server status shows the connected device, commits, bytes and the chunk store; one line without a server", async () => {
  await using world = await World.create();
  const laptop = await world.client("laptop");
  await Deno.writeTextFile(join(world.dir("laptop"), "a.txt"), "some content for the chunk store");
  await waitFor(() => /alice@laptop: upload a\.txt/.test(world.server.output), {
    message: () => `no upload:\n${world.server.output}\n${laptop.output}`,
  });

  const json = await run(["server", "status", "--data", world.server.dataDir, "--json"]);
  assert.equal(json.code, 0, json.output);
  const status = JSON.parse(json.output) as ServerStatus;
  assert.deepEqual(status.devices.map((d) => [d.user, d.device]), [["alice", "laptop"]]);
  assert.match(status.devices[0].address, /^127\.0\.0\.1:\d+$/);
  assert.ok(status.devices[0].since <= status.now && status.startedAt <= status.devices[0].since);
  assert.ok(status.sessions >= 1 && status.connections >= 1, json.output);
  assert.ok(status.commits >= 1, json.output);
  assert.ok(status.uploadedBytes > 0, json.output);
  assert.ok(status.chunkStore !== undefined && status.chunkStore.chunks > 0 && status.chunkStore.bytes > 0);

  const text = await run(["server", "status", "--data", world.server.dataDir]);
  assert.equal(text.code, 0, text.output);
  assert.match(text.output, /^server up \d+ s \(since /);
  assert.match(
    text.output,
    /\nalice: 1 device connected\n {2}laptop \([0-9a-f]+\) from 127\.0\.0\.1:\d+, connected since /,
  );
  assert.match(text.output, /since start: [1-9]\d* changes? committed, [1-9][\d.]* (B|KiB) uploaded/);

  await using empty = new TempDir();
  const none = await run(["server", "status", "--data", empty.path]);
  assert.equal(none.code, 1);
  assert.equal(
    none.output.trim(),
    `filesync: No server is running with data folder "${empty.path}" ` +
      `(nothing answers on ${join(empty.path, "admin", "admin.sock")})`,
  );
});
