// End-to-end: a vanished, replaced or unreadable folder, a mass delete and a new ignore rule delete nothing.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  describeTree,
  Proc,
  readTree,
  readTreeWhileChanging,
  run,
  TempDir,
  waitFor,
  waitForFile,
  waitForGone,
  waitForSameTree,
  World,
} from "./harness.ts";

/** Writes `count` files spread over a few folders; returns their relative paths. */
async function makeFiles(dir: string, count: number): Promise<string[]> {
  const paths: string[] = [];
  for (let i = 0; i < count; i++) {
    const path = `folder-${i % 3}/file-${i}.txt`;
    await Deno.mkdir(join(dir, `folder-${i % 3}`), { recursive: true });
    await Deno.writeTextFile(join(dir, path), `content of file ${i}\n`);
    paths.push(path);
  }
  return paths;
}

/**
 * Deletes `paths` in `dir` while that device's client is stopped, then starts it again: its first full scan
 * sees every delete at once (a running client could scan between two of them and let the first few through).
 */
async function deleteWhileStopped(
  world: World,
  device: string,
  client: Proc,
  paths: string[],
): Promise<Proc> {
  await client.stop();
  for (const path of paths) await Deno.remove(join(world.dir(device), path));
  return await world.client(device);
}

/** Waits until `dir` holds exactly the tree `want` (as described by describeTree). */
async function waitForTree(dir: string, want: string, timeoutMs = 20_000): Promise<void> {
  let last = "";
  await waitFor(async () => {
    const tree = await readTreeWhileChanging(dir);
    last = tree ? describeTree(tree) : "(changed while read)";
    return last === want;
  }, {
    timeoutMs,
    message: () => `${dir} differs.\nwant:\n${want}\ngot:\n${last}`,
  });
}

/** Starts a fresh device and checks that the server still holds `want` (what it downloads). */
async function assertServerHolds(world: World, device: string, want: string): Promise<void> {
  const proc = await world.client(device);
  await waitForTree(world.dir(device), want);
  await proc.stop();
}

Deno.test("a synced folder moved away deletes nothing; moving it back resumes with nothing lost", async () => {
  await using world = await World.create();
  const clientA = await world.client("A");
  await world.client("B");
  const a = world.dir("A"), b = world.dir("B");
  await makeFiles(a, 24);
  await waitForSameTree(a, b);
  const tree = describeTree(await readTree(b));

  const from = clientA.output.length;
  await Deno.rename(a, `${a}-away`);
  await waitFor(() => /safety stop: the synced folder .* is missing/.test(clientA.output.slice(from)), {
    message: () => `no safety stop in:\n${clientA.output.slice(from)}`,
  });
  assert.match(clientA.output.slice(from), /resumes by itself/);
  assert.equal(describeTree(await readTree(b)), tree, "B lost files");
  await assertServerHolds(world, "C", tree);
  assert.equal(describeTree(await readTree(b)), tree, "B lost files");

  await Deno.rename(`${a}-away`, a);
  await clientA.waitForOutput(/the synced folder is back/);
  await Deno.writeTextFile(join(b, "after.txt"), "after the move back");
  await waitForFile(join(a, "after.txt"), "after the move back");
  await waitForSameTree(a, b);
  assert.equal((await readTree(a)).size, (await readTree(b)).size);
  assert.doesNotMatch(clientA.output, /deleted .* \(on the server\)/);
});

