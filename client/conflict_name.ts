// Conflict-copy names: the name kept for the losing side of a conflict, beside the file that keeps its name.

import { baseName, joinPath, MAX_NAME_BYTES, parentPath, validatePath } from "../protocol/paths.ts";

/** Longest device name kept in a conflict-copy name, in code points and in UTF-8 bytes. */
const MAX_DEVICE_CHARS = 64;
const MAX_DEVICE_BYTES = 128;
/** How many numbered names to try before giving up (a `taken` that always says yes would loop forever). */
const MAX_ATTEMPTS = 10_000;

// deno-lint-ignore no-control-regex
const DEVICE_UNSAFE = /[/\\)\u0000-\u001f\u007f-\u009f]/g;
const CONFLICT_SUFFIX =
  / \(conflicted copy from [^)]+ \d{4,}-\d{2}-\d{2} \d{6}(?: [1-9]\d*)?\)(?:\.[^.]+){0,2}$/u;
/**
 * Last extensions that wrap another format (compression, encryption): the extension before them is kept with
 * them, so `a.tar.gz` stays a `.tar.gz`.
 */
const WRAPPERS = new Set([
  "gz",
  "bz2",
  "xz",
  "zst",
  "lz",
  "lz4",
  "lzma",
  "lzo",
  "z",
  "br",
  "sz",
  "gpg",
  "pgp",
  "asc",
  "age",
  "enc",
]);
/** An extension kept before a wrapper: 1–5 letters or digits, at least one letter (`tar`, `sql`, `mp4`). */
const INNER_EXTENSION = /^(?=.*[a-z])[a-z0-9]{1,5}$/i;

const encoder = new TextEncoder();

/**
 * The path for the losing side of a conflict on `path`: the same folder, with
 * ` (conflicted copy from DEVICE YYYY-MM-DD HHMMSS)` before the extension, where DEVICE is the device that
 * wrote the losing version and the date and time are `when` (that version's modification time) in UTC. While
 * `taken` says a candidate exists, ` 2`, ` 3`, … are added inside the parentheses.
 *
 * The extension ({@linkcode splitExtension}) is the last `.xxx` of the name, together with the one before it
 * when the last one wraps another format (`a.tar.gz`, `dump.sql.gz`, `notes.txt.gpg`); dots at the start of
 * the name never begin one (`.bashrc` has none, `.config.json` has `.json`), and a name ending in a dot has
 * none. The device name has `/`, `\`, `)` and control characters replaced by `_`, is trimmed and cut to 64
 * characters (and 128 UTF-8 bytes), and becomes `unknown device` if empty. If the name would be longer than
 * {@linkcode MAX_NAME_BYTES}, the part before the suffix is shortened at a code point boundary; only when the
 * suffix and extension alone are too long is the extension given up too.
 *
 * @example
 * ```ts
 * const when = new Date(Date.UTC(2026, 11, 1, 20, 15, 30));
 * conflictCopyPath("dir/report.txt", "laptop", when, () => false);
 * // "dir/report (conflicted copy from laptop 2026-12-01 201530).txt"
 * conflictCopyPath("a.tar.gz", "laptop", when, (p) => p.endsWith("201530).tar.gz"));
 * // "a (conflicted copy from laptop 2026-12-01 201530 2).tar.gz"
 * ```
 *
 * @throws {PathError} if `path` is not a valid path.
 * @throws {RangeError} if `when` is an invalid date, or 10,000 candidate names are all taken.
 */
export function conflictCopyPath(
  path: string,
  device: string,
  when: Date,
  taken: (path: string) => boolean,
): string {
  validatePath(path);
  if (!(when instanceof Date) || Number.isNaN(when.getTime())) {
    throw new RangeError(`Cannot name a conflict copy of ${JSON.stringify(path)}: invalid date`);
  }
  const parent = parentPath(path);
  const name = baseName(path);
  const [stem, extension] = splitExtension(name);
  const label = `conflicted copy from ${sanitizeDevice(device)} ${formatUtcTime(when)}`;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const suffix = ` (${label}${attempt === 1 ? "" : ` ${attempt}`})`;
    const candidate = validatePath(joinPath(parent, fitName(stem, suffix, extension)));
    if (!taken(candidate)) return candidate;
  }
  throw new RangeError(
    `Cannot name a conflict copy of ${JSON.stringify(path)}: ${MAX_ATTEMPTS} candidate names are taken`,
  );
}

