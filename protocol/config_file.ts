// Config files (`DIR/.filesync/config.json`, `DATA/config.json`): any command-line option as a JSON key, checked
// against the command's parseArgs table; the command line wins.
import { dirname, isAbsolute, join } from "node:path";
import { UsageError, UserError } from "./user_error.ts";

/** The name of a config file: `DIR/.filesync/config.json` for the client, `DATA/config.json` for the server. */
export const CONFIG_FILE = "config.json";

/** One option of a parseArgs options table. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
}

/** A parseArgs options table: long option name to its spec. */
export type OptionsTable = Record<string, OptionSpec>;

/** A value parseArgs gives for an option. */
export type OptionValue = string | boolean | (string | boolean)[] | undefined;

/** Keys a config file never holds, whatever the command, with the reason given. */
const SECRET_KEYS: Record<string, string> = {
  password:
    "passwords are never kept in files: set FILESYNC_PASSWORD, pipe it on standard input or type it " +
    "when asked",
  token: "the device token is kept in .filesync/ by the client itself",
};

/** Options of {@linkcode mergeConfig}. */
export interface MergeConfigOptions {
  /** The command's parseArgs options table: the keys a file may hold and their types. */
  options: OptionsTable;
  /** What parseArgs returned for the command line; these win over the file. */
  values: Record<string, OptionValue>;
  /** Path of the config file, named in every error. */
  file: string;
  /** The file's text; null when there is no file (then `values` come back unchanged). */
  text: string | null;
  /** The command, for errors: e.g. "filesync client". */
  command: string;
  /**
   * Options the file may not hold, with the reason (e.g. `dir`: the file is found through it).
   * `help` is never allowed, nor `password` or `token`.
   * @default {}
   */
  refuse?: Record<string, string>;
  /**
   * Options whose values are paths: a relative path in the file is taken relative to the file's folder (a value
   * that starts with a URL scheme such as `file:` or `https:` is left as it is).
   * @default []
   */
  paths?: string[];
}

/** The merged options, and which of them came from the file. */
export interface MergedConfig {
  /** Command-line values, completed with the file's. */
  values: Record<string, OptionValue>;
  /** The options whose value is the file's. */
  fromFile: Set<string>;
  /** The config file's path. */
  file: string;
}

/**
 * Merges a config file's JSON text into the values parseArgs gave for the command line. Every key must be a long
 * option of `options`; a string option takes a string or a number (made a string), a boolean option `true` or
 * `false`, a `multiple` option (given more than once on a command line) a non-empty array of those or one, and
 * the command line's values then replace the file's list whole. Anything else is a {@linkcode UsageError} of one line
 * naming the file and the key.
 *
 * @example
 * ```ts
 * const merged = mergeConfig({
 *   options: { server: { type: "string" }, rescan: { type: "string" } },
 *   values: { server: "example.org:8443" },
 *   file: "/home/me/Sync/.filesync/config.json",
 *   text: '{"server": "localhost:8443", "rescan": 5}',
 *   command: "filesync client",
 * });
 * // merged.values: { server: "example.org:8443", rescan: "5" }
 * ```
 */
export function mergeConfig(options: MergeConfigOptions): MergedConfig {
  const { file, text } = options;
  const values = { ...options.values };
  const fromFile = new Set<string>();
  if (text === null) return { values, fromFile, file };
  // A byte order mark, as some Windows editors write, is not part of the JSON.
  const parsed = parseJson(file, text.replace(/^\uFEFF/, ""));
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new UsageError(
      `${file}: must hold one JSON object ({"option": value, …}), not ${describe(parsed)}`,
    );
  }
  const refuse: Record<string, string> = {
    help: "it is not a setting",
    ...SECRET_KEYS,
    ...options.refuse,
  };
  for (const [key, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (Object.hasOwn(refuse, key)) {
      throw new UsageError(`${file}: "${key}" cannot be set here: ${refuse[key]}`);
    }
    const spec = Object.hasOwn(options.options, key) ? options.options[key] : undefined;
    if (!spec) {
      throw new UsageError(
        `${file}: "${key}" is not an option of ${options.command} (keys are long option names; see ${options.command} --help)`,
      );
    }
    const value = checkValue({ file, key, spec, raw });
    if (values[key] !== undefined) continue; // the command line wins
    values[key] = options.paths?.includes(key) ? resolvePaths(value, dirname(file)) : value;
    fromFile.add(key);
  }
  return { values, fromFile, file };
}

/**
 * Rewrites an error about an option whose value came from the config file so that it names the file, e.g.
 * `Invalid --rescan "x"` becomes `/d/.filesync/config.json: "rescan": Invalid --rescan "x"`. Other errors come
 * back unchanged.
 */
