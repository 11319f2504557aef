// End-to-end tests of sharing: a real server, two users and three real clients (alice's a1 and a2, bob's b1),
// `filesync share|unshare|shares` as processes.
import assert from "node:assert/strict";
import { join } from "node:path";
import { addUser, chunkBytes, Proc, waitFor, waitForFile, World } from "./harness.ts";

const BOB_PASSWORD = "bob's own password";

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

/** Whether a path exists. */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Waits until a path is gone. */
async function waitForGone(path: string, timeoutMs = 15_000): Promise<void> {
  await waitFor(async () => !(await exists(path)), { timeoutMs, message: () => `${path} is still there` });
}

/** alice with a1 and a2, bob with b1, all connected; alice's Project/plan.txt everywhere of hers. */
async function threeDevices(world: World): Promise<{ a1: Proc; a2: Proc; b1: Proc }> {
  await addUser(world.server.dataDir, "bob", BOB_PASSWORD);
  const a1 = await world.client("a1");
  const a2 = await world.client("a2");
  const b1 = await world.client("b1", { user: "bob", password: BOB_PASSWORD });
  await Deno.mkdir(join(world.dir("a1"), "Project"), { recursive: true });
  await Deno.writeTextFile(join(world.dir("a1"), "Project", "plan.txt"), "alice's plan");
  await Deno.writeTextFile(join(world.dir("a1"), "private.txt"), "alice only");
  await waitForFile(join(world.dir("a2"), "Project", "plan.txt"), "alice's plan");
  await waitForFile(join(world.dir("a2"), "private.txt"), "alice only");
  return { a1, a2, b1 };
}

