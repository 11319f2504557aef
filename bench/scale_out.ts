// Bench scenario `scale-out` (issue #11): small files, large files and single commits through one node on the
// embedded default (Deno KV + disk), one node on PostgreSQL + S3, and two nodes on them (A on node 1, B on node 2).
import { createHash, randomFillSync } from "node:crypto";
import { join } from "node:path";
import { openConnection } from "../client/connection.ts";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { type ChangeResult, encodeRows } from "../protocol/messages.ts";
import type { RpcPeer } from "../protocol/rpc.ts";
import { adminRequest } from "../server/admin.ts";
import {
  addUser,
  type Proc,
  run,
  type ServerProc,
  startConnectedClient,
  startServer,
  waitForSameTree,
} from "../tests/harness.ts";
import { freshPrefix, removePrefix, testS3Url } from "../tests/services/s3_env.ts";
import { countFiles, delay, KIB, MIB, type Traffic, until, writeRandomFile } from "./bench_world.ts";
import { procStats } from "./proc_stats.ts";
import { freshBenchDatabase, type ScaleServices, scaleServices } from "./scale_services.ts";
import { type BenchContext, formatBytes, percentile, type Row, type Scenario } from "./scenarios.ts";

/** One way of running the server(s). */
interface Setup {
  /** Row name suffix. */
  key: string;
  label: string;
  nodes: 1 | 2;
  /** Metadata on PostgreSQL and chunks on S3 (else the default: DATA/metadata.kv and DATA/chunks/). */
  shared: boolean;
}

const SETUPS: Setup[] = [
  { key: "kv×1", label: "1 node, Deno KV + disk (the default)", nodes: 1, shared: false },
  { key: "pg+s3×1", label: "1 node, PostgreSQL + S3 (radosgw)", nodes: 1, shared: true },
  { key: "pg+s3×2", label: "2 nodes, PostgreSQL + S3 (A on node 1, B on node 2)", nodes: 2, shared: true },
];

const USER = "alice";
const PASSWORD = "correct horse battery";
const TARGET = "— (issue #11: correctness and cost per commit; no speed-up on 2 cores)";

/** Sizes of one run: full, or --quick. */
function sizes(ctx: BenchContext) {
  return ctx.quick
    ? { smallFiles: 300, largeFiles: 2, largeBytes: 16 * MIB, commits: 50 }
    : { smallFiles: 1000, largeFiles: 2, largeBytes: 64 * MIB, commits: 200 };
}

/** The servers and devices of one setup, in a fresh folder; disposing stops them and drops what they stored. */
class Cluster implements AsyncDisposable {
  readonly root: string;
  readonly nodes: ServerProc[] = [];
  readonly clients = new Map<string, Proc>();
  readonly #cleanup: (() => Promise<void>)[] = [];

  private constructor(root: string) {
    this.root = root;
  }

  static async start(ctx: BenchContext, setup: Setup, services: ScaleServices | null): Promise<Cluster> {
    const cluster = new Cluster(
      await Deno.makeTempDir({ dir: ctx.baseDir, prefix: "filesync-bench-scale-" }),
    );
    try {
      const args: string[] = [];
      let env: Record<string, string> = {};
      if (setup.shared && services) {
        const db = await freshBenchDatabase(services.postgres);
        cluster.#cleanup.push(db.drop);
        const prefix = freshPrefix("bench");
        cluster.#cleanup.push(() => removePrefix(services.s3, prefix));
        await Deno.mkdir(cluster.path("keys"), { mode: 0o700 });
        args.push("--metadata", db.url, "--chunks", testS3Url(services.s3, prefix));
        args.push("--master-key", cluster.path("keys", "master.key"));
        env = {
          AWS_ACCESS_KEY_ID: services.s3.accessKeyId,
          AWS_SECRET_ACCESS_KEY: services.s3.secretAccessKey,
        };
      }
      const node1 = await startServer(cluster.path("node1"), args, 0, env);
      cluster.nodes.push(node1);
      if (setup.nodes === 2) {
        const cert = await run([
          "server",
          "cert",
          "--data",
          node1.dataDir,
          "--name",
          "node2",
          "--out",
          cluster.path("node2"),
        ]);
        if (cert.code !== 0) throw new Error(`server cert failed: ${cert.output}`);
        const certArgs = ["--cert", cluster.path("node2.pem"), "--key", cluster.path("node2-key.pem")];
        cluster.nodes.push(await startServer(cluster.path("node2-data"), [...args, ...certArgs], 0, env));
      }
      await addUser(node1.dataDir, USER, PASSWORD);
    } catch (error) {
      await cluster[Symbol.asyncDispose]();
      throw error;
    }
    return cluster;
  }

