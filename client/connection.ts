// Opens a TLS connection to the server, says HELLO and logs in with a device token or a password.
import { ALPN, PROTOCOL_VERSION } from "../protocol/messages.ts";
import { checkReply } from "../protocol/replies.ts";
import { RpcError, type RpcOptions, RpcPeer } from "../protocol/rpc.ts";
import { UsageError, UserError } from "../protocol/user_error.ts";

/** The server could not be reached now; retrying later may work. */
export class UnreachableError extends Error {
  override name = "UnreachableError";
}

/** Host and port of a `HOST:PORT` argument (IPv6 as `[::1]:PORT`). */
export function parseServerAddress(text: string): { hostname: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    throw new UsageError(`Invalid --server "${text}": expected HOST:PORT, for example localhost:8443`);
  }
  return { hostname: match[1] ?? match[2], port };
}

/** Options of {@linkcode openConnection}. */
export interface ConnectOptions {
  hostname: string;
  port: number;
  /** PEM of the CA to trust; the system store when absent. */
  caPem?: string;
  /** Handshake time limit. @default 10000 */
  timeoutMs?: number;
  rpc?: RpcOptions;
  /** Receives the server's HELLO reply (its `epoch` names the server's journal). */
  onHello?: (reply: Record<string, unknown>) => void;
}

/** Connects, completes TLS and HELLO. Throws {@linkcode UserError} for what retrying cannot fix. */
export async function openConnection(options: ConnectOptions): Promise<RpcPeer> {
  const where = `${options.hostname}:${options.port}`;
  let conn: Deno.TlsConn;
  try {
    conn = await Deno.connectTls({
      hostname: options.hostname,
      port: options.port,
      caCerts: options.caPem ? [options.caPem] : undefined,
      alpnProtocols: [ALPN],
    });
  } catch (error) {
    throw new UnreachableError(`Cannot reach server ${where}: ${describeNetError(error)}`);
  }
  const timer = setTimeout(() => conn.close(), options.timeoutMs ?? 10_000);
  try {
    await conn.handshake();
  } catch (error) {
    try {
      conn.close();
    } catch { /* closed by the timer */ }
    const message = (error as Error).message;
    if (/certificate/i.test(message)) {
      throw new UserError(
        `Server certificate of ${where} is not trusted (${message.replace(/^.*certificate: /, "")}): ` +
          `pass --ca with the server's CA file (printed by the server at start, DATA/certs/ca.pem)`,
      );
    }
    throw new UnreachableError(`TLS handshake with ${where} failed: ${message}`);
  } finally {
    clearTimeout(timer);
  }
  // Every reply is checked against its schema before it is used: a server (or whoever poses as one) gets nothing
  // written that the server's own rules would refuse.
  const peer = new RpcPeer(conn, { idleTimeoutMs: 90_000, checkReply, ...options.rpc });
  try {
    const hello = await peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "filesync-client" });
    options.onHello?.(hello.message);
  } catch (error) {
    peer.close();
    if (error instanceof RpcError && error.code === "version") throw new UserError(error.message);
    throw new UnreachableError(`Server ${where} did not answer HELLO: ${(error as Error).message}`);
  }
  return peer;
}

/**
 * Connects to the first of `servers` that can be reached (nodes of one cluster, in the order given), as
 * {@linkcode openConnection} does. A {@linkcode UserError} (an untrusted certificate, say) stops at once; when
 * none can be reached, the {@linkcode UnreachableError} names each one's reason.
 */
export async function openFirstReachable(
  servers: readonly { hostname: string; port: number }[],
  options: Omit<ConnectOptions, "hostname" | "port"> = {},
): Promise<RpcPeer> {
  const reasons: string[] = [];
  for (const server of servers) {
    try {
      return await openConnection({ ...options, ...server });
    } catch (error) {
      if (!(error instanceof UnreachableError)) throw error;
      reasons.push(error.message);
    }
  }
  throw new UnreachableError(reasons.join("; "));
}

function describeNetError(error: unknown): string {
  if (error instanceof Deno.errors.ConnectionRefused) return "connection refused (is the server running?)";
  if (error instanceof Deno.errors.TimedOut) return "timed out";
  const message = (error as Error).message;
  if (/failed to lookup|Name or service not known|dns/i.test(message)) return "unknown host name";
  return message;
}
