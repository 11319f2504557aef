// Tests for the three-way reconcile: one table of cases, then randomized two-device runs against a model server.

import assert from "node:assert/strict";
import {
  type Action,
  actionPaths,
  type BaseEntry,
  type Kind,
  type LocalEntry,
  reconcile,
  type ReconcileOptions,
  type RemoteEntry,
} from "./reconcile.ts";

// ---------------------------------------------------------------------------------------------------------
// Fixtures: one neutral shape, turned into a base, local or remote entry by the map it is put in.

interface Fx {
  kind: Kind;
  hash: string;
  rev: number;
  mtime: number;
  device: string;
}
type Tree = Record<string, Fx>;

/** A file with content `hash` (rev 1, mtime 1000, written by device "B" unless overridden). */
const f = (hash: string, o: Partial<Fx> = {}): Fx => ({
  kind: "file",
  hash,
  rev: 1,
  mtime: 1000,
  device: "B",
  ...o,
});
/** A folder (rev 1 unless overridden). */
const d = (o: Partial<Fx> = {}): Fx => ({ kind: "dir", hash: "", rev: 1, mtime: 0, device: "B", ...o });

const toBase = (x: Fx): BaseEntry => ({ kind: x.kind, hash: x.hash, rev: x.rev });
const toLocal = (x: Fx): LocalEntry => ({
  kind: x.kind,
  hash: x.hash,
  size: x.kind === "file" ? x.hash.length : 0,
  mtime: x.mtime,
});
const toRemote = (x: Fx): RemoteEntry => ({ ...toLocal(x), rev: x.rev, device: x.device });
const mapOf = <T>(tree: Tree, conv: (x: Fx) => T) =>
  new Map(Object.entries(tree).map(([p, x]) => [p, conv(x)]));

// Expected actions.
const sync = (path: string, x: Fx | null): Action => ({ type: "sync", path, base: x && toBase(x) });
const upload = (path: string, x: Fx, baseRev: number): Action => ({
  type: "upload",
  path,
  local: toLocal(x),
  baseRev,
});
const mkdirRemote = (path: string, baseRev: number): Action => ({ type: "mkdirRemote", path, baseRev });
const deleteRemote = (path: string, kind: Kind, baseRev: number): Action => ({
  type: "deleteRemote",
  path,
  kind,
  baseRev,
});
const moveRemote = (from: string, to: string, baseRev: number, x: Fx): Action => ({
  type: "moveRemote",
  from,
  to,
  baseRev,
  local: toLocal(x),
});
const download = (path: string, x: Fx, expect: Fx | null): Action => ({
  type: "download",
  path,
  remote: toRemote(x),
  expect: expect && toLocal(expect),
});
const mkdirLocal = (path: string, x: Fx, expect: Fx | null): Action => ({
  type: "mkdirLocal",
  path,
  remote: toRemote(x),
  expect: expect && toLocal(expect),
});
const deleteLocal = (path: string, expect: Fx): Action => ({
  type: "deleteLocal",
  path,
  expect: toLocal(expect),
});
const moveLocal = (from: string, to: string, expect: Fx, x: Fx): Action => ({
  type: "moveLocal",
  from,
  to,
  expect: toLocal(expect),
  remote: toRemote(x),
});
const conflict = (path: string, keep: "local" | "remote", copyPath: string, l: Fx, r: Fx): Action => ({
  type: "conflict",
  path,
  keep,
  copyPath,
  local: toLocal(l),
  remote: toRemote(r),
});

/** Short copy names for the table: "path~DEVICE", then "path~DEVICE2"... while taken. */
function shortCopy(path: string, device: string, _when: Date, taken: (p: string) => boolean): string {
  let name = `${path}~${device}`;
  for (let n = 2; taken(name); n++) name = `${path}~${device}${n}`;
  return name;
}

const OPTIONS: ReconcileOptions = {
  device: "A",
  copyPath: shortCopy,
};

function plan(base: Tree, local: Tree, remote: Tree, extra: Extra = {}) {
  const { paths, links, ignore, ...options } = extra;
  const ignored = ignore &&
    ((p: string) =>
      ignore.some((pat) =>
        pat.startsWith("*") ? p.endsWith(pat.slice(1)) : p === pat || p.startsWith(pat + "/")
      ));
  return reconcile(
    {
      base: mapOf(base, toBase),
      local: mapOf(local, toLocal),
      remote: mapOf(remote, toRemote),
      paths,
      links: links && new Set(links),
      ignored,
    },
    { ...OPTIONS, ...options },
  );
}

/**
 * Options of a table case: reconcile's options plus the input's `paths` and `links`, and ignore patterns
 * ("*.log" by suffix, else a path and below).
 */
type Extra = Partial<ReconcileOptions> & { paths?: string[]; links?: string[]; ignore?: string[] };

// ---------------------------------------------------------------------------------------------------------
// The table. Each line: description, base, local, remote, expected plan (in order), options.

type Case = [string, Tree, Tree, Tree, Action[], Extra?];

