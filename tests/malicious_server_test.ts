// A fake server speaking the real protocol sends hostile paths and data to a real client: nothing is written.
import assert from "node:assert/strict";
import { join } from "node:path";
import { ensureServerCertificate } from "../certs/ca.ts";
import type { Frame } from "../protocol/frame.ts";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { ALPN, encodeRows, PROTOCOL_VERSION } from "../protocol/messages.ts";
import { checkReply } from "../protocol/replies.ts";
import { memoryPipe, type Reply, RpcError, RpcPeer } from "../protocol/rpc.ts";
import { fetchSmallFiles } from "../client/transfer.ts";
import { type Proc, startClient, TempDir, waitFor } from "./harness.ts";

const encoder = new TextEncoder();

/** A file's content as the fake server serves it: its entry fields and the inline DOWNLOAD data. */
function content(text: string) {
  const bytes = encoder.encode(text);
  const id = sha256Hex(bytes);
  const data = new Uint8Array(36 + bytes.length);
  data.set(encodeRows([{ id, size: bytes.length }]));
  data.set(bytes, 36);
  return { hash: fileHashOfChunks([id]), size: bytes.length, data, id };
}

function entry(path: string, rev: number, text: string) {
  const c = content(text);
  return { path, kind: "file", hash: c.hash, size: c.size, mtime: 1_700_000_000_000, rev, device: "evil" };
}

/** A TLS server on a random loopback port that answers with `onRequest`, pushing what `pushes` returns. */
class FakeServer implements AsyncDisposable {
  readonly peers: RpcPeer[] = [];
  listener!: Deno.TlsListener;
  caPath = "";
  port = 0;

  static async start(dir: string, onRequest: (frame: Frame, peer: RpcPeer) => Reply): Promise<FakeServer> {
    const fake = new FakeServer();
    const cert = await ensureServerCertificate(dir);
    fake.caPath = cert.caPath;
    fake.listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: cert.certPem,
      key: cert.keyPem,
      alpnProtocols: [ALPN],
    });
    fake.port = fake.listener.addr.port;
    (async () => {
      for await (const conn of fake.listener) {
        const peer: RpcPeer = new RpcPeer(conn, {
          onRequest: (frame) => Promise.resolve(onRequest(frame, peer)),
        });
        fake.peers.push(peer);
      }
    })().catch(() => {});
    return fake;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.listener.close();
    } catch { /* closed */ }
    for (const peer of this.peers) peer.close();
    await Promise.all(this.peers.map((p) => p.closed));
  }
}

