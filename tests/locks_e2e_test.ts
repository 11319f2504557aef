// End-to-end tests of locks: real server, two or three real clients, `filesync lock|unlock|locks` as processes.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { ChangeResult, WireEntry } from "../protocol/messages.ts";
import type { WireLock } from "../protocol/locks.ts";
import { connect, findSyncedFolder } from "../client/history_cli.ts";
import { Proc, startServer, waitFor, waitForFile, World } from "./harness.ts";

const FILE = "docs/a.txt";

/** Runs `filesync ARGS` in `cwd`; returns its exit code and output (stdout and stderr). */
async function filesync(cwd: string, ...args: string[]): Promise<{ code: number; output: string }> {
  const proc = new Proc(args[0], args, { cwd });
  const code = await proc.exited(30_000);
  return { code, output: proc.output.trim() };
}

/** Runs a command that must succeed; returns its output. */
async function ok(cwd: string, ...args: string[]): Promise<string> {
  const { code, output } = await filesync(cwd, ...args);
  assert.equal(code, 0, output);
  return output;
}

async function locksSeenFrom(dir: string): Promise<WireLock[]> {
  return (JSON.parse(await ok(dir, "locks", "--json")) as { locks: WireLock[] }).locks;
}

const modeOf = (path: string) => Deno.statSync(path).mode! & 0o777;

/** Waits until the file's write bits are all off (read-only) or, with `writable`, until its mode is `writable`. */
async function waitForMode(path: string, want: "read-only" | number, timeoutMs = 15_000): Promise<void> {
  await waitFor(() => want === "read-only" ? (modeOf(path) & 0o222) === 0 : modeOf(path) === want, {
    timeoutMs,
    message: () => `${path} has mode ${modeOf(path).toString(8)}, expected ${want}`,
  });
}

/** Two connected devices A and B with FILE in sync; returns B's copy's mode. */
async function twoDevices(world: World): Promise<{ a: Proc; b: Proc; mode: number }> {
  const a = await world.client("A");
  const b = await world.client("B");
  await Deno.mkdir(join(world.dir("A"), "docs"), { recursive: true });
  await Deno.writeTextFile(join(world.dir("A"), FILE), "first");
  await waitForFile(join(world.dir("B"), FILE), "first");
  return { a, b, mode: modeOf(join(world.dir("B"), FILE)) };
}

/** Sends a COMMIT as the device of folder `dir` (as its client would), for the server's own answer. */
async function commitAs(dir: string, changes: (rev: number) => unknown[]): Promise<ChangeResult[]> {
  const peer = await connect(await findSyncedFolder(dir));
  try {
    const events = (await peer.request("CHANGES", { since: 0 })).message.events as WireEntry[];
    const rev = events.filter((e) => e.path === FILE).at(-1)!.rev;
    return (await peer.request("COMMIT", { changes: changes(rev) })).message.results as ChangeResult[];
  } finally {
    peer.close();
  }
}

