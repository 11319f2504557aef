// End-to-end: concurrent changes — conflicts, edit against delete, first link, offline work, files in motion.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  describeTree,
  type Proc,
  readTree,
  readTreeWhileChanging,
  waitFor,
  waitForFile,
  waitForGone,
  waitForSameTree,
  World,
} from "./harness.ts";

/** Matches the conflict copy of `doc.txt` left by `device`. */
function docCopyOf(device: string): RegExp {
  return new RegExp(`^doc \\(conflicted copy from ${device} \\d{4}-\\d{2}-\\d{2} \\d{6}\\)\\.txt$`);
}

/** How many times `pattern` occurs in `text`. */
function count(text: string, pattern: RegExp): number {
  return [...text.matchAll(new RegExp(pattern.source, "g"))].length;
}

/** Waits until `proc` has printed `pattern` at least `times` times. */
async function waitForLines(proc: Proc, pattern: RegExp, times: number): Promise<void> {
  await waitFor(() => count(proc.output, pattern) >= times, {
    message: () => `${proc.name} printed ${pattern} fewer than ${times} times:\n${proc.output}`,
  });
}

/** Waits until the top level of `dir` has a name matching `pattern`; returns that name. */
async function waitForName(dir: string, pattern: RegExp): Promise<string> {
  let found: string | undefined;
  await waitFor(async () => {
    found = [...(await readTreeWhileChanging(dir))?.keys() ?? []].find((p) => pattern.test(p));
    return found !== undefined;
  }, { message: () => `no name matching ${pattern} in ${dir}` });
  return found!;
}

/** `YYYY-MM-DD HHMMSS` in UTC, as conflict copies show a modification time. */
function utcStamp(when: Date): string {
  return when.toISOString().slice(0, 19).replace("T", " ").replace(/:(\d\d):(\d\d)$/, "$1$2");
}

