// Attacks on a real server process (brute force, floods before login, unread replies) while two devices sync.
import assert from "node:assert/strict";
import { openConnection } from "../client/connection.ts";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { ALPN, encodeRows, PROTOCOL_VERSION } from "../protocol/messages.ts";
import { RpcError } from "../protocol/rpc.ts";
import { type BruteForceResult } from "./attacker.ts";
import { hello, RawConn } from "./raw_conn.ts";
import { addUser, type Proc, startConnectedClient, startServer, TempDir, waitFor } from "./harness.ts";

const USER = "alice";
const PASSWORD = "correct horse battery";

/** A server process (dual-stack, so the owner can come from ::1 while the attacker uses 127.0.0.1). */
class Arena implements AsyncDisposable {
  readonly tmp = new TempDir();
  server!: Awaited<ReturnType<typeof startServer>>;
  readonly clients: Proc[] = [];
  readonly conns: Deno.Conn[] = [];
  ca = "";
  #edits = 0;

  static async start(extraArgs: string[] = []): Promise<Arena> {
    const arena = new Arena();
    try {
      arena.server = await startServer(arena.tmp.join("server"), ["--host", "::", ...extraArgs]);
      arena.ca = await Deno.readTextFile(arena.server.caPath);
      await addUser(arena.server.dataDir, USER, PASSWORD);
      for (const device of ["a", "b"]) {
        arena.clients.push(
          await startConnectedClient({
            server: `127.0.0.1:${arena.server.port}`,
            ca: arena.server.caPath,
            user: USER,
            password: PASSWORD,
            dir: arena.tmp.join(device),
            device,
          }),
        );
      }
      await arena.editLatency();
    } catch (error) {
      await arena[Symbol.asyncDispose]();
      throw error;
    }
    return arena;
  }

  /**
   * Writes a small edit on device a and returns the ms until device b held it, by the kernel's change times of
   * the two files (so a busy test process polling late does not count), polled with a 20 s deadline.
   */
  async editLatency(): Promise<number> {
    const text = `edit ${++this.#edits} ${crypto.randomUUID()}`;
    const from = this.tmp.join("a", "note.txt");
    const to = this.tmp.join("b", "note.txt");
    await Deno.writeTextFile(from, text);
    const written = await changeTimeMs(from);
    await waitFor(async () => {
      try {
        return await Deno.readTextFile(to) === text;
      } catch {
        return false;
      }
    }, { timeoutMs: 20_000, intervalMs: 25, message: () => `edit ${this.#edits} never reached b` });
    return await changeTimeMs(to) - written;
  }

  /** Measures edits until `done` resolves; returns the worst latency. */
  async worstLatencyWhile(done: Promise<unknown>): Promise<number> {
    let finished = false;
    done.finally(() => finished = true).catch(() => {});
    let worst = 0;
    do worst = Math.max(worst, await this.editLatency()); while (!finished);
    return worst;
  }

