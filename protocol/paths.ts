// Path rules shared by client and server: what a path on the wire may look like, and helpers over paths.

/** Longest path allowed, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096;

/** Longest single path segment (file or folder name) allowed, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;

/** Name of the client's state folder at the root of a synced folder; never valid as a first segment. */
const RESERVED_ROOT_NAME = ".filesync";

// deno-lint-ignore no-control-regex
const CONTROL_CHAR = /[\u0000-\u001f\u007f-\u009f]/;
const PRINTABLE_ASCII = /^[\u0020-\u007e]*$/;
const WINDOWS_DRIVE = /^[A-Za-z]:/;

/**
 * Thrown when a path breaks the path rules. Callers that validate untrusted input (wire messages, names found
 * on disk) catch it; `path` is the offending value.
 *
 * @example
 * ```ts
 * try {
 *   validatePath("a/../b");
 * } catch (err) {
 *   if (!(err instanceof PathError)) throw err;
 *   console.log(err.path, err.message); // a/../b Invalid path "a/../b": ".." is not allowed
 * }
 * ```
 */
export class PathError extends Error {
  override name = "PathError";
  /** The rejected path (converted to a string if it was not one). */
  path: string;

  /** Builds the error for `path`, with `reason` saying which rule it breaks. */
  constructor(path: string, reason: string) {
    super(`Invalid path ${quote(path)}: ${reason}`);
    this.path = path;
  }
}

/**
 * Checks a path against the wire rules and returns it unchanged if it is valid.
 *
 * A valid path is a non-empty, relative (no leading `/`, no Windows drive `C:` or UNC `\\server` prefix),
 * `/`-separated, NFC-normalized string of at most {@linkcode MAX_PATH_BYTES} UTF-8 bytes, whose segments
 * are non-empty, not `.` or `..`, at most {@linkcode MAX_NAME_BYTES} bytes, free of backslashes, control
 * characters and lone surrogates, and whose first segment is not the client state folder `.filesync`
 * (compared ignoring case and trailing dots or spaces, which some file systems drop).
 *
 * @example
 * ```ts
 * validatePath("docs/naïve.txt"); // "docs/naïve.txt"
 * validatePath("a/../b"); // throws PathError: Invalid path "a/../b": ".." is not allowed
 * ```
 *
 * @throws {PathError} if the path breaks a rule; the message names the rule.
 */
export function validatePath(path: string): string {
  if (typeof path !== "string") {
    throw new PathError(describe(path), `expected a string, got ${typeName(path)}`);
  }
  const reason = invalidReason(path);
  if (reason !== null) throw new PathError(path, reason);
  return path;
}

/**
 * Says whether {@linkcode validatePath} would accept the path.
 *
 * @example
 * ```ts
 * isValidPath("a/b.txt"); // true
 * isValidPath("/etc/passwd"); // false
 * ```
 */
export function isValidPath(path: string): boolean {
  return typeof path === "string" && invalidReason(path) === null;
}

/** Printable ASCII other than `/` and `\\`: a name of only these needs no NFC, control or surrogate check. */
const PLAIN_NAME = /^[\u0020-\u002e\u0030-\u005b\u005d-\u007e]+$/;

/**
 * A fast yes for a path made of a valid folder path and one more name (`atRoot` when the folder is the root):
 * true when the name is plain printable ASCII and the whole is certainly valid. False means "not known":
 * check the path with {@linkcode validatePath}.
 *
 * @example
 * ```ts
 * isPlainChild("docs/a.txt", "a.txt", false); // true
 * isPlainChild("docs/naïve.txt", "naïve.txt", false); // false: check with validatePath
 * ```
 */
export function isPlainChild(path: string, name: string, atRoot: boolean): boolean {
  return name.length <= MAX_NAME_BYTES && path.length <= MAX_PATH_BYTES / 3 && name !== "." &&
    name !== ".." && PLAIN_NAME.test(name) &&
    !(atRoot && (isReservedRootName(name) || WINDOWS_DRIVE.test(name)));
}

/**
 * The path of the folder holding a valid path, or `null` for a path at the root.
 *
 * @example
 * ```ts
 * parentPath("a/b/c"); // "a/b"
 * parentPath("a"); // null
 * ```
 */
export function parentPath(path: string): string | null {
  const slash = path.lastIndexOf("/");
  return slash === -1 ? null : path.slice(0, slash);
}

/**
 * The last segment of a valid path.
 *
 * @example
 * ```ts
 * baseName("a/b/c.txt"); // "c.txt"
 * baseName("a"); // "a"
 * ```
 */
export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/**
 * Joins a folder path (`null` or `""` for the root) and a single name.
 *
 * @example
 * ```ts
 * joinPath("a/b", "c.txt"); // "a/b/c.txt"
 * joinPath(null, "c.txt"); // "c.txt"
 * ```
 *
 * @throws {RangeError} if `name` is empty or contains `/`.
 */
