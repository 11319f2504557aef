// Tests for the safety stop decision: one table of plans, base counts, root states and options.
import assert from "node:assert/strict";
import type { Action } from "./reconcile.ts";
import { decideSafety, type RootStatus, type SafetyOptions, warningDue } from "./safety.ts";

const del = (path: string, kind: "file" | "dir" = "file"): Action => ({
  type: "deleteRemote",
  path,
  kind,
  baseRev: 1,
});
const dels = (n: number, prefix = "f"): Action[] => Array.from({ length: n }, (_, i) => del(`${prefix}${i}`));
const up: Action = {
  type: "upload",
  path: "new.txt",
  local: { kind: "file", hash: "h", size: 1, mtime: 1 },
  baseRev: 0,
};
const down: Action = {
  type: "download",
  path: "theirs.txt",
  remote: { kind: "file", hash: "h", size: 1, mtime: 1, rev: 3, device: "B" },
  expect: null,
};
const delLocal: Action = {
  type: "deleteLocal",
  path: "gone-there.txt",
  expect: { kind: "file", hash: "h", size: 1, mtime: 1 },
};

const OK: RootStatus = { kind: "ok" };
const DIR = "/home/me/Sync";

interface Case {
  name: string;
  plan: Action[];
  baseFiles: number;
  root?: RootStatus;
  confirmed?: string[];
  options?: Partial<SafetyOptions>;
  /** Expected stop, number of allowed and held actions, and held files. */
  stop: "root" | "mass" | null;
  allowed: number;
  held: number;
  heldFiles?: number;
  /** Patterns the message must match (none when no stop). */
  message?: RegExp[];
}

const CASES: Case[] = [
  { name: "no deletes: everything runs", plan: [up, down], baseFiles: 10, stop: null, allowed: 2, held: 0 },
  {
    name: "19 of 20 files deleted: fewer than the minimum",
    plan: dels(19),
    baseFiles: 20,
    stop: null,
    allowed: 19,
    held: 0,
  },
  {
    name: "20 of 40 files: exactly half is not more than half",
    plan: dels(20),
    baseFiles: 40,
    stop: null,
    allowed: 20,
    held: 0,
  },
  {
    name: "20 of 39 files: more than half and at least 20: held",
    plan: dels(20),
    baseFiles: 39,
    stop: "mass",
    allowed: 0,
    held: 20,
    heldFiles: 20,
    message: [/would delete 20 of the 39 files/],
  },
  {
    name: "25 of 30 with other work: only the server deletes wait",
    plan: [up, down, ...dels(25), delLocal],
    baseFiles: 30,
    stop: "mass",
    allowed: 3,
    held: 25,
    heldFiles: 25,
    message: [
      /safety stop: this scan would delete 25 of the 30 files in sync/,
      /\(f0, f1, f2, …\)/,
      /filesync confirm-deletes --dir \/home\/me\/Sync/,
      /--allow-mass-delete/,
      /put the files back/,
    ],
  },
  {
    name: "folder deletes are held with the files but not counted",
    plan: [...dels(19), del("d1", "dir"), del("d2", "dir")],
    baseFiles: 20,
    stop: null,
    allowed: 21,
    held: 0,
  },
  {
    name: "folder deletes wait with a held mass delete",
    plan: [...dels(20), del("d1", "dir")],
    baseFiles: 20,
    stop: "mass",
    allowed: 0,
    held: 21,
    heldFiles: 20,
  },
  {
    name: "confirmed deletes go through",
    plan: dels(25),
    baseFiles: 30,
    confirmed: dels(25).map((a) => (a as { path: string }).path),
    stop: null,
    allowed: 25,
    held: 0,
  },
  {
    name: "a confirmation covers the deletes it named, not later ones: a few new ones are below the minimum",
    plan: [...dels(25), ...dels(5, "later")],
    baseFiles: 35,
    confirmed: dels(25).map((a) => (a as { path: string }).path),
    stop: null,
    allowed: 30,
    held: 0,
  },
  {
    name: "many deletes after a confirmation stop again, the confirmed ones still go",
    plan: [...dels(4), ...dels(21, "later")],
    baseFiles: 30,
    confirmed: dels(4).map((a) => (a as { path: string }).path),
    stop: "mass",
    allowed: 4,
    held: 21,
    heldFiles: 21,
  },
  {
    name: "--allow-mass-delete lets a mass delete through",
    plan: dels(30),
    baseFiles: 30,
    options: { allowMassDelete: true },
    stop: null,
    allowed: 30,
    held: 0,
  },
  {
    name: "thresholds are options",
    plan: dels(3),
    baseFiles: 20,
    options: { percent: 10, min: 2 },
    stop: "mass",
    allowed: 0,
    held: 3,
    heldFiles: 3,
    message: [/would delete 3 of the 20 files/],
  },
  {
    name: "a missing root stops everything, uploads and downloads too",
    plan: [up, down, ...dels(2)],
    baseFiles: 100,
    root: { kind: "missing", reason: "no such folder" },
    stop: "root",
    allowed: 0,
    held: 2,
    heldFiles: 2,
    message: [/the synced folder \/home\/me\/Sync is missing/, /nothing is deleted/, /resumes by itself/],
  },
  {
    name: "a missing root stops even with --allow-mass-delete",
    plan: dels(1),
    baseFiles: 1,
    root: { kind: "missing", reason: "no such folder" },
    options: { allowMassDelete: true },
    stop: "root",
    allowed: 0,
    held: 1,
  },
  {
    name: "an unreadable root stops everything",
    plan: [],
    baseFiles: 5,
    root: { kind: "unreadable", reason: "Permission denied" },
    stop: "root",
    allowed: 0,
    held: 0,
    message: [/cannot read the synced folder \/home\/me\/Sync \(Permission denied\)/, /readable again/],
  },
  {
    name: "a replaced root stops everything and says how to go on",
    plan: [],
    baseFiles: 5,
    root: { kind: "replaced", reason: "another folder is there now" },
    stop: "root",
    allowed: 0,
    held: 0,
    message: [
      /was replaced \(another folder is there now\)/,
      /move it back or remount it/,
      /restart the client/,
    ],
  },
];

