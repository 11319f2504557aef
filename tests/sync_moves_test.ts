// End-to-end: renames and moves travel as moves (no content sent), and a device never echoes its own writes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dirname } from "node:path";
import {
  describeTree,
  type Proc,
  randomBytes,
  readTree,
  waitFor,
  waitForFile,
  waitForGone,
  waitForSameTree,
  World,
} from "./harness.ts";

/** How many times `pattern` occurs in `text`. */
function count(text: string, pattern: RegExp): number {
  return [...text.matchAll(new RegExp(pattern.source, "g"))].length;
}

/** `text` as a regular expression that matches it literally. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Whether something exists at `path`. */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Output a process printed after `from` characters (mark with `proc.output.length`). */
function since(proc: Proc, from: number): string {
  return proc.output.slice(from);
}

/**
 * Waits until `done` holds, checking on every poll that each content is still at its old path or already at
 * its new one (old looked at first: a move from old to new can never make both look absent).
 */
async function waitNeverMissing(
  dir: string,
  pairs: [from: string, to: string][],
  done: () => Promise<boolean>,
): Promise<void> {
  const missing = new Set<string>();
  await waitFor(async () => {
    for (const [from, to] of pairs) {
      if (!(await exists(`${dir}/${from}`)) && !(await exists(`${dir}/${to}`))) missing.add(from);
    }
    return await done();
  }, { intervalMs: 5, message: () => `move never completed in ${dir}` });
  assert.deepEqual([...missing], [], `content missing at both its old and new path at some point in ${dir}`);
}

/** A and B connected, with each of `paths` (random content) synced to both. */
async function twoDevicesWith(
  paths: string[],
): Promise<{ world: World; clientA: Proc; clientB: Proc; contents: Map<string, Uint8Array> }> {
  const world = await World.create();
  try {
    const clientA = await world.client("A");
    const clientB = await world.client("B");
    const contents = new Map<string, Uint8Array>();
    for (const [i, path] of paths.entries()) {
      const content = randomBytes(50_000 + i, i + 1);
      contents.set(path, content);
      await Deno.mkdir(dirname(`${world.dir("A")}/${path}`), { recursive: true });
      await Deno.writeFile(`${world.dir("A")}/${path}`, content);
    }
    for (const [path, content] of contents) {
      await waitForFile(`${world.dir("B")}/${path}`, content);
      // Both print their lines a moment after the file is in place: wait for them before marking the output.
      await clientA.waitForOutput(new RegExp(`uploaded ${literal(path)} `));
      await clientB.waitForOutput(new RegExp(`downloaded ${literal(path)} `));
    }
    await waitForSameTree(world.dir("A"), world.dir("B"));
    return { world, clientA, clientB, contents };
  } catch (error) {
    await world[Symbol.asyncDispose]();
    throw error;
  }
}

/**
 * Moves `from` to `to` on A (making its folder first when missing) with `others` synced too; checks that B
 * replays it as a move, that the content is never absent from both paths on B, no content is sent, and nothing
 * is echoed back.
 */
async function expectMovedWithoutContent(from: string, to: string, others = ["other.txt"]): Promise<void> {
  const { world, clientA, clientB, contents } = await twoDevicesWith([from, ...others]);
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  const [markA, markB, markServer] = [
    clientA.output.length,
    clientB.output.length,
    world.server.output.length,
  ];

  await Deno.mkdir(dirname(`${a}/${to}`), { recursive: true });
  await Deno.rename(`${a}/${from}`, `${a}/${to}`);
  await waitNeverMissing(
    b,
    [[from, to]],
    async () => await exists(`${b}/${to}`) && !(await exists(`${b}/${from}`)),
  );
  await waitForFile(`${b}/${to}`, contents.get(from)!);

  // A later change from B: once it reached A, anything B would have echoed for the move was sent before it.
  await Deno.writeTextFile(`${b}/marker.txt`, "after the move");
  await waitForFile(`${a}/marker.txt`, "after the move");
  await waitForSameTree(a, b);

  await clientA.waitForOutput(new RegExp(`moved ${literal(from)} -> ${literal(to)} \\(on the server\\)`));
  await clientB.waitForOutput(new RegExp(`moved ${literal(from)} -> ${literal(to)} \\(from the server\\)`));
  assert.doesNotMatch(since(clientA, markA), /uploaded /);
  assert.doesNotMatch(since(clientB, markB), /downloaded |deleted |uploaded (?!marker)/);
  assert.doesNotMatch(since(world.server, markServer), new RegExp(`upload ${literal(to)} `));
  const fromB = since(world.server, markServer).split("\n").filter((l) => l.includes("alice@B:"));
  assert.equal(fromB.length, 1, `B committed more than its marker:\n${fromB.join("\n")}`);
  assert.match(fromB[0], /alice@B: upload marker\.txt /);
}