Deno.test("a synced folder replaced by an empty one deletes nothing; a restart fills it again", async () => {
  await using world = await World.create();
  const clientA = await world.client("A");
  await world.client("B");
  const a = world.dir("A"), b = world.dir("B");
  await makeFiles(a, 24);
  await waitForSameTree(a, b);
  const tree = describeTree(await readTree(b));

  const from = clientA.output.length;
  await Deno.rename(a, `${a}-old`);
  await Deno.mkdir(a);
  await waitFor(() => /safety stop: the synced folder .* was replaced/.test(clientA.output.slice(from)), {
    message: () => `no safety stop in:\n${clientA.output.slice(from)}`,
  });
  assert.equal(describeTree(await readTree(b)), tree, "B lost files");
  await assertServerHolds(world, "C", tree);
  assert.equal(describeTree(await readTree(b)), tree, "B lost files");

  // The way on that the message names: restart the client with the folder as it is now.
  await clientA.stop();
  await world.client("A");
  await waitForSameTree(a, b);
  assert.equal(describeTree(await readTree(a)), tree);
});

Deno.test("the state folder removed while the client runs deletes nothing; a restart syncs again", async () => {
  await using world = await World.create();
  const clientA = await world.client("A");
  await world.client("B");
  const a = world.dir("A"), b = world.dir("B");
  await makeFiles(a, 24);
  await waitForSameTree(a, b);
  const tree = describeTree(await readTree(b));

  const from = clientA.output.length;
  await Deno.remove(join(a, ".filesync"), { recursive: true });
  await waitFor(
    () =>
      /safety stop: .* was replaced \(its \.filesync\/ state folder vanished\)/.test(
        clientA.output.slice(from),
      ),
    {
      message: () => `no safety stop in:\n${clientA.output.slice(from)}`,
    },
  );
  await Deno.remove(join(a, "folder-0"), { recursive: true });
  await assertServerHolds(world, "C", tree);
  assert.equal(describeTree(await readTree(b)), tree, "B lost files");

  await clientA.stop();
  await world.client("A");
  await waitForSameTree(a, b);
  assert.equal(describeTree(await readTree(a)), tree);
});

Deno.test("an unmounted synced folder deletes nothing; mounting it again resumes", async () => {
  await using world = await World.create();
  // The folder is a bind mount of another one: unmounting leaves the empty mount point in its place.
  const a = world.dir("A"), b = world.dir("B"), disk = world.tmp.join("disk");
  await Deno.mkdir(a);
  await Deno.mkdir(disk);
  const mount = () => new Deno.Command("mount", { args: ["--bind", disk, a], stderr: "piped" }).output();
  const umount = () => new Deno.Command("umount", { args: ["-l", a], stderr: "null" }).output();
  const mounted = await mount();
  assert.equal(mounted.code, 0, `cannot bind-mount: ${new TextDecoder().decode(mounted.stderr)}`);
  try {
    const clientA = await world.client("A");
    await world.client("B");
    await makeFiles(a, 24);
    await waitForSameTree(a, b);
    const tree = describeTree(await readTree(b));

    const from = clientA.output.length;
    assert.equal((await umount()).code, 0);
    await waitFor(() => /safety stop: the synced folder .* was replaced/.test(clientA.output.slice(from)), {
      message: () => `no safety stop in:\n${clientA.output.slice(from)}`,
    });
    await assertServerHolds(world, "C", tree);
    assert.equal(describeTree(await readTree(b)), tree, "B lost files");

    assert.equal((await mount()).code, 0);
    await clientA.waitForOutput(/the synced folder is back/);
    await Deno.writeTextFile(join(b, "after.txt"), "mounted again");
    await waitForFile(join(a, "after.txt"), "mounted again");
    await waitForSameTree(a, b);
    await clientA.stop();
  } finally {
    await umount();
  }
});

