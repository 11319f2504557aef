// Other local users: the admin socket, the data folder and the client's state folder are out of their reach.
import assert from "node:assert/strict";
import { join } from "node:path";
import { addUser, filesyncCommand, Proc, run, startClient, TempDir, waitFor } from "./harness.ts";

/** The filesync command run with a permissive umask, as a careless service manager might start it. */
const UMASK_000 = ["sh", "-c", 'umask 000; exec "$0" "$@"', ...filesyncCommand()];
/** Runs a command as the unprivileged user nobody (the tests run as root). */
const AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"];
const PYTHON = "/usr/bin/python3";

/** Starts `filesync server` with umask 000 and waits until it listens. */
async function startLooseServer(dataDir: string): Promise<Proc & { port: number }> {
  const server = new Proc("server", ["server", "--data", dataDir, "--port", "0", "--host", "127.0.0.1"], {
    command: UMASK_000,
  }) as Proc & { port: number };
  try {
    server.port = Number((await server.waitForOutput(/listening on [^\s]+:(\d+)/))[1]);
  } catch (error) {
    await server.stop();
    throw error;
  }
  return server;
}

/** Every file and folder under `dir` (itself included) whose mode lets anyone but the owner in. */
async function openToOthers(dir: string): Promise<string[]> {
  const out: string[] = [];
  const check = async (path: string) => {
    const info = await Deno.lstat(path);
    if (info.isSymlink) return;
    if ((info.mode! & 0o077) !== 0) out.push(`${path} ${(info.mode! & 0o777).toString(8)}`);
    if (info.isDirectory) { for await (const e of Deno.readDir(path)) await check(join(path, e.name)); }
  };
  await check(dir);
  return out;
}

/** Every regular file under `dir`. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory) out.push(...await filesUnder(path));
    else if (e.isFile) out.push(path);
  }
  return out;
}

/** Opens everything up as an old install (or a careless `chmod -R`) would leave it. */
async function loosen(dir: string): Promise<void> {
  const info = await Deno.lstat(dir);
  if (info.isSymlink || !(info.isDirectory || info.isFile)) return;
  await Deno.chmod(dir, info.isDirectory ? 0o755 : 0o644);
  if (info.isDirectory) { for await (const e of Deno.readDir(dir)) await loosen(join(dir, e.name)); }
}

/** Python run as nobody: tries to read each file; prints the ones it could read. */
const READ_ATTEMPT = `
import sys
for p in sys.argv[1:]:
    try:
        open(p, "rb").read(1); print("READ", p)
    except OSError:
        pass
`;

Deno.test("the admin socket is never reachable by another local user, even with umask 000", async () => {
  await using tmp = new TempDir();
  await Deno.chmod(tmp.path, 0o755);
  const data = tmp.join("data");
  await Deno.mkdir(data, { mode: 0o755 });
  await Deno.chmod(data, 0o755);
  const stop = tmp.join("stop");
  // The attacker connects in a tight loop wherever the socket may appear and asks to create a user.
  const attacker = new Proc("attacker", [
    "-c",
    `
import os, socket, sys
data, stop = sys.argv[1], sys.argv[2]
paths = [os.path.join(data, "admin.sock"), os.path.join(data, "admin", "admin.sock")]
hits = 0
tries = 0
while not os.path.exists(stop):
    for p in paths:
        tries += 1
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(p)
            hits += 1
            s.sendall(b'{"op":"user-add","name":"mallory","password":"owned by nobody"}\\n')
            s.recv(1000)
        except OSError:
            pass
        finally:
            s.close()
print("tries", tries, "hits", hits, flush=True)
`,
    data,
    stop,
  ], { command: [...AS_NOBODY, PYTHON] });
  try {
    for (let start = 0; start < 4; start++) {
      await loosen(data);
      const server = await startLooseServer(data);
      await server.stop();
    }
  } finally {
    await Deno.writeTextFile(stop, "");
    await attacker.exited();
  }
  const [, tries, hits] = attacker.output.match(/tries (\d+) hits (\d+)/) ?? [];
  assert.ok(Number(tries) > 100, `the attacker barely ran:\n${attacker.output}`);
  assert.equal(Number(hits), 0, `another local user reached the admin socket ${hits} times`);
  const users = await run(["user", "list", "--data", data]);
  assert.doesNotMatch(users.output, /mallory/, "another local user created a user");
});

