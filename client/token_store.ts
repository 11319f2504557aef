// Device tokens of the commands run without a synced folder (ls, get, put, rm): one private file per server and user.
import { join } from "node:path";
import { UserError } from "../protocol/user_error.ts";

/** One login kept by the commands run without a synced folder. */
export interface StoredLogin {
  /** Server host name or address, as given to `--server` (an IPv6 address without brackets). */
  hostname: string;
  port: number;
  user: string;
  /** The device name this login was made with. */
  device: string;
  /** The device id the server gave at login. */
  deviceId: string;
  /** The device token ("" once the server refused it: the next command logs in again). */
  token: string;
  /** PEM of the CA given with `--ca`, reused when a later command gives none. */
  ca?: string;
}

/** Where a login lives: the server and the user. */
export interface LoginKey {
  hostname: string;
  port: number;
  user: string;
}

/**
 * The filesync config folder: `$XDG_CONFIG_HOME/filesync`, else `$HOME/.config/filesync` (on Windows
 * `%APPDATA%\filesync`). A relative `XDG_CONFIG_HOME` is ignored, as the XDG spec says.
 *
 * @example
 * ```ts
 * configDir({ HOME: "/home/alice" }); // "/home/alice/.config/filesync"
 * configDir({ XDG_CONFIG_HOME: "/cfg", HOME: "/home/alice" }); // "/cfg/filesync"
 * ```
 */
export function configDir(env: Record<string, string | undefined>, os: string = Deno.build.os): string {
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && xdg.startsWith("/")) return join(xdg, "filesync");
  if (os === "windows" && env.APPDATA) return join(env.APPDATA, "filesync");
  const home = env.HOME ?? env.USERPROFILE;
  if (!home) throw new UserError("Cannot find the config folder: set HOME or XDG_CONFIG_HOME");
  return join(home, ".config", "filesync");
}

/** The folder of the logins inside the config folder. */
export function loginsDir(config: string): string {
  return join(config, "logins");
}

/**
 * The file name of a login: `HOST_PORT_USER.json`, host and user with every character other than letters,
 * digits, `.` and `-` written as `%XX` (so `_` only separates, no two logins share a file, and none leaves the
 * folder).
 *
 * @example
 * ```ts
 * loginFileName({ hostname: "::1", port: 8443, user: "alice" }); // "%3A%3A1_8443_alice.json"
 * ```
 */
export function loginFileName(key: LoginKey): string {
  return `${fileSafe(key.hostname.toLowerCase())}_${key.port}_${fileSafe(key.user)}.json`;
}

/** Text with every character other than letters, digits, `.` and `-` as `%XX` (UTF-8 bytes). */
function fileSafe(text: string): string {
  return [...new TextEncoder().encode(text)].map((b) => {
    const c = String.fromCharCode(b);
    return /[A-Za-z0-9.-]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  }).join("");
}

/**
 * Checks what a login file holds; throws {@linkcode UserError} naming the file and the field when it is not a
 * login (so a damaged file is one clear line, never a crash).
 */
export function parseLogin(text: string, file: string): StoredLogin {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UserError(
      `Login file ${file} is not valid JSON (${(error as Error).message}): delete it to log in again`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new UserError(`Login file ${file} does not hold an object: delete it to log in again`);
  }
  const record = value as Record<string, unknown>;
  for (const field of ["hostname", "user", "device", "deviceId", "token"] as const) {
    if (typeof record[field] !== "string") {
      throw new UserError(`Login file ${file}: "${field}" is not a string: delete the file to log in again`);
    }
  }
  if (!Number.isInteger(record.port) || (record.port as number) < 1 || (record.port as number) > 65535) {
    throw new UserError(`Login file ${file}: "port" is not a port number: delete the file to log in again`);
  }
  if (record.ca !== undefined && typeof record.ca !== "string") {
    throw new UserError(`Login file ${file}: "ca" is not a string: delete the file to log in again`);
  }
  const login: StoredLogin = {
    hostname: record.hostname as string,
    port: record.port as number,
    user: record.user as string,
    device: record.device as string,
    deviceId: record.deviceId as string,
    token: record.token as string,
  };
  if (typeof record.ca === "string") login.ca = record.ca;
  return login;
}

/** The login kept for a server and user, or null when there is none. */
export async function readStoredLogin(config: string, key: LoginKey): Promise<StoredLogin | null> {
  const file = join(loginsDir(config), loginFileName(key));
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw new UserError(`Cannot read login file ${file}: ${(error as Error).message}`);
  }
  return parseLogin(text, file);
}

/** Every login kept (files that are not logins are skipped), for picking one when no --server is given. */
export async function listStoredLogins(config: string): Promise<StoredLogin[]> {
  const dir = loginsDir(config);
  const out: StoredLogin[] = [];
  try {
    for await (const item of Deno.readDir(dir)) {
      if (!item.isFile || !item.name.endsWith(".json")) continue;
      const file = join(dir, item.name);
      try {
        out.push(parseLogin(await Deno.readTextFile(file), file));
      } catch {
        // a damaged file is reported when it is the one asked for
      }
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return out.sort((a, b) => loginFileName(a) < loginFileName(b) ? -1 : 1);
}

/**
 * Keeps a login: the file is mode 0600 in folders of mode 0700 (made private if they were not), written to a
 * temp file, flushed and renamed into place, then the folder is flushed, so a crash leaves the old file or the
 * new one.
 */
export async function storeLogin(config: string, login: StoredLogin): Promise<string> {
  const dir = loginsDir(config);
  for (const folder of [config, dir]) {
    await Deno.mkdir(folder, { recursive: true, mode: 0o700 });
    if (Deno.build.os !== "windows") await Deno.chmod(folder, 0o700);
  }
  const file = join(dir, loginFileName(login));
  const tmp = `${file}.${crypto.randomUUID()}.tmp`;
  const handle = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    const bytes = new TextEncoder().encode(JSON.stringify(login, null, 2) + "\n");
    let at = 0;
    while (at < bytes.length) at += await handle.write(bytes.subarray(at));
    await handle.syncData();
  } catch (error) {
    handle.close();
    await Deno.remove(tmp).catch(() => {});
    throw error;
  }
  handle.close();
  await Deno.rename(tmp, file);
  if (Deno.build.os !== "windows") {
    using folder = await Deno.open(dir, { read: true });
    await folder.sync();
  }
  return file;
}
