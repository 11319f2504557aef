// kill -9 of a client writing downloads, of the server committing: no partial file, all complete, fsck clean.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  partialBytes,
  type Proc,
  randomBytes,
  readTree,
  startConnectedClient,
  waitFor,
  waitForFile,
  World,
} from "./harness.ts";
import { Rng } from "./soak/rng.ts";
import { runFsck } from "./soak/server_check.ts";

const MiB = 1024 * 1024;

/** Expected content of each file: its size and SHA-256. */
type Expected = Map<string, { size: number; sha: string }>;

function sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Polls a synced folder's listing as fast as it can until stopped, and records every file that is not one of
 * the expected files with its full size and content (a partial or temp file, a torn write).
 */
class FolderWatch {
  readonly violations: string[] = [];
  readonly #checked = new Set<string>();
  #running = true;
  readonly #loop: Promise<void>;
  polls = 0;

  constructor(readonly dir: string, readonly expected: Expected) {
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      await this.#poll("");
      this.polls++;
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
  }

  async #poll(rel: string): Promise<void> {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(rel ? join(this.dir, rel) : this.dir));
    } catch {
      return; // the folder is not there yet
    }
    for (const entry of entries) {
      const path = rel ? `${rel}/${entry.name}` : entry.name;
      if (path === ".filesync") continue;
      if (entry.isDirectory) {
        await this.#poll(path);
        continue;
      }
      const want = this.expected.get(path);
      if (!want) {
        this.#violation(`unexpected file ${path} in the synced folder`);
        continue;
      }
      try {
        const size = (await Deno.lstat(join(this.dir, path))).size;
        if (size !== want.size) this.#violation(`${path} visible with ${size} of ${want.size} bytes`);
        else if (!this.#checked.has(path)) {
          this.#checked.add(path);
          if (sha(await Deno.readFile(join(this.dir, path))) !== want.sha) {
            this.#violation(`${path} visible with the wrong content`);
          }
        }
      } catch { /* gone meanwhile */ }
    }
  }

  #violation(text: string): void {
    if (this.violations.length < 50 && !this.violations.includes(text)) this.violations.push(text);
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }
}

/** Waits until `dir` holds exactly the expected files (and the folders they are in). */
async function waitForExactly(dir: string, expected: Expected, timeoutMs: number): Promise<void> {
  let last = "";
  await waitFor(async () => {
    const tree = await readTree(dir);
    const files = [...tree].filter(([, h]) => h !== "dir");
    const wrong = files.filter(([p, h]) => expected.get(p)?.sha !== h).map(([p]) => p);
    const missing = [...expected.keys()].filter((p) => !tree.has(p));
    last = `${files.length} files; wrong or unexpected: ${wrong.slice(0, 10).join(", ") || "none"}; ` +
      `missing ${missing.length}: ${missing.slice(0, 10).join(", ")}`;
    return wrong.length === 0 && missing.length === 0;
  }, { timeoutMs, intervalMs: 200, message: () => `${dir}: ${last}` });
}

function countFiles(output: string, pattern: RegExp): number {
  return output.split("\n").filter((line) => pattern.test(line)).length;
}

