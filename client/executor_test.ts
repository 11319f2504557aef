// Tests for the executor's writes on a real folder: nothing is ever written, moved or deleted through a link.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { encodeRows, type WireEntry } from "../protocol/messages.ts";
import type { RpcPeer } from "../protocol/rpc.ts";
import { Executor, fetchBatches, FolderSyncs } from "./executor.ts";
import { MountTable } from "./mounts.ts";
import { createIgnoreMatcher } from "./ignore.ts";
import type { Action, LocalEntry, RemoteEntry } from "./reconcile.ts";
import { type ScanEntry, Scanner } from "./scanner.ts";
import { ClientState } from "./state.ts";
import { EventBus } from "./events.ts";
import { formatEvent } from "./event_format.ts";

/** An event bus that keeps the readable line of every event in `lines`. */
function linesOf(lines: string[]): EventBus {
  const bus = new EventBus();
  bus.subscribe((event) => lines.push(formatEvent(event)));
  return bus;
}

const CONTENT = new TextEncoder().encode("content from the server");
const CHUNK = sha256Hex(CONTENT);
const HASH = fileHashOfChunks([CHUNK]);

/** The FETCH reply of a server holding CONTENT at rev 7 at every path asked. */
function fetchReply(message: Record<string, unknown>) {
  const asked = message.items as { path: string; ns?: string }[];
  const items = asked.map((item, i) => ({
    ...item,
    entry: { ...remoteFile(), path: item.path },
    at: i * CONTENT.length,
  }));
  const data = new Uint8Array(CONTENT.length * asked.length);
  for (let i = 0; i < asked.length; i++) data.set(CONTENT, i * CONTENT.length);
  return { message: { items }, data };
}

/**
 * A server that answers every DOWNLOAD and FETCH with CONTENT (inline), at rev 7; any other request fails the
 * test. `beforeFetch` runs before a FETCH is answered (the user acting while the bytes travel).
 */
function fakePeer(requests: string[], beforeFetch: () => void = () => {}): RpcPeer {
  return {
    request: (op: string, message: Record<string, unknown> = {}) => {
      if (op === "FETCH") {
        const paths = (message.items as { path: string }[]).map((i) => i.path);
        requests.push(`FETCH ${paths.join(" ")}`);
        beforeFetch();
        return Promise.resolve(fetchReply(message));
      }
      requests.push(`${op} ${String(message.path ?? "")}`);
      if (op !== "DOWNLOAD") return Promise.reject(new Error(`unexpected ${op}`));
      const entry: WireEntry = {
        path: String(message.path),
        kind: "file",
        hash: HASH,
        size: CONTENT.length,
        mtime: 1_700_000_000_000,
        rev: 7,
        device: "B",
      };
      const rows = encodeRows([{ id: CHUNK, size: CONTENT.length }]);
      const data = new Uint8Array(rows.length + CONTENT.length);
      data.set(rows);
      data.set(CONTENT, rows.length);
      return Promise.resolve({ message: { entry, inline: 1 }, data });
    },
  } as unknown as RpcPeer;
}

function remoteFile(): RemoteEntry {
  return { kind: "file", hash: HASH, size: CONTENT.length, mtime: 1_700_000_000_000, rev: 7, device: "B" };
}

function localOf(abs: string): LocalEntry {
  const info = Deno.lstatSync(abs);
  return { kind: "file", hash: "h", size: info.size, mtime: info.mtime!.getTime() };
}

/** A server that refuses every change of a COMMIT as a conflict (another device got there first). */
function refusingPeer(requests: string[]): RpcPeer {
  return {
    request: (op: string, message: Record<string, unknown> = {}) => {
      if (op !== "COMMIT") return Promise.reject(new Error(`unexpected ${op}`));
      const changes = message.changes as { op: string; path: string }[];
      for (const change of changes) requests.push(`COMMIT ${change.op} ${change.path}`);
      const results = changes.map(() => ({ ok: false, code: "conflict", error: "another device was first" }));
      return Promise.resolve({ message: { results } });
    },
  } as unknown as RpcPeer;
}

