// Table tests of the soak generator's pure choices: replayable, and acting only on what exists.
import assert from "node:assert/strict";
import { type DeviceView, DRAWS_PER_OP, type Op, planOp } from "./generator.ts";
import { Rng, weighted } from "./rng.ts";

const EMPTY: DeviceView = { files: [], dirs: [] };
const SOME: DeviceView = {
  files: [{ path: "a.txt", size: 10 }, { path: "d/b.txt", size: 300 * 1024 }],
  dirs: ["d"],
};

function ops(seed: number, view: DeviceView, count: number): Op[] {
  const rng = new Rng(seed);
  return Array.from(
    { length: count },
    (_, index) => planOp(rng.draws(DRAWS_PER_OP), view, { index, devices: 3, device: 0 }),
  );
}

Deno.test("Rng gives the same sequence for the same seed and another for another seed", () => {
  const a = new Rng(7).draws(5);
  assert.deepEqual(new Rng(7).draws(5), a);
  assert.notDeepEqual(new Rng(8).draws(5), a);
  assert.ok(a.every((x) => x >= 0 && x < 1));
});

Deno.test("weighted() picks by weight and never a zero-weight key", () => {
  const table: [number, string][] = [[0, "a"], [0.49, "a"], [0.5, "b"], [0.99, "b"]];
  for (const [u, want] of table) assert.equal(weighted(u, { a: 1, z: 0, b: 1 }), want);
});

Deno.test("planOp() replays: the same draws and view give the same operations", () => {
  assert.deepEqual(ops(42, SOME, 200), ops(42, SOME, 200));
});

Deno.test("planOp() on an empty device only creates, makes folders or restarts", () => {
  for (const op of ops(1, EMPTY, 500)) assert.ok(["create", "mkdir", "restart"].includes(op.kind), op.kind);
});

Deno.test("planOp() edits, moves and deletes only paths the device has", () => {
  const files = new Set(SOME.files.map((f) => f.path));
  const seen = new Set<string>();
  for (const op of ops(3, SOME, 2000)) {
    seen.add(op.kind);
    if (op.kind === "overwrite" || op.kind === "append" || op.kind === "delete" || op.kind === "conflict") {
      assert.ok(files.has(op.path), `${op.kind} ${op.path}`);
    }
    if (op.kind === "patch") assert.equal(op.path, "d/b.txt", "only large files are patched in place");
    if (op.kind === "rename") assert.ok(files.has(op.from));
    if (op.kind === "renameDir" || op.kind === "rmdir") {
      assert.equal(op.kind === "rmdir" ? op.path : op.from, "d");
    }
    if (op.kind === "create" || op.kind === "mkdir") {
      assert.ok(
        !op.path.includes("/") || op.path.startsWith("d/"),
        `new paths go in existing folders: ${op.path}`,
      );
    }
  }
  assert.equal(seen.size, 12, `every kind is generated: ${[...seen]}`);
});

Deno.test("planOp() makes mostly small files and a few multi-chunk ones", () => {
  const sizes = ops(5, EMPTY, 3000).flatMap((op) => op.kind === "create" ? [op.content.size] : []);
  const large = sizes.filter((s) => s > 256 * 1024).length;
  assert.ok(large > 0 && large < sizes.length * 0.08, `${large} large of ${sizes.length}`);
});
