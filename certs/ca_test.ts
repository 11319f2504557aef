// Tests for the local CA and server certificate: files, reuse, reissue, and real TLS handshakes.
import assert from "node:assert/strict";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { certificateFingerprint, ensureServerCertificate, issueNodeCertificate } from "./ca.ts";

const DAY_MS = 24 * 60 * 60 * 1000;
const ALPN = "filesync/1";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync_ca_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function sanOf(pem: string): string[] {
  const san = new x509.X509Certificate(pem).getExtension(x509.SubjectAlternativeNameExtension);
  return (san?.names.items ?? []).map((n) => `${n.type}:${n.value}`);
}

/** Handshakes with a server using `cert`, echoes a few bytes, and returns the negotiated ALPN protocol. */
async function handshake(
  server: { certPem: string; keyPem: string },
  client: { hostname: string; caCerts?: string[] },
): Promise<string | null> {
  using listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: server.certPem,
    key: server.keyPem,
    alpnProtocols: [ALPN],
  });
  const serving = (async () => {
    using conn = await listener.accept();
    try {
      const buffer = new Uint8Array(5);
      let got = 0;
      while (got < buffer.length) {
        const n = await conn.read(buffer.subarray(got));
        if (n === null) return;
        got += n;
      }
      await conn.write(buffer.map((b) => b + 1));
    } catch {
      // The client gave up on the handshake; its side of the test reports why.
    }
  })();
  try {
    using conn = await Deno.connectTls({
      hostname: client.hostname,
      port: listener.addr.port,
      caCerts: client.caCerts,
      alpnProtocols: [ALPN],
    });
    const { alpnProtocol } = await conn.handshake();
    await conn.write(new Uint8Array([1, 2, 3, 4, 5]));
    const reply = new Uint8Array(5);
    let got = 0;
    while (got < reply.length) {
      const n = await conn.read(reply.subarray(got));
      assert.notEqual(n, null, "server closed early");
      got += n!;
    }
    assert.deepEqual([...reply], [2, 3, 4, 5, 6]);
    return alpnProtocol;
  } finally {
    await serving;
  }
}

Deno.test("ensureServerCertificate() creates the CA and server files once and then reuses them", async () => {
  await withTempDir(async (dir) => {
    const first = await ensureServerCertificate(dir);
    assert.equal(first.created, true);
    const certs = join(dir, "certs");
    assert.equal(first.caPath, join(certs, "ca.pem"));
    const names = [];
    for await (const entry of Deno.readDir(certs)) names.push(entry.name);
    assert.deepEqual(names.sort(), ["ca-key.pem", "ca.pem", "server-key.pem", "server.pem"]);
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(certs)).mode! & 0o777, 0o700);
      assert.equal((await Deno.stat(join(certs, "ca-key.pem"))).mode! & 0o777, 0o600);
      assert.equal((await Deno.stat(join(certs, "server-key.pem"))).mode! & 0o777, 0o600);
    }
    assert.match(first.caFingerprint, /^[0-9A-F]{2}(:[0-9A-F]{2}){31}$/);
    assert.equal(first.caFingerprint, certificateFingerprint(await Deno.readTextFile(first.caPath)));
    assert.match(first.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(await Deno.readTextFile(join(certs, "ca-key.pem")), /^-----BEGIN PRIVATE KEY-----\n/);

    const ca = new x509.X509Certificate(await Deno.readTextFile(first.caPath));
    assert.equal(ca.subject, `CN=filesync local CA (${Deno.hostname()})`);
    assert.equal(ca.getExtension(x509.BasicConstraintsExtension)?.ca, true);
    const leaf = new x509.X509Certificate(first.certPem);
    assert.equal(leaf.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    assert.equal(leaf.issuer, ca.subject);
    assert.ok(await leaf.verify({ publicKey: ca, signatureOnly: true }));
    const san = sanOf(first.certPem);
    for (const name of ["dns:localhost", `dns:${Deno.hostname().toLowerCase()}`, "ip:127.0.0.1", "ip:::1"]) {
      assert.ok(san.includes(name), `${name} in ${san}`);
    }

    const second = await ensureServerCertificate(dir);
    assert.equal(second.created, false);
    assert.equal(second.caFingerprint, first.caFingerprint);
    assert.equal(second.certPem, first.certPem);
    assert.equal(second.keyPem, first.keyPem);
  });
});