for (const c of CASES) {
  Deno.test(`decideSafety(): ${c.name}`, () => {
    const d = decideSafety(
      { plan: c.plan, baseFiles: c.baseFiles, root: c.root ?? OK, confirmed: new Set(c.confirmed ?? []) },
      { dir: DIR, ...c.options },
    );
    assert.equal(d.stop, c.stop);
    assert.equal(d.allowed.length, c.allowed, "allowed");
    assert.equal(d.held.length, c.held, "held");
    if (c.heldFiles !== undefined) assert.equal(d.heldFiles, c.heldFiles);
    assert.ok(d.held.every((a) => a.type === "deleteRemote"));
    assert.ok(d.allowed.every((a) => !d.held.includes(a as never)));
    if (c.stop === null) assert.equal(d.message, null);
    else assert.ok(d.message !== null);
    for (const pattern of c.message ?? []) assert.match(d.message!, pattern);
  });
}

Deno.test("decideSafety() keeps the plan's order in what it allows", () => {
  const plan = [up, ...dels(25), down, delLocal];
  const d = decideSafety({ plan, baseFiles: 30, root: OK }, { dir: DIR });
  assert.deepEqual(d.allowed, [up, down, delLocal]);
  assert.deepEqual(d.held, plan.slice(1, 26));
});

Deno.test("warningDue() repeats the same warning once a minute, and says a new one at once", () => {
  const cases: [string, { message: string; at: number }, string, number, boolean][] = [
    ["first warning", { message: "", at: 0 }, "stop", 5, true],
    ["same one 30 s later", { message: "stop", at: 1000 }, "stop", 31_000, false],
    ["same one a minute later", { message: "stop", at: 1000 }, "stop", 61_000, true],
    ["another one right away", { message: "stop", at: 1000 }, "other stop", 1001, true],
  ];
  for (const [name, last, message, now, want] of cases) {
    assert.equal(warningDue(last, message, now, 60_000), want, name);
  }
});
