// The contract every MetadataStore passes: users, tokens, commit rules, journal, manifests, chunk refs, history.

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { BAD_NAME_CODE } from "../protocol/paths.ts";
import { type Change, type ChangeResult, encodeRows, type WireEntry } from "../protocol/messages.ts";
import type {
  ChunkCheck,
  ChunkRow,
  LockRecord,
  MetadataStore,
  TokenRecord,
  UserRecord,
} from "./metadata_store.ts";

/** The namespace the contract commits to. */
export const NS = "alice";
/** The device the contract commits as. */
export const DEVICE = "laptop";
const encoder = new TextEncoder();

/** Opens a fresh, empty store with the given clock; `cleanup` closes and removes it. */
export type OpenStore = (
  options: { now?: () => number },
) => Promise<{ store: MetadataStore; cleanup: () => Promise<void> }>;

/** A chunk row whose id is the hash of `label`. */
export function chunk(label: string, size = 100): ChunkRow {
  return { id: sha256Hex(encoder.encode(label)), size };
}

/** `count` distinct chunk rows. */
export function chunks(prefix: string, count: number, size = 100): ChunkRow[] {
  return Array.from({ length: count }, (_, i) => chunk(`${prefix}-${i}`, size));
}

/** A chunk check that finds every chunk, with the sizes these rows give them (the first row of an id wins). */
export function presentAs(rows: readonly ChunkRow[]): ChunkCheck {
  const sizes = new Map<string, number>();
  for (const row of rows) if (!sizes.has(row.id)) sizes.set(row.id, row.size);
  return (ids) => Promise.resolve(new Map(ids.flatMap((id) => sizes.has(id) ? [[id, sizes.get(id)!]] : [])));
}

function sizeOf(rows: ChunkRow[]): number {
  return rows.reduce((n, r) => n + r.size, 0);
}

/** Builds a COMMIT: its changes and the chunk rows they point into. */
export class Batch {
  changes: Change[] = [];
  rows: ChunkRow[] = [];

  /** Uploads a whole file made of `content`. */
  upload(path: string, content: ChunkRow[], baseRev = 0, override: Record<string, unknown> = {}): this {
    this.changes.push({
      op: "upload",
      path,
      baseRev,
      size: sizeOf(content),
      mtime: 1_700_000_000_000,
      hash: fileHashOfChunks(content.map((r) => r.id)),
      rows: { offset: this.rows.length, count: content.length },
      ...override,
    } as Change);
    this.rows.push(...content);
    return this;
  }

  /** Uploads `content` as a delta against the version `fromHash`: only `inserted` rows travel. */
  delta(
    path: string,
    baseRev: number,
    content: ChunkRow[],
    from: { hash: string; head: number; tail: number },
    inserted: ChunkRow[],
  ): this {
    this.changes.push({
      op: "upload",
      path,
      baseRev,
      size: sizeOf(content),
      mtime: 1_700_000_000_001,
      hash: fileHashOfChunks(content.map((r) => r.id)),
      rows: { offset: this.rows.length, count: inserted.length },
      from,
    });
    this.rows.push(...inserted);
    return this;
  }

  mkdir(path: string, baseRev = 0): this {
    this.changes.push({ op: "mkdir", path, baseRev });
    return this;
  }

  delete(path: string, baseRev: number, kind: "file" | "dir" = "file"): this {
    this.changes.push({ op: "delete", path, baseRev, kind });
    return this;
  }

  move(from: string, path: string, baseRev: number): this {
    this.changes.push({ op: "move", from, path, baseRev });
    return this;
  }

  commit(
    store: MetadataStore,
    check: ChunkCheck | undefined = undefined,
    ns = NS,
  ): Promise<{ results: ChangeResult[]; journal: WireEntry[] }> {
    return store.commit(ns, {
      device: DEVICE,
      changes: this.changes,
      rows: encodeRows(this.rows),
      checkChunks: check ?? presentAs(this.rows),
    });
  }
}

/** The entries of an accepted change; fails the test for a refused one. */
export function accepted(result: ChangeResult): WireEntry[] {
  assert.ok(result.ok, `refused: ${!result.ok && `${result.code}: ${result.error}`}`);
  return result.entries;
}

/** The refusal of a change; fails the test for an accepted one. */
export function refused(result: ChangeResult, code: string): { error: string; current?: WireEntry | null } {
  assert.ok(!result.ok, `expected refusal "${code}", but it was accepted`);
  assert.equal(result.code, code, result.error);
  return result;
}

/** The journal as [rev, path, kind or "deleted"] triples. */
export async function journalOf(store: MetadataStore, ns = NS): Promise<[number, string, string][]> {
  const events = await store.changesSince(ns, 0, 5000);
  return events.map((e) => [e.rev, e.path, e.deleted ? "deleted" : e.kind]);
}

function user(name: string): UserRecord {
  return { name, salt: "c2FsdA==", hash: "aGFzaA==", created: 1 };
}

function token(userName: string, deviceId: string): TokenRecord {
  return { user: userName, deviceId, device: `dev-${deviceId}`, created: 10, expires: 1000 };
}

/**
 * Registers the contract tests for a metadata store implementation, each named "LABEL: …".
 *
 * @example
 * ```ts
 * metadataContract("KvMetadataStore", async ({ now }) => { … });
 * ```
 */