/** Answers HELLO, LOGIN, AUTH, PING, HAVE, PUT and COMMIT as a real server would; the rest from `custom`. */
function baseHandler(custom: (frame: Frame, peer: RpcPeer) => Reply | null) {
  return (frame: Frame, peer: RpcPeer): Reply => {
    const m = frame.message;
    const handled = custom(frame, peer);
    if (handled) return handled;
    switch (m.op) {
      case "HELLO":
        return { body: { version: PROTOCOL_VERSION, server: "filesync" } };
      case "LOGIN":
        return {
          body: {
            token: "x".repeat(43),
            deviceId: "0123456789abcdef",
            user: m.user,
            expires: Date.now() + 1e9,
          },
        };
      case "AUTH":
        return { body: { user: "alice", deviceId: "0123456789abcdef", device: "victim" } };
      case "PING":
      case "PUT":
        return {};
      case "HAVE":
        return { body: { missing: m.hashes } };
      case "COMMIT":
        return {
          body: {
            results: (m.changes as unknown[]).map(() => ({ ok: false, code: "conflict", error: "no" })),
          },
        };
    }
    throw new RpcError("unknown_op", `fake server does not do ${String(m.op)}`);
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("a fake server's hostile paths and downloads are refused by a real client, which keeps running", async () => {
  await using tmp = new TempDir();
  const dir = tmp.join("victim");
  const outside = tmp.join("outside");
  Deno.mkdirSync(outside);
  // A long "../../.." path that lands on an absolute location (`outside`) from the synced folder.
  const ups = "../".repeat(dir.split("/").length + 3);
  const absolute = `${ups}${outside.slice(1)}/abs-escape.txt`;
  const hostile = ["../escape.txt", "a/../../escape2.txt", absolute, ".filesync/planted.txt"];
  const good = content("hello from the server");
  const evil = content("evil");
  const hugeRow = new Uint8Array(36);
  hugeRow.set(encodeRows([{ id: evil.id, size: 0xffffffff }]));
  let served = 0;
  const revs = new Map<string, number>();
  const handler = baseHandler((frame, peer) => {
    const m = frame.message;
    if (m.op === "MONITOR") {
      let rev = 0;
      // Each hostile push on its own, so each is refused (and logged) on its own.
      for (const path of hostile) peer.push({ push: "events", events: [entry(path, ++rev, "evil")] });
      peer.push({
        push: "snapshot",
        entries: [entry("../snap-escape.txt", 1, "evil")],
        first: true,
        last: true,
        cursor: 1,
      });
      peer.push({ push: "events", events: [{ ...entry("neg.txt", ++rev, "evil"), size: -1 }] });
      peer.push({ push: "events", events: [{ ...entry("frac.txt", ++rev, "evil"), rev: 1.5 }] });
      peer.push({ push: "events", events: [{ ...entry("big.txt", ++rev, "evil"), size: 2 ** 60 }] });
      peer.push({ push: "events", events: [{ ...entry("slash.txt", ++rev, "evil"), hash: "../../x" }] });
      // Valid events whose downloads are hostile, then one good file: once it is written, all were tried.
      peer.push({
        push: "events",
        events: [
          entry("swap.txt", ++rev, "evil"),
          entry("huge.txt", ++rev, "evil"),
          entry("good.txt", ++rev, "hello from the server"),
        ],
      });
      for (const [i, path] of ["swap.txt", "huge.txt", "good.txt"].entries()) revs.set(path, rev - 2 + i);
      return { body: { cursor: rev } };
    }
    if (m.op === "DOWNLOAD") {
      served++;
      const path = String(m.path);
      if (path === "good.txt") {
        return {
          body: { entry: entry(path, revs.get(path)!, "hello from the server"), inline: 1 },
          data: good.data,
        };
      }
      if (path === "swap.txt") {
        return {
          body: { entry: entry("../escape3.txt", revs.get(path)!, "evil"), inline: 1 },
          data: evil.data,
        };
      }
      if (path === "huge.txt") {
        return {
          body: { entry: { ...entry(path, revs.get(path)!, "evil"), size: 0xffffffff } },
          data: hugeRow,
        };
      }
      const rev = hostile.indexOf(path) + 1;
      return { body: { entry: entry(path, rev, "evil"), inline: 1 }, data: evil.data };
    }
    return null;
  });
  await using fake = await FakeServer.start(tmp.join("fake"), handler);
  const client: Proc = startClient({
    server: `127.0.0.1:${fake.port}`,
    ca: fake.caPath,
    user: "alice",
    password: "whatever password",
    dir,
    device: "victim",
  });
  try {
    await waitFor(() => exists(join(dir, "good.txt")), {
      message: () => `good.txt never arrived; client said:\n${client.output}`,
    });
    assert.equal(Deno.readTextFileSync(join(dir, "good.txt")), "hello from the server");
    const refusals = [
      /refused a message from the server.*"\.\.\/escape\.txt"/,
      /refused a message from the server.*"a\/\.\.\/\.\.\/escape2\.txt"/,
      /refused a message from the server.*abs-escape\.txt/,
      /refused a message from the server.*"\.filesync" is reserved/,
      /refused a message from the server.*snapshot push.*snap-escape/,
      /refused a message from the server.*events\.0\.size/,
      /refused a message from the server.*events\.0\.rev/,
      /refused a message from the server.*events\.0\.hash/,
      /could not download swap\.txt: Invalid DOWNLOAD reply: entry\.path/,
      /could not download huge\.txt: Invalid DOWNLOAD reply: data: chunk size 4294967295/,
    ];
    for (const pattern of refusals) {
      await waitFor(() => pattern.test(client.output), {
        message: () => `no line matching ${pattern}; client said:\n${client.output}`,
      });
    }
    for (
      const path of [
        tmp.join("escape.txt"),
        tmp.join("escape2.txt"),
        tmp.join("escape3.txt"),
        tmp.join("snap-escape.txt"),
        join(outside, "abs-escape.txt"),
        join(dir, ".filesync", "planted.txt"),
        join(dir, "swap.txt"),
        join(dir, "huge.txt"),
        join(dir, "neg.txt"),
      ]
    ) {
      assert.equal(await exists(path), false, `${path} was written`);
    }
    assert.equal(client.exitCode, null, "the client stopped");
    assert.ok(served >= 3, "the client asked for the downloads");
  } finally {
    await client.stop();
  }
});

/** Two small files as a FETCH asks for them, and a server's honest answer. */
function fetchCase() {
  const files = [
    { path: "a.txt", rev: 1, text: "first small file" },
    { path: "b/c.txt", rev: 2, text: "second" },
  ];
  const wanted = files.map((f) => ({ path: f.path, rev: f.rev, at: { ns: "alice", path: f.path } }));
  const bytes = files.map((f) => encoder.encode(f.text));
  const data = new Uint8Array(bytes[0].length + bytes[1].length);
  data.set(bytes[0]);
  data.set(bytes[1], bytes[0].length);
  const items = files.map((f, i) => ({
    path: f.path,
    ns: "alice",
    entry: entry(f.path, f.rev, f.text),
    at: i === 0 ? 0 : bytes[0].length,
  }));
  return { wanted, items, data };
}

Deno.test("a fake server's hostile FETCH replies write nothing and fail with a clear error", async () => {
  await using tmp = new TempDir();
  const tmpDir = tmp.join("tmp");
  Deno.mkdirSync(tmpDir);
  const { wanted, items, data } = fetchCase();
  const flipped = data.slice();
  flipped[3] ^= 1;
  const other = entry("a.txt", 1, "other content of 16"); // a hash of other bytes
  const cases: [string, Reply, RegExp][] = [
    ["wrong bytes", { body: { items }, data: flipped }, /"a\.txt" does not match its hash/],
    ["hash of other content", {
      body: { items: [{ ...items[0], entry: { ...other, size: 16 } }, items[1]] },
      data,
    }, /"a\.txt" does not match its hash/],
    ["bytes short", { body: { items }, data: data.subarray(1) }, /Invalid FETCH reply: data: 21 bytes/],
    ["bytes long", { body: { items }, data: new Uint8Array([...data, 0]) }, /Invalid FETCH reply: data: 23/],
    ["size lies", {
      body: { items: [{ ...items[0], entry: { ...items[0].entry, size: 17 } }, items[1]] },
      data,
    }, /Invalid FETCH reply: items\.1\.at/],
    ["an extra item", {
      body: { items: [...items, { path: "evil.txt", ns: "alice", code: "not_found" }] },
      data,
    }, /Invalid FETCH reply: items: 3 items for 2 asked/],
    ["an item missing", { body: { items: [items[0]] }, data }, /Invalid FETCH reply: items: 1 items for 2/],
    [
      "items swapped",
      { body: { items: [items[1], items[0]] }, data },
      /Invalid FETCH reply: items\.0: not the/,
    ],
    ["another path's entry", {
      body: { items: [{ ...items[0], entry: { ...items[0].entry, path: "evil.txt" } }, items[1]] },
      data,
    }, /Invalid FETCH reply: items\.0\.entry\.path/],
    ["an escaping path", {
      body: { items: [{ ...items[0], entry: { ...items[0].entry, path: "../escape.txt" } }, items[1]] },
      data,
    }, /Invalid FETCH reply: items\.0\.entry\.path/],
    ["another rev", {
      body: { items: [{ ...items[0], entry: { ...items[0].entry, rev: 7 } }, items[1]] },
      data,
    }, /Invalid FETCH reply: items\.0\.entry\.rev/],
    [
      "another namespace",
      { body: { items: [{ ...items[0], ns: "bob" }, items[1]] }, data },
      /items\.0: not the/,
    ],
  ];
  for (const [name, reply, error] of cases) {
    const [c, s] = memoryPipe();
    const client = new RpcPeer(c, { checkReply });
    const fake = new RpcPeer(s, { onRequest: () => Promise.resolve(reply) });
    try {
      await assert.rejects(fetchSmallFiles(client, tmpDir, wanted), error, name);
      assert.deepEqual([...Deno.readDirSync(tmpDir)], [], `${name}: a temp file was left`);
    } finally {
      client.close();
      await Promise.all([client.closed, fake.closed]);
    }
  }
  // The honest answer: both files, verified, in their temp files (and a code where the server has one).
  const [c, s] = memoryPipe();
  const client = new RpcPeer(c, { checkReply });
  const fake = new RpcPeer(s, { onRequest: () => Promise.resolve({ body: { items }, data }) });
  try {
    const results = await fetchSmallFiles(client, tmpDir, wanted);
    const texts = results.map((r) => r && !(r instanceof Error) ? Deno.readTextFileSync(r.tmpPath) : null);
    assert.deepEqual(texts, ["first small file", "second"]);
  } finally {
    client.close();
    await Promise.all([client.closed, fake.closed]);
  }
});

Deno.test("a real client refuses a fake server's hostile FETCH, writes nothing, and keeps running", async () => {
  await using tmp = new TempDir();
  const dir = tmp.join("victim");
  let fetches = 0;
  const handler = baseHandler((frame, peer) => {
    const m = frame.message;
    if (m.op === "MONITOR") {
      peer.push({ push: "events", events: [entry("one.txt", 1, "one"), entry("two.txt", 2, "two")] });
      return { body: { cursor: 2 } };
    }
    if (m.op === "FETCH") {
      fetches++;
      // Right entries, but the bytes of two.txt are someone else's.
      const ns = (m.items as { ns?: string }[])[0].ns;
      const items = [
        { path: "one.txt", ns, entry: entry("one.txt", 1, "one"), at: 0 },
        { path: "two.txt", ns, entry: entry("two.txt", 2, "two"), at: 3 },
      ];
      return { body: { items }, data: encoder.encode("oneTWO") };
    }
    return null;
  });
  await using fake = await FakeServer.start(tmp.join("fake"), handler);
  const client: Proc = startClient({
    server: `127.0.0.1:${fake.port}`,
    ca: fake.caPath,
    user: "alice",
    password: "whatever password",
    dir,
    device: "victim",
  });
  try {
    for (const path of ["one.txt", "two.txt"]) {
      const pattern = new RegExp(`could not download ${path.replace(".", "\\.")}: FETCH reply: "two\\.txt"`);
      await waitFor(() => pattern.test(client.output), {
        message: () => `no line matching ${pattern}; client said:\n${client.output}`,
      });
    }
    assert.ok(fetches >= 1);
    for (const path of ["one.txt", "two.txt"]) assert.equal(await exists(join(dir, path)), false, path);
    const temps = [...Deno.readDirSync(join(dir, ".filesync", "tmp"))].filter((e) =>
      e.name.endsWith(".partial")
    );
    assert.deepEqual(temps, []);
    assert.equal(client.exitCode, null, "the client stopped");
  } finally {
    await client.stop();
  }
});
