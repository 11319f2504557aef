import assert from "node:assert/strict";
import type { ClientEvent, EventLevel } from "./events.ts";
import { EventBus, eventLevel, shown } from "./events.ts";
import { formatEvent, timedLine, toJsonLine } from "./event_format.ts";
import { eventPrinter } from "./event_printer.ts";

/** Every kind of event with its readable line and level: the wording e2e tests and scripts match. */
const CASES: [ClientEvent, string, EventLevel][] = [
  [{ type: "uploaded", path: "a.txt", size: 12, sent: 12 }, "uploaded a.txt (12 B)", "info"],
  [
    { type: "uploaded", path: "big.bin", size: 3 * 1048576, sent: 1536 },
    "uploaded big.bin (3.0 MiB, 1.5 KiB sent)",
    "info",
  ],
  [{ type: "downloaded", path: "a.txt", size: 2048 }, "downloaded a.txt (2.0 KiB)", "info"],
  [
    { type: "downloaded", path: "b", size: 2048, fetched: 100 },
    "downloaded b (2.0 KiB, 100 B received)",
    "info",
  ],
  [{ type: "deleted", path: "x", kind: "file", where: "server" }, "deleted x (on the server)", "info"],
  [{ type: "deleted", path: "d", kind: "dir", where: "here" }, "deleted d (from the server)", "info"],
  [{ type: "moved", from: "a", to: "b", where: "server" }, "moved a -> b (on the server)", "info"],
  [{ type: "moved", from: "a", to: "b", where: "here" }, "moved a -> b (from the server)", "info"],
  [
    { type: "moved", from: "a", to: "S/a", where: "server", note: "into another namespace" },
    "moved a -> S/a (on the server: into another namespace)",
    "info",
  ],
  [
    { type: "moved", from: "photos", to: "pictures", where: "here", files: 50 },
    "moved photos -> pictures (from the server, 50 files)",
    "info",
  ],
  [
    { type: "conflict", path: "n.txt", copy: "n (conflict).txt", device: "B", copyHolds: "here" },
    `conflict: n.txt changed here and on "B"; kept this device's version as n (conflict).txt`,
    "conflict",
  ],
  [
    { type: "conflict", path: "n.txt", copy: "n (B).txt", device: "B", copyHolds: "there" },
    `conflict: n.txt changed here and on "B"; kept their version as n (B).txt`,
    "conflict",
  ],
  [{ type: "restored", path: "r.txt", version: "7" }, "restored r.txt (version 7)", "info"],
  [
    { type: "share", change: "added", owner: "alice", path: "P", mount: "P", access: "write" },
    `share: alice's "P" is shared with you (read-write), shown as "P"`,
    "info",
  ],
  [
    { type: "share", change: "access", owner: "alice", path: "P", mount: "P (alice)", access: "read" },
    `share: alice's "P" is now read-only for you ("P (alice)")`,
    "info",
  ],
  [
    { type: "share", change: "removed", owner: "alice", path: "P", mount: "P", access: "read" },
    `share: alice's "P" is no longer shared with you ("P")`,
    "info",
  ],
  [
    { type: "locked", path: "a.txt", user: "u", device: "there" },
    `a.txt is locked by u on device "there": read-only here until the lock ends`,
    "info",
  ],
  [
    { type: "unlocked", path: "a", how: "expired" },
    "the lock on a ran out: it can be changed here again",
    "info",
  ],
  [{ type: "unlocked", path: "a" }, "the lock on a ended: it can be changed here again", "info"],
  [
    { type: "unlocked", path: "a", how: "forced", mine: true, by: "B" },
    `this device's lock on a was forced open on device "B"`,
    "info",
  ],
  [{ type: "connected", server: "h:1", user: "u", device: "d" }, "connected to h:1", "info"],
  [
    { type: "offline", server: "h:1", reason: "connection reset", lost: true },
    "disconnected from server (connection reset); reconnecting",
    "info",
  ],
  [
    { type: "offline", server: "h:1", reason: "Cannot reach h:1" },
    "Cannot reach h:1; will keep trying (working offline meanwhile)",
    "info",
  ],
  [{ type: "reconnecting", server: "h:1", inMs: 2400 }, "reconnecting to h:1 (next try in 2 s)", "info"],
  [{ type: "paused" }, "paused: nothing is synced until filesync resume", "info"],
  [{ type: "resumed" }, "resumed: syncing again", "info"],
  [
    {
      type: "safety_stop",
      reason: "mass_delete",
      held: 30,
      detail: "safety stop: this scan would delete 30",
    },
    "safety stop: this scan would delete 30",
    "error",
  ],
  [
    { type: "safety_lifted", reason: "mass_delete" },
    "safety stop lifted: no mass delete is pending any more; syncing as usual",
    "info",
  ],
  [
    { type: "safety_lifted", reason: "root", dir: "/d" },
    "the synced folder is back (/d); syncing resumes",
    "info",
  ],
  [{ type: "error", message: "sync error: boom" }, "sync error: boom", "error"],
  [{ type: "notice", message: "logged in" }, "logged in", "info"],
  [{ type: "notice", message: "detail", detail: true }, "detail", "detail"],
  [
    { type: "synced", files: 3, bytes: 2048 },
    "in sync: 3 files, 2.0 KiB",
    "detail",
  ],
];

