// boundedMap: list order, at most `limit` running, failures kept to their own item.
import assert from "node:assert/strict";
import { boundedMap } from "./bounded.ts";

Deno.test("boundedMap runs at most `limit` at once, starts in order and answers in list order", async () => {
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const results = boundedMap([5, 1, 4, 2, 3, 0, 6], 3, async (n) => {
    started.push(n);
    most = Math.max(most, ++running);
    await new Promise((resolve) => setTimeout(resolve, n));
    running--;
    return n * 10;
  });
  assert.deepEqual(await Promise.all(results), [50, 10, 40, 20, 30, 0, 60]);
  assert.deepEqual(started.slice(0, 3), [5, 1, 4]);
  assert.equal(most, 3);
  assert.equal(started.length, 7);
});

Deno.test("boundedMap: a failed task fails its own promise only, and the rest still run", async () => {
  const results = boundedMap(
    [1, 2, 3],
    1,
    (n) => n === 2 ? Promise.reject(new Error("two")) : Promise.resolve(n),
  );
  assert.equal(await results[0], 1);
  await assert.rejects(results[1], /two/);
  assert.equal(await results[2], 3);
  assert.deepEqual(boundedMap([], 4, () => Promise.resolve(1)), []);
});
