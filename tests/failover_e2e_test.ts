// End-to-end test of a client with several servers: node certificates from one CA, and the move to the next
// node when the one in use is killed.
import assert from "node:assert/strict";
import { addUser, Proc, run, startServer, TempDir, waitFor } from "./harness.ts";

const USER = "alice";
const PASSWORD = "correct horse battery";

Deno.test("a client with two servers moves to the second when the first is killed, losing nothing", async () => {
  await using tmp = new TempDir();
  await using node1 = await startServer(tmp.join("node1"));
  // Node 2's certificate is signed by node 1's CA: the client trusts that one CA for both.
  const signed = await run([
    "server",
    "cert",
    "--data",
    node1.dataDir,
    "--name",
    "node2.test",
    "--out",
    tmp.join("node2"),
  ]);
  assert.equal(signed.code, 0, signed.output);
  assert.match(signed.output, /start the node with: --cert /);
  if (Deno.build.os !== "windows") {
    assert.equal((await Deno.stat(tmp.join("node2-key.pem"))).mode! & 0o777, 0o600);
  }
  // Each node has its own data folder for now (one shared metadata store comes with PostgreSQL): to the client
  // node 2 is a server with another journal (another epoch).
  await using node2 = await startServer(tmp.join("node2-data"), [
    "--cert",
    tmp.join("node2.pem"),
    "--key",
    tmp.join("node2-key.pem"),
  ]);
  assert.match(node2.output, /using certificate .*node2\.pem/);
  await Promise.all([addUser(node1.dataDir, USER, PASSWORD), addUser(node2.dataDir, USER, PASSWORD)]);

  // The two servers as a list in the folder's config file.
  const dir = tmp.join("laptop");
  await Deno.mkdir(`${dir}/.filesync`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/.filesync/config.json`,
    JSON.stringify({ server: [node1.address, node2.address], ca: node1.caPath, user: USER, rescan: 2 }),
  );
  await using client = new Proc("client laptop", ["client", "--dir", dir, "--device", "laptop"], {
    env: { FILESYNC_PASSWORD: PASSWORD },
  });
  await client.waitForOutput(new RegExp(`connected to ${node1.address}`));
  assert.match(client.output, new RegExp(`syncing ${dir} with ${node1.address}, ${node2.address} as alice`));
  await Deno.writeTextFile(`${dir}/a.txt`, "before the crash");
  const versions = (path: string) => run(["versions", path, "--dir", dir]);
  // The folder's commands reach its servers too: a.txt is on node 1 now.
  await waitFor(async () => (await versions("a.txt")).code === 0, {
    timeoutMs: 15_000,
    intervalMs: 200,
    message: () => `a.txt never reached node 1:\n${client.output}`,
  });

  node1.kill("SIGKILL");
  await node1.exited();
  await Deno.writeTextFile(`${dir}/b.txt`, "while moving");
  await client.waitForOutput(new RegExp(`connected to ${node2.address}`));
  assert.match(client.output, /disconnected from server/);
  // Another journal: the device resynchronises, and uploads what node 2 lacks instead of deleting it here.
  assert.match(client.output, /the server's journal is a different one/);
  // node 1 is down: `filesync versions` takes the next server of the folder's list.
  await waitFor(async () => (await versions("a.txt")).code === 0 && (await versions("b.txt")).code === 0, {
    timeoutMs: 15_000,
    intervalMs: 200,
    message: () => `a.txt and b.txt never reached node 2:\n${client.output}`,
  });
  assert.equal(await Deno.readTextFile(`${dir}/a.txt`), "before the crash");
  assert.equal(await Deno.readTextFile(`${dir}/b.txt`), "while moving");
  const device = JSON.parse(await Deno.readTextFile(`${dir}/.filesync/device.json`));
  assert.deepEqual(device.servers, [node1.address, node2.address]);
  // Nothing doubled either: no conflicted copy, and no upload refused for chunks node 2 never had.
  const names = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  assert.deepEqual(names.sort(), [".filesync", "a.txt", "b.txt"]);
  assert.doesNotMatch(client.output, /refused/);

  // Started again with one --server, which replaces the file's list: the folder now names that one alone, and
  // carries on with node 2's journal (no resync).
  assert.equal(await client.stop(), 0);
  await using again = new Proc("client laptop", [
    "client",
    "--dir",
    dir,
    "--device",
    "laptop",
    "--server",
    node2.address,
  ], {
    env: { FILESYNC_PASSWORD: PASSWORD },
  });
  await again.waitForOutput(new RegExp(`connected to ${node2.address}`));
  assert.match(
    again.output,
    new RegExp(
      `note: this folder was last synced with ${node1.address}, ${node2.address}; now using ${node2.address}`,
    ),
  );
  assert.doesNotMatch(again.output, /resynchroniz/);
  const updated = JSON.parse(await Deno.readTextFile(`${dir}/.filesync/device.json`));
  assert.deepEqual([updated.server, updated.servers], [node2.address, undefined]);
});
