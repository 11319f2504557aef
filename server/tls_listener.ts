// TLS listener whose connections can be closed at any moment, even before or during their handshake.
//
// Deno.listenTls hands out connections whose TLS handshake already runs in the runtime, and Deno 2.9 cannot close
// such a connection until the handshake ends: a peer that never sends a byte keeps its socket open for as long as
// it likes (rustls-tokio-stream's drop waits for the handshake task). So the server accepts plain TCP with node:net
// and runs TLS over it with node:tls: the TCP socket stays ours, and destroying it closes it at once.
import net from "node:net";
import tls from "node:tls";
import type { Duplex } from "../protocol/rpc.ts";

/** Bytes read from the socket and not yet taken by `read` above which the socket stops being read. */
const READ_AHEAD_BYTES = 1024 * 1024;
/** The socket's send buffer, above which a write waits for it to drain. */
const WRITE_HIGH_WATER_BYTES = 1024 * 1024;

/** A TLS connection whose handshake has finished, as the duplex a session reads and writes. */
export interface TlsConnection extends Duplex {
  /** The peer's address (IPv4-mapped IPv6 addresses as plain IPv4) and port. */
  readonly remote: { address: string; port: number };
}

/** Why a connection was dropped before it was handed on. */
export type DropReason = "refused" | "timeout" | "tls";

/** Options of {@linkcode listenTls}. */
export interface TlsListenerOptions {
  /** Address to bind ("::" listens on IPv4 and IPv6). */
  hostname: string;
  /** Port; 0 picks a free one. */
  port: number;
  /** Certificate chain, PEM. */
  cert: string;
  /** Private key, PEM. */
  key: string;
  /** ALPN protocols offered. */
  alpnProtocols?: string[];
  /** Time from connect to a finished handshake, in ms; a connection over it is closed. */
  handshakeTimeoutMs: number;
  /** Decides before any TLS byte is read: a reason to refuse a connection from `address`, or null to go on. */
  admit?: (address: string) => string | null;
  /** Called once when the socket of an admitted connection has closed, however it ended. */
  onGone?: (address: string) => void;
  /** Receives each connection whose handshake finished. */
  onSecure: (conn: TlsConnection) => void;
  /** Reports a connection closed before it was handed on. */
  onDropped?: (drop: { address: string; remote: string; reason: DropReason; message: string }) => void;
}

/** A listening TLS server. */
export interface TlsListener {
  /** The bound address and port. */
  readonly addr: { hostname: string; port: number };
  /** Stops accepting and closes every connection still in its handshake. */
  close(): void;
}

/** The peer address without the IPv4-mapped prefix. */
function plainAddress(address: string | undefined): string {
  return (address ?? "unknown").replace(/^::ffff:/, "");
}