const h1 = f("h1"), h2 = f("h2", { rev: 2 }), h3 = f("h3", { rev: 3 });
const CASES: Case[] = [
  // --- ignored paths: they stop syncing, and are never deleted anywhere
  ["newly ignored, in sync: the base is forgotten, nothing deleted", { "a.log": h1 }, {}, { "a.log": h1 }, [
    sync("a.log", null),
  ], { ignore: ["*.log"] }],
  ["newly ignored, changed on the server: not downloaded", { "a.log": h1 }, {}, { "a.log": h2 }, [
    sync("a.log", null),
  ], { ignore: ["*.log"] }],
  ["ignored, edited locally: not uploaded", { "a.log": h1 }, { "a.log": h2 }, { "a.log": h1 }, [
    sync("a.log", null),
  ], { ignore: ["*.log"] }],
  ["ignored, deleted on the server: not deleted here", { "a.log": h1 }, { "a.log": h1 }, {}, [
    sync("a.log", null),
  ], { ignore: ["*.log"] }],
  ["ignored and never synced: no action on either side", {}, { "b.log": h1 }, { "a.log": h1 }, [], {
    ignore: ["*.log"],
  }],
  [
    "newly ignored folder: it and its files are forgotten without deletes",
    { build: d(), "build/x": h1 },
    {},
    { build: d(), "build/x": h1 },
    [sync("build", null), sync("build/x", null)],
    { ignore: ["build"] },
  ],
  [
    "a folder deleted here that holds an ignored file on the server stays there",
    { x: d(), "x/a.log": h1, "x/b.txt": h1 },
    {},
    { x: d(), "x/a.log": h1, "x/b.txt": h1 },
    [sync("x/a.log", null), deleteRemote("x/b.txt", "file", 1)],
    { ignore: ["*.log"] },
  ],
  [
    "a folder deleted on the server that holds an ignored file here is kept for it",
    { x: d(), "x/a.log": h1, "x/b.txt": h1 },
    { x: d(), "x/a.log": h1, "x/b.txt": h1 },
    {},
    [sync("x/a.log", null), deleteLocal("x/b.txt", h1)],
    { ignore: ["*.log"] },
  ],
  // --- files, base absent
  ["nothing anywhere: no action", {}, {}, {}, []],
  ["absent everywhere but asked for: no action", {}, {}, {}, [], { paths: ["a"] }],
  ["added locally: upload with baseRev 0", {}, { a: h1 }, {}, [upload("a", h1, 0)]],
  ["added remotely: download into nothing", {}, {}, { a: h2 }, [download("a", h2, null)]],
  ["added on both sides with the same content: record base", {}, { a: h1 }, { a: f("h1", { rev: 5 }) }, [
    sync("a", f("h1", { rev: 5 })),
  ]],
  [
    "added on both sides differently (first link): server keeps the name, local goes to a copy",
    {},
    { a: h1 },
    {
      a: h2,
    },
    [conflict("a", "remote", "a~A", h1, h2)],
  ],
  [
    "first link ignores mtimes: a newer local file still yields to the server",
    {},
    {
      a: f("h1", { mtime: 9999 }),
    },
    { a: h2 },
    [conflict("a", "remote", "a~A", f("h1", { mtime: 9999 }), h2)],
  ],
  ["added file locally, folder remotely: folder keeps the name", {}, { a: h1 }, { a: d({ rev: 2 }) }, [
    conflict("a", "remote", "a~A", h1, d({ rev: 2 })),
  ]],
  ["added folder locally, file remotely: folder keeps the name, remote file to a copy", {}, { a: d() }, {
    a: h2,
  }, [conflict("a", "local", "a~B", d(), h2)]],
  ["added folder locally: mkdirRemote", {}, { a: d() }, {}, [mkdirRemote("a", 0)]],
  ["added folder remotely: mkdirLocal", {}, {}, { a: d({ rev: 2 }) }, [mkdirLocal("a", d({ rev: 2 }), null)]],
  ["added folder on both sides: record base", {}, { a: d() }, { a: d({ rev: 4 }) }, [
    sync("a", d({ rev: 4 })),
  ]],

  // --- files, base present
  ["unchanged everywhere: no action", { a: h1 }, { a: h1 }, { a: h1 }, []],
  ["same content with a new rev remotely: record the rev", { a: h1 }, { a: h1 }, { a: f("h1", { rev: 3 }) }, [
    sync("a", f("h1", { rev: 3 })),
  ]],
  ["modified locally: upload over the base rev", { a: h1 }, { a: h2 }, { a: h1 }, [upload("a", h2, 1)]],
  ["modified remotely: download expecting the unchanged local file", { a: h1 }, { a: h1 }, { a: h2 }, [
    download("a", h2, h1),
  ]],
  ["deleted locally: deleteRemote", { a: h1 }, {}, { a: h1 }, [deleteRemote("a", "file", 1)]],
  ["deleted remotely: deleteLocal", { a: h1 }, { a: h1 }, {}, [deleteLocal("a", h1)]],
  ["deleted on both sides: forget the base", { a: h1 }, {}, {}, [sync("a", null)]],
  ["modified the same way on both sides: record base", { a: h1 }, { a: h2 }, { a: h2 }, [sync("a", h2)]],
  ["deleted locally, modified remotely: edit beats delete, download", { a: h1 }, {}, { a: h2 }, [
    download("a", h2, null),
  ]],
  ["modified locally, deleted remotely: edit beats delete, upload with baseRev 0", { a: h1 }, { a: h2 }, {}, [
    upload("a", h2, 0),
  ]],
  [
    "both modified, local newer: the server's version came first and keeps the name",
    { a: h1 },
    { a: f("h2", { mtime: 2000 }) },
    { a: f("h3", { rev: 3, mtime: 1500 }) },
    [conflict("a", "remote", "a~A", f("h2", { mtime: 2000 }), f("h3", { rev: 3, mtime: 1500 }))],
  ],
  ["both modified, remote newer: remote keeps the name", { a: h1 }, { a: f("h2", { mtime: 1500 }) }, {
    a: f("h3", { rev: 3, mtime: 2000 }),
  }, [conflict("a", "remote", "a~A", f("h2", { mtime: 1500 }), f("h3", { rev: 3, mtime: 2000 }))]],
  ["both modified, same mtime: remote keeps the name (remote B, local A)", { a: h1 }, { a: f("h2") }, {
    a: h3,
  }, [conflict("a", "remote", "a~A", f("h2"), h3)]],
  [
    "both modified, same mtime: remote keeps the name whatever the device names (local C, remote B)",
    { a: h1 },
    { a: f("h2") },
    { a: h3 },
    [conflict("a", "remote", "a~C", f("h2"), h3)],
    { device: "C" },
  ],
  ["both modified, same mtime and device name: remote keeps the name", { a: h1 }, { a: f("h2") }, {
    a: f("h3", { rev: 3, device: "A" }),
  }, [conflict("a", "remote", "a~A", f("h2"), f("h3", { rev: 3, device: "A" }))]],
  [
    "file replaced by folder locally: mkdirRemote replaces the remote file",
    { a: h1 },
    { a: d() },
    { a: h1 },
    [
      mkdirRemote("a", 1),
    ],
  ],
  ["file replaced by folder remotely: mkdirLocal replaces the local file", { a: h1 }, { a: h1 }, {
    a: d({ rev: 2 }),
  }, [mkdirLocal("a", d({ rev: 2 }), h1)]],
  ["file replaced by folder locally, edited remotely: folder keeps the name", { a: h1 }, { a: d() }, {
    a: h2,
  }, [
    conflict("a", "local", "a~B", d(), h2),
  ]],
  ["file edited locally, replaced by folder remotely: folder keeps the name", { a: h1 }, { a: h2 }, {
    a: d({ rev: 2 }),
  }, [conflict("a", "remote", "a~A", h2, d({ rev: 2 }))]],
  ["file replaced by folder locally, deleted remotely: mkdirRemote", { a: h1 }, { a: d() }, {}, [
    mkdirRemote("a", 0),
  ]],
  ["file deleted locally, replaced by folder remotely: mkdirLocal", { a: h1 }, {}, { a: d({ rev: 2 }) }, [
    mkdirLocal("a", d({ rev: 2 }), null),
  ]],
  ["file replaced by folder on both sides: record base", { a: h1 }, { a: d() }, { a: d({ rev: 2 }) }, [
    sync("a", d({ rev: 2 })),
  ]],
  ["file replaced by folder locally, with a file inside", { a: h1 }, { a: d(), "a/x": h2 }, { a: h1 }, [
    mkdirRemote("a", 1),
    upload("a/x", h2, 0),
  ]],

  // --- folders, base present
  ["folder unchanged: no action", { p: d() }, { p: d() }, { p: d() }, []],
  ["empty folder deleted locally: deleteRemote", { p: d() }, {}, { p: d() }, [deleteRemote("p", "dir", 1)]],
  ["empty folder deleted remotely: deleteLocal", { p: d() }, { p: d() }, {}, [deleteLocal("p", d())]],
  ["empty folder replaced by file locally: upload replaces it", { p: d() }, { p: h2 }, { p: d() }, [
    upload("p", h2, 1),
  ]],
  ["empty folder replaced by file remotely: download replaces it", { p: d() }, { p: d() }, { p: h2 }, [
    download("p", h2, d()),
  ]],
  [
    "folder replaced by different files on both sides: last write wins",
    { p: d() },
    {
      p: f("h2", { mtime: 5 }),
    },
    { p: h3 },
    [conflict("p", "remote", "p~A", f("h2", { mtime: 5 }), h3)],
  ],
  ["folder replaced by file locally, deleted remotely: upload with baseRev 0", { p: d() }, { p: h2 }, {}, [
    upload("p", h2, 0),
  ]],
  ["folder deleted locally, replaced by file remotely: download", { p: d() }, {}, { p: h2 }, [
    download("p", h2, null),
  ]],

  // --- folders and their contents
  ["folder deleted locally, unchanged remotely: children first", { p: d(), "p/x": h1, "p/q": d() }, {}, {
    p: d(),
    "p/x": h1,
    "p/q": d(),
  }, [deleteRemote("p/q", "dir", 1), deleteRemote("p/x", "file", 1), deleteRemote("p", "dir", 1)]],
  [
    "folder deleted remotely, unchanged locally: children first",
    { p: d(), "p/x": h1 },
    { p: d(), "p/x": h1 },
    {},
    [
      deleteLocal("p/x", h1),
      deleteLocal("p", d()),
    ],
  ],
  ["folder deleted locally, new file inside remotely: folder comes back locally", { p: d(), "p/x": h1 }, {}, {
    p: d(),
    "p/x": h1,
    "p/y": h2,
  }, [mkdirLocal("p", d(), null), download("p/y", h2, null), deleteRemote("p/x", "file", 1)]],
  ["folder deleted locally, file inside edited remotely: edit beats delete", { p: d(), "p/x": h1 }, {}, {
    p: d(),
    "p/x": h2,
  }, [mkdirLocal("p", d(), null), download("p/x", h2, null)]],
  [
    "folder deleted remotely, new file inside locally: folder stays remotely",
    { p: d(), "p/x": h1 },
    {
      p: d(),
      "p/x": h1,
      "p/y": h2,
    },
    {},
    [mkdirRemote("p", 0), upload("p/y", h2, 0), deleteLocal("p/x", h1)],
  ],
  [
    "folder deleted remotely, file inside edited locally: edit beats delete",
    { p: d(), "p/x": h1 },
    {
      p: d(),
      "p/x": h2,
    },
    {},
    [mkdirRemote("p", 0), upload("p/x", h2, 0)],
  ],
  [
    "nested folders deleted locally, new file deep inside remotely: every level comes back",
    {
      p: d(),
      "p/q": d(),
      "p/q/x": h1,
      "p/y": h1,
    },
    {},
    { p: d(), "p/q": d(), "p/q/x": h1, "p/q/z": h2, "p/y": h1 },
    [
      mkdirLocal("p", d(), null),
      mkdirLocal("p/q", d(), null),
      download("p/q/z", h2, null),
      deleteRemote("p/q/x", "file", 1),
      deleteRemote("p/y", "file", 1),
    ],
  ],
  [
    "nested folders deleted remotely, new empty folder deep inside locally: every level stays",
    {
      p: d(),
      "p/q": d(),
    },
    { p: d(), "p/q": d(), "p/q/r": d() },
    {},
    [
      mkdirRemote("p", 0),
      mkdirRemote("p/q", 0),
      mkdirRemote("p/q/r", 0),
    ],
  ],
  [
    "nested folders created locally: parents first, then content",
    {},
    {
      a: d(),
      "a/b/c": d(),
      "a/b": d(),
      "a/b/f": h1,
      z: d(),
    },
    {},
    [
      mkdirRemote("a", 0),
      mkdirRemote("z", 0),
      mkdirRemote("a/b", 0),
      mkdirRemote("a/b/c", 0),
      upload(
        "a/b/f",
        h1,
        0,
      ),
    ],
  ],
  ["nested folders created remotely: parents first, then content", {}, {}, {
    "a/b": d(),
    a: d(),
    "a/b/f": h2,
  }, [mkdirLocal("a", d(), null), mkdirLocal("a/b", d(), null), download("a/b/f", h2, null)]],
  [
    "folder replaced by file remotely, unchanged content locally: children deleted, then the file",
    {
      p: d(),
      "p/x": h1,
    },
    { p: d(), "p/x": h1 },
    { p: h2 },
    [deleteLocal("p/x", h1), download("p", h2, d())],
  ],
  [
    "folder replaced by file locally, unchanged content remotely: children deleted, then the file",
    {
      p: d(),
      "p/x": h1,
    },
    { p: h2 },
    { p: d(), "p/x": h1 },
    [deleteRemote("p/x", "file", 1), upload("p", h2, 1)],
  ],
  [
    "folder replaced by file remotely, new content locally: folder keeps the name",
    { p: d(), "p/x": h1 },
    {
      p: d(),
      "p/x": h1,
      "p/n": d(),
      "p/n/y": h3,
    },
    { p: h2 },
    [
      conflict("p", "local", "p~B", d(), h2),
      mkdirRemote("p/n", 0),
      upload("p/n/y", h3, 0),
      deleteLocal("p/x", h1),
    ],
  ],
  [
    "folder replaced by file locally, new content remotely: folder keeps the name",
    { p: d(), "p/x": h1 },
    {
      p: h2,
    },
    { p: d(), "p/x": h1, "p/n": d({ rev: 3 }), "p/n/y": h3 },
    [
      conflict("p", "remote", "p~A", h2, d()),
      mkdirLocal("p/n", d({ rev: 3 }), null),
      download("p/n/y", h3, null),
      deleteRemote("p/x", "file", 1),
    ],
  ],

  // --- moves
  ["renamed locally: moveRemote, no content sent", { x: h1 }, { y: h1 }, { x: f("h1", { rev: 4 }) }, [
    moveRemote("x", "y", 4, h1),
  ]],
  ["renamed remotely: moveLocal, no content fetched", { x: h1 }, { x: h1 }, { y: f("h1", { rev: 4 }) }, [
    moveLocal("x", "y", h1, f("h1", { rev: 4 })),
  ]],
  [
    "folder renamed locally: new folder, files moved, old folder deleted",
    {
      p: d(),
      "p/x": h1,
      "p/y": h2,
    },
    { q: d(), "q/x": h1, "q/y": h2 },
    { p: d(), "p/x": h1, "p/y": h2 },
    [
      mkdirRemote("q", 0),
      moveRemote("p/x", "q/x", 1, h1),
      moveRemote("p/y", "q/y", 2, h2),
      deleteRemote("p", "dir", 1),
    ],
  ],
  [
    "folder renamed remotely: new folder, files moved, old folder deleted",
    {
      p: d(),
      "p/x": h1,
    },
    { p: d(), "p/x": h1 },
    { q: d({ rev: 5 }), "q/x": f("h1", { rev: 6 }) },
    [
      mkdirLocal("q", d({ rev: 5 }), null),
      moveLocal("p/x", "q/x", h1, f("h1", { rev: 6 })),
      deleteLocal("p", d()),
    ],
  ],
  [
    "several files with the same content: same base name pairs first",
    {
      "p/a": f("h"),
      "p/b": f("h"),
    },
    { "q/b": f("h"), "r/a": f("h") },
    { "p/a": f("h"), "p/b": f("h") },
    [
      moveRemote("p/a", "r/a", 1, f("h")),
      moveRemote("p/b", "q/b", 1, f("h")),
    ],
  ],
  [
    "several files with the same content and new names: paired in path order",
    { a: f("h"), b: f("h") },
    {
      c: f("h"),
      d: f("h"),
    },
    { a: f("h"), b: f("h") },
    [moveRemote("a", "c", 1, f("h")), moveRemote("b", "d", 1, f("h"))],
  ],
  [
    "more deletions than new files of that content: the rest are plain deletes",
    { a: f("h"), b: f("h") },
    {
      c: f("h"),
    },
    { a: f("h"), b: f("h") },
    [moveRemote("a", "c", 1, f("h")), deleteRemote("b", "file", 1)],
  ],
  ["more new remote files than deletions: the rest are downloads", { a: f("h") }, { a: f("h") }, {
    b: f("h", { rev: 2 }),
    c: f("h", { rev: 3 }),
  }, [moveLocal("a", "b", f("h"), f("h", { rev: 2 })), download("c", f("h", { rev: 3 }), null)]],
  ["move combined with edits elsewhere", { x: h1, z: h2, w: h3 }, { y: h1, z: f("h4"), w: h3 }, {
    x: h1,
    z: h2,
    w: f("h5", { rev: 7 }),
  }, [moveRemote("x", "y", 1, h1), download("w", f("h5", { rev: 7 }), h3), upload("z", f("h4"), 2)]],
  ["renamed and edited locally: not a move", { x: h1 }, { y: h2 }, { x: h1 }, [
    upload("y", h2, 0),
    deleteRemote("x", "file", 1),
  ]],
  ["renamed locally, source edited remotely: edit beats delete, no move", { x: h1 }, { y: h1 }, { x: h2 }, [
    download("x", h2, null),
    upload("y", h1, 0),
  ]],
  // Soak seed 7: both devices renamed one file, to two names. The server took the other rename first; this
  // device's rename is no longer a move (its source is gone there), so its name is uploaded as a new file and
  // the other name is downloaded: the user ends up with both names, same content, on every device.
  ["renamed locally and remotely to two names: both names kept", { x: h1 }, { y: h1 }, {
    z: f("h1", { rev: 4 }),
  }, [sync("x", null), upload("y", h1, 0), download("z", f("h1", { rev: 4 }), null)]],
  ["renamed locally onto a name the server also has: not a move", { x: h1 }, { y: h1 }, { x: h1, y: h2 }, [
    conflict("y", "remote", "y~A", h1, h2),
    deleteRemote("x", "file", 1),
  ]],

  // --- restriction to some paths
  ["paths: only the listed paths are decided", { x: h1, y: h1 }, { x: h2, y: h3 }, { x: h1, y: h1 }, [
    upload("x", h2, 1),
  ], { paths: ["x"] }],
  [
    "paths: parent folders in the source map are created too",
    {},
    { a: d(), "a/b": d(), "a/b/c": h1, z: h2 },
    {},
    [
      mkdirRemote("a", 0),
      mkdirRemote("a/b", 0),
      upload("a/b/c", h1, 0),
    ],
    { paths: ["a/b/c"] },
  ],
  ["paths: remote parent folders are created locally too", {}, {}, { a: d(), "a/c": h2, "a/d": h3 }, [
    mkdirLocal("a", d(), null),
    download("a/c", h2, null),
  ], { paths: ["a/c"] }],
  [
    "paths: a folder with undecided content is not deleted",
    { p: d(), "p/x": h1 },
    {},
    {
      p: d(),
      "p/x": h1,
    },
    [],
    { paths: ["p"] },
  ],
  [
    "paths: a folder with all its content listed is deleted",
    { p: d(), "p/x": h1 },
    {},
    { p: d(), "p/x": h1 },
    [
      deleteRemote("p/x", "file", 1),
      deleteRemote("p", "dir", 1),
    ],
    { paths: ["p", "p/x"] },
  ],
  // What the events of the other device's rename touch (its source and target) leaves this device's own target
  // undecided: the client must look at it again after its rename was refused.
  ["paths: two renames, only the remote one listed", { x: h1 }, { y: h1 }, { z: f("h1", { rev: 4 }) }, [
    sync("x", null),
    download("z", f("h1", { rev: 4 }), null),
  ], { paths: ["x", "z"] }],
  ["paths: moves pair only listed paths", { x: h1 }, { y: h1 }, { x: h1 }, [upload("y", h1, 0)], {
    paths: ["y"],
  }],

  // --- symbolic links: what is at or below a link is unknown here
  [
    "links: a synced folder replaced by a link is forgotten, not deleted anywhere",
    { docs: d(), "docs/a": h1, "docs/b": h2, top: h3 },
    { top: h3 },
    { docs: d(), "docs/a": h1, "docs/b": h2, top: h3 },
    [sync("docs", null), sync("docs/a", null), sync("docs/b", null)],
    { links: ["docs"] },
  ],
  [
    "links: remote changes below a link wait (no download, no folder, no delete)",
    {},
    {},
    { docs: d(), "docs/a": h1, "docs/sub": d(), "docs/sub/c": h2 },
    [],
    { links: ["docs"] },
  ],
  [
    "links: a link where the server has a file is left alone on both sides",
    { a: h1 },
    {},
    { a: h2 },
    [sync("a", null)],
    { links: ["a"] },
  ],
  [
    "links: a link deeper down hides only its own subtree",
    { x: d(), "x/docs": d(), "x/docs/a": h1, "x/keep": h1 },
    { x: d(), "x/keep": f("h5") },
    { x: d(), "x/docs": d(), "x/docs/a": h2, "x/keep": h1, "x/new": h3 },
    [sync("x/docs", null), sync("x/docs/a", null), upload("x/keep", f("h5"), 1), download("x/new", h3, null)],
    { links: ["x/docs"] },
  ],
  [
    "links: a folder holding a link is not removed locally when the server deletes it",
    { x: d(), "x/docs": d(), "x/a": h1 },
    { x: d(), "x/a": h1 },
    {},
    [sync("x/docs", null), deleteLocal("x/a", h1)],
    { links: ["x/docs"] },
  ],
  [
    "links: a folder holding a link is not replaced by the server's file",
    { x: d() },
    { x: d() },
    { x: f("h2", { rev: 2 }) },
    [],
    { links: ["x/l"] },
  ],
  [
    "links: with paths given, only listed base entries below the link are forgotten",
    { docs: d(), "docs/a": h1, "docs/b": h2 },
    {},
    { docs: d(), "docs/a": h1, "docs/b": h2 },
    [sync("docs/a", null)],
    { links: ["docs"], paths: ["docs/a"] },
  ],

  // --- copy names
  ["copy names avoid paths that exist", { a: h1, "a~A": h3 }, { a: f("h2", { mtime: 1 }), "a~A": h3 }, {
    a: f("h4", { rev: 4 }),
    "a~A": h3,
  }, [conflict("a", "remote", "a~A2", f("h2", { mtime: 1 }), f("h4", { rev: 4 }))]],
  ["copy names avoid names chosen earlier in the same plan", {}, { x: h1, y: h1 }, { x: h2, y: h2 }, [
    conflict("x", "remote", "copy", h1, h2),
    conflict("y", "remote", "copy 2", h1, h2),
  ], {
    copyPath: (_p, _d, _w, taken) => {
      let name = "copy";
      for (let n = 2; taken(name); n++) name = `copy ${n}`;
      return name;
    },
  }],
  [
    "plan groups in order: sync, mkdir, move, conflict, transfer, delete",
    { m: f("hm"), c: h1, g: h1, k: h1 },
    { n: f("hm"), c: f("h2", { mtime: 1 }), dir: d(), g: f("h5"), s: h3 },
    { m: f("hm"), c: h3, g: h1, k: h1, s: h3 },
    [
      sync("s", h3),
      mkdirRemote("dir", 0),
      moveRemote("m", "n", 1, f("hm")),
      conflict("c", "remote", "c~A", f("h2", { mtime: 1 }), h3),
      upload("g", f("h5"), 1),
      deleteRemote("k", "file", 1),
    ],
  ],
];

