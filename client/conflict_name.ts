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
  / \(conflicted copy from [^)]+ \d{4,}-\d{2}-\d{2} \d{6}(?: [1-9]\d*)?\)(?:\.[^.]+)?$/u;

const encoder = new TextEncoder();

/**
 * The path for the losing side of a conflict on `path`: the same folder, with
 * ` (conflicted copy from DEVICE YYYY-MM-DD HHMMSS)` before the extension, the date and time in the local
 * time zone. While `taken` says a candidate exists, ` 2`, ` 3`, … are added inside the parentheses.
 *
 * The extension is the text after the last `.` of the name, unless that dot is the first character
 * (`.bashrc` has none) or the last. The device name has `/`, `\`, `)` and control characters replaced by
 * `_`, is trimmed and cut to 64 characters (and 128 UTF-8 bytes), and becomes `unknown device` if empty. If
 * the name would be longer than {@linkcode MAX_NAME_BYTES}, the part before the suffix is shortened at a code
 * point boundary; only when the suffix and extension alone are too long is the extension given up too.
 *
 * @example
 * ```ts
 * const when = new Date(2026, 10, 24, 4, 15, 0);
 * conflictCopyPath("dir/report.txt", "laptop", when, () => false);
 * // "dir/report (conflicted copy from laptop 2026-11-24 041500).txt"
 * conflictCopyPath("dir/report.txt", "laptop", when, (p) => p.endsWith("041500).txt"));
 * // "dir/report (conflicted copy from laptop 2026-11-24 041500 2).txt"
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
  const dot = name.lastIndexOf(".");
  const hasExtension = dot > 0 && dot < name.length - 1;
  const stem = hasExtension ? name.slice(0, dot) : name;
  const extension = hasExtension ? name.slice(dot) : "";
  const label = `conflicted copy from ${sanitizeDevice(device)} ${formatLocalTime(when)}`;
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

/** `YYYY-MM-DD HHMMSS` in the local time zone. */
function formatLocalTime(when: Date): string {
  const two = (value: number) => String(value).padStart(2, "0");
  return `${String(when.getFullYear()).padStart(4, "0")}-${two(when.getMonth() + 1)}-${
    two(when.getDate())
  } ` +
    `${two(when.getHours())}${two(when.getMinutes())}${two(when.getSeconds())}`;
}

function byteLength(text: string): number {
  return encoder.encode(text).length;
}
