// Two devices change one path or folder at once (the soak's races): they converge and edits survive.
import assert from "node:assert/strict";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { describeTree, readTree, waitForFile, waitForSameTree, World } from "./harness.ts";

interface RaceCase {
  name: string;
  /** What A does (in A's folder). */
  a: (dir: string) => Promise<void>;
  /** What B does at the same moment (in B's folder). */
  b: (dir: string) => Promise<void>;
  /** B's action writes {@linkcode EDIT}, which must be kept. */
  edits: boolean;
  /**
   * What both devices hold afterwards, whichever device reached the server first: path -> text, or "dir".
   * It keeps every name a user gave and every content: a rename that lost keeps its name as a new file.
   */
  outcome?: Record<string, string>;
  /** Texts some file must hold afterwards, where the outcome's names depend on who was first (copies). */
  keeps?: string[];
}

const EDIT = "edited at the same moment";

const CASES: RaceCase[] = [
  {
    name: "rename to two names (soak seed 7)",
    a: (dir) => Deno.rename(join(dir, "d/f.txt"), join(dir, "d/r.txt")),
    b: (dir) => Deno.rename(join(dir, "d/f.txt"), join(dir, "d/o.txt")),
    edits: false,
    outcome: { d: "dir", "d/o.txt": "original", "d/r.txt": "original", "d/g.txt": "neighbour" },
  },
  {
    name: "rename here, edit there",
    a: (dir) => Deno.rename(join(dir, "d/f.txt"), join(dir, "d/r.txt")),
    b: (dir) => Deno.writeTextFile(join(dir, "d/f.txt"), EDIT),
    edits: true,
    outcome: { d: "dir", "d/f.txt": EDIT, "d/r.txt": "original", "d/g.txt": "neighbour" },
  },
  {
    name: "delete here, edit there",
    a: (dir) => Deno.remove(join(dir, "d/f.txt")),
    b: (dir) => Deno.writeTextFile(join(dir, "d/f.txt"), EDIT),
    edits: true,
    outcome: { d: "dir", "d/f.txt": EDIT, "d/g.txt": "neighbour" },
  },
  {
    name: "folder renamed here, a file in it edited there",
    a: (dir) => Deno.rename(join(dir, "d"), join(dir, "e")),
    b: (dir) => Deno.writeTextFile(join(dir, "d/f.txt"), EDIT),
    edits: true,
    outcome: { d: "dir", "d/f.txt": EDIT, e: "dir", "e/f.txt": "original", "e/g.txt": "neighbour" },
  },
  {
    name: "folder deleted here, a file in it edited there",
    a: (dir) => Deno.remove(join(dir, "d"), { recursive: true }),
    b: (dir) => Deno.writeTextFile(join(dir, "d/f.txt"), EDIT),
    edits: true,
    outcome: { d: "dir", "d/f.txt": EDIT },
  },
  {
    name: "folder deleted here, a file created in it there",
    a: (dir) => Deno.remove(join(dir, "d"), { recursive: true }),
    b: (dir) => Deno.writeTextFile(join(dir, "d/new.txt"), EDIT),
    edits: true,
    outcome: { d: "dir", "d/new.txt": EDIT },
  },
  {
    name: "rename to one same name",
    a: (dir) => Deno.rename(join(dir, "d/f.txt"), join(dir, "d/r.txt")),
    b: (dir) => Deno.rename(join(dir, "d/f.txt"), join(dir, "d/r.txt")),
    edits: false,
    outcome: { d: "dir", "d/r.txt": "original", "d/g.txt": "neighbour" },
  },
  {
    name: "folder renamed to two names",
    a: (dir) => Deno.rename(join(dir, "d"), join(dir, "e")),
    b: (dir) => Deno.rename(join(dir, "d"), join(dir, "o")),
    edits: false,
    outcome: {
      e: "dir",
      "e/f.txt": "original",
      "e/g.txt": "neighbour",
      o: "dir",
      "o/f.txt": "original",
      "o/g.txt": "neighbour",
    },
  },
  {
    name: "file moved out of a folder here, the folder deleted there",
    a: (dir) => Deno.rename(join(dir, "d/f.txt"), join(dir, "f.txt")),
    b: (dir) => Deno.remove(join(dir, "d"), { recursive: true }),
    edits: false,
    outcome: { "f.txt": "original" },
  },
  {
    name: "one new file made on both with two contents",
    a: (dir) => Deno.writeTextFile(join(dir, "d/new.txt"), "made on A"),
    b: (dir) => Deno.writeTextFile(join(dir, "d/new.txt"), EDIT),
    edits: true,
    keeps: ["made on A", "original", "neighbour"],
  },
  {
    name: "one new folder made on both with two files",
    a: async (dir) => {
      await Deno.mkdir(join(dir, "n"));
      await Deno.writeTextFile(join(dir, "n/a.txt"), "made on A");
    },
    b: async (dir) => {
      await Deno.mkdir(join(dir, "n"));
      await Deno.writeTextFile(join(dir, "n/b.txt"), EDIT);
    },
    edits: true,
    outcome: {
      d: "dir",
      "d/f.txt": "original",
      "d/g.txt": "neighbour",
      n: "dir",
      "n/a.txt": "made on A",
      "n/b.txt": EDIT,
    },
  },
  {
    name: "file replaced by a folder here, edited there",
    a: async (dir) => {
      await Deno.remove(join(dir, "d/f.txt"));
      await Deno.mkdir(join(dir, "d/f.txt"));
      await Deno.writeTextFile(join(dir, "d/f.txt/in.txt"), "made on A");
    },
    b: (dir) => Deno.writeTextFile(join(dir, "d/f.txt"), EDIT),
    edits: true,
    keeps: ["made on A", "neighbour"],
  },
];

for (const c of CASES) {
  Deno.test(`two devices at once: ${c.name}: both converge and no content is lost`, async () => {
    await using world = await World.create();
    await world.client("A");
    await world.client("B");
    const [a, b] = [world.dir("A"), world.dir("B")];
    await Deno.mkdir(join(a, "d"));
    await Deno.writeTextFile(join(a, "d/f.txt"), "original");
    await Deno.writeTextFile(join(a, "d/g.txt"), "neighbour");
    await waitForFile(join(b, "d/f.txt"), "original");
    await waitForFile(join(b, "d/g.txt"), "neighbour");
    await Promise.all([c.a(a), c.b(b)]);
    await waitForSameTree(a, b, 30_000);
    const tree = await readTree(a);
    const contents = new Set(tree.values());
    const hash = (text: string) => createHash("sha256").update(text).digest("hex");
    if (c.edits) {
      assert.ok(contents.has(hash(EDIT)), `the edit made at the same moment is kept:\n${describeTree(tree)}`);
    }
    for (const text of c.keeps ?? []) {
      assert.ok(contents.has(hash(text)), `"${text}" is kept:\n${describeTree(tree)}`);
    }
    if (c.outcome) {
      const want = new Map(
        Object.entries(c.outcome).map(([path, text]) => [path, text === "dir" ? "dir" : hash(text)]),
      );
      assert.deepEqual(await readTree(b), want);
    }
  });
}
