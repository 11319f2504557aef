// Table tests of which remote file renames replay locally as one rename of their folder.
import assert from "node:assert/strict";
import { folderMoves, MIN_FOLDER_MOVE_FILES, type MoveLocal } from "./folder_moves.ts";
import type { LocalEntry } from "./reconcile.ts";

const file: LocalEntry = { kind: "file", hash: "h", size: 4, mtime: 1 };
const dir: LocalEntry = { kind: "dir", hash: "", size: 0, mtime: 0 };
const move = (from: string, to: string): MoveLocal => ({
  type: "moveLocal",
  from,
  to,
  expect: file,
  remote: { kind: "file", hash: "h", size: 4, mtime: 1, rev: 9, device: "A" },
});
const names = Array.from({ length: MIN_FOLDER_MOVE_FILES + 2 }, (_, i) => `f${i}.jpg`);
const moves = names.map((n) => move(`photos/${n}`, `albums/${n}`));
const snapshot = (...extra: [string, LocalEntry][]) =>
  new Map<string, LocalEntry>([
    ["photos", dir],
    ...names.map((n): [string, LocalEntry] => [`photos/${n}`, file]),
    ...extra,
  ]);

Deno.test("folderMoves: one folder rename only when every file under the folder moves the same way", () => {
  const table: [string, MoveLocal[], Map<string, LocalEntry>, string[]][] = [
    ["every file moves, target absent", moves, snapshot(), ["photos -> albums"]],
    ["every file moves, target an empty folder", moves, snapshot(["albums", dir]), ["photos -> albums"]],
    ["a file made or changed here that no move takes along", moves, snapshot(["photos/new.txt", file]), []],
    ["a subfolder under the folder", moves, snapshot(["photos/old", dir]), []],
    ["one file of the folder is not moved", moves.slice(1), snapshot(), []],
    ["the target holds something", moves, snapshot(["albums", dir], ["albums/x", file]), []],
    ["the target is a file", moves, snapshot(["albums", file]), []],
    [
      "renamed files are no folder rename",
      names.map((n) => move(`photos/${n}`, `albums/x-${n}`)),
      snapshot(),
      [],
    ],
    [
      "files going to two folders",
      names.map((n, i) => move(`photos/${n}`, `${i % 2 ? "a" : "b"}/${n}`)),
      snapshot(),
      [],
    ],
    [
      "too few files",
      moves.slice(0, 2),
      new Map([["photos", dir], ["photos/f0.jpg", file], ["photos/f1.jpg", file]]),
      [],
    ],
    ["into its own subfolder", names.map((n) => move(`photos/${n}`, `photos/sub/${n}`)), snapshot(), []],
    [
      "the source folder is not a folder here",
      moves,
      new Map([...snapshot()].filter(([p]) => p !== "photos")),
      [],
    ],
  ];
  for (const [name, plan, local, expected] of table) {
    const found = folderMoves(plan, local).map((g) => `${g.from} -> ${g.to}`);
    assert.deepEqual(found, expected, name);
  }
  assert.equal(folderMoves(moves, snapshot())[0].moves.length, moves.length);
});