/** A synced folder `root` with `docs` -> `outside`, a real file `top.txt`, and an executor over it. */
async function setUp(makePeer: (requests: string[]) => RpcPeer = fakePeer) {
  const tmp = await Deno.makeTempDir({ prefix: "filesync-executor-" });
  const root = join(tmp, "root");
  const outside = join(tmp, "outside");
  await Deno.mkdir(root);
  await Deno.mkdir(join(outside, "sub"), { recursive: true });
  await Deno.writeTextFile(join(outside, "a.txt"), "outside a");
  await Deno.writeTextFile(join(root, "top.txt"), "top");
  await Deno.symlink(outside, join(root, "docs"));
  const state = await ClientState.open(root);
  const lines: string[] = [];
  const requests: string[] = [];
  const local = new Map<string, ScanEntry>();
  const executor = new Executor({
    root,
    state,
    scanner: new Scanner(root, { ignore: createIgnoreMatcher(null), known: () => undefined }),
    peer: makePeer(requests),
    local,
    events: linesOf(lines),
    distrust: new Set(),
  });
  return {
    tmp,
    root,
    outside,
    executor,
    lines,
    requests,
    state,
    local,
    async [Symbol.asyncDispose]() {
      await state.close();
      await Deno.remove(tmp, { recursive: true });
    },
  };
}

/** Every file below `dir` with its text, for before/after comparisons. */
function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const item of Deno.readDirSync(join(dir, rel))) {
      const path = rel ? `${rel}/${item.name}` : item.name;
      if (item.isDirectory) {
        out.push(`${path}/`);
        walk(path);
      } else out.push(`${path} ${Deno.readTextFileSync(join(dir, path))}`);
    }
  };
  walk("");
  return out.sort().join("\n");
}

Deno.test("Executor refuses every local write through a link, one line each, and touches nothing outside", async () => {
  await using t = await setUp();
  const before = snapshot(t.outside);
  const inside = localOf(join(t.outside, "a.txt"));
  const top = localOf(join(t.root, "top.txt"));
  const plan: Action[] = [
    {
      type: "mkdirLocal",
      path: "docs/new",
      remote: { ...remoteFile(), kind: "dir", hash: "" },
      expect: null,
    },
    { type: "moveLocal", from: "top.txt", to: "docs/top.txt", expect: top, remote: remoteFile() },
    { type: "moveLocal", from: "docs/a.txt", to: "moved.txt", expect: inside, remote: remoteFile() },
    {
      type: "conflict",
      path: "docs/a.txt",
      keep: "remote",
      copyPath: "docs/a (conflicted copy).txt",
      local: inside,
      remote: remoteFile(),
    },
    { type: "download", path: "docs/b.txt", remote: remoteFile(), expect: null },
    { type: "download", path: "docs/a.txt", remote: remoteFile(), expect: inside },
    { type: "upload", path: "docs/a.txt", local: inside, baseRev: 0 },
    { type: "deleteLocal", path: "docs/a.txt", expect: inside },
    { type: "deleteLocal", path: "docs/sub", expect: { kind: "dir", hash: "", size: 0, mtime: 0 } },
    { type: "deleteLocal", path: "docs", expect: { kind: "dir", hash: "", size: 0, mtime: 0 } },
  ];
  const report = await t.executor.run(plan);
  assert.equal(report.done, 0);
  assert.equal(report.skipped, plan.length);
  assert.equal(t.lines.length, plan.length, t.lines.join("\n"));
  for (const line of t.lines) {
    assert.match(line, /^could not .*: "docs" is a symbolic link; nothing is written/);
  }
  assert.equal(snapshot(t.outside), before);
  assert.equal(Deno.lstatSync(join(t.root, "docs")).isSymlink, true);
  assert.equal(Deno.readTextFileSync(join(t.root, "top.txt")), "top");
  assert.deepEqual(Deno.readDirSync(t.state.tmpDir).toArray(), [], "a temp file was left behind");
  // Only the download of a new path reaches the server; its result is refused before the rename.
  assert.deepEqual(t.requests, ["FETCH docs/b.txt"]);
});

