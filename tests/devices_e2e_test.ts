// End-to-end tests of device management: `filesync user devices|revoke` on the server host, `filesync devices` on a
// device, and what a revoked device does (told at once, stops or asks, never loses a file).
import assert from "node:assert/strict";
import { join } from "node:path";
import type { WireDevice } from "../protocol/messages.ts";
import { filesyncCommand, Proc, readTree, run, startClient, waitFor, waitForFile, World } from "./harness.ts";

/** Runs `filesync ARGS` in `cwd`; returns its exit code and output (stdout and stderr). */
async function filesync(cwd: string, ...args: string[]): Promise<{ code: number; output: string }> {
  const proc = new Proc(args[0], args, { cwd });
  const code = await proc.exited(30_000);
  return { code, output: proc.output.trim() };
}

/** `filesync user ARGS --data DIR` on the server host. */
function user(world: World, ...args: string[]): Promise<{ code: number; output: string }> {
  return run(["user", ...args, "--data", world.server.dataDir]);
}

/** The device id a folder's client saved at login. */
async function deviceId(dir: string): Promise<string> {
  return JSON.parse(await Deno.readTextFile(join(dir, ".filesync", "device.json"))).deviceId;
}

Deno.test("a revoked device is closed at once, says so and exits 1 without a terminal; no file is lost", async () => {
  await using world = await World.create();
  const laptop = await world.client("laptop");
  const desktop = await world.client("desktop");
  const [laptopDir, desktopDir] = [world.dir("laptop"), world.dir("desktop")];
  await Deno.writeTextFile(join(laptopDir, "shared.txt"), "from the laptop");
  await Deno.mkdir(join(desktopDir, "docs"));
  await Deno.writeTextFile(join(desktopDir, "docs", "mine.txt"), "from the desktop");
  await waitForFile(join(desktopDir, "shared.txt"), "from the laptop");
  await waitForFile(join(laptopDir, "docs", "mine.txt"), "from the desktop");
  const [laptopId, desktopId] = [await deviceId(laptopDir), await deviceId(desktopDir)];

  // The server host lists both devices, as JSON and as lines.
  const before = Date.now();
  const listed = await user(world, "devices", "alice", "--json");
  assert.equal(listed.code, 0, listed.output);
  const devices = (JSON.parse(listed.output) as { user: string; devices: WireDevice[] }).devices;
  assert.deepEqual(devices.map((d) => [d.device, d.deviceId]).sort(), [
    ["desktop", desktopId],
    ["laptop", laptopId],
  ]);
  for (const d of devices) {
    assert.ok(d.created <= before && d.expires > before + 80 * 86_400_000, JSON.stringify(d));
    assert.equal(d.revoked, undefined);
  }
  const lines = await user(world, "devices", "alice");
  assert.equal(lines.code, 0, lines.output);
  assert.match(lines.output, /^2 devices of alice:$/m);
  assert.match(
    lines.output,
    new RegExp(`^desktop  ${desktopId}  logged in .* UTC, .*token expires .* UTC$`, "m"),
  );

  // A device lists its user's devices with its token, from inside its folder, and is marked.
  const fromDevice = await filesync(join(desktopDir, "docs"), "devices", "--json");
  assert.equal(fromDevice.code, 0, fromDevice.output);
  const seen = (JSON.parse(fromDevice.output) as { devices: WireDevice[] }).devices;
  assert.deepEqual(seen.filter((d) => d.current).map((d) => d.deviceId), [desktopId]);
  assert.equal(seen.length, 2);
  const plain = await filesync(world.tmp.path, "devices", "--dir", laptopDir);
  assert.equal(plain.code, 0, plain.output);
  assert.match(plain.output, new RegExp(`^laptop   ${laptopId}  .*\\(this device\\)$`, "m"));
  assert.ok(!/desktop .*\(this device\)/.test(plain.output), plain.output);

  // Clear errors for an unknown user and an unknown device.
  const noUser = await user(world, "devices", "nobody");
  assert.equal(noUser.code, 1);
  assert.match(noUser.output, /^filesync: No user "nobody"$/m);
  const noUserRevoke = await user(world, "revoke", "nobody", "desktop");
  assert.equal(noUserRevoke.code, 1);
  assert.match(noUserRevoke.output, /^filesync: No user "nobody"$/m);
  const noDevice = await user(world, "revoke", "alice", "phone");
  assert.equal(noDevice.code, 1);
  assert.match(
    noDevice.output,
    /^filesync: No device "phone" of user "alice" \(see filesync user devices alice\)$/m,
  );
  const missing = await user(world, "revoke", "alice");
  assert.equal(missing.code, 2);
  assert.match(missing.output, /Missing device/);

  // The desktop holds a lock, which its revocation releases.
  const locked = await filesync(desktopDir, "lock", "shared.txt");
  assert.equal(locked.code, 0, locked.output);

  // Revoke the desktop (by name): its session is closed within seconds, it says so and exits 1.
  const tree = await readTree(desktopDir);
  const token = await Deno.readTextFile(join(desktopDir, ".filesync", "token"));
  const revokedAt = Date.now();
  const revoked = await user(world, "revoke", "alice", "desktop");
  assert.equal(revoked.code, 0, revoked.output);
  assert.match(revoked.output, new RegExp(`^revoked device "desktop" \\(${desktopId}\\) of alice`, "m"));
  await desktop.waitForOutput(/this device was revoked on the server/, 5000);
  assert.equal(await desktop.exited(10_000), 1, desktop.output);
  assert.ok(Date.now() - revokedAt < 10_000);
  assert.match(
    desktop.output,
    /^filesync: This device was revoked on the server, and there is no terminal here to ask for the password/m,
  );
  assert.equal(desktop.output.match(/this device was revoked on the server:/g)?.length, 1, desktop.output);
  assert.match(world.server.output, new RegExp(`revoked device ${desktopId} of alice: 1 connection closed`));
  // Nothing in the revoked device's folder changed.
  assert.deepEqual(await readTree(desktopDir), tree);
  // Its lock is gone: the server says so and the laptop sees no lock.
  await waitFor(() => /released 1 lock of revoked device/.test(world.server.output), {
    timeoutMs: 10_000,
    message: () => world.server.output,
  });
  const locksLeft = await filesync(laptopDir, "locks", "--json");
  assert.equal(locksLeft.code, 0, locksLeft.output);
  assert.deepEqual(JSON.parse(locksLeft.output).locks, []);

  // The laptop was not touched and keeps syncing.
  assert.ok(!/disconnected/.test(laptop.output), laptop.output);
  await Deno.writeTextFile(join(laptopDir, "later.txt"), "written after the revocation");
  await laptop.waitForOutput(/later\.txt/);

  // The list says so; a second revocation changes nothing.
  const after = JSON.parse((await user(world, "devices", "alice", "--json")).output) as {
    devices: WireDevice[];
  };
  const desk = after.devices.find((d) => d.deviceId === desktopId)!;
  assert.ok(desk.revoked! >= revokedAt - 1000, JSON.stringify(desk));
  assert.equal(after.devices.find((d) => d.deviceId === laptopId)!.revoked, undefined);
  assert.match(
    (await user(world, "devices", "alice")).output,
    new RegExp(`${desktopId}  .*revoked .* UTC$`, "m"),
  );
  const again = await user(world, "revoke", "alice", desktopId);
  assert.equal(again.code, 0, again.output);
  assert.match(again.output, /was already revoked/);

  // The revoked token is refused on reconnect: by `filesync devices`, and by a client started with it (which,
  // with FILESYNC_PASSWORD set but no terminal, still does not log in by itself).
  await Deno.writeTextFile(join(desktopDir, ".filesync", "token"), token);
  const refused = await filesync(desktopDir, "devices");
  assert.equal(refused.code, 1);
  assert.match(
    refused.output,
    /^filesync: This device was revoked on the server: start filesync client in /m,
  );
  await Deno.writeTextFile(join(desktopDir, "offline.txt"), "made while revoked");
  const restarted = startClient({
    server: world.server,
    user: world.user,
    password: world.password,
    dir: desktopDir,
    device: "desktop",
  });
  world.procs.push(restarted);
  assert.equal(await restarted.exited(20_000), 1, restarted.output);
  assert.match(restarted.output, /this device was revoked on the server/);
  assert.ok(!/logged in as/.test(restarted.output), restarted.output);
  assert.ok(!/connected to /.test(restarted.output), restarted.output);

  // A new login (the person starts the client again) is a new device; what was made meanwhile uploads.
  const back = await world.client("desktop");
  assert.match(back.output, /logged in as alice on device "desktop"/);
  assert.notEqual(await deviceId(desktopDir), desktopId);
  await waitForFile(join(laptopDir, "offline.txt"), "made while revoked");
  await waitForFile(join(desktopDir, "later.txt"), "written after the revocation");
  assert.equal(await Deno.readTextFile(join(desktopDir, "docs", "mine.txt")), "from the desktop");
  assert.equal(await Deno.readTextFile(join(laptopDir, "docs", "mine.txt")), "from the desktop");
  await waitFor(async () => {
    const listing = JSON.parse((await user(world, "devices", "alice", "--json")).output) as {
      devices: WireDevice[];
    };
    return listing.devices.length === 3;
  });
});

