// The closable TLS listener: silent, stalled and refused connections are closed; secure ones carry bytes both ways.
import assert from "node:assert/strict";
import nodeTls from "node:tls";
import { ensureServerCertificate } from "../certs/ca.ts";
import {
  type DropReason,
  formatRemote,
  listenTls,
  type TlsConnection,
  type TlsListener,
} from "./tls_listener.ts";

interface Fixture extends AsyncDisposable {
  listener: TlsListener;
  ca: string;
  drops: { reason: DropReason; message: string }[];
  gone: string[];
  secure: TlsConnection[];
  conns: Deno.Conn[];
}

async function fixture(options: { handshakeTimeoutMs?: number; admit?: (a: string) => string | null } = {}) {
  const dir = await Deno.makeTempDir();
  const cert = await ensureServerCertificate(dir);
  const f: Fixture = {
    ca: await Deno.readTextFile(cert.caPath),
    drops: [],
    gone: [],
    secure: [],
    conns: [],
    listener: undefined as unknown as TlsListener,
    async [Symbol.asyncDispose]() {
      for (const conn of f.conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      for (const conn of f.secure) conn.close();
      f.listener?.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
  f.listener = await listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: cert.certPem,
    key: cert.keyPem,
    alpnProtocols: ["test/1"],
    handshakeTimeoutMs: options.handshakeTimeoutMs ?? 5000,
    admit: options.admit,
    onGone: (address) => f.gone.push(address),
    onDropped: ({ reason, message }) => f.drops.push({ reason, message }),
    onSecure: (conn) => f.secure.push(conn),
  });
  return f;
}

/** Resolves true once the server has closed `conn`, false if it is still open after `ms`. */
async function closedWithin(conn: Deno.Conn, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const open = new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), ms));
  const closed = (async () => {
    try {
      while (await conn.read(new Uint8Array(256)) !== null) { /* nothing comes */ }
    } catch { /* reset */ }
    return true;
  })();
  try {
    return await Promise.race([closed, open]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitUntil(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("listenTls: a connection that never sends a byte is closed at the handshake timeout", async () => {
  await using f = await fixture({ handshakeTimeoutMs: 200 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.listener.addr.port });
  f.conns.push(conn);
  assert.equal(await closedWithin(conn, 5000), true);
  await waitUntil(() => f.gone.length === 1);
  assert.deepEqual(f.drops.map((d) => d.reason), ["timeout"]);
  assert.match(f.drops[0].message, /no TLS handshake within 200 ms/);
});

Deno.test("listenTls: a ClientHello that stops halfway is closed at the handshake timeout", async () => {
  await using f = await fixture({ handshakeTimeoutMs: 200 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.listener.addr.port });
  f.conns.push(conn);
  await conn.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]));
  assert.equal(await closedWithin(conn, 5000), true);
  assert.deepEqual(f.drops.map((d) => d.reason), ["timeout"]);
});

Deno.test("listenTls: bytes that are not TLS end the connection with a TLS error", async () => {
  await using f = await fixture();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.listener.addr.port });
  f.conns.push(conn);
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
  assert.equal(await closedWithin(conn, 5000), true);
  await waitUntil(() => f.drops.length === 1);
  assert.equal(f.drops[0].reason, "tls");
  assert.equal(f.secure.length, 0);
});

Deno.test("listenTls: a refused connection is closed at once and never counted as gone", async () => {
  await using f = await fixture({ admit: () => "too many" });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.listener.addr.port });
  f.conns.push(conn);
  assert.equal(await closedWithin(conn, 2000), true);
  assert.deepEqual(f.drops, [{ reason: "refused", message: "too many" }]);
  assert.deepEqual(f.gone, []);
});

Deno.test("listenTls: close() drops connections still in their handshake", async () => {
  await using f = await fixture({ handshakeTimeoutMs: 60_000 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: f.listener.addr.port });
  f.conns.push(conn);
  // Accepted or still in the backlog: either way the socket closes.
  f.listener.close();
  assert.equal(await closedWithin(conn, 2000), true);
});

Deno.test("listenTls: a secure connection negotiates ALPN and carries 8 MiB each way, then ends cleanly", async () => {
  await using f = await fixture();
  const client = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: f.listener.addr.port,
    caCerts: [f.ca],
    alpnProtocols: ["test/1"],
  });
  f.conns.push(client);
  assert.equal((await client.handshake()).alpnProtocol, "test/1");
  await waitUntil(() => f.secure.length === 1);
  const server = f.secure[0];
  assert.equal(server.remote.address, "127.0.0.1");
  const size = 8 * 1024 * 1024;
  const data = crypto.getRandomValues(new Uint8Array(65536));
  const echo = (async () => {
    const buf = new Uint8Array(100_000);
    let total = 0;
    while (total < size) {
      const n = await server.read(buf);
      if (n === null) break;
      let off = 0;
      const copy = buf.slice(0, n);
      while (off < n) off += await server.write(copy.subarray(off));
      total += n;
    }
    return total;
  })();
  const send = (async () => {
    for (let sent = 0; sent < size; sent += data.length) {
      let off = 0;
      while (off < data.length) off += await client.write(data.subarray(off));
    }
  })();
  const received = new Uint8Array(size);
  let got = 0;
  while (got < size) {
    const n = await client.read(received.subarray(got));
    assert.notEqual(n, null);
    got += n!;
  }
  await send;
  assert.equal(await echo, size);
  for (let i = 0; i < size; i += data.length) {
    assert.deepEqual(received.subarray(i, i + 16), data.subarray(0, 16));
  }
  client.closeWrite();
  assert.equal(await server.read(new Uint8Array(16)), null);
});

Deno.test("listenTls: a client that offers only TLS 1.2 is refused", async () => {
  await using f = await fixture();
  const outcome = await new Promise<string>((resolve) => {
    const socket = nodeTls.connect({
      host: "127.0.0.1",
      port: f.listener.addr.port,
      ca: f.ca,
      servername: "localhost",
      maxVersion: "TLSv1.2",
    });
    socket.once("secureConnect", () => {
      resolve(`connected with ${socket.getProtocol()}`);
      socket.destroy();
    });
    socket.once("error", (error) => resolve(`refused: ${error.message}`));
  });
  assert.match(outcome, /^refused/);
  await waitUntil(() => f.drops.length === 1);
  assert.equal(f.drops[0].reason, "tls");
  assert.equal(f.secure.length, 0);
});

Deno.test("formatRemote brackets IPv6 hosts", () => {
  assert.equal(formatRemote("127.0.0.1", 5), "127.0.0.1:5");
  assert.equal(formatRemote("::1", 5), "[::1]:5");
});
