// Namespaces in a session, over an in-memory pipe with a real KV file: the ones a login lists, the default of a
// request without `ns`, refusals of namespaces the caller cannot see or write (nothing changes), per-namespace
// pushes and chunk lookups scoped to what the caller can read.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { encodeRows, FORBIDDEN_CODE, PROTOCOL_VERSION, type WireNamespace } from "../protocol/messages.ts";
import { memoryPipe, RpcError, RpcPeer } from "../protocol/rpc.ts";
import { issueToken, LoginGuard, makeUser } from "./auth.ts";
import { DiskChunkStore } from "./chunk_store.ts";
import { Hub } from "./hub.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
import type { NamespaceRecord } from "./metadata_store.ts";
import { Session } from "./session.ts";

const encoder = new TextEncoder();

interface Client {
  peer: RpcPeer;
  pushes: Record<string, unknown>[];
}

interface World {
  store: KvMetadataStore;
  chunks: DiskChunkStore;
  /** A session logged in by token as `user`. */
  connect(user: string): Promise<Client>;
}

/** Runs `fn` with alice and bob in a temp folder, sessions sharing one hub. */
async function withWorld(fn: (world: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-session-ns-" });
  const store = await KvMetadataStore.open(join(dir, "metadata.kv"));
  const chunks = new DiskChunkStore(join(dir, "chunks"));
  await chunks.open();
  const hub = new Hub();
  const open: { peer: RpcPeer; session: Session }[] = [];
  try {
    for (const name of ["alice", "bob"]) await store.addUser(await makeUser(name, "pw"));
    await fn({
      store,
      chunks,
      async connect(user) {
        const [serverSide, clientSide] = memoryPipe();
        const session = new Session(serverSide, "memory", {
          store,
          chunks,
          hub,
          logins: new LoginGuard(),
          log: () => {},
        });
        const pushes: Record<string, unknown>[] = [];
        const peer = new RpcPeer(clientSide, { onPush: (frame) => pushes.push(frame.message) });
        open.push({ peer, session });
        await peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "test" });
        const { token } = await issueToken(store, user, "laptop");
        await peer.request("AUTH", { token });
        return { peer, pushes };
      },
    });
  } finally {
    for (const { peer } of open) peer.close();
    await Promise.all(open.flatMap(({ peer, session }) => [peer.closed, session.peer.closed]));
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A one-chunk file: its chunk id, bytes and the COMMIT change that uploads it. */
function file(path: string, text: string, baseRev = 0) {
  const data = encoder.encode(text);
  const id = sha256Hex(data);
  const change = {
    op: "upload",
    path,
    baseRev,
    size: data.length,
    mtime: 1_700_000_000_000,
    hash: fileHashOfChunks([id]),
    rows: { offset: 0, count: 1 },
  };
  return { id, data, change, rows: encodeRows([{ id, size: data.length }]) };
}

/** Uploads a one-chunk file through a session (PUT then COMMIT), in `ns` when given. */
async function upload(client: Client, path: string, text: string, ns?: string): Promise<void> {
  const f = file(path, text);
  const where = ns === undefined ? {} : { ns };
  await client.peer.request("PUT", { hash: f.id, ...where }, f.data);
  const reply = await client.peer.request("COMMIT", { changes: [f.change], ...where }, f.rows);
  const [result] = reply.message.results as { ok: boolean }[];
  assert.equal(result.ok, true, JSON.stringify(result));
}

/** The code and the namespace named by a refused request. */
async function refusal(promise: Promise<unknown>): Promise<[string, unknown]> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RpcError, String(error));
    return [error.code, error.detail.ns];
  }
  throw new Error("the request was not refused");
}

/** Everything of a namespace a refused op could have changed. */
async function stateOf(world: World, ns: string, ids: string[]) {
  const entries = [];
  for await (const entry of world.store.listEntries(ns)) entries.push(entry);
  entries.sort((a, b) => a.path.localeCompare(b.path));
  return {
    seq: await world.store.latestSeq(ns),
    entries,
    journal: await world.store.changesSince(ns, 0, 1000),
    trash: await world.store.listTrash(ns),
    versions: await world.store.listVersions(ns, "secret.txt"),
    referenced: [...await world.store.referencedChunks(ns, ids)].sort(),
    stored: await Promise.all(ids.map((id) => world.chunks.size(id))),
    locks: await world.store.listLocks(ns),
  };
}