Deno.test("the server makes its data folder 0700 and its files 0600 whatever they were, and warns", async () => {
  await using tmp = new TempDir();
  await Deno.chmod(tmp.path, 0o755);
  const data = tmp.join("data");
  let server = await startLooseServer(data);
  try {
    assert.doesNotMatch(server.output, /warning: data folder/, "a fresh data folder needs no fixing");
    await addUser(data, "alice", "alice's password");
    // A client stores some content, so chunks exist.
    const dir = tmp.join("a");
    await Deno.mkdir(dir);
    await Deno.writeTextFile(join(dir, "secret.txt"), "the content of a private file");
    const client = startClient({
      server: `127.0.0.1:${server.port}`,
      ca: join(data, "certs", "ca.pem"),
      user: "alice",
      password: "alice's password",
      dir,
      device: "a",
    });
    try {
      await client.waitForOutput(/uploaded secret.txt/);
    } finally {
      await client.stop();
    }
    assert.deepEqual(await openToOthers(data), [], "files made with umask 000 are open to others");
    await server.stop();
    // An older install, or a careless chmod -R: everything is readable by all.
    await loosen(data);
    server = await startLooseServer(data);
    assert.match(server.output, /warning: data folder .* was readable by other local users \(mode 755\)/);
    assert.deepEqual(await openToOthers(data), [], "the server left files open to others");
    const files = (await filesUnder(data)).filter((f) => !f.endsWith(".sock"));
    assert.ok(files.some((f) => f.includes("/chunks/")) && files.some((f) => f.endsWith("metadata.kv")));
    const attempt = new Proc("reader", ["-c", READ_ATTEMPT, ...files], { command: [...AS_NOBODY, PYTHON] });
    await attempt.exited();
    assert.doesNotMatch(attempt.output, /READ/, `another local user read:\n${attempt.output}`);
  } finally {
    await server.stop();
  }
});

Deno.test("the client makes .filesync 0700 and its state files 0600 whatever they were, and warns", async () => {
  await using tmp = new TempDir();
  const data = tmp.join("data");
  const server = await startLooseServer(data);
  try {
    await addUser(data, "alice", "alice's password");
    const dir = tmp.join("a");
    await Deno.mkdir(join(dir, ".filesync"), { recursive: true });
    await Deno.chmod(join(dir, ".filesync"), 0o755);
    const options = {
      server: `127.0.0.1:${server.port}`,
      ca: join(data, "certs", "ca.pem"),
      user: "alice",
      password: "alice's password",
      dir,
      device: "a",
      command: UMASK_000,
    };
    let client = startClient(options);
    try {
      await client.waitForOutput(/connected to /);
      assert.match(client.output, /warning: .*\.filesync was readable by other local users \(mode 755\)/);
      await Deno.writeTextFile(join(dir, "f.txt"), "x");
      await client.waitForOutput(/uploaded f.txt/);
    } finally {
      await client.stop();
    }
    assert.deepEqual(await openToOthers(join(dir, ".filesync")), []);
    // Opened up again (state.kv was 0644 before this fix): the next start closes it.
    await loosen(join(dir, ".filesync"));
    client = startClient(options);
    try {
      await client.waitForOutput(/connected to /);
      await waitFor(async () => (await openToOthers(join(dir, ".filesync"))).length === 0, {
        message: () => "the state folder stayed open to others",
      });
      const names = (await filesUnder(join(dir, ".filesync"))).map((f) => f.split("/").pop());
      assert.ok(names.includes("state.kv") && names.includes("token"), names.join(" "));
    } finally {
      await client.stop();
    }
  } finally {
    await server.stop();
  }
});
