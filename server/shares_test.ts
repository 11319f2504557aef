// Table tests of the sharing rules: SHARE and UNSHARE decisions, mount names, the views a session lists, and
// access() with grants on parts of a user's namespace.
import assert from "node:assert/strict";
import { access, allows } from "./access.ts";
import type { NamespaceGrant, NamespaceRecord } from "./metadata_store.ts";
import { mountName, namespaceViews, planShare, planUnshare, type ShareRequest, under } from "./shares.ts";

const alice: NamespaceRecord = {
  id: "alice",
  owner: "alice",
  kind: "user",
  name: "alice",
  created: 0,
  grants: [
    { user: "bob", role: "write", path: "Project", mount: "Project", created: 1 },
    { user: "bob", role: "read", path: "docs/plan.txt", mount: "plan.txt", created: 2 },
    { user: "carol", role: "read", path: "Project", mount: "Project (shared by alice)", created: 3 },
  ],
};

Deno.test("under() is the path itself or inside it, never a sibling with the same start", () => {
  const cases: [string, string, boolean][] = [
    ["a", "a", true],
    ["a", "a/b", true],
    ["a", "a/b/c", true],
    ["a", "ab", false],
    ["a/b", "a", false],
    ["a b", "a b/c", true],
  ];
  for (const [prefix, path, expected] of cases) {
    assert.equal(under(prefix, path), expected, `${prefix} ${path}`);
  }
});

Deno.test("access() with grants on parts of a user's namespace: only under the granted path", () => {
  const cases: [string, string | undefined, string | null, boolean, boolean][] = [
    // user, path, role, may read, may write
    ["alice", "anything.txt", "owner", true, true],
    ["alice", "", "owner", true, true],
    ["bob", "Project", "write", true, true],
    ["bob", "Project/a/b.txt", "write", true, true],
    ["bob", "Projects/x.txt", null, false, false],
    ["bob", "docs/plan.txt", "read", true, false],
    ["bob", "docs/other.txt", null, false, false],
    ["bob", "docs", null, false, false],
    ["bob", "", null, false, false],
    ["bob", "secret.txt", null, false, false],
    ["bob", undefined, "write", true, true],
    ["carol", "Project/a.txt", "read", true, false],
    ["carol", "docs/plan.txt", null, false, false],
    ["dave", "Project", null, false, false],
    ["dave", undefined, null, false, false],
  ];
  for (const [user, path, role, read, write] of cases) {
    const got = access(user, alice, path);
    assert.equal(got, role, `${user} at ${path}`);
    assert.equal(allows(got, "read"), read, `${user} reads ${path}`);
    assert.equal(allows(got, "write"), write, `${user} writes ${path}`);
  }
});

Deno.test("mountName() names a share after its item, and around the grantee's own names", () => {
  const cases: [string, string, string[], string][] = [
    ["Project", "alice", [], "Project"],
    ["work/Project", "alice", [], "Project"],
    ["work/Project", "alice", ["project"], "Project (shared by alice)"],
    ["Project", "alice", ["project", "project (shared by alice)"], "Project (shared by alice 2)"],
    ["docs/plan.txt", "bob", ["plan.txt"], "plan (shared by bob).txt"],
    ["docs/.env", "bob", [".env"], ".env (shared by bob)"],
    ["a/archive.tar.gz", "bob", ["archive.tar.gz"], "archive.tar (shared by bob).gz"],
    ["Notes", "carol", ["other"], "Notes"],
  ];
  for (const [path, owner, taken, expected] of cases) {
    assert.equal(mountName(path, owner, new Set(taken)), expected, `${path} by ${owner}`);
  }
});

