// Failures that must lose nothing: a full disk on either side, a server killed in the middle of a transfer.
import assert from "node:assert/strict";
import { join } from "node:path";
import { WINDOW_BYTES } from "../client/transfer.ts";
import { sha256Hex } from "../protocol/hash.ts";
import { memoryPipe, RpcError, RpcPeer } from "../protocol/rpc.ts";
import { LoginGuard } from "../server/auth.ts";
import { type ChunkStore, DiskChunkStore } from "../server/chunk_store.ts";
import { Hub } from "../server/hub.ts";
import { KvMetadataStore } from "../server/metadata_kv.ts";
import { runAdmin } from "../server/server.ts";
import { Session } from "../server/session.ts";
import {
  chunkBytes,
  partialBytes,
  randomBytes,
  readTree,
  TempDir,
  transferredBytes,
  waitFor,
  waitForFile,
  World,
} from "./harness.ts";

const MiB = 1024 * 1024;

/** A chunk store whose disk is full: every put fails as the operating system reports it. */
class FullDiskStore extends DiskChunkStore implements ChunkStore {
  override put(): Promise<void> {
    return Promise.reject(new Error("No space left on device (os error 28)"));
  }
}

Deno.test("a server whose disk is full refuses the upload with a clear no_space error and commits nothing", async () => {
  await using tmp = new TempDir();
  const store = await KvMetadataStore.open(tmp.join("kv"));
  const chunks = new FullDiskStore(tmp.join("chunks"));
  await chunks.open();
  const log: string[] = [];
  const [serverEnd, clientEnd] = memoryPipe();
  const session = new Session(serverEnd, "memory", {
    store,
    chunks,
    hub: new Hub(),
    logins: new LoginGuard(),
    log: (l) => log.push(l),
  });
  const peer = new RpcPeer(clientEnd);
  try {
    await runAdmin(store, { op: "user-add", name: "alice", password: "pw" });
    await peer.request("HELLO", { version: 1, agent: "test" });
    await peer.request("LOGIN", { user: "alice", password: "pw", device: "A" });
    const data = new TextEncoder().encode("will not fit");
    const error = await peer.request("PUT", { hash: sha256Hex(data) }, data).then(() => null, (e) => e);
    assert.ok(error instanceof RpcError);
    assert.equal(error.code, "no_space");
    assert.match(error.message, /out of disk space/);
    assert.ok(log.some((line) => /No space left/.test(line)), "the server log says why");
    const changes = await peer.request("CHANGES", { since: 0 });
    assert.deepEqual(changes.message.events, []);
    assert.equal(session.peer.isClosed, false, "the connection stays usable");
  } finally {
    peer.close();
    await peer.closed;
    store.close();
  }
});

Deno.test("a device whose disk is full keeps its files, says why, and finishes once there is room", async () => {
  await using world = await World.create();
  await world.client("A");
  // B's folder is a 3 MiB file system: the 4 MiB file cannot land there.
  const dirB = world.dir("B");
  await Deno.mkdir(dirB, { recursive: true });
  const mount = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=3m", "tmpfs", dirB] })
    .output();
  assert.equal(mount.code, 0, `cannot mount a small file system: ${new TextDecoder().decode(mount.stderr)}`);
  try {
    const clientB = await world.client("B");
    await Deno.writeTextFile(join(world.dir("A"), "small.txt"), "fits");
    await waitForFile(join(dirB, "small.txt"), "fits");
    const big = randomBytes(4 * MiB, 5);
    // Written beside the folder and renamed in: A never sees (and uploads) an empty or half-written big.bin,
    // whose earlier, smaller version would fit on B and rightly land there.
    const staged = world.tmp.join("big.bin.staged");
    await Deno.writeFile(staged, big);
    await Deno.rename(staged, join(world.dir("A"), "big.bin"));
    await clientB.waitForOutput(/could not download big\.bin: .*(No space|os error 28)/i, 30_000);
    const tree = await readTree(dirB);
    assert.equal(tree.has("big.bin"), false, "no partial big.bin in the folder");
    assert.equal(await Deno.readTextFile(join(dirB, "small.txt")), "fits", "other files are untouched");
    assert.equal(clientB.exitCode, null, "the client keeps running");
    // Make room: a bigger file system in place of the small one, then the next scan finishes the job.
    await clientB.stop();
    await umount(dirB);
    await world.client("B");
    await waitForFile(join(dirB, "big.bin"), big, 30_000);
  } finally {
    await umount(dirB);
  }
});

async function umount(dir: string): Promise<void> {
  await new Deno.Command("umount", { args: [dir], stderr: "null", stdout: "null" }).output();
}

Deno.test("an upload survives the server being killed in the middle, without resending what arrived", async () => {
  await using world = await World.create();
  const dirA = world.dir("A");
  await Deno.mkdir(dirA, { recursive: true });
  const data = randomBytes(48 * MiB, 51);
  await Deno.writeFile(join(dirA, "large.bin"), data);
  const clientA = world.startClient("A");
  try {
    await waitFor(async () => (await chunkBytes(world.server.dataDir)) > 12 * MiB, { timeoutMs: 60_000 });
    world.server.kill("SIGKILL");
    await world.server.exited();
    const arrived = await chunkBytes(world.server.dataDir);
    await world.restartServer();
    const sent = await transferredBytes(clientA, "uploaded", "large.bin", 0, 60_000);
    assert.ok(arrived < data.length, "the server was killed before the whole file arrived");
    // Chunks in flight when the server died may be on its disk without their reference having been made
    // durable; they are sent again. A client keeps at most WINDOW_BYTES of a file in flight, which bounds that.
    assert.ok(
      sent <= data.length - arrived + WINDOW_BYTES,
      `after the restart ${sent} bytes were sent although ${arrived} had arrived (at most ${WINDOW_BYTES} in flight)`,
    );
    await using clientB = await world.client("B");
    await waitForFile(join(world.dir("B"), "large.bin"), data, 60_000);
    assert.ok(clientB.output.includes("downloaded large.bin"));
  } finally {
    await clientA.stop();
  }
});

Deno.test("a download survives the server being killed in the middle, resuming from what arrived", async () => {
  await using world = await World.create();
  await world.client("A");
  const data = randomBytes(48 * MiB, 61);
  await Deno.writeFile(join(world.dir("A"), "large.bin"), data);
  await waitFor(() => /upload large\.bin/.test(world.server.output), { timeoutMs: 60_000 });
  const dirB = world.dir("B");
  const clientB = world.startClient("B");
  try {
    await waitFor(async () => (await partialBytes(dirB)) > 12 * MiB, { timeoutMs: 60_000, intervalMs: 5 });
    world.server.kill("SIGKILL");
    await world.server.exited();
    const partial = await partialBytes(dirB);
    assert.ok((await readTree(dirB)).has("large.bin") === false, "no partial file in the folder");
    await world.restartServer();
    const received = await transferredBytes(clientB, "downloaded", "large.bin", 0, 60_000);
    assert.ok(
      received <= data.length - partial + 4 * MiB,
      `after the restart ${received} bytes came again although ${partial} had arrived`,
    );
    await waitForFile(join(dirB, "large.bin"), data, 60_000);
  } finally {
    await clientB.stop();
  }
});
