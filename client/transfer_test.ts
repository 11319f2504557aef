// Tests of downloads: private temp files (one download per file, leftovers taken over once), and rows copied
// from the local base file.
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { chunkLengths } from "../protocol/chunker.ts";
import { fileHashOfChunks, sha256Hex } from "../protocol/hash.ts";
import { type ChunkRow, encodeRows } from "../protocol/messages.ts";
import type { RpcPeer } from "../protocol/rpc.ts";
import { claimTempFile, copyPlan, fetchFile, releaseTempFile } from "./transfer.ts";

const HASH = "ab".repeat(32);
const OTHER = "cd".repeat(32);

function withTmp(run: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "filesync-transfer-" });
  try {
    run(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

const sizeOf = (path: string) => {
  try {
    return Deno.statSync(path).size;
  } catch {
    return -1;
  }
};

Deno.test("claimTempFile() gives each download its own name for the same version", () => {
  withTmp((dir) => {
    const first = claimTempFile(dir, HASH);
    const second = claimTempFile(dir, HASH);
    assert.notEqual(first, second);
    for (const path of [first, second]) {
      assert.match(basename(path), new RegExp(`^${HASH}\\.[0-9a-f]{16}\\.partial$`));
    }
    releaseTempFile(first);
    releaseTempFile(second);
  });
});

Deno.test("claimTempFile() takes over a leftover once, the largest first, and never one in use", () => {
  withTmp((dir) => {
    Deno.writeFileSync(join(dir, `${HASH}.partial`), new Uint8Array(10)); // name of older versions
    Deno.writeFileSync(join(dir, `${HASH}.0123456789abcdef.partial`), new Uint8Array(30));
    Deno.writeFileSync(join(dir, `${OTHER}.0123456789abcdef.partial`), new Uint8Array(50));
    Deno.writeFileSync(join(dir, `${HASH}.notes.txt`), new Uint8Array(70));
    const first = claimTempFile(dir, HASH);
    assert.equal(sizeOf(first), 30);
    const second = claimTempFile(dir, HASH);
    assert.equal(sizeOf(second), 10);
    // Both claimed files are in use: a third download starts empty and steals neither.
    const third = claimTempFile(dir, HASH);
    assert.equal(sizeOf(third), -1);
    assert.equal(sizeOf(first), 30);
    assert.equal(sizeOf(second), 10);
    // Released (kept after a dropped connection), a file can be taken over again.
    releaseTempFile(first);
    const fourth = claimTempFile(dir, HASH);
    assert.equal(sizeOf(fourth), 30);
    assert.equal(sizeOf(first), -1);
    assert.equal(sizeOf(join(dir, `${OTHER}.0123456789abcdef.partial`)), 50);
    assert.equal(sizeOf(join(dir, `${HASH}.notes.txt`)), 70);
    for (const path of [second, third, fourth]) releaseTempFile(path);
  });
});

Deno.test("claimTempFile() works without a temp folder listing (folder missing)", () => {
  withTmp((dir) => {
    const path = claimTempFile(join(dir, "missing"), HASH);
    assert.ok(path.startsWith(join(dir, "missing")));
    releaseTempFile(path);
  });
});

// --- Downloads that copy unchanged rows from the local base file (copy_file_range) ---

/** A file version: its bytes, chunk rows and whole-file hash. */
function version(data: Uint8Array): { data: Uint8Array; rows: ChunkRow[]; hash: string } {
  const rows: ChunkRow[] = [];
  let at = 0;
  for (const length of chunkLengths(data)) {
    rows.push({ id: sha256Hex(data.subarray(at, at + length)), size: length });
    at += length;
  }
  return { data, rows, hash: fileHashOfChunks(rows.map((r) => r.id)) };
}

function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(size, at + 65536)));
  }
  return out;
}

/** A peer serving one file version by DOWNLOAD and its chunks by GET; records the GETs. */
function servingPeer(current: ReturnType<typeof version>, gets: string[]): RpcPeer {
  const chunks = new Map<string, Uint8Array>();
  let at = 0;
  for (const row of current.rows) {
    chunks.set(row.id, current.data.subarray(at, at + row.size));
    at += row.size;
  }
  const entry = {
    path: "big.bin",
    kind: "file",
    hash: current.hash,
    size: current.data.length,
    mtime: 1,
    rev: 2,
  };
  return {
    request(op: string, body: Record<string, unknown>) {
      if (op === "DOWNLOAD") return Promise.resolve({ message: { entry }, data: encodeRows(current.rows) });
      if (op === "GET") {
        gets.push(body.hash as string);
        return Promise.resolve({ message: {}, data: chunks.get(body.hash as string) });
      }
      return Promise.reject(new Error(`unexpected ${op}`));
    },
  } as unknown as RpcPeer;
}