  path(...parts: string[]): string {
    return join(this.root, ...parts);
  }

  /** The node a device uses: A the first, B the last (the same one with a single node). */
  nodeOf(device: string): ServerProc {
    return device === "A" ? this.nodes[0] : this.nodes.at(-1)!;
  }

  async startDevices(): Promise<void> {
    await Promise.all(["A", "B"].map(async (device) => {
      const client = await startConnectedClient({
        server: this.nodeOf(device).address,
        ca: this.nodes[0].caPath,
        user: USER,
        password: PASSWORD,
        dir: this.path(device),
        device,
        extraArgs: ["--rescan", "10"],
      });
      this.clients.set(device, client);
    }));
  }

  async stopDevices(): Promise<void> {
    await Promise.all([...this.clients.values()].map((c) => c.stop()));
    this.clients.clear();
  }

  /** Every process by name: node1, node2, A, B. */
  processes(): Map<string, Proc> {
    const out = new Map<string, Proc>(this.nodes.map((node, i) => [`node${i + 1}`, node]));
    for (const [name, client] of this.clients) out.set(name, client);
    return out;
  }

  assertAlive(): void {
    for (const [name, proc] of this.processes()) {
      if (proc.exitCode !== null) {
        throw new Error(`${name} exited (${proc.exitCode}):\n${proc.output.slice(-2000)}`);
      }
    }
  }

  /** Frame bytes per `user@device`, summed over the nodes. */
  async traffic(): Promise<Traffic> {
    const out: Traffic = {};
    for (const node of this.nodes) {
      const reply = await adminRequest(node.dataDir, { op: "stats" });
      if (!reply?.ok) throw new Error(`admin stats failed: ${JSON.stringify(reply)}`);
      for (const [key, t] of Object.entries((reply.stats as { traffic?: Traffic }).traffic ?? {})) {
        out[key] = { in: (out[key]?.in ?? 0) + t.in, out: (out[key]?.out ?? 0) + t.out };
      }
    }
    return out;
  }

  /** CPU seconds of every process now. */
  cpu(): Map<string, number> {
    return new Map(
      [...this.processes()].map(([name, p]) => [name, procStats(p.child.pid)?.cpuSeconds ?? NaN]),
    );
  }