Deno.test("a synced folder the client cannot read deletes nothing; readable again, it resumes", async () => {
  await using world = await World.create();
  // Root reads any folder whatever its mode: run that client as an unprivileged user so chmod 000 is real.
  const asRoot = Deno.uid() === 0;
  const nobody = 65534;
  await Deno.chmod(world.tmp.path, 0o755);
  const a = world.dir("A"), b = world.dir("B");
  await Deno.mkdir(a);
  let command: string[] | undefined;
  let ca = world.server.caPath;
  if (asRoot) {
    const root = new URL("..", import.meta.url).pathname;
    const bundle = world.tmp.join("filesync.js");
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--config", join(root, "deno.json"), "-o", bundle, join(root, "main.ts")],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(built.code, 0, new TextDecoder().decode(built.stderr));
    await Deno.chmod(bundle, 0o644);
    ca = world.tmp.join("ca.pem");
    await Deno.copyFile(world.server.caPath, ca);
    await Deno.chmod(ca, 0o644);
    const home = world.tmp.join("nobody-home");
    await Deno.mkdir(home);
    await Deno.chown(home, nobody, nobody);
    await Deno.chown(a, nobody, nobody);
    command = [
      "setpriv",
      `--reuid=${nobody}`,
      `--regid=${nobody}`,
      "--clear-groups",
      "env",
      `HOME=${home}`,
      `DENO_DIR=${home}/deno`,
      Deno.execPath(),
      "run",
      "--allow-all",
      "--unstable-kv",
      bundle,
    ];
  }
  const clientA = await world.client("A", { command, ca });
  await world.client("B");
  await makeFiles(b, 24);
  await waitForSameTree(a, b);
  const tree = describeTree(await readTree(b));

  const from = clientA.output.length;
  await Deno.chmod(a, 0o000);
  try {
    await waitFor(() => /safety stop: cannot read the synced folder/.test(clientA.output.slice(from)), {
      message: () => `no safety stop in:\n${clientA.output.slice(from)}`,
    });
    assert.equal(describeTree(await readTree(b)), tree, "B lost files");
    await assertServerHolds(world, "C", tree);
    assert.equal(describeTree(await readTree(b)), tree, "B lost files");
  } finally {
    await Deno.chmod(a, 0o755);
  }
  await clientA.waitForOutput(/the synced folder is back/);
  await Deno.writeTextFile(join(b, "after.txt"), "readable again");
  await waitForFile(join(a, "after.txt"), "readable again");
  await waitForSameTree(a, b);

  // A folder inside that cannot be read is unknown, not empty: its files are deleted nowhere.
  const treeAfter = await readTree(b);
  await Deno.chmod(join(a, "folder-1"), 0o000);
  try {
    await clientA.waitForOutput(/not syncing folder-1: cannot read folder/);
    // A's next change reaches B after whatever A sent in the scan that met the unreadable folder.
    await Deno.writeTextFile(join(a, "sentinel.txt"), "after the unreadable folder");
    await waitForFile(join(b, "sentinel.txt"), "after the unreadable folder");
  } finally {
    await Deno.chmod(join(a, "folder-1"), 0o755);
  }
  const treeB = await readTree(b);
  for (const [path, hash] of treeAfter) assert.equal(treeB.get(path), hash, `B lost ${path}`);
});

Deno.test("most files deleted: nothing is deleted elsewhere until confirm-deletes, the rest keeps syncing", async () => {
  await using world = await World.create();
  let clientA = await world.client("A");
  await world.client("B");
  const a = world.dir("A"), b = world.dir("B");
  const paths = await makeFiles(a, 30);
  await waitForSameTree(a, b);

  const gone = paths.slice(0, 25);
  clientA = await deleteWhileStopped(world, "A", clientA, gone);
  await waitFor(() => /safety stop: this scan would delete 25 of the 30 files/.test(clientA.output), {
    message: () => `no safety stop in:\n${clientA.output}`,
  });
  assert.match(clientA.output, /filesync confirm-deletes/);
  assert.match(clientA.output, /--allow-mass-delete/);
  for (const path of gone) assert.ok((await readTree(b)).has(path), `B lost ${path}`);

  // Everything else keeps syncing: uploads, downloads and deletes made elsewhere.
  await Deno.writeTextFile(join(a, "new-on-a.txt"), "from A");
  await waitForFile(join(b, "new-on-a.txt"), "from A");
  await Deno.writeTextFile(join(b, "new-on-b.txt"), "from B");
  await waitForFile(join(a, "new-on-b.txt"), "from B");
  await Deno.remove(join(b, paths[29]));
  await waitForGone(join(a, paths[29]));
  for (const path of gone) assert.ok((await readTree(b)).has(path), `B lost ${path}`);

  const confirm = new Proc("confirm", ["confirm-deletes"], { cwd: join(a, "folder-0") });
  assert.equal(await confirm.exited(), 0, confirm.output);
  assert.match(confirm.output, /confirmed: the client will delete 25 files on the server/);
  for (const path of gone) await waitForGone(join(b, path));
  await waitForSameTree(a, b);

  const again = await run(["confirm-deletes", "--dir", a]);
  assert.equal(again.code, 0, again.output);
  assert.match(again.output, /nothing to confirm/);
});

