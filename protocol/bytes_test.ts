// Tests for the byte-array helpers.
import assert from "node:assert/strict";
import { concatBytes } from "./bytes.ts";

Deno.test("concatBytes joins parts in order, empty parts and no parts included", () => {
  assert.deepEqual(concatBytes([]), new Uint8Array());
  assert.deepEqual(
    concatBytes([new Uint8Array([1]), new Uint8Array(), new Uint8Array([2, 3]).subarray(1)]),
    new Uint8Array([1, 3]),
  );
});
