// What a device does with local changes inside a share it may only read: nothing is uploaded, an edited or new
// file is kept as the user's own copy outside the share, and the shared item returns to the owner's version.
import { splitExtension } from "./conflict_name.ts";
import type { Action } from "./reconcile.ts";

/** Suffix of the own copy of a file edited in a read-only share: "plan (my edit of shared file).txt". */
export const OWN_EDIT_SUFFIX = " (my edit of shared file)";

/**
 * The own copy's path of a file edited in a read-only share: a top-level file of the user's own files named after
 * it, "NAME (my edit of shared file).EXT", then "… 2", "… 3" while `taken` says the name is used.
 *
 * @example
 * ```ts
 * ownEditPath("Docs/plan.txt", () => false); // "plan (my edit of shared file).txt"
 * ```
 */
export function ownEditPath(path: string, taken: (path: string) => boolean): string {
  const [stem, ext] = splitExtension(path.slice(path.lastIndexOf("/") + 1));
  for (let n = 1;; n++) {
    const name = `${stem}${OWN_EDIT_SUFFIX.slice(0, -1)}${n === 1 ? "" : ` ${n}`})${ext}`;
    if (!taken(name)) return name;
  }
}

/** A local file moved out of a read-only share to an own copy. */
export interface KeptEdit {
  from: string;
  to: string;
}

/** What {@linkcode planReadOnly} makes of a plan. */
export interface ReadOnlyPlan {
  /** The actions left to run (none writes to a read-only share on the server). */
  actions: Action[];
  /** Local files to move out of read-only shares first, to own copies (then uploaded as the user's own files). */
  keep: KeptEdit[];
  /**
   * Paths whose base entry is forgotten, so the next cycle brings the owner's version back (the local one was
   * moved out, deleted or renamed).
   */
  restore: string[];
  /** Paths of folders made locally in a read-only share: they stay here only. */
  localOnly: string[];
}

/** What {@linkcode planReadOnly} needs to know. */
export interface ReadOnlyContext {
  /** Whether a local path is inside a share this user may only read. */
  readOnly: (path: string) => boolean;
  /** Whether a top-level name of the folder is used (a local, base or remote entry, or a mount). */
  taken: (path: string) => boolean;
}

/**
 * Takes the changes inside read-only shares out of a plan: an upload (a file edited or made there) or the local
 * side of a conflict becomes an own copy at the top of the folder and the shared file comes back; a delete, or
 * a rename inside the share, brings the owner's version back; a file renamed out of the share is uploaded as a
 * new own file (and the shared one comes back); an own file moved in goes back where it was; a folder made there
 * stays local. Actions from the server (downloads, local deletes and moves) are left as they are.
 */
export function planReadOnly(plan: readonly Action[], ctx: ReadOnlyContext): ReadOnlyPlan {
  const out: ReadOnlyPlan = { actions: [], keep: [], restore: [], localOnly: [] };
  const names = new Set<string>();
  const taken = (name: string) => names.has(name) || ctx.taken(name);
  const keepOutside = (path: string) => {
    const to = ownEditPath(path, taken);
    names.add(to);
    out.keep.push({ from: path, to });
  };
  for (const action of plan) {
    switch (action.type) {
      case "upload":
        if (!ctx.readOnly(action.path)) break;
        keepOutside(action.path);
        out.restore.push(action.path);
        continue;
      case "conflict":
        if (!ctx.readOnly(action.path)) break;
        if (action.local.kind === "file") keepOutside(action.path);
        out.restore.push(action.path);
        continue;
      case "deleteRemote":
        if (!ctx.readOnly(action.path)) break;
        out.restore.push(action.path);
        continue;
      case "mkdirRemote":
        if (!ctx.readOnly(action.path)) break;
        out.localOnly.push(action.path);
        continue;
      case "moveRemote": {
        const from = ctx.readOnly(action.from);
        const to = ctx.readOnly(action.to);
        if (!from && !to) break;
        if (from && !to) {
          // Out of the share: a new own file (or folder) there, and the shared one comes back.
          out.actions.push(
            action.local.kind === "file"
              ? { type: "upload", path: action.to, local: action.local, baseRev: 0 }
              : { type: "mkdirRemote", path: action.to, baseRev: 0 },
          );
        } else if (!from && to) {
          // An own file moved into the share goes back where it was (it is still the own one there).
          out.keep.push({ from: action.to, to: action.from });
          names.add(action.from);
          continue;
        } else if (action.local.kind === "file") keepOutside(action.to);
        else out.localOnly.push(action.to);
        out.restore.push(action.from);
        continue;
      }
      default:
        break;
    }
    out.actions.push(action);
  }
  return out;
}

/**
 * Keeps a share whose mount folder (or file) is gone from this device whole on the server: a share is its
 * owner's, so removing or renaming it here must not delete it for everyone. Every delete below a gone root is
 * taken out of the plan, and a move out of it becomes a copy (uploaded as the user's own files: their content
 * is on the server, so only manifests go). Returns the actions left and the roots to bring back (a user leaves
 * a share with `filesync unshare` instead).
 */
export function keepShareRoots(
  plan: readonly Action[],
  goneRoots: readonly string[],
): { actions: Action[]; restore: string[] } {
  const below = (path: string) => goneRoots.some((r) => path === r || path.startsWith(r + "/"));
  const touched = plan.some((a) =>
    (a.type === "deleteRemote" && below(a.path)) || (a.type === "moveRemote" && below(a.from))
  );
  if (!touched) return { actions: [...plan], restore: [] };
  const actions = plan.flatMap((a): Action[] => {
    if (a.type === "deleteRemote" && below(a.path)) return [];
    if (a.type !== "moveRemote" || !below(a.from)) return [a];
    return a.local.kind === "file"
      ? [{ type: "upload", path: a.to, local: a.local, baseRev: 0 }]
      : [{ type: "mkdirRemote", path: a.to, baseRev: 0 }];
  });
  return { actions, restore: [...goneRoots] };
}
