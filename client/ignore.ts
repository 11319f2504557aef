// Ignore rules: which local paths never sync (built-in temp and state files plus the user's .filesyncignore).

import { join } from "node:path";
import ignore, { type Ignore } from "ignore";

/** Name of the user's ignore file at the root of a synced folder; it is synced like any other file. */
export const IGNORE_FILE = ".filesyncignore";

/** Built-in rules the user cannot override: client state and filesync's own temporary files. */
const PROTECTED_IGNORES: readonly string[] = [
  "/.filesync/",
  "*.filesync-tmp",
];

/**
 * Rules applied before the user's, in gitignore syntax: the client state folder, filesync's temporary files,
 * and the temporary, lock and metadata files of common editors and operating systems. The user's
 * `.filesyncignore` can re-include the editor and OS entries with `!` rules, but never the first two.
 */
export const BUILTIN_IGNORES: readonly string[] = [
  ...PROTECTED_IGNORES,
  "*.swp", // vim swap files
  "*.swo",
  "*.swx",
  "4913", // vim's probe that the folder is writable
  "*~", // emacs, gedit and others: backups
  ".#*", // emacs lock links
  "\\#*#", // emacs auto-save files ("#" would start a comment)
  ".~lock.*#", // LibreOffice lock files
  "~$*", // Microsoft Office owner files
  ".DS_Store", // macOS
  "Thumbs.db", // Windows
  "desktop.ini",
];

/** Decides which local paths are left out of syncing. */
export interface IgnoreMatcher {
  /**
   * Says whether a relative, `/`-separated path is ignored. `isDir` tells whether it is a folder, so that
   * folder-only rules such as `build/` apply. A path inside an ignored folder is ignored.
   */
  ignores(path: string, isDir: boolean): boolean;
  /**
   * The answer of {@linkcode IgnoreMatcher.ignores} for `path`, an entry named `name` of a folder that is not
   * ignored itself (what a walk that skips ignored folders asks): it may be remembered per name.
   */
  ignoresEntry(path: string, name: string, isDir: boolean): boolean;
}

/** Names remembered by {@linkcode IgnoreMatcher.ignoresEntry} before the memory starts again. */
const ENTRY_MEMO_LIMIT = 20_000;

/**
 * Whether every rule's answer for an entry of a folder not ignored depends on its name, whether it is a folder
 * and whether it is at the root only: rules without a `/` other than a leading or a trailing one.
 */
function rulesByNameOnly(lines: readonly string[]): boolean {
  return lines.every((raw) => {
    let line = raw.trimEnd();
    if (line === "" || line.startsWith("#")) return true;
    if (line.startsWith("!")) line = line.slice(1);
    if (line.endsWith("/")) line = line.slice(0, -1);
    if (line.startsWith("/")) line = line.slice(1);
    return !line.includes("/");
  });
}

/**
 * Builds a matcher from the built-in rules and the text of a `.filesyncignore` (gitignore syntax; `null` or
 * empty for none). Matching is case-sensitive on every platform, so one rules file means the same thing on
 * every device. The root `.filesyncignore` itself is never ignored.
 *
 * @example
 * ```ts
 * const matcher = createIgnoreMatcher("*.log\n!keep.log\nbuild/\n");
 * matcher.ignores("debug.log", false); // true
 * matcher.ignores("keep.log", false); // false
 * matcher.ignores("build", true); // true
 * matcher.ignores("build/out.js", false); // true
 * matcher.ignores("notes.txt.swp", false); // true (built-in)
 * ```
 */
export function createIgnoreMatcher(userRules: string | null): IgnoreMatcher {
  const userText = userRules?.replace(/^\uFEFF/, "") ?? null;
  // The library remembers every path it was asked about: both matchers are built again when the entry memo
  // starts again, so neither grows without bound over a long-running client's scans.
  let protectedRules: Ignore;
  let rules: Ignore;
  const build = () => {
    protectedRules = ignore({ ignorecase: true }).add(PROTECTED_IGNORES);
    rules = ignore({ ignorecase: false }).add(BUILTIN_IGNORES.slice(PROTECTED_IGNORES.length));
    if (userText !== null) rules.add(userText);
  };
  build();
  const byName = rulesByNameOnly([...BUILTIN_IGNORES, ...(userText?.split(/\r?\n/) ?? [])]);
  // One memory per kind of entry (file or folder, at the root or below), keyed by the name itself.
  const memo = [
    new Map<string, boolean>(),
    new Map<string, boolean>(),
    new Map<string, boolean>(),
    new Map<string, boolean>(),
  ];
  let remembered = 0;
  const matcher: IgnoreMatcher = {
    ignores(path: string, isDir: boolean): boolean {
      if (path === "" || path.startsWith("/")) {
        throw new RangeError(`Cannot match ignore rules for ${JSON.stringify(path)}: not a relative path`);
      }
      if (path === IGNORE_FILE && !isDir) return false;
      const subject = isDir ? `${path}/` : path;
      return protectedRules.ignores(subject) || rules.ignores(subject);
    },
    ignoresEntry(path: string, name: string, isDir: boolean): boolean {
      if (!byName) return matcher.ignores(path, isDir);
      const names = memo[(isDir ? 2 : 0) + (path === name ? 1 : 0)];
      const known = names.get(name);
      if (known !== undefined) return known;
      if (remembered >= ENTRY_MEMO_LIMIT) {
        for (const m of memo) m.clear();
        remembered = 0;
        build();
      }
      const answer = matcher.ignores(path, isDir);
      names.set(name, answer);
      remembered++;
      return answer;
    },
  };
  return matcher;
}

/**
 * Reads `root/.filesyncignore`, if present, and builds the matcher for the folder `root` (a local path).
 *
 * @example
 * ```ts
 * const matcher = await loadIgnoreRules("/home/me/Sync");
 * matcher.ignores(".DS_Store", false); // true
 * ```
 *
 * @throws {Deno.errors.PermissionDenied} and other read errors; a missing file just means no user rules.
 */
export async function loadIgnoreRules(root: string): Promise<IgnoreMatcher> {
  let text: string | null = null;
  try {
    text = await Deno.readTextFile(join(root, IGNORE_FILE));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return createIgnoreMatcher(text);
}
