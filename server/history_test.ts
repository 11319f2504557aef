// Tests for the pure parts of history: what VERSIONS and TRASH show, what RESTORE chooses, a folder's contents.
import assert from "node:assert/strict";
import { RpcError } from "../protocol/rpc.ts";
import type { WireEntry } from "../protocol/messages.ts";
import { chooseRestore, FolderContents, keptVersions, trashList, versionList } from "./history.ts";
import type { EntryRecord, TrashRecord, VersionRecord } from "./metadata_store.ts";

const DAY = 24 * 3600_000;
const NOW = 100 * DAY;
const POLICY = { keepDays: 30 };

const entry = (path: string, rev: number, kind: "file" | "dir" = "file"): EntryRecord => ({
  path,
  kind,
  hash: kind === "file" ? `h${rev}` : "",
  size: 3,
  mtime: 7,
  rev,
  device: "laptop",
  time: NOW - DAY,
});
const version = (path: string, rev: number, ageDays = 1): VersionRecord => ({
  path,
  rev,
  hash: `h${rev}`,
  size: 2,
  mtime: 5,
  device: "desk",
  time: 10 * rev,
  until: NOW - ageDays * DAY,
});
const trashed = (
  path: string,
  rev: number,
  v: number,
  kind: "file" | "dir" = "file",
  ageDays = 1,
): TrashRecord => ({
  path,
  kind,
  rev,
  deletedAt: NOW - ageDays * DAY,
  device: "laptop",
  size: 0,
  version: String(v),
});

/** What chooseRestore returns in short: "file ID", "folder PATH" or "!code". */
function choose(
  input: Partial<Parameters<typeof chooseRestore>[0]> & { versions?: VersionRecord[] },
): string {
  const trash = input.trash ?? [];
  const { kept, expired } = keptVersions(input.versions ?? [], trash, POLICY, NOW);
  try {
    const source = chooseRestore({
      path: "f",
      entry: null,
      kept,
      expired,
      trash,
      policy: POLICY,
      now: NOW,
      ...input,
    });
    return source.kind === "file" ? `file ${source.version.id}` : `folder ${source.item.path}`;
  } catch (error) {
    assert.ok(error instanceof RpcError);
    return `!${error.code}`;
  }
}

const CASES: [string, Parameters<typeof choose>[0], string][] = [
  ["the newest kept earlier version by default", {
    entry: entry("f", 9),
    versions: [version("f", 3), version("f", 6)],
  }, "file 6"],
  [
    "a given version",
    { entry: entry("f", 9), versions: [version("f", 3), version("f", 6)], version: "3" },
    "file 3",
  ],
  ["the current version when asked for", { entry: entry("f", 9), version: "9" }, "file 9"],
  ["a deleted file's last version", { versions: [version("f", 4)], trash: [trashed("f", 5, 4)] }, "file 4"],
  ["a deleted folder", { trash: [trashed("f", 5, 2, "dir")] }, "folder f"],
  ["a deleted folder by its version", { trash: [trashed("f", 5, 2, "dir")], version: "2" }, "folder f"],
  ["a path that was a file, then a folder that was deleted", {
    versions: [version("f", 1)],
    trash: [trashed("f", 2, 1), trashed("f", 6, 4, "dir")],
  }, "folder f"],
  ["an unknown path", {}, "!not_found"],
  ["a deleted folder made again: its old contents", {
    entry: entry("f", 9, "dir"),
    trash: [trashed("f", 5, 2, "dir")],
  }, "folder f"],
  ["an existing folder with no history", { entry: entry("f", 9, "dir") }, "!unknown_version"],
  [
    "a file whose only earlier version is the current one's",
    { entry: entry("f", 9), trash: [] },
    "!unknown_version",
  ],
  ["a file without earlier versions", { entry: entry("f", 9) }, "!unknown_version"],
  [
    "an unknown version",
    { entry: entry("f", 9), versions: [version("f", 3)], version: "4" },
    "!unknown_version",
  ],
  ["an expired version", { entry: entry("f", 9), versions: [version("f", 3, 31)], version: "3" }, "!expired"],
  [
    "a version known only from the journal",
    { entry: entry("f", 9), version: "3", existed: true },
    "!expired",
  ],
  ["every version expired", { versions: [version("f", 3, 31)] }, "!expired"],
  ["an expired deleted folder", { trash: [trashed("f", 5, 2, "dir", 31)] }, "!expired"],
];

for (const [name, input, expected] of CASES) {
  Deno.test(`chooseRestore(): ${name}`, () => assert.equal(choose(input), expected));
}

Deno.test("versionList() puts the current version first, then the kept ones newest first", () => {
  const list = versionList(entry("f", 9), [version("f", 6), version("f", 3)]);
  assert.deepEqual(list.map((v) => [v.id, v.current ?? false, v.device]), [
    ["9", true, "laptop"],
    ["6", false, "desk"],
    ["3", false, "desk"],
  ]);
  assert.deepEqual(list[1], { id: "6", time: 60, size: 2, mtime: 5, hash: "h6", device: "desk" });
  assert.deepEqual(versionList(entry("d", 2, "dir"), []), []);
});

Deno.test("trashList() shows unexpired items of paths that are gone, newest first", () => {
  const items = trashList(
    [trashed("a", 3, 2), trashed("b", 7, 6), trashed("old", 1, 0, "file", 31), trashed("back", 9, 8)],
    POLICY,
    NOW,
    (path) => path === "back",
  );
  assert.deepEqual(items.map((t) => t.path), ["b", "a"]);
  assert.deepEqual(Object.keys(items[0]).sort(), ["deletedAt", "device", "kind", "path", "size", "version"]);
});

Deno.test("FolderContents finds what a folder held: the run of deletions below it, not older ones or moves", () => {
  const j = (rev: number, path: string, deleted = true): WireEntry => ({
    path,
    kind: "file",
    hash: "",
    size: 0,
    mtime: 0,
    rev,
    device: "x",
    ...(deleted ? { deleted } : {}),
  });
  const folder = trashed("p", 20, 2, "dir");
  const trash = new Map([
    [19, trashed("p/sub", 19, 4, "dir")],
    [18, trashed("p/sub/b", 18, 5)],
    [16, trashed("p/a", 16, 12)],
    [10, trashed("p/old", 10, 3)],
  ]);
  const contents = new FolderContents(folder, trash);
  contents.add([j(21, "p/later"), j(19, "p/sub"), j(18, "p/sub/b"), j(17, "elsewhere"), j(16, "p/a")]);
  assert.equal(contents.done, false);
  // rev 15: a move out of the folder (no trash item); rev 12: p/a was written, so p/old (rev 10) was not there.
  contents.add([j(15, "p/moved"), j(14, "q/moved", false), j(12, "p/a", false), j(10, "p/old")]);
  assert.equal(contents.done, true);
  assert.deepEqual(contents.items.map((t) => t.path), ["p/sub", "p/sub/b", "p/a"]);
});

Deno.test("FolderContents stops at the folder's creation", () => {
  const contents = new FolderContents(trashed("p", 9, 5, "dir"), new Map([[3, trashed("p/x", 3, 1)]]));
  contents.add([{
    path: "p/x",
    kind: "file",
    hash: "",
    size: 0,
    mtime: 0,
    rev: 3,
    device: "x",
    deleted: true,
  }]);
  assert.equal(contents.done, true);
  assert.deepEqual(contents.items, []);
});
