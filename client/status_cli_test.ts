// Tests of the readable status lines and of the status, pause and resume commands' usage errors.
import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError, UserError } from "../protocol/user_error.ts";
import type { StatusReport } from "./status.ts";
import { formatStatus, pauseCommand, statusCommand } from "./status_cli.ts";

const report: StatusReport = {
  state: "connected",
  server: "127.0.0.1:8443",
  user: "alice",
  device: "laptop",
  folder: "/home/alice/Sync",
  inSync: { files: 12, bytes: 3 * 1024 * 1024 },
  pending: { uploads: { files: 0, bytes: 0 }, downloads: { files: 0, bytes: 0 } },
  transfers: [],
  lastSync: Date.UTC(2026, 11, 2, 6, 10, 5),
  conflicts: [],
  safetyStops: [],
};

Deno.test("formatStatus(): a first line with folder and state, then aligned lines", () => {
  assert.deepEqual(formatStatus(report), [
    "filesync client for /home/alice/Sync: connected",
    '  server     127.0.0.1:8443, user alice, device "laptop"',
    "  in sync    12 files, 3.0 MiB",
    "  pending    nothing",
    "  last sync  2026-12-02 06:10:05 UTC",
  ]);
});

Deno.test("formatStatus(): pending work, transfers, conflicts and safety stops", () => {
  const lines = formatStatus({
    ...report,
    state: "paused",
    pending: { uploads: { files: 1, bytes: 5 }, downloads: { files: 2, bytes: 2048 } },
    transfers: [{ direction: "up", path: "big.iso", done: 45, total: 100 }],
    lastSync: null,
    conflicts: ["a (conflicted copy from b 2026-12-01 101010).txt"],
    safetyStops: [{ reason: "mass_delete", held: 25 }, { reason: "root", detail: "the folder is missing" }],
  });
  assert.deepEqual(lines, [
    "filesync client for /home/alice/Sync: paused (filesync resume syncs again)",
    '  server     127.0.0.1:8443, user alice, device "laptop"',
    "  in sync    12 files, 3.0 MiB",
    "  pending    1 upload (5 B), 2 downloads (2.0 KiB)",
    "  transfer   uploading big.iso: 45% of 100 B",
    "  last sync  not yet",
    "  conflicts  1: a (conflicted copy from b 2026-12-01 101010).txt",
    '  safety     25 deletes held back: run "filesync confirm-deletes --dir /home/alice/Sync" to let them ' +
    "through, or put the files back",
    "  safety     the folder is missing",
  ]);
  assert.equal(
    formatStatus({ ...report, state: "offline", offlineReason: "Cannot reach server x:1: refused" })[0],
    "filesync client for /home/alice/Sync: offline (Cannot reach server x:1: refused)",
  );
});

Deno.test("status, pause, resume: bad usage and folders that are not synced are one clear error", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await assert.rejects(statusCommand(["extra"], { cwd: tmp }), UsageError);
    await assert.rejects(statusCommand(["--verbose"], { cwd: tmp }), /--verbose goes with --follow/);
    await assert.rejects(statusCommand(["--bogus"], { cwd: tmp }), TypeError);
    await assert.rejects(pauseCommand("pause", ["x"], { cwd: tmp }), UsageError);
    await assert.rejects(statusCommand([], { cwd: tmp }), /Not inside a synced folder/);
    await assert.rejects(pauseCommand("resume", ["--dir", tmp], { cwd: tmp }), /is not a synced folder/);
    // A synced folder whose client does not run.
    await Deno.mkdir(join(tmp, ".filesync"));
    await assert.rejects(
      statusCommand([], { cwd: tmp }),
      (e: Error) => e instanceof UserError && /^no client is running for /.test(e.message),
    );
    await assert.rejects(pauseCommand("pause", [], { cwd: tmp }), /no client is running/);
    await assert.rejects(statusCommand(["--follow"], { cwd: tmp }), /no client is running/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