Deno.test("a new ignore rule stops syncing the paths it matches and deletes them nowhere", async () => {
  await using world = await World.create();
  const clientA = await world.client("A");
  const clientB = await world.client("B");
  const a = world.dir("A"), b = world.dir("B");
  await Deno.writeTextFile(join(a, "a.log"), "log a\n");
  await Deno.writeTextFile(join(a, "b.log"), "log b\n");
  await Deno.writeTextFile(join(a, "keep.txt"), "kept\n");
  await waitForSameTree(a, b);

  await Deno.writeTextFile(join(a, ".filesyncignore"), "*.log\n");
  await clientA.waitForOutput(/no longer syncing 2 paths? that \.filesyncignore now matches/);
  await waitForFile(join(b, ".filesyncignore"), "*.log\n");
  await clientB.waitForOutput(/no longer syncing 2 paths? that \.filesyncignore now matches/);
  assert.equal(await Deno.readTextFile(join(a, "a.log")), "log a\n");
  assert.equal(await Deno.readTextFile(join(b, "a.log")), "log a\n");
  assert.equal(await Deno.readTextFile(join(b, "b.log")), "log b\n");

  // Later edits of an ignored file stay on this device.
  await Deno.writeTextFile(join(a, "a.log"), "log a, edited while ignored\n");
  await Deno.writeTextFile(join(a, "sentinel.txt"), "after the edit");
  await waitForFile(join(b, "sentinel.txt"), "after the edit");
  assert.equal(await Deno.readTextFile(join(b, "a.log")), "log a\n");

  // Removing the rule brings them back into sync without loss: equal content links, different content conflicts.
  await Deno.writeTextFile(join(a, ".filesyncignore"), "");
  await waitFor(
    async () =>
      [...(await readTreeWhileChanging(b))?.keys() ?? []].some((p) => p.startsWith("a (conflicted copy")),
    {
      timeoutMs: 20_000,
      message: () => `no conflicted copy of a.log on B`,
    },
  );
  await waitForSameTree(a, b);
  const names = [...(await readTree(a)).keys()];
  const copy = names.find((p) => p.startsWith("a (conflicted copy"))!;
  const contents = [await Deno.readTextFile(join(a, "a.log")), await Deno.readTextFile(join(a, copy))].sort();
  assert.deepEqual(contents, ["log a\n", "log a, edited while ignored\n"]);
  assert.equal(await Deno.readTextFile(join(b, "b.log")), "log b\n");
});

Deno.test("putting the files back lifts the mass-delete stop with nothing deleted anywhere", async () => {
  await using world = await World.create();
  let clientA = await world.client("A");
  await world.client("B");
  const a = world.dir("A"), b = world.dir("B");
  const paths = await makeFiles(a, 30);
  await waitForSameTree(a, b);
  const tree = describeTree(await readTree(b));

  const saved = new Map<string, string>();
  for (const path of paths.slice(0, 25)) saved.set(path, await Deno.readTextFile(join(a, path)));
  clientA = await deleteWhileStopped(world, "A", clientA, paths.slice(0, 25));
  await clientA.waitForOutput(/safety stop: this scan would delete 25 of the 30 files/);
  for (const [path, text] of saved) await Deno.writeTextFile(join(a, path), text);
  await clientA.waitForOutput(/safety stop lifted/);
  await waitForGone(join(a, ".filesync", "held-deletes.json"));
  assert.equal(describeTree(await readTree(b)), tree, "B lost files");
  const confirm = await run(["confirm-deletes", "--dir", a]);
  assert.match(confirm.output, /nothing to confirm/);
  await Deno.writeTextFile(join(a, "sentinel.txt"), "after");
  await waitForFile(join(b, "sentinel.txt"), "after");
  await waitForSameTree(a, b);
});

