// End-to-end: bad input and hostile situations at the command line end in one clear line, never a stack trace.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ensureServerCertificate } from "../certs/ca.ts";
import {
  addUser,
  type ClientOptions,
  Proc,
  run,
  ServerProc,
  startClient,
  startConnectedClient,
  startServer,
  TempDir,
  waitFor,
  waitForFile,
  World,
} from "./harness.ts";

/** Asserts the output holds no stack trace and no uncaught-error report. */
function assertNoStackTrace(output: string): void {
  assert.doesNotMatch(output, /^\s+at /m, `stack trace in output:\n${output}`);
  assert.ok(!output.includes("error: Uncaught"), `uncaught error in output:\n${output}`);
}

/** The lines the CLI prints for a failure ("filesync: …"). */
function failureLines(output: string): string[] {
  return output.split("\n").filter((line) => line.startsWith("filesync: "));
}

/** Asserts a failed command: the exit code, no stack trace, and exactly one failure line matching every pattern. */
function assertFailure(
  result: { code: number; output: string },
  patterns: RegExp[],
  expectedCode?: number,
): string {
  const { code, output } = result;
  if (expectedCode === undefined) assert.notEqual(code, 0, `exit code 0; output:\n${output}`);
  else assert.equal(code, expectedCode, `exit code ${code}, not ${expectedCode}; output:\n${output}`);
  assertNoStackTrace(output);
  const lines = failureLines(output);
  assert.equal(lines.length, 1, `expected one failure line, got:\n${output}`);
  for (const pattern of patterns) assert.match(lines[0], pattern);
  return lines[0];
}

/** Starts a client and waits for it to exit by itself (it must, within the deadline). */
async function runClient(
  options: ClientOptions,
  timeoutMs = 15_000,
): Promise<{ code: number; output: string }> {
  await using client = startClient(options);
  await waitFor(() => client.exitCode !== null, {
    timeoutMs,
    message: () => `the client is still running; output:\n${client.output}`,
  });
  return { code: await client.exited(), output: client.output };
}

/** Every file below `dir`, recursively. */
async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await filesBelow(path));
    else if (entry.isFile) out.push(path);
  }
  return out;
}

/** Asserts no file below `dir` contains `secret` (as UTF-8 bytes). */
async function assertNotStoredBelow(dir: string, secret: string): Promise<void> {
  const needle = new TextEncoder().encode(secret);
  for (const path of await filesBelow(dir)) {
    const bytes = await Deno.readFile(path);
    outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
      for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
      assert.fail(`${path} contains the password`);
    }
  }
}

// ---- logging in ----

Deno.test("a wrong password and an unknown user end the client with the same Login failed line", async () => {
  await using world = await World.create();
  const wrong = await runClient({
    server: world.server,
    user: world.user,
    password: "not the password",
    dir: world.dir("wrong"),
    device: "wrong",
  });
  const unknown = await runClient({
    server: world.server,
    user: "mallory",
    password: "not the password",
    dir: world.dir("unknown"),
    device: "unknown",
  });
  const wrongLine = assertFailure(wrong, [/Login failed/i]);
  const unknownLine = assertFailure(unknown, [/Login failed/i]);
  assert.equal(wrongLine, unknownLine, "the messages tell which user names exist");
  assert.doesNotMatch(unknownLine, /mallory|exist|unknown user/i);
  for (const output of [wrong.output, unknown.output, world.server.output]) {
    assert.ok(!output.includes("not the password"), `a tried password was printed:\n${output}`);
  }
  await assert.rejects(Deno.stat(world.dir("wrong/.filesync/token")), Deno.errors.NotFound);
});

Deno.test("a client that does not trust the server certificate exits with a line naming --ca", async () => {
  await using world = await World.create();
  const other = await ensureServerCertificate(world.tmp.join("other-server"));
  for (const [name, ca] of [["no --ca", null], ["another server's CA", other.caPath]] as const) {
    const result = await runClient({
      server: world.server,
      ca,
      user: world.user,
      password: world.password,
      dir: world.dir(name.replaceAll(/\W/g, "")),
      device: "untrusting",
    });
    const line = assertFailure(result, [/certificate/i, /not trusted/i, /--ca/]);
    assert.doesNotMatch(line, /Login/, `${name}: ${line}`);
  }
  assert.ok(!world.server.output.includes("login "), "a client logged in over an untrusted connection");
});

