// Tests of the progress display: plain lines every few seconds, a bar with lines above it, nothing when off.
import assert from "node:assert/strict";
import type { ClientEvent, TimedEvent } from "./events.ts";
import { ProgressDisplay, progressModeOf } from "./progress.ts";

const MiB = 1024 * 1024;
const ESC = "\x1b";

const plan = (files: number, bytes: number): ClientEvent => ({
  type: "plan",
  uploads: { files: 0, bytes: 0 },
  downloads: { files, bytes },
  deletes: 0,
  moves: 0,
});
const down = (path: string, done: number, total: number): ClientEvent => ({
  type: "transfer",
  direction: "down",
  path,
  done,
  total,
});

/** A display on a fake clock; `send` emits at the clock's time. */
function setup(mode: "bar" | "lines" | "off") {
  const clock = { now: 0 };
  const lines: string[] = [];
  const stream = {
    isTTY: true,
    columns: 100,
    text: "",
    write(s: string) {
      this.text += s;
      return true;
    },
  };
  const display = new ProgressDisplay({ mode, now: () => clock.now, write: (l) => lines.push(l), stream });
  const send = (event: ClientEvent) => display.sink({ ...event, time: clock.now } as TimedEvent);
  return { clock, lines, stream, display, send };
}

Deno.test("progressModeOf(): a bar on a terminal, lines otherwise, nothing with --json or --quiet", () => {
  assert.equal(progressModeOf({ terminal: true }), "bar");
  assert.equal(progressModeOf({ terminal: false }), "lines");
  assert.equal(progressModeOf({ terminal: true, json: true }), "off");
  assert.equal(progressModeOf({ terminal: false, quiet: true }), "off");
});

Deno.test("ProgressDisplay (lines): the initial sync at once, then every five seconds, and its end", () => {
  const { clock, lines, display, send } = setup("lines");
  try {
    send(plan(2, 100 * MiB));
    assert.deepEqual(lines, ["progress: 0/2 files, 0 B of 100.0 MiB"]);
    for (let t = 1000; t <= 11_000; t += 1000) {
      clock.now = t;
      send(down("a", (t / 1000) * 4 * MiB, 50 * MiB));
    }
    assert.equal(lines.length, 3, lines.join("\n"));
    assert.equal(lines[1], "progress: 0/2 files, 20.0 MiB of 100.0 MiB, 4.0 MiB/s, about 20 s left");
    assert.match(lines[2], /^progress: 0\/2 files, 40\.0 MiB of 100\.0 MiB, 4\.0 MiB\/s, about 15 s left$/);
    clock.now = 11_500;
    send(down("a", 50 * MiB, 50 * MiB));
    send({ type: "downloaded", path: "b", size: 50 * MiB });
    assert.equal(lines.at(-1), "progress: 2/2 files, 100.0 MiB of 100.0 MiB, 13.8 MiB/s");
    // Idle: nothing more.
    const count = lines.length;
    clock.now = 30_000;
    display.tick();
    assert.equal(lines.length, count);
  } finally {
    display.stop();
  }
});

Deno.test("ProgressDisplay (lines): a small initial sync prints no progress line unless it takes two seconds", () => {
  const { clock, lines, display, send } = setup("lines");
  try {
    send(plan(1, 6));
    send({ type: "uploaded", path: "a", size: 6 });
    assert.deepEqual(lines, []);
    send(plan(1, MiB));
    clock.now = 2500;
    send(down("b", MiB / 2, MiB));
    display.tick();
    assert.equal(lines.length, 1, lines.join("\n"));
  } finally {
    display.stop();
  }
});