Deno.test("Executor refuses to replace a link itself with a download or a folder", async () => {
  await using t = await setUp();
  await Deno.symlink(join(t.outside, "a.txt"), join(t.root, "file-link"));
  const report = await t.executor.run([
    { type: "download", path: "file-link", remote: remoteFile(), expect: null },
    { type: "mkdirLocal", path: "docs", remote: { ...remoteFile(), kind: "dir", hash: "" }, expect: null },
  ]);
  assert.equal(report.skipped, 2);
  assert.equal(Deno.lstatSync(join(t.root, "file-link")).isSymlink, true);
  assert.equal(Deno.lstatSync(join(t.root, "docs")).isSymlink, true);
  assert.equal(Deno.readTextFileSync(join(t.outside, "a.txt")), "outside a");
});

Deno.test("Executor writes a download below real folders and records it", async () => {
  await using t = await setUp();
  const report = await t.executor.run([
    { type: "download", path: "real/deep/b.txt", remote: remoteFile(), expect: null },
  ]);
  assert.equal(report.done, 1, t.lines.join("\n"));
  assert.equal(Deno.readTextFileSync(join(t.root, "real/deep/b.txt")), "content from the server");
  assert.equal(t.state.base.get("real/deep/b.txt")?.rev, 7);
});

Deno.test("Executor counts a change the server refused as skipped, so the next cycle looks at its paths again", async () => {
  // Soak seed 7: a rename here refused because another device renamed the file first was counted as done,
  // and the renamed file was never looked at again (it stayed on this device only).
  await using t = await setUp(refusingPeer);
  const top = localOf(join(t.root, "top.txt"));
  t.state.setBase("old.txt", {
    kind: "file",
    hash: "h",
    rev: 3,
    size: top.size,
    mtime: top.mtime,
    ino: null,
  });
  const report = await t.executor.run([
    { type: "mkdirRemote", path: "new", baseRev: 0 },
    { type: "moveRemote", from: "old.txt", to: "top.txt", baseRev: 3, local: top },
    { type: "deleteRemote", path: "gone.txt", kind: "file", baseRev: 2 },
  ]);
  assert.deepEqual(t.requests, ["COMMIT mkdir new", "COMMIT move top.txt", "COMMIT delete gone.txt"]);
  assert.deepEqual(report, { done: 0, skipped: 3, again: false });
  assert.equal(t.state.base.get("old.txt")?.rev, 3, "a refused move must not forget its source");
  assert.equal(t.state.base.has("top.txt"), false);
});

Deno.test("Executor records a download whose folder the user removed just after it landed, so the delete is kept", async () => {
  await using t = await setUp();
  const folder = join(t.root, "real");
  await Deno.mkdir(folder);
  const open = Deno.open;
  const openSync = Deno.openSync;
  const deno = Deno as unknown as { open: typeof Deno.open; openSync: typeof Deno.openSync };
  let removed = false;
  // The user removes the folder between the rename into place and the fsync of the folder.
  const remove = (path: string | URL) => {
    if (String(path) !== folder) return;
    Deno.removeSync(folder, { recursive: true });
    removed = true;
  };
  deno.open = (path, options) => {
    remove(path);
    return open(path, options);
  };
  deno.openSync = (path, options) => {
    remove(path);
    return openSync(path, options);
  };
  let report;
  try {
    report = await t.executor.run([{
      type: "download",
      path: "real/b.txt",
      remote: remoteFile(),
      expect: null,
    }]);
  } finally {
    deno.open = open;
    deno.openSync = openSync;
  }
  assert.ok(removed, "the folder was never opened for its fsync");
  assert.equal(report.done, 1, t.lines.join("\n"));
  assert.equal(
    t.state.base.get("real/b.txt")?.rev,
    7,
    "the base records the file, so a scan sees the delete",
  );
  assert.equal(t.state.base.get("real/b.txt")?.size, CONTENT.length);
});