// ---- server not running, port taken, bad data folders ----

Deno.test("a client started while the server is down works offline and syncs once a server starts", async () => {
  await using world = await World.create();
  const { dataDir, port } = world.server;
  await world.server.stop();
  const client = startClient({
    server: world.server,
    user: world.user,
    password: world.password,
    dir: world.dir("A"),
    device: "A",
  });
  world.procs.push(client);
  await client.waitForOutput(/cannot reach server/i);
  assert.match(client.output, /offline|keep trying/i);
  assert.equal(client.exitCode, null, `the client gave up:\n${client.output}`);
  await Deno.writeTextFile(join(world.dir("A"), "made-offline.txt"), "written while the server was down");

  world.server = await startServer(dataDir, [], port);
  await client.waitForOutput(/connected to /, 20_000);
  assert.equal(client.exitCode, null);
  await world.client("B");
  await waitForFile(join(world.dir("B"), "made-offline.txt"), "written while the server was down");
  assertNoStackTrace(client.output);
  assert.equal(failureLines(client.output).length, 0);
  assert.equal(
    client.output.match(/cannot reach server/gi)?.length,
    1,
    "the retry loop repeated its message",
  );
});

Deno.test("a second server on a port already in use exits with address already in use", async () => {
  await using world = await World.create();
  await using second = new ServerProc(world.tmp.join("second"), [], world.server.port);
  const code = await second.exited();
  assertFailure({ code, output: second.output }, [
    /address already in use/i,
    new RegExp(`${world.server.port}`),
  ]);
  await world.client("A");
});

Deno.test("a data folder that cannot be created stops the server and user add with one line", async () => {
  await using tmp = new TempDir();
  const file = tmp.join("a-file");
  await Deno.writeTextFile(file, "not a folder");
  for (const dataDir of [join(file, "data"), join(file, "deeper", "data"), file]) {
    const server = await run(["server", "--data", dataDir, "--port", "0", "--host", "127.0.0.1"]);
    assertFailure(server, [/data folder/i, new RegExp(dataDir.replaceAll("/", "\\/"))]);
    const user = await run(["user", "add", "alice", "--data", dataDir], { env: { FILESYNC_PASSWORD: "pw" } });
    assertFailure(user, [/data folder/i]);
  }
  assert.equal(await Deno.readTextFile(file), "not a folder");
});

Deno.test("a second server on the same data folder is refused while the first runs", async () => {
  await using world = await World.create();
  const second = await run(["server", "--data", world.server.dataDir, "--port", "0", "--host", "127.0.0.1"]);
  assertFailure(second, [/already running/i, /data folder/i]);
  assert.equal(world.server.exitCode, null);
  await world.client("A");
});

Deno.test("a client whose --dir is a regular file exits with one line", async () => {
  await using world = await World.create();
  const file = world.tmp.join("a-file");
  await Deno.writeTextFile(file, "keep me");
  const result = await runClient({
    server: world.server,
    user: world.user,
    password: world.password,
    dir: file,
    device: "A",
  });
  assertFailure(result, [/a-file/, /is a file|not a folder/i]);
  assert.equal(await Deno.readTextFile(file), "keep me");
});

// ---- help, version, usage errors ----

Deno.test("--help of every command exits 0 with usage, and --version prints the version", async () => {
  const cases: [string[], RegExp][] = [
    [["--help"], /Usage:[\s\S]*filesync server[\s\S]*filesync client/],
    [["help"], /Usage:/],
    [["server", "--help"], /Usage: filesync server[\s\S]*--data/],
    [["user", "--help"], /Usage: filesync user[\s\S]*passwd/],
    [["client", "--help"], /Usage: filesync client[\s\S]*--ca/],
  ];
  const results = await Promise.all(cases.map(([args]) => run(args)));
  results.forEach(({ code, output }, i) => {
    assert.equal(code, 0, `${cases[i][0].join(" ")}:\n${output}`);
    assert.match(output, cases[i][1]);
    assertNoStackTrace(output);
  });
  const version = await run(["--version"]);
  assert.equal(version.code, 0);
  assert.equal(version.output.trim(), "filesync 0.1.0");
});

