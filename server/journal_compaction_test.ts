// Tests of journal compaction: the pure plan (table), then a pass over a real KV store.
import assert from "node:assert/strict";
import { join } from "node:path";
import { Batch, NS } from "./metadata_contract.ts";
import { compactJournals, planCompaction } from "./journal_compaction.ts";
import { KvMetadataStore } from "./metadata_kv.ts";
import type { JournalMark } from "./metadata_store.ts";

const DAY = 24 * 3600 * 1000;

Deno.test("planCompaction compacts up to the newest mark older than the retention", () => {
  type Case = [
    string,
    JournalMark[],
    { latest: number; now: number; compacted?: number },
    number | null,
    JournalMark[],
  ];
  const cases: Case[] = [
    ["first pass: only a mark", [], { latest: 10, now: 0 }, null, [{ seq: 10, time: 0 }]],
    ["empty journal: nothing", [], { latest: 0, now: 0 }, null, []],
    ["mark too young", [{ seq: 10, time: 0 }], { latest: 20, now: 29 * DAY }, null, [
      { seq: 10, time: 0 },
      { seq: 20, time: 29 * DAY },
    ]],
    ["mark old enough", [{ seq: 10, time: 0 }], { latest: 20, now: 30 * DAY }, 10, [{
      seq: 20,
      time: 30 * DAY,
    }]],
    [
      "newest old mark wins",
      [{ seq: 10, time: 0 }, { seq: 15, time: DAY }, { seq: 18, time: 20 * DAY }],
      {
        latest: 18,
        now: 40 * DAY,
      },
      15,
      [{ seq: 18, time: 20 * DAY }],
    ],
    ["no commit since the last mark: no new mark", [{ seq: 10, time: 0 }], { latest: 10, now: DAY }, null, [
      { seq: 10, time: 0 },
    ]],
    ["everything old: compact to the latest", [{ seq: 10, time: 0 }], { latest: 10, now: 31 * DAY }, 10, []],
    [
      "already compacted that far",
      [{ seq: 10, time: 0 }],
      { latest: 12, now: 31 * DAY, compacted: 10 },
      null,
      [
        { seq: 12, time: 31 * DAY },
      ],
    ],
  ];
  for (const [what, marks, o, through, kept] of cases) {
    const plan = planCompaction(marks, { keepDays: 30, compacted: 0, ...o });
    assert.equal(plan.through, through, what);
    assert.deepEqual(plan.marks, kept, what);
  }
});

Deno.test("compactJournals deletes old entries, remembers the point and its tag, and keeps the rest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-compaction-" });
  const store = await KvMetadataStore.open(join(dir, "metadata.kv"));
  try {
    await new Batch().mkdir("a").mkdir("b").commit(store);
    assert.equal(await compactJournals(store, { now: 0, keepDays: 30 }), 0); // marks seq 2 at day 0
    await new Batch().mkdir("c").commit(store);
    const [atTwo] = await store.changesSince(NS, 1, 1);
    assert.equal(await compactJournals(store, { now: 30 * DAY, keepDays: 30 }), 2);
    assert.deepEqual(await store.getCompaction(NS), { seq: 2, tag: atTwo.tag });
    assert.deepEqual((await store.changesSince(NS, 0, 10)).map((e) => e.path), ["c"]);
    assert.equal(await store.latestSeq(NS), 3);
    // The live entries are untouched; a second pass at the same time does nothing more.
    const paths: string[] = [];
    for await (const entry of store.listEntries(NS)) paths.push(entry.path);
    assert.deepEqual(paths.sort(), ["a", "b", "c"]);
    assert.equal(await compactJournals(store, { now: 30 * DAY, keepDays: 30 }), 0);
    // The namespace and its commits go on after compaction.
    await new Batch().mkdir("d").commit(store);
    assert.equal(await store.latestSeq(NS), 4);
    assert.equal(await store.compactJournal(NS, 99), 2); // capped at the latest
    assert.equal((await store.getCompaction(NS))?.seq, 4);
    assert.equal(await store.compactJournal(NS, 3), 0); // never backwards, nothing left below the point
    assert.equal((await store.getCompaction(NS))?.seq, 4);
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compactJournal finishes a pass that a crash interrupted after recording the point", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-compaction-" });
  const store = await KvMetadataStore.open(join(dir, "metadata.kv"));
  try {
    await new Batch().mkdir("a").mkdir("b").mkdir("c").commit(store);
    // What a crash between recording the point and deleting the entries leaves.
    await store.kv.set(["jc", NS], { seq: 2 });
    assert.equal((await store.changesBefore(NS, 3, 10)).length, 2);
    assert.equal(await store.compactJournal(NS, 1), 2);
    assert.deepEqual(await store.changesBefore(NS, 3, 10), []);
    assert.deepEqual(await store.getCompaction(NS), { seq: 2 });
  } finally {
    store.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("journalEpoch is made once and kept by the store's file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-epoch-" });
  try {
    const path = join(dir, "metadata.kv");
    const store = await KvMetadataStore.open(path);
    const epoch = await store.journalEpoch();
    assert.match(epoch, /^[0-9a-f-]{36}$/);
    assert.equal(await store.journalEpoch(), epoch);
    store.close();
    const reopened = await KvMetadataStore.open(path);
    assert.equal(await reopened.journalEpoch(), epoch);
    reopened.close();
    const other = await KvMetadataStore.open(join(dir, "other.kv"));
    assert.notEqual(await other.journalEpoch(), epoch);
    other.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
