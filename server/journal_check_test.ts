// Table test of the MONITOR resync rule.
import assert from "node:assert/strict";
import type { ResyncReason } from "../protocol/messages.ts";
import { type DeviceCursor, type JournalFacts, resyncReason } from "./journal_check.ts";

Deno.test("resyncReason tells a cursor of this journal from one of another history", () => {
  const journal = (o: Partial<JournalFacts> = {}): JournalFacts => ({
    epoch: "e1",
    latest: 10,
    compacted: null,
    tagAtSince: "t5",
    ...o,
  });
  const cases: [string, DeviceCursor, JournalFacts, ResyncReason | null][] = [
    ["fresh device", { since: 0 }, journal(), null],
    ["fresh device, other epoch", { since: 0, epoch: "e0" }, journal(), null],
    ["same history", { since: 5, epoch: "e1", tag: "t5" }, journal(), null],
    ["at the latest entry", { since: 10, epoch: "e1", tag: "t5" }, journal(), null],
    ["another journal", { since: 5, epoch: "e0", tag: "t5" }, journal(), "epoch"],
    ["another journal, cursor beyond it", { since: 50, epoch: "e0" }, journal(), "epoch"],
    ["restored from an older backup", { since: 12, epoch: "e1", tag: "t12" }, journal(), "behind"],
    ["restored, then more commits", { since: 5, epoch: "e1", tag: "t5-old" }, journal(), "diverged"],
    [
      "compacted past the cursor",
      { since: 3, epoch: "e1", tag: "t3" },
      journal({ compacted: { seq: 4 } }),
      "expired",
    ],
    [
      "at the compaction point, same tag",
      { since: 4, epoch: "e1", tag: "t4" },
      journal({ compacted: { seq: 4, tag: "t4" }, tagAtSince: undefined }),
      null,
    ],
    [
      "at the compaction point, other tag",
      { since: 4, epoch: "e1", tag: "x" },
      journal({ compacted: { seq: 4, tag: "t4" } }),
      "diverged",
    ],
    ["behind beats expired", { since: 12, epoch: "e1" }, journal({ compacted: { seq: 11 } }), "behind"],
    ["device without epoch (older state)", { since: 5, tag: "t5" }, journal(), null],
    ["device without epoch, beyond the journal", { since: 11 }, journal(), "behind"],
    ["device without tag", { since: 5, epoch: "e1" }, journal(), null],
    [
      "journal entry without tag (older journal)",
      { since: 5, epoch: "e1", tag: "t5" },
      journal({ tagAtSince: undefined }),
      null,
    ],
  ];
  for (const [what, device, facts, expected] of cases) {
    assert.equal(resyncReason(device, facts), expected, what);
  }
});
