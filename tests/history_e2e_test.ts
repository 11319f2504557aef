// End-to-end: history, trash and restore through a real server process over TLS, with a device receiving restores.
import assert from "node:assert/strict";
import { openConnection } from "../client/connection.ts";
import { sha256Hex } from "../protocol/hash.ts";
import {
  type ChangeResult,
  encodeRows,
  type WireEntry,
  type WireTrashItem,
  type WireVersion,
} from "../protocol/messages.ts";
import { RpcError, type RpcPeer } from "../protocol/rpc.ts";
import { fileHashOfChunks } from "../protocol/hash.ts";
import {
  addUser,
  chunkBytes,
  run,
  type ServerProc,
  startServer,
  TempDir,
  waitFor,
  waitForFile,
  World,
} from "./harness.ts";

const DAY = 24 * 3600_000;
const encoder = new TextEncoder();

/** A logged-in protocol connection to a server process. */
async function login(server: ServerProc, user: string, password: string): Promise<RpcPeer> {
  const peer = await openConnection({
    hostname: "127.0.0.1",
    port: server.port,
    caPem: await Deno.readTextFile(server.caPath),
  });
  await peer.request("LOGIN", { user, password, device: "tester" });
  return peer;
}

/** Uploads a one-chunk file (PUT then COMMIT); returns the new rev. */
async function upload(peer: RpcPeer, path: string, text: string, baseRev = 0): Promise<number> {
  const bytes = encoder.encode(text);
  const id = sha256Hex(bytes);
  await peer.request("PUT", { hash: id }, bytes);
  const change = {
    op: "upload",
    path,
    baseRev,
    size: bytes.length,
    mtime: 1_700_000_000_000,
    hash: fileHashOfChunks([id]),
    rows: { offset: 0, count: 1 },
  };
  const reply = await peer.request("COMMIT", { changes: [change] }, encodeRows([{ id, size: bytes.length }]));
  const [result] = reply.message.results as ChangeResult[];
  assert.ok(result.ok, `upload of ${path} refused: ${!result.ok && result.error}`);
  return result.entries[result.entries.length - 1].rev;
}

async function versions(peer: RpcPeer, path: string): Promise<WireVersion[]> {
  return (await peer.request("VERSIONS", { path })).message.versions as WireVersion[];
}

/** True once the server's journal has a live entry at `path`. */
async function committed(peer: RpcPeer, path: string): Promise<boolean> {
  const events = (await peer.request("CHANGES", { since: 0, limit: 5000 })).message.events as WireEntry[];
  return events.some((e) => e.path === path && !e.deleted);
}

async function trash(peer: RpcPeer): Promise<WireTrashItem[]> {
  return (await peer.request("TRASH", {})).message.items as WireTrashItem[];
}

async function refusal(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  const error = await promise.then(() => null, (e) => e);
  assert.ok(error instanceof RpcError, `expected refusal "${code}", got ${error}`);
  assert.equal(error.code, code, error.message);
  if (message) assert.match(error.message, message);
}

Deno.test("VERSIONS, TRASH and RESTORE over TLS: a restore is a commit every device receives", async () => {
  await using world = await World.create();
  const laptop = await world.client("laptop");
  const dir = world.dir("laptop");
  const peer = await login(world.server, world.user, world.password);
  try {
    const v1 = await upload(peer, "notes.txt", "first");
    const v2 = await upload(peer, "notes.txt", "second", v1);
    const v3 = await upload(peer, "notes.txt", "third", v2);
    await waitForFile(`${dir}/notes.txt`, "third");

    const list = await versions(peer, "notes.txt");
    assert.deepEqual(list.map((v) => [v.id, v.current ?? false]), [
      [String(v3), true],
      [String(v2), false],
      [String(v1), false],
    ]);
    assert.ok(list.every((v) => v.device === "tester" && v.size > 0 && v.time > 0));

    // Restore without a version: the newest earlier one, as a new current version (the replaced one is kept).
    const reply = await peer.request("RESTORE", { path: "notes.txt" });
    assert.equal(reply.message.version, String(v2));
    await waitForFile(`${dir}/notes.txt`, "second");
    const after = await versions(peer, "notes.txt");
    assert.equal(after.length, 4);
    assert.equal(after[1].id, String(v3), "the version the restore replaced is kept");

    // Restore an old version under another name.
    await peer.request("RESTORE", { path: "notes.txt", version: String(v1), as: "notes (first).txt" });
    await waitForFile(`${dir}/notes (first).txt`, "first");

    // A file and a folder deleted on the device go to the trash and come back.
    await Deno.mkdir(`${dir}/project/sub`, { recursive: true });
    await Deno.writeTextFile(`${dir}/project/a.txt`, "a");
    await Deno.writeTextFile(`${dir}/project/sub/b.txt`, "b");
    await Deno.writeTextFile(`${dir}/lonely.txt`, "lonely");
    await waitFor(() => committed(peer, "project/sub/b.txt"));
    await waitFor(() => committed(peer, "lonely.txt"));
    await Deno.remove(`${dir}/project`, { recursive: true });
    await Deno.remove(`${dir}/lonely.txt`);
    await waitFor(async () => (await trash(peer)).some((t) => t.path === "project" && t.kind === "dir"));
    await waitFor(async () => (await trash(peer)).some((t) => t.path === "lonely.txt"));
    const items = await trash(peer);
    assert.ok(items.every((t, i) => i === 0 || items[i - 1].deletedAt >= t.deletedAt), "newest first");
    const lonely = items.find((t) => t.path === "lonely.txt")!;
    assert.equal(lonely.device, "laptop");
    assert.equal(lonely.size, 6);

    await peer.request("RESTORE", { path: "lonely.txt" });
    await waitForFile(`${dir}/lonely.txt`, "lonely");
    const folder = await peer.request("RESTORE", { path: "project" });
    assert.equal(folder.message.kind, "dir");
    await waitForFile(`${dir}/project/a.txt`, "a");
    await waitForFile(`${dir}/project/sub/b.txt`, "b");
    await waitFor(async () => !(await trash(peer)).some((t) => t.path === "lonely.txt"));

    // Errors: one clear code each.
    await refusal(peer.request("RESTORE", { path: "never.txt" }), "not_found", /never\.txt/);
    await refusal(peer.request("VERSIONS", { path: "never.txt" }), "not_found");
    await refusal(peer.request("RESTORE", { path: "notes.txt", version: "999999" }), "unknown_version");
    await refusal(peer.request("RESTORE", { path: "notes.txt", version: "nonsense" }), "unknown_version");
    assert.match(world.server.output, /restore notes\.txt version \d+ as notes \(first\)\.txt/);
    assert.equal(laptop.exitCode, null);
  } finally {
    peer.close();
  }
});

