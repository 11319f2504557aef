// End-to-end tests of the `filesync versions|restore|trash` commands: real server, real clients, commands as processes.
import assert from "node:assert/strict";
import { join } from "node:path";
import type { WireTrashItem, WireVersion } from "../protocol/messages.ts";
import { Proc, startServer, waitFor, waitForFile, waitForGone, World } from "./harness.ts";

/** Runs `filesync ARGS` in `cwd`; returns its exit code and output (stdout and stderr). */
async function filesync(cwd: string, ...args: string[]): Promise<{ code: number; output: string }> {
  const proc = new Proc(args[0], args, { cwd });
  const code = await proc.exited(30_000);
  return { code, output: proc.output.trim() };
}

/** Runs a command that must succeed and print JSON; returns the parsed output. */
async function json<T>(cwd: string, ...args: string[]): Promise<T> {
  const { code, output } = await filesync(cwd, ...args, "--json");
  assert.equal(code, 0, output);
  return JSON.parse(output) as T;
}

/** Writes a file and waits until it shows up with that content in `other`. */
async function writeAndSync(world: World, path: string, content: string, other = "B"): Promise<void> {
  await Deno.mkdir(join(world.dir("A"), path, ".."), { recursive: true });
  await Deno.writeTextFile(join(world.dir("A"), path), content);
  await waitForFile(join(world.dir(other), path), content);
}

/** Waits until the server lists `count` versions of `path` (commits are pushed, listed on the next request). */
async function versionsOf(world: World, path: string, count: number): Promise<WireVersion[]> {
  let versions: WireVersion[] = [];
  await waitFor(async () => {
    versions = (await json<{ versions: WireVersion[] }>(world.dir("A"), "versions", path)).versions;
    return versions.length >= count;
  }, { message: () => `versions of ${path}: ${JSON.stringify(versions)}` });
  return versions;
}

Deno.test("versions lists every edit newest first; restore of an old version reaches the other device", async () => {
  await using world = await World.create();
  await world.client("A");
  await world.client("B");
  for (const content of ["one", "two!", "three"]) await writeAndSync(world, "notes/a.txt", content);

  // The client keeps the CA it was given for these commands, private to the user.
  const ca = await Deno.stat(join(world.dir("A"), ".filesync", "ca.pem"));
  assert.equal(ca.mode! & 0o777, 0o600);
  assert.equal(
    await Deno.readTextFile(join(world.dir("A"), ".filesync", "ca.pem")),
    await Deno.readTextFile(world.server.caPath),
  );
  const versions = await versionsOf(world, "notes/a.txt", 3);
  assert.deepEqual(versions.map((v) => v.size), [5, 4, 3]);
  assert.equal(versions[0].current, true);
  assert.ok(versions.slice(1).every((v) => !v.current));
  assert.ok(versions.every((v) => v.device === "A" && v.time > 0 && /^[0-9a-f]{64}$/.test(v.hash)));
  assert.ok(versions[0].time >= versions[1].time && versions[1].time >= versions[2].time);

  // The plain listing: a header and one line per version, the current one marked; from a subfolder too.
  const listing = await filesync(join(world.dir("A"), "notes"), "versions", "a.txt");
  assert.equal(listing.code, 0, listing.output);
  const lines = listing.output.split("\n");
  assert.equal(lines.length, 4, listing.output);
  assert.match(lines[0], /3 versions of notes\/a\.txt/);
  assert.match(lines[1], new RegExp(`^${versions[0].id} .*\\(current\\)$`));
  assert.match(lines[3], new RegExp(`^${versions[2].id} \\s*\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC`));

  // Restore the first version from device B: both devices get it as the current file.
  const restored = await filesync(world.dir("B"), "restore", "notes/a.txt", "--version", versions[2].id);
  assert.equal(restored.code, 0, restored.output);
  assert.equal(restored.output.split("\n").length, 1, restored.output);
  assert.match(restored.output, /restored notes\/a\.txt/);
  await waitForFile(join(world.dir("A"), "notes/a.txt"), "one");
  await waitForFile(join(world.dir("B"), "notes/a.txt"), "one");
  const after = await versionsOf(world, "notes/a.txt", 4);
  assert.equal(after[0].current, true);
  assert.equal(after[0].hash, versions[2].hash);

  // --as puts a version beside the file, which stays as it is.
  const as = await filesync(
    world.dir("A"),
    "restore",
    "notes/a.txt",
    "--version",
    versions[1].id,
    "--as",
    "b.txt",
  );
  assert.equal(as.code, 0, as.output);
  assert.match(as.output, /restored notes\/a\.txt .*as b\.txt/);
  await waitForFile(join(world.dir("B"), "b.txt"), "two!");
  await waitForFile(join(world.dir("B"), "notes/a.txt"), "one");

  // Without --version: the newest kept version that is not current ("three", replaced by the restore).
  const newest = await filesync(world.dir("A"), "restore", "notes/a.txt");
  assert.equal(newest.code, 0, newest.output);
  await waitForFile(join(world.dir("B"), "notes/a.txt"), "three");
});