Deno.test("AUTH lists the namespaces the session serves: the user's own, at the folder root", async () => {
  await withWorld(async (world) => {
    const [serverSide, clientSide] = memoryPipe();
    new Session(serverSide, "memory", {
      store: world.store,
      chunks: world.chunks,
      hub: new Hub(),
      logins: new LoginGuard(),
      log: () => {},
    });
    const peer = new RpcPeer(clientSide, {});
    try {
      await peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "test" });
      const login = await peer.request("LOGIN", { user: "alice", password: "pw", device: "phone" });
      const own: WireNamespace = { ns: "alice", role: "owner", name: "alice", mount: "" };
      assert.deepEqual(login.message.namespaces, [own]);
      const auth = await peer.request("AUTH", { token: String(login.message.token) });
      assert.deepEqual(auth.message.namespaces, [own]);
    } finally {
      peer.close();
      await peer.closed;
    }
  });
});

Deno.test("a request without ns acts on the caller's own namespace; pushes name the namespace", async () => {
  await withWorld(async (world) => {
    const alice = await world.connect("alice");
    await upload(alice, "a.txt", "one");
    await upload(alice, "b.txt", "two", "alice");
    assert.ok(await world.store.getEntry("alice", "a.txt"));
    assert.ok(await world.store.getEntry("alice", "b.txt"));
    assert.equal(await world.store.getEntry("bob", "a.txt"), null);
    const other = await world.connect("alice");
    await other.peer.request("MONITOR", { since: 0 });
    assert.deepEqual(other.pushes.map((p) => [p.push, p.ns]), [["snapshot", "alice"]]);
    await upload(alice, "c.txt", "three");
    await waitFor(() => other.pushes.length === 2);
    assert.deepEqual(other.pushes[1].push, "events");
    assert.deepEqual(other.pushes[1].ns, "alice");
    const changes = await alice.peer.request("CHANGES", { since: 0 });
    assert.equal(changes.message.latest, 3);
  });
});

Deno.test("every op naming another user's namespace, or an unknown one, is refused and changes nothing", async () => {
  await withWorld(async (world) => {
    const bob = await world.connect("bob");
    await upload(bob, "secret.txt", "bob's secret");
    await bob.peer.request("COMMIT", {
      changes: [{ op: "delete", path: "secret.txt", baseRev: 1, kind: "file" }],
    });
    await upload(bob, "secret.txt", "bob's second secret");
    await bob.peer.request("LOCK", { path: "secret.txt" });
    const alice = await world.connect("alice");
    const mine = file("mine.txt", "alice's");
    const secret = file("secret.txt", "bob's secret");
    const ids = [mine.id, secret.id];
    for (const ns of ["bob", "nobody", "share:none"]) {
      const before = await stateOf(world, "bob", ids);
      const requests: [string, Record<string, unknown>, Uint8Array?][] = [
        ["MONITOR", { since: 0, ns }],
        ["CHANGES", { since: 0, ns }],
        ["DOWNLOAD", { path: "secret.txt", ns }],
        ["DOWNLOAD", { path: "secret.txt", base: secret.change.hash, ns }],
        ["VERSIONS", { path: "secret.txt", ns }],
        ["TRASH", { ns }],
        ["RESTORE", { path: "secret.txt", ns }],
        ["RESTORE", { path: "secret.txt", as: "copy.txt", ns }],
        ["PUT", { hash: mine.id, ns }, mine.data],
        ["COMMIT", { changes: [mine.change], ns }, mine.rows],
        ["COMMIT", { changes: [{ op: "mkdir", path: "new", baseRev: 0 }], ns }],
        ["COMMIT", { changes: [{ op: "delete", path: "secret.txt", baseRev: 3, kind: "file" }], ns }],
        ["COMMIT", { changes: [{ op: "move", from: "secret.txt", path: "moved.txt", baseRev: 3 }], ns }],
        ["LOCK", { path: "secret.txt", ns }],
        ["LOCK", { path: "secret.txt", renew: true, ns }],
        ["UNLOCK", { path: "secret.txt", ns }],
        ["UNLOCK", { path: "secret.txt", force: true, ns }],
        ["LOCKS", { ns }],
      ];
      for (const [op, body, data] of requests) {
        assert.deepEqual(
          await refusal(alice.peer.request(op, body, data)),
          [FORBIDDEN_CODE, ns],
          `${op} ${JSON.stringify(body)}`,
        );
      }
      assert.deepEqual(
        await stateOf(world, "bob", ids),
        before,
        `nothing changed in bob's namespace (${ns})`,
      );
      assert.deepEqual(alice.pushes, [], "no pushes of another namespace");
    }
    assert.deepEqual(await stateOf(world, "alice", ids), {
      seq: 0,
      entries: [],
      journal: [],
      trash: [],
      versions: [],
      referenced: [],
      stored: [null, secret.data.length],
      locks: [],
    }, "nothing landed in alice's namespace either");
    // bob's chunk stays unknown to alice: she does not learn that the server holds it.
    assert.deepEqual((await alice.peer.request("HAVE", { hashes: [secret.id] })).message.missing, [
      secret.id,
    ]);
    await assert.rejects(alice.peer.request("GET", { hash: secret.id }), /No chunk/);
    const [code] = await refusal(alice.peer.request("MONITOR", { since: 0, ns: "../bob" }));
    assert.equal(code, "bad_request", "a malformed namespace id is refused by the schema");
  });
});

