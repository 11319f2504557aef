// Table tests of the status tracker: events plus facts in, the status report out.
import assert from "node:assert/strict";
import type { ClientEvent, TimedEvent } from "./events.ts";
import type { Action } from "./reconcile.ts";
import { type StatusFacts, type StatusReport, StatusTracker, summarizePlan } from "./status.ts";

const facts: StatusFacts = {
  server: "127.0.0.1:8443",
  user: "alice",
  device: "laptop",
  folder: "/home/alice/Sync",
  connected: true,
  paused: false,
  inSync: { files: 3, bytes: 300 },
  pending: null,
  massStop: null,
  rootStop: null,
  conflicts: [],
};

const plan = (up: [number, number], down: [number, number]): ClientEvent => ({
  type: "plan",
  uploads: { files: up[0], bytes: up[1] },
  downloads: { files: down[0], bytes: down[1] },
  deletes: 0,
  moves: 0,
});

interface Case {
  name: string;
  events?: ClientEvent[];
  facts?: Partial<StatusFacts>;
  expect: Partial<StatusReport>;
}

const cases: Case[] = [
  {
    name: "connected, nothing going on",
    expect: {
      state: "connected",
      inSync: { files: 3, bytes: 300 },
      transfers: [],
      lastSync: null,
      safetyStops: [],
      conflicts: [],
    },
  },
  {
    name: "not connected, no failure yet: connecting",
    facts: { connected: false },
    expect: { state: "connecting" },
  },
  {
    name: "not connected after a failure: offline, with the reason",
    facts: { connected: false },
    events: [{ type: "offline", server: "s", reason: "Cannot reach server s: connection refused" }],
    expect: { state: "offline", offlineReason: "Cannot reach server s: connection refused" },
  },
  {
    name: "connected again after offline: no reason kept",
    events: [
      { type: "offline", server: "s", reason: "gone" },
      { type: "connected", server: "s", user: "alice", device: "laptop" },
    ],
    facts: { connected: false },
    expect: { state: "connecting" },
  },
  {
    name: "the server is the one connected to (of several), else the first of the list",
    events: [{ type: "connected", server: "node2:8443", user: "alice", device: "laptop" }],
    expect: { server: "node2:8443" },
  },
  {
    name: "not connected: the first server of the list",
    events: [{ type: "connected", server: "node2:8443", user: "alice", device: "laptop" }],
    facts: { connected: false },
    expect: { server: "127.0.0.1:8443" },
  },
  {
    name: "the connected fact wins over an old offline event",
    events: [{ type: "offline", server: "s", reason: "gone" }],
    expect: { state: "connected" },
  },
  {
    name: "paused wins over everything, and shows the held plan",
    facts: {
      paused: true,
      connected: false,
      rootStop: "missing",
      pending: { uploads: { files: 1, bytes: 5 }, downloads: { files: 0, bytes: 0 } },
    },
    expect: {
      state: "paused",
      pending: { uploads: { files: 1, bytes: 5 }, downloads: { files: 0, bytes: 0 } },
    },
  },
  {
    name: "a root problem is a safety stop",
    facts: { rootStop: "the synced folder /x is missing" },
    expect: {
      state: "safety stop",
      safetyStops: [{ reason: "root", detail: "the synced folder /x is missing" }],
    },
  },
  {
    name: "a mass-delete stop keeps the state and lists the held deletes, with the warning's text",
    events: [{ type: "safety_stop", reason: "mass_delete", held: 25, detail: "this scan would delete 25" }],
    facts: { massStop: { held: 25 } },
    expect: {
      state: "connected",
      safetyStops: [{ reason: "mass_delete", held: 25, detail: "this scan would delete 25" }],
    },
  },
  {
    name: "a lifted mass-delete stop forgets its text",
    events: [
      { type: "safety_stop", reason: "mass_delete", held: 25, detail: "old" },
      { type: "safety_lifted", reason: "mass_delete" },
    ],
    facts: { massStop: { held: 2 } },
    expect: { safetyStops: [{ reason: "mass_delete", held: 2 }] },
  },
  {
    name: "a plan sets the pending work; each upload and download takes its share off",
    events: [
      plan([2, 300], [1, 50]),
      { type: "uploaded", path: "a", size: 100 },
      { type: "downloaded", path: "b", size: 50 },
    ],
    expect: { pending: { uploads: { files: 1, bytes: 200 }, downloads: { files: 0, bytes: 0 } } },
  },
  {
    name: "pending never goes below zero",
    events: [plan([1, 10], [0, 0]), { type: "uploaded", path: "a", size: 99 }, {
      type: "uploaded",
      path: "b",
      size: 1,
    }],
    expect: { pending: { uploads: { files: 0, bytes: 0 }, downloads: { files: 0, bytes: 0 } } },
  },
  {
    name: "the held plan shows only while paused",
    events: [plan([4, 40], [0, 0])],
    facts: { pending: { uploads: { files: 9, bytes: 9 }, downloads: { files: 9, bytes: 9 } } },
    expect: { pending: { uploads: { files: 4, bytes: 40 }, downloads: { files: 0, bytes: 0 } } },
  },
  {
    name: "transfers in progress, the finished one gone",
    events: [
      { type: "transfer", direction: "up", path: "big", done: 10, total: 100 },
      { type: "transfer", direction: "down", path: "other", done: 5, total: 50 },
      { type: "transfer", direction: "up", path: "big", done: 60, total: 100 },
      { type: "transfer", direction: "down", path: "other", done: 50, total: 50 },
    ],
    expect: { transfers: [{ direction: "up", path: "big", done: 60, total: 100 }] },
  },
  {
    name: "an upload event ends its transfer",
    events: [
      { type: "transfer", direction: "up", path: "big", done: 10, total: 100 },
      { type: "uploaded", path: "big", size: 100 },
    ],
    expect: { transfers: [] },
  },
  {
    name: "synced sets the last sync time and clears what was pending",
    events: [
      plan([2, 2], [2, 2]),
      { type: "transfer", direction: "up", path: "big", done: 10, total: 100 },
      { type: "synced", files: 3, bytes: 300 },
    ],
    expect: {
      lastSync: 1000,
      transfers: [],
      pending: { uploads: { files: 0, bytes: 0 }, downloads: { files: 0, bytes: 0 } },
    },
  },
  {
    name: "conflicted copies are listed",
    facts: { conflicts: ["a (conflicted copy from b 2026-12-01 101010).txt"] },
    expect: { conflicts: ["a (conflicted copy from b 2026-12-01 101010).txt"] },
  },
  {
    name: "events it does not follow change nothing",
    events: [{ type: "notice", message: "hello" }, {
      type: "deleted",
      path: "a",
      kind: "file",
      where: "here",
    }],
    expect: { state: "connected", transfers: [], lastSync: null },
  },
];

