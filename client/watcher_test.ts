// The watcher's pure decision: which files are held back as still being written.
import assert from "node:assert/strict";
import { heldBack, markWrite, type WriteMark } from "./watcher.ts";

const MAX = 1000;

/** The mark after `events` ([kind, at, size on disk then]) from no mark. */
function after(events: [Deno.FsEvent["kind"], number, number?][]): WriteMark | undefined {
  let mark: WriteMark | undefined;
  for (const [kind, at, size] of events) mark = markWrite(mark, kind, at, () => size);
  return mark;
}

Deno.test("heldBack() holds a file written to and not closed, and lets it go at its close", () => {
  const cases: {
    name: string;
    events: [Deno.FsEvent["kind"], number, number?][];
    now: number;
    size?: number;
    held: boolean;
  }[] = [
    {
      name: "created and written, still open",
      events: [["create", 0], ["modify", 5]],
      now: 100,
      size: 10,
      held: true,
    },
    {
      name: "still open, last write longer ago than the hold",
      events: [["create", 0], ["modify", 5]],
      now: 1006,
      size: 10,
      held: false,
    },
    {
      name: "written and closed",
      events: [["create", 0], ["modify", 5], ["access", 6, 10]],
      now: 100,
      size: 10,
      held: false,
    },
    {
      name: "closed, then chmod'ed (size kept)",
      events: [["create", 0], ["modify", 5], ["access", 6, 10], ["modify", 7]],
      now: 100,
      size: 10,
      held: false,
    },
    {
      name: "closed, then touched twice (size kept)",
      events: [["modify", 5], ["access", 6, 10], ["modify", 7], ["modify", 8]],
      now: 20,
      size: 10,
      held: false,
    },
    {
      name: "closed, then opened and appended to",
      events: [["modify", 5], ["access", 6, 10], ["modify", 7]],
      now: 100,
      size: 14,
      held: true,
    },
    {
      name: "closed, then truncated to be rewritten",
      events: [["modify", 5], ["access", 6, 10], ["modify", 7]],
      now: 100,
      size: 0,
      held: true,
    },
    {
      name: "closed, rewritten and closed again",
      events: [["modify", 5], ["access", 6, 10], ["modify", 7], ["access", 8, 14]],
      now: 100,
      size: 14,
      held: false,
    },
    {
      name: "recreated after a close",
      events: [["modify", 5], ["access", 6, 10], ["create", 7]],
      now: 100,
      size: 10,
      held: true,
    },
    {
      name: "chmod of a file whose close was not seen",
      events: [["modify", 5]],
      now: 100,
      size: 10,
      held: true,
    },
    { name: "a folder made", events: [["create", 5]], now: 100, size: undefined, held: false },
    {
      name: "written, then removed",
      events: [["create", 0], ["modify", 5], ["remove", 6]],
      now: 100,
      size: undefined,
      held: false,
    },
    {
      name: "written, then renamed away",
      events: [["create", 0], ["modify", 5], ["rename", 6]],
      now: 100,
      size: 10,
      held: false,
    },
    {
      name: "closed while gone (close then unlink raced)",
      events: [["modify", 5], ["access", 6, undefined], ["modify", 7]],
      now: 100,
      size: 3,
      held: true,
    },
  ];
  for (const c of cases) {
    const got = heldBack(after(c.events), { now: c.now, openWriteMaxMs: MAX, sizeNow: () => c.size });
    assert.equal(got, c.held, c.name);
  }
});

Deno.test("markWrite() stats the file only at a close", () => {
  let asked = 0;
  const sizeNow = () => {
    asked++;
    return 3;
  };
  let mark = markWrite(undefined, "create", 0, sizeNow);
  mark = markWrite(mark, "modify", 1, sizeNow);
  assert.equal(asked, 0);
  mark = markWrite(mark, "access", 2, sizeNow);
  assert.equal(asked, 1);
  assert.deepEqual(mark, { closedSize: 3, closedAt: 2 });
});
