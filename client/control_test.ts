// Tests of the control socket on a real Unix socket: modes, bad requests, stale sockets, slow followers.
import assert from "node:assert/strict";
import { join } from "node:path";
import { RpcError } from "../protocol/rpc.ts";
import { type ControlHandlers, ControlServer, startClientControl, unreachableLine } from "./control.ts";
import { clientLink, controlRequest, followEvents } from "./control_client.ts";
import { MAX_REQUEST_BYTES } from "./control_protocol.ts";
import { EventBus } from "./events.ts";
import type { StatusFacts, StatusReport } from "./status.ts";
import { STATE_DIR } from "./state.ts";

/** Polls `condition` every 5 ms; fails after 5 s. */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const handlers = (over: Partial<ControlHandlers> = {}): ControlHandlers => ({
  status: () => ({ state: "connected" }) as StatusReport,
  pause: () => true,
  resume: () => false,
  mounts: () => [{ ns: "alice", mount: "" }],
  connected: () => true,
  rpc: (op, body) => Promise.resolve({ op, body }),
  ...over,
});

/** Starts a control server (never null on the systems the tests run on). */
async function start(options: Parameters<typeof ControlServer.start>[0]): Promise<ControlServer> {
  const server = await ControlServer.start(options);
  assert.ok(server, "no Unix socket on this system");
  return server;
}

async function folder(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-control-" });
  await Deno.mkdir(join(dir, STATE_DIR), { mode: 0o700 });
  return dir;
}

/** Sends raw bytes on the socket and reads until the server closes or `lines` lines came. */
async function raw(path: string, bytes: Uint8Array, lines: number): Promise<string[]> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    await conn.write(bytes).catch(() => 0);
    let text = "";
    const buffer = new Uint8Array(4096);
    while (text.split("\n").length - 1 < lines) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    return text.split("\n").filter(Boolean);
  } finally {
    conn.close();
  }
}