  /** Waits until no device's traffic changes for `stableMs` (gives up quietly after `timeoutMs`). */
  async settle(stableMs = 400, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = JSON.stringify(await this.traffic());
    let since = Date.now();
    while (Date.now() < deadline) {
      await delay(50);
      const now = JSON.stringify(await this.traffic());
      if (now !== last) [last, since] = [now, Date.now()];
      else if (Date.now() - since >= stableMs) return;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all([...this.processes().values()].map((p) => p.stop().catch(() => {})));
    for (const cleanup of this.#cleanup) await cleanup().catch(() => {});
    await Deno.remove(this.root, { recursive: true }).catch(() => {});
  }
}

/** What one measured workload gave: time, bytes per hop and CPU per process. */
interface Phase {
  seconds: number;
  aIn: number;
  aOut: number;
  bIn: number;
  bOut: number;
  cpu: Map<string, number>;
}

/** Runs `work` between two measurements of traffic and CPU; `work` resolves with the measured seconds. */
async function measure(cluster: Cluster, work: () => Promise<number>): Promise<Phase> {
  await cluster.settle();
  const [t0, c0] = [await cluster.traffic(), cluster.cpu()];
  const seconds = await work();
  await cluster.settle();
  const [t1, c1] = [await cluster.traffic(), cluster.cpu()];
  const hop = (device: string, way: "in" | "out") =>
    (t1[`${USER}@${device}`]?.[way] ?? 0) - (t0[`${USER}@${device}`]?.[way] ?? 0);
  const cpu = new Map([...c1].map(([name, c]) => [name, c - (c0.get(name) ?? NaN)]));
  return {
    seconds,
    aIn: hop("A", "in"),
    aOut: hop("A", "out"),
    bIn: hop("B", "in"),
    bOut: hop("B", "out"),
    cpu,
  };
}

/** Changes the server logged as committed for A at or after `sinceMs`, and the time of the last one. */
function commitsLogged(output: string, sinceMs: number): { changes: number; lastMs: number } {
  let changes = 0;
  let lastMs = sinceMs;
  const line = /^(\S+) alice@A: (?:(?:upload|mkdir) \S|committed (\d+) changes)/gm;
  for (const m of output.matchAll(line)) {
    const at = Date.parse(m[1]);
    if (!(at >= sinceMs)) continue;
    changes += m[2] ? Number(m[2]) : 1;
    lastMs = Math.max(lastMs, at);
  }
  return { changes, lastMs };
}

/** The small-file workload: files of 1–16 KiB written into A's folder; done when B has them all. */
async function smallFiles(cluster: Cluster, count: number) {
  const folders = Array.from({ length: 20 }, (_, f) => `d${String(f).padStart(2, "0")}`);
  const items = Array.from({ length: count }, (_, i) => {
    const data = new Uint8Array(KIB + Math.floor(Math.random() * 15 * KIB) + 1);
    randomFillSync(data);
    return { path: `${folders[i % folders.length]}/f${String(i).padStart(5, "0")}.bin`, data };
  });
  const bytes = items.reduce((sum, item) => sum + item.data.length, 0);
  const a = cluster.path("A");
  const b = cluster.path("B");
  const node1 = cluster.nodes[0];
  let committed = { changes: 0, lastMs: 0 };
  let startedMs = 0;
  const phase = await measure(cluster, async () => {
    startedMs = Date.now();
    const started = performance.now();
    for (const folder of folders) Deno.mkdirSync(join(a, folder), { recursive: true });
    for (const item of items) Deno.writeFileSync(join(a, item.path), item.data);
    let files = 0;
    const done = await until(async () => (files = await countFiles(b)) >= count, {
      timeoutMs: 60_000 + count * 50,
      intervalMs: 100,
      world: cluster,
      what: () => `B has ${files} of ${count} small files`,
    });
    committed = commitsLogged(node1.output, startedMs);
    return (done - started) / 1000;
  });
  await waitForSameTree(a, b, 30_000);
  // The server's view: changes committed from the first write until its last commit line.
  const commitSeconds = (committed.lastMs - startedMs) / 1000;
  return { phase, bytes, count, changes: committed.changes, commitSeconds };
}

/** The large-file workload: random files renamed into A's folder at once; done when B has them, same hashes. */
async function largeFiles(cluster: Cluster, count: number, size: number) {
  const staging = cluster.path("staging");
  await Deno.mkdir(staging);
  const hashes: string[] = [];
  for (let i = 0; i < count; i++) hashes.push(await writeRandomFile(join(staging, `big-${i}.bin`), size));
  const b = cluster.path("B");
  const phase = await measure(cluster, async () => {
    const started = performance.now();
    for (let i = 0; i < count; i++) {
      await Deno.rename(join(staging, `big-${i}.bin`), join(cluster.path("A"), `big-${i}.bin`));
    }
    let have = 0;
    const done = await until(async () => {
      have = 0;
      for (let i = 0; i < count; i++) {
        if ((await Deno.stat(join(b, `big-${i}.bin`)).catch(() => null))?.size === size) have++;
      }
      return have === count;
    }, {
      timeoutMs: 60_000 + (count * size / MIB) * 1000,
      intervalMs: 20,
      world: cluster,
      what: () => `B has ${have} of ${count} large files`,
    });
    return (done - started) / 1000;
  });
  for (let i = 0; i < count; i++) {
    const got = createHash("sha256").update(await Deno.readFile(join(b, `big-${i}.bin`))).digest("hex");
    if (got !== hashes[i]) throw new Error(`big-${i}.bin differs on B`);
  }
  return { phase, bytes: count * size };
}

/**
 * Commit latency as a device sees it: on each node one connection logs in and makes `count` commits one after
 * another, each a PUT of a new 4 KiB chunk and a COMMIT of one new file made of it; the COMMIT's round trip (sent
 * → reply) is timed apart from the PUT's. With two nodes both probes run at once (same user, two nodes).
 */
async function commitProbe(cluster: Cluster, count: number) {
  const peers: RpcPeer[] = [];
  try {
    for (const [i, node] of cluster.nodes.entries()) {
      const peer = await openConnection({
        hostname: "127.0.0.1",
        port: node.port,
        caPem: await Deno.readTextFile(cluster.nodes[0].caPath),
      });
      peers.push(peer);
      await peer.request("LOGIN", { user: USER, password: PASSWORD, device: `probe${i + 1}` });
    }
    const commitMs: number[] = [];
    const putMs: number[] = [];
    const started = performance.now();
    await Promise.all(peers.map(async (peer, p) => {
      for (let i = 0; i < count; i++) {
        const data = new Uint8Array(4 * KIB);
        randomFillSync(data);
        const id = sha256Hex(data);
        const t0 = performance.now();
        await peer.request("PUT", { hash: id }, data);
        const t1 = performance.now();
        const change = {
          op: "upload",
          path: `probe/node${p + 1}-${String(i).padStart(4, "0")}.bin`,
          baseRev: 0,
          size: data.length,
          mtime: Date.now(),
          hash: fileHashOfChunks([id]),
          rows: { offset: 0, count: 1 },
        };
        const reply = await peer.request(
          "COMMIT",
          { changes: [change] },
          encodeRows([{ id, size: data.length }]),
        );
        const t2 = performance.now();
        const result = (reply.message.results as ChangeResult[])[0];
        if (!result.ok) throw new Error(`probe commit refused: ${result.error}`);
        putMs.push(t1 - t0);
        commitMs.push(t2 - t1);
      }
    }));
    return { seconds: (performance.now() - started) / 1000, commitMs, putMs, commits: commitMs.length };
  } finally {
    for (const peer of peers) peer.close();
    await Promise.all(peers.map((p) => p.closed));
  }
}

const sumOf = (values: Iterable<number>) => [...values].reduce((s, v) => s + v, 0);
const s2 = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : "?");

async function runSetup(ctx: BenchContext, setup: Setup, services: ScaleServices | null): Promise<Row> {
  const size = sizes(ctx);
  await using cluster = await Cluster.start(ctx, setup, services);
  await cluster.startDevices();
  const small = await smallFiles(cluster, size.smallFiles);
  const large = await largeFiles(cluster, size.largeFiles, size.largeBytes);
  const rss = rssCell(cluster);
  await cluster.stopDevices();
  const probe = await commitProbe(cluster, size.commits);

  const phases = [small.phase, large.phase];
  const total = (key: "aIn" | "aOut" | "bIn" | "bOut") => sumOf(phases.map((p) => p[key]));
  const cpu = (name: string) => sumOf(phases.map((p) => p.cpu.get(name) ?? NaN));
  const nodeCpu = setup.nodes === 2 ? `${s2(cpu("node1"))}+${s2(cpu("node2"))}` : s2(cpu("node1"));
  const smallRate = small.count / small.phase.seconds;
  const largeMiBps = large.bytes / MIB / large.phase.seconds;
  const p50 = percentile(probe.commitMs, 50);
  const p99 = percentile(probe.commitMs, 99);
  const serverCpuPerCommit =
    sumOf(phases.map((p) => sumOf(cluster.nodes.map((_, i) => p.cpu.get(`node${i + 1}`) ?? NaN)))) /
    small.count;
  return {
    name: `scale-out ${setup.key}`,
    wallSeconds: small.phase.seconds + large.phase.seconds + probe.seconds,
    result:
      `small ${smallRate.toFixed(0)} files/s (${
        (small.bytes / MIB / small.phase.seconds).toFixed(1)
      } MiB/s); ` +
      `large ${largeMiBps.toFixed(0)} MiB/s; COMMIT p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, ` +
      `${(probe.commits / probe.seconds).toFixed(0)} commits/s`,
    aToServer: formatBytes(total("aIn")),
    serverToB: formatBytes(total("bOut")),
    reverse: `${formatBytes(total("aOut"))} / ${formatBytes(total("bIn"))}`,
    cpu: `${nodeCpu} / ${s2(cpu("A"))} / ${s2(cpu("B"))}`,
    rss,
    target: TARGET,
    verdict: "—",
    notes: [
      `${setup.label}.`,
      `Small: ${small.count} files of 1–16 KiB (${formatBytes(small.bytes)}) written into A's folder, ${
        small.phase.seconds.toFixed(2)
      } s until B had them all (trees then compared by SHA-256); node 1 logged ${small.changes} changes ` +
      `committed for A, the last ${small.commitSeconds.toFixed(2)} s after the first write (${
        (small.changes / small.commitSeconds).toFixed(0)
      } changes/s committed; the client sends up to 200 per COMMIT).`,
      `Large: ${size.largeFiles} × ${formatBytes(size.largeBytes)} random files, ${
        large.phase.seconds.toFixed(2)
      } s A → B (hashes checked on B).`,
      `Commit probe (devices stopped): ${probe.commits} commits (${
        setup.nodes === 2 ? `${size.commits} through each node at once` : "one after another"
      }), each a PUT of a new 4 KiB chunk then a COMMIT of one new file; COMMIT round trip p50 ${
        p50.toFixed(1)
      } / p99 ${p99.toFixed(1)} ms, PUT p50 ${percentile(probe.putMs, 50).toFixed(1)} / p99 ${
        percentile(probe.putMs, 99).toFixed(1)
      } ms; ` +
      `server CPU in the small + large phases ${(serverCpuPerCommit * 1000).toFixed(1)} ms per small file.`,
      `CPU s: server${setup.nodes === 2 ? "s node 1 + node 2" : ""} / A / B over the small and large phases.`,
    ],
  };
}

function rssCell(cluster: Cluster): string {
  const mb = (p: Proc | undefined) => {
    const bytes = p ? procStats(p.child.pid)?.peakRssBytes ?? NaN : NaN;
    return Number.isFinite(bytes) ? (bytes / 1e6).toFixed(0) : "?";
  };
  const nodes = cluster.nodes.map(mb).join("+");
  return `${nodes} / ${mb(cluster.clients.get("A"))} / ${mb(cluster.clients.get("B"))}`;
}

/** The scale-out scenario: three rows, or one skipped row when PostgreSQL or radosgw cannot be had. */
export const scaleOut: Scenario = {
  name: "scale-out",
  target: TARGET,
  async run(ctx): Promise<Row[]> {
    const services = await scaleServices();
    const rows: Row[] = [];
    for (const setup of SETUPS) {
      if (setup.shared && typeof services === "string") {
        rows.push(skipped(`scale-out ${setup.key}`, services));
        continue;
      }
      console.error(`bench: scale-out ${setup.key} …`);
      rows.push(await runSetup(ctx, setup, typeof services === "string" ? null : services));
      if (typeof services !== "string" && setup === SETUPS.find((s) => s.shared)) {
        rows.at(-1)!.notes.push(...services.notes.map((n) => `${n}.`));
      }
    }
    return rows;
  },
};

function skipped(name: string, why: string): Row {
  console.error(`bench: ${name} skipped: ${why}`);
  return {
    name,
    wallSeconds: null,
    result: "skipped",
    aToServer: "—",
    serverToB: "—",
    reverse: "—",
    cpu: "—",
    rss: "—",
    target: TARGET,
    verdict: "skipped",
    notes: [`Skipped: ${why}.`],
  };
}