Deno.test("Executor keeps a write that lands between the check of a server delete and the removal", async () => {
  // h5-soak, "delete here, edit there": one run lost the edit made at the moment the other device's delete
  // arrived. Every call that could remove the file first lets the "user" write to it (once).
  await using t = await setUp();
  const file = join(t.root, "top.txt");
  const expect = localOf(file);
  const deno = Deno as unknown as Record<string, (...args: unknown[]) => unknown>;
  const saved = {
    remove: deno.remove,
    removeSync: deno.removeSync,
    rename: deno.rename,
    renameSync: deno.renameSync,
  };
  let written = false;
  const writeFirst = (name: keyof typeof saved) => (...args: unknown[]) => {
    if (!written && String(args[0]) === file) {
      written = true;
      Deno.writeTextFileSync(file, "edited by the user just now");
    }
    return saved[name](...args);
  };
  for (const name of Object.keys(saved) as (keyof typeof saved)[]) deno[name] = writeFirst(name);
  let report;
  try {
    report = await t.executor.run([{ type: "deleteLocal", path: "top.txt", expect }]);
  } finally {
    Object.assign(deno, saved);
  }
  assert.ok(written, "the test never got between the check and the removal");
  assert.equal(Deno.readTextFileSync(file), "edited by the user just now");
  assert.equal(report.skipped, 1);
  assert.deepEqual(Deno.readDirSync(t.state.tmpDir).toArray(), [], "nothing is left aside");
});

/** A server that refuses every change of a COMMIT because device "A" locks the file. */
function lockedPeer(requests: string[]): RpcPeer {
  return {
    request: (op: string, message: Record<string, unknown> = {}) => {
      if (op !== "COMMIT") return Promise.reject(new Error(`unexpected ${op}`));
      const changes = message.changes as { op: string; path: string }[];
      for (const change of changes) requests.push(`COMMIT ${change.op} ${change.path}`);
      const results = changes.map((c) => ({
        ok: false,
        code: "locked",
        error: `"${c.path}" is locked by alice on device "A"`,
        holder: { user: "alice", device: "A", deviceId: "a1" },
      }));
      return Promise.resolve({ message: { results } });
    },
  } as unknown as RpcPeer;
}

Deno.test("Executor keeps a change refused as locked: not retried at once, not refused for good, one line each", async () => {
  await using t = await setUp(lockedPeer);
  const refused = new Map<string, { hash: string; code: string }>();
  const locked: [string, string | undefined][] = [];
  const executor = new Executor({
    root: t.root,
    state: t.state,
    scanner: new Scanner(t.root, { ignore: createIgnoreMatcher(null), known: () => undefined }),
    peer: lockedPeer(t.requests),
    local: new Map(),
    events: linesOf(t.lines),
    distrust: new Set(),
    refused,
    locked: (path, holder) => locked.push([path, holder?.device]),
  });
  t.state.setBase("top.txt", { kind: "file", hash: "h", rev: 3, size: 3, mtime: 1, ino: null });
  const report = await executor.run([
    { type: "deleteRemote", path: "top.txt", kind: "file", baseRev: 3 },
    {
      type: "moveRemote",
      from: "top.txt",
      to: "moved.txt",
      baseRev: 3,
      local: localOf(join(t.root, "top.txt")),
    },
  ]);
  assert.deepEqual(
    report,
    { done: 2, skipped: 0, again: false },
    "not looked at again at once (no hot loop)",
  );
  assert.equal(refused.size, 0, "not dropped as refused for good: it is sent once the lock ends");
  assert.deepEqual(locked, [["top.txt", "A"], ["top.txt", "A"], ["moved.txt", undefined]]);
  assert.equal(t.state.base.get("top.txt")?.rev, 3, "the base still has the file");
  assert.equal(await Deno.readTextFile(join(t.root, "top.txt")), "top", "the local file is untouched");
  assert.deepEqual(t.lines, [
    `"top.txt" is locked by alice on device "A": the change made here is kept and sent when the lock ends`,
    `"moved.txt" is locked by alice on device "A": the change made here is kept and sent when the lock ends`,
  ]);
});