Deno.test("renaming a file on A renames it on B without sending its content", async () => {
  await expectMovedWithoutContent("report.txt", "final report.txt");
});

Deno.test("moving a file into another folder on A moves it on B without sending its content", async () => {
  await expectMovedWithoutContent("inbox/plan.txt", "archive/plan.txt", ["archive/keep.txt"]);
});

Deno.test("moving a file into a just-made folder on A moves it on B without sending its content", async () => {
  await expectMovedWithoutContent("inbox/plan.txt", "archive/2024/plan.txt");
});

Deno.test("the server records a rename as a move, not as an upload of the new path", async () => {
  const { world } = await twoDevicesWith(["report.txt"]);
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  const mark = world.server.output.length;
  await Deno.rename(`${a}/report.txt`, `${a}/renamed.txt`);
  await waitForGone(`${b}/report.txt`);
  await waitForSameTree(a, b);
  const log = since(world.server, mark);
  assert.match(log, /alice@A: move report\.txt -> renamed\.txt \(rev \d+\)/);
  assert.doesNotMatch(log, /upload renamed\.txt/, `the server log shows the rename as an upload:\n${log}`);
});

Deno.test("renaming a folder of 50 files on A renames it on B without downloading any file", async () => {
  const names = Array.from({ length: 50 }, (_, i) => i < 40 ? `img${i}.jpg` : `old/img${i}.jpg`);
  const { world, clientA, clientB, contents } = await twoDevicesWith(names.map((n) => `photos/${n}`));
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  const [markA, markB] = [clientA.output.length, clientB.output.length];

  await Deno.rename(`${a}/photos`, `${a}/pictures`);
  const pairs = names.map((n): [string, string] => [`photos/${n}`, `pictures/${n}`]);
  await waitNeverMissing(b, pairs, async () => {
    if (await exists(`${b}/photos`)) return false;
    for (const [, to] of pairs) if (!(await exists(`${b}/${to}`))) return false;
    return true;
  });
  // A later change from B: once it reached A, B has finished with the rename and would have echoed it by then.
  await Deno.writeTextFile(`${b}/marker.txt`, "after the rename");
  await waitForFile(`${a}/marker.txt`, "after the rename");
  await waitForSameTree(a, b);

  const tree = await readTree(b);
  assert.deepEqual(
    [...tree.keys()].sort(),
    ["marker.txt", "pictures", "pictures/old", ...pairs.map(([, to]) => to)].sort(),
    describeTree(tree),
  );
  for (const [from, to] of pairs) assert.deepEqual(await Deno.readFile(`${b}/${to}`), contents.get(from));
  // One line for the folder on each side, none per file, and no delete of the old folder.
  await clientA.waitForOutput(/moved photos -> pictures \(on the server, 50 files\)/);
  await clientB.waitForOutput(/moved photos -> pictures \(from the server, 50 files\)/);
  const outA = since(clientA, markA);
  const outB = since(clientB, markB);
  for (const out of [outA, outB]) assert.doesNotMatch(out, /moved photos\/|deleted photos/, out);
  assert.doesNotMatch(outA, /uploaded (?!marker)/);
  assert.doesNotMatch(outB, /downloaded |uploaded (?!marker)/);
  assert.doesNotMatch(
    outB,
    /deleted photos\/\S+\.jpg/,
    "B deleted files of the old folder instead of moving them",
  );
});

Deno.test("what B changed under a folder while it was offline survives A renaming that folder", async () => {
  const names = Array.from({ length: 20 }, (_, i) => `photos/img${i}.jpg`);
  const { world, clientA, clientB } = await twoDevicesWith(names);
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  await clientB.stop();
  await Deno.writeTextFile(`${b}/photos/img3.jpg`, "edited on B");
  await Deno.writeTextFile(`${b}/photos/new-on-B.txt`, "new on B");
  await Deno.rename(`${a}/photos`, `${a}/albums`);
  await clientA.waitForOutput(/moved photos -> albums \(on the server, 20 files\)/);
  await world.client("B");
  const hashOf = (text: string) => createHash("sha256").update(text).digest("hex");
  const holds = async (dir: string, text: string) =>
    [...(await readTree(dir)).values()].includes(hashOf(text));
  await waitFor(async () => {
    try {
      return await treesEqualHolding(a, b, ["edited on B", "new on B"], holds);
    } catch {
      return false; // a tree changed while read
    }
  }, { timeoutMs: 30_000, message: () => "B's edit and new file did not reach both devices" });
  for (const dir of [a, b]) {
    assert.ok(await holds(dir, "edited on B"), `B's edit is gone from ${dir}`);
    assert.ok(await holds(dir, "new on B"), `B's new file is gone from ${dir}`);
  }
});