Deno.test("share command errors: unknown user, yourself, a missing path, re-sharing; one clear line each", async () => {
  await using world = await World.create();
  const { b1 } = await threeDevices(world);
  const cases: [string, string[], RegExp][] = [
    [world.dir("a1"), ["share", "Project", "--with", "zed"], /^filesync: No user "zed" on this server$/],
    [world.dir("a1"), ["share", "Project", "--with", "alice"], /^filesync: Cannot share with yourself$/],
    [world.dir("a1"), ["share", "Nope", "--with", "bob"], /^filesync: No file or folder "Nope"$/],
    [world.dir("a1"), ["share", "Project"], /^filesync: Missing --with USER/],
    [world.dir("a1"), ["unshare", "Project"], /^filesync: "Project" is not shared$/],
  ];
  for (const [cwd, args, expected] of cases) {
    const { code, output } = await filesync(cwd, ...args);
    assert.notEqual(code, 0, args.join(" "));
    assert.match(output, expected, args.join(" "));
  }
  assert.equal(
    await ok(world.dir("a1"), "share", "Project", "--with", "bob", "--write"),
    `shared Project with bob (read-write); their devices show it as "Project"`,
  );
  await b1.waitForOutput(/share: alice's "Project" is shared with you \(read-write\), shown as "Project"/);
  await waitForFile(join(world.dir("b1"), "Project", "plan.txt"), "alice's plan");
  const reshare = await filesync(world.dir("b1"), "share", "Project", "--with", "alice");
  assert.notEqual(reshare.code, 0);
  assert.match(reshare.output, /only the owner shares/);
  assert.equal(await exists(join(world.dir("b1"), "private.txt")), false, "only the share reaches bob");
  // bob leaves the share: it goes from his device, alice keeps it.
  assert.equal(await ok(world.dir("b1"), "unshare", "Project"), "left the share Project");
  await b1.waitForOutput(/share: alice's "Project" is no longer shared with you/);
  await waitForGone(join(world.dir("b1"), "Project"));
  assert.equal(await Deno.readTextFile(join(world.dir("a2"), "Project", "plan.txt")), "alice's plan");
});

Deno.test("a write share: edits both ways, another device of the owner, a conflict inside, SHARES, catch-up", async () => {
  await using world = await World.create();
  const { a1, b1 } = await threeDevices(world);
  await Deno.writeTextFile(join(world.dir("b1"), "Project"), "bob's own file named Project");
  await waitFor(async () =>
    (await ok(world.dir("b1"), "shares")) === "Nothing is shared, by you or with you"
  );
  // Let bob's own Project reach the server, so the share's name dodges it.
  await waitFor(async () => {
    const { output } = await filesync(world.dir("b1"), "versions", "Project");
    return /1 version/.test(output);
  });
  await ok(world.dir("a1"), "share", "Project", "--with", "bob", "--write");
  const shown = "Project (shared by alice)";
  await waitForFile(join(world.dir("b1"), shown, "plan.txt"), "alice's plan");
  assert.equal(await Deno.readTextFile(join(world.dir("b1"), "Project")), "bob's own file named Project");
  assert.equal(
    await ok(world.dir("a1"), "shares"),
    `Shared by you:\n  Project  with bob (read-write)`,
  );
  assert.equal(
    await ok(world.dir("b1"), "shares"),
    `Shared with you:\n  ${shown}  alice's "Project" (read-write)`,
  );
  const json = JSON.parse(await ok(world.dir("b1"), "shares", "--json"));
  assert.equal(json.withMe[0].local, shown);

  // bob creates, edits; alice's devices get it. alice edits; bob gets it.
  await Deno.writeTextFile(join(world.dir("b1"), shown, "notes.txt"), "bob's notes");
  await waitForFile(join(world.dir("a1"), "Project", "notes.txt"), "bob's notes");
  await waitForFile(join(world.dir("a2"), "Project", "notes.txt"), "bob's notes");
  await Deno.writeTextFile(join(world.dir("a2"), "Project", "plan.txt"), "alice's plan, v2");
  await waitForFile(join(world.dir("b1"), shown, "plan.txt"), "alice's plan, v2");
  // bob renames and deletes inside the share.
  await Deno.rename(
    join(world.dir("b1"), shown, "notes.txt"),
    join(world.dir("b1"), shown, "notes-renamed.txt"),
  );
  await waitForFile(join(world.dir("a1"), "Project", "notes-renamed.txt"), "bob's notes");
  await waitForGone(join(world.dir("a1"), "Project", "notes.txt"));
  await Deno.remove(join(world.dir("b1"), shown, "notes-renamed.txt"));
  await waitForGone(join(world.dir("a2"), "Project", "notes-renamed.txt"));
  // History of a shared file, seen by the grantee.
  assert.match(await ok(world.dir("b1"), "versions", join(shown, "plan.txt")), /2 versions of .*plan\.txt/);

  // A conflict inside the share: both edit plan.txt while bob is offline; bob's edit is kept as a conflicted copy.
  await b1.stop();
  await Deno.writeTextFile(join(world.dir("a1"), "Project", "plan.txt"), "alice's v3");
  await Deno.writeTextFile(join(world.dir("b1"), shown, "plan.txt"), "bob's v3");
  await waitForFile(join(world.dir("a2"), "Project", "plan.txt"), "alice's v3");
  const b1again = await world.client("b1", { user: "bob", password: BOB_PASSWORD });
  await waitForFile(join(world.dir("b1"), shown, "plan.txt"), "alice's v3");
  await waitFor(async () => {
    for await (const e of Deno.readDir(join(world.dir("a1"), "Project"))) {
      if (e.name !== "plan.txt" && e.name.startsWith("plan") && e.name.endsWith(".txt")) {
        return (await Deno.readTextFile(join(world.dir("a1"), "Project", e.name))) === "bob's v3";
      }
    }
    return false;
  }, { message: () => "bob's conflicted copy did not reach alice" });
  // Catch-up after being offline: alice's changes made meanwhile arrive when bob is back.
  await b1again.stop();
  await Deno.writeTextFile(join(world.dir("a1"), "Project", "while-away.txt"), "made while bob was away");
  await Deno.writeTextFile(join(world.dir("a1"), "not-shared.txt"), "not for bob");
  await waitForFile(join(world.dir("a2"), "not-shared.txt"), "not for bob");
  await world.client("b1", { user: "bob", password: BOB_PASSWORD });
  await waitForFile(join(world.dir("b1"), shown, "while-away.txt"), "made while bob was away");
  assert.equal(await exists(join(world.dir("b1"), "not-shared.txt")), false);
  void a1;
});

Deno.test("moving a file between own files and a write share sends no content again", async () => {
  await using world = await World.create();
  const { b1 } = await threeDevices(world);
  await ok(world.dir("a1"), "share", "Project", "--with", "bob", "--write");
  await waitForFile(join(world.dir("b1"), "Project", "plan.txt"), "alice's plan");
  const big = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7919) % 251);
  await Deno.writeFile(join(world.dir("b1"), "big.bin"), big);
  await waitFor(async () => {
    const { output } = await filesync(world.dir("b1"), "versions", "big.bin");
    return /1 version/.test(output);
  });
  const stored = await chunkBytes(world.server.dataDir);
  await Deno.rename(join(world.dir("b1"), "big.bin"), join(world.dir("b1"), "Project", "big.bin"));
  await waitForFile(join(world.dir("a2"), "Project", "big.bin"), big, 30_000);
  await b1.waitForOutput(/moved big\.bin -> Project\/big\.bin/);
  assert.equal(await chunkBytes(world.server.dataDir), stored, "no chunk was stored again");
  assert.doesNotMatch(b1.output, /uploaded Project\/big\.bin \(3\.0 MiB, 3\.0 MiB sent\)/);
});