Deno.test("retention: versions expire after --keep-days on the server's clock, and gc then frees their chunks", async () => {
  await using tmp = new TempDir();
  const data = tmp.join("server");
  let server = await startServer(data, ["--keep-days", "2"]);
  try {
    await addUser(data, "alice", "pw-alice");
    let peer = await login(server, "alice", "pw-alice");
    const old = "old content ".repeat(1000);
    const v1 = await upload(peer, "doc.txt", old);
    await upload(peer, "doc.txt", "new content", v1);
    const withHistory = await chunkBytes(data);
    let gc = await run(["gc", "--data", data]);
    assert.equal(gc.code, 0, gc.output);
    assert.match(gc.output, /0 versions/);
    assert.equal(await chunkBytes(data), withHistory, "a kept version keeps its chunks");
    assert.equal((await versions(peer, "doc.txt")).length, 2);
    peer.close();
    await server.stop();

    // Three days later on the server's clock.
    server = await startServer(data, ["--keep-days", "2"], 0, {
      FILESYNC_TEST_CLOCK_OFFSET_MS: String(3 * DAY),
    });
    peer = await login(server, "alice", "pw-alice");
    assert.deepEqual((await versions(peer, "doc.txt")).map((v) => v.current), [true]);
    await refusal(peer.request("RESTORE", { path: "doc.txt", version: String(v1) }), "expired");
    await refusal(peer.request("RESTORE", { path: "doc.txt" }), "expired");
    gc = await run(["gc", "--data", data]);
    assert.equal(gc.code, 0, gc.output);
    assert.match(gc.output, /1 versions/);
    assert.ok(await chunkBytes(data) < withHistory - old.length / 2, "the expired version's chunk is gone");
    peer.close();
  } finally {
    await server.stop();
  }
});

Deno.test("retention: --keep-versions keeps only the newest earlier versions", async () => {
  await using tmp = new TempDir();
  const data = tmp.join("server");
  const server = await startServer(data, ["--keep-versions", "2"]);
  try {
    await addUser(data, "alice", "pw-alice");
    const peer = await login(server, "alice", "pw-alice");
    let rev = 0;
    for (let i = 1; i <= 5; i++) rev = await upload(peer, "f.txt", `version ${i}`, rev);
    assert.deepEqual((await versions(peer, "f.txt")).length, 3, "current and two earlier ones");
    const gc = await run(["gc", "--data", data]);
    assert.match(gc.output, /2 versions/);
    assert.equal((await versions(peer, "f.txt")).length, 3);
    peer.close();
  } finally {
    await server.stop();
  }
});

Deno.test("filesync server refuses an unknown chunk store scheme, naming the supported ones", async () => {
  await using tmp = new TempDir();
  const { code, output } = await run([
    "server",
    "--data",
    tmp.join("server"),
    "--port",
    "0",
    "--chunks",
    "ftp://bucket/chunks",
  ]);
  assert.notEqual(code, 0);
  assert.match(output, /Unsupported chunk store "ftp:\/\/bucket\/chunks".*file:.*s3:/);
  assert.equal(output.trim().split("\n").length, 1, output);
});

