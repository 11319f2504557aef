// Tests for the ignore rules.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  BUILTIN_IGNORES,
  createIgnoreMatcher,
  IGNORE_FILE,
  type IgnoreMatcher,
  loadIgnoreRules,
} from "./ignore.ts";

/** Asserts, for each [path, isDir, expected] row, what the matcher says. */
function assertMatches(matcher: IgnoreMatcher, rows: [string, boolean, boolean][]): void {
  for (const [path, isDir, expected] of rows) {
    assert.equal(matcher.ignores(path, isDir), expected, `${path}${isDir ? " (folder)" : ""}`);
  }
}

Deno.test("createIgnoreMatcher() ignores the client state folder at the root only", () => {
  assertMatches(createIgnoreMatcher(null), [
    [".filesync", true, true],
    [".filesync/base.kv", false, true],
    [".filesync/tmp/x.filesync-tmp", false, true],
    [".FileSync", true, true],
    ["docs/.filesync", true, false],
    ["docs/.filesync/x", false, false],
    [".filesyncstate", true, false],
  ]);
});

Deno.test("createIgnoreMatcher() ignores editor and OS temporary files everywhere", () => {
  assertMatches(createIgnoreMatcher(null), [
    [".notes.txt.swp", false, true],
    ["a/b/.notes.txt.swo", false, true],
    ["a/.notes.txt.swx", false, true],
    ["report.txt~", false, true],
    ["a/.#report.txt", false, true],
    ["#report.txt#", false, true],
    ["a/#report.txt#", false, true],
    ["4913", false, true],
    ["a/b/4913", false, true],
    [".~lock.report.odt#", false, true],
    ["a/.~lock.sheet.xlsx#", false, true],
    ["~$report.docx", false, true],
    ["a/~$book.xlsx", false, true],
    [".DS_Store", false, true],
    ["photos/.DS_Store", false, true],
    ["Thumbs.db", false, true],
    ["photos/Thumbs.db", false, true],
    ["desktop.ini", false, true],
    ["download.bin.filesync-tmp", false, true],
    ["a/b/c.filesync-tmp", false, true],
  ]);
});

Deno.test("createIgnoreMatcher() keeps ordinary files that resemble temporary ones", () => {
  assertMatches(createIgnoreMatcher(null), [
    [IGNORE_FILE, false, false],
    ["a/.filesyncignore", false, false],
    ["notes.txt", false, false],
    ["swp", false, false],
    ["a.swp.txt", false, false],
    ["~home", false, false],
    ["#channel", false, false],
    ["issue #4", false, false],
    ["49130", false, false],
    ["report 4913.txt", false, false],
    ["~report.docx", false, false],
    [".gitignore", false, false],
    ["thumbs.db", false, false], // matching is case-sensitive
    ["file.filesync-tmp.txt", false, false],
  ]);
});

Deno.test("createIgnoreMatcher() ignores everything inside an ignored folder", () => {
  assertMatches(createIgnoreMatcher("node_modules/\ncache\n"), [
    ["node_modules", true, true],
    ["node_modules/a/index.js", false, true],
    ["web/node_modules/a/b/c.js", false, true],
    ["cache", true, true],
    ["cache/x", false, true],
    ["a/cache/x/y", false, true],
  ]);
});

Deno.test("createIgnoreMatcher() applies user rules with negation in order", () => {
  const matcher = createIgnoreMatcher("*.log\n!keep.log\n");
  assertMatches(matcher, [
    ["debug.log", false, true],
    ["logs/debug.log", false, true],
    ["keep.log", false, false],
    ["logs/keep.log", false, false],
    ["debug.txt", false, false],
  ]);
  // A later rule wins over an earlier negation, as in gitignore.
  assert.equal(createIgnoreMatcher("!keep.log\n*.log\n").ignores("keep.log", false), true);
});

Deno.test("createIgnoreMatcher() lets user rules re-include editor files but never client state", () => {
  const matcher = createIgnoreMatcher("!4913\n!*~\n!/.filesync/\n!*.filesync-tmp\n!.filesync/**\n");
  assertMatches(matcher, [
    ["4913", false, false],
    ["backup~", false, false],
    [".DS_Store", false, true],
    [".filesync", true, true],
    [".filesync/token", false, true],
    ["x.filesync-tmp", false, true],
  ]);
});

Deno.test("createIgnoreMatcher() applies folder-only rules to folders only", () => {
  const matcher = createIgnoreMatcher("build/\n");
  assertMatches(matcher, [
    ["build", true, true],
    ["build", false, false],
    ["src/build", true, true],
    ["src/build", false, false],
    ["build/app.js", false, true],
    ["builder", true, false],
  ]);
});

Deno.test("createIgnoreMatcher() anchors rules that start with a slash or contain one", () => {
  const matcher = createIgnoreMatcher("/top.txt\nanywhere.txt\ndocs/drafts\n");
  assertMatches(matcher, [
    ["top.txt", false, true],
    ["a/top.txt", false, false],
    ["anywhere.txt", false, true],
    ["a/b/anywhere.txt", false, true],
    ["docs/drafts", true, true],
    ["docs/drafts/x.md", false, true],
    ["old/docs/drafts", true, false],
  ]);
});

