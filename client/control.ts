// The running client's control socket: status, live events, pause/resume, and server requests over its connection.
import { RpcError } from "../protocol/rpc.ts";
import { UserError } from "../protocol/user_error.ts";
import { makeFallbackDir, socketPathOf } from "./control_path.ts";
import {
  type ControlError,
  ControlRequestError,
  LineSplitter,
  MAX_REQUEST_BYTES,
  parseControlRequest,
} from "./control_protocol.ts";
import type { EventBus } from "./events.ts";
import type { Mount } from "./mounts.ts";
import { type StatusFacts, type StatusReport, StatusTracker } from "./status.ts";

/** Bytes of events a follower may leave unread before it is dropped (a slow reader never slows syncing). */
export const FOLLOWER_QUEUE_BYTES = 4 * 1024 * 1024;

/** What the control socket asks of the running client. */
export interface ControlHandlers {
  status(): StatusReport;
  /** Pauses syncing; false when it was paused already. */
  pause(): boolean;
  /** Resumes syncing; false when it was not paused. */
  resume(): boolean;
  /** Where the namespaces show in the folder now. */
  mounts(): readonly Mount[];
  /** Whether the client is connected to the server now (else commands connect by themselves). */
  connected(): boolean;
  /** Sends one server request over the client's connection; throws {@linkcode RpcError} (code `offline` too). */
  rpc(op: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/** Options of {@linkcode ControlServer.start}. */
export interface ControlOptions {
  /** The synced folder. */
  dir: string;
  /** The client's events, streamed to followers. */
  events: EventBus;
  handlers: ControlHandlers;
  /** @default FOLLOWER_QUEUE_BYTES */
  followerQueueBytes?: number;
}

const encoder = new TextEncoder();
const windows = Deno.build.os === "windows";

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* closed already */ }
}

/** True when something answers on the Unix socket at `path`. */
export async function socketAnswers(path: string): Promise<boolean> {
  try {
    close(await Deno.connect({ transport: "unix", path }));
    return true;
  } catch {
    return false;
  }
}

/**
 * The control socket of a running client (see client/control_path.ts for where it is). Mode 0600 inside a
 * folder of mode 0700, so only this user reaches it; a stale socket of a dead client is replaced, a live one
 * refused; removed at {@linkcode close}.
 */
export class ControlServer {
  /** The socket's path. */
  readonly path: string;
  #listener: Deno.Listener;
  #o: ControlOptions;
  #conns = new Set<Deno.Conn>();
  #followers = 0;
  #closed = false;

  private constructor(path: string, listener: Deno.Listener, options: ControlOptions) {
    this.path = path;
    this.#listener = listener;
    this.#o = options;
    this.#accept();
  }

  /**
   * Makes the socket and serves it; {@linkcode UserError} when another client answers there. Resolves null on
   * Windows when the runtime cannot listen on a Unix socket there (the client then runs without one).
   */
  static async start(options: ControlOptions): Promise<ControlServer | null> {
    const { path, fallbackDir } = await socketPathOf(options.dir);
    if (fallbackDir) await makeFallbackDir(fallbackDir);
    const existing = await Deno.lstat(path).catch(() => null);
    if (existing) {
      if (await socketAnswers(path)) {
        throw new UserError(
          `Another filesync client is running for ${options.dir} (its socket ${path} answers)`,
        );
      }
      if (!existing.isSocket) {
        throw new UserError(`Cannot make the control socket: "${path}" exists and is not a socket`);
      }
      await Deno.remove(path); // left by a client that died
    }
    let listener: Deno.Listener;
    try {
      listener = Deno.listen({ transport: "unix", path });
    } catch (error) {
      if (windows) return null;
      throw error;
    }
    if (!windows) await Deno.chmod(path, 0o600);
    return new ControlServer(path, listener, options);
  }

  /** Followers connected now. */
  get followers(): number {
    return this.#followers;
  }