Deno.test("ProgressDisplay (lines): later work shows only once it ran two seconds", () => {
  const { clock, lines, display, send } = setup("lines");
  try {
    send({ type: "synced", files: 0, bytes: 0 });
    send(plan(1, 10 * MiB));
    clock.now = 1500;
    send(down("a", 5 * MiB, 10 * MiB));
    assert.deepEqual(lines, []);
    clock.now = 2000;
    display.tick();
    assert.deepEqual(lines, ["progress: 0/1 file, 5.0 MiB of 10.0 MiB, 2.5 MiB/s, about 2 s left"]);
    // A short run that was never shown ends without a line.
    clock.now = 2100;
    send(down("a", 10 * MiB, 10 * MiB));
    send(plan(1, 10 * MiB));
    send({ type: "downloaded", path: "b", size: 10 * MiB });
    assert.equal(lines.length, 2, lines.join("\n")); // the end of the first run only
  } finally {
    display.stop();
  }
});

Deno.test("ProgressDisplay (bar): drawn in place, lines above it, cleared at the end", () => {
  const { clock, stream, display, send } = setup("bar");
  try {
    display.write("before");
    assert.equal(stream.text, "before\n");
    send(plan(1, 10 * MiB));
    assert.match(stream.text, /0% \| 0\/1 file \| 0 B of 10\.0 MiB/);
    clock.now = 1000;
    send(down("a", 5 * MiB, 10 * MiB));
    stream.text = "";
    display.write("12:00:00 downloaded small.txt (5 B)");
    // The line: at the start of the line, erased, printed with its newline; then the bar below it again.
    const at = stream.text.indexOf("12:00:00 downloaded small.txt (5 B)\n");
    assert.ok(at > 0, JSON.stringify(stream.text));
    assert.ok(stream.text.slice(0, at).includes(`${ESC}[2K`), JSON.stringify(stream.text));
    assert.match(stream.text.slice(at), /50% \| 0\/1 file \| 5\.0 MiB of 10\.0 MiB \| 5\.0 MiB\/s/);
    // Another line with nothing changed: the bar comes back below it all the same.
    stream.text = "";
    display.write("12:00:01 downloaded other.txt (5 B)");
    assert.match(stream.text, /other\.txt \(5 B\)\n.*50% \| 0\/1 file/s);
    stream.text = "";
    clock.now = 1500;
    send(down("a", 10 * MiB, 10 * MiB));
    // Last drawn full, then erased; lines after go out plainly.
    assert.match(stream.text, /100% \| 1\/1 file/);
    assert.ok(
      stream.text.lastIndexOf(`${ESC}[0J`) > stream.text.lastIndexOf("100%"),
      JSON.stringify(stream.text),
    );
    stream.text = "";
    display.write("after");
    assert.equal(stream.text, "after\n");
  } finally {
    display.stop();
  }
});

Deno.test("ProgressDisplay (bar): stop() clears a bar still shown", () => {
  const { stream, display, send } = setup("bar");
  send(plan(1, 10 * MiB));
  stream.text = "";
  display.stop();
  assert.ok(stream.text.includes(`${ESC}[0J`), JSON.stringify(stream.text));
});

Deno.test("ProgressDisplay (off): prints lines as they come and no progress", () => {
  const { clock, lines, stream, display, send } = setup("off");
  try {
    send(plan(1, 10 * MiB));
    clock.now = 10_000;
    send(down("a", 5 * MiB, 10 * MiB));
    display.write("a line");
    assert.deepEqual(lines, ["a line"]);
    assert.equal(stream.text, "");
  } finally {
    display.stop();
  }
});

Deno.test("ProgressDisplay (lines): its own lines are stamped, the client's go as they are", () => {
  const lines: string[] = [];
  const display = new ProgressDisplay({
    mode: "lines",
    now: () => 0,
    write: (l) => lines.push(l),
    stamp: (l) => `12:00:00 ${l}`,
  });
  try {
    display.write("12:00:00 connected to h:1");
    display.sink({ ...plan(1, 20 * MiB), time: 0 } as TimedEvent);
    assert.deepEqual(lines, ["12:00:00 connected to h:1", "12:00:00 progress: 0/1 file, 0 B of 20.0 MiB"]);
  } finally {
    display.stop();
  }
});
