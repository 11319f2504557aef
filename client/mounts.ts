// Where each namespace shows in the synced folder, and the one mapping of paths between the two, both ways.

/**
 * A namespace a device follows and the place it shows: "" for the folder root, else a top-level folder. With
 * `path` (a share of a part of another user's namespace) only what is at or under that path shows, at `mount`.
 */
export interface Mount {
  ns: string;
  mount: string;
  path?: string;
}

/**
 * The key of a mount: the namespace id, or for a share of a part of it "ns/path" (a namespace id holds no "/").
 * Journal positions are kept per key: each view of a namespace follows its own cursor.
 */
export function viewKey(ns: string, path?: string): string {
  return path ? `${ns}/${path}` : ns;
}

/** Whether `path` is `prefix` or inside it. */
function under(prefix: string, path: string): boolean {
  return path === prefix || path.startsWith(prefix + "/");
}

/** A path inside a namespace: `path` "" is the namespace's root (the mount folder itself). */
export interface NamespacePath {
  ns: string;
  path: string;
}

/**
 * The namespaces of a synced folder and where they show. Exactly one namespace sits at the folder root (the
 * user's own); any other shows as a top-level folder named by its mount, which hides an entry of the root
 * namespace of the same name (whoever picks mounts picks names that do not clash).
 *
 * @example
 * ```ts
 * const mounts = new MountTable([{ ns: "alice", mount: "" }, { ns: "share:1", mount: "Team" }]);
 * mounts.toLocal("share:1", "plan.txt"); // "Team/plan.txt"
 * mounts.fromLocal("Team/plan.txt"); // { ns: "share:1", path: "plan.txt" }
 * mounts.fromLocal("notes.txt"); // { ns: "alice", path: "notes.txt" }
 * ```
 */
export class MountTable {
  /** The mounts, the root one first. */
  readonly list: readonly Mount[];
  #byKey = new Map<string, Mount>();
  #byFolder = new Map<string, Mount>();

  /** A table of mounts; TypeError unless exactly one is at the root and no id or folder repeats. */
  constructor(mounts: readonly Mount[]) {
    const roots = mounts.filter((m) => m.mount === "");
    if (roots.length !== 1) {
      throw new TypeError(`Cannot mount namespaces: ${roots.length} at the folder root, expected one`);
    }
    for (const m of mounts) {
      const { ns, mount } = m;
      const key = viewKey(ns, m.path);
      if (mount.includes("/")) {
        throw new TypeError(`Cannot mount "${key}" at "${mount}": not a top-level folder`);
      }
      if (m.path && mount === "") throw new TypeError(`Cannot mount a part of "${ns}" at the folder root`);
      if (this.#byKey.has(key)) throw new TypeError(`Cannot mount "${key}" twice`);
      if (mount !== "" && this.#byFolder.has(mount)) {
        const other = this.#byFolder.get(mount)!;
        throw new TypeError(
          `Cannot mount "${key}" at "${mount}": taken by "${viewKey(other.ns, other.path)}"`,
        );
      }
      this.#byKey.set(key, m);
      if (mount !== "") this.#byFolder.set(mount, m);
    }
    this.list = [...roots, ...mounts.filter((m) => m.mount !== "")];
  }

  /** The namespace at the folder root. */
  get root(): string {
    return this.list[0].ns;
  }

  /** Whether a namespace (or a view of one: a {@linkcode viewKey}) is mounted here. */
  has(key: string): boolean {
    return this.#byKey.has(key);
  }

  /** The mount of a key, if mounted here. */
  mountOf(key: string): Mount | undefined {
    return this.#byKey.get(key);
  }

  /**
   * The local path of a path in a namespace, or null where no mount here shows it (a namespace not mounted, or
   * a path outside the shared part).
   */
  toLocal(ns: string, path: string): string | null {
    for (const m of this.list) {
      if (m.ns !== ns) continue;
      const local = this.localIn(viewKey(ns, m.path), path);
      if (local !== null) return local;
    }
    return null;
  }

  /** The local path of a path of the namespace through one mount (by key), or null where it does not show it. */
  localIn(key: string, path: string): string | null {
    const m = this.#byKey.get(key);
    if (m === undefined) return null;
    let rest = path;
    if (m.path) {
      if (!under(m.path, path)) return null;
      rest = path.slice(m.path.length + 1);
    }
    if (m.mount === "") return rest;
    return rest === "" ? m.mount : `${m.mount}/${rest}`;
  }

  /**
   * The namespace and path a local path belongs to (a mount folder itself is its namespace's root, "", or for a
   * share of a part, the shared path).
   */
  fromLocal(local: string): NamespacePath {
    const m = this.#mountAt(local);
    const slash = local.indexOf("/");
    if (m.mount === "") return { ns: m.ns, path: local };
    const rest = slash === -1 ? "" : local.slice(slash + 1);
    if (!m.path) return { ns: m.ns, path: rest };
    return { ns: m.ns, path: rest === "" ? m.path : `${m.path}/${rest}` };
  }

  /** The key of the mount that shows a local path. */
  keyOf(local: string): string {
    const m = this.#mountAt(local);
    return viewKey(m.ns, m.path);
  }

  /** Whether a local path is a mount folder (or file) itself, not inside one nor in the root namespace. */
  isMountPoint(local: string): boolean {
    return this.#byFolder.has(local);
  }

  #mountAt(local: string): Mount {
    const slash = local.indexOf("/");
    const top = slash === -1 ? local : local.slice(0, slash);
    return this.#byFolder.get(top) ?? this.list[0];
  }
}

/**
 * The namespaces of a server's list that a folder shows: its own and every mount it showed before (`shown`:
 * mount by key), and a new share only where the folder has nothing of its mount's name (`inUse`): a file or
 * folder made on the device and not yet on the server would otherwise become part of the share.
 *
 * @example
 * ```ts
 * const listed = [{ ns: "bob", mount: "" }, { ns: "alice", mount: "Project", path: "Project" }];
 * mountableViews(listed, new Map(), (name) => name === "Project"); // the own one only
 * ```
 */
export function mountableViews<T extends Mount>(
  listed: readonly T[],
  shown: ReadonlyMap<string, string>,
  inUse: (name: string) => boolean,
): T[] {
  return listed.filter((m) =>
    m.mount === "" || shown.get(viewKey(m.ns, m.path)) === m.mount || !inUse(m.mount)
  );
}
