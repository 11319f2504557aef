// Tests for bench/dataset.ts's size generator (pure) and its files (temp folder).
import assert from "node:assert/strict";
import { join } from "node:path";
import { Arrivals, Dataset, logUniformSizes } from "./dataset.ts";

Deno.test("logUniformSizes() is seeded, bounded, and gives the mixed workload about 1.8 GiB", () => {
  const options = { min: 1024, max: 8 * 1024 * 1024, seed: 2 };
  const sizes = logUniformSizes(2000, options);
  assert.deepEqual(logUniformSizes(2000, options), sizes, "same seed, same sizes");
  assert.notDeepEqual(logUniformSizes(2000, { ...options, seed: 3 }), sizes);
  assert.ok(sizes.every((s) => Number.isInteger(s) && s >= options.min && s <= options.max));
  const gib = sizes.reduce((a, b) => a + b, 0) / 1024 ** 3;
  assert.ok(gib > 1.7 && gib < 1.9, `${gib} GiB`);
  const small = sizes.filter((s) => s < 64 * 1024).length;
  assert.ok(small > 800 && small < 1100, `${small} files under 64 KiB (log-uniform: about 47%)`);
});

Deno.test("Dataset places the same bytes elsewhere, Arrivals sees them, verify() catches a change", async () => {
  const base = await Deno.makeTempDir({ prefix: "filesync-dataset-test-" });
  try {
    await using data = await Dataset.create(base, "t", [{ path: "a/x.bin", size: 3000 }, {
      path: "y.bin",
      size: 0,
    }]);
    assert.deepEqual(data.topLevel(), ["a", "y.bin"]);
    assert.equal(data.bytes, 3000);
    const dest = join(base, "dest");
    const arrivals = new Arrivals(dest, data.files);
    assert.equal(arrivals.check(), false);
    assert.equal(arrivals.missing, 2);
    await data.placeInto(dest, { copy: true });
    assert.equal(arrivals.check(), true);
    await data.verify(dest, "dest");
    await Deno.writeFile(join(dest, "a/x.bin"), new Uint8Array(3000));
    await assert.rejects(() => data.verify(dest, "dest"), /WRONG CONTENT: dest's a\/x\.bin/);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