Deno.test("a confirmation made while the client is stopped is taken by its next start", async () => {
  await using world = await World.create();
  let clientA = await world.client("A");
  await world.client("B");
  const a = world.dir("A"), b = world.dir("B");
  const paths = await makeFiles(a, 24);
  await waitForSameTree(a, b);
  clientA = await deleteWhileStopped(world, "A", clientA, paths.slice(0, 22));
  await clientA.waitForOutput(/safety stop: this scan would delete 22 of the 24 files/);
  await clientA.stop();

  const confirm = await run(["confirm-deletes", "--dir", a]);
  assert.equal(confirm.code, 0, confirm.output);
  assert.match(confirm.output, /confirmed: the client will delete 22 files on the server/);
  for (const path of paths.slice(0, 22)) assert.ok((await readTree(b)).has(path), `B lost ${path} too early`);
  await world.client("A");
  for (const path of paths.slice(0, 22)) await waitForGone(join(b, path));
  await waitForSameTree(a, b);
});

Deno.test("--allow-mass-delete lets a mass delete through without asking", async () => {
  await using world = await World.create();
  const clientA = await world.client("A", { extraArgs: ["--allow-mass-delete"] });
  await world.client("B");
  const a = world.dir("A"), b = world.dir("B");
  const paths = await makeFiles(a, 24);
  await waitForSameTree(a, b);
  for (const path of paths.slice(0, 22)) await Deno.remove(join(a, path));
  for (const path of paths.slice(0, 22)) await waitForGone(join(b, path));
  await waitForSameTree(a, b);
  assert.doesNotMatch(clientA.output, /safety stop/);
});

Deno.test("confirm-deletes and the safety options: help, one-line errors, exit codes", async () => {
  await using tmp = new TempDir();
  const help = await run(["confirm-deletes", "--help"]);
  assert.equal(help.code, 0, help.output);
  assert.match(help.output, /Usage: filesync confirm-deletes \[--dir DIR\]/);
  const clientHelp = await run(["client", "--help"]);
  assert.match(
    clientHelp.output,
    /--mass-delete-percent N[\s\S]*--mass-delete-min N[\s\S]*--allow-mass-delete/,
  );

  const outside = new Proc("confirm", ["confirm-deletes"], { cwd: tmp.path });
  assert.equal(await outside.exited(), 1, outside.output);
  assert.match(outside.output, /^filesync: Not inside a synced folder: run it there or give --dir DIR\n$/);
  const notSynced = await run(["confirm-deletes", "--dir", tmp.path]);
  assert.equal(notSynced.code, 1, notSynced.output);
  assert.match(notSynced.output, /is not a synced folder/);

  const base = ["client", "--server", "127.0.0.1:1", "--user", "a", "--dir", tmp.join("x")];
  for (
    const [args, pattern] of [
      [["--mass-delete-percent", "lots"], /Invalid --mass-delete-percent "lots"/],
      [["--mass-delete-percent", "150"], /Invalid --mass-delete-percent "150"/],
      [["--mass-delete-min", "2.5"], /Invalid --mass-delete-min "2.5"/],
    ] as const
  ) {
    const result = await run([...base, ...args]);
    assert.equal(result.code, 2, result.output);
    assert.match(result.output, pattern);
    assert.equal(result.output.trim().split("\n").length, 1, result.output);
  }
});
