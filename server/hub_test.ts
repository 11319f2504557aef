// Hub: one node publishes as commits come; with other nodes on the journal, strictly in order, gaps read back.
import assert from "node:assert/strict";
import type { WireEntry } from "../protocol/messages.ts";
import { Hub } from "./hub.ts";
import { until } from "./cluster_bus_contract.ts";

const entry = (rev: number): WireEntry => ({
  path: `f${rev}`,
  kind: "file",
  hash: "h",
  size: 1,
  mtime: 0,
  rev,
  device: "d",
});

/** A journal of `n` entries that counts its reads (commits of other nodes are appended with `commit`). */
function journal(n: number) {
  const entries = Array.from({ length: n }, (_, i) => entry(i + 1));
  const reads: number[] = [];
  return {
    entries,
    reads,
    commit: (): WireEntry => {
      entries.push(entry(entries.length + 1));
      return entries[entries.length - 1];
    },
    changesSince: (_ns: string, since: number, limit: number) => {
      reads.push(since);
      return Promise.resolve(entries.filter((e) => e.rev > since).slice(0, limit));
    },
    latestSeq: () => Promise.resolve(entries.length),
    latestSeqs: (namespaces: readonly string[]) => Promise.resolve(namespaces.map(() => entries.length)),
  };
}

const revs = (batches: WireEntry[][]) => batches.flat().map((e) => e.rev);

Deno.test("Hub alone: each commit's entries are published as they come, nothing is read", () => {
  const hub = new Hub();
  const heard: WireEntry[][] = [];
  const stop = hub.subscribe("alice", (e) => heard.push(e), { from: 4 });
  hub.publish("alice", [entry(7)]);
  hub.publish("bob", [entry(1)]);
  stop();
  hub.publish("alice", [entry(8)]);
  assert.deepEqual(revs(heard), [7]);
});

Deno.test("Hub on a shared journal: the next entries go out without a read; a gap is read back in order", async () => {
  const j = journal(3);
  const notes: unknown[] = [];
  const hub = new Hub({ journal: j, announce: (n) => notes.push(n) });
  const heard: WireEntry[][] = [];
  hub.subscribe("alice", (e) => heard.push(e), { from: 3 });
  hub.publish("alice", [j.commit()]);
  assert.deepEqual(revs(heard), [4]);
  assert.deepEqual(j.reads, []);
  // Another node commits 5; this node's commit 6 comes first: 5 is read, then 5 and 6 go out in order.
  j.commit();
  hub.publish("alice", [j.commit()]);
  await until(() => heard.flat().length === 3, "5 and 6 arrived");
  assert.deepEqual(revs(heard), [4, 5, 6]);
  assert.deepEqual(notes, [
    { kind: "journal", ns: "alice", seq: 4 },
    { kind: "journal", ns: "alice", seq: 6 },
  ]);
});

Deno.test("Hub on a shared journal: another node's note is read; a lost one is caught up by the check", async () => {
  const j = journal(2);
  const hub = new Hub({ journal: j });
  const heard: WireEntry[][] = [];
  hub.subscribe("alice", (e) => heard.push(e), { from: 2 });
  j.commit();
  hub.hear({ kind: "journal", ns: "alice", seq: 3 });
  await until(() => heard.flat().length === 1, "3 arrived");
  // Two commits whose notes were lost.
  j.commit();
  j.commit();
  await hub.catchUpAll();
  assert.deepEqual(revs(heard), [3, 4, 5]);
  // A note about what was published already reads nothing.
  const reads = j.reads.length;
  hub.hear({ kind: "journal", ns: "alice", seq: 5 });
  await hub.catchUpAll();
  assert.equal(j.reads.length, reads);
});

Deno.test("Hub on a shared journal: a removed listener hears nothing, and its namespace is not read", async () => {
  const j = journal(1);
  const hub = new Hub({ journal: j });
  const heard: WireEntry[][] = [];
  const stop = hub.subscribe("alice", (e) => heard.push(e), { from: 1 });
  stop();
  j.commit();
  hub.hear({ kind: "journal", ns: "alice", seq: 2 });
  await hub.catchUpAll();
  assert.deepEqual(heard, []);
  assert.deepEqual(j.reads, []);
});

Deno.test("Hub: another node's share change reaches the grantee's sessions here and is not sent again", () => {
  const notes: unknown[] = [];
  const hub = new Hub({ announce: (n) => notes.push(n) });
  const heard: string[] = [];
  hub.watchShares("bob", (c) => heard.push(c.change));
  const share = {
    ns: "alice:1",
    path: "p",
    owner: "alice",
    user: "bob",
    access: "read" as const,
    mount: "p",
  };
  hub.hear({ kind: "share", change: { change: "new", share } });
  hub.shareChanged({ change: "gone", share });
  assert.deepEqual(heard, ["new", "gone"]);
  assert.deepEqual(notes, [{ kind: "share", change: { change: "gone", share } }]);
});