Deno.test("history stays in the caller's namespace: another user sees no versions, trash or restores", async () => {
  await using world = await World.create();
  await addUser(world.server.dataDir, "bob", "bob's password");
  const alice = await login(world.server, world.user, world.password);
  const bob = await login(world.server, "bob", "bob's password");
  try {
    const rev = await upload(alice, "secret.txt", "v1");
    await upload(alice, "secret.txt", "v2", rev);
    const deleted = await upload(alice, "gone.txt", "x");
    await alice.request("COMMIT", {
      changes: [{ op: "delete", path: "gone.txt", baseRev: deleted, kind: "file" }],
    });
    assert.equal((await trash(alice)).length, 1);
    await refusal(bob.request("VERSIONS", { path: "secret.txt" }), "not_found");
    assert.deepEqual(await trash(bob), []);
    await refusal(bob.request("RESTORE", { path: "gone.txt" }), "not_found");
    await refusal(bob.request("RESTORE", { path: "secret.txt", version: String(rev) }), "unknown_version");
    assert.deepEqual((await bob.request("CHANGES", { since: 0 })).message.events, []);
  } finally {
    alice.close();
    bob.close();
  }
});

/**
 * When each round kills the server: "paused" once the server (started with the test-only
 * FILESYNC_TEST_PAUSE_COMMIT_AT_ATOMIC=1) has written the first KV atomic of the commit and holds before the next,
 * which is deterministic; "first" once the commit's first part is visible; or a delay after sending the commit.
 * Only the "paused" rounds must land in the middle of a commit; every round checks counter and journal agree.
 */
const KILLS: ("paused" | "first" | number)[] = ["paused", "first", 50, "paused", 150, "first", 250, 350];

/** The environment of the server that serves round `round` (none after the last). */
function serverEnv(round: number): Record<string, string> {
  return KILLS[round] === "paused" ? { FILESYNC_TEST_PAUSE_COMMIT_AT_ATOMIC: "1" } : {};
}

Deno.test("kill -9 of the server during a large commit leaves counter and journal in agreement", async () => {
  await using tmp = new TempDir();
  const data = tmp.join("server");
  let server = await startServer(data, [], 0, serverEnv(0));
  try {
    await addUser(data, "alice", "pw");
    const bytes = encoder.encode("shared by every file");
    const id = sha256Hex(bytes);
    for (const [round, kill] of KILLS.entries()) {
      const peer = await login(server, "alice", "pw");
      const watcher = await login(server, "alice", "pw");
      await peer.request("PUT", { hash: id }, bytes);
      const before = (await watcher.request("CHANGES", { since: 0, limit: 1 })).message.latest as number;
      // 1000 files (an entry and a journal row each) need several KV atomics.
      const changes = Array.from({ length: 1000 }, (_, i) => ({
        op: "upload",
        path: `round${round}/f${i}.txt`,
        baseRev: 0,
        size: bytes.length,
        mtime: 1,
        hash: fileHashOfChunks([id]),
        rows: { offset: 0, count: 1 },
      }));
      const sent = peer.request("COMMIT", { changes }, encodeRows([{ id, size: bytes.length }])).catch(
        () => {},
      );
      if (kill === "paused") {
        await server.waitForOutput(/test: commit paused after 1 atomics/, 30_000);
      } else if (kill === "first") {
        await waitFor(
          async () =>
            (await watcher.request("CHANGES", { since: 0, limit: 1 })).message.latest as number > before,
          {
            intervalMs: 1,
          },
        );
      } else {
        await new Promise((resolve) => setTimeout(resolve, kill));
      }
      server.kill("SIGKILL");
      await server.exited();
      await sent;
      peer.close();
      watcher.close();
      server = await startServer(data, [], server.port, serverEnv(round + 1));
      const check = await login(server, "alice", "pw");
      // Eight rounds of up to 1000 files pass one CHANGES page (5000 at most): read every page.
      const events: WireEntry[] = [];
      let latest = 0;
      for (let since = 0;;) {
        const page = (await check.request("CHANGES", { since, limit: 5000 })).message as {
          events: WireEntry[];
          latest: number;
        };
        events.push(...page.events);
        latest = page.latest;
        if (page.events.length === 0 || page.events.at(-1)!.rev >= latest) break;
        since = page.events.at(-1)!.rev;
      }
      assert.deepEqual(
        events.map((e) => e.rev),
        Array.from({ length: latest }, (_, i) => i + 1),
        `round ${round}: the journal holds exactly the entries up to the counter`,
      );
      if (kill === "paused") {
        assert.ok(
          latest > before && latest < before + 1000,
          `round ${round}: killed between the atomics of a commit, the first part is kept (${before} -> ${latest})`,
        );
      }
      check.close();
    }
  } finally {
    await server.stop();
  }
});
