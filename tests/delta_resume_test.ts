// End-to-end: only changed chunks travel, and transfers cut short resume without resending what arrived.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  chunkBytes,
  partialBytes,
  randomBytes,
  readTree,
  transferredBytes,
  waitFor,
  waitForFile,
  World,
} from "./harness.ts";

const MiB = 1024 * 1024;
/** Largest chunk: a few of them is what an edit may cost. */
const MAX_CHUNK = 256 * 1024;

Deno.test("an edit in the middle and an insert at the front of a large file send only a chunk or two", async () => {
  await using world = await World.create();
  const clientA = await world.client("A");
  const clientB = await world.client("B");
  const a = join(world.dir("A"), "big.bin");
  const b = join(world.dir("B"), "big.bin");
  const data = randomBytes(8 * MiB, 11);
  await Deno.writeFile(a, data);
  await waitForFile(b, data, 30_000);
  assert.ok(await transferredBytes(clientA, "uploaded", "big.bin", 0) >= 8 * MiB - 1024);
  // B logs a download after its rename and folder fsync: the line must be out before the mark, or it counts
  // as part of the edit's.
  await transferredBytes(clientB, "downloaded", "big.bin", 0);

  let [markA, markB] = [clientA.output.length, clientB.output.length];
  data.set(randomBytes(4096, 12), 4 * MiB);
  await Deno.writeFile(a, data);
  await waitForFile(b, data, 30_000);
  const sent = await transferredBytes(clientA, "uploaded", "big.bin", markA);
  const received = await transferredBytes(clientB, "downloaded", "big.bin", markB);
  assert.ok(sent <= 3 * MAX_CHUNK, `an edit of 4 KiB sent ${sent} bytes`);
  assert.ok(received <= 3 * MAX_CHUNK, `an edit of 4 KiB made B receive ${received} bytes`);

  [markA, markB] = [clientA.output.length, clientB.output.length];
  const inserted = new Uint8Array(data.length + 10);
  inserted.set(new TextEncoder().encode("0123456789"));
  inserted.set(data, 10);
  await Deno.writeFile(a, inserted);
  await waitForFile(b, inserted, 30_000);
  const sentInsert = await transferredBytes(clientA, "uploaded", "big.bin", markA);
  const receivedInsert = await transferredBytes(clientB, "downloaded", "big.bin", markB);
  assert.ok(sentInsert <= 3 * MAX_CHUNK, `10 bytes inserted at the front sent ${sentInsert} bytes`);
  assert.ok(
    receivedInsert <= 3 * MAX_CHUNK,
    `10 bytes inserted at the front made B receive ${receivedInsert}:\n${clientA.output.slice(markA)}\n${
      clientB.output.slice(markB)
    }`,
  );
});

Deno.test("a new file made of chunks B already has locally is built from them, not downloaded", async () => {
  await using world = await World.create();
  await world.client("A");
  const clientB = await world.client("B");
  const data = randomBytes(4 * MiB, 21);
  await Deno.writeFile(join(world.dir("A"), "original.bin"), data);
  await waitForFile(join(world.dir("B"), "original.bin"), data, 30_000);
  const mark = clientB.output.length;
  await Deno.writeFile(join(world.dir("A"), "copy.bin"), data);
  await waitForFile(join(world.dir("B"), "copy.bin"), data, 30_000);
  const received = await transferredBytes(clientB, "downloaded", "copy.bin", mark);
  assert.equal(received, 0, "a copy of a file B has should need no chunk from the server");
});