Deno.test("createIgnoreMatcher() skips comments and blank lines and accepts CRLF and a BOM", () => {
  const matcher = createIgnoreMatcher("\uFEFF# a comment\r\n\r\n   \r\n*.tmp\r\n\\#literal\r\n");
  assertMatches(matcher, [
    ["# a comment", false, false],
    ["a.tmp", false, true],
    ["#literal", false, true],
    ["notes.txt", false, false],
  ]);
  // The BOM must not glue itself to the first rule.
  assert.equal(createIgnoreMatcher("\uFEFF*.tmp").ignores("a.tmp", false), true);
});

Deno.test("createIgnoreMatcher() with null or empty rules applies only the built-ins", () => {
  for (const rules of [null, "", "\n\n", "# only a comment\n"]) {
    assertMatches(createIgnoreMatcher(rules), [
      ["notes.txt", false, false],
      ["a/b", true, false],
      [".DS_Store", false, true],
      [".filesync", true, true],
    ]);
  }
});

Deno.test("createIgnoreMatcher() never ignores the root .filesyncignore itself", () => {
  const matcher = createIgnoreMatcher(".*\n*ignore\n.filesyncignore\n");
  assertMatches(matcher, [
    [IGNORE_FILE, false, false],
    ["a/.filesyncignore", false, true],
    [".hidden", false, true],
  ]);
});

Deno.test("createIgnoreMatcher() rejects paths that are not relative", () => {
  const matcher = createIgnoreMatcher(null);
  assert.throws(() => matcher.ignores("", false), RangeError);
  assert.throws(
    () => matcher.ignores("/a", false),
    /Cannot match ignore rules for "\/a": not a relative path/,
  );
});

Deno.test("BUILTIN_IGNORES lists the client state folder first, in gitignore syntax", () => {
  assert.equal(BUILTIN_IGNORES[0], "/.filesync/");
  for (const line of ["*.swp", "*.swo", "*.swx", "*~", ".#*", "4913", ".~lock.*#", "~$*", ".DS_Store"]) {
    assert.ok(BUILTIN_IGNORES.includes(line), line);
  }
  for (const line of ["Thumbs.db", "desktop.ini", "*.filesync-tmp", "\\#*#"]) {
    assert.ok(BUILTIN_IGNORES.includes(line), line);
  }
});

Deno.test("loadIgnoreRules() reads .filesyncignore from the folder root", async () => {
  const root = await Deno.makeTempDir({ prefix: "filesync_ignore_test_" });
  try {
    await Deno.writeTextFile(join(root, IGNORE_FILE), "*.log\n!keep.log\nbuild/\n");
    const matcher = await loadIgnoreRules(root);
    assertMatches(matcher, [
      ["debug.log", false, true],
      ["keep.log", false, false],
      ["build", true, true],
      [".DS_Store", false, true],
      [IGNORE_FILE, false, false],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadIgnoreRules() without a .filesyncignore applies only the built-ins", async () => {
  const root = await Deno.makeTempDir({ prefix: "filesync_ignore_test_" });
  try {
    const matcher = await loadIgnoreRules(root);
    assertMatches(matcher, [
      ["debug.log", false, false],
      [".filesync", true, true],
      ["a~", false, true],
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("loadIgnoreRules() reports read errors other than a missing file", async () => {
  const root = await Deno.makeTempDir({ prefix: "filesync_ignore_test_" });
  try {
    await Deno.mkdir(join(root, IGNORE_FILE));
    await assert.rejects(loadIgnoreRules(root), Error);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("ignoresEntry() answers as ignores() for entries of folders that are not ignored", () => {
  const ruleSets = [
    null,
    "",
    "*.log\n!keep.log\nbuild/\n/top.txt\n",
    "docs/*.md\n!docs/keep.md\n", // rules with a slash: no memory by name
    "# comment\n  \n*.tmp  \nnode_modules/\n!.DS_Store\n/4913\n",
  ];
  const names = [
    "a.txt",
    "debug.log",
    "keep.log",
    "build",
    "top.txt",
    "x.md",
    "keep.md",
    "notes.swp",
    "4913",
    ".DS_Store",
    ".filesync",
    ".filesyncignore",
    "b.filesync-tmp",
    "c.tmp",
    "node_modules",
    "#auto#",
    "~$doc",
  ];
  for (const rules of ruleSets) {
    const matcher = createIgnoreMatcher(rules);
    const fresh = createIgnoreMatcher(rules);
    // Twice each, so the second answer may come from memory.
    for (let round = 0; round < 2; round++) {
      for (const folder of [null, "docs", "src/docs", "top.txt"]) {
        if (folder !== null && fresh.ignores(folder, true)) continue;
        for (const name of names) {
          for (const isDir of [false, true]) {
            const path = folder === null ? name : `${folder}/${name}`;
            assert.strictEqual(
              matcher.ignoresEntry(path, name, isDir),
              fresh.ignores(path, isDir),
              `${JSON.stringify(rules)}: ${path} (${isDir ? "folder" : "file"})`,
            );
          }
        }
      }
    }
  }
});

Deno.test("ignoresEntry() keeps answering right after its memory starts again", () => {
  const matcher = createIgnoreMatcher("*.log\n");
  for (let i = 0; i < 50_000; i++) {
    const name = i % 2 === 0 ? `f${i}.log` : `f${i}.txt`;
    assert.strictEqual(matcher.ignoresEntry(`d/${name}`, name, false), i % 2 === 0);
  }
  assert.strictEqual(matcher.ignoresEntry("d/x.log", "x.log", false), true);
  assert.strictEqual(matcher.ignoresEntry(".filesyncignore", ".filesyncignore", false), false);
});