/** A server that records each request's namespace and paths; COMMITs succeed (rev 1), DOWNLOADs as fakePeer. */
function namespacePeer(requests: string[]): RpcPeer {
  const download = fakePeer([]);
  return {
    request: (op: string, message: Record<string, unknown> = {}) => {
      if (op === "DOWNLOAD") {
        requests.push(`DOWNLOAD ${message.ns} ${message.path}`);
        return download.request(op, message);
      }
      if (op === "FETCH") {
        const items = message.items as { path: string; ns?: string }[];
        requests.push(`FETCH ${items.map((i) => `${i.ns} ${i.path}`).join(", ")}`);
        return download.request(op, message);
      }
      if (op !== "COMMIT") return Promise.reject(new Error(`unexpected ${op}`));
      const changes = message.changes as { op: string; path: string }[];
      requests.push(`COMMIT ${message.ns} ${changes.map((c) => `${c.op} ${c.path}`).join(", ")}`);
      const results = changes.map((c) => ({
        ok: true,
        entries: [{ path: c.path, kind: "dir", hash: "", size: 0, mtime: 0, rev: 1, device: "A" }],
      }));
      return Promise.resolve({ message: { results } });
    },
  } as unknown as RpcPeer;
}

Deno.test("Executor sends each change to the namespace its path is mounted in, with the namespace's paths", async () => {
  await using t = await setUp(namespacePeer);
  t.state.setMounts(new MountTable([{ ns: "alice", mount: "" }, { ns: "share:1", mount: "Team" }]));
  for (const path of ["a", "Team/x", "b", "Team/moved"]) {
    Deno.mkdirSync(join(t.root, path), { recursive: true });
    t.local.set(path, {
      kind: "dir",
      hash: "",
      size: 0,
      mtime: 0,
      ino: Deno.lstatSync(join(t.root, path)).ino,
    });
  }
  const moved = t.local.get("Team/moved")!;
  const report = await t.executor.run([
    { type: "mkdirRemote", path: "a", baseRev: 0 },
    { type: "mkdirRemote", path: "Team/x", baseRev: 0 },
    { type: "mkdirRemote", path: "b", baseRev: 0 },
    { type: "mkdirRemote", path: "Team", baseRev: 0 },
    // A move between namespaces is no move on the server: the folder is made at its new place.
    { type: "moveRemote", from: "old", to: "Team/moved", baseRev: 1, local: moved },
    { type: "download", path: "Team/doc.txt", remote: remoteFile(), expect: null },
  ]);
  assert.deepEqual(t.requests, [
    "COMMIT alice mkdir a",
    "COMMIT share:1 mkdir x",
    "COMMIT alice mkdir b",
    "COMMIT share:1 mkdir moved",
    "FETCH share:1 doc.txt",
  ], "a mount folder itself is not sent");
  assert.equal(
    t.lines.filter((l) => l.includes("not a change inside one namespace")).length,
    1,
    t.lines.join("\n"),
  );
  assert.equal(report.done, 6);
  assert.equal(t.state.base.get("Team/x")?.rev, 1, "the result's entry is recorded at its local path");
  assert.equal(t.state.base.has("x"), false);
  assert.equal(Deno.readTextFileSync(join(t.root, "Team/doc.txt")), "content from the server");
  assert.equal(t.state.base.get("Team/doc.txt")?.rev, 7);
});