  /** Stops serving, closes every connection and removes the socket. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const conn of this.#conns) close(conn);
    await Deno.remove(this.path).catch(() => {});
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        this.#serve(conn).finally(() => {
          this.#conns.delete(conn);
          close(conn);
        });
      }
    } catch { /* listener closed */ }
  }

  /** Answers request lines in order; `follow` turns the connection into an event stream. */
  async #serve(conn: Deno.Conn): Promise<void> {
    const split = new LineSplitter(MAX_REQUEST_BYTES);
    const buffer = new Uint8Array(16 * 1024);
    try {
      while (!this.#closed) {
        const n = await conn.read(buffer);
        if (n === null) return;
        let lines: string[];
        try {
          lines = split.push(buffer.subarray(0, n));
        } catch {
          await this.#reply(conn, {
            ok: false,
            error: `request too large (more than ${MAX_REQUEST_BYTES} bytes)`,
          });
          return; // the rest of the stream cannot be split into requests any more
        }
        for (const line of lines) {
          if (line.trim() === "") continue;
          let request;
          try {
            request = parseControlRequest(line);
          } catch (error) {
            if (!(error instanceof ControlRequestError)) throw error;
            await this.#reply(conn, { ok: false, error: error.message });
            continue;
          }
          if (request.op === "follow") {
            await this.#follow(conn, buffer);
            return;
          }
          await this.#reply(conn, await this.#answer(request));
        }
      }
    } catch { /* the peer went away */ }
  }

  async #answer(request: Exclude<ReturnType<typeof parseControlRequest>, { op: "follow" }>) {
    const handlers = this.#o.handlers;
    try {
      switch (request.op) {
        case "status":
          return { ok: true, status: handlers.status() };
        case "pause":
          return { ok: true, changed: handlers.pause() };
        case "resume":
          return { ok: true, changed: handlers.resume() };
        case "mounts":
          return { ok: true, mounts: handlers.mounts(), connected: handlers.connected() };
        case "rpc":
          return { ok: true, message: await handlers.rpc(request.request, request.body) };
      }
    } catch (error) {
      const reply: ControlError = { ok: false, error: (error as Error).message };
      if (error instanceof RpcError) {
        reply.code = error.code;
        if (Object.keys(error.detail).length > 0) reply.detail = error.detail;
      }
      return reply;
    }
  }

  async #reply(conn: Deno.Conn, reply: unknown): Promise<void> {
    await writeAll(conn, encoder.encode(JSON.stringify(reply) + "\n"));
  }

  /**
   * Streams every event as a JSON line until the peer closes. Events wait in a queue of their own; a follower
   * that leaves more than the limit unread is dropped, so the client never waits for it.
   */
  async #follow(conn: Deno.Conn, buffer: Uint8Array): Promise<void> {
    const limit = this.#o.followerQueueBytes ?? FOLLOWER_QUEUE_BYTES;
    const queue: Uint8Array[] = [];
    let queued = 0;
    let wake: (() => void) | null = null;
    let done = false;
    const finish = () => {
      done = true;
      wake?.();
    };
    this.#followers++;
    const unsubscribe = this.#o.events.subscribe((event) => {
      if (done) return;
      const line = encoder.encode(JSON.stringify(event) + "\n");
      if (queued + line.length > limit) {
        close(conn); // too slow: dropped
        finish();
        return;
      }
      queue.push(line);
      queued += line.length;
      wake?.();
    });
    // The peer closing its end (or anything it sends) ends the stream.
    const reading = (async () => {
      try {
        while ((await conn.read(buffer)) !== null) { /* ignored */ }
      } catch { /* closed */ }
      finish();
    })();
    try {
      await this.#reply(conn, { ok: true });
      while (!done && !this.#closed) {
        const line = queue.shift();
        if (line === undefined) {
          await new Promise<void>((resolve) => wake = resolve);
          wake = null;
          continue;
        }
        queued -= line.length;
        await writeAll(conn, line);
      }
    } catch {
      /* the peer went away */
    } finally {
      unsubscribe();
      this.#followers--;
      close(conn);
      await reading;
    }
  }
}

/** What {@linkcode startClientControl} uses of the running client (a SyncClient). */
export interface ControlledClient {
  facts(): StatusFacts;
  pause(): boolean;
  resume(): boolean;
  readonly mounts: readonly Mount[];
  readonly connected: boolean;
  forward(op: string, body: Record<string, unknown>): Promise<Record<string, unknown>>;
}

/**
 * Serves the control socket of a running client: status from a {@linkcode StatusTracker} following its events,
 * pause and resume, and forwarded requests (while offline: an error saying the server cannot be reached, as a
 * command's own connection would). Null where there is no Unix socket (see {@linkcode ControlServer.start}).
 */
export async function startClientControl(
  options: { dir: string; events: EventBus; client: ControlledClient },
): Promise<ControlServer | null> {
  const { client, events } = options;
  const tracker = new StatusTracker();
  const unsubscribe = events.subscribe((event) => tracker.observe(event));
  let forwarded = 0;
  let server: ControlServer | null = null;
  const status = () => ({ ...tracker.report(client.facts()), forwarded, followers: server?.followers ?? 0 });
  try {
    return server = await ControlServer.start({
      dir: options.dir,
      events,
      handlers: {
        status,
        pause: () => client.pause(),
        resume: () => client.resume(),
        mounts: () => client.mounts,
        connected: () => client.connected,
        rpc: async (op, body) => {
          forwarded++;
          try {
            return await client.forward(op, body);
          } catch (error) {
            // Not connected, or the connection dropped under the request: the server cannot be reached.
            if (!(error instanceof RpcError) || (error.code !== "offline" && error.code !== "closed")) {
              throw error;
            }
            const report = status();
            throw new RpcError("offline", unreachableLine(report.server, report.offlineReason));
          }
        },
      },
    });
  } catch (error) {
    unsubscribe();
    throw error;
  }
}

/** The line a command prints when the server cannot be reached, from the client's last connection error. */
export function unreachableLine(server: string, reason: string | undefined): string {
  if (reason?.startsWith("Cannot reach server")) return reason;
  return `Cannot reach server ${server}: ${reason ?? "the running client is not connected to it"}`;
}
