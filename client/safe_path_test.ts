// Tests for the path-component check that keeps the client's writes inside the synced folder.
import assert from "node:assert/strict";
import { join } from "node:path";
import { LinkError, linkOnPath, type LinkStat, lstatInside } from "./safe_path.ts";

type Node = "dir" | "file" | "link";

/** An lstat over a fake tree of absolute paths under "/root". */
function fakeLstat(tree: Record<string, Node>) {
  const asked: string[] = [];
  const lstat = (abs: string): (LinkStat & { node: Node }) | null => {
    asked.push(abs);
    const node = tree[abs.slice("/root/".length)];
    if (node === undefined) return null;
    return { node, isDirectory: node === "dir", isSymlink: node === "link" };
  };
  return { lstat, asked };
}

Deno.test("linkOnPath() finds the first component that is a link, the path itself included", () => {
  const tree: Record<string, Node> = {
    docs: "link",
    "a": "dir",
    "a/b": "dir",
    "a/b/c.txt": "file",
    "a/l": "link",
    "a/b/last": "link",
    "f": "file",
  };
  const cases: [string, string | null][] = [
    ["docs", "docs"],
    ["docs/a.txt", "docs"],
    ["docs/deep/er/x", "docs"],
    ["a", null],
    ["a/b/c.txt", null],
    ["a/l/x.txt", "a/l"],
    ["a/l", "a/l"],
    ["a/b/last", "a/b/last"],
    ["a/new/x.txt", null],
    ["missing/x", null],
    ["f/x", null],
  ];
  for (const [path, expected] of cases) {
    assert.equal(linkOnPath("/root", path, fakeLstat(tree).lstat), expected, path);
  }
});

Deno.test("lstatInside() checks each component top-down and stops where nothing can be below", () => {
  const tree: Record<string, Node> = { a: "dir", "a/b": "dir", "a/b/c.txt": "file", f: "file" };
  let fake = fakeLstat(tree);
  assert.equal(lstatInside("/root", "a/b/c.txt", fake.lstat)?.node, "file");
  assert.deepEqual(fake.asked, ["/root/a", "/root/a/b", "/root/a/b/c.txt"]);
  fake = fakeLstat(tree);
  assert.equal(lstatInside("/root", "a/x/y/z", fake.lstat), null);
  assert.deepEqual(fake.asked, ["/root/a", "/root/a/x"]);
  fake = fakeLstat(tree);
  assert.equal(lstatInside("/root", "f/y", fake.lstat), null);
  assert.deepEqual(fake.asked, ["/root/f"]);
  assert.equal(lstatInside("/root", "a", fakeLstat(tree).lstat)?.node, "dir");
});

Deno.test("lstatInside() throws a LinkError naming the link", () => {
  const { lstat } = fakeLstat({ x: "dir", "x/docs": "link" });
  assert.throws(() => lstatInside("/root", "x/docs/a.txt", lstat), (error: unknown) => {
    assert.ok(error instanceof LinkError);
    assert.equal(error.link, "x/docs");
    assert.match(error.message, /^"x\/docs" is a symbolic link; nothing is written through it$/);
    return true;
  });
});

Deno.test("lstatInside() on a real folder: links to folders and files, and a linked root", () => {
  const outside = Deno.makeTempDirSync({ prefix: "filesync-safe-path-" });
  try {
    const root = join(outside, "root");
    Deno.mkdirSync(join(root, "real/sub"), { recursive: true });
    Deno.mkdirSync(join(outside, "elsewhere"));
    Deno.writeTextFileSync(join(root, "real/sub/f.txt"), "x");
    Deno.writeTextFileSync(join(outside, "target.txt"), "t");
    Deno.symlinkSync(join(outside, "elsewhere"), join(root, "docs"));
    Deno.symlinkSync(join(outside, "target.txt"), join(root, "real/file-link"));
    Deno.symlinkSync(join(outside, "nowhere"), join(root, "dangling"));
    assert.equal(lstatInside(root, "real/sub/f.txt")?.isFile, true);
    assert.equal(lstatInside(root, "real/sub/new.txt"), null);
    assert.equal(linkOnPath(root, "docs/a.txt"), "docs");
    assert.equal(linkOnPath(root, "real/file-link"), "real/file-link");
    assert.equal(linkOnPath(root, "dangling/x"), "dangling");
    assert.equal(linkOnPath(root, "real/sub/f.txt/below"), null);
    // The synced folder itself may be reached through a link.
    Deno.symlinkSync(root, join(outside, "root-link"));
    assert.equal(lstatInside(join(outside, "root-link"), "real/sub/f.txt")?.isFile, true);
  } finally {
    Deno.removeSync(outside, { recursive: true });
  }
});