Deno.test("FolderSyncs shares one fsync among the calls made while another runs, and each starts after its call", async () => {
  const started: { path: string; done: () => void; fail: (e: Error) => void }[] = [];
  const syncs = new FolderSyncs((path) =>
    new Promise<void>((done, fail) => {
      started.push({ path, done, fail });
    })
  );
  const settled: string[] = [];
  const track = (name: string, p: Promise<void>) =>
    p.then(() => settled.push(name), (e) => settled.push(`${name}: ${e.message}`));
  const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
  const first = track("first", syncs.sync("d"));
  await tick();
  assert.equal(started.length, 1, "the first call starts an fsync at once");
  // Renames made while that fsync runs are not covered by it: these calls share the next one.
  const second = track("second", syncs.sync("d"));
  const third = track("third", syncs.sync("d"));
  const other = track("other", syncs.sync("e"));
  await tick();
  assert.deepEqual(
    started.map((s) => s.path),
    ["d", "e"],
    "one folder's next fsync waits for its running one",
  );
  started[0].done();
  await first;
  await tick();
  assert.deepEqual(settled, ["first"]);
  assert.deepEqual(
    started.map((s) => s.path),
    ["d", "e", "d"],
    "the waiting calls got one fsync of their own",
  );
  started[2].fail(new Error("disk gone"));
  started[1].done();
  await Promise.all([second, third, other]);
  assert.deepEqual(settled.sort(), ["first", "other", "second: disk gone", "third: disk gone"]);
  // Once idle, the next call starts at once again.
  const later = track("later", syncs.sync("d"));
  await tick();
  assert.equal(started.length, 4);
  started[3].done();
  await later;
});

Deno.test("FolderSyncs with the real fsync: a folder gone meanwhile is not an error", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "filesync-folder-sync-" });
  try {
    const syncs = new FolderSyncs();
    await Promise.all([syncs.sync(dir), syncs.sync(dir), syncs.sync(join(dir, "gone"))]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("Executor downloads small files in one FETCH and keeps local changes made while the bytes travel", async () => {
  let root = "";
  await using t = await setUp((requests) =>
    fakePeer(requests, () => {
      // While the FETCH is answered, the user creates one file and edits another that the plan replaces.
      Deno.writeTextFileSync(join(root, "new-here.txt"), "the user's new file");
      Deno.writeTextFileSync(join(root, "top.txt"), "the user's edit, longer than before");
    })
  );
  root = t.root;
  const top = localOf(join(t.root, "top.txt"));
  const plan: Action[] = [
    { type: "download", path: "a/one.txt", remote: remoteFile(), expect: null },
    { type: "download", path: "new-here.txt", remote: remoteFile(), expect: null },
    { type: "download", path: "top.txt", remote: remoteFile(), expect: top },
    { type: "download", path: "a/two.txt", remote: remoteFile(), expect: null },
  ];
  const report = await t.executor.run(plan);
  assert.deepEqual(t.requests, ["FETCH a/one.txt new-here.txt top.txt a/two.txt"], "one round trip");
  assert.deepEqual(report, { done: 2, skipped: 2, again: false });
  assert.equal(Deno.readTextFileSync(join(t.root, "new-here.txt")), "the user's new file");
  assert.equal(Deno.readTextFileSync(join(t.root, "top.txt")), "the user's edit, longer than before");
  assert.equal(t.state.base.has("new-here.txt"), false);
  assert.equal(t.state.base.has("top.txt"), false);
  for (const path of ["a/one.txt", "a/two.txt"]) {
    assert.equal(Deno.readTextFileSync(join(t.root, path)), "content from the server");
    assert.equal(t.state.base.get(path)?.rev, 7);
    assert.equal(t.state.base.get(path)?.hash, HASH);
  }
  assert.deepEqual(Deno.readDirSync(t.state.tmpDir).toArray(), [], "a temp file was left behind");
});

Deno.test("fetchBatches splits small downloads by count and by bytes, in order", () => {
  const of = (size: number) => ({ remote: { size } });
  assert.deepEqual(fetchBatches([]), []);
  const many = Array.from({ length: 300 }, () => of(1));
  assert.deepEqual(fetchBatches(many).map((b) => b.length), [128, 128, 44]);
  const big = Array.from({ length: 70 }, () => of(128 * 1024));
  assert.deepEqual(fetchBatches(big).map((b) => b.length), [32, 32, 6], "4 MiB a batch");
  const mixed = [of(4 * 1024 * 1024 - 10), of(10), of(11), of(0)];
  assert.deepEqual(fetchBatches(mixed).map((b) => b.length), [2, 2]);
});
