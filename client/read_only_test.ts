// Table tests of the read-only share step: no local change inside a read-only share goes to the server, and
// nothing typed there is lost.
import assert from "node:assert/strict";
import { keepShareRoots, ownEditPath, planReadOnly, type ReadOnlyPlan } from "./read_only.ts";
import type { Action, LocalEntry, RemoteEntry } from "./reconcile.ts";

const file: LocalEntry = { kind: "file", hash: "h", size: 1, mtime: 1 };
const dir: LocalEntry = { kind: "dir", hash: "", size: 0, mtime: 1 };
const remote: RemoteEntry = { kind: "file", hash: "r", size: 1, mtime: 1, rev: 3, device: "d" };

/** Docs/ is a read-only share, Team/ a write share; the own files hold "taken.txt" and its first own copy. */
const ctx = {
  readOnly: (path: string) => path === "Docs" || path.startsWith("Docs/"),
  taken: (path: string) => ["plan (my edit of shared file).txt", "Docs", "Team"].includes(path),
};

Deno.test("ownEditPath() names the own copy after the file, at the top, around names in use", () => {
  const cases: [string, string[], string][] = [
    ["Docs/plan.txt", [], "plan (my edit of shared file).txt"],
    ["Docs/a/b/report.tar.gz", [], "report (my edit of shared file).tar.gz"],
    ["Docs/Makefile", [], "Makefile (my edit of shared file)"],
    ["Docs/plan.txt", ["plan (my edit of shared file).txt"], "plan (my edit of shared file 2).txt"],
    [
      "plan.txt",
      ["plan (my edit of shared file).txt", "plan (my edit of shared file 2).txt"],
      "plan (my edit of shared file 3).txt",
    ],
  ];
  for (const [path, used, expected] of cases) {
    assert.equal(ownEditPath(path, (p) => used.includes(p)), expected, path);
  }
});

Deno.test("planReadOnly() keeps local changes in a read-only share as own files and brings the owner's back", () => {
  const none: Omit<ReadOnlyPlan, "actions"> = { keep: [], restore: [], localOnly: [] };
  const cases: [string, Action, ReadOnlyPlan][] = [
    [
      "an edit becomes an own copy; the shared file comes back",
      { type: "upload", path: "Docs/plan.txt", local: file, baseRev: 3 },
      {
        ...none,
        actions: [],
        keep: [{ from: "Docs/plan.txt", to: "plan (my edit of shared file 2).txt" }],
        restore: ["Docs/plan.txt"],
      },
    ],
    [
      "a new file made there moves out",
      { type: "upload", path: "Docs/sub/new.md", local: file, baseRev: 0 },
      {
        ...none,
        actions: [],
        keep: [{ from: "Docs/sub/new.md", to: "new (my edit of shared file).md" }],
        restore: ["Docs/sub/new.md"],
      },
    ],
    [
      "both changed: the local side moves out, the owner's comes",
      { type: "conflict", path: "Docs/x.txt", keep: "local", copyPath: "c", local: file, remote },
      {
        ...none,
        actions: [],
        keep: [{ from: "Docs/x.txt", to: "x (my edit of shared file).txt" }],
        restore: ["Docs/x.txt"],
      },
    ],
    [
      "a delete brings it back",
      { type: "deleteRemote", path: "Docs/x.txt", kind: "file", baseRev: 3 },
      { ...none, actions: [], restore: ["Docs/x.txt"] },
    ],
    [
      "a folder made there stays local",
      { type: "mkdirRemote", path: "Docs/new", baseRev: 0 },
      { ...none, actions: [], localOnly: ["Docs/new"] },
    ],
    [
      "renamed inside: the new name moves out, the old one comes back",
      { type: "moveRemote", from: "Docs/a.txt", to: "Docs/b.txt", baseRev: 3, local: file },
      {
        ...none,
        actions: [],
        keep: [{ from: "Docs/b.txt", to: "b (my edit of shared file).txt" }],
        restore: ["Docs/a.txt"],
      },
    ],
    [
      "moved out to own files: uploaded as a new own file, the shared one comes back",
      { type: "moveRemote", from: "Docs/a.txt", to: "mine/a.txt", baseRev: 3, local: file },
      {
        ...none,
        actions: [{ type: "upload", path: "mine/a.txt", local: file, baseRev: 0 }],
        restore: ["Docs/a.txt"],
      },
    ],
    [
      "a folder moved out: made among own files",
      { type: "moveRemote", from: "Docs/f", to: "f", baseRev: 3, local: dir },
      { ...none, actions: [{ type: "mkdirRemote", path: "f", baseRev: 0 }], restore: ["Docs/f"] },
    ],
    [
      "an own file moved in goes back",
      { type: "moveRemote", from: "mine/a.txt", to: "Docs/a.txt", baseRev: 3, local: file },
      { ...none, actions: [], keep: [{ from: "Docs/a.txt", to: "mine/a.txt" }] },
    ],
  ];
  for (const [label, action, expected] of cases) {
    assert.deepEqual(planReadOnly([action], ctx), expected, label);
  }
});

