// Local admin socket: lets `filesync user …` act through the running server, which owns the KV file.
import { dirname, join } from "node:path";
import type { WireDevice } from "../protocol/messages.ts";

/** Path of the admin socket in a data folder: inside the private folder `DIR/admin/`. */
export function adminSocketPath(dataDir: string): string {
  return join(dataDir, "admin", "admin.sock");
}

/** An admin request and its answer, as JSON lines. */
export type AdminRequest =
  | { op: "user-add"; name: string; password: string }
  | { op: "user-passwd"; name: string; password: string }
  | { op: "user-remove"; name: string }
  | { op: "user-list" }
  | { op: "user-quota"; name: string; set?: { quota: number | null | "default" } }
  | { op: "user-devices"; name: string }
  | { op: "user-revoke"; name: string; device: string }
  | { op: "gc" }
  /** The running server's statistics (`chunkStore`: with the chunk store's size, which may take a walk). */
  | { op: "stats"; chunkStore?: boolean }
  | { op: "ping" };
/** The answer to an {@linkcode AdminRequest}. */
export type AdminReply =
  | {
    ok: true;
    users?: string[];
    report?: Record<string, number>;
    stats?: Record<string, unknown>;
    /** For user-quota: bytes of live files, the user's own quota and the server's default (null: none). */
    quota?: { used: number; own?: number | null; serverDefault?: number | null };
    /** For user-devices: the user's devices in order of login. */
    devices?: WireDevice[];
    /** For user-revoke: the device revoked, and whether it had been revoked before. */
    revoked?: { device: WireDevice; already: boolean };
  }
  | { ok: false; error: string };

/**
 * Serves admin requests on a unix socket until closed. The socket is made inside a folder of mode 0700 that
 * belongs to this process's user, so no other local user can reach it even in the instant between its
 * creation (with the process's umask) and its chmod to 0600. Resolves null on Windows when the runtime cannot
 * listen on a unix socket there: the server then runs without one (`filesync user …` only while it is stopped).
 */
export async function serveAdmin(
  dataDir: string,
  handle: (request: AdminRequest) => Promise<AdminReply>,
): Promise<Deno.Listener | null> {
  const path = adminSocketPath(dataDir);
  await makePrivateFolder(dirname(path));
  // A socket left by a version that kept it in the data folder itself.
  await Deno.remove(join(dataDir, "admin.sock")).catch(() => {});
  await Deno.remove(path).catch(() => {});
  let listener: Deno.Listener;
  try {
    listener = Deno.listen({ transport: "unix", path });
  } catch (error) {
    if (Deno.build.os === "windows") return null;
    throw error;
  }
  if (Deno.build.os !== "windows") await Deno.chmod(path, 0o600);
  (async () => {
    for await (const conn of listener) {
      (async () => {
        try {
          const text = await readAll(conn);
          let reply: AdminReply;
          try {
            reply = await handle(JSON.parse(text) as AdminRequest);
          } catch (error) {
            reply = { ok: false, error: (error as Error).message };
          }
          await conn.write(new TextEncoder().encode(JSON.stringify(reply) + "\n"));
        } catch {
          /* client went away */
        } finally {
          try {
            conn.close();
          } catch { /* closed */ }
        }
      })();
    }
  })().catch(() => {});
  return listener;
}

/** Creates `dir` as 0700 (or makes it so), and checks that it belongs to this user and is a real folder. */
async function makePrivateFolder(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await Deno.lstat(dir);
  if (!info.isDirectory) throw new Error(`Cannot make the admin socket: "${dir}" is not a folder`);
  const uid = Deno.uid();
  if (uid !== null && info.uid !== uid) {
    throw new Error(`Cannot make the admin socket: "${dir}" belongs to another user (uid ${info.uid})`);
  }
  if (Deno.build.os !== "windows" && ((info.mode ?? 0) & 0o777) !== 0o700) await Deno.chmod(dir, 0o700);
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  let text = "";
  const buffer = new Uint8Array(64 * 1024);
  while (!text.includes("\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
    if (text.length > 1_000_000) throw new RangeError("admin request too large");
  }
  return text.split("\n")[0];
}

/** Sends one request to a running server; null if no server is listening in this data folder. */
export async function adminRequest(dataDir: string, request: AdminRequest): Promise<AdminReply | null> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ transport: "unix", path: adminSocketPath(dataDir) });
  } catch {
    return null;
  }
  try {
    await conn.write(new TextEncoder().encode(JSON.stringify(request) + "\n"));
    const text = await readAll(conn);
    return JSON.parse(text) as AdminReply;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}