export function joinPath(parent: string | null, name: string): string {
  if (name === "" || name.includes("/")) {
    throw new RangeError(`Cannot join path ${quote(name)}: expected a single non-empty name`);
  }
  return parent === null || parent === "" ? name : `${parent}/${name}`;
}

/**
 * Says whether `path` lies strictly inside the folder `ancestor` (a path is not its own descendant).
 *
 * @example
 * ```ts
 * isDescendant("a/b/c", "a"); // true
 * isDescendant("ab", "a"); // false
 * isDescendant("a", "a"); // false
 * ```
 */
export function isDescendant(path: string, ancestor: string): boolean {
  return path.length > ancestor.length && path.charCodeAt(ancestor.length) === SLASH &&
    path.startsWith(ancestor);
}

/**
 * The folders that contain a valid path, outermost first.
 *
 * @example
 * ```ts
 * ancestorsOf("a/b/c"); // ["a", "a/b"]
 * ancestorsOf("a"); // []
 * ```
 */
export function ancestorsOf(path: string): string[] {
  const result: string[] = [];
  for (let slash = path.indexOf("/"); slash !== -1; slash = path.indexOf("/", slash + 1)) {
    result.push(path.slice(0, slash));
  }
  return result;
}

/**
 * The number of segments in a valid path.
 *
 * @example
 * ```ts
 * depth("a"); // 1
 * depth("a/b"); // 2
 * ```
 */
export function depth(path: string): number {
  let count = 1;
  for (let slash = path.indexOf("/"); slash !== -1; slash = path.indexOf("/", slash + 1)) count++;
  return count;
}

/**
 * Orders paths segment by segment, each segment by Unicode code point (the same order as their UTF-8 bytes),
 * so a folder sorts directly before its contents: `"a"`, `"a/b"`, `"a/c"`, `"a b"`. Usable as an
 * `Array.prototype.sort` comparator.
 *
 * @example
 * ```ts
 * ["a b", "a/b", "a"].sort(comparePaths); // ["a", "a/b", "a b"]
 * ```
 *
 * @returns a negative number if `a` sorts first, a positive number if `b` does, 0 if they are equal.
 */
export function comparePaths(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      // A segment that ends here is a prefix of the other one, so "/" sorts before every other character.
      if (x === SLASH) return -1;
      if (y === SLASH) return 1;
      return codePointOrder(x) - codePointOrder(y);
    }
  }
  return a.length - b.length;
}

const SLASH = 0x2f;

/** Maps a UTF-16 code unit so that surrogates (code points above U+FFFF) sort after U+E000–U+FFFF. */
function codePointOrder(unit: number): number {
  if (unit < 0xd800) return unit;
  return unit >= 0xe000 ? unit - 0x800 : unit + 0x2000;
}

/** Which rule a string breaks, or null if it is a valid path. */
function invalidReason(path: string): string | null {
  if (path === "") return "the path is empty";
  if (!path.isWellFormed()) return "contains a lone surrogate (invalid UTF-16)";
  const bytes = utf8Length(path);
  if (bytes > MAX_PATH_BYTES) return `${bytes} UTF-8 bytes is longer than the limit of ${MAX_PATH_BYTES}`;
  if (path.startsWith("/")) return "absolute paths are not allowed";
  if (path.startsWith("\\\\")) return "Windows UNC paths are not allowed";
  if (WINDOWS_DRIVE.test(path)) return "Windows drive paths are not allowed";
  if (path.includes("\\")) return "backslash is not allowed";
  const control = CONTROL_CHAR.exec(path);
  if (control !== null) return `control character ${codePointName(control[0])} is not allowed`;
  if (!PRINTABLE_ASCII.test(path) && path.normalize("NFC") !== path) return "not NFC-normalized";
  let start = 0;
  while (true) {
    const slash = path.indexOf("/", start);
    const segment = path.slice(start, slash === -1 ? path.length : slash);
    if (segment === "") {
      return slash === -1 ? "trailing slash is not allowed" : "empty segment is not allowed";
    }
    if (segment === "." || segment === "..") return `"${segment}" is not allowed`;
    const segmentBytes = utf8Length(segment);
    if (segmentBytes > MAX_NAME_BYTES) {
      return `name of ${segmentBytes} UTF-8 bytes is longer than the limit of ${MAX_NAME_BYTES}`;
    }
    if (start === 0 && isReservedRootName(segment)) {
      return `"${RESERVED_ROOT_NAME}" is reserved for client state`;
    }
    if (slash === -1) return null;
    start = slash + 1;
  }
}