  /** The server's resident memory in MiB. */
  async serverRssMiB(): Promise<number> {
    const status = await Deno.readTextFile(`/proc/${this.server.child.pid}/status`);
    return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) / 1024;
  }

  /** A TLS connection that has said HELLO, speaking raw frames. */
  async hello(hostname = "127.0.0.1"): Promise<RawConn> {
    const raw = await hello({ hostname, port: this.server.port, ca: this.ca });
    this.conns.push(raw.conn);
    return raw;
  }

  /** The owner logging in with the right password from `hostname`; resolves with the error code or "ok". */
  async ownerLogin(hostname: string): Promise<string> {
    let peer;
    try {
      peer = await openConnection({ hostname, port: this.server.port, caPem: this.ca });
    } catch (error) {
      return `connect: ${(error as Error).message}`;
    }
    try {
      await peer.request("LOGIN", { user: USER, password: PASSWORD, device: "owner" });
      return "ok";
    } catch (error) {
      return error instanceof RpcError ? `${error.code}: ${error.message}` : String(error);
    } finally {
      peer.close();
      await peer.closed;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    for (const conn of this.conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    await Promise.all(this.clients.map((c) => c.stop()));
    if (this.server) await this.server.stop();
    await this.tmp[Symbol.asyncDispose]();
  }
}

/** A file's change time in ms, with the kernel's precision (Deno's `ctime` has whole seconds only). */
async function changeTimeMs(path: string): Promise<number> {
  const { stdout, success } = await new Deno.Command("stat", { args: ["-c", "%.9Z", path] }).output();
  if (!success) throw new Error(`Cannot stat ${path}`);
  return Number(new TextDecoder().decode(stdout).trim()) * 1000;
}

Deno.test("brute force: limits hold for pipelined and parallel guesses, sync goes on, the owner gets in", async () => {
  await using arena = await Arena.start();
  // The attacker is a process of its own at a lower priority: only the server's work for it competes with the
  // devices (this test process mostly sleeps between polls).
  const attacker = new Deno.Command("nice", {
    args: [
      "-n",
      "10",
      Deno.execPath(),
      "run",
      "-A",
      new URL("./attacker.ts", import.meta.url).pathname,
      JSON.stringify({ port: arena.server.port, ca: arena.ca, user: USER }),
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let result: BruteForceResult;
  try {
    const worst = await arena.worstLatencyWhile(attacker.status);
    const out = await attacker.output();
    assert.ok(out.success, `the attacker failed: ${new TextDecoder().decode(out.stderr)}`);
    result = JSON.parse(new TextDecoder().decode(out.stdout));
    assert.ok(worst < 500, `a small edit between two devices took ${worst.toFixed(0)} ms during the attack`);
  } finally {
    try {
      attacker.kill();
    } catch { /* exited */ }
  }
  const checked = result.auth.reduce((n, c) => n + c, 0);
  assert.ok(checked <= 5, `${checked} guesses had their password checked (the limit allows 5)`);
  assert.ok(result.closed[0], "the connection that kept guessing was not closed");
  // The real user, from another address, gets in with the right password at once.
  assert.equal(await arena.ownerLogin("::1"), "ok");
  // From the attacked address, the owner's other device still works with its token.
  assert.ok(arena.clients.every((c) => c.exitCode === null));
  assert.ok((await arena.editLatency()) < 500);
  const refusedLines = arena.server.output.split("\n").filter((l) => /login refused/.test(l));
  assert.ok(refusedLines.length >= 1 && refusedLines.length <= 5, `log:\n${refusedLines.join("\n")}`);
  assert.ok(!arena.server.output.includes("guess "), "a tried password was logged");
});

/** Waits until the server's memory settles; returns its RSS in MiB. */
async function settledRss(arena: Arena): Promise<number> {
  return await arena.serverRssMiB();
}

Deno.test("connections over the per-address cap get no session, other addresses and later logins work", async () => {
  // The two devices take 2 of the 4 places of 127.0.0.1.
  await using arena = await Arena.start(["--max-connections-per-address", "4"]);
  const admitted = [await arena.hello(), await arena.hello()];
  for (const conn of admitted) {
    await conn.send({ id: 1, op: "LOGIN", user: USER, password: "wrong", device: "x" });
  }
  await Promise.all(admitted.map((c) => c.replies(1)));
  assert.ok(admitted.every((c) => !c.closed && c.count("auth") === 1), "an admitted connection was refused");
  // A fifth connection from 127.0.0.1 is closed without a reply.
  const extra = await arena.hello();
  await extra.send({ id: 1, op: "LOGIN", user: USER, password: "wrong", device: "x" });
  await waitFor(() => extra.closed, {
    timeoutMs: 10_000,
    message: () => "the connection over the cap stayed open",
  });
  assert.equal(extra.frames.filter((f) => Number(f.message.re) >= 1).length, 0);
  assert.equal(await arena.ownerLogin("::1"), "ok");
  assert.ok((await arena.editLatency()) < 500);
  await waitFor(
    () =>
      /connection from 127\.0\.0\.1 refused: 4 connections open from this address/.test(arena.server.output),
    {
      timeoutMs: 10_000,
      message: () => arena.server.output,
    },
  );
  // Once the attacker's connections close, the address gets in again.
  for (const conn of admitted) conn.conn.close();
  await Promise.all(admitted.map((c) => c.reading));
  await waitFor(async () => await arena.ownerLogin("127.0.0.1") === "ok", {
    timeoutMs: 10_000,
    message: () => "127.0.0.1 stayed refused after its connections closed",
  });
});

/**
 * Resolves with the ms from `since` until the server closed `conn` (a read returns the end or fails), or with
 * Infinity when it is still open after `deadlineMs`.
 */
async function closedAfterMs(conn: Deno.Conn, since: number, deadlineMs = 20_000): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<number>((resolve) => timer = setTimeout(() => resolve(Infinity), deadlineMs));
  const closed = (async () => {
    try {
      while (await conn.read(new Uint8Array(1024)) !== null) { /* the server sends nothing before TLS */ }
    } catch { /* reset */ }
    return Date.now() - since;
  })();
  try {
    return await Promise.race([closed, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("1,000 TCP connections that never start TLS are closed, and sync and logins go on", async () => {
  await using arena = await Arena.start(["--handshake-timeout", "2", "--max-connections-per-address", "64"]);
  const started = Date.now();
  const silent: Deno.Conn[] = [];
  for (let i = 0; i < 1000; i++) {
    silent.push(await Deno.connect({ hostname: "127.0.0.1", port: arena.server.port }));
  }
  arena.conns.push(...silent);
  // A partial ClientHello that then stalls is closed as well.
  const stalled = await Deno.connect({ hostname: "127.0.0.1", port: arena.server.port });
  arena.conns.push(stalled);
  await stalled.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]));
  const closed = Promise.all([...silent, stalled].map((conn) => closedAfterMs(conn, started)));
  // Meanwhile the devices sync, and the owner logs in from another address.
  const worst = await arena.worstLatencyWhile(closed);
  const times = await closed;
  assert.ok(worst < 500, `a small edit took ${worst} ms during the attack`);
  assert.ok(Math.max(...times) < 15_000, `a silent connection stayed open ${Math.max(...times)} ms`);
  assert.equal(await arena.ownerLogin("::1"), "ok");
  assert.equal(await arena.ownerLogin("127.0.0.1"), "ok");
  // The server holds no socket of them: its open files are back to what two devices and a listener need.
  const open = [...Deno.readDirSync(`/proc/${arena.server.child.pid}/fd`)].length;
  assert.ok(open < 100, `the server still has ${open} open files`);
  assert.match(arena.server.output, /no TLS handshake within 2000 ms/);
  assert.match(
    arena.server.output,
    /connection from 127\.0\.0\.1 refused: 64 connections open from this address/,
  );
});

Deno.test("silent connections lose their place under the cap after --handshake-timeout", async () => {
  // The two devices take 2 of the 4 places of 127.0.0.1; two silent TCP connections take the rest.
  await using arena = await Arena.start(["--max-connections-per-address", "4", "--handshake-timeout", "3"]);
  const silent = await Promise.all(
    [1, 2].map(() => Deno.connect({ hostname: "127.0.0.1", port: arena.server.port })),
  );
  arena.conns.push(...silent);
  const started = Date.now();
  const refused = await arena.ownerLogin("127.0.0.1");
  assert.notEqual(refused, "ok", "a login over the cap got in");
  const times = await Promise.all(silent.map((conn) => closedAfterMs(conn, started)));
  assert.ok(Math.max(...times) < 10_000, `a silent connection stayed open ${Math.max(...times)} ms`);
  assert.equal(await arena.ownerLogin("127.0.0.1"), "ok");
  await waitFor(() => /no TLS handshake within 3000 ms/.test(arena.server.output), {
    timeoutMs: 5000,
    message: () => arena.server.output,
  });
});

Deno.test("before login a frame may not exceed 64 KiB, and a 16 MiB claim is refused before it is allocated", async () => {
  await using arena = await Arena.start(["--max-connections-per-address", "100"]);
  const before = await settledRss(arena);
  const conns = await Promise.all(Array.from({ length: 64 }, () => arena.hello()));
  const header = new Uint8Array(5);
  new DataView(header.buffer).setUint32(0, 16 * 1024 * 1024);
  header[4] = 1;
  // Each sends a header and then a trickle of the body that never ends.
  const trickle = Promise.all(conns.map(async (c) => {
    await c.write(header);
    for (let i = 0; i < 2 && !c.closed; i++) await c.write(new Uint8Array(32 * 1024).fill(0x20));
  }));
  const worst = await arena.worstLatencyWhile(trickle);
  await waitFor(() => conns.every((c) => c.closed), { message: () => "a connection stayed open" });
  const after = await arena.serverRssMiB();
  assert.ok(after - before < 100, `memory rose from ${before.toFixed(0)} to ${after.toFixed(0)} MiB`);
  assert.ok(worst < 500, `a small edit took ${worst.toFixed(0)} ms`);
  for (const c of conns) {
    const error = c.frames.find((f) => f.message.push === "error");
    assert.equal(error?.message.code, "bad_frame", JSON.stringify(c.frames.map((f) => f.message)));
    assert.match(String(error?.message.error), /exceeds the limit of 65536 bytes/);
  }
});

Deno.test("deeply nested JSON is refused before it is parsed, before and after login", async () => {
  await using arena = await Arena.start();
  const before = await arena.serverRssMiB();
  const nested = (depth: number, id: number) =>
    new TextEncoder().encode(`{"id":${id},"op":"PING","x":${"[".repeat(depth)}${"]".repeat(depth)}}`);
  const frame = (json: Uint8Array) => {
    const out = new Uint8Array(5 + json.length);
    new DataView(out.buffer).setUint32(0, json.length + 1);
    out[4] = 1;
    out.set(json, 5);
    return out;
  };
  // Before login: 30,000 levels fit in 64 KiB.
  const early = await arena.hello();
  await early.write(frame(nested(30_000, 1)));
  await waitFor(() => early.closed);
  assert.match(String(early.frames.find((f) => f.message.push === "error")?.message.error), /nested deeper/);
  // After login: 7 M levels (14 MB) from a logged-in device, while two others sync.
  const late = await arena.hello();
  await late.send({ id: 1, op: "LOGIN", user: USER, password: PASSWORD, device: "nester" });
  await late.replies(1);
  assert.equal(late.frames.find((f) => f.message.re === 1)?.message.ok, true);
  const sending = late.write(frame(nested(7_000_000, 2)));
  const worst = await arena.worstLatencyWhile(sending.then(() => waitFor(() => late.closed)));
  const error = late.frames.find((f) => f.message.push === "error");
  assert.equal(error?.message.code, "bad_frame");
  assert.match(String(error?.message.error), /nested deeper than 32 levels/);
  const after = await arena.serverRssMiB();
  assert.ok(after - before < 150, `memory rose from ${before.toFixed(0)} to ${after.toFixed(0)} MiB`);
  assert.ok(worst < 500, `a small edit took ${worst.toFixed(0)} ms`);
  // A message of the usual shape still passes.
  const ok = await arena.hello();
  await ok.send({ id: 1, op: "PING", x: [[[[{ a: [1] }]]]] });
  await ok.replies(1);
  assert.ok(!ok.closed);
});

Deno.test("a device that sends 10,000 GETs and never reads the replies does not grow the server", async () => {
  await using arena = await Arena.start();
  // A 4 MiB chunk the attacker's user may read.
  const chunk = new Uint8Array(4 * 1024 * 1024);
  for (let i = 0; i < chunk.length; i += 65536) crypto.getRandomValues(chunk.subarray(i, i + 65536));
  const id = sha256Hex(chunk);
  const peer = await openConnection({ hostname: "127.0.0.1", port: arena.server.port, caPem: arena.ca });
  try {
    await peer.request("LOGIN", { user: USER, password: PASSWORD, device: "greedy" });
    await peer.request("PUT", { hash: id }, chunk);
    const change = {
      op: "upload",
      path: "big.bin",
      baseRev: 0,
      size: chunk.length,
      mtime: 1_700_000_000_000,
      hash: fileHashOfChunks([id]),
      rows: { offset: 0, count: 1 },
    };
    const reply = await peer.request(
      "COMMIT",
      { changes: [change] },
      encodeRows([{ id, size: chunk.length }]),
    );
    assert.equal((reply.message.results as { ok: boolean }[])[0].ok, true, JSON.stringify(reply.message));
  } finally {
    peer.close();
    await peer.closed;
  }
  await waitFor(async () =>
    (await Deno.stat(arena.tmp.join("b", "big.bin")).catch(() => null))?.size === chunk.length
  );
  const before = await arena.serverRssMiB();
  // The greedy device logs in, then sends GETs and stops reading.
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: arena.server.port,
    caCerts: [arena.ca],
    alpnProtocols: [ALPN],
  });
  arena.conns.push(conn);
  const raw = new RawConn(conn, { readUntil: (frames) => frames.some((f) => f.message.re === 1) });
  await raw.send(
    { id: 0, op: "HELLO", version: PROTOCOL_VERSION, agent: "greedy" },
    { id: 1, op: "LOGIN", user: USER, password: PASSWORD, device: "greedy" },
  );
  await raw.reading;
  assert.equal(raw.frames.find((f) => f.message.re === 1)?.message.ok, true);
  const gets = Array.from({ length: 10_000 }, (_, i) => ({ id: 2 + i, op: "GET", hash: id }));
  const flood = (async () => {
    for (let i = 0; i < gets.length; i += 500) await raw.send(...gets.slice(i, i + 500));
  })();
  let peak = before;
  const watch = (async () => {
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      peak = Math.max(peak, await arena.serverRssMiB());
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  const worst = await arena.worstLatencyWhile(watch);
  assert.ok(peak - before < 100, `memory rose from ${before.toFixed(0)} to ${peak.toFixed(0)} MiB`);
  assert.ok(worst < 500, `a small edit took ${worst.toFixed(0)} ms`);
  conn.close();
  await flood;
});
