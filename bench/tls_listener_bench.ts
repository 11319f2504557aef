// Server-side cost of the TLS listener: Deno.listenTls against server/tls_listener.ts (node:tls), same run.
// Run: deno run -A bench/tls_listener_bench.ts [--mib N] [--rounds R]
// Each round starts one server process per listener; a Deno.connectTls client sends N MiB up and reads N MiB
// back; the report gives throughput and the server process's CPU seconds per GiB moved.
import { parseArgs } from "node:util";
import { ensureServerCertificate } from "../certs/ca.ts";
import { listenTls } from "../server/tls_listener.ts";
import { procStats } from "./proc_stats.ts";

const BLOCK = 1024 * 1024;

/** The server side, run as its own process: prints its port, sinks N MiB, then sends N MiB back. */
async function serve(kind: string, certDir: string, mib: number): Promise<void> {
  const { certPem: cert, keyPem: key } = await ensureServerCertificate(certDir);
  const total = mib * BLOCK;
  const handle = async (
    conn: { read(p: Uint8Array): Promise<number | null>; write(p: Uint8Array): Promise<number> },
  ) => {
    const buf = new Uint8Array(256 * 1024);
    let got = 0;
    while (got < total) {
      const n = await conn.read(buf);
      if (n === null) return;
      got += n;
    }
    const block = new Uint8Array(BLOCK);
    for (let i = 0; i < mib; i++) {
      const part = block.slice();
      let off = 0;
      while (off < part.length) off += await conn.write(part.subarray(off));
    }
  };
  if (kind === "deno") {
    const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert, key });
    console.log((listener.addr as Deno.NetAddr).port);
    const conn = await listener.accept();
    await handle(conn);
    await conn.closeWrite();
    await conn.read(new Uint8Array(1)).catch(() => null);
  } else {
    let done!: () => void;
    const finished = new Promise<void>((r) => done = r);
    const listener = await listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert,
      key,
      handshakeTimeoutMs: 10_000,
      onSecure: (conn) => handle(conn).then(() => setTimeout(() => (conn.close(), done()), 200)),
    });
    console.log(listener.addr.port);
    await finished;
    listener.close();
  }
}

/** One round against a server of `kind`: MiB/s up and down, and the server's CPU seconds per GiB moved. */
async function round(kind: string, certDir: string, mib: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--serve", kind, "--cert-dir", certDir, "--mib", String(mib)],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let line = "";
  while (!line.includes("\n")) line += (await reader.read()).value ?? "";
  const port = Number(line.trim());
  const ca = await Deno.readTextFile(`${certDir}/certs/ca.pem`);
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [ca] });
  const block = new Uint8Array(BLOCK).fill(7);
  let t = performance.now();
  for (let i = 0; i < mib; i++) {
    let off = 0;
    while (off < block.length) off += await conn.write(block.subarray(off));
  }
  const buf = new Uint8Array(256 * 1024);
  let got = 0;
  const first = await conn.read(buf);
  const up = mib / ((performance.now() - t) / 1000);
  got += first ?? 0;
  t = performance.now();
  while (got < mib * BLOCK) {
    const n = await conn.read(buf);
    if (n === null) break;
    got += n;
  }
  const down = mib / ((performance.now() - t) / 1000);
  const cpu = procStats(child.pid)?.cpuSeconds ?? NaN;
  conn.close();
  await child.status;
  reader.releaseLock();
  return { up, down, cpuPerGiB: cpu / (2 * mib / 1024) };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      serve: { type: "string" },
      "cert-dir": { type: "string" },
      mib: { type: "string", default: "1024" },
      rounds: { type: "string", default: "3" },
    },
  });
  const mib = Number(values.mib);
  if (values.serve) {
    await serve(values.serve, values["cert-dir"]!, mib);
  } else {
    const certDir = await Deno.makeTempDir({ prefix: "filesync-tls-bench-" });
    try {
      console.log(`| round | listener | up MiB/s | down MiB/s | server CPU s per GiB |`);
      console.log(`| --- | --- | --- | --- | --- |`);
      for (let r = 1; r <= Number(values.rounds); r++) {
        for (const kind of ["deno", "node"]) {
          const res = await round(kind, certDir, mib);
          const name = kind === "deno" ? "Deno.listenTls" : "node:tls (server/tls_listener.ts)";
          console.log(
            `| ${r} | ${name} | ${res.up.toFixed(0)} | ${res.down.toFixed(0)} | ${
              res.cpuPerGiB.toFixed(2)
            } |`,
          );
        }
      }
    } finally {
      await Deno.remove(certDir, { recursive: true });
    }
  }
}