for (const c of cases) {
  Deno.test(`StatusTracker: ${c.name}`, () => {
    const tracker = new StatusTracker();
    for (const event of c.events ?? []) tracker.observe({ ...event, time: 1000 } as TimedEvent);
    const report = tracker.report({ ...facts, ...c.facts });
    for (const [key, value] of Object.entries(c.expect)) {
      assert.deepEqual(report[key as keyof StatusReport], value, key);
    }
    assert.equal(report.folder, facts.folder);
  });
}

Deno.test("StatusTracker: a report is a copy the next events do not change", () => {
  const tracker = new StatusTracker();
  tracker.observe({ ...plan([1, 1], [0, 0]), time: 1 } as TimedEvent);
  const before = tracker.report(facts);
  tracker.observe({ type: "uploaded", path: "a", size: 1, time: 2 });
  assert.equal(before.pending.uploads.files, 1);
});

Deno.test("summarizePlan() counts uploads and downloads with their bytes, nothing else", () => {
  const file = { kind: "file" as const, hash: "h", size: 10, mtime: 0 };
  const remote = { ...file, size: 7, rev: 1, device: "d" };
  const actions = [
    { type: "upload", path: "a", local: file, baseRev: 0 },
    { type: "upload", path: "b", local: { ...file, size: 5 }, baseRev: 0 },
    { type: "download", path: "c", remote, expect: null },
    { type: "deleteRemote", path: "d", kind: "file", baseRev: 1 },
    { type: "moveRemote", from: "e", to: "f", baseRev: 1, local: file },
  ] as unknown as Action[];
  assert.deepEqual(summarizePlan(actions), {
    uploads: { files: 2, bytes: 15 },
    downloads: { files: 1, bytes: 7 },
  });
  assert.deepEqual(summarizePlan([]), { uploads: { files: 0, bytes: 0 }, downloads: { files: 0, bytes: 0 } });
});
