// Table tests of access(): owners, grants on the whole namespace or a path, the strongest grant winning.
import assert from "node:assert/strict";
import { access, allows, type Need, type Role } from "./access.ts";
import type { NamespaceRecord } from "./metadata_store.ts";

const own: NamespaceRecord = { id: "alice", owner: "alice", kind: "user", name: "alice", created: 0 };
const share: NamespaceRecord = {
  id: "share:1",
  owner: "alice",
  kind: "share",
  name: "Team",
  created: 0,
  grants: [
    { user: "bob", role: "read" },
    { user: "bob", role: "write", path: "drafts" },
    { user: "carol", role: "write", path: "drafts/c.txt" },
    { user: "dave", role: "write", path: "" },
  ],
};

Deno.test("access() answers owner, write, read or null for each user, namespace and path", () => {
  const cases: [string, NamespaceRecord | null, string | undefined, Role | null][] = [
    ["alice", own, undefined, "owner"],
    ["alice", own, "a/b.txt", "owner"],
    ["bob", own, undefined, null],
    ["bob", own, "a/b.txt", null],
    ["", own, undefined, null],
    ["alice", null, undefined, null],
    ["alice", share, "x", "owner"],
    ["bob", share, undefined, "write"],
    ["bob", share, "notes.txt", "read"],
    ["bob", share, "drafts", "write"],
    ["bob", share, "drafts/one.txt", "write"],
    ["bob", share, "draftsman.txt", "read"],
    ["carol", share, undefined, "write"],
    ["carol", share, "drafts/c.txt", "write"],
    ["carol", share, "drafts/d.txt", null],
    ["carol", share, "drafts", null],
    ["dave", share, "anything/at/all", "write"],
    ["alice", share, "", "owner"],
    ["bob", share, "", "read"],
    ["carol", share, "", null],
    ["dave", share, "", "write"],
    ["erin", share, undefined, null],
    ["erin", share, "drafts", null],
  ];
  for (const [user, namespace, path, expected] of cases) {
    assert.equal(access(user, namespace, path), expected, `${user} on ${namespace?.id} at ${path}`);
  }
});

Deno.test("allows() lets every role read and only owner and write write", () => {
  const cases: [Role | null, Need, boolean][] = [
    ["owner", "read", true],
    ["owner", "write", true],
    ["write", "read", true],
    ["write", "write", true],
    ["read", "read", true],
    ["read", "write", false],
    [null, "read", false],
    [null, "write", false],
  ];
  for (const [role, need, expected] of cases) assert.equal(allows(role, need), expected, `${role} ${need}`);
});