Deno.test("planReadOnly() leaves write shares, own files and changes from the server alone", () => {
  const actions: Action[] = [
    { type: "upload", path: "Team/plan.txt", local: file, baseRev: 3 },
    { type: "upload", path: "own.txt", local: file, baseRev: 0 },
    { type: "deleteRemote", path: "Team/x", kind: "file", baseRev: 1 },
    { type: "moveRemote", from: "own.txt", to: "Team/own.txt", baseRev: 1, local: file },
    { type: "download", path: "Docs/plan.txt", remote, expect: null },
    { type: "deleteLocal", path: "Docs/old.txt", expect: file },
    { type: "mkdirLocal", path: "Docs/d", remote: { ...remote, kind: "dir", hash: "" }, expect: null },
    { type: "moveLocal", from: "Docs/a", to: "Docs/b", expect: file, remote },
    { type: "sync", path: "Docs/s", base: null },
  ];
  assert.deepEqual(planReadOnly(actions, ctx), { actions, keep: [], restore: [], localOnly: [] });
});

Deno.test("planReadOnly() gives two edits of one name two own copies", () => {
  const plan = planReadOnly([
    { type: "upload", path: "Docs/a/notes.txt", local: file, baseRev: 1 },
    { type: "upload", path: "Docs/b/notes.txt", local: file, baseRev: 1 },
  ], ctx);
  assert.deepEqual(plan.keep.map((k) => k.to), [
    "notes (my edit of shared file).txt",
    "notes (my edit of shared file 2).txt",
  ]);
});

Deno.test("keepShareRoots() keeps a share gone from the device whole on the server: no delete, moves become copies", () => {
  const del = (path: string, kind: "file" | "dir" = "file"): Action => ({
    type: "deleteRemote",
    path,
    kind,
    baseRev: 1,
  });
  const upload: Action = { type: "upload", path: "Project/new.txt", local: file, baseRev: 0 };
  assert.deepEqual(keepShareRoots([del("Project/a.txt"), del("Project/b"), upload], []), {
    actions: [del("Project/a.txt"), del("Project/b"), upload],
    restore: [],
  }, "deletes inside a share still there are the user's to make");
  assert.deepEqual(
    keepShareRoots([upload], ["Project"]),
    { actions: [upload], restore: [] },
    "nothing to keep",
  );
  assert.deepEqual(
    keepShareRoots([del("Project/a.txt"), del("Project", "dir"), del("Projects/x"), upload], ["Project"]),
    { actions: [del("Projects/x"), upload], restore: ["Project"] },
  );
  assert.deepEqual(
    keepShareRoots([
      { type: "moveRemote", from: "Project", to: "Mine", baseRev: 1, local: dir },
      { type: "moveRemote", from: "Project/a.txt", to: "Mine/a.txt", baseRev: 2, local: file },
      { type: "moveRemote", from: "x.txt", to: "y.txt", baseRev: 2, local: file },
    ], ["Project"]),
    {
      actions: [
        { type: "mkdirRemote", path: "Mine", baseRev: 0 },
        { type: "upload", path: "Mine/a.txt", local: file, baseRev: 0 },
        { type: "moveRemote", from: "x.txt", to: "y.txt", baseRev: 2, local: file },
      ],
      restore: ["Project"],
    },
    "renamed away: copies, and the share comes back",
  );
  assert.deepEqual(keepShareRoots([del("plan.txt")], ["plan.txt"]), { actions: [], restore: ["plan.txt"] });
});