function isReservedRootName(segment: string): boolean {
  if (segment.length < RESERVED_ROOT_NAME.length) return false;
  // Windows drops trailing dots and spaces, and case-insensitive file systems fold case (long s folds to s).
  const trimmed = segment.replace(/[. ]+$/, "");
  return trimmed.toUpperCase().toLowerCase() === RESERVED_ROOT_NAME;
}

/** UTF-8 length of a well-formed string, without encoding it. */
function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0x80) bytes += unit < 0x800 ? 1 : unit >= 0xd800 && unit < 0xe000 ? 1 : 2;
  }
  return bytes;
}

function codePointName(char: string): string {
  return `U+${char.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}`;
}

/** Quotes a path for a message: escapes control characters and lone surrogates, and shortens long paths. */
function quote(path: string): string {
  const shown = path.length > 100 ? `${Array.from(path).slice(0, 80).join("")}…` : path;
  return JSON.stringify(shown);
}

function describe(value: unknown): string {
  try {
    return String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function typeName(value: unknown): string {
  return value === null ? "null" : typeof value;
}

// --- names every platform can hold ---------------------------------------------------------------------------

/**
 * Error code of a commit change refused because some device of the user could not hold the name: see
 * {@linkcode unportableNameReason} and {@linkcode foldName} (two names of a folder that differ only in case).
 */
export const BAD_NAME_CODE = "bad_name";

/** Windows device names, reserved with any extension and any case (`CON`, `aux.txt`, `Com1.tar.gz`). */
const WINDOWS_DEVICE =
  /^(?:con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3]) *(?:\..*)?$/i;
/** Characters Windows refuses in a name (macOS Finder refuses `:` too). */
const WINDOWS_FORBIDDEN = /[<>:"|?*]/;
/**
 * Characters that change how a name reads without being seen: bidirectional controls (U+061C, U+200E, U+200F,
 * U+202A–U+202E, U+2066–U+2069), line and paragraph separators (U+2028, U+2029), zero-width space and word
 * joiners (U+200B, U+2060–U+2064), the byte-order mark (U+FEFF) and U+180E. Zero-width joiners (U+200C,
 * U+200D) stay allowed: emoji sequences and several scripts need them.
 */
const INVISIBLE = /[\u061c\u180e\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/;

/**
 * Why a single name (one path segment) cannot be held on every platform a user's devices may run (Windows,
 * macOS, Linux), or null when it can. The rules: no Windows device name (`CON`, `PRN`, `AUX`, `NUL`, `COM0`–`COM9`,
 * `LPT0`–`LPT9`, with any extension or case), none of `< > : " | ? *`, no trailing dot or space, and no invisible
 * or bidirectional-control character (see the list in the source). Names that are invalid on the wire at all
 * (see {@linkcode validatePath}) are not this function's concern.
 *
 * @example
 * ```ts
 * unportableNameReason("notes.txt"); // null
 * unportableNameReason("aux.txt"); // "\"aux\" is a reserved device name on Windows"
 * unportableNameReason("a?b"); // "\"?\" is not allowed on Windows"
 * ```
 */
export function unportableNameReason(name: string): string | null {
  if (WINDOWS_DEVICE.test(name)) {
    return `${JSON.stringify(name.replace(/ *\..*$/, ""))} is a reserved device name on Windows`;
  }
  const forbidden = WINDOWS_FORBIDDEN.exec(name);
  if (forbidden !== null) return `${JSON.stringify(forbidden[0])} is not allowed on Windows`;
  if (/[. ]$/.test(name)) {
    return `a name ending in ${name.endsWith(".") ? "a dot" : "a space"} is not allowed on Windows`;
  }
  const invisible = INVISIBLE.exec(name);
  if (invisible !== null) {
    return `invisible or text-direction character ${codePointName(invisible[0])} is not allowed`;
  }
  return null;
}

/**
 * Why some segment of a valid path cannot be held on every platform, naming the segment, or null.
 *
 * @example
 * ```ts
 * unportablePathReason("docs/a.txt"); // null
 * unportablePathReason("CON/a.txt"); // "name \"CON\": \"CON\" is a reserved device name on Windows"
 * ```
 */
export function unportablePathReason(path: string): string | null {
  for (const name of path.split("/")) {
    const reason = unportableNameReason(name);
    if (reason !== null) return `name ${quote(name)}: ${reason}`;
  }
  return null;
}

/**
 * The form of a name that case-insensitive file systems (Windows, macOS by default) compare: two names of one
 * folder with the same folded form cannot both exist there.
 *
 * @example
 * ```ts
 * foldName("Readme.txt") === foldName("README.TXT"); // true
 * ```
 */
export function foldName(name: string): string {
  return name.normalize("NFC").toUpperCase().toLowerCase();
}