Deno.test("a read grant on a share lets the grantee follow and read it, never write; writes push per namespace", async () => {
  await withWorld(async (world) => {
    const share: NamespaceRecord = {
      id: "share:photos",
      owner: "bob",
      kind: "share",
      name: "Photos",
      created: 1,
      grants: [{ user: "alice", role: "read" }],
    };
    await world.store.putNamespace(share);
    const bob = await world.connect("bob");
    await upload(bob, "beach.jpg", "sand", share.id);
    await upload(bob, "private.txt", "bob only");
    const alice = await world.connect("alice");
    const other = file("beach.jpg", "sand");
    assert.deepEqual(
      (await alice.peer.request("HAVE", { hashes: [other.id, file("", "bob only").id] }))
        .message.missing,
      [file("", "bob only").id],
      "the share's chunk is known, bob's own is not",
    );
    await alice.peer.request("MONITOR", { since: 0 });
    await alice.peer.request("MONITOR", { since: 0, ns: share.id });
    assert.deepEqual(alice.pushes.map((p) => [p.push, p.ns]), [["snapshot", share.id]]);
    const download = await alice.peer.request("DOWNLOAD", { path: "beach.jpg", ns: share.id });
    assert.equal((download.message.entry as { path: string }).path, "beach.jpg");
    const before = await stateOf(world, share.id, [other.id]);
    const [code] = await refusal(
      alice.peer.request("COMMIT", { changes: [file("mine.jpg", "x").change], ns: share.id }, other.rows),
    );
    assert.equal(code, FORBIDDEN_CODE);
    assert.deepEqual(await stateOf(world, share.id, [other.id]), before);
    await upload(bob, "dunes.jpg", "more sand", share.id);
    await waitFor(() => alice.pushes.length === 2);
    assert.deepEqual([alice.pushes[1].push, alice.pushes[1].ns], ["events", share.id]);
    await upload(bob, "private2.txt", "still bob only");
    await upload(alice, "own.txt", "alice");
    await waitFor(() => alice.pushes.length === 3);
    assert.deepEqual([alice.pushes[2].push, alice.pushes[2].ns], ["events", "alice"]);
    assert.deepEqual(
      (await refusal(alice.peer.request("MONITOR", { since: 0, ns: share.id })))[0],
      "bad_request",
      "one subscription per namespace",
    );
  });
});

/** Polls until `check` holds (5 s at most). */
async function waitFor(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test("locks live in the namespace they name: a grantee's lock in a share, forced open by the share's owner", async () => {
  await withWorld(async (world) => {
    const share: NamespaceRecord = {
      id: "share:docs",
      owner: "bob",
      kind: "share",
      name: "Docs",
      created: 1,
      grants: [{ user: "alice", role: "write" }],
    };
    await world.store.putNamespace(share);
    const bob = await world.connect("bob");
    await upload(bob, "plan.txt", "plan", share.id);
    await upload(bob, "plan.txt", "bob's own plan");
    const alice = await world.connect("alice");
    await bob.peer.request("MONITOR", { since: 0, ns: share.id });
    await alice.peer.request("LOCK", { path: "plan.txt", ns: share.id });
    assert.deepEqual((await world.store.listLocks(share.id)).map((l) => [l.path, l.user]), [[
      "plan.txt",
      "alice",
    ]]);
    assert.deepEqual(await world.store.listLocks("bob"), [], "bob's own plan.txt is not locked");
    await waitFor(() => bob.pushes.some((p) => p.push === "locks"));
    assert.equal(bob.pushes.find((p) => p.push === "locks")!.ns, share.id, "the lock push names the share");
    const [code] = await refusal(alice.peer.request("UNLOCK", { path: "plan.txt", force: true, ns: "bob" }));
    assert.equal(code, FORBIDDEN_CODE);
    await bob.peer.request("UNLOCK", { path: "plan.txt", force: true, ns: share.id });
    assert.deepEqual(await world.store.listLocks(share.id), [], "the owner of the share forced it open");
  });
});