Deno.test("trash lists deleted files and folders; restore brings back a file and a folder with its contents", async () => {
  await using world = await World.create();
  await world.client("A");
  const b = await world.client("B");
  await writeAndSync(world, "f.txt", "file content");
  await writeAndSync(world, "dir/x.txt", "x");
  await writeAndSync(world, "dir/sub/y.txt", "y");
  await Deno.remove(join(world.dir("A"), "f.txt"));
  await Deno.remove(join(world.dir("A"), "dir"), { recursive: true });
  await waitForGone(join(world.dir("B"), "f.txt"));
  await waitForGone(join(world.dir("B"), "dir"));
  // The commands need no running client: B's is stopped for the listing and the first restore.
  await b.stop();

  let items: WireTrashItem[] = [];
  await waitFor(async () => {
    items = (await json<{ items: WireTrashItem[] }>(world.dir("B"), "trash")).items;
    return items.some((i) => i.path === "f.txt") && items.some((i) => i.path === "dir");
  }, { message: () => `trash: ${JSON.stringify(items)}` });
  const file = items.find((i) => i.path === "f.txt")!;
  assert.equal(file.kind, "file");
  assert.equal(file.size, 12);
  assert.equal(file.device, "A");
  assert.ok(file.deletedAt > 0 && file.version.length > 0);
  assert.equal(items.find((i) => i.path === "dir")!.kind, "dir");
  for (let i = 1; i < items.length; i++) assert.ok(items[i - 1].deletedAt >= items[i].deletedAt);

  const listing = await filesync(world.dir("B"), "trash");
  assert.equal(listing.code, 0, listing.output);
  assert.match(listing.output, /deleted item/);
  assert.match(listing.output, / {2}f\.txt {2}\(12 B, deleted by A\) {2}version \d+/);
  assert.match(listing.output, / {2}dir\/ {2}\(folder, deleted by A\) {2}version \d+/);

  const restoredFile = await filesync(world.dir("B"), "restore", "f.txt");
  assert.equal(restoredFile.code, 0, restoredFile.output);
  await waitForFile(join(world.dir("A"), "f.txt"), "file content");
  world.startClient("B");
  await waitForFile(join(world.dir("B"), "f.txt"), "file content");

  const restoredDir = await filesync(world.dir("A"), "restore", "dir");
  assert.equal(restoredDir.code, 0, restoredDir.output);
  assert.match(restoredDir.output, /restored dir/);
  for (const device of ["A", "B"]) {
    await waitForFile(join(world.dir(device), "dir/x.txt"), "x");
    await waitForFile(join(world.dir(device), "dir/sub/y.txt"), "y");
  }
});

Deno.test("history commands print one line and exit 1 on each error, 2 on bad usage", async () => {
  await using world = await World.create();
  await world.client("A");
  await Deno.writeTextFile(join(world.dir("A"), "a.txt"), "a");
  await waitFor(async () =>
    (await json<{ versions: WireVersion[] }>(world.dir("A"), "versions", "a.txt")).versions.length === 1
  );
  await Deno.writeTextFile(join(world.dir("A"), "a.txt"), "a, edited");
  let kept: WireVersion[] = [];
  await waitFor(async () =>
    (kept = (await json<{ versions: WireVersion[] }>(world.dir("A"), "versions", "a.txt")).versions)
      .length === 2
  );
  const a = world.dir("A");
  const expectError = async (code: number, pattern: RegExp, cwd: string, ...args: string[]) => {
    const result = await filesync(cwd, ...args);
    assert.equal(result.code, code, `${args.join(" ")}: ${result.output}`);
    assert.equal(
      result.output.split("\n").length,
      1,
      `${args.join(" ")} printed more than one line:\n${result.output}`,
    );
    assert.match(result.output, pattern, args.join(" "));
  };
  await expectError(1, /^filesync: .*nope\.txt/, a, "versions", "nope.txt");
  await expectError(1, /^filesync: .*nope\.txt/, a, "restore", "nope.txt");
  await expectError(
    1,
    /^filesync: .*(version|unknown|not found)/i,
    a,
    "restore",
    "a.txt",
    "--version",
    "no-such-version",
  );
  await expectError(1, /^filesync: .*outside the synced folder/, a, "versions", "../elsewhere.txt");
  await expectError(1, /^filesync: .*not inside a synced folder/, world.tmp.path, "trash");
  await expectError(1, /^filesync: .*not a synced folder/, a, "trash", "--dir", world.tmp.path);
  await expectError(2, /^filesync: Expected one PATH/, a, "versions");
  await expectError(2, /^filesync: /, a, "trash", "--bogus");

  // A device whose token the server refuses (a copy of A's identity with a made-up token).
  const stale = world.tmp.join("stale");
  await Deno.mkdir(join(stale, ".filesync"), { recursive: true });
  for (const name of ["device.json", "ca.pem"]) {
    await Deno.copyFile(join(a, ".filesync", name), join(stale, ".filesync", name));
  }
  await Deno.writeTextFile(join(stale, ".filesync", "token"), "not-a-real-token");
  await expectError(1, /^filesync: Device token .*start filesync client/, stale, "trash");

  // 31 days later on the server's (test) clock, the replaced version has expired (default --keep-days 30).
  const { dataDir, port } = world.server;
  await world.server.stop();
  world.server = await startServer(dataDir, [], port, {
    FILESYNC_TEST_CLOCK_OFFSET_MS: String(31 * 24 * 3600 * 1000),
  });
  await expectError(1, /^filesync: .*expired/, a, "restore", "a.txt", "--version", kept[1].id);

  // The server is down: the commands say so (the client keeps running offline).
  await world.server.stop();
  await expectError(1, /^filesync: Cannot reach server 127\.0\.0\.1:\d+/, a, "versions", "a.txt");
});