/**
 * Says whether a path's name has the form {@linkcode conflictCopyPath} produces.
 *
 * @example
 * ```ts
 * isConflictCopy("dir/report (conflicted copy from laptop 2026-11-24 041500).txt"); // true
 * isConflictCopy("dir/report.txt"); // false
 * ```
 */
export function isConflictCopy(path: string): boolean {
  return CONFLICT_SUFFIX.test(baseName(path));
}

/**
 * Splits a file name into the part before its extension and the extension (with its dot), as
 * {@linkcode conflictCopyPath} does: the last `.xxx`, with the one before it when the last is a compression
 * or encryption suffix (`gz`, `bz2`, `xz`, `zst`, `lz4`, `br`, `gpg`, `age`, …) and the one before is 1–5
 * letters or digits with a letter; leading dots and a trailing dot never make an extension.
 *
 * @example
 * ```ts
 * splitExtension("a.tar.gz"); // ["a", ".tar.gz"]
 * splitExtension("v1.2.txt"); // ["v1.2", ".txt"]
 * splitExtension(".bashrc"); // [".bashrc", ""]
 * splitExtension("Makefile"); // ["Makefile", ""]
 * ```
 */
export function splitExtension(name: string): [string, string] {
  const lead = name.length - name.replace(/^\.+/, "").length;
  const body = name.slice(lead);
  const last = body.lastIndexOf(".");
  if (last <= 0 || last === body.length - 1) return [name, ""];
  let start = last;
  if (WRAPPERS.has(body.slice(last + 1).toLowerCase())) {
    const before = body.lastIndexOf(".", last - 1);
    if (before > 0 && INNER_EXTENSION.test(body.slice(before + 1, last))) start = before;
  }
  return [name.slice(0, lead + start), name.slice(lead + start)];
}

/** `stem + suffix + extension`, with the stem (or, failing that, stem and extension) cut to fit a name. */
function fitName(stem: string, suffix: string, extension: string): string {
  const room = MAX_NAME_BYTES - byteLength(suffix) - byteLength(extension);
  if (room < 0) return cutToBytes(stem + extension, MAX_NAME_BYTES - byteLength(suffix)) + suffix;
  return cutToBytes(stem, room) + suffix + extension;
}

/** The longest prefix of `text` of at most `limit` UTF-8 bytes that ends at a code point boundary. */
function cutToBytes(text: string, limit: number): string {
  if (byteLength(text) <= limit) return text;
  let bytes = 0;
  let end = 0;
  for (const char of text) {
    bytes += byteLength(char);
    if (bytes > limit) break;
    end += char.length;
  }
  // A prefix of an NFC string can need normalizing again when it ends inside a composition sequence.
  const cut = text.slice(0, end).normalize("NFC");
  return byteLength(cut) <= limit ? cut : cutToBytes(cut, limit - 1);
}

function sanitizeDevice(device: string): string {
  const safe = String(device).toWellFormed().normalize("NFC").replace(DEVICE_UNSAFE, "_").trim();
  const short = Array.from(safe).slice(0, MAX_DEVICE_CHARS).join("");
  const name = cutToBytes(short, MAX_DEVICE_BYTES).trim();
  return name === "" ? "unknown device" : name;
}

/** `YYYY-MM-DD HHMMSS` in UTC. */
function formatUtcTime(when: Date): string {
  const two = (value: number) => String(value).padStart(2, "0");
  return `${String(when.getUTCFullYear()).padStart(4, "0")}-${two(when.getUTCMonth() + 1)}-${
    two(when.getUTCDate())
  } ${two(when.getUTCHours())}${two(when.getUTCMinutes())}${two(when.getUTCSeconds())}`;
}

function byteLength(text: string): number {
  return encoder.encode(text).length;
}