/** Whether both folders hold the same tree and each holds files with every one of `texts`. */
async function treesEqualHolding(
  a: string,
  b: string,
  texts: string[],
  holds: (dir: string, text: string) => Promise<boolean>,
): Promise<boolean> {
  for (const dir of [a, b]) for (const text of texts) if (!(await holds(dir, text))) return false;
  const [ta, tb] = [await readTree(a), await readTree(b)];
  return ta.size === tb.size && [...ta].every(([k, v]) => tb.get(k) === v);
}

Deno.test("a file B downloaded is not uploaded back by B", async () => {
  await using world = await World.create();
  await world.client("A");
  const clientB = await world.client("B");
  const a = world.dir("A");
  const b = world.dir("B");
  await Deno.writeTextFile(`${a}/shared.txt`, "written on A");
  await waitForFile(`${b}/shared.txt`, "written on A");
  // A later change from B: once it reached A, an echo of shared.txt would have been committed before it.
  await Deno.writeTextFile(`${b}/marker.txt`, "after the download");
  await waitForFile(`${a}/marker.txt`, "after the download");
  await waitForSameTree(a, b);
  assert.equal(count(world.server.output, /: upload shared\.txt /), 1, world.server.output);
  assert.doesNotMatch(world.server.output, /alice@B: upload shared\.txt/);
  assert.doesNotMatch(clientB.output, /uploaded shared\.txt/);
});

Deno.test("a file B keeps out of sync under a folder stays where it is when A renames that folder", async () => {
  // B renames the whole folder at once when every file in it moves: a file the plan never saw (ignored here)
  // must keep it file by file.
  const names = Array.from({ length: 20 }, (_, i) => `photos/img${i}.jpg`);
  const { world, clientB } = await twoDevicesWith(names);
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  await Deno.writeTextFile(`${b}/photos/.DS_Store`, "only on B");
  await Deno.rename(`${a}/photos`, `${a}/albums`);
  await clientB.waitForOutput(/moved photos -> albums \(from the server, 20 files\)/);
  await waitFor(async () => (await readTree(`${b}/albums`)).size === 20, {
    message: () => "B's albums/ does not hold the 20 files",
  });
  assert.equal(await Deno.readTextFile(`${b}/photos/.DS_Store`), "only on B");
  assert.equal(await exists(`${b}/albums/.DS_Store`), false, "B's ignored file moved with the folder");
});

Deno.test("a folder of files renamed on A is one rename on B that keeps every file", async () => {
  const names = Array.from({ length: 30 }, (_, i) => `photos/img${i}.jpg`);
  const { world, clientB, contents } = await twoDevicesWith(names);
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  const inode = (await Deno.lstat(`${b}/photos`)).ino;
  const markB = clientB.output.length;
  await Deno.rename(`${a}/photos`, `${a}/albums`);
  await waitFor(async () => !(await exists(`${b}/photos`)) && (await readTree(`${b}/albums`)).size === 30, {
    message: () => `B did not rename the folder:\n${since(clientB, markB)}`,
  });
  // The folder itself moved (its inode), and every file is there with its content.
  assert.equal((await Deno.lstat(`${b}/albums`)).ino, inode);
  for (const [path, content] of contents) {
    assert.deepEqual(await Deno.readFile(`${b}/${path.replace("photos/", "albums/")}`), content);
  }
  await Deno.writeTextFile(`${b}/marker.txt`, "after the rename");
  await waitForFile(`${a}/marker.txt`, "after the rename");
  await waitForSameTree(a, b);
  assert.doesNotMatch(since(clientB, markB), /downloaded |uploaded (?!marker)/);
  // One line for the folder, none per file.
  assert.match(since(clientB, markB), /moved photos -> albums \(from the server, 30 files\)/);
  assert.doesNotMatch(since(clientB, markB), /moved photos\//);
});
