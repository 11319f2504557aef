// A hostile client's raw connection for attack tests: frames out, decoded frames in (used by tests and attacker.ts).
import { encodeFrame, type Frame, FrameDecoder } from "../protocol/frame.ts";
import { ALPN, PROTOCOL_VERSION } from "../protocol/messages.ts";
import { waitFor } from "./harness.ts";
import { concatBytes } from "../protocol/bytes.ts";

/** A hostile client's connection: raw frames out, decoded frames in. */
export class RawConn {
  readonly conn: Deno.Conn;
  readonly frames: Frame[] = [];
  closed = false;
  readonly reading: Promise<void>;

  /** Starts reading; `readUntil` stops reading for good once it returns true (a client that stops reading). */
  constructor(conn: Deno.Conn, options: { readUntil?: (frames: Frame[]) => boolean } = {}) {
    this.conn = conn;
    this.reading = (async () => {
      const decoder = new FrameDecoder({ maxFrameBytes: 64 * 1024 * 1024 });
      const buffer = new Uint8Array(256 * 1024);
      try {
        while (true) {
          const n = await conn.read(buffer);
          if (n === null) break;
          this.frames.push(...decoder.push(buffer.subarray(0, n)));
          if (options.readUntil?.(this.frames)) return;
        }
      } catch { /* reset */ }
      this.closed = true;
    })();
  }

  /** Writes frames (ignores a connection the server already dropped). */
  async send(...messages: Record<string, unknown>[]): Promise<void> {
    await this.write(concat(messages.map((m) => encodeFrame(m))));
  }

  async write(bytes: Uint8Array): Promise<void> {
    try {
      let written = 0;
      while (written < bytes.length) written += await this.conn.write(bytes.subarray(written));
    } catch { /* closed by the server */ }
  }

  /** Replies with this error code. */
  count(code: string): number {
    return this.frames.filter((f) => f.message.ok === false && f.message.code === code).length;
  }

  /** Waits until `n` replies (re ≥ 1) arrived or the connection closed. */
  async replies(n: number, timeoutMs = 60_000): Promise<void> {
    await waitFor(() => this.closed || this.frames.filter((f) => Number(f.message.re) >= 1).length >= n, {
      timeoutMs,
      message: () => `${this.frames.length} frames so far`,
    });
  }
}

/** The bytes of `parts` one after another. */
export const concat: (parts: Uint8Array[]) => Uint8Array = concatBytes;

/** `count` LOGIN requests for `user` with wrong passwords, ids from `from`. */
export function logins(user: string, from: number, count: number): Record<string, unknown>[] {
  return Array.from(
    { length: count },
    (_, i) => ({ id: from + i, op: "LOGIN", user, password: `guess ${from + i}`, device: "x" }),
  );
}

/** Options of {@linkcode hello}. */
export interface HelloOptions {
  hostname: string;
  port: number;
  /** The server's CA certificate, PEM. */
  ca: string;
}

/** A TLS connection that has said HELLO, speaking raw frames. */
export async function hello(options: HelloOptions): Promise<RawConn> {
  const conn = await Deno.connectTls({
    hostname: options.hostname,
    port: options.port,
    caCerts: [options.ca],
    alpnProtocols: [ALPN],
  });
  const raw = new RawConn(conn);
  await raw.send({ id: 0, op: "HELLO", version: PROTOCOL_VERSION, agent: "attacker" });
  return raw;
}
