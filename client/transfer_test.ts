// Tests for the private temp files of downloads: one download per file, leftovers taken over once.
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { claimTempFile, releaseTempFile } from "./transfer.ts";

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