Deno.test("ControlServer: socket 0600 in DIR/.filesync, answers requests, removed at close", async () => {
  const dir = await folder();
  const server = await start({ dir, events: new EventBus(), handlers: handlers() });
  try {
    assert.equal(server.path, join(await Deno.realPath(dir), STATE_DIR, "control.sock"));
    const info = await Deno.lstat(server.path);
    assert.ok(info.isSocket);
    assert.equal(info.mode! & 0o777, 0o600);
    assert.deepEqual(await controlRequest(dir, { op: "status" }), {
      ok: true,
      status: { state: "connected" },
    });
    assert.deepEqual(await controlRequest(dir, { op: "pause" }), { ok: true, changed: true });
    assert.deepEqual(await controlRequest(dir, { op: "resume" }), { ok: true, changed: false });
  } finally {
    await server.close();
  }
  await assert.rejects(Deno.lstat(server.path), Deno.errors.NotFound);
  assert.equal(await controlRequest(dir, { op: "status" }), null);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("ControlServer: malformed and oversized requests get an error reply and break nothing", async () => {
  const dir = await folder();
  const server = await start({ dir, events: new EventBus(), handlers: handlers() });
  try {
    const lines = await raw(
      server.path,
      new TextEncoder().encode('nonsense\n{"op":"drop"}\n[]\n{"op":"status"}\n'),
      4,
    );
    assert.deepEqual(lines.map((l) => JSON.parse(l)), [
      { ok: false, error: "request is not JSON" },
      { ok: false, error: 'unknown request "drop"' },
      { ok: false, error: "request is not a JSON object" },
      { ok: true, status: { state: "connected" } },
    ]);
    const huge = await raw(server.path, new TextEncoder().encode("x".repeat(MAX_REQUEST_BYTES + 10)), 1);
    assert.match(JSON.parse(huge[0]).error, /request too large/);
    // A peer that connects and leaves at once, then the next one is served as usual.
    (await Deno.connect({ transport: "unix", path: server.path })).close();
    assert.deepEqual(await controlRequest(dir, { op: "status" }), {
      ok: true,
      status: { state: "connected" },
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ControlServer: a stale socket is replaced, a live one refused", async () => {
  const dir = await folder();
  const path = join(dir, STATE_DIR, "control.sock");
  // A socket nobody listens on any more, as a client killed with -9 leaves it (Deno removes the file when a
  // listener closes, so the file is moved aside while it closes).
  const stale = Deno.listen({ transport: "unix", path });
  await Deno.rename(path, `${path}.keep`);
  stale.close();
  await Deno.rename(`${path}.keep`, path);
  assert.ok((await Deno.lstat(path)).isSocket);
  const server = await start({ dir, events: new EventBus(), handlers: handlers() });
  try {
    assert.deepEqual(await controlRequest(dir, { op: "resume" }), { ok: true, changed: false });
    await assert.rejects(
      ControlServer.start({ dir, events: new EventBus(), handlers: handlers() }),
      /Another filesync client is running/,
    );
    assert.deepEqual(await controlRequest(dir, { op: "resume" }), { ok: true, changed: false });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ControlServer: a long folder path puts the socket in the private fallback folder", async () => {
  const base = await folder();
  const runtime = await Deno.makeTempDir({ prefix: "filesync-run-" });
  const dir = join(base, "d".repeat(100));
  await Deno.mkdir(join(dir, STATE_DIR), { recursive: true });
  const before = Deno.env.get("XDG_RUNTIME_DIR");
  Deno.env.set("XDG_RUNTIME_DIR", runtime);
  try {
    const server = await start({ dir, events: new EventBus(), handlers: handlers() });
    try {
      assert.match(server.path, new RegExp(`^${runtime}/filesync/[0-9a-f]{16}\\.sock$`));
      assert.equal((await Deno.lstat(join(runtime, "filesync"))).mode! & 0o777, 0o700);
      assert.deepEqual(await controlRequest(dir, { op: "pause" }), { ok: true, changed: true });
    } finally {
      await server.close();
    }
    // A fallback folder others may enter is refused.
    await Deno.chmod(join(runtime, "filesync"), 0o755);
    await assert.rejects(
      ControlServer.start({ dir, events: new EventBus(), handlers: handlers() }),
      /other users may use it \(mode 755/,
    );
  } finally {
    if (before === undefined) Deno.env.delete("XDG_RUNTIME_DIR");
    else Deno.env.set("XDG_RUNTIME_DIR", before);
    await Deno.remove(base, { recursive: true });
    await Deno.remove(runtime, { recursive: true });
  }
});

Deno.test("ControlServer: forwarded requests come back as replies or as RpcError", async () => {
  const dir = await folder();
  const server = await start({
    dir,
    events: new EventBus(),
    handlers: handlers({
      rpc: (op, body) =>
        op === "LOCK"
          ? Promise.reject(new RpcError("locked", "a.txt is locked by bob", { holder: "bob" }))
          : Promise.resolve({ op, body }),
    }),
  });
  try {
    const link = (await clientLink(dir))!;
    assert.equal(link.mounts.root, "alice");
    assert.deepEqual((await link.peer.request("LOCKS", { ns: "alice" })).message, {
      op: "LOCKS",
      body: { ns: "alice" },
    });
    await assert.rejects(
      link.peer.request("LOCK", { path: "a.txt" }),
      (e: Error) => e instanceof RpcError && e.code === "locked" && e.detail.holder === "bob",
    );
    // What is not a history, share or lock request is not forwarded.
    assert.match(
      String((await controlRequest(dir, { op: "rpc", request: "COMMIT", body: {} }))!.error),
      /cannot forward "COMMIT"/,
    );
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ControlServer: followers get every event; a slow one is dropped without slowing emit", async () => {
  const dir = await folder();
  const events = new EventBus({ now: () => 5 });
  const server = await start({
    dir,
    events,
    handlers: handlers(),
    followerQueueBytes: 64 * 1024,
  });
  try {
    const got: unknown[] = [];
    const abort = new AbortController();
    const following = followEvents(dir, (event) => {
      got.push(event);
      if (got.length === 2) abort.abort();
    }, abort.signal);
    await until(() => server.followers >= 1, "a follower");
    events.emit({ type: "paused" });
    events.emit({ type: "resumed" });
    assert.equal(await following, true);
    assert.deepEqual(got, [{ type: "paused", time: 5 }, { type: "resumed", time: 5 }]);

    // A follower that never reads: emitting goes on at full speed and the follower is dropped.
    const slow = await Deno.connect({ transport: "unix", path: server.path });
    await slow.write(new TextEncoder().encode('{"op":"follow"}\n'));
    await until(() => server.followers >= 1, "a follower");
    const started = performance.now();
    for (let i = 0; i < 20_000; i++) events.emit({ type: "notice", message: "x".repeat(200) });
    assert.ok(performance.now() - started < 5_000);
    await until(() => server.followers === 0, "the slow follower to be dropped");
    slow.close();
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("clientLink(): a client that is not connected now leaves the command to connect by itself", async () => {
  const dir = await folder();
  const server = await start({
    dir,
    events: new EventBus(),
    handlers: handlers({ connected: () => false }),
  });
  try {
    assert.equal(await clientLink(dir), null);
    assert.equal(await clientLink(await Deno.makeTempDir({ dir })), null); // no client at all
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startClientControl(): status from events and facts; offline forwards say the server is unreachable", async () => {
  const dir = await folder();
  const events = new EventBus();
  let connected = true;
  const facts: StatusFacts = {
    server: "h:1",
    user: "alice",
    device: "laptop",
    folder: dir,
    connected: true,
    paused: false,
    inSync: { files: 1, bytes: 2 },
    pending: null,
    massStop: null,
    rootStop: null,
    conflicts: [],
  };
  const server = await startClientControl({
    dir,
    events,
    client: {
      facts: () => ({ ...facts, connected }),
      pause: () => true,
      resume: () => true,
      mounts: [{ ns: "alice", mount: "" }],
      get connected() {
        return connected;
      },
      forward: (op) =>
        connected ? Promise.resolve({ op }) : Promise.reject(new RpcError("offline", "not connected")),
    },
  });
  assert.ok(server);
  try {
    events.emit({ type: "synced", files: 1, bytes: 2 });
    const status = (await controlRequest(dir, { op: "status" }))!.status as StatusReport;
    assert.equal(status.state, "connected");
    assert.equal(typeof status.lastSync, "number");
    assert.equal(status.forwarded, 0);
    assert.deepEqual(await controlRequest(dir, { op: "rpc", request: "TRASH", body: {} }), {
      ok: true,
      message: { op: "TRASH" },
    });
    connected = false;
    events.emit({ type: "offline", server: "h:1", reason: "Cannot reach server h:1: connection refused" });
    assert.deepEqual(await controlRequest(dir, { op: "rpc", request: "TRASH", body: {} }), {
      ok: false,
      error: "Cannot reach server h:1: connection refused",
      code: "offline",
    });
    const after = (await controlRequest(dir, { op: "status" }))!.status as StatusReport;
    assert.equal(after.state, "offline");
    assert.equal(after.forwarded, 2);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unreachableLine() is the line a command's own connection would print", () => {
  assert.equal(
    unreachableLine("h:1", "Cannot reach server h:1: connection refused (is the server running?)"),
    "Cannot reach server h:1: connection refused (is the server running?)",
  );
  assert.equal(unreachableLine("h:1", "connection closed"), "Cannot reach server h:1: connection closed");
  assert.equal(
    unreachableLine("h:1", undefined),
    "Cannot reach server h:1: the running client is not connected to it",
  );
});