/** Quotes a word for `sh -c`. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'"'"'`)}'`;
}

/** A client process on a pseudo-terminal (util-linux `script`), whose keyboard the test types on. */
class TerminalClient implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  #out = "";
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #reader: Promise<void>;
  exitCode: number | null = null;

  constructor(args: string[], env: Record<string, string>) {
    const command = [...filesyncCommand(), ...args].map(shellQuote).join(" ");
    const child = new Deno.Command("script", {
      args: ["-qfec", command, "/dev/null"],
      env: { NO_COLOR: "1", ...env },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.#writer = child.stdin.getWriter();
    const decoder = new TextDecoder();
    this.#reader = (async () => {
      for await (const part of child.stdout) this.#out += decoder.decode(part, { stream: true });
    })();
    child.stderr.cancel();
    child.status.then((s) => this.exitCode = s.code);
  }

  get output(): string {
    return this.#out;
  }

  async waitForOutput(pattern: RegExp, timeoutMs = 15_000): Promise<void> {
    await waitFor(() => pattern.test(this.#out) || this.exitCode !== null, {
      timeoutMs,
      message: () => `terminal client: no output matching ${pattern}:\n${this.#out}`,
    });
    if (!pattern.test(this.#out)) throw new Error(`terminal client exited before ${pattern}:\n${this.#out}`);
  }

  async type(text: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(text));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.exitCode === null) {
      try {
        this.child.kill("SIGTERM");
      } catch { /* gone */ }
    }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 8000);
    await this.child.status;
    clearTimeout(timer);
    await this.#writer.close().catch(() => {});
    await this.#reader.catch(() => {});
  }
}