Deno.test("lock on A: B's copy turns read-only, B's commits are LOCKED naming A, B's forced edit is uploaded after unlock", async () => {
  await using world = await World.create();
  const { a, b } = await twoDevices(world);
  await world.client("C");
  const cFile = join(world.dir("C"), FILE);
  await waitForFile(cFile, "first");
  const cMode = modeOf(cFile);
  const locked = await ok(join(world.dir("A"), "docs"), "lock", "a.txt");
  assert.match(
    locked,
    /^locked docs\/a\.txt for 30 minutes \(until .* UTC\); renewed while filesync client runs/,
  );
  const bFile = join(world.dir("B"), FILE);
  await waitForMode(bFile, "read-only");
  await waitForMode(cFile, "read-only");
  await b.waitForOutput(/docs\/a\.txt is locked by alice on device "A": read-only here until the lock ends/);
  assert.notEqual(modeOf(join(world.dir("A"), FILE)) & 0o200, 0, "the holder's copy stays writable");

  const seen = await locksSeenFrom(world.dir("B"));
  assert.equal(seen.length, 1);
  assert.deepEqual([seen[0].path, seen[0].user, seen[0].device, seen[0].mine], [FILE, "alice", "A", false]);
  assert.equal((await locksSeenFrom(world.dir("A")))[0].mine, true);

  // The server refuses B's upload, delete and move of the file, naming the holder; nothing changes.
  const results = await commitAs(world.dir("B"), (rev) => [
    { op: "delete", path: FILE, baseRev: rev, kind: "file" },
    { op: "move", from: FILE, path: "docs/b.txt", baseRev: rev },
  ]);
  for (const result of results) {
    assert.ok(!result.ok);
    assert.equal(result.code, "locked");
    assert.match(result.error, /locked by alice on device "A"/);
    assert.equal(result.holder?.device, "A");
  }
  // Locking or unlocking it from B is refused with clear lines.
  const again = await filesync(world.dir("B"), "lock", FILE);
  assert.equal(again.code, 1);
  assert.equal(again.output, `filesync: "${FILE}" is already locked by alice on device "A"`);
  const notHolder = await filesync(world.dir("B"), "unlock", FILE);
  assert.equal(notHolder.code, 1);
  assert.match(notHolder.output, /locked by alice on device "A", not by this device: use --force/);

  // An edit made anyway (write access taken back) is kept, the user told, and nothing is sent yet.
  Deno.chmodSync(bFile, 0o644);
  await Deno.writeTextFile(bFile, "edited on B while locked");
  await b.waitForOutput(
    /docs\/a\.txt is locked by alice on device "A": the change made here is kept and sent/,
  );
  assert.equal(await Deno.readTextFile(join(world.dir("A"), FILE)), "first");
  assert.equal(await Deno.readTextFile(bFile), "edited on B while locked");

  assert.equal(await ok(world.dir("A"), "unlock", FILE), `unlocked ${FILE}`);
  await waitForFile(join(world.dir("A"), FILE), "edited on B while locked");
  await waitForFile(cFile, "edited on B while locked");
  await waitForMode(cFile, cMode);
  await b.waitForOutput(/the lock on docs\/a\.txt ended/);
  assert.equal(modeOf(bFile), 0o644, "the mode the user set stays");
  assert.deepEqual(await locksSeenFrom(world.dir("B")), []);
  assert.equal(await ok(world.dir("B"), "locks"), "No file is locked");
  assert.doesNotMatch(a.output + b.output, /conflict/);
});

Deno.test("an edit made on B while A holds the lock and changes the file becomes a conflicted copy after unlock", async () => {
  await using world = await World.create();
  const { b } = await twoDevices(world);
  await ok(world.dir("A"), "lock", FILE);
  const bFile = join(world.dir("B"), FILE);
  await waitForMode(bFile, "read-only");
  Deno.chmodSync(bFile, 0o644);
  await Deno.writeTextFile(bFile, "B's edit");
  await b.waitForOutput(/the change made here is kept and sent when the lock ends/);
  await Deno.writeTextFile(join(world.dir("A"), FILE), "A's edit under the lock");
  await ok(world.dir("A"), "unlock", FILE);
  // Both versions end up on both devices: A's (the later one) under the name, B's beside it.
  for (const device of ["A", "B"]) {
    await waitForFile(join(world.dir(device), FILE), "A's edit under the lock");
    await waitFor(async () => {
      for await (const entry of Deno.readDir(join(world.dir(device), "docs"))) {
        if (
          entry.name.includes("conflicted copy") &&
          await Deno.readTextFile(join(world.dir(device), "docs", entry.name)) === "B's edit"
        ) return true;
      }
      return false;
    }, { message: () => `${device} has no conflicted copy holding B's edit` });
  }
});

Deno.test("a lock survives a server restart and expires with the clock: B's mode comes back", async () => {
  await using world = await World.create();
  const { a, mode } = await twoDevices(world);
  await ok(world.dir("A"), "lock", FILE, "--minutes", "30");
  const bFile = join(world.dir("B"), FILE);
  await waitForMode(bFile, "read-only");
  await a.stop(); // nobody renews it now
  const { dataDir, port } = world.server;
  await world.restartServer();
  assert.equal((await locksSeenFrom(world.dir("B"))).length, 1, "kept across the restart");
  // 31 minutes later on the server's clock the lease has ended: B hears of it and restores the mode.
  await world.server.stop();
  world.server = await startServer(dataDir, [], port, { FILESYNC_TEST_CLOCK_OFFSET_MS: String(31 * 60_000) });
  await waitForMode(bFile, mode, 20_000);
  assert.deepEqual(await locksSeenFrom(world.dir("B")), []);
  // And B's edits go through again: A, started again, receives them.
  await Deno.writeTextFile(bFile, "after the lock");
  await world.client("A");
  await waitForFile(join(world.dir("A"), FILE), "after the lock");
});

