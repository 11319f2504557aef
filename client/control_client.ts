// The commands' side of the control socket: ask a running client, follow its events, send server requests by it.
import { RpcError } from "../protocol/rpc.ts";
import { socketPathOf } from "./control_path.ts";
import { type ControlRequest, LineSplitter, MAX_REPLY_BYTES } from "./control_protocol.ts";
import type { TimedEvent } from "./events.ts";
import { type Mount, MountTable } from "./mounts.ts";

/** One server request and its reply's message: an RpcPeer, or a running client's connection through its socket. */
export interface ServerLink {
  request(op: string, body?: Record<string, unknown>): Promise<{ message: Record<string, unknown> }>;
  close(): void;
}

/** A connection to a running client's control socket, reading one JSON line at a time. */
class ControlConn {
  #conn: Deno.Conn;
  #split = new LineSplitter(MAX_REPLY_BYTES);
  #lines: string[] = [];
  #buffer = new Uint8Array(64 * 1024);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async send(request: ControlRequest): Promise<void> {
    const bytes = new TextEncoder().encode(JSON.stringify(request) + "\n");
    for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
  }

  /** The next line as JSON; null when the client closed the connection. */
  async next(): Promise<Record<string, unknown> | null> {
    while (this.#lines.length === 0) {
      const n = await this.#conn.read(this.#buffer);
      if (n === null) return null;
      this.#lines.push(...this.#split.push(this.#buffer.subarray(0, n)).filter((l) => l.trim() !== ""));
    }
    return JSON.parse(this.#lines.shift()!) as Record<string, unknown>;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
}

/** Connects to the control socket of the client running for the synced folder `root`; null when none runs. */
async function connectControl(root: string): Promise<ControlConn | null> {
  try {
    const { path } = await socketPathOf(root);
    return new ControlConn(await Deno.connect({ transport: "unix", path }));
  } catch {
    return null; // no socket, or nobody listening on it (a client that died)
  }
}

/** Sends one request to the running client and returns its reply; null when no client runs for `root`. */
export async function controlRequest(
  root: string,
  request: ControlRequest,
): Promise<Record<string, unknown> | null> {
  const conn = await connectControl(root);
  if (!conn) return null;
  try {
    await conn.send(request);
    const reply = await conn.next();
    if (reply === null) throw new Error("the client closed the control connection without answering");
    return reply;
  } finally {
    conn.close();
  }
}

/**
 * Streams the running client's events to `onEvent` until it stops (resolves true) or `signal` aborts; false
 * when no client runs for `root`.
 */
export async function followEvents(
  root: string,
  onEvent: (event: TimedEvent) => void,
  signal?: AbortSignal,
): Promise<boolean> {
  const conn = await connectControl(root);
  if (!conn) return false;
  const abort = () => conn.close();
  signal?.addEventListener("abort", abort);
  try {
    await conn.send({ op: "follow" });
    const first = await conn.next();
    if (first?.ok !== true) throw new Error(String(first?.error ?? "the client refused to stream events"));
    while (true) {
      const event = await conn.next();
      if (event === null) return true;
      onEvent(event as unknown as TimedEvent);
    }
  } catch (error) {
    if (signal?.aborted) return true;
    if (error instanceof Deno.errors.BadResource || error instanceof Deno.errors.ConnectionReset) return true;
    throw error;
  } finally {
    signal?.removeEventListener("abort", abort);
    conn.close();
  }
}

/**
 * A link to the server through the client running for `root` (its own live connection), with the mounts it
 * shows; null when no client runs there or it is not connected now (it may be waiting to reconnect to a server
 * that is back: the command then connects by itself). Error replies come back as {@linkcode RpcError}, as
 * from the server.
 */
export async function clientLink(root: string): Promise<{ peer: ServerLink; mounts: MountTable } | null> {
  const reply = await controlRequest(root, { op: "mounts" });
  if (reply === null) return null;
  if (reply.ok !== true || !Array.isArray(reply.mounts)) {
    throw new Error(`The running client did not list its mounts: ${String(reply.error ?? "no list")}`);
  }
  if (reply.connected === false) return null;
  const mounts = new MountTable(reply.mounts as Mount[]);
  const peer: ServerLink = {
    async request(op, body = {}) {
      const answer = await controlRequest(root, { op: "rpc", request: op, body });
      if (answer === null) throw new RpcError("closed", "the running client stopped");
      if (answer.ok !== true) {
        throw new RpcError(
          typeof answer.code === "string" ? answer.code : "control",
          String(answer.error),
          (answer.detail ?? {}) as Record<string, unknown>,
        );
      }
      return { message: answer.message as Record<string, unknown> };
    },
    close() {},
  };
  return { peer, mounts };
}
