// Tests for the inotify watch limit check: the advice table, and the facts read from a fake /proc.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  isWatchLimitError,
  raiseCommand,
  readWatchFacts,
  suggestedLimit,
  USER_NS_LIMIT_FILE,
  WATCH_LIMIT_FILE,
  type WatchFacts,
  watchLimitAdvice,
  WatchLimitAdvisor,
} from "./watch_limit.ts";

const OPTS = { dir: "/home/me/Sync", rescanSeconds: 10 };
const RAISE = "Raise the limit with: echo fs.inotify.max_user_watches=524288 | sudo tee " +
  "/etc/sysctl.d/90-filesync.conf && sudo sysctl --system";
const LATER = "changes are found by the scan every 10 s instead of at once";

Deno.test("watchLimitAdvice() speaks only when the folder needs more watches than are left, or watching ran out", () => {
  const cases: { name: string; facts: WatchFacts; want: string | null }[] = [
    { name: "plenty", facts: { limit: 8192, used: 100, folders: 50 }, want: null },
    { name: "exactly enough", facts: { limit: 8192, used: 192, folders: 8000 }, want: null },
    {
      name: "one short",
      facts: { limit: 8192, used: 193, folders: 8000 },
      want:
        "inotify watch limit too small (/home/me/Sync has 8000 folders to watch, your other programs hold " +
        `193 watches, fs.inotify.max_user_watches is 8192); ${LATER}. ${RAISE}`,
    },
    {
      name: "more folders than the limit (counting stopped)",
      facts: { limit: 8192, used: null, folders: 8193 },
      want: "inotify watch limit too small (/home/me/Sync has more than 8192 folders to watch, " +
        `fs.inotify.max_user_watches is 8192); ${LATER}. ${RAISE}`,
    },
    { name: "limit unknown", facts: { limit: null, used: null, folders: 10_000_000 }, want: null },
    {
      name: "ENOSPC",
      facts: {
        limit: 8192,
        used: 8000,
        folders: 300,
        watchError: 'OS file watch limit reached. about ["/x"]',
      },
      want:
        "cannot watch the folder: out of inotify watches (/home/me/Sync has 300 folders to watch, your other " +
        `programs hold 8000 watches, fs.inotify.max_user_watches is 8192); ${LATER}. ${RAISE}`,
    },
    {
      name: "ENOSPC, limit unknown",
      facts: { limit: null, used: null, folders: 3, watchError: "ENOSPC" },
      want:
        `cannot watch the folder: out of inotify watches (/home/me/Sync has 3 folders to watch); ${LATER}. ${RAISE}`,
    },
    {
      name: "another error",
      facts: { limit: 10, used: 0, folders: 50, watchError: "Permission denied" },
      want: null,
    },
  ];
  for (const { name, facts, want } of cases) assert.equal(watchLimitAdvice(facts, OPTS), want, name);
});

Deno.test("suggestedLimit() is 524288 unless twice the need is more, then the next power of two", () => {
  const cases: [number, number][] = [[0, 524_288], [262_144, 524_288], [262_145, 1_048_576], [
    600_000,
    2_097_152,
  ]];
  for (const [needed, limit] of cases) assert.equal(suggestedLimit(needed), limit, String(needed));
  assert.equal(
    raiseCommand(524_288),
    "echo fs.inotify.max_user_watches=524288 | sudo tee /etc/sysctl.d/90-filesync.conf && sudo sysctl --system",
  );
});

Deno.test("isWatchLimitError() knows the ways ENOSPC is reported", () => {
  const deno = 'OS file watch limit reached. about ["/home/me/Sync/a/b"]'; // what Deno.watchFs throws
  for (const text of [deno, "No space left on device (os error 28)", "ENOSPC: watch", "os error 28"]) {
    assert.ok(isWatchLimitError(text), text);
  }
  for (const text of ["Permission denied (os error 13)", "No such file or directory", "os error 2"]) {
    assert.ok(!isWatchLimitError(text), text);
  }
});

