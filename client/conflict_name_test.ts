// Tests for conflict-copy names.

import assert from "node:assert/strict";
import { baseName, isValidPath, MAX_NAME_BYTES, PathError } from "../protocol/paths.ts";
import { conflictCopyPath, isConflictCopy, splitExtension } from "./conflict_name.ts";

const WHEN = new Date(Date.UTC(2026, 10, 24, 4, 15, 0));
const STAMP = "2026-11-24 041500";
const free = () => false;
const bytes = (text: string) => new TextEncoder().encode(text).length;

/** conflictCopyPath() with the fixed date and no collisions, checked for validity and shape. */
function copyOf(path: string, device = "laptop", taken: (path: string) => boolean = free): string {
  const result = conflictCopyPath(path, device, WHEN, taken);
  assert.ok(isValidPath(result), `invalid result ${JSON.stringify(result)}`);
  assert.ok(bytes(baseName(result)) <= MAX_NAME_BYTES, `name too long: ${result}`);
  assert.ok(isConflictCopy(result), `not recognised as a conflict copy: ${result}`);
  return result;
}

Deno.test("conflictCopyPath() puts device and UTC time before the extension", () => {
  assert.equal(copyOf("dir/report.txt"), `dir/report (conflicted copy from laptop ${STAMP}).txt`);
  assert.equal(copyOf("report.txt"), `report (conflicted copy from laptop ${STAMP}).txt`);
  assert.equal(copyOf("a/b/c/日本語.md"), `a/b/c/日本語 (conflicted copy from laptop ${STAMP}).md`);
});

Deno.test("conflictCopyPath() formats the date as YYYY-MM-DD HHMMSS with zero padding", () => {
  const when = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
  assert.equal(
    conflictCopyPath("a.txt", "pc", when, free),
    "a (conflicted copy from pc 2026-01-02 030405).txt",
  );
  const lastSecond = new Date(Date.UTC(2026, 11, 31, 23, 59, 59, 999));
  assert.equal(
    conflictCopyPath("a.txt", "pc", lastSecond, free),
    "a (conflicted copy from pc 2026-12-31 235959).txt",
  );
});

Deno.test("conflictCopyPath() shows the time in UTC, as given by the losing version's mtime", () => {
  // 20:15:30 UTC is another hour (or day) in most time zones: the name must not depend on the local one.
  const mtime = new Date("2026-12-01T20:15:30.750Z");
  assert.equal(
    conflictCopyPath("report.txt", "laptop", mtime, free),
    "report (conflicted copy from laptop 2026-12-01 201530).txt",
  );
  assert.equal(
    conflictCopyPath("a", "pc", new Date("2026-12-31T23:59:59.999Z"), free),
    "a (conflicted copy from pc 2026-12-31 235959)",
  );
  assert.equal(
    conflictCopyPath("a", "pc", new Date(0), free),
    "a (conflicted copy from pc 1970-01-01 000000)",
  );
});

Deno.test("conflictCopyPath() keeps the extension, with a wrapped one before it, after the stem", () => {
  const cases: [string, string][] = [
    ["a.tar.gz", `a (conflicted copy from laptop ${STAMP}).tar.gz`],
    ["backup.TAR.BZ2", `backup (conflicted copy from laptop ${STAMP}).TAR.BZ2`],
    ["dump.sql.zst", `dump (conflicted copy from laptop ${STAMP}).sql.zst`],
    ["notes.txt.gpg", `notes (conflicted copy from laptop ${STAMP}).txt.gpg`],
    ["logs.2024.gz", `logs.2024 (conflicted copy from laptop ${STAMP}).gz`],
    ["a.verylong.gz", `a.verylong (conflicted copy from laptop ${STAMP}).gz`],
    [".tar.gz", `.tar (conflicted copy from laptop ${STAMP}).gz`],
    ["v1.2.txt", `v1.2 (conflicted copy from laptop ${STAMP}).txt`],
    ["a.b.c.d", `a.b.c (conflicted copy from laptop ${STAMP}).d`],
    [".bashrc", `.bashrc (conflicted copy from laptop ${STAMP})`],
    ["..hidden.txt", `..hidden (conflicted copy from laptop ${STAMP}).txt`],
    [".config.json", `.config (conflicted copy from laptop ${STAMP}).json`],
    ["Makefile", `Makefile (conflicted copy from laptop ${STAMP})`],
    ["README", `README (conflicted copy from laptop ${STAMP})`],
    ["report.", `report. (conflicted copy from laptop ${STAMP})`],
    ["...", `... (conflicted copy from laptop ${STAMP})`],
    ["a..b", `a. (conflicted copy from laptop ${STAMP}).b`],
    ["a..gz", `a. (conflicted copy from laptop ${STAMP}).gz`],
    ["v1.2/notes", `v1.2/notes (conflicted copy from laptop ${STAMP})`],
    ["emoji 🎉.tar", `emoji 🎉 (conflicted copy from laptop ${STAMP}).tar`],
  ];
  for (const [path, expected] of cases) assert.equal(copyOf(path), expected, path);
});