Deno.test("a revoked device at a terminal asks for the password (not FILESYNC_PASSWORD) and syncs on", async () => {
  await using world = await World.create();
  await world.client("laptop");
  const [laptopDir, deskDir] = [world.dir("laptop"), world.dir("desk")];
  await using desk = new TerminalClient([
    "client",
    "--server",
    world.server.address,
    "--user",
    world.user,
    "--dir",
    deskDir,
    "--device",
    "desk",
    "--ca",
    world.server.caPath,
    "--rescan",
    "2",
  ], { FILESYNC_PASSWORD: world.password });
  await desk.waitForOutput(/connected to /);
  const firstId = await deviceId(deskDir);
  await Deno.writeTextFile(join(deskDir, "before.txt"), "before");
  await waitForFile(join(laptopDir, "before.txt"), "before");

  const revoked = await user(world, "revoke", "alice", "desk");
  assert.equal(revoked.code, 0, revoked.output);
  await desk.waitForOutput(/this device was revoked on the server/, 5000);
  await desk.waitForOutput(/Password for alice \(this device was revoked\): /);
  // Made while the device waits for its person: kept, and uploaded after the login.
  await Deno.writeTextFile(join(deskDir, "pending.txt"), "typed while revoked");
  await desk.type(`${world.password}\r`);
  await desk.waitForOutput(/logged in as alice on device "desk"/);
  await waitForFile(join(laptopDir, "pending.txt"), "typed while revoked");
  assert.notEqual(await deviceId(deskDir), firstId);
  assert.equal(await Deno.readTextFile(join(deskDir, "before.txt")), "before");
  assert.ok(!desk.output.includes(world.password), "the password is not echoed");
  assert.equal(desk.exitCode, null, "the client keeps running");
});