/** A fake /proc with a limit and processes holding inotify watches, and a synced folder; removed afterwards. */
async function withFakeProc(
  fn: (paths: { proc: string; dir: string }) => Promise<void>,
  options: { limit: string; watches: Record<string, number[]> },
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "filesync-proc-" });
  try {
    const proc = join(root, "proc");
    await Deno.mkdir(join(proc, "sys/fs/inotify"), { recursive: true });
    await Deno.writeTextFile(join(proc, WATCH_LIMIT_FILE), options.limit);
    for (const [pid, perFd] of Object.entries(options.watches)) {
      await Deno.mkdir(join(proc, pid, "fd"), { recursive: true });
      await Deno.mkdir(join(proc, pid, "fdinfo"), { recursive: true });
      await Deno.symlink("/dev/null", join(proc, pid, "fd", "0"));
      await Deno.writeTextFile(join(proc, pid, "fdinfo", "0"), "pos:\t0\n");
      for (const [i, count] of perFd.entries()) {
        const fd = String(3 + i);
        await Deno.symlink("anon_inode:inotify", join(proc, pid, "fd", fd));
        const lines = Array.from(
          { length: count },
          (_, w) => `inotify wd:${w + 1} ino:${w} sdev:800001 mask:fce`,
        );
        await Deno.writeTextFile(
          join(proc, pid, "fdinfo", fd),
          ["pos:\t0", "flags:\t00", ...lines, ""].join("\n"),
        );
      }
    }
    await Deno.mkdir(join(proc, "self"), { recursive: true }); // not a process id: skipped
    const dir = join(root, "sync");
    for (const sub of ["a/b/c", "a/d", "e", ".filesync/tmp"]) {
      await Deno.mkdir(join(dir, sub), { recursive: true });
    }
    await Deno.writeTextFile(join(dir, "a/file.txt"), "x");
    await fn({ proc, dir });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("readWatchFacts() reads the limit, the other processes' watches and the folders (without .filesync/)", async () => {
  await withFakeProc(async ({ proc, dir }) => {
    // sync, a, a/b, a/b/c, a/d, e: 6 folders; pid 200 is this process, not counted again.
    assert.deepEqual(await readWatchFacts({ dir, procRoot: proc, pid: 200 }), {
      limit: 8192,
      used: 7,
      folders: 6,
    });
    // Counting stops past the limit.
    await Deno.writeTextFile(join(proc, WATCH_LIMIT_FILE), "3\n");
    assert.deepEqual(await readWatchFacts({ dir, procRoot: proc, pid: 200 }), {
      limit: 3,
      used: 7,
      folders: 4,
    });
    // Another user's processes do not count.
    const other = (Deno.uid() ?? 0) + 1;
    assert.equal((await readWatchFacts({ dir, procRoot: proc, uid: other, pid: 1 })).used, 0);
    await Deno.writeTextFile(join(proc, WATCH_LIMIT_FILE), "not a number");
    assert.deepEqual(await readWatchFacts({ dir, procRoot: proc }), { limit: null, used: null, folders: 6 });
    // Inside a user namespace with a smaller limit of its own, that one counts.
    await Deno.writeTextFile(join(proc, WATCH_LIMIT_FILE), "8192");
    await Deno.mkdir(join(proc, "sys/user"));
    await Deno.writeTextFile(join(proc, USER_NS_LIMIT_FILE), "100\n");
    assert.deepEqual(await readWatchFacts({ dir, procRoot: proc, pid: 200 }), {
      limit: 100,
      used: 7,
      folders: 6,
      limitName: "this user namespace's user.max_inotify_watches",
    });
    await Deno.writeTextFile(join(proc, USER_NS_LIMIT_FILE), "2147483647\n");
    assert.deepEqual(await readWatchFacts({ dir, procRoot: proc, pid: 200 }), {
      limit: 8192,
      used: 7,
      folders: 6,
    });
  }, { limit: "8192\n", watches: { "100": [2, 4], "101": [1], "200": [50] } });
});

Deno.test("WatchLimitAdvisor says it once, for a folder too big for the limit and for a failed watch", async () => {
  await withFakeProc(async ({ proc, dir }) => {
    const said: string[] = [];
    const advisor = new WatchLimitAdvisor({
      dir,
      rescanSeconds: 2,
      say: (line) => said.push(line),
      procRoot: proc,
    });
    assert.equal(await advisor.watchFailed(new Error("Permission denied (os error 13)")), false);
    await advisor.check();
    assert.equal(said.length, 1);
    assert.match(
      said[0],
      /^inotify watch limit too small \(.* has 6 folders to watch, your other programs hold 3/,
    );
    assert.equal(await advisor.watchFailed(new Error("No space left on device (os error 28)")), true);
    await advisor.check();
    assert.equal(said.length, 1);
  }, { limit: "8", watches: { "100": [3] } });
});