Deno.test("a read-only share: an edit is never uploaded, kept as bob's own file; a delete comes back; access changes live", async () => {
  await using world = await World.create();
  const { a1, b1 } = await threeDevices(world);
  assert.equal(
    await ok(world.dir("a1"), "share", "Project", "--with", "bob"),
    `shared Project with bob (read-only); their devices show it as "Project"`,
  );
  await waitForFile(join(world.dir("b1"), "Project", "plan.txt"), "alice's plan");
  // bob edits the shared file: the edit goes to his own copy, the shared file returns to alice's version.
  await Deno.writeTextFile(join(world.dir("b1"), "Project", "plan.txt"), "bob's edit, not for alice");
  const own = join(world.dir("b1"), "plan (my edit of shared file).txt");
  await waitForFile(own, "bob's edit, not for alice");
  await waitForFile(join(world.dir("b1"), "Project", "plan.txt"), "alice's plan");
  await b1.waitForOutput(/Project\/plan\.txt is in a share you may only read: your change is not uploaded/);
  // The own copy is bob's: on the server in his namespace, never in alice's.
  await waitFor(async () => {
    const { output } = await filesync(world.dir("b1"), "versions", "plan (my edit of shared file).txt");
    return /1 version/.test(output);
  });
  assert.equal(await Deno.readTextFile(join(world.dir("a2"), "Project", "plan.txt")), "alice's plan");
  assert.match(await ok(world.dir("a1"), "versions", "Project/plan.txt"), /^1 version of/);
  // A new file and a delete inside the read-only share.
  await Deno.writeTextFile(join(world.dir("b1"), "Project", "new.txt"), "bob's new file");
  await waitForFile(join(world.dir("b1"), "new (my edit of shared file).txt"), "bob's new file");
  await waitForGone(join(world.dir("b1"), "Project", "new.txt"));
  await Deno.remove(join(world.dir("b1"), "Project", "plan.txt"));
  await b1.waitForOutput(/Project\/plan\.txt is in a share you may only read: it comes back/);
  await waitForFile(join(world.dir("b1"), "Project", "plan.txt"), "alice's plan");
  assert.equal(await exists(join(world.dir("a1"), "Project", "new.txt")), false);
  // alice makes it read-write: bob's devices hear it at once, and bob's edits reach her.
  assert.equal(
    await ok(world.dir("a1"), "share", "Project", "--with", "bob", "--write"),
    "Project is now read-write for bob",
  );
  await b1.waitForOutput(/share: alice's "Project" is now read-write for you/);
  await Deno.writeTextFile(join(world.dir("b1"), "Project", "plan.txt"), "bob may write now");
  await waitForFile(join(world.dir("a2"), "Project", "plan.txt"), "bob may write now");
  void a1;
});

Deno.test("unshare: the item goes from bob's devices, live; changes never uploaded stay as bob's own files", async () => {
  await using world = await World.create();
  const { a1, b1 } = await threeDevices(world);
  await Deno.writeTextFile(join(world.dir("a1"), "Project", "other.txt"), "another of alice's");
  await Deno.mkdir(join(world.dir("a1"), "Docs"));
  await Deno.writeTextFile(join(world.dir("a1"), "Docs", "d.txt"), "alice's doc");
  await ok(world.dir("a1"), "share", "Project", "--with", "bob", "--write");
  await ok(world.dir("a1"), "share", "Docs", "--with", "bob");
  await waitForFile(join(world.dir("b1"), "Project", "other.txt"), "another of alice's");
  await waitForFile(join(world.dir("b1"), "Docs", "d.txt"), "alice's doc");
  // Live: alice takes Docs back; it goes from bob's device, and bob's client says so.
  assert.equal(
    await ok(world.dir("a1"), "unshare", "Docs", "--with", "bob"),
    "stopped sharing Docs with bob",
  );
  await b1.waitForOutput(/share: alice's "Docs" is no longer shared with you/);
  await waitForGone(join(world.dir("b1"), "Docs"));
  assert.equal(
    await Deno.readTextFile(join(world.dir("a2"), "Docs", "d.txt")),
    "alice's doc",
    "alice keeps it",
  );
  // Offline: bob edits and adds in Project, never uploaded; alice unshares meanwhile.
  await b1.stop();
  await Deno.writeTextFile(join(world.dir("b1"), "Project", "plan.txt"), "bob's unsent edit");
  await Deno.writeTextFile(join(world.dir("b1"), "Project", "bobs-new.txt"), "bob's unsent file");
  assert.equal(await ok(world.dir("a1"), "unshare", "Project"), "stopped sharing Project with bob");
  const back = await world.client("b1", { user: "bob", password: BOB_PASSWORD });
  await waitForGone(join(world.dir("b1"), "Project", "other.txt"));
  assert.equal(await Deno.readTextFile(join(world.dir("b1"), "Project", "plan.txt")), "bob's unsent edit");
  assert.equal(
    await Deno.readTextFile(join(world.dir("b1"), "Project", "bobs-new.txt")),
    "bob's unsent file",
  );
  // They are bob's own now: on the server in his namespace; alice's files are untouched.
  await waitFor(async () => {
    const { output } = await filesync(world.dir("b1"), "versions", "Project/plan.txt");
    return /1 version .*\n.*b1/.test(output);
  }, { message: () => back.output });
  assert.equal(await Deno.readTextFile(join(world.dir("a2"), "Project", "plan.txt")), "alice's plan");
  assert.equal(await exists(join(world.dir("a2"), "Project", "bobs-new.txt")), false);
  assert.equal(await ok(world.dir("b1"), "shares"), "Nothing is shared, by you or with you");
  void a1;
});

Deno.test("a share whose name a device already uses locally waits: nothing of the device's goes to the owner", async () => {
  await using world = await World.create();
  const { b1 } = await threeDevices(world);
  await b1.stop();
  await Deno.mkdir(join(world.dir("b1"), "Project"));
  await Deno.writeTextFile(join(world.dir("b1"), "Project", "bobs.txt"), "bob's, made offline");
  await ok(world.dir("a1"), "share", "Project", "--with", "bob", "--write");
  const back = await world.client("b1", { user: "bob", password: BOB_PASSWORD });
  await back.waitForOutput(
    /share: alice's "Project" cannot show as "Project": this device has a file or folder/,
  );
  await waitFor(async () => {
    const { output } = await filesync(world.dir("b1"), "versions", "Project/bobs.txt");
    return /1 version/.test(output);
  }, { message: () => back.output });
  assert.equal(await exists(join(world.dir("a1"), "Project", "bobs.txt")), false, "not in alice's files");
  assert.equal(await exists(join(world.dir("b1"), "Project", "plan.txt")), false);
});

Deno.test("deleting a whole write share on the recipient's device deletes nothing of the owner's: it comes back", async () => {
  await using world = await World.create();
  const { b1 } = await threeDevices(world);
  await ok(world.dir("a1"), "share", "Project", "--with", "bob", "--write");
  await waitForFile(join(world.dir("b1"), "Project", "plan.txt"), "alice's plan");
  await Deno.remove(join(world.dir("b1"), "Project"), { recursive: true });
  await b1.waitForOutput(
    /Project is shared with you by alice: deleting or renaming it here deletes nothing of it on the server/,
  );
  await waitForFile(join(world.dir("b1"), "Project", "plan.txt"), "alice's plan");
  assert.equal(await Deno.readTextFile(join(world.dir("a2"), "Project", "plan.txt")), "alice's plan");
  assert.match(await ok(world.dir("a1"), "versions", "Project/plan.txt"), /^1 version of/);
  assert.doesNotMatch(b1.output, /deleted Project\/plan\.txt \(on the server\)/);
  // Renamed away: a copy stays as bob's own files, the share comes back, alice's files stay.
  await Deno.rename(join(world.dir("b1"), "Project"), join(world.dir("b1"), "Mine"));
  await waitForFile(join(world.dir("b1"), "Project", "plan.txt"), "alice's plan");
  await waitFor(async () => {
    const { output } = await filesync(world.dir("b1"), "versions", "Mine/plan.txt");
    return /1 version/.test(output);
  }, { message: () => b1.output });
  assert.equal(await Deno.readTextFile(join(world.dir("b1"), "Mine", "plan.txt")), "alice's plan");
  assert.equal(await Deno.readTextFile(join(world.dir("a2"), "Project", "plan.txt")), "alice's plan");
  assert.equal(await exists(join(world.dir("a2"), "Mine")), false);
});

Deno.test("a shared file: shown at the top under its name, edited both ways, then read-only", async () => {
  await using world = await World.create();
  const { b1 } = await threeDevices(world);
  await ok(world.dir("a1"), "share", "Project/plan.txt", "--with", "bob", "--write");
  await waitForFile(join(world.dir("b1"), "plan.txt"), "alice's plan");
  assert.equal(await exists(join(world.dir("b1"), "Project")), false, "only the file");
  await Deno.writeTextFile(join(world.dir("b1"), "plan.txt"), "bob's line");
  await waitForFile(join(world.dir("a2"), "Project", "plan.txt"), "bob's line");
  // alice edits on a1 only once a1 has bob's line: an edit made before would rightly be a conflict.
  await waitForFile(join(world.dir("a1"), "Project", "plan.txt"), "bob's line");
  await Deno.writeTextFile(join(world.dir("a1"), "Project", "plan.txt"), "alice's line");
  await waitForFile(join(world.dir("b1"), "plan.txt"), "alice's line");
  await ok(world.dir("a1"), "share", "Project/plan.txt", "--with", "bob");
  await b1.waitForOutput(/share: alice's "Project\/plan\.txt" is now read-only for you/);
  await Deno.writeTextFile(join(world.dir("b1"), "plan.txt"), "bob's second line");
  await waitForFile(join(world.dir("b1"), "plan (my edit of shared file).txt"), "bob's second line");
  await waitForFile(join(world.dir("b1"), "plan.txt"), "alice's line");
  assert.equal(await Deno.readTextFile(join(world.dir("a2"), "Project", "plan.txt")), "alice's line");
});

Deno.test("locks in a write share: alice's lock makes bob's copy read-only, bob's reaches alice's devices, the owner forces it open", async () => {
  await using world = await World.create();
  const { a1, b1 } = await threeDevices(world);
  await ok(world.dir("a1"), "share", "Project", "--with", "bob", "--write");
  const bobs = join(world.dir("b1"), "Project", "plan.txt");
  await waitForFile(bobs, "alice's plan");
  await ok(world.dir("a1"), "lock", "Project/plan.txt");
  await b1.waitForOutput(/Project\/plan\.txt is locked by alice on device "a1"/);
  await waitFor(() => (Deno.statSync(bobs).mode! & 0o222) === 0, { message: () => b1.output });
  const locks = JSON.parse(await ok(world.dir("b1"), "locks", "--json")).locks as {
    path: string;
    user: string;
  }[];
  assert.deepEqual(locks.map((l) => `${l.path} ${l.user}`), ["Project/plan.txt alice"]);
  const refused = await filesync(world.dir("b1"), "lock", "Project/plan.txt");
  assert.notEqual(refused.code, 0);
  assert.match(refused.output, /locked by alice/);
  await ok(world.dir("a1"), "unlock", "Project/plan.txt");
  await waitFor(() => (Deno.statSync(bobs).mode! & 0o200) !== 0, { message: () => b1.output });
  // bob locks; alice's commit waits; alice, the owner, forces it open.
  await ok(world.dir("b1"), "lock", "Project/plan.txt");
  await a1.waitForOutput(/Project\/plan\.txt is locked by bob on device "b1"/);
  assert.equal(
    await ok(world.dir("a2"), "unlock", "Project/plan.txt", "--force"),
    'unlocked Project/plan.txt (it was locked by bob on device "b1")',
  );
});

Deno.test("a share that arrives, or changes access, while the recipient is offline is followed when it is back", async () => {
  await using world = await World.create();
  const { b1 } = await threeDevices(world);
  await b1.stop();
  await ok(world.dir("a1"), "share", "Project", "--with", "bob");
  const again = await world.client("b1", { user: "bob", password: BOB_PASSWORD });
  await waitForFile(join(world.dir("b1"), "Project", "plan.txt"), "alice's plan");
  await again.stop();
  await ok(world.dir("a1"), "share", "Project", "--with", "bob", "--write");
  await Deno.writeTextFile(join(world.dir("b1"), "Project", "plan.txt"), "bob, after the change");
  await world.client("b1", { user: "bob", password: BOB_PASSWORD });
  await waitForFile(join(world.dir("a2"), "Project", "plan.txt"), "bob, after the change");
});
