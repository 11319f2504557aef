// End-to-end: real clients with --json report each kind of event as one JSON line with its fields; --quiet keeps
// conflicts and errors only; errors and conflicts also reach DIR/.filesync/client.log.
import assert from "node:assert/strict";
import { join } from "node:path";
import { addUser, Proc, startClient, startServer, waitFor, waitForFile, World } from "./harness.ts";

const BOB_PASSWORD = "bob's own password";

type Event = Record<string, unknown> & { type: string; level: string; message: string; time: string };

/** The JSON events a client printed (after `from` characters of its output). */
function eventsOf(proc: Proc, from = 0): Event[] {
  return proc.output.slice(from).split("\n").filter((line) => line.startsWith("{")).map((line) =>
    JSON.parse(line) as Event
  );
}

/** Waits for an event of `type` whose fields include `fields`; returns it. */
async function waitForEvent(proc: Proc, type: string, fields: Record<string, unknown> = {}): Promise<Event> {
  let found: Event | undefined;
  await waitFor(() => {
    found = eventsOf(proc).find((e) =>
      e.type === type && Object.entries(fields).every(([k, v]) => JSON.stringify(e[k]) === JSON.stringify(v))
    );
    return found !== undefined;
  }, { message: () => `${proc.name}: no ${type} event with ${JSON.stringify(fields)}:\n${proc.output}` });
  return found!;
}

/** Runs `filesync ARGS` in `cwd`; it must succeed. */
async function ok(cwd: string, ...args: string[]): Promise<void> {
  const proc = new Proc(args[0], args, { cwd });
  assert.equal(await proc.exited(30_000), 0, proc.output);
}