export function blameConfig(error: unknown, merged: MergedConfig): unknown {
  if (!(error instanceof UserError)) return error;
  for (const match of error.message.matchAll(/--([a-z][a-z0-9-]*)/g)) {
    const key = match[1];
    if (!merged.fromFile.has(key)) continue;
    const Kind = error instanceof UsageError ? UsageError : UserError;
    return new Kind(`${merged.file}: "${key}": ${error.message}`);
  }
  return error;
}

/** Options of {@linkcode loadConfig}. */
export interface LoadConfigOptions extends Omit<MergeConfigOptions, "text"> {
  /**
   * Refuse the file when users other than its owner may read or write it (it may hold credentials). Not checked
   * on Windows, which has no such modes.
   * @default false
   */
  private?: boolean;
}

/**
 * Reads the config file (none there: the command line alone) and merges it with
 * {@linkcode mergeConfig}. A file that cannot be read, or (with `private`) that others may read, is a
 * {@linkcode UserError}.
 */
export async function loadConfig(options: LoadConfigOptions): Promise<MergedConfig> {
  const { file } = options;
  let text: string | null;
  try {
    if (options.private && Deno.build.os !== "windows") {
      const mode = ((await Deno.stat(file)).mode ?? 0) & 0o777;
      if (mode & 0o066) {
        throw new UserError(
          `${file}: other users may read or change it (mode 0${
            mode.toString(8)
          }); it may hold credentials: ` +
            `chmod 600 it`,
        );
      }
    }
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof UserError) throw error;
    // No file, or a folder on the way that is not one: no config (the command says what is wrong with the folder).
    if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) text = null;
    else throw new UserError(`Cannot read config file ${file}: ${(error as Error).message}`);
  }
  return mergeConfig({ ...options, text });
}

/** The file's text as JSON, or a UsageError naming the file, line and column. */
function parseJson(file: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    // V8's message quotes the text when it has no position: the position is found apart, the quote dropped.
    const reason = (error as Error).message.replace(/, ".*" is not valid JSON$/s, "")
      .replace(/ (in JSON )?at position \d+.*$/s, "");
    const at = errorPosition(text);
    const before = text.slice(0, at);
    const line = before.split("\n").length;
    const where = at >= text.length
      ? "at the end"
      : `at line ${line}, column ${before.length - before.lastIndexOf("\n")}`;
    throw new UsageError(`${file}: not valid JSON ${where}: ${reason}`);
  }
}

/** Where text that is not JSON goes wrong: the length of its longest prefix that could still begin JSON. */
function errorPosition(text: string): number {
  const fine = (n: number) => {
    try {
      JSON.parse(text.slice(0, n));
      return true;
    } catch (error) {
      const message = (error as Error).message;
      if (/Unexpected end of JSON input/.test(message)) return true;
      const at = /at position (\d+)/.exec(message);
      return at !== null && Number(at[1]) >= n;
    }
  };
  let [low, high] = [0, text.length]; // fine(low) holds; the answer is the largest such n, at most high
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (fine(mid)) low = mid;
    else high = mid - 1;
  }
  // The first character past a prefix that could still begin JSON is the bad one.
  return low;
}

/** A file value checked against its option's type, as parseArgs would give it. */
function checkValue(
  { file, key, spec, raw }: { file: string; key: string; spec: OptionSpec; raw: unknown },
): OptionValue {
  const orList = spec.multiple ? ", or a list of them" : "";
  const one = (item: unknown): string | boolean => {
    if (spec.type === "boolean") {
      if (typeof item === "boolean") return item;
      throw new UsageError(`${file}: "${key}" must be true or false${orList}, not ${describe(item)}`);
    }
    if (typeof item === "string") return item;
    if (typeof item === "number" && Number.isFinite(item)) return String(item);
    throw new UsageError(`${file}: "${key}" must be a number or a string${orList}, not ${describe(item)}`);
  };
  if (!spec.multiple) return one(raw);
  if (!Array.isArray(raw)) return [one(raw)];
  if (raw.length === 0) {
    throw new UsageError(
      `${file}: "${key}" is an empty list: give at least one value, or leave "${key}" out`,
    );
  }
  return raw.map(one);
}

/** How a JSON value is named in an error: "an object", "an array", "null", "a string (\"x\")", "true". */
function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  switch (typeof value) {
    case "object":
      return "an object";
    case "string":
      return `a string (${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)})`;
    case "boolean":
      return `${value}`;
    case "number":
      return `the number ${value}`;
    default:
      return typeof value;
  }
}

/** Relative paths made relative to `folder`; URLs (`file:…`, `https://…`) and absolute paths stay. */
function resolvePaths(value: OptionValue, folder: string): OptionValue {
  const resolve = (item: string | boolean) =>
    typeof item !== "string" || item === "" || isAbsolute(item) || /^[a-z][a-z0-9+.-]+:/i.test(item)
      ? item
      : join(folder, item);
  return Array.isArray(value) ? value.map(resolve) : value === undefined ? value : resolve(value);
}
