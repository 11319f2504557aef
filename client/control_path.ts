// Where a running client's control socket is: DIR/.filesync/control.sock, or a private fallback for long paths.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { UserError } from "../protocol/user_error.ts";
import { STATE_DIR } from "./state.ts";

/** Name of the control socket inside the folder's state folder. */
export const CONTROL_SOCKET = "control.sock";
/** Longest socket path in bytes: `sun_path` holds 108 bytes with the final NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

/** What the socket path depends on besides the folder (the process's environment and user). */
export interface SocketPlace {
  /** `$XDG_RUNTIME_DIR`, when set. */
  runtimeDir?: string;
  /** The user id, for `/tmp/filesync-UID`. */
  uid: number;
}

/** The socket path of a folder, and the private folder it lies in when that is a fallback (made by the client). */
export interface SocketPath {
  path: string;
  /** The fallback folder to make 0700 (absent: the socket is in `DIR/.filesync/`, private already). */
  fallbackDir?: string;
}

/** The first 16 hex digits of the SHA-256 of the folder's real path: the fallback socket's name. */
export function folderKey(realDir: string): string {
  return createHash("sha256").update(realDir).digest("hex").slice(0, 16);
}

function fits(path: string): boolean {
  return new TextEncoder().encode(path).length <= MAX_SOCKET_PATH_BYTES;
}

/**
 * The control socket of the synced folder whose real path is `realDir`: `realDir/.filesync/control.sock`, or
 * when that is longer than {@linkcode MAX_SOCKET_PATH_BYTES}, `$XDG_RUNTIME_DIR/filesync/KEY.sock` (when set,
 * absolute and short enough), else `/tmp/filesync-UID/KEY.sock`, where KEY is {@linkcode folderKey}.
 *
 * @example
 * ```ts
 * controlSocketPath("/home/me/Sync", { uid: 1000 }); // { path: "/home/me/Sync/.filesync/control.sock" }
 * ```
 */
export function controlSocketPath(realDir: string, place: SocketPlace): SocketPath {
  const inFolder = join(realDir, STATE_DIR, CONTROL_SOCKET);
  if (fits(inFolder)) return { path: inFolder };
  const name = `${folderKey(realDir)}.sock`;
  const runtime = place.runtimeDir;
  if (runtime && runtime.startsWith("/")) {
    const fallbackDir = join(runtime, "filesync");
    const path = join(fallbackDir, name);
    if (fits(path)) return { path, fallbackDir };
  }
  const fallbackDir = `/tmp/filesync-${place.uid}`;
  return { path: join(fallbackDir, name), fallbackDir };
}

/** The socket path of a folder as this process sees it (its real path, `$XDG_RUNTIME_DIR`, its uid). */
export async function socketPathOf(dir: string): Promise<SocketPath> {
  const realDir = await Deno.realPath(dir);
  return controlSocketPath(realDir, {
    runtimeDir: Deno.env.get("XDG_RUNTIME_DIR") || undefined,
    uid: Deno.uid() ?? 0,
  });
}

/**
 * Makes the fallback folder (0700) if needed and checks it is a real folder of this user that no one else may
 * enter; anything else is refused with a {@linkcode UserError} (the socket is then not made).
 */
export async function makeFallbackDir(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  if (Deno.build.os === "windows") return; // no file modes there
  const info = await Deno.lstat(dir);
  const why = privateFolderProblem(info, Deno.uid());
  if (why) throw new UserError(`Cannot make the control socket in "${dir}": ${why}`);
}

/** Why a folder is not fit to hold the control socket (null: it is): not a folder, another user's, not private. */
export function privateFolderProblem(
  info: { isDirectory: boolean; isSymlink: boolean; uid: number | null; mode: number | null },
  uid: number | null,
): string | null {
  if (info.isSymlink || !info.isDirectory) return "it is not a folder";
  if (uid !== null && info.uid !== null && info.uid !== uid) {
    return `it belongs to another user (uid ${info.uid})`;
  }
  const mode = (info.mode ?? 0) & 0o777;
  if (mode & 0o077) return `other users may use it (mode ${mode.toString(8)}; it must be 700)`;
  return null;
}