for (const [name, base, local, remote, expected, options] of CASES) {
  Deno.test(`reconcile(): ${name}`, () => {
    const actions = plan(base, local, remote, options);
    assert.deepEqual(actions, expected);
    assertDistinctTargets(actions);
  });
}

Deno.test("reconcile() names conflict copies with conflictCopyPath and the losing version's mtime", () => {
  const mtime = Date.UTC(2026, 10, 24, 4, 15, 0, 250);
  const actions = plan({ "docs/r.txt": h1 }, { "docs/r.txt": f("h2", { mtime }) }, { "docs/r.txt": h3 }, {
    copyPath: undefined,
  });
  assert.deepEqual(actions, [
    conflict(
      "docs/r.txt",
      "remote",
      "docs/r (conflicted copy from A 2026-11-24 041500).txt",
      f("h2", { mtime }),
      h3,
    ),
  ]);
  // A folder keeps the name over a file: the server's file is the copy, named after its device and mtime.
  const remoteMtime = Date.UTC(2025, 0, 31, 23, 59, 58);
  const typed = plan(
    {},
    { "r.tar.gz": d() },
    { "r.tar.gz": f("h3", { mtime: remoteMtime, device: "desk" }) },
    {
      copyPath: undefined,
    },
  );
  assert.equal(
    (typed[0] as { copyPath: string }).copyPath,
    "r (conflicted copy from desk 2025-01-31 235958).tar.gz",
  );
  // An mtime no date can hold names the copy at the epoch rather than failing the plan.
  const odd = plan({ a: h1 }, { a: f("h2", { mtime: 1e20 }) }, { a: h3 }, { copyPath: undefined });
  assert.equal((odd[0] as { copyPath: string }).copyPath, "a (conflicted copy from A 1970-01-01 000000)");
});