function statOfFile(path: string): { path: string; size: number; mtime: number; ino: number | null } {
  const info = Deno.statSync(path);
  return { path, size: info.size, mtime: info.mtime?.getTime() ?? 0, ino: info.ino ?? null };
}

/** A base version on disk and an edited version of it (4 KiB overwritten in the middle). */
function editedPair(
  dir: string,
): { old: ReturnType<typeof version>; next: ReturnType<typeof version>; path: string } {
  const old = version(randomBytes(3 * 1024 * 1024));
  const edited = old.data.slice();
  edited.set(randomBytes(4096), 1536 * 1024);
  const path = join(dir, "big.bin");
  Deno.writeFileSync(path, old.data);
  return { old, next: version(edited), path };
}

Deno.test("copyPlan() finds each row's offset in the base, or none", () => {
  const a = { id: "a".repeat(64), size: 10 };
  const b = { id: "b".repeat(64), size: 20 };
  const c = { id: "c".repeat(64), size: 5 };
  assert.deepEqual(copyPlan([a, b, c], [a, b]), [0, 10, undefined]);
  assert.deepEqual(copyPlan([c, a, b], [b, a]), [undefined, 20, 0]);
  // Same id with another size (a lying manifest): not copied.
  assert.deepEqual(copyPlan([{ id: a.id, size: 11 }], [a]), [undefined]);
  assert.deepEqual(copyPlan([a, a], [b, a, a]), [20, 20]);
  assert.deepEqual(copyPlan([a], []), [undefined]);
});

Deno.test("fetchFile() copies the rows it shares with an unchanged base file and fetches only the rest", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "filesync-transfer-" });
  try {
    const { old, next, path } = editedPair(dir);
    const gets: string[] = [];
    let localReads = 0;
    const fetched = await fetchFile(servingPeer(next, gets), dir, "big.bin", 2, {
      base: { hash: old.hash, rows: old.rows },
      baseFile: statOfFile(path),
      localChunk: () => {
        localReads++;
        return Promise.resolve(null);
      },
    });
    assert.deepEqual(Deno.readFileSync(fetched.tmpPath), next.data);
    const changed = next.rows.filter((r) => !old.rows.some((o) => o.id === r.id)).map((r) => r.id);
    assert.ok(changed.length >= 1 && changed.length < next.rows.length / 4, `${changed.length} rows changed`);
    assert.deepEqual(gets, changed);
    assert.equal(
      localReads,
      changed.length,
      "copied rows are not read through JS, only changed ones asked for",
    );
    const changedBytes = next.rows.filter((r) => changed.includes(r.id)).reduce((sum, r) => sum + r.size, 0);
    assert.equal(fetched.received, changedBytes);
    releaseTempFile(fetched.tmpPath);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("fetchFile() verifies every chunk instead when the base file's stat no longer matches", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "filesync-transfer-" });
  try {
    const { old, next, path } = editedPair(dir);
    const recorded = statOfFile(path);
    // The user changed the local file since it was synced (same size): its bytes are not the base's any more.
    const changedLocally = old.data.slice();
    changedLocally.fill(7, 0, 512 * 1024);
    Deno.writeFileSync(path, changedLocally);
    Deno.utimeSync(path, new Date(), new Date(recorded.mtime + 1000));
    const gets: string[] = [];
    const fetched = await fetchFile(servingPeer(next, gets), dir, "big.bin", 2, {
      base: { hash: old.hash, rows: old.rows },
      baseFile: recorded,
    });
    assert.deepEqual(Deno.readFileSync(fetched.tmpPath), next.data);
    assert.equal(gets.length, next.rows.length, "nothing copied from a changed base");
    releaseTempFile(fetched.tmpPath);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("fetchFile() downloads again, verified, when the base file changes while rows are copied", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "filesync-transfer-" });
  try {
    const { old, next, path } = editedPair(dir);
    const gets: string[] = [];
    let changed = false;
    const fetched = await fetchFile(servingPeer(next, gets), dir, "big.bin", 2, {
      base: { hash: old.hash, rows: old.rows },
      baseFile: statOfFile(path),
      progress: () => {
        if (changed) return;
        changed = true; // the user writes to the base file during the download
        using file = Deno.openSync(path, { append: true });
        file.writeSync(new Uint8Array(100).fill(1));
      },
    });
    assert.ok(changed);
    assert.deepEqual(Deno.readFileSync(fetched.tmpPath), next.data);
    assert.ok(gets.length >= next.rows.length, "the second attempt fetched every chunk");
    releaseTempFile(fetched.tmpPath);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