Deno.test("a client trusting the CA completes a TLS handshake by IP and by name, with ALPN", async () => {
  await withTempDir(async (dir) => {
    const server = await ensureServerCertificate(dir);
    const ca = await Deno.readTextFile(server.caPath);
    for (const hostname of ["127.0.0.1", "localhost"]) {
      const alpn = await handshake(server, { hostname, caCerts: [ca] });
      assert.equal(alpn, ALPN, hostname);
    }
  });
});

Deno.test("clients without the CA, or with another folder's CA, fail the handshake", async () => {
  await withTempDir(async (dir) => {
    const server = await ensureServerCertificate(join(dir, "a"));
    const other = await ensureServerCertificate(join(dir, "b"));
    assert.notEqual(other.caFingerprint, server.caFingerprint);
    const otherCa = await Deno.readTextFile(other.caPath);
    // Seen with Deno 2.9.6: InvalidData "invalid peer certificate: UnknownIssuer" without the CA, and
    // "invalid peer certificate: BadSignature" with another CA of the same name (same machine).
    const untrusted = (error: unknown) =>
      error instanceof Deno.errors.InvalidData && /^invalid peer certificate: /.test(error.message);
    await assert.rejects(handshake(server, { hostname: "127.0.0.1" }), untrusted);
    await assert.rejects(handshake(server, { hostname: "127.0.0.1", caCerts: [otherCa] }), untrusted);
  });
});

Deno.test("ensureServerCertificate() reissues the server certificate 30 days before expiry, keeping the CA", async () => {
  await withTempDir(async (dir) => {
    const first = await ensureServerCertificate(dir);
    const notAfter = new x509.X509Certificate(first.certPem).notAfter;

    const stillFine = await ensureServerCertificate(dir, { now: new Date(notAfter.getTime() - 31 * DAY_MS) });
    assert.equal(stillFine.certPem, first.certPem);

    const now = new Date(notAfter.getTime() - 29 * DAY_MS);
    const later = await ensureServerCertificate(dir, { now });
    assert.equal(later.created, false);
    assert.equal(later.caFingerprint, first.caFingerprint);
    assert.notEqual(later.certPem, first.certPem);
    assert.notEqual(later.keyPem, first.keyPem);
    const leaf = new x509.X509Certificate(later.certPem);
    assert.equal(leaf.notBefore.getTime(), now.getTime() - 60 * 60 * 1000);
    assert.equal(leaf.notAfter.getTime(), leaf.notBefore.getTime() + 397 * DAY_MS);
    assert.equal(await Deno.readTextFile(join(dir, "certs", "server.pem")), later.certPem);
  });
});

Deno.test("ensureServerCertificate() reissues when a wanted host name is missing", async () => {
  await withTempDir(async (dir) => {
    const first = await ensureServerCertificate(dir);
    const hostnames = ["Sync.Example.org", "192.0.2.7", "2001:DB8:0:0::1"];
    const second = await ensureServerCertificate(dir, { hostnames });
    assert.equal(second.caFingerprint, first.caFingerprint);
    assert.notEqual(second.certPem, first.certPem);
    assert.equal(new x509.X509Certificate(second.certPem).subject, "CN=sync.example.org");
    const san = sanOf(second.certPem);
    for (const name of ["dns:sync.example.org", "ip:192.0.2.7", "ip:2001:db8::1", "dns:localhost"]) {
      assert.ok(san.includes(name), `${name} in ${san}`);
    }
    const third = await ensureServerCertificate(dir, { hostnames: ["192.0.2.7"] });
    assert.equal(third.certPem, second.certPem);
    await assert.rejects(ensureServerCertificate(dir, { hostnames: ["bad name"] }), TypeError);
  });
});

