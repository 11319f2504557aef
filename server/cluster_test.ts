// Two server nodes in one process on one KV file, joined by an in-process cluster bus: a commit through node 1
// reaches a MONITOR session on node 2, and a revocation on node 1 closes the device's session on node 2.
import assert from "node:assert/strict";
import { join } from "node:path";
import { RpcPeer } from "../protocol/rpc.ts";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { ALPN, encodeRows, PROTOCOL_VERSION } from "../protocol/messages.ts";
import { adminRequest } from "./admin.ts";
import { makeUser } from "./auth.ts";
import postgres from "postgres";
import { type ClusterBus, InProcessNetwork } from "./cluster_bus.ts";
import { PgClusterBus } from "./cluster_bus_pg.ts";
import { freshDatabase, TEST_POSTGRES } from "./pg_test_db.ts";
import { until } from "./cluster_bus_contract.ts";
import { type RunningServer, startServer } from "./server.ts";

/**
 * What the two nodes share besides the chunk folder: buses joined to each other (metadata in one KV file), or
 * a PostgreSQL database (metadata and bus: the server picks its bus itself); and how to let go of it.
 */
type BusMaker = () => Promise<{ buses?: ClusterBus[]; metadata?: string } & AsyncDisposable>;

const inProcess: BusMaker = () => {
  const network = new InProcessNetwork();
  return Promise.resolve({
    buses: [network.node(), network.node()],
    [Symbol.asyncDispose]: () => Promise.resolve(),
  });
};

/** Two PostgreSQL buses on a fresh database (the metadata stays in KV: the bus alone is under test). */
const onPostgres: BusMaker = async () => {
  const db = await freshDatabase();
  const pools = [postgres(db.url, { onnotice: () => {} }), postgres(db.url, { onnotice: () => {} })];
  const buses = pools.map((sql) => new PgClusterBus(sql));
  await Promise.all(buses.map((b) => b.ready()));
  return {
    buses,
    async [Symbol.asyncDispose]() {
      for (const sql of pools) await sql.end({ timeout: 1 });
      await db[Symbol.asyncDispose]();
    },
  };
};

/** PostgreSQL metadata on a fresh database: each server opens its own PgClusterBus on it. */
const onPostgresMetadata: BusMaker = async () => {
  const db = await freshDatabase();
  return { metadata: db.url, [Symbol.asyncDispose]: () => db[Symbol.asyncDispose]() };
};

/** Two nodes on one metadata store and one chunk folder; disposing stops both and removes the folder. */
async function twoNodes(
  makeBuses: BusMaker,
): Promise<{ nodes: RunningServer[]; dirs: string[]; logs: string[][] } & AsyncDisposable> {
  const tmp = await Deno.makeTempDir({ prefix: "filesync-cluster-" });
  const made = await makeBuses();
  const nodes: RunningServer[] = [];
  const logs: string[][] = [[], []];
  const dirs = [join(tmp, "node1"), join(tmp, "node2")];
  for (const [i, dataDir] of dirs.entries()) {
    nodes.push(
      await startServer({
        dataDir,
        host: "127.0.0.1",
        port: 0,
        ...(made.metadata ? { metadata: made.metadata } : { kv: join(tmp, "metadata.kv") }),
        chunks: join(tmp, "chunks"),
        plaintextChunks: true,
        gcIntervalHours: 0,
        clusterBus: made.buses?.[i],
        log: (line) => logs[i].push(line),
      }),
    );
  }
  return {
    nodes,
    dirs,
    logs,
    async [Symbol.asyncDispose]() {
      for (const node of nodes) await node.close();
      await made[Symbol.asyncDispose]();
      await Deno.remove(tmp, { recursive: true });
    },
  };
}

/** A logged-in connection to a node, with the pushes it hears. */
async function device(
  node: RunningServer,
  dataDir: string,
  name: string,
): Promise<{ peer: RpcPeer; pushes: Record<string, unknown>[] }> {
  const pushes: Record<string, unknown>[] = [];
  // Over the wire as any device connects (TLS with the node's CA, ALPN, HELLO), without client code.
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: node.port,
    caCerts: [await Deno.readTextFile(join(dataDir, "certs", "ca.pem"))],
    alpnProtocols: [ALPN],
  });
  const peer = new RpcPeer(conn, { onPush: (frame) => pushes.push(frame.message) });
  await peer.request("HELLO", { version: PROTOCOL_VERSION, agent: "cluster-test" });
  await peer.request("LOGIN", { user: "alice", password: "pw", device: name });
  return { peer, pushes };
}

