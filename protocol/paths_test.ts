// Tests for the shared path rules.

import assert from "node:assert/strict";
import {
  ancestorsOf,
  baseName,
  comparePaths,
  depth,
  foldName,
  isDescendant,
  isPlainChild,
  isValidPath,
  joinPath,
  MAX_NAME_BYTES,
  MAX_PATH_BYTES,
  parentPath,
  PathError,
  unportableNameReason,
  unportablePathReason,
  validatePath,
} from "./paths.ts";

/** Asserts that validatePath rejects `path` with a PathError whose message matches `reason`. */
function assertRejected(path: string, reason: RegExp): void {
  assert.throws(
    () => validatePath(path),
    (err: unknown) => {
      assert.ok(err instanceof PathError, `expected PathError for ${JSON.stringify(path)}, got ${err}`);
      assert.match(err.message, reason, `for ${JSON.stringify(path)}`);
      assert.equal(err.path, path);
      return true;
    },
  );
  assert.equal(isValidPath(path), false);
}

/** A small seeded generator (mulberry32), so property tests are repeatable. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

Deno.test("validatePath() returns valid paths unchanged", () => {
  const valid = [
    "a",
    "a/b/c",
    "file.txt",
    "my documents/report final.docx",
    " leading and trailing space ",
    "naïve/日本語/emoji 🎉.txt",
    "a.b",
    "...",
    "....",
    ".hidden",
    "a/.hidden/b",
    "a..b",
    "a/..b/c..",
    "a/.filesync",
    ".filesyncignore",
    ".filesync2/x",
    "ab:c",
    "a/C:",
    "a\u00a0b",
    "한국어",
    "Ω/ß/ﬁ",
    "x".repeat(MAX_NAME_BYTES),
    "é".repeat(127),
    "日".repeat(85),
    "🎉".repeat(63) + "abc",
  ];
  for (const path of valid) {
    assert.equal(validatePath(path), path);
    assert.equal(isValidPath(path), true, JSON.stringify(path));
  }
});

Deno.test("validatePath() rejects non-strings and empty paths", () => {
  for (const value of [undefined, null, 42, {}, ["a"]]) {
    assert.throws(() => validatePath(value as unknown as string), (err: unknown) => {
      assert.ok(err instanceof PathError);
      assert.match(err.message, /expected a string, got /);
      return true;
    });
    assert.equal(isValidPath(value as unknown as string), false);
  }
  assertRejected("", /the path is empty/);
});

Deno.test("validatePath() limits the whole path to MAX_PATH_BYTES UTF-8 bytes", () => {
  const exact = Array(17).fill("a".repeat(240)).join("/");
  assert.equal(exact.length, MAX_PATH_BYTES);
  assert.equal(validatePath(exact), exact);
  assertRejected(exact + "a", /4097 UTF-8 bytes is longer than the limit of 4096/);
  // Counted in UTF-8 bytes, not UTF-16 units: 2,100 "é" are 4,200 bytes in 2,100 units.
  const wide = Array(21).fill("é".repeat(100)).join("/");
  assert.ok(wide.length < MAX_PATH_BYTES);
  assertRejected(wide, /4220 UTF-8 bytes is longer/);
});

Deno.test("validatePath() limits each name to MAX_NAME_BYTES UTF-8 bytes", () => {
  assertRejected("x".repeat(MAX_NAME_BYTES + 1), /name of 256 UTF-8 bytes is longer than the limit of 255/);
  assertRejected("a/" + "日".repeat(86) + "/b", /name of 258 UTF-8 bytes/);
  assertRejected("🎉".repeat(64), /name of 256 UTF-8 bytes/);
});

Deno.test("validatePath() rejects absolute, drive and UNC paths", () => {
  assertRejected("/a", /absolute paths are not allowed/);
  assertRejected("/", /absolute paths are not allowed/);
  assertRejected("//server/share", /absolute paths are not allowed/);
  assertRejected("C:", /Windows drive paths are not allowed/);
  assertRejected("c:/Windows", /Windows drive paths are not allowed/);
  assertRejected("C:foo", /Windows drive paths are not allowed/);
  assertRejected("\\\\server\\share", /Windows UNC paths are not allowed/);
});

Deno.test("validatePath() rejects backslashes anywhere", () => {
  assertRejected("a\\b", /backslash is not allowed/);
  assertRejected("a/b\\", /backslash is not allowed/);
  assertRejected("\\a", /backslash is not allowed/);
});

Deno.test("validatePath() rejects empty segments and trailing slashes", () => {
  assertRejected("a//b", /empty segment is not allowed/);
  assertRejected("a/", /trailing slash is not allowed/);
  assertRejected("a/b/", /trailing slash is not allowed/);
});

Deno.test("validatePath() rejects . and .. segments", () => {
  assertRejected("a/../b", /^Invalid path "a\/..\/b": ".." is not allowed$/);
  assertRejected("..", /".." is not allowed/);
  assertRejected("a/..", /".." is not allowed/);
  assertRejected(".", /"." is not allowed/);
  assertRejected("./a", /"." is not allowed/);
  assertRejected("a/./b", /"." is not allowed/);
});

Deno.test("validatePath() rejects NUL and other control characters", () => {
  const cases: [string, string][] = [
    ["a\0b", "U+0000"],
    ["a\nb", "U+000A"],
    ["a\rb", "U+000D"],
    ["tab\there", "U+0009"],
    ["\u001f", "U+001F"],
    ["del\u007f", "U+007F"],
    ["next\u0085line", "U+0085"],
    ["a/\u009f", "U+009F"],
  ];
  for (const [path, code] of cases) {
    assertRejected(path, new RegExp(`control character ${code.replace("+", "\\+")} is not allowed`));
  }
});

Deno.test("validatePath() rejects paths that are not NFC-normalized", () => {
  assertRejected("cafe\u0301", /not NFC-normalized/);
  assertRejected("a/\u1100\u1161", /not NFC-normalized/); // decomposed Hangul "가"
  assertRejected("\u212b", /not NFC-normalized/); // ANGSTROM SIGN normalizes to Å
  assert.equal(validatePath("caf\u00e9"), "café");
});

Deno.test("validatePath() reserves .filesync as the first segment", () => {
  assertRejected(".filesync", /".filesync" is reserved for client state/);
  assertRejected(".filesync/base.kv", /reserved for client state/);
  // Names that a case-insensitive or Windows file system would resolve to the same folder.
  assertRejected(".FileSync/token", /reserved for client state/);
  assertRejected(".filesync./token", /reserved for client state/);
  assertRejected(".filesync /token", /reserved for client state/);
  assertRejected(".file\u017fync/token", /reserved for client state/); // LATIN SMALL LETTER LONG S
  assert.equal(validatePath("docs/.filesync/x"), "docs/.filesync/x");
});

Deno.test("validatePath() rejects lone surrogates", () => {
  assertRejected("\ud800", /lone surrogate/);
  assertRejected("a/\udc00b", /lone surrogate/);
  assertRejected("emoji \ud83c", /lone surrogate/);
});

Deno.test("PathError is an Error with name, path and a short readable message", () => {
  const err = new PathError("a\nb", "test");
  assert.ok(err instanceof Error);
  assert.equal(err.name, "PathError");
  assert.equal(err.path, "a\nb");
  assert.equal(err.message, 'Invalid path "a\\nb": test');
  const long = "x".repeat(5000);
  assert.throws(() => validatePath(long), (thrown: unknown) => {
    assert.ok(thrown instanceof PathError);
    assert.equal(thrown.path, long);
    assert.ok(thrown.message.length < 200, thrown.message);
    return true;
  });
});

Deno.test("validatePath() accepts hostile strings only when they are safe (property)", () => {
  const alphabet = ["/", ".", "\\", "\0", "\n", "a", "é", "e\u0301", ":", "\u0301"];
  const next = random(20261124);
  let accepted = 0;
  for (let run = 0; run < 20_000; run++) {
    let path = "";
    const length = Math.floor(next() * 8);
    for (let i = 0; i < length; i++) path += alphabet[Math.floor(next() * alphabet.length)];
    const segments = path.split("/");
    const expected = path !== "" && !path.startsWith("/") && !/^[A-Za-z]:/.test(path) &&
      !/[\\\0\n]/.test(path) && path.normalize("NFC") === path &&
      segments.every((segment) => segment !== "" && segment !== "." && segment !== "..");
    assert.equal(isValidPath(path), expected, JSON.stringify(path));
    if (isValidPath(path)) {
      accepted++;
      assert.ok(!path.startsWith("/"));
      assert.ok(segments.every((segment) => segment !== "" && segment !== "." && segment !== ".."));
    }
  }
  assert.ok(accepted > 1000, `only ${accepted} accepted: the generator is too hostile to test acceptance`);
});

Deno.test("parentPath() and baseName() split off the last segment", () => {
  assert.equal(parentPath("a/b/c"), "a/b");
  assert.equal(parentPath("a/b"), "a");
  assert.equal(parentPath("a"), null);
  assert.equal(baseName("a/b/c.txt"), "c.txt");
  assert.equal(baseName("a"), "a");
  assert.equal(baseName("日本/語"), "語");
});

Deno.test("joinPath() joins a folder and a name, treating null and empty as the root", () => {
  assert.equal(joinPath("a/b", "c"), "a/b/c");
  assert.equal(joinPath(null, "c"), "c");
  assert.equal(joinPath("", "c"), "c");
  for (const path of ["a", "a/b/c"]) assert.equal(joinPath(parentPath(path), baseName(path)), path);
  assert.throws(() => joinPath("a", ""), RangeError);
  assert.throws(() => joinPath("a", "b/c"), /Cannot join path "b\/c": expected a single non-empty name/);
});

Deno.test("isDescendant() is true only strictly inside the folder", () => {
  assert.equal(isDescendant("a/b/c", "a"), true);
  assert.equal(isDescendant("a/b/c", "a/b"), true);
  assert.equal(isDescendant("a/b", "a"), true);
  assert.equal(isDescendant("ab", "a"), false);
  assert.equal(isDescendant("ab/c", "a"), false);
  assert.equal(isDescendant("a", "a"), false);
  assert.equal(isDescendant("a", "a/b"), false);
  assert.equal(isDescendant("b/a/c", "a"), false);
});

Deno.test("ancestorsOf() lists the containing folders outermost first", () => {
  assert.deepEqual(ancestorsOf("a/b/c"), ["a", "a/b"]);
  assert.deepEqual(ancestorsOf("a/b"), ["a"]);
  assert.deepEqual(ancestorsOf("a"), []);
});

Deno.test("depth() counts segments", () => {
  assert.equal(depth("a"), 1);
  assert.equal(depth("a/b"), 2);
  assert.equal(depth("a/b/c d/e"), 4);
});

Deno.test("comparePaths() sorts a folder directly before its contents", () => {
  const sorted = ["a", "a/b", "a/b/c", "a/c", "a b", "a-b", "a.txt", "a0", "aa", "b", "b/a"];
  const shuffled = [...sorted].reverse();
  assert.deepEqual(shuffled.sort(comparePaths), sorted);
  assert.equal(comparePaths("a/b", "a/b"), 0);
  assert.ok(comparePaths("a", "a/b") < 0);
  assert.ok(comparePaths("a/b", "a b") < 0);
  assert.ok(comparePaths("a b", "a/b") > 0);
});

Deno.test("comparePaths() orders names by code point, like their UTF-8 bytes", () => {
  // U+FFFD sorts before U+1F389 by code point, though its UTF-16 unit 0xFFFD is above the surrogate 0xD83C.
  assert.ok(comparePaths("\ufffd", "🎉") < 0);
  assert.ok(comparePaths("🎉", "\ufffd") > 0);
  assert.ok(comparePaths("Z", "a") < 0);
  assert.ok(comparePaths("z", "é") < 0);
  const bytes = (text: string) => new TextEncoder().encode(text.replaceAll("/", "\0"));
  const names = ["🎉", "\ufffd", "\ue000", "é", "a", "a/🎉", "a/\ufffd", "日本", "a b"];
  const compareBytes = (x: Uint8Array, y: Uint8Array) => {
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  };
  const byBytes = [...names].sort((x, y) => compareBytes(bytes(x), bytes(y)));
  assert.deepEqual([...names].sort(comparePaths), byBytes);
});

Deno.test("comparePaths() agrees with a segment-by-segment comparison (property)", () => {
  const alphabet = ["a", "b", " ", "/", "-", "é", "🎉", "\ufffd"];
  const next = random(42);
  const make = () => {
    const segments = Array.from({ length: 1 + Math.floor(next() * 3) }, () => {
      let segment = "";
      const length = 1 + Math.floor(next() * 3);
      while ([...segment].length < length) {
        const char = alphabet[Math.floor(next() * alphabet.length)];
        if (char !== "/") segment += char;
      }
      return segment;
    });
    return segments.join("/");
  };
  const compareCodePoints = (x: string, y: string) => {
    const xs = [...x].map((c) => c.codePointAt(0)!);
    const ys = [...y].map((c) => c.codePointAt(0)!);
    for (let i = 0; i < Math.min(xs.length, ys.length); i++) if (xs[i] !== ys[i]) return xs[i] - ys[i];
    return xs.length - ys.length;
  };
  const reference = (x: string, y: string) => {
    const xs = x.split("/");
    const ys = y.split("/");
    for (let i = 0; i < Math.min(xs.length, ys.length); i++) {
      const order = compareCodePoints(xs[i], ys[i]);
      if (order !== 0) return order;
    }
    return xs.length - ys.length;
  };
  for (let run = 0; run < 5000; run++) {
    const x = make();
    const y = next() < 0.2 ? x : make();
    assert.equal(Math.sign(comparePaths(x, y)), Math.sign(reference(x, y)), `${x} vs ${y}`);
  }
});

Deno.test("unportableNameReason() refuses names some platform cannot hold and accepts the rest", () => {
  const refused: [string, RegExp][] = [
    ["CON", /"CON" is a reserved device name/],
    ["con", /reserved device name/],
    ["aux.txt", /"aux" is a reserved device name/],
    ["Com1.tar.gz", /reserved device name/],
    ["LPT9", /reserved device name/],
    ["nul .txt", /reserved device name/],
    ["COM\u00b9", /reserved device name/],
    ["a*?<>|b", /"\*" is not allowed on Windows/],
    ["a:b", /":" is not allowed/],
    ['say "hi"', /"\\"" is not allowed/],
    ["trailing.", /ending in a dot/],
    ["trailing ", /ending in a space/],
    ["evil\u202etxt.exe", /U\+202E/],
    ["line\u2028break", /U\+2028/],
    ["\ufeffbom", /U\+FEFF/],
    ["zero\u200bwidth", /U\+200B/],
    ["ltr\u200emark", /U\+200E/],
    ["isolate\u2066x", /U\+2066/],
  ];
  for (const [name, reason] of refused) {
    const got = unportableNameReason(name);
    assert.ok(got !== null && reason.test(got), `${JSON.stringify(name)}: ${got}`);
  }
  const accepted = [
    "notes.txt",
    "console.log",
    "auxiliary.txt",
    "COM10",
    "lpt",
    "CONFIG",
    ".hidden",
    " leading space",
    "naïve.txt",
    "👨\u200d👩\u200d👧.png",
    "می\u200cخواهم",
    "a.b.c",
  ];
  for (const name of accepted) assert.equal(unportableNameReason(name), null, name);
});

Deno.test("unportablePathReason() names the segment that cannot be held", () => {
  assert.equal(unportablePathReason("docs/a.txt"), null);
  assert.equal(unportablePathReason("CON/a.txt"), 'name "CON": "CON" is a reserved device name on Windows');
  assert.match(unportablePathReason("a/b./c")!, /^name "b\.": /);
});

Deno.test("foldName() maps names that differ only in case to one form", () => {
  const same: [string, string][] = [
    ["Readme.txt", "README.TXT"],
    ["straße", "STRASSE"],
    ["ÉTÉ", "été"],
    ["ſ", "s"],
  ];
  for (const [a, b] of same) assert.equal(foldName(a), foldName(b), `${a} / ${b}`);
  assert.notEqual(foldName("a.txt"), foldName("b.txt"));
});

Deno.test("isPlainChild() says yes only where validatePath() accepts the path", () => {
  const names = [
    "a.txt",
    "naïve.txt",
    ".",
    "..",
    "...",
    "a\\b",
    "C:x",
    "c:",
    ".filesync",
    ".FILESYNC. ",
    ".filesync2",
    "tab\there",
    "\u007f",
    "x".repeat(255),
    "x".repeat(256),
    " ",
    "#x#",
    "~$a",
    "a".repeat(1),
  ];
  const deep = Array(11).fill("é".repeat(120)).join("/");
  const deeper = Array(16).fill("ü".repeat(120)).join("/");
  for (const parent of [null, "docs", "d/e", deep, deeper]) {
    if (parent !== null) assert.strictEqual(isValidPath(parent), true);
    for (const name of names) {
      const path = parent === null ? name : `${parent}/${name}`;
      if (isPlainChild(path, name, parent === null)) {
        assert.strictEqual(isValidPath(path), true, `${JSON.stringify(path)} said plain but is invalid`);
      }
    }
  }
  assert.strictEqual(isPlainChild("docs/a.txt", "a.txt", false), true);
  assert.strictEqual(isPlainChild(".filesync", ".filesync", true), false);
  assert.strictEqual(isPlainChild("C:x", "C:x", true), false);
});