Deno.test("splitExtension() splits off the extension as conflict copies keep it", () => {
  const cases: [string, [string, string]][] = [
    ["report.txt", ["report", ".txt"]],
    ["a.tar.gz", ["a", ".tar.gz"]],
    ["a.tar.xz", ["a", ".tar.xz"]],
    ["movie.mp4.age", ["movie", ".mp4.age"]],
    ["x.gz", ["x", ".gz"]],
    ["archive.tgz", ["archive", ".tgz"]],
    ["v1.2.gz", ["v1.2", ".gz"]],
    ["a.b.gz.gz", ["a.b", ".gz.gz"]],
    [".gz", [".gz", ""]],
    [".bashrc", [".bashrc", ""]],
    [".a.tar.gz", [".a", ".tar.gz"]],
    ["Makefile", ["Makefile", ""]],
    ["trailing.", ["trailing.", ""]],
    ["", ["", ""]],
  ];
  for (const [name, expected] of cases) assert.deepEqual(splitExtension(name), expected, name);
});

Deno.test("conflictCopyPath() numbers the copy inside the parentheses while names are taken", () => {
  const existing = new Set([
    `dir/report (conflicted copy from laptop ${STAMP}).txt`,
    `dir/report (conflicted copy from laptop ${STAMP} 2).txt`,
  ]);
  const asked: string[] = [];
  const taken = (path: string) => {
    asked.push(path);
    return existing.has(path);
  };
  const expected = `dir/report (conflicted copy from laptop ${STAMP} 3).txt`;
  assert.equal(copyOf("dir/report.txt", "laptop", taken), expected);
  assert.deepEqual(asked, [...existing, expected]);
  assert.equal(
    copyOf("report.txt", "laptop", (path) => path === `report (conflicted copy from laptop ${STAMP}).txt`),
    `report (conflicted copy from laptop ${STAMP} 2).txt`,
  );
});

Deno.test("conflictCopyPath() gives up with a RangeError when every name is taken", () => {
  assert.throws(() => conflictCopyPath("a.txt", "pc", WHEN, () => true), RangeError);
});

Deno.test("conflictCopyPath() sanitizes hostile device names", () => {
  const cases: [string, string][] = [
    ["my/lap\\top", "my_lap_top"],
    ["evil) (x", "evil_ (x"],
    ["tab\there\nnul\0", "tab_here_nul_"],
    ["c1\u0085\u009f", "c1__"],
    ["  padded  ", "padded"],
    ["", "unknown device"],
    ["   ", "unknown device"],
    ["../..", ".._.."],
    ["cafe\u0301", "café"],
    ["lone \ud800 surrogate", "lone \ufffd surrogate"],
    ["Ⅻ’s Mac 🍎", "Ⅻ’s Mac 🍎"],
  ];
  for (const [device, shown] of cases) {
    assert.equal(copyOf("a.txt", device), `a (conflicted copy from ${shown} ${STAMP}).txt`, device);
  }
});

Deno.test("conflictCopyPath() keeps at most 64 characters of the device name", () => {
  assert.equal(copyOf("a.txt", "d".repeat(100)), `a (conflicted copy from ${"d".repeat(64)} ${STAMP}).txt`);
  assert.equal(copyOf("a.txt", "日".repeat(64)), `a (conflicted copy from ${"日".repeat(42)} ${STAMP}).txt`);
  // Characters outside the BMP are never split into surrogate halves.
  assert.equal(copyOf("a.txt", "🎉".repeat(70)), `a (conflicted copy from ${"🎉".repeat(32)} ${STAMP}).txt`);
  // Spaces exposed by the cut are trimmed.
  assert.equal(
    copyOf("a.txt", "d".repeat(63) + " x"),
    `a (conflicted copy from ${"d".repeat(63)} ${STAMP}).txt`,
  );
});

Deno.test("conflictCopyPath() shortens a long stem to fit MAX_NAME_BYTES, keeping the extension", () => {
  const suffix = ` (conflicted copy from laptop ${STAMP})`;
  const result = copyOf("dir/" + "x".repeat(250) + ".txt");
  assert.equal(result, "dir/" + "x".repeat(MAX_NAME_BYTES - suffix.length - 4) + suffix + ".txt");
  assert.equal(bytes(baseName(result)), MAX_NAME_BYTES);
  // With a collision number the stem gives up two more bytes.
  const numbered = copyOf("x".repeat(250) + ".txt", "laptop", (path) => !path.includes(" 2)"));
  assert.ok(numbered.endsWith(` (conflicted copy from laptop ${STAMP} 2).txt`));
  assert.equal(bytes(numbered), MAX_NAME_BYTES);
});

Deno.test("conflictCopyPath() cuts a long multi-byte stem at a code point boundary", () => {
  for (const char of ["é", "日", "🎉"]) {
    const stem = char.repeat(Math.floor(250 / bytes(char)));
    const result = copyOf(`dir/${stem}.txt`);
    const kept = baseName(result).split(" (conflicted copy")[0];
    assert.ok(stem.startsWith(kept), char);
    assert.ok(kept.length > 0 && kept.length % char.length === 0, char);
    assert.ok(bytes(baseName(result)) > MAX_NAME_BYTES - bytes(char), char);
  }
  // A cut must not leave a base character without the accent it was composed with.
  const result = copyOf("é".repeat(125) + ".txt");
  assert.equal(result, result.normalize("NFC"));
});