const buses = [
  ["in-process", inProcess],
  ...(TEST_POSTGRES
    ? [["PostgreSQL", onPostgres] as const, ["PostgreSQL metadata and", onPostgresMetadata] as const]
    : []),
] as const;
for (const [name, makeBuses] of buses) {
  Deno.test(`two nodes (${name} bus): a commit through one reaches the other node's devices live, as does a lock; a revocation closes them there`, async () => {
    await using cluster = await twoNodes(makeBuses);
    const [node1, node2] = cluster.nodes;
    await node1.store.addUser(await makeUser("alice", "pw"));
    const writer = await device(node1, cluster.dirs[0], "writer");
    const watcher = await device(node2, cluster.dirs[1], "watcher");
    try {
      await watcher.peer.request("MONITOR", { since: 0 });
      const events = () =>
        watcher.pushes.filter((p) => p.push === "events").flatMap((p) => p.events as { path: string }[]);
      for (const path of ["a", "b", "c"]) {
        const started = Date.now();
        const reply = await writer.peer.request("COMMIT", { changes: [{ op: "mkdir", path, baseRev: 0 }] });
        assert.equal((reply.message.results as { ok: boolean }[])[0].ok, true);
        await until(() => events().some((e) => e.path === path), `node 2's device hears ${path}`);
        // The note is in-process here: the read of the journal is what it costs (PostgreSQL adds the NOTIFY).
        assert.ok(Date.now() - started < 1000, `${path} took ${Date.now() - started} ms`);
      }
      assert.deepEqual(events().map((e) => e.path), ["a", "b", "c"]);
      // A lock taken through node 1 is pushed to node 2's device (the lock itself is in the store).
      const content = new TextEncoder().encode("locked text");
      const id = sha256Hex(content);
      await writer.peer.request("PUT", { hash: id }, content);
      const upload = {
        op: "upload",
        path: "doc.txt",
        baseRev: 0,
        size: content.length,
        mtime: 1_700_000_000_000,
        hash: fileHashOfChunks([id]),
        rows: { offset: 0, count: 1 },
      };
      const uploaded = await writer.peer.request(
        "COMMIT",
        { changes: [upload] },
        encodeRows([{ id, size: content.length }]),
      );
      assert.equal(
        (uploaded.message.results as { ok: boolean }[])[0].ok,
        true,
        JSON.stringify(uploaded.message),
      );
      await writer.peer.request("LOCK", { path: "doc.txt" });
      await until(
        () =>
          watcher.pushes.some((p) => p.push === "locks" && (p.change as { what: string }).what === "taken"),
        "node 2's device hears of the lock",
      );
      // Revoked through node 1's admin socket: node 2 closes the device's session, telling it why.
      const devices = await node1.store.listDevices("alice");
      const watcherId = devices.find((d) => d.device === "watcher")!.deviceId;
      const reply = await adminRequest(cluster.dirs[0], {
        op: "user-revoke",
        name: "alice",
        device: "watcher",
      });
      assert.equal(reply?.ok, true, JSON.stringify(reply));
      await until(() => watcher.peer.isClosed, "node 2 closed the revoked device's session");
      assert.ok(
        watcher.pushes.some((p) => p.push === "error" && p.reason === "revoked"),
        JSON.stringify(watcher.pushes),
      );
      assert.ok(
        cluster.logs[1].some((l) =>
          l.includes(`device ${watcherId} of alice was revoked on another node: 1 connection`)
        ),
        cluster.logs[1].join("\n"),
      );
      // The writer on node 1 is untouched.
      assert.equal(writer.peer.isClosed, false);
    } finally {
      for (const d of [writer, watcher]) {
        d.peer.close();
        await d.peer.closed;
      }
    }
  });
}
