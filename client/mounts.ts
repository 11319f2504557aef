// Where each namespace shows in the synced folder, and the one mapping of paths between the two, both ways.

/** A namespace a device follows and the place it shows: "" for the folder root, else a top-level folder. */
export interface Mount {
  ns: string;
  mount: string;
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
  #byNs = new Map<string, string>();
  #byFolder = new Map<string, string>();

  /** A table of mounts; TypeError unless exactly one is at the root and no id or folder repeats. */
  constructor(mounts: readonly Mount[]) {
    const roots = mounts.filter((m) => m.mount === "");
    if (roots.length !== 1) {
      throw new TypeError(`Cannot mount namespaces: ${roots.length} at the folder root, expected one`);
    }
    for (const { ns, mount } of mounts) {
      if (mount.includes("/")) {
        throw new TypeError(`Cannot mount "${ns}" at "${mount}": not a top-level folder`);
      }
      if (this.#byNs.has(ns)) throw new TypeError(`Cannot mount "${ns}" twice`);
      if (mount !== "" && this.#byFolder.has(mount)) {
        throw new TypeError(`Cannot mount "${ns}" at "${mount}": taken by "${this.#byFolder.get(mount)}"`);
      }
      this.#byNs.set(ns, mount);
      if (mount !== "") this.#byFolder.set(mount, ns);
    }
    this.list = [...roots, ...mounts.filter((m) => m.mount !== "")];
  }

  /** The namespace at the folder root. */
  get root(): string {
    return this.list[0].ns;
  }

  /** Whether the namespace is mounted here. */
  has(ns: string): boolean {
    return this.#byNs.has(ns);
  }

  /** The local path of a path in a namespace, or null for a namespace not mounted here. */
  toLocal(ns: string, path: string): string | null {
    const mount = this.#byNs.get(ns);
    if (mount === undefined) return null;
    if (mount === "") return path;
    return path === "" ? mount : `${mount}/${path}`;
  }

  /** The namespace and path a local path belongs to (a mount folder itself is its namespace's root, ""). */
  fromLocal(local: string): NamespacePath {
    const slash = local.indexOf("/");
    const top = slash === -1 ? local : local.slice(0, slash);
    const ns = this.#byFolder.get(top);
    if (ns === undefined) return { ns: this.root, path: local };
    return { ns, path: slash === -1 ? "" : local.slice(slash + 1) };
  }
}
