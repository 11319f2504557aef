// Tests for size parsing and formatting.
import assert from "node:assert/strict";
import { formatSize, parseSize } from "./sizes.ts";

Deno.test("parseSize() reads plain numbers and binary units in any case", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["1000", 1000],
    ["64K", 64 * 1024],
    ["500MiB", 500 * 1024 ** 2],
    ["1.5g", 1.5 * 1024 ** 3],
    ["2 TB", 2 * 1024 ** 4],
    ["7b", 7],
  ];
  for (const [text, bytes] of cases) assert.equal(parseSize(text), bytes, text);
});

Deno.test("parseSize() refuses what is not a size with a SyntaxError naming it", () => {
  for (const text of ["", "-1", "ten", "5X", "1e3", "1.2.3", "99999999999T"]) {
    assert.throws(
      () => parseSize(text),
      (e: Error) => e instanceof SyntaxError && e.message.includes(`"${text}"`),
    );
  }
});

Deno.test("formatSize() picks the largest unit below the size", () => {
  assert.equal(formatSize(0), "0 B");
  assert.equal(formatSize(1536), "1.5 KiB");
  assert.equal(formatSize(3 * 1024 ** 2), "3.0 MiB");
  assert.equal(formatSize(1024 ** 3), "1.00 GiB");
  assert.equal(formatSize(10 * 1024 ** 4), "10.00 TiB");
});
