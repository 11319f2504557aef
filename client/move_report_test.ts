import assert from "node:assert/strict";
import {
  emptiedIn,
  impliedFolders,
  MAX_RENAMED,
  type MoveDone,
  renamedKey,
  reportMoves,
} from "./move_report.ts";

Deno.test("impliedFolders() finds the folders a move of a file that kept its name implies", () => {
  const table: [string, string, { from: string; to: string } | null][] = [
    ["photos/a.jpg", "pictures/a.jpg", { from: "photos", to: "pictures" }],
    ["photos/2020/a.jpg", "pictures/2020/a.jpg", { from: "photos", to: "pictures" }],
    ["docs/a.txt", "archive/docs/a.txt", { from: "docs", to: "archive/docs" }],
    ["a.txt", "docs/a.txt", null],
    ["a.txt", "b.txt", null],
    ["p/a.txt", "p/b.txt", null],
    ["p/a.txt", "q/b.txt", null],
  ];
  for (const [from, to, want] of table) assert.deepEqual(impliedFolders(from, to), want, `${from} -> ${to}`);
});

const move = (from: string, to: string, where: "server" | "here" = "server"): MoveDone => ({
  from,
  to,
  where,
});

Deno.test("reportMoves() makes the moves of an emptied folder one event and leaves out its deletes", () => {
  const moves = [move("p/a", "q/a"), move("p/b", "q/b"), move("p/sub/c", "q/sub/c"), move("x.txt", "y.txt")];
  const events = reportMoves(moves, [{ path: "p/sub", where: "server" }, { path: "p", where: "server" }], {
    emptied: (folder) => folder === "p",
  });
  assert.deepEqual(events, [
    { type: "moved", from: "p", to: "q", where: "server", files: 3 },
    { type: "moved", from: "x.txt", to: "y.txt", where: "server" },
  ]);
});

Deno.test("reportMoves() keeps file moves out of a folder that still holds something, and single moves", () => {
  const moves = [move("p/a", "q/a"), move("p/b", "q/b"), move("r/c", "s/c")];
  const events = reportMoves(moves, [{ path: "old", where: "here" }], { emptied: (f) => f === "r" });
  assert.deepEqual(events.map((e) => e.type === "moved" ? `${e.from}>${e.to}:${e.files ?? "-"}` : e.path), [
    "p/a>q/a:-",
    "p/b>q/b:-",
    "r/c>s/c:-",
    "old",
  ]);
});

Deno.test("reportMoves() keeps moves with a note (into another namespace) and sides apart", () => {
  const moves = [
    { ...move("p/a", "S/p/a"), note: "into another namespace" },
    { ...move("p/b", "S/p/b"), note: "into another namespace" },
    move("k/a", "l/a", "server"),
    move("k/b", "l/b", "here"),
  ];
  const events = reportMoves(moves, [], { emptied: () => true });
  assert.equal(events.length, 4);
  assert.ok(events.every((e) => e.type === "moved" && e.files === undefined));
});

Deno.test("reportMoves() leaves out a renamed folder's delete in a later run, once", () => {
  const renamed = new Set<string>();
  const first = reportMoves([move("p/a", "q/a", "here"), move("p/b", "q/b", "here")], [], {
    emptied: () => true,
    renamed,
  });
  assert.equal(first.length, 1);
  assert.ok(renamed.has(renamedKey("here", "p")));
  const del = (path: string) => ({ path, where: "here" as const });
  assert.deepEqual(reportMoves([], [del("p/sub")], { emptied: () => true, renamed }), []);
  assert.deepEqual(reportMoves([], [del("p")], { emptied: () => true, renamed }), []);
  assert.deepEqual(reportMoves([], [del("p")], { emptied: () => true, renamed }), [
    { type: "deleted", path: "p", kind: "dir", where: "here" },
  ]);
});

Deno.test("emptiedIn() says whether a folder (or, with gone, the folder itself) holds nothing", () => {
  const paths = ["a/b/c.txt", "d", "e/f"];
  const children = emptiedIn(() => paths, { gone: false });
  assert.deepEqual(["a", "a/b", "d", "e", "x"].map(children), [false, false, true, false, true]);
  const gone = emptiedIn(() => paths, { gone: true });
  assert.deepEqual(["a", "d", "e/f", "x"].map(gone), [false, false, false, true]);
});

Deno.test("reportMoves() keeps at most MAX_RENAMED renamed folders, dropping the oldest", () => {
  const renamed = new Set(Array.from({ length: MAX_RENAMED }, (_, i) => renamedKey("here", `old${i}`)));
  reportMoves([move("p/a", "q/a", "here"), move("p/b", "q/b", "here")], [], { emptied: () => true, renamed });
  assert.equal(renamed.size, MAX_RENAMED);
  assert.ok(!renamed.has(renamedKey("here", "old0")));
  assert.ok(renamed.has(renamedKey("here", "p")));
});