const USAGE_ERRORS: { name: string; args: string[]; pattern: RegExp }[] = [
  { name: "an unknown command", args: ["frobnicate"], pattern: /Unknown command "frobnicate"/ },
  { name: "an unknown server option", args: ["server", "--frob"], pattern: /--frob/ },
  { name: "an unknown client option", args: ["client", "--passwd", "x"], pattern: /--passwd/ },
  {
    name: "an unknown user command",
    args: ["user", "rename", "a", "--data", "/nonexistent"],
    pattern: /rename/,
  },
  { name: "a missing --data", args: ["server", "--port", "0"], pattern: /--data/ },
  { name: "a missing --port", args: ["server", "--data", "/nonexistent/x"], pattern: /--port/ },
  {
    name: "a missing --user",
    args: ["client", "--server", "127.0.0.1:1", "--dir", "/tmp/x"],
    pattern: /--user/,
  },
  { name: "a missing user name", args: ["user", "remove", "--data", "/nonexistent"], pattern: /user name/i },
  {
    name: "a malformed --server",
    args: ["client", "--server", "nohost", "--user", "a", "--dir", "/tmp/x"],
    pattern: /HOST:PORT/,
  },
];

Deno.test("usage errors (unknown command or option, missing or malformed option) exit with code 2 and one line", async () => {
  const results = await Promise.all(USAGE_ERRORS.map(({ args }) => run(args)));
  const wrong: string[] = [];
  results.forEach((result, i) => {
    const { name, pattern } = USAGE_ERRORS[i];
    assertFailure(result, [pattern]);
    if (result.code !== 2) wrong.push(`${name}: exit code ${result.code}: ${failureLines(result.output)[0]}`);
  });
  assert.deepEqual(wrong, [], `usage errors with an exit code other than 2:\n${wrong.join("\n")}`);
});

// ---- user management ----

Deno.test("user add works with and without a running server; list, duplicate and remove behave", async () => {
  await using tmp = new TempDir();
  const data = tmp.join("data");
  const offline = await run(["user", "add", "alice", "--data", data], {
    env: { FILESYNC_PASSWORD: "alice pw" },
  });
  assert.equal(offline.code, 0, offline.output);
  const fromStdin = await run(["user", "add", "carol", "--data", data], { stdin: "carol pw\n" });
  assert.equal(fromStdin.code, 0, fromStdin.output);

  await using server = await startServer(data);
  const online = await run(["user", "add", "bob", "--data", data], { env: { FILESYNC_PASSWORD: "bob pw" } });
  assert.equal(online.code, 0, online.output);
  const list = await run(["user", "list", "--data", data]);
  assert.equal(list.code, 0, list.output);
  assert.deepEqual(list.output.trim().split("\n").sort(), ["alice", "bob", "carol"]);

  const duplicate = await run(["user", "add", "bob", "--data", data], { env: { FILESYNC_PASSWORD: "x" } });
  assertFailure(duplicate, [/bob/, /already exists/]);
  const badName = await run(["user", "add", "../root", "--data", data], { env: { FILESYNC_PASSWORD: "x" } });
  assertFailure(badName, [/Invalid user name/]);
  const missing = await run(["user", "remove", "nobody", "--data", data]);
  assertFailure(missing, [/nobody/]);

  const dir = tmp.join("bob");
  const bob = await startConnectedClient({ server, user: "bob", password: "bob pw", dir, device: "laptop" });
  await bob.stop();
  const removed = await run(["user", "remove", "bob", "--data", data]);
  assert.equal(removed.code, 0, removed.output);
  const after = await runClient({ server, user: "bob", password: "bob pw", dir, device: "laptop" });
  assertFailure(after, [/Login failed/]);
  await server.stop();

  const offlineList = await run(["user", "list", "--data", data]);
  assert.deepEqual(offlineList.output.trim().split("\n").sort(), ["alice", "carol"]);
  for (const output of [offline.output, online.output, fromStdin.output, server.output, bob.output]) {
    assert.ok(!/alice pw|bob pw|carol pw/.test(output), `a password was printed:\n${output}`);
  }
});