/** "host:port", with brackets around an IPv6 host. */
export function formatRemote(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Listens for TLS connections; each one is admitted (or refused) as plain TCP, must finish its handshake in time,
 * and is then handed to `onSecure`. Rejects with the system error (code EADDRINUSE, …) when it cannot listen.
 */
export async function listenTls(options: TlsListenerOptions): Promise<TlsListener> {
  // TLS 1.3 only, as the protocol asks (Deno.listenTls could not refuse 1.2).
  const secureContext = tls.createSecureContext({
    cert: options.cert,
    key: options.key,
    minVersion: "TLSv1.3",
  });
  const handshaking = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    const address = plainAddress(socket.remoteAddress);
    const remote = formatRemote(address, socket.remotePort ?? 0);
    const refused = options.admit?.(address) ?? null;
    if (refused !== null) {
      options.onDropped?.({ address, remote, reason: "refused", message: refused });
      socket.destroy();
      return;
    }
    socket.once("close", () => options.onGone?.(address));
    socket.on("error", () => {/* reported through the TLS socket or the close */});
    handshaking.add(socket);
    let secure = false;
    const drop = (reason: DropReason, message: string) => {
      if (secure || !handshaking.has(socket)) return;
      handshaking.delete(socket);
      clearTimeout(timer);
      options.onDropped?.({ address, remote, reason, message });
      socket.destroy();
    };
    const timer = setTimeout(
      () => drop("timeout", `no TLS handshake within ${options.handshakeTimeoutMs} ms`),
      options.handshakeTimeoutMs,
    );
    const tlsSocket = new tls.TLSSocket(socket, {
      isServer: true,
      secureContext,
      ALPNProtocols: options.alpnProtocols,
    });
    // Before the handshake ends node:tls reports errors as "_tlsError" (what tls.Server turns into
    // "tlsClientError"); "error" is listened to as well so that none goes unhandled.
    const failed = (error: Error) => {
      if (!secure) drop("tls", error.message);
    };
    tlsSocket.on("_tlsError", failed);
    tlsSocket.on("error", failed);
    tlsSocket.once("close", () => {
      if (!secure && handshaking.has(socket)) {
        drop("tls", "the connection ended before the TLS handshake finished");
      }
      handshaking.delete(socket);
      clearTimeout(timer);
      socket.destroy();
    });
    tlsSocket.once("secure", () => {
      if (socket.destroyed) return;
      secure = true;
      handshaking.delete(socket);
      clearTimeout(timer);
      options.onSecure(new NodeTlsConnection(tlsSocket, { address, port: socket.remotePort ?? 0 }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: options.hostname, port: options.port, ipv6Only: false }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", () => {/* accept errors (EMFILE …) leave the listener running */});
  const bound = server.address() as net.AddressInfo;
  return {
    addr: { hostname: bound.address, port: bound.port },
    close() {
      server.close();
      for (const socket of handshaking) socket.destroy();
      handshaking.clear();
    },
  };
}

/** A node:tls socket as a {@linkcode Duplex}: reads take from a bounded read-ahead, writes wait for drain. */
class NodeTlsConnection implements TlsConnection {
  readonly remote: { address: string; port: number };
  #socket: tls.TLSSocket;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: Error | null = null;
  #reader: (() => void) | null = null;
  #writers: (() => void)[] = [];

  constructor(socket: tls.TLSSocket, remote: { address: string; port: number }) {
    this.#socket = socket;
    this.remote = remote;
    socket.setNoDelay(true);
    socket.on("data", (data: Uint8Array) => {
      this.#chunks.push(data);
      this.#buffered += data.length;
      if (this.#buffered >= READ_AHEAD_BYTES) socket.pause();
      this.#wakeReader();
    });
    socket.once("end", () => {
      this.#ended = true;
      this.#wakeReader();
    });
    socket.on("error", (error: Error) => {
      this.#error ??= error;
      this.#wakeAll();
    });
    socket.once("close", () => {
      this.#ended = true;
      this.#error ??= new Error("connection closed");
      this.#wakeAll();
    });
    socket.on("drain", () => this.#wakeWriters());
  }

  async read(p: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#ended) {
        if (this.#error && !this.#socket.readableEnded) throw this.#error;
        return null;
      }
      if (this.#error) throw this.#error;
      await new Promise<void>((resolve) => this.#reader = resolve);
    }
    let n = 0;
    while (n < p.length && this.#chunks.length > 0) {
      const head = this.#chunks[0];
      const take = Math.min(head.length, p.length - n);
      p.set(head.subarray(0, take), n);
      n += take;
      if (take === head.length) this.#chunks.shift();
      else this.#chunks[0] = head.subarray(take);
    }
    this.#buffered -= n;
    if (this.#buffered < READ_AHEAD_BYTES && this.#socket.isPaused()) this.#socket.resume();
    return n;
  }

  /** Hands `p` to the socket whole; the caller must not change it afterwards. */
  async write(p: Uint8Array): Promise<number> {
    while (this.#socket.writableLength >= WRITE_HIGH_WATER_BYTES) {
      if (this.#error || this.#socket.destroyed) throw this.#error ?? new Error("connection closed");
      await new Promise<void>((resolve) => this.#writers.push(resolve));
    }
    if (this.#error || this.#socket.destroyed) throw this.#error ?? new Error("connection closed");
    this.#socket.write(p);
    return p.length;
  }

  close(): void {
    this.#error ??= new Error("connection closed");
    this.#socket.destroy();
    this.#wakeAll();
  }

  #wakeReader(): void {
    const reader = this.#reader;
    this.#reader = null;
    reader?.();
  }

  #wakeWriters(): void {
    for (const writer of this.#writers.splice(0)) writer();
  }

  #wakeAll(): void {
    this.#wakeReader();
    this.#wakeWriters();
  }
}
