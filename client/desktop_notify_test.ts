import assert from "node:assert/strict";
import { join } from "node:path";
import { EventBus } from "./events.ts";
import {
  desktopNotifier,
  DOWNLOAD_SUMMARY_MS,
  downloadSummary,
  type Notification,
  notificationOf,
  NOTIFY_MISSING,
  onPath,
} from "./desktop_notify.ts";

Deno.test("notificationOf() shows conflicts, errors, safety stops, shares and locks; not uploads", () => {
  const at = { time: 0 };
  const shownTypes = [
    { type: "conflict", path: "n", copy: "c", device: "B" },
    { type: "error", message: "boom" },
    { type: "safety_stop", reason: "root", detail: "gone" },
    { type: "share", change: "added", owner: "o", path: "P", mount: "P", access: "read" },
    { type: "locked", path: "a", user: "u", device: "d" },
  ] as const;
  for (const event of shownTypes) assert.ok(notificationOf({ ...event, ...at }), event.type);
  assert.equal(notificationOf({ type: "uploaded", path: "a", size: 1, ...at }), null);
  assert.equal(notificationOf({ type: "connected", server: "s", user: "u", device: "d", ...at }), null);
  assert.equal(notificationOf({ type: "error", message: "boom", ...at })!.urgency, "critical");
});

Deno.test("downloadSummary() names one file, counts several", () => {
  assert.equal(downloadSummary(["a.txt"]).body, "downloaded a.txt");
  assert.equal(downloadSummary(["a", "b", "c"]).body, "downloaded 3 files");
});

Deno.test("desktopNotifier() summarises downloads once per interval and shows a conflict at once", () => {
  const shown: Notification[] = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const notifier = desktopNotifier({
    available: true,
    onMissing: () => assert.fail("not missing"),
    show: (n) => {
      shown.push(n);
      return Promise.resolve();
    },
    schedule: (fn, ms) => {
      timers.push({ fn, ms });
      return () => {};
    },
  });
  const bus = new EventBus();
  bus.subscribe(notifier.sink);
  for (const path of ["a", "b", "c"]) bus.emit({ type: "downloaded", path, size: 1 });
  bus.emit({ type: "conflict", path: "n", copy: "c", device: "B" });
  assert.deepEqual(shown.map((n) => n.title), ["filesync: conflict"]);
  assert.deepEqual(timers.map((t) => t.ms), [DOWNLOAD_SUMMARY_MS], "one summary timer for the burst");
  timers[0].fn();
  assert.deepEqual(shown.map((n) => n.body).slice(1), ["downloaded 3 files"]);
  bus.emit({ type: "downloaded", path: "d", size: 1 });
  assert.equal(timers.length, 2, "the next download starts the next interval");
  timers[1].fn();
  assert.equal(shown.at(-1)!.body, "downloaded d");
  notifier.stop();
});

Deno.test("desktopNotifier() says once that notify-send is missing, and shows nothing", () => {
  const said: string[] = [];
  const notifier = desktopNotifier({
    available: false,
    onMissing: (line) => said.push(line),
    show: () => Promise.reject(new Error("never shown")),
  });
  notifier.sink({ type: "error", message: "boom", time: 0 });
  notifier.sink({ type: "error", message: "boom", time: 0 });
  assert.deepEqual(said, [NOTIFY_MISSING]);
  assert.equal(NOTIFY_MISSING, "notify-send not found: no desktop notifications");
});

Deno.test("desktopNotifier() stops and says so once when notify-send cannot be started", async () => {
  const said: string[] = [];
  let tries = 0;
  const notifier = desktopNotifier({
    available: true,
    onMissing: (line) => said.push(line),
    show: () => {
      tries++;
      return Promise.reject(new Deno.errors.NotFound("notify-send"));
    },
  });
  notifier.sink({ type: "error", message: "one", time: 0 });
  await new Promise((r) => setTimeout(r, 0));
  notifier.sink({ type: "error", message: "two", time: 0 });
  assert.equal(tries, 1);
  assert.deepEqual(said, [NOTIFY_MISSING]);
});

Deno.test("onPath() finds an executable file in a PATH folder only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "filesync-path-" });
  try {
    await Deno.writeTextFile(join(dir, "tool"), "#!/bin/sh\n");
    await Deno.writeTextFile(join(dir, "plain"), "");
    if (Deno.build.os !== "windows") {
      await Deno.chmod(join(dir, "tool"), 0o755);
      await Deno.chmod(join(dir, "plain"), 0o644);
      assert.equal(onPath("plain", dir), false);
    }
    assert.equal(onPath("tool", `/nonexistent:${dir}`), true);
    assert.equal(onPath("absent", dir), false);
    assert.equal(onPath("tool", ""), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