Deno.test("user passwd revokes device tokens: a restart without a password fails, the new one works", async () => {
  await using world = await World.create();
  const dir = world.dir("A");
  const first = await world.client("A");
  await first.stop();
  const changed = await run(["user", "passwd", world.user, "--data", world.server.dataDir], {
    env: { FILESYNC_PASSWORD: "a brand new password" },
  });
  assert.equal(changed.code, 0, changed.output);

  const noPassword = await runClient({ server: world.server, user: world.user, dir, device: "A" });
  assertFailure(noPassword, [/password/i]);
  assert.match(noPassword.output, /revoked/i);

  const oldPassword = await runClient({
    server: world.server,
    user: world.user,
    password: world.password,
    dir,
    device: "A",
  });
  assertFailure(oldPassword, [/Login failed/]);

  const withNew = await world.client("A", { password: "a brand new password" });
  await withNew.stop();
  const again = await world.client("A", { password: undefined });
  assert.equal(failureLines(again.output).length, 0);
});

Deno.test("user passwd logs out a device that is connected at that moment", async () => {
  await using world = await World.create();
  const dir = world.dir("A");
  await (await world.client("A")).stop();
  // Restarted without a password, the client can only go on with its token.
  const client = await world.client("A", { password: undefined });
  const changed = await run(["user", "passwd", world.user, "--data", world.server.dataDir], {
    env: { FILESYNC_PASSWORD: "a brand new password" },
  });
  assert.equal(changed.code, 0, changed.output);
  await client.waitForOutput(/No password|revoked|logged out/i, 5000);
  await Deno.writeTextFile(join(dir, "after-passwd.txt"), "must not be accepted");
  await waitFor(() => client.exitCode !== null, { message: () => `client still running:\n${client.output}` });
  assert.ok(!world.server.output.includes("after-passwd.txt"), "the revoked device still uploaded");
});

Deno.test("user remove disconnects a removed user's connected client", async () => {
  await using world = await World.create();
  await addUser(world.server.dataDir, "bob", "bob's password");
  const bob = await world.client("bob", { user: "bob", password: "bob's password" });
  const removed = await run(["user", "remove", "bob", "--data", world.server.dataDir]);
  assert.equal(removed.code, 0, removed.output);
  await bob.waitForOutput(/Login failed|revoked/i, 5000);
  await Deno.writeTextFile(join(world.dir("bob"), "after-remove.txt"), "must not be stored");
  await waitFor(() => bob.exitCode !== null, { message: () => `client still running:\n${bob.output}` });
  assert.ok(!world.server.output.includes("after-remove.txt"), "a removed user still uploaded");
  const list = await run(["user", "list", "--data", world.server.dataDir]);
  assert.deepEqual(list.output.trim().split("\n"), ["alice"]);
});

// ---- device token and password secrecy ----

Deno.test("the device token is private, the password is never printed or stored, and a restart needs no password", async () => {
  await using world = await World.create();
  const password = "s3cret-Passw0rd-that-must-not-leak";
  const added = await run(["user", "add", "dora", "--data", world.server.dataDir], {
    env: { FILESYNC_PASSWORD: password },
  });
  assert.equal(added.code, 0, added.output);
  const dir = world.dir("dora");
  const first = await world.client("dora", { user: "dora", password });
  await Deno.writeTextFile(join(dir, "note.txt"), "hello");
  await first.waitForOutput(/uploaded note\.txt/);
  await first.stop();

  const token = join(dir, ".filesync", "token");
  assert.equal((await Deno.stat(token)).mode! & 0o777, 0o600, "token file mode");
  assert.equal((await Deno.stat(join(dir, ".filesync"))).mode! & 0o077, 0, "state folder open to others");
  assert.ok((await Deno.readTextFile(token)).trim().length >= 32, "token too short");

  const second = await world.client("dora2", { user: "dora", password: undefined, dir });
  await Deno.writeTextFile(join(dir, "second.txt"), "after restart");
  await second.waitForOutput(/uploaded second\.txt/);
  assert.doesNotMatch(second.output, /logged in as/, "the restarted client logged in with a password");
  await second.stop();
  await world.server.stop();

  for (const proc of [first, second, world.server] as Proc[]) {
    assert.ok(!proc.output.includes(password), `${proc.name} printed the password`);
  }
  assert.ok(!added.output.includes(password), "user add printed the password");
  await assertNotStoredBelow(join(dir, ".filesync"), password);
  await assertNotStoredBelow(world.server.dataDir, password);
});