Deno.test("an upload cut short by killing the client resumes without resending the chunks that arrived", async () => {
  await using world = await World.create();
  const dirA = world.dir("A");
  await Deno.mkdir(dirA, { recursive: true });
  const data = randomBytes(48 * MiB, 31);
  await Deno.writeFile(join(dirA, "large.bin"), data);
  const first = world.startClient("A");
  try {
    // Kill it once part of the file's chunks are on the server.
    await waitFor(async () => (await chunkBytes(world.server.dataDir)) > 8 * MiB, { timeoutMs: 60_000 });
    first.kill("SIGKILL");
    await first.exited();
  } finally {
    await first.stop();
  }
  const arrived = await chunkBytes(world.server.dataDir);
  assert.ok(arrived < data.length, "the upload was cut short before the whole file arrived");
  const again = await world.client("A");
  const sent = await transferredBytes(again, "uploaded", "large.bin", 0);
  assert.ok(
    sent <= data.length - arrived + 2 * MAX_CHUNK,
    `resumed upload sent ${sent} bytes of ${data.length}`,
  );
  const clientB = await world.client("B");
  await waitForFile(join(world.dir("B"), "large.bin"), data, 60_000);
  await clientB.waitForOutput(/downloaded large\.bin/);
});

Deno.test("a download cut short by killing the client resumes, and no partial file appears in the folder", async () => {
  await using world = await World.create();
  await world.client("A");
  const data = randomBytes(48 * MiB, 41);
  await Deno.writeFile(join(world.dir("A"), "large.bin"), data);
  // Wait until the server has the file, then let B start downloading it.
  await waitFor(async () => (await chunkBytes(world.server.dataDir)) >= data.length, { timeoutMs: 60_000 });
  await waitFor(() => /upload large\.bin/.test(world.server.output), { timeoutMs: 60_000 });
  const dirB = world.dir("B");
  const first = world.startClient("B");
  let partial = 0;
  try {
    await waitFor(async () => {
      partial = await partialBytes(dirB);
      // The synced folder never holds an incomplete large.bin.
      const tree = await readTree(dirB).catch(() => new Map());
      assert.ok(!tree.has("large.bin"), "the file appeared before its download was complete");
      return partial > 8 * MiB;
    }, { timeoutMs: 60_000, intervalMs: 5 });
    first.kill("SIGKILL");
    await first.exited();
  } finally {
    await first.stop();
  }
  partial = await partialBytes(dirB);
  assert.ok(partial > 0 && partial < data.length, `partial download of ${partial} bytes`);
  const again = await world.client("B");
  await waitForFile(join(dirB, "large.bin"), data, 60_000);
  const received = await transferredBytes(again, "downloaded", "large.bin", 0);
  assert.ok(
    received <= data.length - partial + 2 * MAX_CHUNK,
    `resumed download received ${received} bytes, ${partial} were already there`,
  );
  assert.equal(await partialBytes(dirB), 0, "the temp file is gone after the download");
});

Deno.test("two new files with the same content download at once, both on the first try", async () => {
  await using world = await World.create();
  const clientA = await world.client("A");
  const data = randomBytes(900 * 1024, 51); // about a dozen chunks
  await Deno.mkdir(join(world.dir("A"), "x"));
  await Deno.mkdir(join(world.dir("A"), "y"));
  await Deno.writeFile(join(world.dir("A"), "x/a.bin"), data);
  await Deno.writeFile(join(world.dir("A"), "y/b.bin"), data);
  await transferredBytes(clientA, "uploaded", "x/a.bin");
  await transferredBytes(clientA, "uploaded", "y/b.bin");
  // B starts with both on the server: its first plan downloads them side by side.
  const clientB = await world.client("B");
  await waitForFile(join(world.dir("B"), "x/a.bin"), data);
  await waitForFile(join(world.dir("B"), "y/b.bin"), data);
  // The client logs a download after its rename into place: wait for both lines, not just the files.
  await clientB.waitForOutput(/downloaded (x\/a|y\/b)\.bin[\s\S]*downloaded (x\/a|y\/b)\.bin/);
  const output = clientB.output;
  assert.doesNotMatch(output, /could not/, output);
  assert.equal([...output.matchAll(/downloaded (x\/a|y\/b)\.bin/g)].length, 2, output);
  assert.equal(await partialBytes(world.dir("B")), 0, "a temp file was left behind");
});