Deno.test("a client killed with kill -9 while it writes downloads never shows a partial file and completes after restart", async () => {
  await using world = await World.create();
  const clientA = await world.client("A");
  const dirA = world.dir("A");
  const expected: Expected = new Map();
  const put = async (path: string, bytes: Uint8Array) => {
    await Deno.mkdir(join(dirA, path, ".."), { recursive: true });
    await Deno.writeFile(join(dirA, path), bytes);
    expected.set(path, { size: bytes.length, sha: sha(bytes) });
  };
  await put("large.bin", randomBytes(32 * MiB, 71));
  await put("medium.bin", randomBytes(3 * MiB, 72));
  for (let i = 0; i < 400; i++) await put(`small/s${i}.txt`, randomBytes(200 + (i * 37) % 5000, 1000 + i));
  await waitFor(() => countFiles(clientA.output, /uploaded /) >= expected.size, {
    timeoutMs: 120_000,
    message: () => `A uploaded ${countFiles(clientA.output, /uploaded /)} of ${expected.size} files`,
  });

  const dirB = world.dir("B");
  const watch = new FolderWatch(dirB, expected);
  let clientB: Proc | null = null;
  try {
    // First kill: while the large file streams into the temp folder. Second: while small files land.
    clientB = world.startClient("B");
    await waitFor(async () => (await partialBytes(dirB)) > 4 * MiB, { timeoutMs: 60_000, intervalMs: 5 });
    clientB.kill("SIGKILL");
    await clientB.exited();
    const tree = await readTree(dirB);
    assert.equal(tree.has("large.bin"), false, "the large file is not in the folder before it is complete");

    clientB = world.startClient("B");
    await waitFor(() => /downloaded small\//.test(clientB!.output), { timeoutMs: 60_000, intervalMs: 5 });
    clientB.kill("SIGKILL");
    await clientB.exited();

    clientB = world.startClient("B");
    await waitForExactly(dirB, expected, 120_000);
  } finally {
    await watch.stop();
    await clientB?.stop();
  }
  assert.ok(watch.polls > 10, `the listing was polled (${watch.polls} times)`);
  assert.deepEqual(watch.violations, [], "no partial, temp or wrong file was ever visible in B's folder");
});

Deno.test("the server killed with kill -9 while it commits a large batch leaves no partial file and a consistent journal", async () => {
  const seed = Number(Deno.env.get("FILESYNC_CRASH_SEED") ?? Math.floor(Math.random() * 2 ** 31));
  console.log(`crash test seed ${seed} (replay: FILESYNC_CRASH_SEED=${seed})`);
  const rng = new Rng(seed);
  await using world = await World.create();
  const dirA = world.dir("A");
  const expected: Expected = new Map();
  for (let i = 0; i < 3000; i++) {
    const path = `batch/d${String(Math.floor(i / 100)).padStart(2, "0")}/f${i}.txt`;
    const bytes = randomBytes(100 + (i * 53) % 3000, 5000 + i);
    await Deno.mkdir(join(dirA, path, ".."), { recursive: true });
    await Deno.writeFile(join(dirA, path), bytes);
    expected.set(path, { size: bytes.length, sha: sha(bytes) });
  }
  await world.client("B");
  const watchB = new FolderWatch(world.dir("B"), expected);
  const clientA = world.startClient("A");
  const kills: string[] = [];
  try {
    // A's batches of 100 and more changes, as the server logs them once committed.
    const commitLines = () => countFiles(world.server.output, /alice@A: committed [1-9]\d{2,} changes/);
    for (let k = 0; k < 6; k++) {
      // The kill point: a random moment after the server has committed a large part of A's upload since it
      // (re)started, while the next part is being committed (the client sends them back to back).
      const before = commitLines();
      const progressed = await waitFor(() => commitLines() > before, { timeoutMs: 60_000 })
        .then(() => true, () => false);
      if (!progressed) break;
      const delay = rng.int(350);
      await new Promise((resolve) => setTimeout(resolve, delay));
      world.server.kill("SIGKILL");
      await world.server.exited();
      kills.push(`${delay} ms after commit line ${commitLines()}`);
      await world.restartServer();
    }
    console.log(`server killed: ${kills.join("; ")}`);
    assert.ok(kills.length > 0, "the server was killed at least once during the batch");
    await waitForExactly(world.dir("B"), expected, 180_000);
  } finally {
    await watchB.stop();
  }
  assert.deepEqual(watchB.violations, [], `no partial file on B (kills: ${kills.join("; ")})`);
  // A new device receives the complete set, and later changes still reach everyone (the journal's counter
  // and entries agree: a device that adopted a cursor beyond the counter would never see them).
  await using clientC = await startConnectedClient({
    server: world.server,
    user: world.user,
    password: world.password,
    dir: world.dir("C"),
    device: "C",
  });
  await waitForExactly(world.dir("C"), expected, 180_000);
  await Deno.writeTextFile(join(dirA, "after.txt"), "after the crashes");
  await waitForFile(join(world.dir("B"), "after.txt"), "after the crashes", 30_000);
  await waitForFile(join(world.dir("C"), "after.txt"), "after the crashes", 30_000);
  await clientC.stop();
  await clientA.stop();
  await Promise.all(world.procs.map((p) => p.stop()));
  await world.server.stop();
  const fsck = await runFsck(world.server.dataDir);
  assert.equal(fsck.code, 0, `fsck after kills (${kills.join("; ")}, seed ${seed}):\n${fsck.output}`);
});
