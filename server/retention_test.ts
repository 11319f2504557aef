// Table tests for retention: which versions and trash items expire, by age and by count.
import assert from "node:assert/strict";
import type { TrashRecord, VersionRecord } from "./metadata_store.ts";
import { expiredVersions, expireHistory, trashExpired } from "./retention.ts";

const DAY = 24 * 3600_000;
const NOW = 100 * DAY;

/** A version of `path` with rev `rev` that stopped being current `ageDays` days before NOW. */
const v = (rev: number, ageDays: number, path = "f"): VersionRecord => ({
  path,
  rev,
  hash: `h${rev}`,
  size: 1,
  mtime: 1,
  device: "d",
  time: 0,
  until: NOW - ageDays * DAY,
});
const t = (path: string, version: number, ageDays: number, kind: "file" | "dir" = "file"): TrashRecord => ({
  path,
  kind,
  rev: version + 1,
  deletedAt: NOW - ageDays * DAY,
  device: "d",
  size: 1,
  version: String(version),
});

const CASES: [
  name: string,
  versions: VersionRecord[],
  keepDays: number,
  keepVersions: number | undefined,
  needed: number[],
  expired: number[],
][] = [
  ["nothing expires inside the days", [v(3, 1), v(2, 29)], 30, undefined, [], []],
  [
    "a version expires exactly keepDays after it stopped being current",
    [v(3, 1), v(2, 30)],
    30,
    undefined,
    [],
    [2],
  ],
  ["the count keeps the newest", [v(1, 3), v(3, 1), v(2, 2)], 30, 1, [], [2, 1]],
  ["count 0 keeps none", [v(2, 1), v(1, 2)], 30, 0, [], [2, 1]],
  ["a version a trash item needs survives the count", [v(2, 1), v(1, 2)], 30, 0, [2], [1]],
  ["but not its age", [v(2, 31)], 30, 0, [2], [2]],
  ["age and count together", [v(4, 1), v(3, 2), v(2, 40)], 30, 1, [], [3, 2]],
];

for (const [name, versions, keepDays, keepVersions, needed, expired] of CASES) {
  Deno.test(`expiredVersions(): ${name}`, () => {
    const policy = keepVersions === undefined ? { keepDays } : { keepDays, keepVersions };
    const out = expiredVersions(versions, policy, NOW, { needed: new Set(needed) });
    assert.deepEqual(out.map((x) => x.rev), expired);
  });
}

Deno.test("trashExpired() counts keepDays from the deletion", () => {
  assert.equal(trashExpired(t("f", 1, 29), { keepDays: 30 }, NOW), false);
  assert.equal(trashExpired(t("f", 1, 30), { keepDays: 30 }, NOW), true);
  assert.equal(trashExpired(t("f", 1, 0), { keepDays: 0 }, NOW), true);
});

Deno.test("expireHistory() groups versions by path and lets kept trash items protect their versions", () => {
  const versions = [v(5, 1, "a"), v(4, 2, "a"), v(3, 1, "b"), v(2, 2, "b"), v(1, 3, "c")];
  const trash = [t("a", 5, 1), t("c", 1, 31)];
  const out = expireHistory(versions, trash, { keepDays: 30, keepVersions: 0 }, NOW);
  assert.deepEqual(out.versions.map((x) => `${x.path}@${x.rev}`).sort(), ["a@4", "b@2", "b@3", "c@1"]);
  assert.deepEqual(out.trash.map((x) => x.path), ["c"]);
});