Deno.test("ensureServerCertificate() replaces a missing CA but refuses a CA without its key", async () => {
  await withTempDir(async (dir) => {
    const first = await ensureServerCertificate(dir);
    const certs = join(dir, "certs");
    await Deno.remove(join(certs, "ca.pem"));
    const second = await ensureServerCertificate(dir);
    assert.equal(second.created, true);
    assert.notEqual(second.caFingerprint, first.caFingerprint);
    const ca = new x509.X509Certificate(await Deno.readTextFile(second.caPath));
    assert.ok(await new x509.X509Certificate(second.certPem).verify({ publicKey: ca, signatureOnly: true }));

    await Deno.remove(join(certs, "ca-key.pem"));
    await assert.rejects(ensureServerCertificate(dir), /Cannot load CA key ".*ca-key\.pem": not found/);
  });
});

Deno.test("ensureServerCertificate() names the file in the way when the data folder cannot be made", async () => {
  await withTempDir(async (dir) => {
    const file = join(dir, "file");
    await Deno.writeTextFile(file, "not a folder");
    const target = join(file, "sub");
    await assert.rejects(ensureServerCertificate(target), (error: Error) => {
      assert.equal(error.message, `Cannot create data folder "${target}": "${file}" is not a folder`);
      return true;
    });
    await assert.rejects(ensureServerCertificate(file), (error: Error) => {
      assert.equal(error.message, `Cannot create data folder "${file}": "${file}" is not a folder`);
      return true;
    });
  });
});

Deno.test("certificateFingerprint() hashes the first certificate and rejects text without one", () => {
  const pem = "junk\n-----BEGIN CERTIFICATE-----\nAAEC\n-----END CERTIFICATE-----\n" +
    "-----BEGIN CERTIFICATE-----\nAwQF\n-----END CERTIFICATE-----\n";
  // SHA-256 of the bytes 00 01 02.
  assert.equal(
    certificateFingerprint(pem),
    "AE:4B:32:80:E5:6E:2F:AF:83:F4:14:A6:E3:DA:BE:9D:5F:BE:18:97:65:44:C0:5F:ED:12:1A:CC:B8:5B:53:FC",
  );
  assert.throws(() => certificateFingerprint("no certificate here"), SyntaxError);
  assert.throws(
    () => certificateFingerprint("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----"),
    SyntaxError,
  );
});

Deno.test("issueNodeCertificate() signs a node's certificate with the folder's CA, for the names given", async () => {
  await withTempDir(async (dir) => {
    const first = await ensureServerCertificate(dir);
    const node = await issueNodeCertificate(dir, {
      names: ["Node2.Example.org", "10.0.0.2", "sync.example.org"],
    });
    assert.equal(node.caPath, first.caPath);
    assert.equal(node.caFingerprint, first.caFingerprint);
    const ca = new x509.X509Certificate(await Deno.readTextFile(first.caPath));
    const leaf = new x509.X509Certificate(node.certPem);
    assert.equal(leaf.subject, "CN=node2.example.org");
    assert.ok(await leaf.verify({ publicKey: ca, signatureOnly: true }));
    assert.notEqual(node.certPem, first.certPem);
    assert.notEqual(node.keyPem, first.keyPem);
    const san = sanOf(node.certPem);
    for (const name of ["dns:node2.example.org", "ip:10.0.0.2", "dns:sync.example.org", "dns:localhost"]) {
      assert.ok(san.includes(name), `${name} in ${san}`);
    }
    assert.ok(!san.includes(`dns:${Deno.hostname().toLowerCase()}`) || Deno.hostname() === "localhost");
    // A client that trusts the one CA accepts the node.
    const alpn = await handshake(node, {
      hostname: "localhost",
      caCerts: [await Deno.readTextFile(first.caPath)],
    });
    assert.equal(alpn, ALPN);
  });
});

Deno.test("issueNodeCertificate() refuses a folder without a CA, no names and a bad name", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      () => issueNodeCertificate(dir, { names: ["n2"] }),
      (error: Error) => error.message.startsWith(`No CA in "${join(dir, "certs")}": start filesync server`),
    );
    await ensureServerCertificate(dir);
    await assert.rejects(() => issueNodeCertificate(dir, { names: [] }), TypeError);
    await assert.rejects(
      () => issueNodeCertificate(dir, { names: ["bad name"] }),
      (error: Error) =>
        error instanceof TypeError &&
        error.message === 'Cannot use host name "bad name": not a DNS name or IP address',
    );
  });
});
