// Tests for the scanner: a rescan of unchanged files, changed and gone files, names, ignored folders, links.

import assert from "node:assert/strict";
import { join } from "node:path";
import { createIgnoreMatcher } from "./ignore.ts";
import { Scanner } from "./scanner.ts";
import { STATE_DIR } from "./state.ts";

function folder(): string {
  const root = Deno.makeTempDirSync();
  Deno.mkdirSync(join(root, STATE_DIR));
  return root;
}

Deno.test("Scanner: a rescan finds changed content (same size, new mtime) and drops a file gone", async () => {
  const root = folder();
  try {
    Deno.mkdirSync(join(root, "d"));
    Deno.writeTextFileSync(join(root, "d/a.txt"), "aaaa");
    Deno.writeTextFileSync(join(root, "d/b.txt"), "bbbb");
    const scanner = new Scanner(root, { ignore: createIgnoreMatcher(null), known: () => undefined });
    const first = await scanner.scanAll();
    const again = await scanner.scanAll();
    assert.deepStrictEqual([...again.keys()].sort(), ["d", "d/a.txt", "d/b.txt"]);
    assert.strictEqual(again.get("d/a.txt")!.hash, first.get("d/a.txt")!.hash);
    Deno.writeTextFileSync(join(root, "d/a.txt"), "AAAA");
    Deno.utimeSync(join(root, "d/a.txt"), 1000, 1000);
    Deno.removeSync(join(root, "d/b.txt"));
    const third = await scanner.scanAll();
    assert.notStrictEqual(third.get("d/a.txt")!.hash, first.get("d/a.txt")!.hash);
    assert.strictEqual(third.get("d/a.txt")!.mtime, 1_000_000);
    assert.strictEqual(third.has("d/b.txt"), false);
    // The first result is not changed by later scans.
    assert.strictEqual(first.get("d/a.txt")!.size, 4);
    assert.strictEqual(first.has("d/b.txt"), true);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("Scanner: names, ignored folders and links as before the fast paths", async () => {
  const root = folder();
  try {
    Deno.mkdirSync(join(root, "build/deep"), { recursive: true });
    Deno.writeTextFileSync(join(root, "build/deep/x.txt"), "x");
    Deno.writeTextFileSync(join(root, "plain.txt"), "p");
    Deno.writeTextFileSync(join(root, "na\u00efve.txt"), "nfc");
    Deno.writeTextFileSync(join(root, "nai\u0308ve2.txt"), "nfd");
    Deno.writeTextFileSync(join(root, "aux.txt"), "device name");
    Deno.writeTextFileSync(join(root, "C:x"), "drive-like");
    Deno.writeTextFileSync(join(root, "notes.swp"), "swap");
    Deno.symlinkSync("plain.txt", join(root, "link"));
    const skipped: string[] = [];
    const scanner = new Scanner(root, {
      ignore: createIgnoreMatcher("build/\n"),
      known: () => undefined,
      onSkip: (path) => skipped.push(path),
    });
    for (let round = 0; round < 2; round++) {
      const out = await scanner.scanAll();
      assert.deepStrictEqual([...out.keys()].sort(), ["na\u00efve.txt", "plain.txt"]);
      assert.deepStrictEqual([...scanner.links], ["link"]);
    }
    // Each said once, however many scans.
    assert.deepStrictEqual(skipped.sort(), ["C:x", "aux.txt", "link", "nai\u0308ve2.txt"].sort());
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});