Deno.test("reconcile() rejects a copy name that is taken or in another folder", () => {
  assert.throws(() => plan({}, { "d/a": h1 }, { "d/a": h2 }, { copyPath: () => "d/a" }), RangeError);
  assert.throws(() => plan({}, { "d/a": h1 }, { "d/a": h2 }, { copyPath: () => "e/a" }), RangeError);
});

Deno.test("reconcile() returns the same plan whatever the order of the maps", () => {
  const base: Tree = { p: d(), "p/x": h1, "p/y": h2, k: h1 };
  const local: Tree = { q: d(), "q/x": h1, "q/y": h2, k: h3, n: d(), "n/m": f("h9") };
  const remote: Tree = { p: d(), "p/x": h1, "p/y": h2, k: f("h4", { rev: 9 }), r: d(), "r/z": h3 };
  const reversed = (t: Tree) => Object.fromEntries(Object.entries(t).reverse());
  assert.deepEqual(plan(base, local, remote), plan(reversed(base), reversed(local), reversed(remote)));
});

function assertDistinctTargets(actions: Action[]): void {
  const seen = new Set<string>();
  for (const action of actions) {
    const targets = action.type === "moveLocal" || action.type === "moveRemote"
      ? [action.from, action.to]
      : action.type === "conflict"
      ? [action.path, action.copyPath]
      : [action.path];
    for (const target of targets) {
      assert.ok(!seen.has(target), `two actions write ${target}: ${JSON.stringify(actions)}`);
      seen.add(target);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Randomized runs: a model server with compare-and-set commits and two devices that edit and sync.

/** mulberry32: a small seeded PRNG. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ancestorsOf = (path: string): string[] => {
  const out: string[] = [];
  for (let i = path.indexOf("/"); i !== -1; i = path.indexOf("/", i + 1)) out.push(path.slice(0, i));
  return out;
};
const under = (path: string, folder: string) => path.startsWith(folder + "/");

/** The server: live entries only, one rev counter, every write checked against the caller's baseRev. */
class ModelServer {
  live = new Map<string, RemoteEntry>();
  #rev = 0;

  #hasChildren(path: string): boolean {
    for (const p of this.live.keys()) if (under(p, path)) return true;
    return false;
  }

  /** Ancestors may not be files; missing ones are created as folders. */
  #makeParents(path: string, device: string): boolean {
    const parents = ancestorsOf(path);
    if (parents.some((p) => this.live.get(p)?.kind === "file")) return false;
    for (const p of parents) {
      if (!this.live.has(p)) {
        this.live.set(p, { kind: "dir", hash: "", size: 0, mtime: 0, rev: ++this.#rev, device });
      }
    }
    return true;
  }

  /** Writes a file or folder over whatever has rev `baseRev` (0: nothing); a folder replaced must be empty. */
  put(path: string, entry: LocalEntry, baseRev: number, device: string): number | null {
    if ((this.live.get(path)?.rev ?? 0) !== baseRev) return null;
    if (entry.kind === "file" && this.#hasChildren(path)) return null;
    if (!this.#makeParents(path, device)) return null;
    const rev = ++this.#rev;
    this.live.set(path, { ...entry, rev, device });
    return rev;
  }

  remove(path: string, baseRev: number): boolean {
    const cur = this.live.get(path);
    if (cur === undefined || cur.rev !== baseRev || this.#hasChildren(path)) return false;
    this.live.delete(path);
    return true;
  }

  move(from: string, to: string, baseRev: number, device: string): number | null {
    const cur = this.live.get(from);
    if (cur === undefined || cur.kind !== "file" || cur.rev !== baseRev || this.live.has(to)) return null;
    if (!this.#makeParents(to, device)) return null;
    this.live.delete(from);
    const rev = ++this.#rev;
    this.live.set(to, { ...cur, rev, device });
    return rev;
  }
}

interface Device {
  name: string;
  local: Map<string, LocalEntry>;
  base: Map<string, BaseEntry>;
  /** The rest of the plan being applied, and the plan's time. */
  pending: Action[];
}

const sameLocal = (a: LocalEntry | undefined | null, b: LocalEntry | null): boolean =>
  (a ?? null) === null || b === null
    ? (a ?? null) === b
    : a!.kind === b.kind && a!.hash === b.hash && a!.mtime === b.mtime;

/** Local file system rules of the model: no file above a path, folders are removed only when empty. */
function localParentsOk(dev: Device, path: string): boolean {
  return !ancestorsOf(path).some((p) => dev.local.get(p)?.kind === "file");
}
function localMakeParents(dev: Device, path: string): void {
  for (const p of ancestorsOf(path)) {
    if (!dev.local.has(p)) dev.local.set(p, { kind: "dir", hash: "", size: 0, mtime: 0 });
  }
}
function localHasChildren(dev: Device, path: string): boolean {
  for (const p of dev.local.keys()) if (under(p, path)) return true;
  return false;
}
/** Replaces `path` locally if it holds `expect` (a folder only when empty); false when the check fails. */
function localWrite(dev: Device, path: string, expect: LocalEntry | null, entry: LocalEntry): boolean {
  const cur = dev.local.get(path);
  if (!sameLocal(cur, expect) || !localParentsOk(dev, path)) return false;
  if (cur?.kind === "dir" && localHasChildren(dev, path)) return false;
  localMakeParents(dev, path);
  dev.local.set(path, entry);
  return true;
}
const baseOf = (r: RemoteEntry, rev = r.rev): BaseEntry => ({
  kind: r.kind,
  hash: r.kind === "dir" ? "" : r.hash,
  rev,
});
const localOf = (r: RemoteEntry): LocalEntry => ({
  kind: r.kind,
  hash: r.hash,
  size: r.size,
  mtime: r.mtime,
});

/** Runs one action the way the real executor would: check, write, record the base. False when a check fails. */
function apply(dev: Device, server: ModelServer, a: Action): boolean {
  switch (a.type) {
    case "sync":
      if (a.base === null) dev.base.delete(a.path);
      else dev.base.set(a.path, a.base);
      return true;
    case "upload": {
      if (!sameLocal(dev.local.get(a.path), a.local)) return false;
      const rev = server.put(a.path, a.local, a.baseRev, dev.name);
      if (rev === null) return false;
      dev.base.set(a.path, { kind: "file", hash: a.local.hash, rev });
      return true;
    }
    case "mkdirRemote": {
      if (dev.local.get(a.path)?.kind !== "dir") return false;
      const rev = server.put(a.path, { kind: "dir", hash: "", size: 0, mtime: 0 }, a.baseRev, dev.name);
      if (rev === null) return false;
      dev.base.set(a.path, { kind: "dir", hash: "", rev });
      return true;
    }
    case "deleteRemote":
      if (dev.local.has(a.path) || !server.remove(a.path, a.baseRev)) return false;
      dev.base.delete(a.path);
      return true;
    case "moveRemote": {
      if (dev.local.has(a.from) || !sameLocal(dev.local.get(a.to), a.local)) return false;
      const rev = server.move(a.from, a.to, a.baseRev, dev.name);
      if (rev === null) return false;
      dev.base.delete(a.from);
      dev.base.set(a.to, { kind: "file", hash: a.local.hash, rev });
      return true;
    }
    case "download":
      if (!localWrite(dev, a.path, a.expect, localOf(a.remote))) return false;
      dev.base.set(a.path, baseOf(a.remote));
      return true;
    case "mkdirLocal":
      if (dev.local.get(a.path)?.kind !== "dir" && !localWrite(dev, a.path, a.expect, localOf(a.remote))) {
        return false;
      }
      dev.base.set(a.path, baseOf(a.remote));
      return true;
    case "deleteLocal":
      if (!sameLocal(dev.local.get(a.path), a.expect) || localHasChildren(dev, a.path)) return false;
      dev.local.delete(a.path);
      dev.base.delete(a.path);
      return true;
    case "moveLocal":
      if (!sameLocal(dev.local.get(a.from), a.expect)) return false;
      if (!localWrite(dev, a.to, null, a.expect)) return false;
      dev.local.delete(a.from);
      dev.base.delete(a.from);
      dev.base.set(a.to, baseOf(a.remote));
      return true;
    case "conflict":
      return applyConflict(dev, server, a);
  }
}

/** The loser (always a file) goes to copyPath on both sides, the winner stays at path. Steps may stop midway. */
function applyConflict(dev: Device, server: ModelServer, a: Extract<Action, { type: "conflict" }>): boolean {
  if (!sameLocal(dev.local.get(a.path), a.local) || dev.local.has(a.copyPath)) return false;
  if (a.keep === "remote") {
    // Local file to the copy name, then the remote version at the path, then the copy up to the server.
    dev.local.set(a.copyPath, a.local);
    dev.local.delete(a.path);
    dev.local.set(a.path, localOf(a.remote));
    dev.base.set(a.path, baseOf(a.remote));
    const rev = server.put(a.copyPath, a.local, 0, dev.name);
    if (rev === null) return false;
    dev.base.set(a.copyPath, { kind: "file", hash: a.local.hash, rev });
    return true;
  }
  // Remote file to the copy name on both sides, then the local version up to the path.
  dev.local.set(a.copyPath, localOf(a.remote));
  const moved = server.move(a.path, a.copyPath, a.remote.rev, a.remote.device);
  if (moved === null) return false;
  dev.base.set(a.copyPath, baseOf(a.remote, moved));
  dev.base.delete(a.path);
  const rev = server.put(a.path, a.local, 0, dev.name);
  if (rev === null) return false;
  dev.base.set(a.path, { kind: a.local.kind, hash: a.local.hash, rev });
  return true;
}

/**
 * File contents a user wrote and nobody has knowingly deleted or overwritten since. A content is retired as
 * soon as a user removes any copy of it they can see (a device's file holding it), and copies and moves never
 * add one: two copies of one content may merge into one path, so only this conservative rule has no false
 * alarms. Contents are fresh on every write, so a retired content is never wanted again.
 */
class Precious {
  #wanted = new Set<string>();
  #retired = new Set<string>();
  add(hash: string): void {
    if (!this.#retired.has(hash)) this.#wanted.add(hash);
  }
  forget(hash: string): void {
    this.#wanted.delete(hash);
    this.#retired.add(hash);
  }
  wanted(): string[] {
    return [...this.#wanted];
  }
}

const POOL = ["a", "b", "a/x", "a/y", "a/s", "a/s/z", "b/x", "b/a/x", "c/x", "x", "y.txt"];

/** One random user action on a device's folder. */
function userStep(dev: Device, rnd: () => number, precious: Precious, clock: () => number): void {
  const existing = [...dev.local.keys()];
  const pick = (list: string[]) => list[Math.floor(rnd() * list.length)];
  const path = rnd() < 0.6 || existing.length === 0 ? pick(POOL) : pick(existing);
  const removeTree = (root: string) => {
    for (const [p, e] of [...dev.local]) {
      if (p === root || under(p, root)) {
        if (e.kind === "file") precious.forget(e.hash);
        dev.local.delete(p);
      }
    }
  };
  const r = rnd();
  if (!localParentsOk(dev, path)) return;
  if (r < 0.45) {
    // Write a file (new content), replacing a folder sometimes.
    const cur = dev.local.get(path);
    if (cur?.kind === "dir" && rnd() < 0.7) return;
    removeTree(path);
    localMakeParents(dev, path);
    const hash = `c${clock()}`;
    precious.add(hash);
    dev.local.set(path, { kind: "file", hash, size: hash.length, mtime: Math.floor(clock() / 4) });
  } else if (r < 0.65) {
    removeTree(path);
  } else if (r < 0.75) {
    if (dev.local.get(path)?.kind === "dir") return;
    removeTree(path);
    localMakeParents(dev, path);
    dev.local.set(path, { kind: "dir", hash: "", size: 0, mtime: 0 });
  } else {
    // Move or copy a file or a folder to a free path (no content changes).
    const target = pick(POOL.concat(existing.map((p) => p + "2")));
    const cur = dev.local.get(path);
    if (cur === undefined || dev.local.has(target) || target === path || under(target, path)) return;
    if (!localParentsOk(dev, target)) return;
    const copy = r < 0.82;
    localMakeParents(dev, target);
    for (const [p, e] of [...dev.local]) {
      if (p !== path && !under(p, path)) continue;
      dev.local.set(target + p.slice(path.length), e);
      if (!copy) dev.local.delete(p);
    }
  }
}

interface RunStats {
  actions: number;
  rejected: number;
  conflicts: number;
  moves: number;
}

function runOnce(seed: number, stats: RunStats): void {
  const rnd = prng(seed);
  let tick = 0;
  const clock = () => ++tick;
  const server = new ModelServer();
  const precious = new Precious();
  const devices: Device[] = ["A", "B"].map((name) => ({
    name,
    local: new Map(),
    base: new Map(),
    pending: [],
  }));
  const plan = (dev: Device, partial = false): Action[] => {
    // A partial plan decides one top-level name and everything under it, as a watcher-driven round would.
    let paths: string[] | undefined;
    if (partial) {
      const all = [...new Set([...dev.base.keys(), ...dev.local.keys(), ...server.live.keys()])];
      const root = all.length === 0 ? "a" : all[Math.floor(rnd() * all.length)].split("/")[0];
      paths = all.filter((p) => p === root || under(p, root));
    }
    const actions = reconcile(
      { base: dev.base, local: dev.local, remote: server.live, paths },
      { device: dev.name },
    );
    assertDistinctTargets(actions);
    for (const a of actions) {
      if (a.type === "conflict") {
        assert.ok(
          !dev.local.has(a.copyPath) && !server.live.has(a.copyPath),
          `copy name taken: ${a.copyPath}`,
        );
        stats.conflicts++;
      }
      if (a.type === "moveLocal" || a.type === "moveRemote") stats.moves++;
    }
    return actions;
  };
  const step = (dev: Device): boolean => {
    const action = dev.pending.shift()!;
    stats.actions++;
    const ok = apply(dev, server, action);
    if (!ok) stats.rejected++;
    return ok;
  };

  // Random phase: user edits interleaved with plans applied one action at a time (so plans go stale).
  const steps = 20 + Math.floor(rnd() * 40);
  for (let i = 0; i < steps; i++) {
    const dev = devices[rnd() < 0.5 ? 0 : 1];
    if (rnd() < 0.4) userStep(dev, rnd, precious, clock);
    else if (dev.pending.length === 0) dev.pending = plan(dev, rnd() < 0.3);
    else step(dev);
  }

  // Quiet phase: finish pending plans, then whole rounds with nobody editing until nothing is left to do.
  for (const dev of devices) while (dev.pending.length > 0) step(dev);
  let quiet = false;
  for (let round = 0; round < 12 && !quiet; round++) {
    quiet = true;
    for (const dev of devices) {
      dev.pending = plan(dev);
      if (dev.pending.length > 0) quiet = false;
      while (dev.pending.length > 0) {
        const action = dev.pending[0];
        assert.ok(step(dev), `seed ${seed}: fresh plan step rejected: ${JSON.stringify(action)}`);
      }
    }
  }
  const describe = () =>
    `seed ${seed}\nserver ${JSON.stringify([...server.live])}\n` +
    devices.map((d) => `${d.name} local ${JSON.stringify([...d.local])}`).join("\n");
  assert.ok(quiet, `seed ${seed}: no convergence after 12 rounds\n${describe()}`);

  // (a) Convergence: each local tree equals the server's live tree, and each base records it.
  const shape = (m: ReadonlyMap<string, { kind: Kind; hash: string }>) =>
    [...m].map(([p, e]) => `${p}:${e.kind}:${e.kind === "dir" ? "" : e.hash}`).sort();
  for (const dev of devices) {
    assert.deepEqual(
      shape(dev.local),
      shape(server.live),
      `seed ${seed}: ${dev.name} differs\n${describe()}`,
    );
    assert.deepEqual(shape(dev.base), shape(server.live), `seed ${seed}: ${dev.name} base differs`);
  }
  // (b) No data loss: every content a user still wants exists somewhere.
  const held = new Set([...server.live.values()].map((e) => e.hash));
  for (const hash of precious.wanted()) {
    assert.ok(held.has(hash), `seed ${seed}: content ${hash} was lost\n${describe()}`);
  }
}

Deno.test("reconcile() converges two devices without losing data over random edits and stale plans", () => {
  const stats: RunStats = { actions: 0, rejected: 0, conflicts: 0, moves: 0 };
  for (let seed = 1; seed <= 400; seed++) runOnce(seed, stats);
  // The runs must actually exercise the interesting paths.
  assert.ok(stats.conflicts > 50, `only ${stats.conflicts} conflicts`);
  assert.ok(stats.moves > 20, `only ${stats.moves} moves`);
  assert.ok(stats.rejected > 20, `only ${stats.rejected} rejected steps`);
});

// ---------------------------------------------------------------------------------------------------------
// Randomized runs as the client drives reconcile: each round decides only the paths that changed (the watcher's
// and the journal's, plus the folders' contents), and a plan that did not go as planned hands all its paths back
// for the next round. Once no device has anything left to look at, a reconcile of the whole tree must find
// nothing to do: no path fell out of the dirty sets on the way (soak seed 7: a refused rename's target did).

/** Paths whose entry differs between two snapshots of one side (present in one only, or changed). */
function changedPaths(before: ReadonlyMap<string, unknown>, after: ReadonlyMap<string, unknown>): string[] {
  const out: string[] = [];
  for (const path of new Set([...before.keys(), ...after.keys()])) {
    if (JSON.stringify(before.get(path)) !== JSON.stringify(after.get(path))) out.push(path);
  }
  return out;
}

interface WatchedDevice extends Device {
  dirty: Set<string>;
  /** The plan being applied, and whether one of its steps was rejected. */
  planned: Action[];
  failed: boolean;
}

function runWatched(seed: number, stats: RunStats): void {
  const rnd = prng(seed);
  let tick = 0;
  const clock = () => ++tick;
  const server = new ModelServer();
  const precious = new Precious();
  const devices: WatchedDevice[] = ["A", "B", "C"].map((name) => ({
    name,
    local: new Map(),
    base: new Map(),
    pending: [],
    dirty: new Set(),
    planned: [],
    failed: false,
  }));
  /** The dirty paths and, below those that are (or were) folders, every known path: the client's #expand. */
  const expand = (dev: WatchedDevice): string[] => {
    const paths = new Set(dev.dirty);
    const roots = [...dev.dirty].filter((p) =>
      dev.local.get(p)?.kind === "dir" || dev.base.get(p)?.kind === "dir" ||
      server.live.get(p)?.kind === "dir" || !dev.local.has(p)
    );
    for (const map of [dev.base, server.live, dev.local] as ReadonlyMap<string, unknown>[]) {
      for (const path of map.keys()) if (roots.some((r) => under(path, r))) paths.add(path);
    }
    return [...paths];
  };
  const startPlan = (dev: WatchedDevice, full: boolean): void => {
    let paths = full ? undefined : expand(dev);
    let actions = reconcile({ base: dev.base, local: dev.local, remote: server.live, paths }, {
      device: dev.name,
    });
    // A delete in a watcher round makes the client scan and decide the whole tree first.
    if (paths !== undefined && actions.some((a) => a.type === "deleteRemote")) {
      paths = undefined;
      actions = reconcile({ base: dev.base, local: dev.local, remote: server.live }, { device: dev.name });
    }
    dev.dirty.clear();
    assertDistinctTargets(actions);
    dev.pending = [...actions];
    dev.planned = actions;
    dev.failed = false;
  };
  const step = (dev: WatchedDevice): void => {
    const action = dev.pending.shift()!;
    const before = new Map(server.live);
    stats.actions++;
    if (action.type === "conflict") stats.conflicts++;
    if (action.type === "moveLocal" || action.type === "moveRemote") stats.moves++;
    if (!apply(dev, server, action)) {
      stats.rejected++;
      dev.failed = true;
    }
    // The journal's events reach every device, the writer included.
    for (const path of changedPaths(before, server.live)) for (const d of devices) d.dirty.add(path);
    if (dev.pending.length === 0 && dev.failed) {
      for (const a of dev.planned) for (const path of actionPaths(a)) dev.dirty.add(path);
    }
  };

  const steps = 20 + Math.floor(rnd() * 40);
  for (let i = 0; i < steps; i++) {
    const dev = devices[Math.floor(rnd() * devices.length)];
    if (rnd() < 0.4) {
      const before = new Map(dev.local);
      userStep(dev, rnd, precious, clock);
      for (const path of changedPaths(before, dev.local)) dev.dirty.add(path); // what the watcher reports
    } else if (dev.pending.length === 0) startPlan(dev, false);
    else step(dev);
  }

  // Quiet phase: finish the plans, then watcher rounds until no device has a path left to look at.
  for (const dev of devices) while (dev.pending.length > 0) step(dev);
  for (let round = 0; round < 30 && devices.some((d) => d.dirty.size > 0); round++) {
    for (const dev of devices) {
      if (dev.dirty.size === 0) continue;
      startPlan(dev, false);
      while (dev.pending.length > 0) step(dev);
    }
  }
  const describe = () =>
    `seed ${seed}\nserver ${JSON.stringify([...server.live])}\n` +
    devices.map((d) => `${d.name} local ${JSON.stringify([...d.local])} base ${JSON.stringify([...d.base])}`)
      .join("\n");
  for (const dev of devices) {
    assert.equal(dev.dirty.size, 0, `seed ${seed}: ${dev.name} still has paths to look at\n${describe()}`);
    const missed = reconcile({ base: dev.base, local: dev.local, remote: server.live }, { device: dev.name });
    assert.deepEqual(missed, [], `seed ${seed}: ${dev.name}: the watcher rounds missed\n${describe()}`);
  }
  const held = new Set([...server.live.values()].map((e) => e.hash));
  for (const hash of precious.wanted()) {
    assert.ok(held.has(hash), `seed ${seed}: content ${hash} was lost\n${describe()}`);
  }
}

Deno.test("reconcile() rounds over changed paths only, as the client runs them on three devices, miss no path", () => {
  const stats: RunStats = { actions: 0, rejected: 0, conflicts: 0, moves: 0 };
  for (let seed = 1; seed <= 400; seed++) runWatched(seed, stats);
  assert.ok(stats.conflicts > 20, `only ${stats.conflicts} conflicts`);
  assert.ok(stats.moves > 20, `only ${stats.moves} moves`);
  assert.ok(stats.rejected > 20, `only ${stats.rejected} rejected steps`);
});