/** The SHA-256 (hex) of a text, as readTree reports files. */
function sha(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

/** Sets up A and B with `doc.txt` = "v1" on both; returns the world and both clients. */
async function twoDevicesWithDoc(): Promise<{ world: World; clientA: Proc; clientB: Proc }> {
  const world = await World.create();
  try {
    const clientA = await world.client("A");
    const clientB = await world.client("B");
    await Deno.writeTextFile(`${world.dir("A")}/doc.txt`, "v1");
    await waitForFile(`${world.dir("B")}/doc.txt`, "v1");
    await waitForLines(clientA, /uploaded doc\.txt/, 1);
    return { world, clientA, clientB };
  } catch (error) {
    await world[Symbol.asyncDispose]();
    throw error;
  }
}

/** Edits doc.txt on A while B is stopped, waits until the server has it, then edits it on B with `mtime`. */
async function editOnBothSides(world: World, clientA: Proc, clientB: Proc, bMtime: Date): Promise<void> {
  await clientB.stop();
  await Deno.writeTextFile(`${world.dir("A")}/doc.txt`, "edited on A");
  await waitForLines(clientA, /uploaded doc\.txt/, 2);
  const onB = `${world.dir("B")}/doc.txt`;
  await Deno.writeTextFile(onB, "edited on B, offline");
  await Deno.utime(onB, bMtime, bMtime);
}

Deno.test("conflict: a newer offline edit still yields to the server's version and becomes B's copy", async () => {
  const { world, clientA, clientB } = await twoDevicesWithDoc();
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  const bMtime = new Date(Date.now() + 60_000);
  await editOnBothSides(world, clientA, clientB, bMtime);
  const clientB2 = await world.client("B");

  // The copy is named after the device that lost (B) and its version's mtime, in UTC.
  const copy = `doc (conflicted copy from B ${utcStamp(bMtime)}).txt`;
  await waitForFile(`${a}/${copy}`, "edited on B, offline");
  await waitForSameTree(a, b);
  const tree = await readTree(b);
  assert.deepEqual([...tree.keys()].sort(), [copy, "doc.txt"].sort(), describeTree(tree));
  assert.equal(tree.get("doc.txt"), sha("edited on A"));
  assert.equal(tree.get(copy), sha("edited on B, offline"));
  assert.equal(count(clientA.output, /conflict:/), 0, clientA.output);
  assert.equal(count(clientB2.output, /conflict: doc\.txt/), 1, clientB2.output);
});

Deno.test("conflict: an older offline edit also becomes B's conflicted copy", async () => {
  const { world, clientA, clientB } = await twoDevicesWithDoc();
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  await editOnBothSides(world, clientA, clientB, new Date(Date.now() - 60_000));
  await world.client("B");

  const copy = await waitForName(a, docCopyOf("B"));
  await waitForSameTree(a, b);
  const tree = await readTree(a);
  assert.deepEqual([...tree.keys()].sort(), [copy, "doc.txt"].sort(), describeTree(tree));
  assert.equal(tree.get("doc.txt"), sha("edited on A"));
  assert.equal(tree.get(copy), sha("edited on B, offline"));
});

Deno.test("edits of one file on two devices while the server is down leave exactly one conflicted copy", async () => {
  const { world, clientA, clientB } = await twoDevicesWithDoc();
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  await world.server.stop();
  await clientA.waitForOutput(/disconnected from server/);
  await clientB.waitForOutput(/disconnected from server/);
  const edits: Record<string, { text: string; stamp: string }> = {};
  for (const [device, dir] of [["A", a], ["B", b]]) {
    const text = `edited on ${device}, server down`;
    await Deno.writeTextFile(`${dir}/doc.txt`, text);
    edits[device] = { text, stamp: utcStamp((await Deno.stat(`${dir}/doc.txt`)).mtime!) };
  }
  await world.restartServer();

  const copy = await waitForName(a, /^doc \(conflicted copy from [AB] \d{4}-\d{2}-\d{2} \d{6}\)\.txt$/);
  await waitForSameTree(a, b, 30_000);
  // The device whose commit came second lost: its version is the copy, named after it and its mtime in UTC.
  const loser = copy.includes("from A ") ? "A" : "B";
  const winner = loser === "A" ? "B" : "A";
  assert.equal(copy, `doc (conflicted copy from ${loser} ${edits[loser].stamp}).txt`);
  const [loserProc, winnerProc] = loser === "A" ? [clientA, clientB] : [clientB, clientA];
  assert.equal(count(loserProc.output, /conflict: doc\.txt/), 1, loserProc.output);
  assert.equal(count(winnerProc.output, /conflict:/), 0, winnerProc.output);
  // More cycles on both, and a device that joins now, see the same: nobody makes a second copy later.
  await Deno.writeTextFile(`${a}/later.txt`, "one more change");
  const c = world.dir("C");
  await world.client("C");
  await waitForFile(`${c}/later.txt`, "one more change");
  await waitForFile(`${b}/later.txt`, "one more change");
  await waitForSameTree(a, c);
  for (const dir of [a, b, c]) {
    const tree = await readTree(dir);
    assert.deepEqual([...tree.keys()].sort(), [copy, "doc.txt", "later.txt"].sort(), describeTree(tree));
    assert.equal(tree.get("doc.txt"), sha(edits[winner].text));
    assert.equal(tree.get(copy), sha(edits[loser].text));
  }
  assert.equal(count(world.server.output, /: move doc\.txt ->/), 0, world.server.output);
});

Deno.test("an offline edit beats a delete made on the other device meanwhile", async () => {
  const { world, clientB } = await twoDevicesWithDoc();
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  await clientB.stop();
  await Deno.remove(`${a}/doc.txt`);
  await world.server.waitForOutput(/alice@A: delete doc\.txt/);
  await Deno.writeTextFile(`${b}/doc.txt`, "kept by B's edit");
  await world.client("B");

  await waitForFile(`${a}/doc.txt`, "kept by B's edit");
  await waitForSameTree(a, b);
  assert.deepEqual([...(await readTree(b)).keys()], ["doc.txt"]);
});

Deno.test("an edit beats an offline delete: the edited file comes back to the deleting device", async () => {
  const { world, clientA, clientB } = await twoDevicesWithDoc();
  await using _world = world;
  const a = world.dir("A");
  const b = world.dir("B");
  await clientB.stop();
  await Deno.writeTextFile(`${a}/doc.txt`, "edited on A while B deleted it");
  await waitForLines(clientA, /uploaded doc\.txt/, 2);
  await Deno.remove(`${b}/doc.txt`);
  await world.client("B");

  await waitForFile(`${b}/doc.txt`, "edited on A while B deleted it");
  await waitForSameTree(a, b);
  assert.deepEqual([...(await readTree(a)).keys()], ["doc.txt"]);
  assert.equal(await Deno.readTextFile(`${a}/doc.txt`), "edited on A while B deleted it");
});

Deno.test("first link merges a filled folder with the server's files; differing files keep both versions", async () => {
  await using world = await World.create();
  const a = world.dir("A");
  const c = world.dir("C");
  const clientA = await world.client("A");
  await Deno.mkdir(`${a}/shared`);
  await Deno.writeTextFile(`${a}/shared/from-server.txt`, "server's file in a shared folder");
  await Deno.writeTextFile(`${a}/same.txt`, "identical on both");
  await Deno.writeTextFile(`${a}/doc.txt`, "server version");
  await Deno.writeTextFile(`${a}/only-server.txt`, "only on the server");
  await waitForLines(clientA, /uploaded /, 4);

  await Deno.mkdir(`${c}/shared`, { recursive: true });
  await Deno.writeTextFile(`${c}/shared/from-device.txt`, "device's file in a shared folder");
  await Deno.writeTextFile(`${c}/same.txt`, "identical on both");
  await Deno.writeTextFile(`${c}/doc.txt`, "device version");
  await Deno.writeTextFile(`${c}/only-device.txt`, "only on the device");
  await world.client("C");

  const copy = await waitForName(a, docCopyOf("C"));
  await waitForFile(`${a}/only-device.txt`, "only on the device");
  await waitForFile(`${a}/shared/from-device.txt`, "device's file in a shared folder");
  await waitForSameTree(a, c);
  const tree = await readTree(c);
  assert.deepEqual(
    [...tree.keys()].sort(),
    [
      copy,
      "doc.txt",
      "only-device.txt",
      "only-server.txt",
      "same.txt",
      "shared",
      "shared/from-device.txt",
      "shared/from-server.txt",
    ].sort(),
    describeTree(tree),
  );
  assert.equal(tree.get("doc.txt"), sha("server version"));
  assert.equal(tree.get(copy), sha("device version"));
  assert.equal(tree.get("same.txt"), sha("identical on both"));
  assert.equal(tree.get("only-server.txt"), sha("only on the server"));
});

Deno.test("first link of a device with an empty folder downloads everything", async () => {
  await using world = await World.create();
  const a = world.dir("A");
  const d = world.dir("D");
  const clientA = await world.client("A");
  await Deno.mkdir(`${a}/nested/deeper`, { recursive: true });
  await Deno.mkdir(`${a}/empty folder`);
  for (let i = 0; i < 10; i++) await Deno.writeTextFile(`${a}/nested/deeper/file${i}.txt`, `content ${i}`);
  await Deno.writeTextFile(`${a}/top.txt`, "top");
  await waitForLines(clientA, /uploaded /, 11);

  await Deno.mkdir(d);
  const clientD = await world.client("D");
  await waitForSameTree(a, d);
  assert.equal((await readTree(d)).size, 14);
  await waitForLines(clientD, /downloaded /, 11);
  assert.equal(count(clientD.output, /downloaded /), 11);
  assert.equal(count(clientD.output, /uploaded |deleted |conflict/), 0, clientD.output);
});

Deno.test("changes made while the server is down converge once it is back", async () => {
  await using world = await World.create();
  const clientA = await world.client("A");
  const clientB = await world.client("B");
  const a = world.dir("A");
  const b = world.dir("B");
  await Deno.writeTextFile(`${a}/edit.txt`, "before");
  await Deno.writeTextFile(`${a}/gone.txt`, "to be deleted");
  await Deno.writeTextFile(`${a}/keep.txt`, "unchanged");
  await waitForSameTree(a, b);
  await waitForFile(`${b}/gone.txt`, "to be deleted");

  await world.server.stop();
  await clientA.waitForOutput(/disconnected from server/);
  await clientB.waitForOutput(/disconnected from server/);
  await Deno.writeTextFile(`${a}/new.txt`, "made offline");
  await Deno.writeTextFile(`${a}/edit.txt`, "edited offline");
  await Deno.writeTextFile(`${a}/edit.txt`, "edited offline, twice");
  await Deno.remove(`${a}/gone.txt`);
  await Deno.mkdir(`${a}/offline folder`);
  await Deno.writeTextFile(`${a}/offline folder/inside.txt`, "inside");
  await Deno.writeTextFile(`${b}/from-b.txt`, "B was offline too");
  await world.restartServer();

  await waitForFile(`${b}/edit.txt`, "edited offline, twice", 20_000);
  await waitForGone(`${b}/gone.txt`);
  await waitForFile(`${a}/from-b.txt`, "B was offline too", 20_000);
  await waitForSameTree(a, b);
  assert.deepEqual(
    [...(await readTree(b)).keys()].sort(),
    ["edit.txt", "from-b.txt", "keep.txt", "new.txt", "offline folder", "offline folder/inside.txt"],
  );
});

Deno.test("quick successive edits of one file end with the other device holding the last content", async () => {
  await using world = await World.create();
  await world.client("A");
  await world.client("B");
  const a = world.dir("A");
  const b = world.dir("B");
  // Bursts of same-size writes with short pauses, so that scans and uploads run between and during them.
  let last = "";
  for (let burst = 0; burst < 20; burst++) {
    for (let i = 0; i < 5; i++) {
      last = `edit ${String(burst).padStart(2, "0")}.${i}`;
      await Deno.writeTextFile(`${a}/busy.txt`, last);
    }
    await new Promise((resolve) => setTimeout(resolve, (burst % 4) * 15));
  }
  await waitForFile(`${b}/busy.txt`, last);
  await waitForSameTree(a, b);
  assert.equal(await Deno.readTextFile(`${a}/busy.txt`), last);
});

Deno.test("a file appended to while it is scanned ends identical on both devices", async () => {
  await using world = await World.create();
  await world.client("A");
  await world.client("B");
  const a = world.dir("A");
  const b = world.dir("B");
  const file = await Deno.open(`${a}/growing.log`, { create: true, append: true });
  const line = new TextEncoder().encode(`${"x".repeat(4000)}\n`);
  const until = Date.now() + 1500;
  let lines = 0;
  try {
    while (Date.now() < until) {
      for (let n = 0; n < line.length;) n += await file.write(line.subarray(n));
      lines++;
      // Pauses of 0 to 36 ms: some scans read the file mid-write, others finish between appends.
      await new Promise((resolve) => setTimeout(resolve, (lines % 10) * 4));
    }
  } finally {
    file.close();
  }
  const size = lines * line.length;
  await waitForFile(`${b}/growing.log`, await Deno.readFile(`${a}/growing.log`), 20_000);
  await waitForSameTree(a, b);
  assert.equal((await Deno.stat(`${b}/growing.log`)).size, size);
});
