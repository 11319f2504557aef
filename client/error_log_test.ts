import assert from "node:assert/strict";
import { join } from "node:path";
import { EventBus } from "./events.ts";
import { ErrorLog, errorLogPath } from "./error_log.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "filesync-errlog-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("ErrorLog keeps errors and conflicts only, one line each with the time, mode 0600", async () => {
  await withDir(async (dir) => {
    const log = new ErrorLog(join(dir, "client.log"));
    const bus = new EventBus({ now: () => Date.UTC(2026, 0, 1) });
    bus.subscribe(log.sink());
    bus.emit({ type: "uploaded", path: "a", size: 1 });
    bus.emit({ type: "error", message: "sync error: boom" });
    bus.emit({ type: "conflict", path: "n", copy: "c", device: "B", copyHolds: "there" });
    bus.emit({ type: "safety_stop", reason: "root", detail: "safety stop: the folder is gone" });
    await log.flush();
    const lines = (await Deno.readTextFile(log.path)).trimEnd().split("\n");
    assert.deepEqual(lines, [
      "2026-01-01T00:00:00.000Z sync error: boom",
      `2026-01-01T00:00:00.000Z conflict: n changed here and on "B"; kept their version as c`,
      "2026-01-01T00:00:00.000Z safety stop: the folder is gone",
    ]);
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(log.path)).mode! & 0o777, 0o600);
  });
});

Deno.test("ErrorLog rotates to FILE.1 before a line would take it past the limit, keeping one old file", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "client.log");
    const log = new ErrorLog(path, { maxBytes: 40 });
    for (let i = 0; i < 7; i++) log.append(`line ${i} ${"x".repeat(10)}`); // 18 bytes each: 2 per file
    await log.flush();
    assert.equal(await Deno.readTextFile(path), `line 6 ${"x".repeat(10)}\n`);
    assert.equal(
      await Deno.readTextFile(`${path}.1`),
      `line 4 ${"x".repeat(10)}\nline 5 ${"x".repeat(10)}\n`,
    );
    assert.ok((await Deno.stat(path)).size <= 40);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["client.log", "client.log.1"]);
  });
});

Deno.test("ErrorLog: a line longer than the limit is still written, in a file of its own", async () => {
  await withDir(async (dir) => {
    const path = join(dir, "client.log");
    const log = new ErrorLog(path, { maxBytes: 10 });
    log.append("short");
    log.append("a line longer than ten bytes");
    await log.flush();
    assert.equal(await Deno.readTextFile(path), "a line longer than ten bytes\n");
    assert.equal(await Deno.readTextFile(`${path}.1`), "short\n");
  });
});

Deno.test("ErrorLog: a write that fails is told once and never throws; later lines are tried again", async () => {
  await withDir(async (dir) => {
    const told: string[] = [];
    const path = join(dir, "missing", "client.log");
    const log = new ErrorLog(path, { onError: (e) => told.push(e.message) });
    log.append("one");
    log.append("two");
    await log.flush();
    assert.equal(told.length, 1);
    await Deno.mkdir(join(dir, "missing"));
    log.append("three");
    await log.flush();
    assert.equal(await Deno.readTextFile(path), "three\n");
  });
});

Deno.test("errorLogPath() is DIR/.filesync/client.log", () => {
  assert.equal(errorLogPath("/x/y"), "/x/y/.filesync/client.log");
});