Deno.test("--json reports every kind of event with its fields; --quiet keeps the conflict; client.log the errors", async () => {
  // A server that refuses files over 1 KiB, for an error to report.
  await using world = new World();
  world.server = await startServer(world.tmp.join("server"), ["--max-file-size", "1K"]);
  await addUser(world.server.dataDir, world.user, world.password);
  await addUser(world.server.dataDir, "bob", BOB_PASSWORD);
  // A asks for desktop notifications where notify-send cannot be found.
  const a = await world.client("A", {
    extraArgs: ["--json", "--notify", "--mass-delete-min", "3", "--mass-delete-percent", "10"],
    env: { PATH: "/nonexistent" },
  });
  let b = await world.client("B", { extraArgs: ["--json"] });
  const bob = await world.client("bob1", { user: "bob", password: BOB_PASSWORD, extraArgs: ["--json"] });
  const [dirA, dirB] = [world.dir("A"), world.dir("B")];
  const server = world.server.address;
  await waitForEvent(a, "connected", { server, user: "alice", device: "A" });
  await waitForEvent(a, "notice", { message: "notify-send not found: no desktop notifications" });

  // Uploaded here, downloaded there.
  await Deno.writeTextFile(join(dirA, "notes.txt"), "hello");
  await Deno.mkdir(join(dirA, "photos"));
  for (const n of [1, 2, 3]) await Deno.writeTextFile(join(dirA, "photos", `p${n}.jpg`), `photo ${n}`);
  const uploaded = await waitForEvent(a, "uploaded", { path: "notes.txt", size: 5 });
  assert.equal(uploaded.level, "info");
  assert.equal(uploaded.message, "uploaded notes.txt (5 B)");
  assert.ok(!Number.isNaN(Date.parse(uploaded.time)));
  await waitForEvent(b, "downloaded", { path: "notes.txt", size: 5 });
  for (const n of [1, 2, 3]) await waitForFile(join(dirB, "photos", `p${n}.jpg`), `photo ${n}`);

  // A folder renamed: one event on each side, with the files it held.
  await Deno.rename(join(dirA, "photos"), join(dirA, "pictures"));
  await waitForEvent(a, "moved", { from: "photos", to: "pictures", where: "server", files: 3 });
  await waitForEvent(b, "moved", { from: "photos", to: "pictures", where: "here", files: 3 });

  // Deleted here and sent; deleted there and applied.
  await Deno.remove(join(dirA, "notes.txt"));
  await waitForEvent(a, "deleted", { path: "notes.txt", kind: "file", where: "server" });
  await waitForEvent(b, "deleted", { path: "notes.txt", kind: "file", where: "here" });
  for (const proc of [a, b]) {
    assert.ok(!eventsOf(proc).some((e) => e.type === "moved" && String(e.from).startsWith("photos/")));
    assert.ok(!eventsOf(proc).some((e) => e.type === "deleted" && e.path === "photos"), proc.output);
  }

  // Restored (from the trash, by `filesync restore` on A): said so on every device.
  await ok(dirA, "restore", "notes.txt");
  for (const proc of [a, b]) {
    const restored = await waitForEvent(proc, "restored", { path: "notes.txt" });
    assert.equal(typeof restored.version, "string");
  }
  await waitForFile(join(dirB, "notes.txt"), "hello");

  // A share arrives; a lock of another device comes and goes.
  await ok(dirA, "share", "pictures", "--with", "bob");
  await waitForEvent(bob, "share", {
    change: "added",
    owner: "alice",
    path: "pictures",
    mount: "pictures",
    access: "read",
  });
  await ok(dirA, "lock", "pictures/p1.jpg");
  await waitForEvent(b, "locked", { path: "pictures/p1.jpg", user: "alice", device: "A" });
  await ok(dirA, "unlock", "pictures/p1.jpg");
  await waitForEvent(b, "unlocked", { path: "pictures/p1.jpg", how: "ended" });

  // An error: the server refuses a file larger than it allows.
  await Deno.writeFile(join(dirA, "big.bin"), new Uint8Array(4096));
  const error = await waitForEvent(a, "error", { path: "big.bin" });
  assert.equal(error.level, "error");
  assert.match(error.message, /^server refused upload of big\.bin: /);

  // A conflict, on B started again with --quiet: it prints the conflict, and not the upload of its copy.
  await b.stop();
  await Deno.writeTextFile(join(dirA, "c.txt"), "from A");
  await waitForEvent(a, "uploaded", { path: "c.txt" });
  await Deno.writeTextFile(join(dirB, "c.txt"), "from B");
  b = startClient({
    server: world.server,
    user: world.user,
    password: world.password,
    dir: dirB,
    device: "B",
    extraArgs: ["--json", "--quiet"],
  });
  world.procs.push(b);
  const conflict = await waitForEvent(b, "conflict", { path: "c.txt", device: "A" });
  assert.equal(conflict.level, "conflict");
  await waitForFile(join(dirA, String(conflict.copy)), conflict.copyHolds === "here" ? "from B" : "from A");
  assert.deepEqual(eventsOf(b).filter((e) => e.level !== "conflict" && e.level !== "error"), [], b.output);

  // Offline and back: the server restarts.
  const mark = a.output.length;
  await world.restartServer();
  await waitForEvent(a, "offline", { server, lost: true });
  const retry = await waitForEvent(a, "reconnecting", { server });
  assert.equal(typeof retry.inMs, "number");
  await waitFor(() => eventsOf(a, mark).some((e) => e.type === "connected"), {
    message: () => `A did not connect again:\n${a.output.slice(mark)}`,
  });

  // A safety stop: most of A's files deleted at once.
  await Deno.remove(join(dirA, "pictures"), { recursive: true });
  const stop = await waitForEvent(a, "safety_stop", { reason: "mass_delete", held: 3 });
  assert.equal(stop.level, "error");
  assert.match(String(stop.detail), /safety stop/);

  // Every line A printed is an event (JSON); the error log holds the errors, owner-only.
  const lines = a.output.split("\n").filter((l) => l.trim() !== "");
  assert.deepEqual(lines.filter((l) => !l.startsWith("{")), []);
  assert.equal(eventsOf(a).filter((e) => /notify-send/.test(e.message)).length, 1, "said more than once");
  const logFile = join(dirA, ".filesync", "client.log");
  await waitFor(async () => /safety stop/.test(await Deno.readTextFile(logFile).catch(() => "")), {
    message: () => "the safety stop is not in A's client.log",
  });
  const log = await Deno.readTextFile(logFile);
  assert.match(log, /^\d{4}-\d\d-\d\dT[\d:.]+Z server refused upload of big\.bin: /m);
  assert.doesNotMatch(log, /uploaded|connected/);
  assert.equal((await Deno.stat(logFile)).mode! & 0o777, 0o600);
  for (const proc of [b, bob]) assert.ok(eventsOf(proc).length > 0);
});