Deno.test("formatEvent() gives each kind of event its line, and eventLevel() its level", () => {
  for (const [event, line, level] of CASES) {
    assert.equal(formatEvent(event), line, JSON.stringify(event));
    assert.equal(eventLevel(event), level, JSON.stringify(event));
  }
});

Deno.test("toJsonLine() is one line: time (ISO), type, level, message, then the event's fields", () => {
  for (const [event, line, level] of CASES) {
    const json = toJsonLine({ ...event, time: Date.UTC(2026, 0, 2, 3, 4, 5, 6) });
    assert.ok(!json.includes("\n"), json);
    const parsed = JSON.parse(json);
    assert.deepEqual(Object.keys(parsed).slice(0, 4), ["time", "type", "level", "message"]);
    assert.equal(parsed.time, "2026-01-02T03:04:05.006Z");
    assert.equal(parsed.level, level);
    assert.equal(parsed.message, line);
    const { time: _t, level: _l, message: _m, ...fields } = parsed;
    const { message: _own, ...own } = event as ClientEvent & { message?: string };
    assert.deepEqual(fields, own);
  }
});

Deno.test("shown(): --quiet keeps errors and conflicts, the default adds info, --verbose adds detail", () => {
  const table: [EventLevel, boolean, boolean, boolean][] = [
    ["error", true, true, true],
    ["conflict", true, true, true],
    ["info", false, true, true],
    ["detail", false, false, true],
  ];
  for (const [level, quiet, normal, verbose] of table) {
    assert.equal(shown(level, "quiet"), quiet, level);
    assert.equal(shown(level, "normal"), normal, level);
    assert.equal(shown(level, "verbose"), verbose, level);
  }
});

Deno.test("eventPrinter() prints readable lines with the local time, or JSON lines, as verbosity shows", () => {
  const time = new Date(2026, 0, 2, 13, 4, 5).getTime();
  const printed: string[] = [];
  const bus = new EventBus({ now: () => time });
  bus.subscribe(eventPrinter({ write: (l) => printed.push(l) }));
  bus.subscribe(eventPrinter({ write: (l) => printed.push(`quiet ${l}`), verbosity: "quiet", json: true }));
  bus.emit({ type: "uploaded", path: "a", size: 1 });
  bus.emit({ type: "conflict", path: "n", copy: "c", device: "B", copyHolds: "there" });
  bus.emit({ type: "synced", files: 1, bytes: 1 });
  assert.equal(printed.length, 3, printed.join("\n"));
  assert.equal(printed[0], "13:04:05 uploaded a (1 B)");
  assert.match(printed[1], /^13:04:05 conflict: n changed here/);
  assert.equal(JSON.parse(printed[2].slice("quiet ".length)).type, "conflict");
});

Deno.test("timedLine() puts HH:MM:SS in front", () => {
  assert.equal(timedLine(new Date(2026, 5, 7, 8, 9, 10).getTime(), "x"), "08:09:10 x");
  assert.equal(timedLine(new Date(2026, 5, 7, 23, 59, 59).getTime(), "y"), "23:59:59 y");
});