Deno.test("planShare() grants, changes access, and refuses what the rules refuse with a clear error", () => {
  const base: ShareRequest = {
    namespace: alice,
    caller: "alice",
    path: "Photos",
    user: "bob",
    access: "read",
    userExists: true,
    pathExists: true,
    taken: new Set(["photos"]),
    now: 9,
  };
  const newGrant: NamespaceGrant = {
    user: "bob",
    role: "read",
    path: "Photos",
    mount: "Photos (shared by alice)",
    created: 9,
  };
  const ok = planShare(base);
  assert.deepEqual(ok, { ok: true, grants: [...alice.grants!, newGrant], grant: newGrant, changed: "new" });

  const again = planShare({ ...base, path: "Project", access: "write" });
  assert.equal(again.ok && again.changed, "same");
  const change = planShare({ ...base, path: "Project", access: "read" });
  assert.ok(change.ok);
  assert.equal(change.changed, "access");
  assert.deepEqual(change.grant, { ...alice.grants![0], role: "read" }, "the mount stays");
  assert.equal(change.grants.length, 3);

  const refusals: [string, Partial<ShareRequest>, string, RegExp][] = [
    ["yourself", { user: "alice" }, "refused", /^Cannot share with yourself$/],
    ["unknown user", { user: "zed", userExists: false }, "not_found", /^No user "zed" on this server$/],
    ["missing path", { pathExists: false }, "not_found", /^No file or folder "Photos"$/],
    ["re-share", { caller: "bob" }, "forbidden", /shared with you by alice, and only the owner shares/],
    ["inside", { path: "Project/sub" }, "refused", /inside "Project", already shared with bob/],
    ["above", { path: "docs" }, "refused", /above "docs\/plan.txt", already shared with bob/],
  ];
  for (const [label, change, code, error] of refusals) {
    const plan = planShare({ ...base, ...change });
    assert.equal(plan.ok, false, label);
    if (plan.ok) continue;
    assert.equal(plan.code, code, label);
    assert.match(plan.error, error, label);
  }
  const other = planShare({ ...base, path: "Project/sub", user: "dave" });
  assert.ok(other.ok, "another user may get a folder inside one shared with bob");
});

Deno.test("planUnshare() takes back the grants of a path, of one user or of all", () => {
  const grants = alice.grants!;
  assert.deepEqual(planUnshare(grants, "Project", "bob"), {
    grants: [grants[1], grants[2]],
    removed: [grants[0]],
  });
  assert.deepEqual(planUnshare(grants, "Project"), { grants: [grants[1]], removed: [grants[0], grants[2]] });
  assert.deepEqual(planUnshare(grants, "Project/sub"), { grants: [...grants], removed: [] });
  assert.deepEqual(planUnshare(grants, "docs/plan.txt", "carol"), { grants: [...grants], removed: [] });
});

Deno.test("namespaceViews() lists the own namespace at the root and one view per grant on a part", () => {
  const bob: NamespaceRecord = { id: "bob", owner: "bob", kind: "user", name: "bob", created: 0 };
  assert.deepEqual(namespaceViews("bob", [bob, alice]), [
    { ns: "bob", role: "owner", name: "bob", mount: "" },
    { ns: "alice", role: "write", name: "Project", mount: "Project", path: "Project", owner: "alice" },
    { ns: "alice", role: "read", name: "plan.txt", mount: "plan.txt", path: "docs/plan.txt", owner: "alice" },
  ]);
  assert.deepEqual(namespaceViews("alice", [alice]), [{
    ns: "alice",
    role: "owner",
    name: "alice",
    mount: "",
  }]);
  const team: NamespaceRecord = {
    id: "share:1",
    owner: "alice",
    kind: "share",
    name: "Team",
    created: 0,
    grants: [{ user: "bob", role: "read" }, { user: "bob", role: "write" }],
  };
  assert.deepEqual(namespaceViews("bob", [team]), [{
    ns: "share:1",
    role: "write",
    name: "Team",
    mount: "Team",
  }]);
  assert.deepEqual(namespaceViews("alice", [team]), [{
    ns: "share:1",
    role: "owner",
    name: "Team",
    mount: "Team",
  }]);
});
