// End-to-end: the running client's control socket: status, follow, pause/resume, commands through it, fallback.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { StatusReport } from "../client/status.ts";
import { Proc, run, waitFor, waitForFile, World } from "./harness.ts";

/** `filesync status --json` of a folder, parsed; null when the command fails. */
async function status(dir: string, env: Record<string, string> = {}): Promise<StatusReport | null> {
  const { code, output } = await run(["status", "--json", "--dir", dir], { env });
  return code === 0 ? JSON.parse(output) : null;
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

Deno.test("control socket: status, follow, pause/resume, lock and versions through it, long-path fallback, dead client", async () => {
  await using world = await World.create();
  const a = await world.client("a");
  await world.client("b");
  const dirA = world.dir("a");
  const dirB = world.dir("b");

  // The socket is in DIR/.filesync/, owner-only.
  const socket = join(dirA, ".filesync", "control.sock");
  await waitFor(() => exists(socket));
  const info = await Deno.lstat(socket);
  assert.ok(info.isSocket);
  assert.equal(info.mode! & 0o777, 0o600);

  // status --json after a file synced.
  await Deno.writeTextFile(join(dirA, "one.txt"), "hello");
  await waitForFile(join(dirB, "one.txt"), "hello");
  let last: StatusReport | null = null;
  await waitFor(async () => (last = await status(dirA))?.inSync.files === 1 && last!.lastSync !== null, {
    message: () => `status: ${JSON.stringify(last)}`,
  });
  assert.equal(last!.state, "connected");
  assert.equal(last!.user, "alice");
  assert.equal(last!.device, "a");
  assert.equal(last!.server, world.server.address);
  assert.equal(last!.inSync.bytes, 5);
  assert.deepEqual(last!.pending, { uploads: { files: 0, bytes: 0 }, downloads: { files: 0, bytes: 0 } });
  const readable = await run(["status", "--dir", dirA]);
  assert.equal(readable.code, 0);
  assert.match(readable.output, /: connected\n/);
  assert.match(readable.output, /in sync +1 file, 5 B/);

  // status --follow --json streams events as they happen.
  await using follower = new Proc("follow", ["status", "--follow", "--json", "--dir", dirA]);
  await waitFor(async () => (await status(dirA))?.followers === 1);
  await Deno.writeTextFile(join(dirA, "two.txt"), "second");
  await follower.waitForOutput(/"type":"uploaded",[^\n]*"path":"two\.txt"/);

  // Paused: a new file on A stays there, and status says so.
  const paused = await run(["pause", "--dir", dirA]);
  assert.equal(paused.code, 0, paused.output);
  assert.match(paused.output, /paused syncing/);
  await Deno.writeTextFile(join(dirA, "held.txt"), "waits");
  await waitFor(async () => {
    last = await status(dirA);
    return last?.state === "paused" && last.pending.uploads.files === 1;
  }, { message: () => `status: ${JSON.stringify(last)}` });
  assert.equal(last!.pending.uploads.bytes, 5);
  await follower.waitForOutput(/"type":"paused"/);
  assert.equal(await exists(join(dirB, "held.txt")), false);

  // Resumed: it arrives.
  const resumed = await run(["resume", "--dir", dirA]);
  assert.match(resumed.output, /resumed syncing/);
  await waitForFile(join(dirB, "held.txt"), "waits");
  await follower.waitForOutput(/"type":"resumed"/);

  // lock and versions go through the running client's connection.
  const before = (await status(dirA))!.forwarded ?? 0;
  const locked = await run(["lock", "one.txt", "--dir", dirA]);
  assert.equal(locked.code, 0, locked.output);
  assert.match(locked.output, /^locked one\.txt for 30 minutes/);
  const versions = await run(["versions", "one.txt", "--dir", dirA]);
  assert.match(versions.output, /1 version of one\.txt/);
  assert.equal((await status(dirA))!.forwarded, before + 2);

  // A folder whose socket path would be too long: the socket goes to the private fallback folder.
  const runtime = world.tmp.join("run");
  await Deno.mkdir(runtime, { mode: 0o700 });
  const longDir = world.tmp.join("long-" + "x".repeat(90));
  await world.client("c", { dir: longDir, env: { XDG_RUNTIME_DIR: runtime } });
  await waitFor(async () => (await status(longDir, { XDG_RUNTIME_DIR: runtime }))?.state === "connected");
  const [fallback] = [...Deno.readDirSync(join(runtime, "filesync"))];
  assert.match(fallback.name, /^[0-9a-f]{16}\.sock$/);
  assert.equal((await Deno.lstat(join(runtime, "filesync", fallback.name))).mode! & 0o777, 0o600);
  assert.equal(await exists(join(longDir, ".filesync", "control.sock")), false);

  // The server gone: a command through the client says it cannot be reached, as it would by itself.
  await world.server.stop();
  await waitFor(async () => (last = await status(dirA))?.state === "offline", {
    message: () => `status: ${JSON.stringify(last)}`,
  });
  assert.match(last!.offlineReason!, /./);
  const offline = await run(["locks", "--dir", dirA]);
  assert.equal(offline.code, 1);
  assert.match(offline.output, /^filesync: Cannot reach server 127\.0\.0\.1:\d+/);

  // The client killed: status says no client runs (its socket file is left, and nobody answers on it).
  a.kill("SIGKILL");
  await a.exited();
  assert.ok(await exists(socket));
  const gone = await run(["status", "--dir", dirA]);
  assert.equal(gone.code, 1);
  assert.match(gone.output, /^filesync: no client is running for /);
});
