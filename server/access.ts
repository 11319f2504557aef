// Who may do what in a namespace: a pure function of the user, the namespace record and the path.
import type { NamespaceRecord } from "./metadata_store.ts";

/** A caller's right in a namespace, strongest first: owner, write, read. */
export type Role = "owner" | "write" | "read";

/** What an op needs: to read (list, download, versions) or to write (commit, restore, upload chunks). */
export type Need = "read" | "write";

const RANK: Record<Role, number> = { read: 1, write: 2, owner: 3 };

/** Whether a grant on `grantPath` ("" or absent: the whole namespace) covers `path`. */
function covers(grantPath: string | undefined, path: string): boolean {
  if (!grantPath) return true;
  return path === grantPath || path.startsWith(grantPath + "/");
}

/**
 * The caller's right in a namespace: "owner" for the namespace's owner, else the strongest grant given to the
 * user that covers `path` (a grant without a path covers the whole namespace), else null (no access: the
 * namespace is not visible to the user). `path` "" asks about the whole namespace (what listing its journal or
 * trash needs): only the owner and grants without a path cover it. Without `path` the question is whether the
 * user sees the namespace at all: any grant of the user answers it. A null namespace (unknown id) gives null.
 *
 * @example
 * ```ts
 * const ns = { id: "alice", owner: "alice", kind: "user", name: "alice", created: 0 } as const;
 * access("alice", ns); // "owner"
 * access("bob", ns); // null
 * ```
 */
export function access(user: string, namespace: NamespaceRecord | null, path?: string): Role | null {
  if (!namespace || user === "") return null;
  if (namespace.owner === user) return "owner";
  let best: Role | null = null;
  for (const grant of namespace.grants ?? []) {
    if (grant.user !== user) continue;
    if (path !== undefined && !covers(grant.path, path)) continue;
    if (best === null || RANK[grant.role] > RANK[best]) best = grant.role;
  }
  return best;
}

/** Whether a role allows what an op needs (null: nothing). */
export function allows(role: Role | null, need: Need): boolean {
  if (role === null) return false;
  return need === "read" || role !== "read";
}