Deno.test("the holder's client renews its lock; when it stops, the lock runs out and B's mode comes back", async () => {
  await using world = await World.create();
  const { a, mode } = await twoDevices(world);
  await ok(world.dir("A"), "lock", FILE, "--minutes", "0.05"); // a 3-second lease
  const bFile = join(world.dir("B"), FILE);
  await waitForMode(bFile, "read-only");
  const [first] = await locksSeenFrom(world.dir("B"));
  // Renewed by A's client past its first lease, twice over.
  await waitFor(async () => {
    const [now] = await locksSeenFrom(world.dir("B"));
    return now !== undefined && now.expires > first.expires + 6000;
  }, { timeoutMs: 30_000, message: () => `not renewed:\n${a.output}` });
  assert.equal(modeOf(bFile) & 0o222, 0, "still read-only");
  await a.stop();
  await waitForMode(bFile, mode, 20_000);
  assert.deepEqual(await locksSeenFrom(world.dir("B")), []);
});

Deno.test("unlock --force from another device of the owner opens the lock; the holder is told", async () => {
  await using world = await World.create();
  const { a, b, mode } = await twoDevices(world);
  await ok(world.dir("A"), "lock", FILE);
  const bFile = join(world.dir("B"), FILE);
  await waitForMode(bFile, "read-only");
  assert.equal(
    await ok(world.dir("B"), "unlock", FILE, "--force"),
    `unlocked ${FILE} (it was locked by alice on device "A")`,
  );
  await waitForMode(bFile, mode);
  await a.waitForOutput(/this device's lock on docs\/a\.txt was forced open on device "B"/);
  await b.waitForOutput(/the lock on docs\/a\.txt was forced open/);
  // B's edit now reaches A.
  await Deno.writeTextFile(bFile, "B after force");
  await waitForFile(join(world.dir("A"), FILE), "B after force");
});

Deno.test("a folder holding a locked file renamed on B stays put everywhere until the lock ends, then moves", async () => {
  await using world = await World.create();
  const { b } = await twoDevices(world);
  await Deno.writeTextFile(join(world.dir("A"), "docs/other.txt"), "other");
  await waitForFile(join(world.dir("B"), "docs/other.txt"), "other");
  await ok(world.dir("A"), "lock", FILE);
  await waitForMode(join(world.dir("B"), FILE), "read-only");
  await Deno.rename(join(world.dir("B"), "docs"), join(world.dir("B"), "papers"));
  await b.waitForOutput(/docs\/a\.txt is locked by alice on device "A": the change made here is kept/);
  // The unlocked file may move at once; the locked one stays where it is on A (and on the server).
  await waitForFile(join(world.dir("A"), "papers/other.txt"), "other");
  assert.equal(await Deno.readTextFile(join(world.dir("A"), FILE)), "first");
  await ok(world.dir("A"), "unlock", FILE);
  await waitForFile(join(world.dir("A"), "papers/a.txt"), "first");
  await waitFor(async () => !(await Deno.stat(join(world.dir("A"), "docs")).then(() => true, () => false)), {
    message: () => `A still has docs/:\n${b.output}`,
  });
});

Deno.test("lock commands: clear errors for a folder, a path outside, a missing file, nothing locked", async () => {
  await using world = await World.create();
  const { a } = await twoDevices(world);
  const folder = await filesync(world.dir("A"), "lock", "docs");
  assert.equal(folder.code, 1);
  assert.equal(folder.output, `filesync: "docs" is a folder, not a file: only files can be locked`);
  const outside = await filesync(world.dir("A"), "lock", "../B/docs/a.txt");
  assert.equal(outside.code, 1);
  assert.match(outside.output, /is outside the synced folder/);
  const missing = await filesync(world.dir("A"), "lock", "nope.txt");
  assert.equal(missing.code, 1);
  assert.equal(missing.output, `filesync: No file "nope.txt" on the server`);
  const notLocked = await filesync(world.dir("A"), "unlock", FILE);
  assert.equal(notLocked.code, 1);
  assert.equal(notLocked.output, `filesync: "${FILE}" is not locked`);
  const minutes = await filesync(world.dir("A"), "lock", FILE, "--minutes", "abc");
  assert.equal(minutes.code, 2);
  assert.match(minutes.output, /Invalid --minutes "abc"/);
  const nowhere = await filesync(world.tmp.path, "locks");
  assert.equal(nowhere.code, 1);
  assert.match(nowhere.output, /is not inside a synced folder/);
  // The commands work without a client running in the folder; the other device still reacts live.
  await a.stop();
  assert.match(
    await ok(world.dir("A"), "lock", FILE, "--minutes", "5"),
    /^locked docs\/a\.txt for 5 minutes/,
  );
  await waitForMode(join(world.dir("B"), FILE), "read-only");
  assert.match(await ok(world.dir("A"), "lock", FILE), /^renewed the lock on docs\/a\.txt for 5 minutes/);
  assert.match(
    await ok(world.dir("A"), "locks"),
    /^1 locked file:\ndocs\/a\.txt {2}locked by alice on device "A" \(this device\) {2}until /,
  );
});
