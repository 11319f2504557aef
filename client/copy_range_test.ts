// Tests for client/copy_range.ts: in-kernel range copies, the open file's own stat, no symbolic links.
import assert from "node:assert/strict";
import { join } from "node:path";
import { RawFile } from "./copy_range.ts";

function withTmp(run: (dir: string) => void): void {
  const dir = Deno.makeTempDirSync({ prefix: "filesync-copy-range-" });
  try {
    run(dir);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

Deno.test("RawFile.copyTo() copies a range to another offset of another file", () => {
  withTmp((dir) => {
    const data = new Uint8Array(100_000).map((_, i) => i % 251);
    Deno.writeFileSync(join(dir, "a"), data);
    Deno.writeFileSync(join(dir, "b"), new Uint8Array(50_000));
    using source = RawFile.open(join(dir, "a"), "read")!;
    using target = RawFile.open(join(dir, "b"), "write")!;
    assert.ok(source && target);
    assert.ok(source.copyTo(target, { from: 1000, to: 10, length: 60_000 }));
    const got = Deno.readFileSync(join(dir, "b"));
    assert.equal(got.length, 60_010);
    assert.deepEqual(got.subarray(10), data.subarray(1000, 61_000));
    assert.deepEqual(got.subarray(0, 10), new Uint8Array(10));
    // Past the end of the source: refused (0 bytes copied), so the caller copies another way.
    assert.equal(source.copyTo(target, { from: 99_990, to: 0, length: 100 }), false);
  });
});

Deno.test("RawFile.stat() is the open file's, even after its path names another file", () => {
  withTmp((dir) => {
    Deno.writeFileSync(join(dir, "a"), new Uint8Array(10));
    using file = RawFile.open(join(dir, "a"), "read")!;
    const before = file.stat();
    Deno.writeFileSync(join(dir, "new"), new Uint8Array(20));
    Deno.renameSync(join(dir, "new"), join(dir, "a"));
    assert.equal(file.stat().size, 10);
    assert.equal(file.stat().ino, before.ino);
    assert.notEqual(Deno.statSync(join(dir, "a")).ino, before.ino);
  });
});

Deno.test("RawFile.open() refuses a symbolic link and a missing file", () => {
  withTmp((dir) => {
    Deno.writeFileSync(join(dir, "a"), new Uint8Array(10));
    Deno.symlinkSync(join(dir, "a"), join(dir, "link"));
    assert.equal(RawFile.open(join(dir, "link"), "read"), null);
    assert.equal(RawFile.open(join(dir, "missing"), "read"), null);
  });
});
