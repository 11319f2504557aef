// Safety stop: decides, with no I/O, which deletes of a plan may reach the server (missing root, mass delete).
import type { Action } from "./reconcile.ts";

/**
 * What the client found at the synced folder's root before and after a scan.
 *
 * - `ok`: the folder this client started with, readable, with its `.filesync/` state folder.
 * - `missing`: nothing there, or no longer a folder (moved away, deleted, unmounted).
 * - `unreadable`: there, but the client may not list it (permissions).
 * - `replaced`: a folder is there, but not the one this client started with (another inode or device, or its
 *   `.filesync/` state folder vanished or was replaced).
 */
export type RootStatus =
  | { kind: "ok" }
  | { kind: "missing"; reason: string }
  | { kind: "unreadable"; reason: string }
  | { kind: "replaced"; reason: string };

/** Thresholds and permissions of the safety stop. */
export interface SafetyOptions {
  /** The synced folder, as the user named it (used in messages). */
  dir: string;
  /** A scan may delete at most this share (in percent) of the files in sync without confirmation. @default 50 */
  percent?: number;
  /** Fewer deletes than this never stop. @default 20 */
  min?: number;
  /** `--allow-mass-delete`: mass deletes go through without asking (a missing root still stops). @default false */
  allowMassDelete?: boolean;
}

/** What {@linkcode decideSafety} decides about. */
export interface SafetyInput {
  /** The plan reconcile returned for a scan. */
  plan: readonly Action[];
  /** How many files this device has in sync (files of its base snapshot). */
  baseFiles: number;
  /** The state of the synced folder's root. */
  root: RootStatus;
  /** Paths whose server delete the user confirmed (`filesync confirm-deletes`). */
  confirmed?: ReadonlySet<string>;
}

/** The decision: what may run, what is held back, and what to tell the user. */
export interface SafetyDecision {
  /** The actions that may run now (in plan order). */
  allowed: Action[];
  /** The server deletes held back (in plan order); empty when no stop is in effect. */
  held: Extract<Action, { type: "deleteRemote" }>[];
  /** Why a stop is in effect, or null. `root`: nothing runs at all; `mass`: only the server deletes wait. */
  stop: "root" | "mass" | null;
  /** How many held deletes are files. */
  heldFiles: number;
  /** The plain message for the user (what was found, how to go on), or null when no stop is in effect. */
  message: string | null;
}

/** Default share of the files in sync (percent) above which a scan's deletes wait for confirmation. */
export const MASS_DELETE_PERCENT = 50;
/** Default smallest number of file deletes that can trigger the stop. */
export const MASS_DELETE_MIN = 20;
/** How many example paths a mass-delete message names. */
const EXAMPLES = 3;

/**
 * Decides the safety stop for one scan's plan. A root that is not `ok` stops everything (the scan means
 * nothing: no action runs and every server delete is held). Otherwise, when the server deletes of files not
 * yet confirmed number at least `min` and more than `percent`% of `baseFiles`, those deletes (files and
 * folders) are held and everything else runs; confirmed deletes always run, and `allowMassDelete` lets
 * every delete run.
 *
 * @example 25 of 30 files deleted
 * ```ts
 * const plan = Array.from({ length: 25 }, (_, i) => ({
 *   type: "deleteRemote" as const, path: `f${i}`, kind: "file" as const, baseRev: 1,
 * }));
 * const d = decideSafety({ plan, baseFiles: 30, root: { kind: "ok" } }, { dir: "/home/me/Sync" });
 * // d.stop === "mass", d.allowed.length === 0, d.held.length === 25
 * ```
 */
export function decideSafety(input: SafetyInput, options: SafetyOptions): SafetyDecision {
  const deletes = input.plan.filter((a): a is Extract<Action, { type: "deleteRemote" }> =>
    a.type === "deleteRemote"
  );
  if (input.root.kind !== "ok") {
    return {
      allowed: [],
      held: deletes,
      stop: "root",
      heldFiles: countFiles(deletes),
      message: rootMessage(input.root, options.dir),
    };
  }
  const confirmed = input.confirmed ?? new Set<string>();
  const unconfirmed = deletes.filter((a) => !confirmed.has(a.path));
  const files = countFiles(unconfirmed);
  const percent = options.percent ?? MASS_DELETE_PERCENT;
  const min = options.min ?? MASS_DELETE_MIN;
  const massive = files >= min && files * 100 > percent * input.baseFiles;
  if (!massive || options.allowMassDelete) {
    return { allowed: [...input.plan], held: [], stop: null, heldFiles: 0, message: null };
  }
  const held = new Set<Action>(unconfirmed);
  const examples = unconfirmed.filter((a) => a.kind === "file").slice(0, EXAMPLES).map((a) => a.path);
  const more = files > examples.length ? ", …" : "";
  return {
    allowed: input.plan.filter((a) => !held.has(a)),
    held: unconfirmed,
    stop: "mass",
    heldFiles: files,
    message: `safety stop: this scan would delete ${files} of the ${input.baseFiles} files in sync on the ` +
      `server and on every other device (${
        examples.join(", ")
      }${more}); no delete is sent, everything else ` +
      `keeps syncing. If you deleted them on purpose, run "filesync confirm-deletes --dir ${options.dir}" ` +
      `(or restart the client with --allow-mass-delete); if not, put the files back and syncing resumes by itself.`,
  };
}

function countFiles(actions: readonly Extract<Action, { type: "deleteRemote" }>[]): number {
  return actions.filter((a) => a.kind === "file").length;
}

/** The message of a root that is not `ok`: what was found and how to go on. */
function rootMessage(root: Exclude<RootStatus, { kind: "ok" }>, dir: string): string {
  const none = "nothing is deleted anywhere and nothing syncs until it is back";
  switch (root.kind) {
    case "missing":
      return `safety stop: the synced folder ${dir} is missing (${root.reason}; moved, deleted or unmounted?); ` +
        `${none}. Put it back (move it back or remount it) and syncing resumes by itself; to start over with a ` +
        `new folder there, restart the client (its files come back from the server).`;
    case "unreadable":
      return `safety stop: cannot read the synced folder ${dir} (${root.reason}); ${none}. Make it readable ` +
        `again and syncing resumes by itself.`;
    case "replaced":
      return `safety stop: the synced folder ${dir} was replaced (${root.reason}); ${none}. Put the original ` +
        `folder back (move it back or remount it) and syncing resumes by itself; to sync the folder that is ` +
        `there now, restart the client (nothing is deleted: files it lacks come back from the server).`;
  }
}

/** The last warning printed, and when (ms since the epoch). */
export interface LastWarning {
  /** The text printed ("" before any). */
  message: string;
  /** When it was printed, in ms since the epoch. */
  at: number;
}

/**
 * Whether a safety-stop warning is printed now: a new message at once, the same one again only once
 * `everyMs` has passed since it was last printed.
 *
 * @example
 * ```ts
 * warningDue({ message: "a", at: 0 }, "a", 30_000, 60_000); // false: printed 30 s ago
 * warningDue({ message: "a", at: 0 }, "b", 30_000, 60_000); // true: something else to say
 * ```
 */
export function warningDue(last: LastWarning, message: string, now: number, everyMs: number): boolean {
  return message !== last.message || now - last.at >= everyMs;
}
