// Sharing in sessions, over in-memory pipes with a real KV file: the access matrix (every op × own file, another
// user's unshared file, read share, write share, revoked share, a shared file locked by its owner), SHARE errors,
// SHARES, pushes of share changes, MONITOR of a share's path live and on catch-up, and chunk lookups scoped to
// what the caller can read.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { encodeRows, FORBIDDEN_CODE, PROTOCOL_VERSION, SHARE_REFUSED_CODE } from "../protocol/messages.ts";
import { memoryPipe, RpcError, RpcPeer } from "../protocol/rpc.ts";
import { issueToken, LoginGuard, makeUser } from "./auth.ts";
import { DiskChunkStore } from "./chunk_store.ts";
import { Hub } from "./hub.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
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

/** Runs `fn` with alice, bob and carol in a temp folder, sessions sharing one hub. */
async function withWorld(fn: (world: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-session-shares-" });
  const store = await KvMetadataStore.open(join(dir, "metadata.kv"));
  const chunks = new DiskChunkStore(join(dir, "chunks"));
  await chunks.open();
  const hub = new Hub();
  const open: { peer: RpcPeer; session: Session }[] = [];
  try {
    for (const name of ["alice", "bob", "carol"]) await store.addUser(await makeUser(name, "pw"));
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

/** What a request came to: "ok", or the code of its refusal (of the request, or of its one commit change). */
async function outcome(promise: Promise<{ message: Record<string, unknown> }>): Promise<string> {
  try {
    const reply = await promise;
    const results = reply.message.results as { ok: boolean; code?: string }[] | undefined;
    if (results && !results[0].ok) return results[0].code ?? "refused";
    return "ok";
  } catch (error) {
    assert.ok(error instanceof RpcError, String(error));
    assert.ok(error.message.length > 0 && !error.message.includes("\n"), "one clear line");
    return error.code;
  }
}

/** Uploads a one-chunk file (PUT then COMMIT) in `ns` (default: the caller's own); the outcome. */
function upload(client: Client, path: string, text: string, options: { ns?: string; baseRev?: number } = {}) {
  const f = file(path, text, options.baseRev ?? 0);
  const where = options.ns === undefined ? {} : { ns: options.ns };
  return outcome(
    client.peer.request("PUT", { hash: f.id, ...where }, f.data)
      .then(() => client.peer.request("COMMIT", { changes: [f.change], ...where }, f.rows)),
  );
}

/** The rev of a live entry. */
async function revOf(world: World, ns: string, path: string): Promise<number> {
  const entry = await world.store.getEntry(ns, path);
  assert.ok(entry, `${ns}:${path} exists`);
  return entry.rev;
}

/** Everything of a namespace an op could change: entries, journal, history, trash, grants and locks. */
async function stateOf(world: World, ns: string) {
  const entries = [];
  for await (const entry of world.store.listEntries(ns)) entries.push(entry);
  const versions = [];
  for await (const v of world.store.listAllVersions(ns)) versions.push(v);
  return {
    seq: await world.store.latestSeq(ns),
    entries: entries.sort((a, b) => a.path.localeCompare(b.path)),
    journal: await world.store.changesSince(ns, 0, 1000),
    versions,
    trash: await world.store.listTrash(ns),
    grants: (await world.store.getNamespace(ns))?.grants ?? [],
    locks: await world.store.listLocks(ns),
  };
}

/** Polls until `check` holds (5 s at most). */
async function waitFor(check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * alice's namespace: Project/ (write-shared with bob), Docs/ (read-shared with bob), Secret/ (never shared),
 * Old/ (shared with bob, then taken back while bob is connected); each with a file f.txt of two versions. bob
 * owns Mine/f.txt likewise. Returns alice's and bob's sessions.
 */
async function setUp(world: World): Promise<{ alice: Client; bob: Client }> {
  const alice = await world.connect("alice");
  const bob = await world.connect("bob");
  for (
    const [client, folder] of [[alice, "Project"], [alice, "Docs"], [alice, "Secret"], [alice, "Old"], [
      bob,
      "Mine",
    ]] as const
  ) {
    assert.equal(await upload(client, `${folder}/f.txt`, `${folder} one`), "ok");
    const ns = client === alice ? "alice" : "bob";
    assert.equal(
      await upload(client, `${folder}/f.txt`, `${folder} two`, {
        baseRev: await revOf(world, ns, `${folder}/f.txt`),
      }),
      "ok",
    );
  }
  for (const [path, access] of [["Project", "write"], ["Docs", "read"], ["Old", "write"]]) {
    assert.equal(await outcome(alice.peer.request("SHARE", { path, with: "bob", access })), "ok");
  }
  await waitFor(() => bob.pushes.filter((p) => p.push === "namespaces").length === 3);
  assert.equal(await outcome(alice.peer.request("UNSHARE", { path: "Old", with: "bob" })), "ok");
  await waitFor(() => bob.pushes.filter((p) => p.push === "namespaces").length === 4);
  return { alice, bob };
}

type Target = "own" | "unshared" | "read share" | "write share" | "revoked share" | "locked by owner";

/** Where each target's file is: namespace and folder. */
const TARGETS: Record<Target, { ns: string; folder: string }> = {
  "own": { ns: "bob", folder: "Mine" },
  "unshared": { ns: "alice", folder: "Secret" },
  "read share": { ns: "alice", folder: "Docs" },
  "write share": { ns: "alice", folder: "Project" },
  "revoked share": { ns: "alice", folder: "Old" },
  "locked by owner": { ns: "alice", folder: "Project" },
};

type Operation =
  | "list"
  | "download"
  | "upload"
  | "delete"
  | "rename"
  | "share"
  | "unshare"
  | "lock"
  | "unlock"
  | "versions"
  | "restore";

/** Runs one operation of bob's on a target; its outcome. */
async function run(world: World, bob: Client, op: Operation, target: Target): Promise<string> {
  const { ns, folder } = TARGETS[target];
  const path = `${folder}/f.txt`;
  const request = (name: string, body: Record<string, unknown>, data?: Uint8Array) =>
    outcome(bob.peer.request(name, { ...body, ns }, data));
  switch (op) {
    case "list":
      return await request("CHANGES", { since: 0, path: folder });
    case "download":
      return await request("DOWNLOAD", { path });
    case "upload":
      return await upload(bob, path, "bob's edit", { ns, baseRev: await revOf(world, ns, path) });
    case "delete":
      return await request("COMMIT", {
        changes: [{ op: "delete", path, baseRev: await revOf(world, ns, path), kind: "file" }],
      });
    case "rename":
      return await request("COMMIT", {
        changes: [{ op: "move", from: path, path: `${folder}/g.txt`, baseRev: await revOf(world, ns, path) }],
      });
    case "share":
      return await request("SHARE", { path, with: "carol", access: "read" });
    case "unshare":
      if (target === "own") await request("SHARE", { path: folder, with: "carol", access: "read" });
      return await request("UNSHARE", { path: folder, with: "carol" });
    case "lock":
      return await request("LOCK", { path });
    case "unlock":
      if (target !== "locked by owner") await request("LOCK", { path });
      return await request("UNLOCK", { path });
    case "versions":
      return await request("VERSIONS", { path });
    case "restore":
      return await request("RESTORE", { path });
  }
}

const F = FORBIDDEN_CODE;
/** The expected outcome of each operation on each target (bob acting). */
const MATRIX: Record<Operation, Record<Target, string>> = {
  list: {
    "own": "ok",
    "unshared": F,
    "read share": "ok",
    "write share": "ok",
    "revoked share": F,
    "locked by owner": "ok",
  },
  download: {
    "own": "ok",
    "unshared": F,
    "read share": "ok",
    "write share": "ok",
    "revoked share": F,
    "locked by owner": "ok",
  },
  upload: {
    "own": "ok",
    "unshared": F,
    "read share": F,
    "write share": "ok",
    "revoked share": F,
    "locked by owner": "locked",
  },
  delete: {
    "own": "ok",
    "unshared": F,
    "read share": F,
    "write share": "ok",
    "revoked share": F,
    "locked by owner": "locked",
  },
  rename: {
    "own": "ok",
    "unshared": F,
    "read share": F,
    "write share": "ok",
    "revoked share": F,
    "locked by owner": "locked",
  },
  share: {
    "own": "ok",
    "unshared": F,
    "read share": F,
    "write share": F,
    "revoked share": F,
    "locked by owner": F,
  },
  unshare: {
    "own": "ok",
    "unshared": F,
    "read share": F,
    "write share": F,
    "revoked share": F,
    "locked by owner": F,
  },
  lock: {
    "own": "ok",
    "unshared": F,
    "read share": F,
    "write share": "ok",
    "revoked share": F,
    "locked by owner": "locked",
  },
  unlock: {
    "own": "ok",
    "unshared": F,
    "read share": F,
    "write share": "ok",
    "revoked share": F,
    "locked by owner": "not_holder",
  },
  versions: {
    "own": "ok",
    "unshared": F,
    "read share": "ok",
    "write share": "ok",
    "revoked share": F,
    "locked by owner": "ok",
  },
  restore: {
    "own": "ok",
    "unshared": F,
    "read share": F,
    "write share": "ok",
    "revoked share": F,
    "locked by owner": "locked",
  },
};

for (const op of Object.keys(MATRIX) as Operation[]) {
  Deno.test(`access matrix: ${op} on own file, unshared, read share, write share, revoked share, locked`, async () => {
    for (const target of Object.keys(TARGETS) as Target[]) {
      await withWorld(async (world) => {
        const { alice, bob } = await setUp(world);
        if (target === "locked by owner") {
          assert.equal(await outcome(alice.peer.request("LOCK", { path: "Project/f.txt" })), "ok");
        }
        const before = { alice: await stateOf(world, "alice"), bob: await stateOf(world, "bob") };
        const expected = MATRIX[op][target];
        assert.equal(await run(world, bob, op, target), expected, `${op} on ${target}`);
        if (expected !== "ok") {
          assert.deepEqual(
            await stateOf(world, "alice"),
            before.alice,
            `${op} on ${target}: alice unchanged`,
          );
          assert.deepEqual(await stateOf(world, "bob"), before.bob, `${op} on ${target}: bob unchanged`);
        }
      });
    }
  });
}

Deno.test("SHARE refuses an unknown user, yourself, a missing path, re-sharing and overlaps; nothing changes", async () => {
  await withWorld(async (world) => {
    const { alice, bob } = await setUp(world);
    const before = await stateOf(world, "alice");
    const cases: [Client, Record<string, unknown>, string, RegExp][] = [
      [alice, { path: "Secret", with: "zed" }, "not_found", /No user "zed"/],
      [alice, { path: "Secret", with: "alice" }, SHARE_REFUSED_CODE, /yourself/],
      [alice, { path: "Nope", with: "bob" }, "not_found", /No file or folder "Nope"/],
      [alice, { path: "Project/f.txt", with: "bob" }, SHARE_REFUSED_CODE, /inside "Project"/],
      [bob, { path: "Project", with: "carol", ns: "alice" }, FORBIDDEN_CODE, /only the owner shares/],
      [
        bob,
        { path: "Secret", with: "carol", ns: "alice" },
        FORBIDDEN_CODE,
        /No access to namespace "alice" at "Secret"/,
      ],
    ];
    for (const [client, body, code, message] of cases) {
      await assert.rejects(
        client.peer.request("SHARE", { access: "read", ...body }),
        (error: RpcError) => error.code === code && message.test(error.message),
        JSON.stringify(body),
      );
    }
    await assert.rejects(
      alice.peer.request("UNSHARE", { path: "Secret" }),
      (error: RpcError) => error.code === SHARE_REFUSED_CODE && /"Secret" is not shared/.test(error.message),
    );
    assert.deepEqual(await stateOf(world, "alice"), before);
    // A folder above the one shared with bob can go to carol.
    assert.equal(
      await outcome(alice.peer.request("SHARE", { path: "Project", with: "carol", access: "read" })),
      "ok",
    );
  });
});

Deno.test("SHARES lists what I share and what is shared with me; mounts dodge the grantee's own names", async () => {
  await withWorld(async (world) => {
    const { alice, bob } = await setUp(world);
    assert.equal(await upload(bob, "Docs", "bob's own file called Docs"), "ok");
    assert.equal(await upload(alice, "Notes/n.txt", "n"), "ok");
    await alice.peer.request("SHARE", { path: "Notes", with: "bob", access: "read" });
    await alice.peer.request("SHARE", { path: "Secret/f.txt", with: "carol", access: "write" });
    const mine = (await alice.peer.request("SHARES", {})).message;
    assert.deepEqual(
      (mine.mine as { path: string; user: string; access: string; mount: string }[]).map((s) =>
        `${s.path} ${s.user} ${s.access} ${s.mount}`
      ),
      [
        "Project bob write Project",
        "Docs bob read Docs",
        "Notes bob read Notes",
        "Secret/f.txt carol write f.txt",
      ],
    );
    assert.deepEqual(mine.withMe, []);
    const theirs = (await bob.peer.request("SHARES", {})).message;
    assert.deepEqual(theirs.mine, []);
    assert.deepEqual(
      (theirs.withMe as { path: string; owner: string }[]).map((s) => `${s.owner}:${s.path}`),
      [
        "alice:Project",
        "alice:Docs",
        "alice:Notes",
      ],
    );
    // Docs was shared before bob had a file of that name; a new share of a clashing name gets another one.
    assert.equal(await upload(alice, "Mine/x.txt", "alice's Mine"), "ok");
    const reply = await bob.peer.request("SHARES", {});
    assert.ok(reply);
    const shared = await alice.peer.request("SHARE", { path: "Mine", with: "bob", access: "read" });
    assert.equal((shared.message.share as { mount: string }).mount, "Mine (shared by alice)");
  });
});

Deno.test("share changes are pushed to the grantee's sessions, and a MONITOR of a share stops when it goes", async () => {
  await withWorld(async (world) => {
    const { alice, bob } = await setUp(world);
    const phone = await world.connect("bob");
    await phone.peer.request("MONITOR", { since: 0, ns: "alice", path: "Project" });
    assert.deepEqual(
      phone.pushes.map((p) => [p.push, p.path, (p.entries as { path: string }[]).map((e) => e.path)]),
      [["snapshot", "Project", ["Project", "Project/f.txt"]]],
      "only what is under the share",
    );
    await alice.peer.request("SHARE", { path: "Project", with: "bob", access: "read" });
    await waitFor(() => phone.pushes.length === 2);
    const change = phone.pushes[1] as {
      push: string;
      change: string;
      share: { access: string };
      namespaces: unknown[];
    };
    assert.deepEqual([change.push, change.change, change.share.access], ["namespaces", "access", "read"]);
    assert.deepEqual(change.namespaces, [
      { ns: "bob", role: "owner", name: "bob", mount: "" },
      { ns: "alice", role: "read", name: "Project", mount: "Project", path: "Project", owner: "alice" },
      { ns: "alice", role: "read", name: "Docs", mount: "Docs", path: "Docs", owner: "alice" },
    ]);
    assert.equal(
      await upload(phone, "Project/new.txt", "x", { ns: "alice" }),
      FORBIDDEN_CODE,
      "read-only now",
    );
    await alice.peer.request("UNSHARE", { path: "Project" });
    await waitFor(() => phone.pushes.length === 3);
    assert.equal((phone.pushes[2] as { change: string }).change, "gone");
    assert.equal(await upload(alice, "Project/later.txt", "not for bob"), "ok");
    assert.equal(await outcome(phone.peer.request("DOWNLOAD", { path: "Project/f.txt", ns: "alice" })), F);
    assert.equal(phone.pushes.length, 3, "no journal entry after the share went");
    assert.equal(bob.pushes.filter((p) => p.push === "namespaces").length, 6, "every session of bob heard");
    assert.equal(alice.pushes.length, 0, "the owner's sessions hear nothing");
  });
});

Deno.test("MONITOR of a share streams only entries under its path, live and on catch-up", async () => {
  await withWorld(async (world) => {
    const { alice, bob } = await setUp(world);
    await bob.peer.request("MONITOR", { since: 0, ns: "alice", path: "Project" });
    const snapshot = bob.pushes.find((p) => p.push === "snapshot") as { cursor: number; tag?: string };
    assert.equal(snapshot.cursor, await world.store.latestSeq("alice"), "the cursor is alice's seq");
    const seen = () =>
      bob.pushes.filter((p) => p.push === "events").flatMap((p) =>
        (p.events as { path: string }[]).map((e) => e.path)
      );
    assert.equal(await upload(alice, "Secret/live.txt", "no"), "ok");
    assert.equal(await upload(alice, "Project/live.txt", "yes"), "ok");
    assert.equal(await upload(alice, "Projects.txt", "no: a sibling"), "ok");
    await waitFor(() => seen().length === 1);
    assert.deepEqual(seen(), ["Project/live.txt"]);
    const last = bob.pushes.filter((p) => p.push === "events").at(-1) as {
      events: { rev: number; tag?: string }[];
    };
    const cursor = last.events.at(-1)!;
    // Offline: more commits, then catch up from the cursor kept for this view.
    assert.equal(await upload(alice, "Project/off.txt", "yes"), "ok");
    assert.equal(await upload(alice, "Docs/off.txt", "no: another view"), "ok");
    const epoch = await world.store.journalEpoch();
    const other = await world.connect("bob");
    await other.peer.request("MONITOR", {
      since: cursor.rev,
      epoch,
      tag: cursor.tag,
      ns: "alice",
      path: "Project",
    });
    assert.deepEqual(
      other.pushes.flatMap((p) => (p.events as { path: string }[]).map((e) => e.path)),
      ["Project/off.txt"],
    );
    const changes = await other.peer.request("CHANGES", { since: 0, ns: "alice", path: "Docs" });
    assert.ok((changes.message.events as { path: string }[]).every((e) => e.path.startsWith("Docs")));
    assert.equal(await outcome(other.peer.request("CHANGES", { since: 0, ns: "alice" })), F, "not the whole");
    assert.equal(await outcome(other.peer.request("MONITOR", { since: 0, ns: "alice" })), F);
    assert.equal(await outcome(other.peer.request("TRASH", { ns: "alice" })), F);
  });
});

Deno.test("chunk lookups: a grantee learns of chunks in its shares only; moving an own file into a share uploads no content", async () => {
  await withWorld(async (world) => {
    const { alice, bob } = await setUp(world);
    const shared = file("x", "Project two");
    const secret = file("x", "Secret two");
    const own = file("Mine/f.txt", "Mine two");
    const missing =
      (await bob.peer.request("HAVE", { hashes: [shared.id, secret.id, own.id] })).message.missing;
    assert.deepEqual(missing, [secret.id]);
    assert.equal(await outcome(bob.peer.request("GET", { hash: secret.id })), "not_found");
    assert.equal(await outcome(bob.peer.request("GET", { hash: shared.id })), "ok");
    // bob moves his own file into the write share: the manifest alone goes (no PUT), the chunk is known.
    const move = { ...file("Project/from-bob.txt", "Mine two").change };
    const reply = await bob.peer.request("COMMIT", { changes: [move], ns: "alice" }, own.rows);
    assert.equal((reply.message.results as { ok: boolean }[])[0].ok, true);
    assert.equal((await world.store.getEntry("alice", "Project/from-bob.txt"))?.hash, own.change.hash);
    // The base of a DOWNLOAD counts only in the file's own history.
    const download = await bob.peer.request("DOWNLOAD", {
      path: "Project/f.txt",
      ns: "alice",
      base: file("x", "Secret one").change.hash,
    });
    assert.equal(download.message.from, undefined);
    void alice;
  });
});

Deno.test("a grantee may not delete or rename the shared item itself, and may leave the share", async () => {
  await withWorld(async (world) => {
    const { alice, bob } = await setUp(world);
    const before = await stateOf(world, "alice");
    const rev = await revOf(world, "alice", "Project");
    for (
      const change of [
        { op: "delete", path: "Project", baseRev: rev, kind: "dir" },
        { op: "move", from: "Project", path: "Project2", baseRev: rev },
      ]
    ) {
      await assert.rejects(
        bob.peer.request("COMMIT", { changes: [change], ns: "alice" }),
        (error: RpcError) =>
          error.code === F &&
          /only the owner deletes or renames it|No access .* at "Project2"/.test(error.message),
      );
    }
    await assert.rejects(
      bob.peer.request("UNSHARE", { path: "Project", with: "carol", ns: "alice" }),
      (error: RpcError) => error.code === F,
    );
    assert.deepEqual(await stateOf(world, "alice"), before);
    const left = await bob.peer.request("UNSHARE", { path: "Project", ns: "alice" });
    assert.deepEqual((left.message.removed as { user: string }[]).map((s) => s.user), ["bob"]);
    assert.equal(await outcome(bob.peer.request("DOWNLOAD", { path: "Project/f.txt", ns: "alice" })), F);
    void alice;
  });
});

Deno.test("locks in a write share: the grantee's lock holds the owner back; the owner can force it open", async () => {
  await withWorld(async (world) => {
    const { alice, bob } = await setUp(world);
    assert.equal(await outcome(bob.peer.request("LOCK", { path: "Project/f.txt", ns: "alice" })), "ok");
    const rev = await revOf(world, "alice", "Project/f.txt");
    assert.equal(await upload(alice, "Project/f.txt", "alice's edit", { baseRev: rev }), "locked");
    assert.equal(await outcome(alice.peer.request("UNLOCK", { path: "Project/f.txt" })), "not_holder");
    assert.equal(await outcome(alice.peer.request("UNLOCK", { path: "Project/f.txt", force: true })), "ok");
    assert.equal(await upload(alice, "Project/f.txt", "alice's edit", { baseRev: rev }), "ok");
    assert.equal(
      await outcome(bob.peer.request("LOCK", { path: "Docs/f.txt", ns: "alice" })),
      F,
      "read share",
    );
    const locks = await bob.peer.request("LOCKS", { ns: "alice", path: "Project" });
    assert.deepEqual(locks.message.locks, []);
    assert.equal(await outcome(bob.peer.request("LOCKS", { ns: "alice" })), F, "not the whole namespace");
    // Lock pushes of a share's MONITOR: only locks inside it, named by its path.
    await bob.peer.request("MONITOR", { since: 0, ns: "alice", path: "Project" });
    const lockPushes = () => bob.pushes.filter((p) => p.push === "locks");
    assert.equal(await outcome(alice.peer.request("LOCK", { path: "Secret/f.txt" })), "ok");
    assert.equal(await outcome(alice.peer.request("LOCK", { path: "Project/f.txt" })), "ok");
    await waitFor(() => lockPushes().length === 1);
    const [push] = lockPushes() as { path: string; locks: { path: string }[] }[];
    assert.equal(push.path, "Project");
    assert.deepEqual(push.locks.map((l) => l.path), ["Project/f.txt"], "alice's lock on Secret is not shown");
  });
});
