// Tests of the progress model: totals from plans, done from transfers and finished files, rate, time left, when
// to show, and the words of a report.
import assert from "node:assert/strict";
import type { ClientEvent, TimedEvent } from "./events.ts";
import {
  barText,
  formatDuration,
  fraction,
  progressLine,
  ProgressModel,
  type ProgressSnapshot,
} from "./progress_model.ts";

const MiB = 1024 * 1024;

function plan(up: [number, number], down: [number, number] = [0, 0]): ClientEvent {
  return {
    type: "plan",
    uploads: { files: up[0], bytes: up[1] },
    downloads: { files: down[0], bytes: down[1] },
    deletes: 0,
    moves: 0,
  };
}

const down = (path: string, done: number, total: number): ClientEvent => ({
  type: "transfer",
  direction: "down",
  path,
  done,
  total,
});

/** Feeds `[ms, event]` pairs to a new model. */
function feed(steps: [number, ClientEvent][], model = new ProgressModel()): ProgressModel {
  for (const [time, event] of steps) model.observe({ ...event, time } as TimedEvent);
  return model;
}

interface Case {
  name: string;
  steps: [number, ClientEvent][];
  at: number;
  files?: [number, number];
  bytes?: [number, number];
  /** null: no run under way. */
  active?: boolean;
  visible?: boolean;
}

const CASES: Case[] = [
  {
    name: "a plan sets the totals",
    steps: [[0, plan([2, 3 * MiB], [1, MiB])]],
    at: 0,
    files: [0, 3],
    bytes: [0, 4 * MiB],
    visible: true,
  },
  {
    name: "transfers count the bytes so far, a finished file its size",
    steps: [
      [0, plan([0, 0], [2, 20 * MiB])],
      [100, down("a", 4 * MiB, 10 * MiB)],
      [200, down("b", 10 * MiB, 10 * MiB)],
    ],
    at: 200,
    files: [1, 2],
    bytes: [14 * MiB, 20 * MiB],
  },
  {
    name: "small files count when uploaded or downloaded",
    steps: [
      [0, plan([2, 300], [1, 50])],
      [10, { type: "uploaded", path: "x", size: 100 }],
      [20, { type: "downloaded", path: "y", size: 50 }],
    ],
    at: 20,
    files: [2, 3],
    bytes: [150, 350],
  },
  {
    name: "a file whose transfer ended is not counted again when it is uploaded",
    steps: [
      [0, plan([2, 4 * MiB])],
      [10, { type: "transfer", direction: "up", path: "a", done: 2 * MiB, total: 2 * MiB }],
      [20, { type: "uploaded", path: "a", size: 2 * MiB }],
    ],
    at: 20,
    files: [1, 2],
    bytes: [2 * MiB, 4 * MiB],
  },
  {
    name: "the run ends when every file is done",
    steps: [[0, plan([1, 10])], [10, { type: "uploaded", path: "a", size: 10 }]],
    at: 10,
    active: false,
  },
  {
    name: "a next plan replaces what the last one left undone (failed files are planned again)",
    steps: [
      [0, plan([0, 0], [3, 30])],
      [10, { type: "downloaded", path: "a", size: 10 }],
      [20, down("b", 5, 10)],
      [30, plan([0, 0], [1, 10])],
    ],
    at: 30,
    files: [1, 2],
    bytes: [10, 20],
  },
  {
    name: "synced ends the run",
    steps: [[0, plan([3, 30])], [10, { type: "synced", files: 3, bytes: 30 }]],
    at: 10,
    active: false,
  },
  {
    name: "offline ends the run",
    steps: [[0, plan([3, 30])], [10, { type: "offline", server: "s", reason: "gone" }]],
    at: 10,
    active: false,
  },
  {
    name: "a run without progress for long is over",
    steps: [[0, plan([3, 30])], [1000, down("a", 1, 2 * MiB)]],
    at: 16_001,
    active: false,
  },
  {
    name: "transfers and files outside a run are not shown",
    steps: [[0, down("a", 5, 10 * MiB)], [5, { type: "downloaded", path: "b", size: 5 }]],
    at: 5,
    active: false,
  },
  {
    name: "the initial sync shows at once",
    steps: [[0, plan([1, 10])]],
    at: 0,
    visible: true,
  },
  {
    name: "later work shows once it ran about two seconds",
    steps: [[0, { type: "synced", files: 0, bytes: 0 }], [10, plan([2, 20])]],
    at: 1999,
    visible: false,
  },
  {
    name: "later work that runs on shows",
    steps: [[0, { type: "synced", files: 0, bytes: 0 }], [10, plan([2, 20])]],
    at: 2010,
    visible: true,
  },
  {
    name: "once the initial run is done, the next one is not initial",
    steps: [[0, plan([1, 10])], [5, { type: "uploaded", path: "a", size: 10 }], [10, plan([2, 20])]],
    at: 500,
    visible: false,
  },
];

for (const c of CASES) {
  Deno.test(`ProgressModel: ${c.name}`, () => {
    const model = feed(c.steps);
    const snapshot = model.snapshot(c.at);
    if (c.active === false) {
      assert.equal(snapshot, null);
      assert.equal(model.active(c.at), false);
      return;
    }
    assert.ok(snapshot, "a run is under way");
    if (c.files) assert.deepEqual([snapshot.files.done, snapshot.files.total], c.files);
    if (c.bytes) assert.deepEqual([snapshot.bytes.done, snapshot.bytes.total], c.bytes);
    if (c.visible !== undefined) assert.equal(model.visible(c.at), c.visible);
  });
}