export function metadataContract(label: string, open: OpenStore): void {
  const test = (name: string, fn: () => Promise<void>) => Deno.test(`${label}: ${name}`, fn);
  const withStore = async (
    fn: (store: MetadataStore) => Promise<void>,
    options: { now?: () => number } = {},
  ): Promise<void> => {
    const { store, cleanup } = await open(options);
    try {
      await fn(store);
    } finally {
      await cleanup();
    }
  };

  test("users can be added once, listed and removed", async () => {
    await withStore(async (store) => {
      assert.equal(await store.addUser(user("alice")), true);
      assert.equal(await store.addUser(user("bob")), true);
      assert.equal(await store.addUser({ ...user("alice"), hash: "b3RoZXI=" }), false, "duplicate name");
      assert.equal((await store.getUser("alice"))?.hash, "aGFzaA==", "the duplicate did not overwrite");
      assert.deepEqual((await store.listUsers()).map((u) => u.name).sort(), ["alice", "bob"]);
      assert.equal(await store.removeUser("alice"), true);
      assert.equal(await store.removeUser("alice"), false);
      assert.equal(await store.getUser("alice"), null);
      assert.deepEqual((await store.listUsers()).map((u) => u.name), ["bob"]);
    });
  });

  test("tokens are stored by hash, touched, and revoked per user", async () => {
    await withStore(async (store) => {
      await store.addUser(user("alice"));
      await store.addToken("t1", token("alice", "d1"));
      await store.addToken("t2", token("alice", "d2"));
      await store.addToken("t3", token("bob", "d3"));
      assert.deepEqual(await store.getToken("t1"), token("alice", "d1"));
      assert.equal(await store.getToken("nope"), null);
      await store.touchToken("t1", 5000);
      assert.equal((await store.getToken("t1"))?.expires, 5000);
      await store.touchToken("missing", 5000);
      assert.equal(await store.getToken("missing"), null, "touching an unknown token creates nothing");
      await store.revokeTokens("alice");
      assert.equal(await store.getToken("t1"), null);
      assert.equal(await store.getToken("t2"), null);
      assert.ok(await store.getToken("t3"), "other users' tokens survive");
    });
  });

  test("listDevices lists a user's devices in order of login, with expiry and last sight from their tokens", async () => {
    await withStore(async (store) => {
      await store.addUser(user("alice"));
      assert.deepEqual(await store.listDevices("alice"), []);
      await store.addToken("t2", { ...token("alice", "d2"), created: 20 });
      await store.addToken("t1", token("alice", "d1"));
      await store.addToken("t3", token("bob", "d3"));
      await store.markSeen("t1", 500);
      await store.touchToken("t1", 9000);
      assert.deepEqual(await store.listDevices("alice"), [
        { deviceId: "d1", device: "dev-d1", created: 10, expires: 9000, lastSeen: 500 },
        { deviceId: "d2", device: "dev-d2", created: 20, expires: 1000 },
      ]);
      assert.equal((await store.getToken("t1"))?.lastSeen, 500);
      await store.markSeen("missing", 5);
      assert.equal(await store.getToken("missing"), null, "marking an unknown token creates nothing");
      assert.deepEqual((await store.listDevices("bob")).map((d) => d.deviceId), ["d3"]);
      assert.deepEqual(await store.listDevices("nobody"), []);
    });
  });

  test("revokeDevice marks one device and its token revoked, once, and no other", async () => {
    await withStore(async (store) => {
      await store.addUser(user("alice"));
      await store.addToken("t1", token("alice", "d1"));
      await store.addToken("t2", token("alice", "d2"));
      await store.addToken("t3", token("bob", "d3"));
      const revoked = await store.revokeDevice("alice", "d1", 700);
      assert.deepEqual(revoked, {
        deviceId: "d1",
        device: "dev-d1",
        created: 10,
        expires: 1000,
        revoked: 700,
      });
      assert.equal(
        (await store.getToken("t1"))?.revoked,
        700,
        "the token is kept, marked, so AUTH can say why",
      );
      assert.equal(
        (await store.revokeDevice("alice", "d1", 800))?.revoked,
        700,
        "a second revocation changes nothing",
      );
      assert.equal(await store.revokeDevice("alice", "nope", 800), null, "unknown device");
      assert.equal(await store.revokeDevice("bob", "d1", 800), null, "another user's device is not found");
      assert.equal(await store.revokeDevice("nobody", "d1", 800), null, "unknown user");
      assert.equal((await store.getToken("t2"))?.revoked, undefined);
      assert.equal((await store.getToken("t3"))?.revoked, undefined);
      assert.deepEqual((await store.listDevices("alice")).map((d) => [d.deviceId, d.revoked]), [
        ["d1", 700],
        ["d2", undefined],
      ]);
    });
  });

  test("a revoked token is never brought back by touchToken or markSeen, even racing them", async () => {
    await withStore(async (store) => {
      await store.addUser(user("alice"));
      await store.addToken("t1", token("alice", "d1"));
      await Promise.all([
        ...Array.from({ length: 10 }, (_, i) => store.touchToken("t1", 2000 + i)),
        ...Array.from({ length: 10 }, (_, i) => store.markSeen("t1", 50 + i)),
        store.revokeDevice("alice", "d1", 700),
        ...Array.from({ length: 10 }, (_, i) => store.touchToken("t1", 3000 + i)),
        ...Array.from({ length: 10 }, (_, i) => store.markSeen("t1", 60 + i)),
      ]);
      assert.equal((await store.getToken("t1"))?.revoked, 700);
      const expires = (await store.getToken("t1"))?.expires;
      await store.touchToken("t1", 99_000);
      await store.markSeen("t1", 99_000);
      assert.equal((await store.getToken("t1"))?.expires, expires, "no later touch either");
      assert.notEqual((await store.getToken("t1"))?.lastSeen, 99_000);
    });
  });

  test("revokeTokens and removeUser also remove revoked devices", async () => {
    await withStore(async (store) => {
      await store.addUser(user("alice"));
      await store.addToken("t1", token("alice", "d1"));
      await store.addToken("t2", token("alice", "d2"));
      await store.revokeDevice("alice", "d1", 700);
      await store.revokeTokens("alice");
      assert.deepEqual(await store.listDevices("alice"), []);
      assert.equal(await store.getToken("t1"), null);
      await store.addToken("t4", token("alice", "d4"));
      await store.revokeDevice("alice", "d4", 800);
      await store.removeUser("alice");
      assert.deepEqual(await store.listDevices("alice"), []);
      assert.equal(await store.getToken("t4"), null);
    });
  });

  test("setQuota sets, lifts and clears a user's own quota", async () => {
    await withStore(async (store) => {
      await store.addUser(user("alice"));
      assert.equal((await store.getUser("alice"))?.quota, undefined);
      assert.equal(await store.setQuota("alice", 1000), true);
      assert.equal((await store.getUser("alice"))?.quota, 1000);
      assert.equal(await store.setQuota("alice", null), true);
      assert.equal((await store.getUser("alice"))?.quota, null);
      assert.equal(await store.setQuota("alice", undefined), true);
      const back = await store.getUser("alice");
      assert.ok(back && !("quota" in back));
      assert.equal(back.hash, user("alice").hash, "the rest of the record is kept");
      assert.equal(await store.setQuota("nobody", 5), false);
    });
  });

  test("usage counts live files only: replacing counts the new size, deleting and moving as they should", async () => {
    await withStore(async (store) => {
      assert.equal(await store.usage(NS), 0);
      const [a] = accepted(
        (await new Batch().upload("a", [chunk("a", 30)]).upload("b", [chunk("b", 12)]).commit(store))
          .results[0],
      );
      assert.equal(await store.usage(NS), 42);
      await new Batch().upload("a", [chunk("a2", 5)], a.rev).move("b", "c", 2).commit(store);
      assert.equal(await store.usage(NS), 17);
      accepted((await new Batch().delete("c", 5).commit(store)).results[0]);
      assert.equal(await store.usage(NS), 5, "a deleted file no longer counts (its kept version does not)");
      assert.equal(await store.usage("bob"), 0, "other namespaces are apart");
    });
  });

  test("a name differing only in case from one an earlier commit wrote is refused as a bad name", async () => {
    await withStore(async (store) => {
      accepted((await new Batch().upload("docs/README.TXT", [chunk("r")]).commit(store)).results[0]);
      const { results } = await new Batch().upload("docs/Readme.txt", [chunk("m")]).commit(store);
      assert.match(refused(results[0], BAD_NAME_CODE).error, /differs only in case from "docs\/README\.TXT"/);
    });
  });

  test("setPassword replaces the hash and revokes the user's tokens", async () => {
    await withStore(async (store) => {
      await store.addUser(user("alice"));
      await store.addToken("t1", token("alice", "d1"));
      assert.equal(await store.setPassword("alice", "bmV3", "bmV3aGFzaA=="), true);
      assert.equal((await store.getUser("alice"))?.hash, "bmV3aGFzaA==");
      assert.equal(await store.getToken("t1"), null);
      assert.equal(await store.setPassword("nobody", "x", "y"), false);
    });
  });

  test("removeUser deletes the user's tokens, entries, journal and chunk references, and no one else's", async () => {
    await withStore(async (store) => {
      await store.addUser(user("alice"));
      await store.addUser(user("bob"));
      await store.addToken("ta", token("alice", "d1"));
      await store.addToken("tb", token("bob", "d2"));
      await new Batch().upload("a/x.txt", [chunk("x")]).commit(store, undefined, "alice");
      await new Batch().upload("a/x.txt", [chunk("x")]).commit(store, undefined, "bob");
      assert.equal(await store.removeUser("alice"), true);
      assert.equal(await store.getToken("ta"), null);
      assert.equal(await store.getEntry("alice", "a/x.txt"), null);
      assert.equal(await store.latestSeq("alice"), 0);
      assert.deepEqual(await store.changesSince("alice", 0, 10), []);
      assert.equal((await store.referencedChunks("alice", [chunk("x").id])).size, 0);
      assert.ok(await store.getToken("tb"));
      assert.ok(await store.getEntry("bob", "a/x.txt"));
      assert.equal((await store.referencedChunks("bob", [chunk("x").id])).size, 1);
    });
  });

  test("an upload returns its entry and journal with the next rev, and stores entry and manifest", async () => {
    await withStore(async (store) => {
      const content = [chunk("a", 10), chunk("b", 20)];
      const batch = new Batch().upload("hello.txt", content);
      const { results, journal } = await batch.commit(store);
      const expected: WireEntry = {
        path: "hello.txt",
        kind: "file",
        hash: fileHashOfChunks(content.map((r) => r.id)),
        size: 30,
        mtime: 1_700_000_000_000,
        rev: 1,
        device: DEVICE,
      };
      const tag = journal[0]?.tag ?? "";
      assert.match(tag, /^[0-9a-f]{16}$/, "every journal entry carries the commit's tag");
      assert.deepEqual(results, [{ ok: true, entries: [{ ...expected, tag }] }]);
      assert.deepEqual(journal, [{ ...expected, tag }]);
      assert.deepEqual(await store.getEntry(NS, "hello.txt"), { ...expected, time: 5_000 });
      assert.deepEqual(await store.getManifest(expected.hash), content);
      assert.equal(await store.latestSeq(NS), 1);
      assert.deepEqual(await store.changesSince(NS, 0, 10), [{ ...expected, tag }]);
      const next = await new Batch().mkdir("d1").mkdir("d2").commit(store);
      const tags = next.journal.map((e) => e.tag);
      assert.equal(tags[0], tags[1], "one tag per commit call");
      assert.notEqual(tags[0], tag, "a new tag for each commit call");
    }, { now: () => 5_000 });
  });

  test("getEntries, getManifests and latestSeqs answer as the single reads do, in the order asked", async () => {
    await withStore(async (store) => {
      const long = `${"d".repeat(200)}/${"x".repeat(1500)}.txt`;
      const batch = new Batch().mkdir("dir");
      for (let i = 0; i < 25; i++) batch.upload(`dir/f${i}.txt`, [chunk(`f${i}`, 10 + i)]);
      batch.upload(long, [chunk("long", 7), chunk("long2", 8)]).upload("empty", []);
      await batch.commit(store);
      await new Batch().upload("dir/f3.txt", [chunk("bob", 5)]).commit(store, undefined, "bob");
      const paths = [
        "dir/f24.txt",
        "missing",
        long,
        "dir",
        "dir/f3.txt",
        "empty",
        "DIR/F1.TXT",
        "dir/f24.txt",
      ];
      for (let i = 0; i < 25; i++) paths.push(`dir/f${i}.txt`);
      const single = await Promise.all(paths.map((p) => store.getEntry(NS, p)));
      assert.deepEqual(await store.getEntries(NS, paths), single);
      assert.equal(single[1], null);
      assert.equal(single[6], null);
      assert.deepEqual(await store.getEntries(NS, []), []);
      assert.deepEqual(
        (await store.getEntries("bob", ["dir/f3.txt", "dir/f4.txt"])).map((e) => e?.size ?? null),
        [5, null],
      );
      const hashes = single.flatMap((e) => e?.kind === "file" ? [e.hash] : []);
      hashes.splice(2, 0, "0".repeat(64), hashes[0]);
      const manifests = await Promise.all(hashes.map((h) => store.getManifest(h)));
      assert.deepEqual(await store.getManifests(hashes), manifests);
      assert.equal(manifests[2], null);
      assert.deepEqual(manifests[3], [chunk("f24", 34)]);
      assert.deepEqual(await store.getManifests([]), []);
      const namespaces = ["bob", "nobody", NS, "bob"];
      const seqs = await store.latestSeqs(namespaces);
      assert.deepEqual(seqs, await Promise.all(namespaces.map((ns) => store.latestSeq(ns))));
      assert.deepEqual(seqs, [2, 0, 29, 2]); // alice: dir, 25 files, the long path's folder and file, empty
      assert.deepEqual(await store.latestSeqs([]), []);
    });
  });

  test("an empty file commits with an empty manifest", async () => {
    await withStore(async (store) => {
      const { results } = await new Batch().upload("empty", []).commit(store);
      const [entry] = accepted(results[0]);
      assert.equal(entry.size, 0);
      assert.equal(entry.hash, fileHashOfChunks([]));
      assert.deepEqual(await store.getManifest(entry.hash), []);
    });
  });

  test("an upload creates missing parent folders as journal entries before the file", async () => {
    await withStore(async (store) => {
      const { results, journal } = await new Batch().upload("a/b/c.txt", [chunk("c")]).commit(store);
      const entries = accepted(results[0]);
      assert.deepEqual(entries.map((e) => [e.rev, e.path, e.kind]), [[1, "a", "dir"], [2, "a/b", "dir"], [
        3,
        "a/b/c.txt",
        "file",
      ]]);
      assert.deepEqual(journal, entries);
      assert.equal((await store.getEntry(NS, "a/b"))?.kind, "dir");
      // A second file in the same folder creates no folders.
      const second = await new Batch().upload("a/b/d.txt", [chunk("d")]).commit(store);
      assert.deepEqual(accepted(second.results[0]).map((e) => [e.rev, e.path]), [[4, "a/b/d.txt"]]);
    });
  });

  test("the changes of a batch get consecutive revs in order, continuing across commits", async () => {
    await withStore(async (store) => {
      const first = await new Batch().mkdir("d").upload("d/1", [chunk("1")]).upload("d/2", [chunk("2")])
        .commit(store);
      assert.deepEqual(first.results.map((r) => accepted(r).map((e) => e.rev)), [[1], [2], [3]]);
      assert.deepEqual(first.journal.map((e) => e.rev), [1, 2, 3]);
      const second = await new Batch().upload("d/1", [chunk("1b")], 2).delete("d/2", 3).commit(store);
      assert.deepEqual(second.journal.map((e) => e.rev), [4, 5]);
      assert.deepEqual(await journalOf(store), [
        [1, "d", "dir"],
        [2, "d/1", "file"],
        [3, "d/2", "file"],
        [4, "d/1", "file"],
        [5, "d/2", "deleted"],
      ]);
      assert.equal(await store.latestSeq(NS), 5);
    });
  });

  test("a later change in a batch sees the earlier ones", async () => {
    await withStore(async (store) => {
      const { results } = await new Batch()
        .upload("f", [chunk("v1")])
        .upload("f", [chunk("v2")], 1)
        .move("f", "g", 2)
        .commit(store);
      assert.deepEqual(results.map((r) => accepted(r).map((e) => [e.rev, e.path, e.deleted ?? false])), [
        [[1, "f", false]],
        [[2, "f", false]],
        [[3, "f", true], [4, "g", false]],
      ]);
      assert.equal((await store.getEntry(NS, "g"))?.hash, fileHashOfChunks([chunk("v2").id]));
      assert.equal(await store.getEntry(NS, "f"), null);
    });
  });

  test("mkdir of an existing folder succeeds without a journal entry", async () => {
    await withStore(async (store) => {
      await new Batch().mkdir("x/y").commit(store);
      const { results, journal } = await new Batch().mkdir("x/y", 0).commit(store);
      assert.deepEqual(accepted(results[0]), []);
      assert.deepEqual(journal, []);
      assert.equal(await store.latestSeq(NS), 2);
    });
  });

  test("a stale baseRev is refused as conflict with the current entry, and nothing is written", async () => {
    await withStore(async (store) => {
      await new Batch().upload("f.txt", [chunk("v1")]).commit(store);
      await new Batch().upload("f.txt", [chunk("v2")], 1).commit(store);
      const before = await store.getEntry(NS, "f.txt");
      const newContent = [chunk("v3")];
      const { results, journal } = await new Batch().upload("f.txt", newContent, 1).commit(store);
      const refusal = refused(results[0], "conflict");
      assert.deepEqual(refusal.current, before);
      assert.deepEqual(journal, []);
      assert.deepEqual(await store.getEntry(NS, "f.txt"), before);
      assert.equal(await store.latestSeq(NS), 2);
      assert.equal(await store.getManifest(fileHashOfChunks(newContent.map((r) => r.id))), null);
    });
  });

  test("baseRev 0 on a live path is a conflict", async () => {
    await withStore(async (store) => {
      await new Batch().upload("f.txt", [chunk("v1")]).mkdir("d").commit(store);
      const { results } = await new Batch().upload("f.txt", [chunk("v2")], 0).upload("d", [chunk("v2")], 0)
        .commit(store);
      assert.equal(refused(results[0], "conflict").current?.rev, 1);
      assert.equal(refused(results[1], "conflict").current?.kind, "dir");
      assert.equal(await store.latestSeq(NS), 2);
    });
  });

  test("concurrent commits of the same new path: exactly one wins", async () => {
    await withStore(async (store) => {
      const outcomes = await Promise.all(
        Array.from({ length: 5 }, (_, i) => new Batch().upload("race.txt", [chunk(`r${i}`)]).commit(store)),
      );
      const winners = outcomes.filter((o) => o.results[0].ok);
      assert.equal(winners.length, 1);
      for (const o of outcomes) if (!o.results[0].ok) refused(o.results[0], "conflict");
      assert.deepEqual(await journalOf(store), [[1, "race.txt", "file"]]);
    });
  });

  test("an upload over a deleted path works with baseRev 0 and is a conflict with the old rev", async () => {
    await withStore(async (store) => {
      await new Batch().upload("f", [chunk("v1")]).commit(store);
      await new Batch().delete("f", 1).commit(store);
      assert.equal(await store.getEntry(NS, "f"), null);
      const stale = await new Batch().upload("f", [chunk("v2")], 1).commit(store);
      assert.equal(refused(stale.results[0], "conflict").current, null);
      const fresh = await new Batch().upload("f", [chunk("v2")], 0).commit(store);
      assert.deepEqual(accepted(fresh.results[0]).map((e) => e.rev), [3]);
    });
  });

  test("deleting a non-empty folder is refused as not_empty; an empty one is deleted", async () => {
    await withStore(async (store) => {
      await new Batch().upload("full/f", [chunk("f")]).mkdir("empty").commit(store);
      const { results } = await new Batch().delete("full", 1, "dir").delete("empty", 3, "dir").commit(store);
      refused(results[0], "not_empty");
      assert.deepEqual(accepted(results[1]).map((e) => [e.rev, e.path, e.kind, e.deleted]), [[
        4,
        "empty",
        "dir",
        true,
      ]]);
      assert.ok(await store.getEntry(NS, "full"));
      assert.equal(await store.getEntry(NS, "empty"), null);
    });
  });

  test("deleting the children and then their folder in one batch works", async () => {
    await withStore(async (store) => {
      await new Batch().upload("d/a", [chunk("a")]).upload("d/sub/b", [chunk("b")]).commit(store);
      // Revs: d=1, d/a=2, d/sub=3, d/sub/b=4.
      const { results } = await new Batch().delete("d/a", 2).delete("d/sub/b", 4).delete("d/sub", 3, "dir")
        .delete("d", 1, "dir").commit(store);
      results.forEach((r) => accepted(r));
      for (const path of ["d", "d/a", "d/sub", "d/sub/b"]) assert.equal(await store.getEntry(NS, path), null);
      assert.equal(await store.latestSeq(NS), 8);
    });
  });

  test("a folder whose only file was moved out in the same batch can be deleted", async () => {
    await withStore(async (store) => {
      await new Batch().upload("old/f", [chunk("f")]).commit(store);
      const { results } = await new Batch().move("old/f", "new/f", 2).delete("old", 1, "dir").commit(store);
      results.forEach((r) => accepted(r));
      assert.equal(await store.getEntry(NS, "old"), null);
      assert.equal((await store.getEntry(NS, "new/f"))?.kind, "file");
    });
  });

  test("deleting a path that does not exist succeeds without a journal entry", async () => {
    await withStore(async (store) => {
      const { results, journal } = await new Batch().delete("ghost", 7).commit(store);
      assert.deepEqual(accepted(results[0]), []);
      assert.deepEqual(journal, []);
    });
  });

  test("an upload below a file is refused as conflict", async () => {
    await withStore(async (store) => {
      await new Batch().upload("f", [chunk("f")]).commit(store);
      const { results } = await new Batch().upload("f/inner", [chunk("x")]).mkdir("f/d").commit(store);
      assert.equal(refused(results[0], "conflict").current?.path, "f");
      refused(results[1], "conflict");
      assert.equal(await store.latestSeq(NS), 1);
    });
  });

  test("replacing a non-empty folder with a file is refused as not_empty", async () => {
    await withStore(async (store) => {
      await new Batch().upload("d/f", [chunk("f")]).commit(store);
      const { results } = await new Batch().upload("d", [chunk("x")], 1).commit(store);
      refused(results[0], "not_empty");
    });
  });

  test("a move keeps hash, size and mtime, deletes the source and creates target folders", async () => {
    await withStore(async (store) => {
      await new Batch().upload("src.txt", [chunk("s", 42)]).commit(store);
      const before = (await store.getEntry(NS, "src.txt"))!;
      const { results } = await new Batch().move("src.txt", "x/y/dst.txt", 1).commit(store);
      assert.deepEqual(accepted(results[0]).map((e) => [e.rev, e.path, e.deleted ?? false]), [
        [2, "x", false],
        [3, "x/y", false],
        [4, "src.txt", true],
        [5, "x/y/dst.txt", false],
      ]);
      const after = (await store.getEntry(NS, "x/y/dst.txt"))!;
      assert.deepEqual(
        { hash: after.hash, size: after.size, mtime: after.mtime, kind: after.kind },
        { hash: before.hash, size: before.size, mtime: before.mtime, kind: "file" },
      );
      assert.equal(await store.getEntry(NS, "src.txt"), null);
    });
  });

  test("a move onto an existing path is refused as exists; a move of a missing or changed file as conflict", async () => {
    await withStore(async (store) => {
      await new Batch().upload("a", [chunk("a")]).upload("b", [chunk("b")]).commit(store);
      const { results } = await new Batch().move("a", "b", 1).move("ghost", "c", 0).move("a", "c", 5)
        .commit(store);
      assert.equal(refused(results[0], "exists").current?.path, "b");
      refused(results[1], "conflict");
      assert.equal(refused(results[2], "conflict").current?.rev, 1);
      assert.equal(await store.latestSeq(NS), 2);
      assert.ok(await store.getEntry(NS, "a"));
    });
  });

  test("a delta upload builds the manifest from the current version's head and tail", async () => {
    await withStore(async (store) => {
      const v1 = [chunk("h1"), chunk("h2"), chunk("mid"), chunk("t1")];
      await new Batch().upload("big.bin", v1).commit(store);
      const v1Hash = fileHashOfChunks(v1.map((r) => r.id));
      const inserted = [chunk("new1", 7), chunk("new2", 9)];
      const v2 = [v1[0], v1[1], ...inserted, v1[3]];
      const asked: string[][] = [];
      const check: ChunkCheck = (ids) => {
        asked.push(ids);
        return presentAs(inserted)(ids);
      };
      const { results } = await new Batch().delta(
        "big.bin",
        1,
        v2,
        { hash: v1Hash, head: 2, tail: 1 },
        inserted,
      )
        .commit(store, check);
      const [entry] = accepted(results[0]);
      assert.equal(entry.hash, fileHashOfChunks(v2.map((r) => r.id)));
      assert.equal(entry.size, sizeOf(v2));
      assert.deepEqual(await store.getManifest(entry.hash), v2);
      assert.deepEqual(asked, [inserted.map((r) => r.id)], "only the inserted chunks are checked");
      assert.deepEqual(await store.getManifest(v1Hash), v1, "the old manifest is kept");
    });
  });

  test("a delta against a version that is not current, or longer than it, is refused as bad_base", async () => {
    await withStore(async (store) => {
      const v1 = [chunk("a"), chunk("b")];
      const v2 = [chunk("c"), chunk("d")];
      await new Batch().upload("f", v1).commit(store);
      await new Batch().upload("f", v2, 1).commit(store);
      const v1Hash = fileHashOfChunks(v1.map((r) => r.id));
      const v2Hash = fileHashOfChunks(v2.map((r) => r.id));
      const wanted = [chunk("a"), chunk("x")];
      const { results } = await new Batch()
        .delta("f", 2, wanted, { hash: v1Hash, head: 1, tail: 0 }, [chunk("x")])
        .delta("f", 2, [...v2, chunk("x")], { hash: v2Hash, head: 2, tail: 1 }, [chunk("x")])
        .delta("new", 0, [chunk("x")], { hash: v2Hash, head: 0, tail: 0 }, [chunk("x")])
        .commit(store);
      assert.equal(refused(results[0], "bad_base").current?.hash, v2Hash);
      refused(results[1], "bad_base");
      refused(results[2], "bad_base");
      assert.equal(await store.latestSeq(NS), 2);
    });
  });

  test("a size that does not match the chunks is refused as bad_request", async () => {
    await withStore(async (store) => {
      const { results } = await new Batch().upload("f", [chunk("a", 10)], 0, { size: 11 }).commit(store);
      assert.match(refused(results[0], "bad_request").error, /add up to 10 bytes, not 11/);
    });
  });

  test("a hash that does not match the chunks is refused as bad_hash", async () => {
    await withStore(async (store) => {
      const { results } = await new Batch()
        .upload("f", [chunk("a"), chunk("b")], 0, { hash: fileHashOfChunks([chunk("b").id, chunk("a").id]) })
        .upload("g", [chunk("a")], 0, { hash: chunk("a").id })
        .commit(store);
      refused(results[0], "bad_hash");
      refused(results[1], "bad_hash");
    });
  });

  test("rows outside the COMMIT data are refused as bad_request", async () => {
    await withStore(async (store) => {
      const { results } = await new Batch().upload("f", [chunk("a")], 0, { rows: { offset: 0, count: 2 } })
        .commit(store);
      refused(results[0], "bad_request");
    });
  });

  test("rows that claim other sizes than their chunks hold are refused as bad_rows and store no manifest", async () => {
    await withStore(async (store) => {
      const real = [chunk("five", 5), chunk("nine", 9)];
      const rotated = [{ ...real[0], size: 9 }, { ...real[1], size: 5 }];
      const { results, journal } = await new Batch().upload("f", rotated).mkdir("ok").commit(
        store,
        presentAs(real),
      );
      assert.match(refused(results[0], "bad_rows").error, /claims 9 bytes, but it holds 5/);
      assert.deepEqual(journal.map((e) => e.path), ["ok"]);
      assert.equal(await store.getManifest(fileHashOfChunks(real.map((r) => r.id))), null);
      assert.equal(await store.usage(NS), 0);
    });
  });

  test("upgradeManifests rewrites rows that disagree with the real chunk sizes, once per store", async () => {
    await withStore(async (store) => {
      const content = [chunk("u1", 10), chunk("u2", 20), chunk("gone", 30)];
      const other = [chunk("ok", 7)];
      await new Batch().upload("f", content).upload("g", other).commit(store);
      const real = new Map([[content[0].id, 20], [content[1].id, 10], [other[0].id, 7]]);
      const fixed = await store.upgradeManifests((id) => Promise.resolve(real.get(id) ?? null));
      const hash = fileHashOfChunks(content.map((r) => r.id));
      assert.deepEqual(fixed, [hash]);
      assert.deepEqual(await store.getManifest(hash), [
        { id: content[0].id, size: 20 },
        { id: content[1].id, size: 10 },
        content[2],
      ], "a row of a chunk not stored is left alone");
      assert.equal(await store.upgradeManifests(() => Promise.resolve(1)), null);
    });
  });

  test("a commit past the quota or the largest file is refused; usage stays as it was", async () => {
    await withStore(async (store) => {
      const limits = { quotaBytes: 250, maxFileBytes: 200 };
      const commit = (batch: Batch) =>
        store.commit(NS, {
          device: DEVICE,
          changes: batch.changes,
          rows: encodeRows(batch.rows),
          checkChunks: presentAs(batch.rows),
          limits,
        });
      accepted((await commit(new Batch().upload("a", [chunk("a", 150)]))).results[0]);
      const { results } = await commit(
        new Batch().upload("b", [chunk("b", 150)]).upload("c", [chunk("c", 201)]),
      );
      refused(results[0], "quota_exceeded");
      refused(results[1], "too_large");
      assert.equal(await store.usage(NS), 150);
    });
  });

  test("chunks the caller may not reference are refused as missing_chunks; other changes still commit", async () => {
    await withStore(async (store) => {
      const content = [chunk("have"), chunk("lack"), chunk("lack")];
      const asked: string[][] = [];
      const check: ChunkCheck = (ids) => {
        asked.push(ids);
        return presentAs(content.filter((r) => r.id !== chunk("lack").id))(ids);
      };
      const { results, journal } = await new Batch().upload("f", content).mkdir("ok").commit(store, check);
      assert.match(refused(results[0], "missing_chunks").error, /^1 chunks/);
      assert.deepEqual(asked[0], [chunk("have").id, chunk("lack").id], "each id is checked once");
      assert.deepEqual(journal.map((e) => [e.rev, e.path]), [[1, "ok"]]);
      assert.equal(await store.getEntry(NS, "f"), null);
      assert.equal(await store.getManifest(fileHashOfChunks(content.map((r) => r.id))), null);
    });
  });

  test("two uploads in one batch read their own rows of the shared data", async () => {
    await withStore(async (store) => {
      const a = [chunk("a1"), chunk("a2")];
      const b = [chunk("b1")];
      const { results } = await new Batch().upload("a", a).upload("b", b).commit(store);
      results.forEach((r) => accepted(r));
      assert.deepEqual(await store.getManifest((await store.getEntry(NS, "a"))!.hash), a);
      assert.deepEqual(await store.getManifest((await store.getEntry(NS, "b"))!.hash), b);
    });
  });

  /** A deep path of `segments` names of `name` repeated, then `leaf`. */
  function deepPath(name: string, segments: number, leaf: string): string {
    return [...Array(segments).fill(name), leaf].join("/");
  }

  test("a deep path of nearly 4096 bytes can be uploaded, moved and deleted with its folders", async () => {
    await withStore(async (store) => {
      // 15 folders and a file of 85 three-byte characters (255 bytes each): 4095 UTF-8 bytes, 1375 UTF-16 units.
      const path = deepPath("語".repeat(85), 15, "末".repeat(85));
      assert.equal(encoder.encode(path).length, 4095);
      const { results } = await new Batch().upload(path, [chunk("deep")]).commit(store);
      const entries = accepted(results[0]);
      assert.equal(entries.length, 16);
      assert.equal(entries[15].path, path);
      assert.equal((await store.getEntry(NS, path))?.rev, 16);
      const folder = path.slice(0, path.lastIndexOf("/"));
      const moved = folder + "/" + "x".repeat(100);
      const second = await new Batch().move(path, moved, 16).delete(moved, 18).delete(folder, 15, "dir")
        .commit(store);
      second.results.forEach((r) => accepted(r));
      assert.equal(await store.getEntry(NS, folder), null);
      const parent = folder.slice(0, folder.lastIndexOf("/"));
      const third = await new Batch().delete(parent, 14, "dir").commit(store);
      accepted(third.results[0]);
    });
  });

  test("a deep ASCII path of 4096 bytes keeps folder listing right (not_empty still detected)", async () => {
    await withStore(async (store) => {
      const path = deepPath("d".repeat(254), 16, "f".repeat(16));
      assert.equal(path.length, 4096);
      await new Batch().upload(path, [chunk("x")]).commit(store);
      const folder = path.slice(0, path.lastIndexOf("/"));
      const { results } = await new Batch().delete(folder, 16, "dir").commit(store);
      refused(results[0], "not_empty");
    });
  });

  test("a batch of 200 uploads with long paths commits (stays under the KV atomic limits)", async () => {
    await withStore(async (store) => {
      // A parent of about 1000 bytes and 200-byte names: each entry key is about 1.2 KB.
      const parent = deepPath("p".repeat(99), 9, "q".repeat(99));
      const batch = new Batch();
      for (let i = 0; i < 200; i++) {
        batch.upload(`${parent}/${String(i).padStart(200, "0")}`, [chunk(`f${i}`)]);
      }
      const { results } = await batch.commit(store);
      results.forEach((r) => accepted(r));
      assert.equal(await store.latestSeq(NS), 210);
    });
  });

  test("removeUser works for a user with many long-path entries", async () => {
    await withStore(async (store) => {
      await store.addUser(user(NS));
      const parent = deepPath("p".repeat(99), 9, "q".repeat(99));
      for (let round = 0; round < 10; round++) {
        const batch = new Batch();
        for (let i = 0; i < 30; i++) {
          batch.upload(`${parent}/${String(round * 30 + i).padStart(200, "0")}`, [chunk(`f${round}-${i}`)]);
        }
        (await batch.commit(store)).results.forEach((r) => accepted(r));
      }
      assert.equal(await store.removeUser(NS), true);
      assert.equal(await store.latestSeq(NS), 0);
    });
  });

  test("a root folder named like the hashed key of a long folder is a different path", async () => {
    await withStore(async (store) => {
      const longFolder = deepPath("L".repeat(200), 6, "end");
      const lookalike = "#" + createHash("sha256").update(longFolder).digest("hex");
      await new Batch().upload(`${longFolder}/f.txt`, [chunk("long")]).commit(store);
      const { results } = await new Batch().upload(`${lookalike}/f.txt`, [chunk("short")]).commit(store);
      accepted(results[0]);
      assert.equal(
        (await store.getEntry(NS, `${longFolder}/f.txt`))?.hash,
        fileHashOfChunks([chunk("long").id]),
      );
    });
  });

  test("a manifest of 5,000 rows round-trips", async () => {
    await withStore(async (store) => {
      const content = chunks("row", 5000, 65536);
      const { results } = await new Batch().upload("huge.iso", content).commit(store);
      const [entry] = accepted(results[0]);
      assert.equal(entry.size, 5000 * 65536);
      assert.deepEqual(await store.getManifest(entry.hash), content);
      const referenced = await store.referencedChunks(NS, content.map((r) => r.id));
      assert.equal(referenced.size, 5000, "every chunk of the commit is referenced");
    });
  });

  test("an upload of 5,000 new chunks commits for a user with a 64-character name", async () => {
    await withStore(async (store) => {
      const ns = "u".repeat(64);
      const content = chunks("long-user", 5000);
      const { results } = await new Batch().upload("big", content).commit(store, undefined, ns);
      accepted(results[0]);
    });
  });

  test("changesSince pages through the journal in order", async () => {
    await withStore(async (store) => {
      const batch = new Batch();
      for (let i = 1; i <= 10; i++) batch.mkdir(`d${i}`);
      await batch.commit(store);
      assert.equal(await store.latestSeq(NS), 10);
      const pages: number[][] = [];
      for (let since = 0;;) {
        const page = await store.changesSince(NS, since, 3);
        if (page.length === 0) break;
        pages.push(page.map((e) => e.rev));
        since = page[page.length - 1].rev;
      }
      assert.deepEqual(pages, [[1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]);
      assert.deepEqual((await store.changesSince(NS, 4, 2)).map((e) => e.path), ["d5", "d6"]);
      assert.deepEqual(await store.changesSince(NS, 10, 100), []);
      assert.deepEqual(await store.changesSince("other", 0, 100), []);
      assert.equal(await store.latestSeq("other"), 0);
    });
  });

  test("listEntries yields every live entry of the namespace only", async () => {
    await withStore(async (store) => {
      await new Batch().upload("a/b", [chunk("b")]).upload("c", [chunk("c")]).commit(store);
      await new Batch().delete("c", 3).commit(store);
      await new Batch().mkdir("elsewhere").commit(store, undefined, "bob");
      const paths: string[] = [];
      for await (const entry of store.listEntries(NS)) paths.push(entry.path);
      assert.deepEqual(paths.sort(), ["a", "a/b"]);
    });
  });

  test("changesBefore pages back through the journal, newest first", async () => {
    await withStore(async (store) => {
      const batch = new Batch();
      for (let i = 1; i <= 5; i++) batch.mkdir(`d${i}`);
      await batch.commit(store);
      assert.deepEqual((await store.changesBefore(NS, 5, 2)).map((e) => e.rev), [4, 3]);
      assert.deepEqual((await store.changesBefore(NS, 3, 10)).map((e) => e.rev), [2, 1]);
      assert.deepEqual(await store.changesBefore(NS, 1, 10), []);
      assert.deepEqual(await store.changesBefore("other", 10, 10), []);
    });
  });

  test("pending chunks are referenced by their namespace only; a commit makes them committed", async () => {
    await withStore(async (store) => {
      const ids = chunks("p", 25).map((r) => r.id);
      for (const id of ids.slice(0, 23)) await store.addPendingChunk(NS, id);
      const found = await store.referencedChunks(NS, ids);
      assert.deepEqual([...found].sort(), ids.slice(0, 23).sort(), "found across several lookups of ten");
      assert.equal((await store.referencedChunks("bob", ids)).size, 0);
      const row = { id: ids[24], size: 100 };
      await new Batch().upload("f", [row]).commit(store);
      assert.deepEqual(
        [...await store.referencedChunks(NS, [row.id])],
        [row.id],
        "committed chunk referenced",
      );
      await store.settlePending();
      const refs = [];
      for await (const ref of store.listChunkRefs()) refs.push(ref);
      assert.equal(refs.filter((r) => r.kind === "pending").length, 23);
      assert.deepEqual(refs.filter((r) => r.kind === "committed").map((r) => r.id), [row.id]);
      assert.ok(refs.every((r) => r.ns === NS && (r.kind === "committed" || r.until! > 0)));
      for (const kind of ["pending", "committed"] as const) {
        const only = [];
        for await (const ref of store.listChunkRefs({ kind })) only.push(ref);
        assert.deepEqual(only, refs.filter((r) => r.kind === kind));
      }
      await store.deleteChunkRefs(refs.filter((r) => r.id === ids[0] || r.id === row.id));
      assert.equal((await store.referencedChunks(NS, [ids[0], row.id])).size, 0);
    });
  });

  test("manifests are listed and deleted", async () => {
    await withStore(async (store) => {
      const { results } = await new Batch().upload("a", [chunk("a")]).upload("b", [chunk("b")]).commit(store);
      const [a] = accepted(results[0]);
      const hashes: string[] = [];
      for await (const hash of store.listManifests()) hashes.push(hash);
      assert.equal(hashes.length, 2);
      await store.deleteManifest(a.hash);
      assert.equal(await store.getManifest(a.hash), null);
      const left: string[] = [];
      for await (const hash of store.listManifests()) left.push(hash);
      assert.deepEqual(left, hashes.filter((h) => h !== a.hash));
    });
  });

  test("a replace keeps the previous version; a delete keeps it and puts the path in the trash", async () => {
    let now = 1_000;
    await withStore(async (store) => {
      await new Batch().upload("d/f.txt", [chunk("v1")]).commit(store);
      now = 2_000;
      await new Batch().upload("d/f.txt", [chunk("v2")], 2).commit(store);
      now = 3_000;
      await new Batch().delete("d/f.txt", 3).delete("d", 1, "dir").commit(store);
      const versions = await store.listVersions(NS, "d/f.txt");
      assert.deepEqual(versions.map((v) => [v.rev, v.time, v.until, v.device]), [
        [3, 2_000, 3_000, DEVICE],
        [2, 1_000, 2_000, DEVICE],
      ]);
      assert.equal(versions[0].hash, fileHashOfChunks([chunk("v2").id]));
      const trash = await store.listTrash(NS);
      assert.deepEqual(trash.map((t) => [t.path, t.kind, t.rev, t.deletedAt, t.version]), [
        ["d", "dir", 5, 3_000, "1"],
        ["d/f.txt", "file", 4, 3_000, "3"],
      ]);
      const all = [];
      for await (const v of store.listAllVersions(NS)) all.push(v.rev);
      assert.deepEqual(all.sort(), [2, 3]);
      assert.deepEqual(await store.listVersions("bob", "d/f.txt"), []);
      assert.deepEqual(await store.listTrash("bob"), []);
      const namespaces = [];
      for await (const ns of store.listNamespaces()) namespaces.push(ns);
      assert.deepEqual(namespaces, [NS]);

      await store.dropHistory(NS, { versions: [versions[1]], trash: [trash[0]] });
      assert.deepEqual((await store.listVersions(NS, "d/f.txt")).map((v) => v.rev), [3]);
      assert.deepEqual((await store.listTrash(NS)).map((t) => t.path), ["d/f.txt"]);
    }, { now: () => now });
  });

  test("versions of a long path are kept apart from those of a path with the same prefix", async () => {
    await withStore(async (store) => {
      const long = deepPath("h".repeat(200), 6, "file");
      await new Batch().upload(long, [chunk("1")]).upload(`${long}x`, [chunk("2")]).commit(store);
      const revs = [(await store.getEntry(NS, long))!.rev, (await store.getEntry(NS, `${long}x`))!.rev];
      await new Batch().upload(long, [chunk("3")], revs[0]).upload(`${long}x`, [chunk("4")], revs[1]).commit(
        store,
      );
      assert.deepEqual((await store.listVersions(NS, long)).map((v) => v.path), [long]);
      assert.deepEqual((await store.listVersions(NS, `${long}x`)).map((v) => v.path), [`${long}x`]);
    });
  });

  test("removeUser removes the user's history and trash", async () => {
    await withStore(async (store) => {
      await store.addUser(user(NS));
      await new Batch().upload("f", [chunk("1")]).commit(store);
      await new Batch().delete("f", 1).commit(store);
      assert.equal((await store.listTrash(NS)).length, 1);
      await store.removeUser(NS);
      assert.deepEqual(await store.listTrash(NS), []);
      assert.deepEqual(await store.listVersions(NS, "f"), []);
    });
  });

  test("the retention policy is stored", async () => {
    await withStore(async (store) => {
      assert.equal(await store.getRetention(), null);
      await store.setRetention({ keepDays: 7, keepVersions: 3 });
      assert.deepEqual(await store.getRetention(), { keepDays: 7, keepVersions: 3 });
    });
  });

  test("repair() of a consistent store changes nothing", async () => {
    await withStore(async (store) => {
      await new Batch().upload("a/b", [chunk("b")]).commit(store);
      assert.deepEqual(await store.repair(), []);
      assert.equal(await store.latestSeq(NS), 2);
    });
  });
  test("the journal epoch is one random id per store", async () => {
    await withStore(async (store) => {
      const epoch = await store.journalEpoch();
      assert.ok(epoch.length >= 16 && epoch.length <= 64, epoch);
      assert.equal(await store.journalEpoch(), epoch);
    });
  });

  test("compactJournal deletes entries up to a point it records with its tag, never backwards", async () => {
    await withStore(async (store) => {
      await new Batch().mkdir("a").mkdir("b").mkdir("c").commit(store);
      assert.equal(await store.getCompaction(NS), null);
      const [second] = await store.changesSince(NS, 1, 1);
      assert.equal(await store.compactJournal(NS, 2), 2);
      assert.deepEqual(await store.getCompaction(NS), { seq: 2, tag: second.tag });
      assert.deepEqual((await store.changesSince(NS, 0, 10)).map((e) => e.rev), [3]);
      assert.equal(await store.compactJournal(NS, 1), 0);
      assert.equal((await store.getCompaction(NS))?.seq, 2);
      assert.equal(await store.latestSeq(NS), 3);
      await new Batch().mkdir("d").commit(store);
      assert.equal(await store.latestSeq(NS), 4);
      assert.equal(await store.getCompaction("other"), null);
    });
  });

  test("journal marks round-trip per namespace and go with the user", async () => {
    await withStore(async (store) => {
      await store.addUser({ name: NS, salt: "s", hash: "h", created: 1 });
      await new Batch().mkdir("a").commit(store);
      assert.deepEqual(await store.getJournalMarks(NS), []);
      await store.setJournalMarks(NS, [{ seq: 1, time: 5 }]);
      assert.deepEqual(await store.getJournalMarks(NS), [{ seq: 1, time: 5 }]);
      assert.deepEqual(await store.getJournalMarks("other"), []);
      await store.compactJournal(NS, 1);
      assert.ok(await store.removeUser(NS));
      assert.deepEqual(await store.getJournalMarks(NS), []);
      assert.equal(await store.getCompaction(NS), null);
    });
  });

  // ---- namespaces ----

  test("a user owns one namespace, named like the user, that comes and goes with the user", async () => {
    await withStore(async (store) => {
      assert.equal(await store.getNamespace("alice"), null);
      assert.deepEqual(await store.namespacesOf("alice"), []);
      await store.addUser(user("alice"));
      const own = { id: "alice", owner: "alice", kind: "user", name: "alice", created: 1 };
      assert.deepEqual(await store.getNamespace("alice"), own);
      assert.deepEqual(await store.namespacesOf("alice"), [own]);
      assert.deepEqual(await store.namespacesOf("bob"), [], "another user sees none of it");
      assert.ok(await store.removeUser("alice"));
      assert.equal(await store.getNamespace("alice"), null);
      assert.deepEqual(await store.namespacesOf("alice"), []);
    });
  });

  test("a share namespace is seen by its owner and its grantees, as its grants change", async () => {
    await withStore(async (store) => {
      for (const name of ["alice", "bob", "carol"]) await store.addUser(user(name));
      const share = {
        id: "share:1",
        owner: "alice",
        kind: "share" as const,
        name: "Photos",
        created: 5,
        grants: [{ user: "bob", role: "read" as const }],
      };
      await store.putNamespace(share);
      assert.deepEqual(await store.getNamespace("share:1"), share);
      assert.deepEqual((await store.namespacesOf("alice")).map((n) => n.id), ["alice", "share:1"]);
      assert.deepEqual((await store.namespacesOf("bob")).map((n) => n.id), ["bob", "share:1"]);
      assert.deepEqual((await store.namespacesOf("carol")).map((n) => n.id), ["carol"]);
      await store.putNamespace({ ...share, grants: [{ user: "carol", role: "write" }] });
      assert.deepEqual((await store.namespacesOf("bob")).map((n) => n.id), ["bob"], "bob's grant is gone");
      assert.deepEqual((await store.namespacesOf("carol")).map((n) => n.id), ["carol", "share:1"]);
      await assert.rejects(
        () => store.putNamespace({ id: "dave", owner: "dave", kind: "user", name: "dave", created: 0 }),
        TypeError,
      );
      assert.equal(await store.getNamespace("dave"), null);
    });
  });

  // ---- locks ----

  const holderA = { user: NS, deviceId: "dev-a", device: "laptop" };
  const holderB = { user: NS, deviceId: "dev-b", device: "desktop" };
  const lockOf = (path: string, holder = holderA, expires = 8_640_000_000_000_000): LockRecord => ({
    path,
    ...holder,
    taken: 1,
    expires,
    leaseMs: 10_000,
  });
  const setLock = (store: MetadataStore, ns: string, lock: LockRecord) =>
    store.changeLock(ns, lock.path, () => ({ write: lock, result: null }));

  test("changeLock stores, replaces and removes a lock; decide sees the lock and the entry", async () => {
    await withStore(async (store) => {
      await new Batch().upload("docs/a.txt", [chunk("a")]).commit(store);
      const seen: [LockRecord | null, string | null][] = [];
      const result = await store.changeLock(NS, "docs/a.txt", (current, entry) => {
        seen.push([current, entry?.path ?? null]);
        return { write: lockOf("docs/a.txt"), result: "taken" };
      });
      assert.equal(result, "taken");
      assert.deepEqual(await store.listLocks(NS), [lockOf("docs/a.txt")]);
      await store.changeLock(NS, "docs/a.txt", (current) => {
        seen.push([current, null]);
        return { result: null }; // undefined write: nothing changes
      });
      assert.deepEqual(await store.listLocks(NS), [lockOf("docs/a.txt")]);
      await setLock(store, NS, lockOf("docs/a.txt", holderB));
      assert.deepEqual(await store.listLocks(NS), [lockOf("docs/a.txt", holderB)]);
      await store.changeLock(NS, "docs/a.txt", () => ({ write: null, result: null }));
      assert.deepEqual(await store.listLocks(NS), []);
      assert.deepEqual(seen, [[null, "docs/a.txt"], [lockOf("docs/a.txt"), null]]);
      const missing = await store.changeLock(NS, "nope", (current, entry) => ({ result: [current, entry] }));
      assert.deepEqual(missing, [null, null], "no lock and no entry at a path that does not exist");
    });
  });

  test("locks are kept per namespace and per path, long paths too, and go with the user", async () => {
    await withStore(async (store) => {
      await store.addUser({ name: NS, salt: "s", hash: "h", created: 1 });
      const long = `${"x".repeat(200)}/${"y".repeat(200)}/${"z".repeat(200)}/${"w".repeat(200)}/${
        "v".repeat(200)
      }`;
      await setLock(store, NS, lockOf("a"));
      await setLock(store, NS, lockOf("b", holderB));
      await setLock(store, NS, lockOf(long));
      await setLock(store, "bob", lockOf("a"));
      const paths = (await store.listLocks(NS)).map((l) => l.path).sort();
      assert.deepEqual(paths, ["a", "b", long]);
      const namespaces: string[] = [];
      for await (const ns of store.listLockNamespaces()) namespaces.push(ns);
      assert.deepEqual(namespaces.sort(), ["alice", "bob"]);
      assert.ok(await store.removeUser(NS));
      assert.deepEqual(await store.listLocks(NS), []);
      assert.equal((await store.listLocks("bob")).length, 1, "other namespaces keep theirs");
    });
  });

  test("a commit with a holder is refused on a file another device locked; the holder's passes", async () => {
    await withStore(async (store) => {
      const first = await new Batch().upload("a", [chunk("1")]).upload("d/x", [chunk("2")]).commit(store);
      const revA = accepted(first.results[0])[0].rev;
      const revX = accepted(first.results[1]).find((e) => e.path === "d/x")!.rev;
      await setLock(store, NS, lockOf("a"));
      await setLock(store, NS, lockOf("d/x"));
      const asB = (batch: Batch) =>
        store.commit(NS, {
          device: "desktop",
          changes: batch.changes,
          rows: encodeRows(batch.rows),
          checkChunks: presentAs(batch.rows),
          holder: holderB,
        });
      const byB = await asB(new Batch().upload("a", [chunk("3")], revA).move("d/x", "e/x", revX));
      const locked = refused(byB.results[0], "locked");
      assert.match(locked.error, /locked by alice on device "laptop"/);
      assert.deepEqual((byB.results[0] as { holder?: unknown }).holder, holderA);
      refused(byB.results[1], "locked");
      assert.equal(byB.journal.length, 0, "nothing was written");
      assert.equal((await store.getEntry(NS, "a"))?.rev, revA);
      const byA = await store.commit(NS, {
        device: "laptop",
        changes: new Batch().upload("a", [chunk("3")], revA).changes,
        rows: encodeRows([chunk("3")]),
        checkChunks: presentAs([chunk("3")]),
        holder: holderA,
      });
      accepted(byA.results[0]);
      await store.changeLock(NS, "a", () => ({ write: null, result: null }));
      const after = await asB(new Batch().delete("a", accepted(byA.results[0])[0].rev));
      accepted(after.results[0]);
    });
  });

  test("an expired lock stops no commit", async () => {
    await withStore(async (store) => {
      const first = await new Batch().upload("a", [chunk("1")]).commit(store);
      await setLock(store, NS, lockOf("a", holderA, 500));
      const result = await store.commit(NS, {
        device: "desktop",
        changes: new Batch().delete("a", accepted(first.results[0])[0].rev).changes,
        rows: new Uint8Array(),
        checkChunks: presentAs([]),
        holder: holderB,
      });
      accepted(result.results[0]);
    }, { now: () => 1000 });
  });

  // ---- shares: grants on parts of a user's namespace ----

  test("updateGrants() puts grants on a user's namespace; grantees see it exactly while they hold one", async () => {
    await withStore(async (store) => {
      for (const name of ["alice", "bob", "carol"]) await store.addUser(user(name));
      const project = { user: "bob", role: "write" as const, path: "Project", mount: "Project", created: 5 };
      const plan = { user: "bob", role: "read" as const, path: "plan.txt", mount: "plan.txt", created: 6 };
      const written = await store.updateGrants("alice", (grants) => [...grants, project]);
      assert.deepEqual(written?.grants, [project]);
      assert.deepEqual((await store.getNamespace("alice"))?.grants, [project]);
      assert.deepEqual((await store.namespacesOf("bob")).map((n) => n.id), ["bob", "alice"]);
      assert.deepEqual((await store.namespacesOf("carol")).map((n) => n.id), ["carol"]);
      assert.deepEqual(
        (await store.namespacesOf("alice")).map((n) => n.id),
        ["alice"],
        "listed once for its owner",
      );
      await store.updateGrants("alice", (grants) => [...grants, plan]);
      assert.deepEqual(
        (await store.namespacesOf("bob")).map((n) => n.id),
        ["bob", "alice"],
        "one entry per namespace",
      );
      await store.updateGrants("alice", (grants) => grants.filter((g) => g.path !== "Project"));
      assert.deepEqual(
        (await store.namespacesOf("bob")).map((n) => n.id),
        ["bob", "alice"],
        "plan.txt is left",
      );
      await store.updateGrants("alice", () => []);
      assert.deepEqual(
        (await store.namespacesOf("bob")).map((n) => n.id),
        ["bob"],
        "no grant left: not listed",
      );
      assert.deepEqual((await store.getNamespace("alice"))?.grants, []);
      assert.equal(await store.updateGrants("nobody", () => [project]), null, "unknown namespace");
      assert.equal(await store.getNamespace("nobody"), null, "nothing was written for it");
    });
  });

  test("updateGrants() runs concurrent updates one after another: none is lost", async () => {
    await withStore(async (store) => {
      await store.addUser(user("alice"));
      const users = ["b1", "b2", "b3", "b4", "b5", "b6"];
      for (const name of users) await store.addUser(user(name));
      await Promise.all(
        users.map((name) =>
          store.updateGrants("alice", (grants) => [...grants, { user: name, role: "read", path: "x" }])
        ),
      );
      const grants = (await store.getNamespace("alice"))?.grants ?? [];
      assert.deepEqual(grants.map((g) => g.user).sort(), users);
      for (const name of users) {
        assert.deepEqual((await store.namespacesOf(name)).map((n) => n.id), [name, "alice"]);
      }
    });
  });

  test("a removed grantee's grants go with it: a new user of that name inherits none", async () => {
    await withStore(async (store) => {
      for (const name of ["alice", "bob"]) await store.addUser(user(name));
      await store.updateGrants("alice", () => [{ user: "bob", role: "write", path: "Project" }]);
      assert.ok(await store.removeUser("bob"));
      assert.deepEqual((await store.getNamespace("alice"))?.grants, []);
      await store.addUser(user("bob"));
      assert.deepEqual((await store.namespacesOf("bob")).map((n) => n.id), ["bob"]);
      assert.ok(await store.removeUser("alice"));
      await store.addUser(user("carol"));
      await store.updateGrants("carol", () => [{ user: "bob", role: "read", path: "c" }]);
      assert.equal(await store.updateGrants("alice", () => [{ user: "bob", role: "read", path: "c" }]), null);
      assert.deepEqual((await store.namespacesOf("bob")).map((n) => n.id), ["bob", "carol"]);
    });
  });
}