Deno.test("conflictCopyPath() keeps a two-part extension whole when it shortens a long stem", () => {
  const suffix = ` (conflicted copy from laptop ${STAMP})`;
  const result = copyOf("dir/" + "x".repeat(248) + ".tar.gz");
  assert.equal(result, "dir/" + "x".repeat(MAX_NAME_BYTES - suffix.length - 7) + suffix + ".tar.gz");
  assert.equal(bytes(baseName(result)), MAX_NAME_BYTES);
  const dotfile = copyOf("." + "b".repeat(254));
  assert.ok(dotfile.startsWith(".bbb") && dotfile.endsWith(suffix));
  assert.equal(bytes(dotfile), MAX_NAME_BYTES);
  const noExtension = copyOf("M".repeat(255));
  assert.equal(noExtension, "M".repeat(MAX_NAME_BYTES - suffix.length) + suffix);
});

Deno.test("conflictCopyPath() gives up the extension only when suffix and extension cannot fit", () => {
  const longExtension = "a." + "e".repeat(240);
  const result = copyOf(longExtension, "d".repeat(64));
  assert.ok(result.startsWith("a.eee"));
  assert.ok(result.endsWith(`d ${STAMP})`));
  assert.equal(bytes(result), MAX_NAME_BYTES);
});

Deno.test("conflictCopyPath() handles the longest device and a long name together", () => {
  const result = copyOf("dir/" + "🎉".repeat(60) + ".🎉🎉🎉", "🎉".repeat(64));
  assert.ok(result.endsWith(`${"🎉".repeat(32)} ${STAMP}).🎉🎉🎉`));
});

Deno.test("conflictCopyPath() rejects invalid paths and dates", () => {
  assert.throws(() => conflictCopyPath("../a.txt", "pc", WHEN, free), PathError);
  assert.throws(() => conflictCopyPath("", "pc", WHEN, free), PathError);
  assert.throws(() => conflictCopyPath("a.txt", "pc", new Date(NaN), free), /invalid date/);
  assert.throws(() => conflictCopyPath("a.txt", "pc", new Date(NaN), free), RangeError);
});

Deno.test("isConflictCopy() recognises conflict-copy names only", () => {
  const copies = [
    `report (conflicted copy from laptop ${STAMP}).txt`,
    `dir/report (conflicted copy from laptop ${STAMP} 12).txt`,
    `.bashrc (conflicted copy from my pc 2026-11-24 ${STAMP})`,
    `a (conflicted copy from x ${STAMP}) (conflicted copy from y ${STAMP}).md`,
    `report (conflicted copy from laptop ${STAMP}).tar.gz`,
  ];
  for (const path of copies) assert.equal(isConflictCopy(path), true, path);
  const others = [
    "report.txt",
    "report (conflicted copy).txt",
    "report (conflicted copy from laptop 2026-11-24).txt",
    `report (conflicted copy from laptop ${STAMP}).a.b.c`,
    `report (conflicted copy from laptop ${STAMP} 0).txt`,
    `report (conflicted copy from  ${STAMP})x.txt`,
    `dir (conflicted copy from laptop ${STAMP})/report.txt`,
  ];
  for (const path of others) assert.equal(isConflictCopy(path), false, path);
});

Deno.test("conflictCopyPath() gives valid, distinct conflict copies for many names and devices", () => {
  const names = [
    "a",
    "a.b",
    ".a",
    "a.",
    "...",
    "x".repeat(255),
    "é".repeat(120) + ".é",
    "a.tar.gz",
    "(1).txt",
  ];
  const devices = ["", "pc", ")))", "/\\", "\u0000".repeat(70), "🎉".repeat(100), "e\u0301".repeat(64)];
  for (const name of names) {
    for (const device of devices) {
      const first = copyOf(`dir/${name}`, device);
      const second = copyOf(`dir/${name}`, device, (path) => path === first);
      assert.notEqual(first, second);
      assert.ok(first.startsWith("dir/") && second.startsWith("dir/"));
      assert.equal(isConflictCopy(`dir/${name}`), false, name);
    }
  }
});

Deno.test("conflictCopyPath() gives the names the README shows", () => {
  const when = new Date("2026-12-01T20:15:30Z");
  const stamp = "conflicted copy from laptop 2026-12-01 201530";
  const cases: [string, string][] = [
    ["report.txt", `report (${stamp}).txt`],
    ["a.tar.gz", `a (${stamp}).tar.gz`],
    ["dump.sql.gz", `dump (${stamp}).sql.gz`],
    ["v1.2.notes.md", `v1.2.notes (${stamp}).md`],
    ["Makefile", `Makefile (${stamp})`],
    [".bashrc", `.bashrc (${stamp})`],
    [".config.json", `.config (${stamp}).json`],
  ];
  for (const [path, expected] of cases) assert.equal(conflictCopyPath(path, "laptop", when, free), expected);
});
