// Table test of how many queued changes go in one COMMIT.
import assert from "node:assert/strict";
import { commitBatchSize, UPLOADS_PER_COMMIT } from "./commit_batch.ts";
import { MAX_BATCH } from "../protocol/messages.ts";

const ops = (op: "upload" | "move" | "delete" | "mkdir", n: number) =>
  Array.from({ length: n }, () => ({ op }));

Deno.test("commitBatchSize: content-free changes up to the server's limit, uploads fewer", () => {
  const table: [string, { op: "upload" | "move" | "delete" | "mkdir" }[], number][] = [
    ["empty", [], 0],
    ["one move", ops("move", 1), 1],
    ["1,000 moves: one COMMIT", ops("move", 1000), 1000],
    ["more moves than the server takes", ops("move", MAX_BATCH + 5), MAX_BATCH],
    ["uploads stop at their limit", ops("upload", 500), UPLOADS_PER_COMMIT],
    ["an upload past the limit waits", [...ops("upload", 200), ...ops("move", 1), ...ops("upload", 1)], 201],
    ["moves after the uploads' limit go along", [...ops("upload", 200), ...ops("move", 10)], 210],
    ["moves then uploads", [...ops("move", 700), ...ops("upload", 250)], 900],
    ["mixed within both limits", [...ops("delete", 300), ...ops("upload", 100), ...ops("mkdir", 50)], 450],
    ["mixed past the total", [...ops("mkdir", 900), ...ops("upload", 50), ...ops("move", 100)], MAX_BATCH],
  ];
  for (const [name, changes, expected] of table) assert.equal(commitBatchSize(changes), expected, name);
});