Deno.test("ProgressModel: the rate is measured over the last five seconds, and gives the time left", () => {
  const steps: [number, ClientEvent][] = [[0, plan([0, 0], [1, 100 * MiB])]];
  // 1 MiB/s for 10 s, then 5 MiB/s.
  for (let s = 1; s <= 10; s++) steps.push([s * 1000, down("a", s * MiB, 100 * MiB)]);
  for (let s = 11; s <= 20; s++) steps.push([s * 1000, down("a", (10 + (s - 10) * 5) * MiB, 100 * MiB)]);
  const model = feed(steps);
  const early = feed(steps.slice(0, 11)).snapshot(10_000)!;
  assert.equal(early.rate, MiB);
  assert.equal(early.secondsLeft, 90);
  const late = model.snapshot(20_000)!;
  assert.equal(late.bytes.done, 60 * MiB);
  assert.equal(late.rate, 5 * MiB);
  assert.equal(late.secondsLeft, 8);
  // A stall shows: nothing moved in the last five seconds.
  assert.equal(model.snapshot(25_000)!.rate, 0);
  assert.equal(model.snapshot(25_000)!.secondsLeft, null);
});

Deno.test("ProgressModel: no rate before half a second of work", () => {
  const model = feed([[0, plan([0, 0], [1, 10 * MiB])], [300, down("a", 3 * MiB, 10 * MiB)]]);
  assert.equal(model.snapshot(300)!.rate, null);
  assert.equal(model.snapshot(300)!.secondsLeft, null);
  assert.equal(model.snapshot(600)!.rate, 5 * MiB);
});

Deno.test("ProgressModel: a burst of small files keeps few samples and a right rate", () => {
  const steps: [number, ClientEvent][] = [[0, plan([0, 0], [100_000, 100_000 * 1024])]];
  for (let i = 0; i < 99_999; i++) {
    steps.push([Math.floor(i / 10), { type: "downloaded", path: `f${i}`, size: 1024 }]);
  }
  const model = feed(steps);
  const snapshot = model.snapshot(10_000)!;
  assert.equal(snapshot.files.done, 99_999);
  // 99,999 KiB in the five seconds up to the last sample near 10 s, measured up to now.
  assert.ok(snapshot.rate! > 9_000 * 1024 && snapshot.rate! < 11_000 * 1024, `${snapshot.rate}`);
});

Deno.test("ProgressModel: takeFinished() gives the run that ended with every file done, once", () => {
  const model = feed([[0, plan([1, 10])], [1000, { type: "uploaded", path: "a", size: 10 }]]);
  const finished = model.takeFinished();
  assert.deepEqual(finished?.files, { done: 1, total: 1 });
  assert.deepEqual(finished?.bytes, { done: 10, total: 10 });
  assert.equal(finished?.secondsLeft, null);
  assert.equal(model.takeFinished(), null);
  const stopped = feed([[0, plan([2, 10])], [10, { type: "synced", files: 2, bytes: 10 }]]);
  assert.equal(stopped.takeFinished(), null);
});

const SNAPSHOT: ProgressSnapshot = {
  files: { done: 120, total: 400 },
  bytes: { done: 310 * MiB, total: 1.2 * 1024 * MiB },
  rate: 54 * MiB,
  secondsLeft: 17.2,
  startedAt: 0,
  initial: false,
};

Deno.test("progressLine() says files, bytes, rate and time left", () => {
  assert.equal(
    progressLine(SNAPSHOT),
    "progress: 120/400 files, 310.0 MiB of 1.20 GiB, 54.0 MiB/s, about 17 s left",
  );
  assert.equal(
    progressLine({
      ...SNAPSHOT,
      files: { done: 0, total: 1 },
      bytes: { done: 0, total: 5 },
      rate: null,
      secondsLeft: null,
    }),
    "progress: 0/1 file, 0 B of 5 B",
  );
  assert.equal(
    progressLine({ ...SNAPSHOT, secondsLeft: null }),
    "progress: 120/400 files, 310.0 MiB of 1.20 GiB, 54.0 MiB/s",
  );
});

Deno.test("barText() says the same shorter", () => {
  assert.equal(barText(SNAPSHOT), "120/400 files | 310.0 MiB of 1.20 GiB | 54.0 MiB/s | about 17 s left");
});

Deno.test("formatDuration() reads as seconds, minutes or hours", () => {
  assert.equal(formatDuration(0.4), "0 s");
  assert.equal(formatDuration(59), "59 s");
  assert.equal(formatDuration(185), "3 min 5 s");
  assert.equal(formatDuration(7800), "2 h 10 min");
});

Deno.test("fraction() goes by bytes, or by files when no bytes move", () => {
  assert.equal(fraction({ ...SNAPSHOT, bytes: { done: 1, total: 4 } }), 0.25);
  assert.equal(fraction({ ...SNAPSHOT, bytes: { done: 0, total: 0 }, files: { done: 1, total: 2 } }), 0.5);
  assert.equal(fraction({ ...SNAPSHOT, bytes: { done: 0, total: 0 }, files: { done: 0, total: 0 } }), 1);
});
