// Table tests of MountTable: local paths to namespace paths and back, and the tables it refuses.
import assert from "node:assert/strict";
import { type Mount, mountableViews, MountTable } from "./mounts.ts";

const own: Mount = { ns: "alice", mount: "" };
const team: Mount = { ns: "share:1", mount: "Team" };
const photos: Mount = { ns: "share:2", mount: "Photos of bob" };

Deno.test("MountTable maps a local path to its namespace and back, the same both ways", () => {
  const mounts = new MountTable([team, own, photos]);
  const cases: [string, string, string][] = [
    // local path, namespace, path in the namespace
    ["notes.txt", "alice", "notes.txt"],
    ["a/b/c.txt", "alice", "a/b/c.txt"],
    ["Team", "share:1", ""],
    ["Team/plan.txt", "share:1", "plan.txt"],
    ["Team/x/y", "share:1", "x/y"],
    ["Teams/plan.txt", "alice", "Teams/plan.txt"],
    ["team/plan.txt", "alice", "team/plan.txt"],
    ["x/Team/plan.txt", "alice", "x/Team/plan.txt"],
    ["Photos of bob/2024/beach.jpg", "share:2", "2024/beach.jpg"],
  ];
  for (const [local, ns, path] of cases) {
    assert.deepEqual(mounts.fromLocal(local), { ns, path }, `from ${local}`);
    assert.equal(mounts.toLocal(ns, path), local, `to ${ns}:${path}`);
  }
  assert.equal(mounts.root, "alice");
  assert.deepEqual(mounts.list.map((m) => m.ns), ["alice", "share:1", "share:2"], "the root first");
  assert.equal(mounts.toLocal("share:9", "x"), null, "a namespace not mounted here has no local path");
  assert.ok(mounts.has("share:2") && !mounts.has("bob"));
});

Deno.test("MountTable with the own namespace alone is the identity", () => {
  const mounts = new MountTable([own]);
  for (const path of ["a", "a/b", "Team/plan.txt", ".filesyncignore"]) {
    assert.deepEqual(mounts.fromLocal(path), { ns: "alice", path });
    assert.equal(mounts.toLocal("alice", path), path);
  }
});

Deno.test("MountTable refuses tables without one root, with a nested mount, or with a repeat", () => {
  const bad: Mount[][] = [
    [],
    [team],
    [own, { ns: "bob", mount: "" }],
    [own, { ns: "share:1", mount: "a/b" }],
    [own, team, { ns: "share:1", mount: "Other" }],
    [own, team, { ns: "share:3", mount: "Team" }],
  ];
  for (const mounts of bad) assert.throws(() => new MountTable(mounts), TypeError, JSON.stringify(mounts));
});

Deno.test("MountTable maps the views of shared parts of another user's namespace both ways", () => {
  const mounts = new MountTable([
    { ns: "bob", mount: "" },
    { ns: "alice", mount: "Project", path: "work/Project" },
    { ns: "alice", mount: "plan (shared by alice).txt", path: "docs/plan.txt" },
    { ns: "carol", mount: "Project (shared by carol)", path: "Project" },
  ]);
  const cases: [string, string, string, string][] = [
    // local path, namespace, path in the namespace, view key
    ["notes.txt", "bob", "notes.txt", "bob"],
    ["Project", "alice", "work/Project", "alice/work/Project"],
    ["Project/a/b.txt", "alice", "work/Project/a/b.txt", "alice/work/Project"],
    ["plan (shared by alice).txt", "alice", "docs/plan.txt", "alice/docs/plan.txt"],
    ["Project (shared by carol)/x", "carol", "Project/x", "carol/Project"],
    ["Projects/x", "bob", "Projects/x", "bob"],
  ];
  for (const [local, ns, path, key] of cases) {
    assert.deepEqual(mounts.fromLocal(local), { ns, path }, `from ${local}`);
    assert.equal(mounts.toLocal(ns, path), local, `to ${ns}:${path}`);
    assert.equal(mounts.keyOf(local), key, `key of ${local}`);
    assert.equal(mounts.localIn(key, path), local, `through ${key}`);
  }
  assert.equal(mounts.toLocal("alice", "work/secret.txt"), null, "outside every shared part: not shown");
  assert.equal(mounts.toLocal("alice", "work/Projects/x"), null);
  assert.equal(mounts.localIn("alice/docs/plan.txt", "work/Project/a"), null, "not through another view");
  assert.ok(mounts.isMountPoint("Project") && !mounts.isMountPoint("Project/a/b.txt"));
  assert.ok(!mounts.isMountPoint("notes.txt"));
  assert.ok(mounts.has("alice/work/Project") && !mounts.has("alice"));
  assert.deepEqual(mounts.mountOf("carol/Project"), {
    ns: "carol",
    mount: "Project (shared by carol)",
    path: "Project",
  });
  assert.throws(
    () => new MountTable([{ ns: "bob", mount: "" }, { ns: "alice", mount: "", path: "x" }]),
    TypeError,
  );
  assert.throws(
    () =>
      new MountTable([{ ns: "bob", mount: "" }, { ns: "alice", mount: "A", path: "x" }, {
        ns: "alice",
        mount: "B",
        path: "x",
      }]),
    TypeError,
  );
});

Deno.test("mountableViews() shows a new share only where its name is free here, and what showed before", () => {
  const own = { ns: "bob", mount: "" };
  const project = { ns: "alice", mount: "Project", path: "Project" };
  const docs = { ns: "alice", mount: "Docs", path: "Docs" };
  const inUse = (name: string) => ["Project", "Docs"].includes(name);
  const cases: [Map<string, string>, Mount[]][] = [
    [new Map(), [own]],
    [new Map([["alice/Project", "Project"]]), [own, project]],
    [new Map([["alice/Project", "Project (old)"]]), [own]],
    [new Map([["alice/Project", "Project"], ["alice/Docs", "Docs"]]), [own, project, docs]],
  ];
  for (const [shown, expected] of cases) {
    assert.deepEqual(
      mountableViews([own, project, docs], shown, inUse),
      expected,
      JSON.stringify([...shown]),
    );
  }
  assert.deepEqual(mountableViews([own, project, docs], new Map(), () => false), [own, project, docs]);
});
