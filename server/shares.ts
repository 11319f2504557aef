// The rules of sharing as pure functions: what a SHARE or UNSHARE makes of a namespace's grants, where a share
// shows on the grantee's devices, and which paths a share's view holds.
import type { WireNamespace, WireShare } from "../protocol/messages.ts";
import type { NamespaceGrant, NamespaceRecord } from "./metadata_store.ts";

/** Whether `path` is `prefix` or inside it. */
export function under(prefix: string, path: string): boolean {
  return path === prefix || path.startsWith(prefix + "/");
}

/** The last segment of a path. */
function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * Where a share of `path` by `owner` shows on the grantee's devices: a top-level name after the item's base name,
 * or, when the grantee already has that name (own top-level files or another share, compared without case),
 * "NAME (shared by OWNER)", then "NAME (shared by OWNER 2)" and so on. An extension stays at the end: a file
 * "plan.txt" becomes "plan (shared by alice).txt".
 *
 * @example
 * ```ts
 * mountName("work/Project", "alice", new Set()); // "Project"
 * mountName("work/Project", "alice", new Set(["project"])); // "Project (shared by alice)"
 * ```
 */
export function mountName(path: string, owner: string, taken: ReadonlySet<string>): string {
  const base = baseName(path);
  const free = (name: string) => !taken.has(name.toLowerCase());
  if (free(base)) return base;
  const dot = base.lastIndexOf(".");
  const [stem, ext] = dot > 0 ? [base.slice(0, dot), base.slice(dot)] : [base, ""];
  for (let n = 1;; n++) {
    const name = `${stem} (shared by ${owner}${n === 1 ? "" : ` ${n}`})${ext}`;
    if (free(name)) return name;
  }
}

/** What a SHARE asks, and what the server found out about it. */
export interface ShareRequest {
  /** The namespace to share from, as stored. */
  namespace: NamespaceRecord;
  /** Who asks. */
  caller: string;
  path: string;
  /** The grantee. */
  user: string;
  access: "read" | "write";
  /** Whether the grantee is a user of this server. */
  userExists: boolean;
  /** Whether `path` is a live file or folder of the namespace. */
  pathExists: boolean;
  /** Top-level names the grantee already uses (own files and the mounts of its shares), lower case. */
  taken: ReadonlySet<string>;
  /** The clock. */
  now: number;
}

/** The outcome of {@linkcode planShare}: the new grants, or why not. */
export type SharePlan =
  | { ok: true; grants: NamespaceGrant[]; grant: NamespaceGrant; changed: "new" | "access" | "same" }
  | { ok: false; code: "forbidden" | "not_found" | "refused"; error: string };

/**
 * Decides a SHARE. Refused: a namespace the caller does not own (re-sharing what is shared with you: only the
 * owner shares), the caller itself, an unknown user, a path that does not exist, and a path inside or above one
 * already shared with the same user (one user sees a file through one share only). The same path and user again
 * changes the access (the mount stays where it was).
 */
export function planShare(request: ShareRequest): SharePlan {
  const { namespace, caller, path, user } = request;
  if (namespace.owner !== caller) {
    return {
      ok: false,
      code: "forbidden",
      error: `Cannot share "${path}": it is shared with you by ${namespace.owner}, and only the owner shares`,
    };
  }
  if (user === caller) return { ok: false, code: "refused", error: "Cannot share with yourself" };
  if (!request.userExists) return { ok: false, code: "not_found", error: `No user "${user}" on this server` };
  if (!request.pathExists) return { ok: false, code: "not_found", error: `No file or folder "${path}"` };
  const grants = namespace.grants ?? [];
  const same = grants.findIndex((g) => g.user === user && (g.path ?? "") === path);
  if (same !== -1) {
    const old = grants[same];
    if (old.role === request.access) return { ok: true, grants, grant: old, changed: "same" };
    const grant = { ...old, role: request.access };
    return { ok: true, grants: grants.map((g, i) => i === same ? grant : g), grant, changed: "access" };
  }
  const overlap = grants.find((g) =>
    g.user === user && (under(g.path ?? "", path) || under(path, g.path ?? ""))
  );
  if (overlap) {
    const other = overlap.path ?? "";
    const how = under(other, path) ? "inside" : "above";
    return {
      ok: false,
      code: "refused",
      error: `Cannot share "${path}" with ${user}: it is ${how} "${other}", already shared with ${user}` +
        ` (unshare that first)`,
    };
  }
  const grant: NamespaceGrant = {
    user,
    role: request.access,
    path,
    mount: mountName(path, caller, request.taken),
    created: request.now,
  };
  return { ok: true, grants: [...grants, grant], grant, changed: "new" };
}

/**
 * Decides an UNSHARE of `path` (with `user`, or with everyone): the grants left and those taken back (none:
 * nothing at that path was shared, with that user).
 */
export function planUnshare(
  grants: readonly NamespaceGrant[],
  path: string,
  user?: string,
): { grants: NamespaceGrant[]; removed: NamespaceGrant[] } {
  const hit = (g: NamespaceGrant) => (g.path ?? "") === path && (user === undefined || g.user === user);
  return { grants: grants.filter((g) => !hit(g)), removed: grants.filter(hit) };
}

/** A grant as SHARES lists it. */
export function wireShare(namespace: NamespaceRecord, grant: NamespaceGrant): WireShare {
  const path = grant.path ?? "";
  return {
    ns: namespace.id,
    path,
    owner: namespace.owner,
    user: grant.user,
    access: grant.role,
    mount: grant.mount ?? (path === "" ? namespace.name : baseName(path)),
  };
}

/**
 * The namespaces a session of `user` serves, as LOGIN, AUTH and the namespaces push list them: the own one at
 * the folder root, a share namespace the user owns or holds a whole-namespace grant in at its name, and one view
 * per grant on a part of another namespace (`path`), shown at the grant's mount.
 */
export function namespaceViews(user: string, records: readonly NamespaceRecord[]): WireNamespace[] {
  const views: WireNamespace[] = [];
  for (const n of records) {
    if (n.owner === user) {
      views.push({ ns: n.id, role: "owner", name: n.name, mount: n.kind === "user" ? "" : n.name });
      continue;
    }
    const mine = (n.grants ?? []).filter((g) => g.user === user);
    const whole = mine.filter((g) => !g.path);
    if (whole.length > 0) {
      const role = whole.some((g) => g.role === "write") ? "write" : "read";
      views.push({ ns: n.id, role, name: n.name, mount: n.name });
    }
    for (const g of mine) {
      if (!g.path) continue;
      const share = wireShare(n, g);
      views.push({
        ns: n.id,
        role: g.role,
        name: baseName(g.path),
        mount: share.mount,
        path: g.path,
        owner: n.owner,
      });
    }
  }
  return views;
}
