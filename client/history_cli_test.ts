// Tests for the history commands' folder lookup and path conversion (no server needed).
import assert from "node:assert/strict";
import { join } from "node:path";
import { UserError } from "../protocol/user_error.ts";
import { findSyncedFolder, formatTime, savedAddress, toFolderPath } from "./history_cli.ts";
import { STATE_DIR } from "./state.ts";

const root = "/home/u/Sync";

Deno.test("toFolderPath converts paths typed by the user into folder paths", () => {
  const cases: [string, string, string][] = [
    // input, cwd, expected
    ["a.txt", root, "a.txt"],
    ["a.txt", `${root}/docs`, "docs/a.txt"],
    ["../b.txt", `${root}/docs`, "b.txt"],
    ["./x/../y/z", root, "y/z"],
    [`${root}/docs/c.txt`, "/elsewhere", "docs/c.txt"],
    ["docs/d.txt", "/elsewhere", "docs/d.txt"], // cwd outside the folder: relative to the folder
    ["docs/", root, "docs"],
    ["nai\u0308ve.txt", root, "na\u00efve.txt"], // NFC on the wire
  ];
  for (const [input, cwd, expected] of cases) {
    assert.equal(toFolderPath(input, { root, cwd }), expected, `${input} from ${cwd}`);
  }
});

Deno.test("toFolderPath refuses the folder itself, paths outside it and the state folder", () => {
  const cases: [string, string, RegExp][] = [
    ["../other.txt", root, /outside the synced folder/],
    ["/etc/passwd", root, /outside the synced folder/],
    [`${root}-b/x`, root, /outside the synced folder/],
    [".", root, /synced folder itself/],
    [root, "/", /synced folder itself/],
    [".filesync/token", root, /Invalid path/],
    ["a\\b", root, /Invalid path/],
  ];
  for (const [input, cwd, message] of cases) {
    assert.throws(
      () => toFolderPath(input, { root, cwd }),
      (e) => e instanceof UserError && message.test(e.message),
    );
  }
});

Deno.test("findSyncedFolder walks up to the folder holding .filesync/device.json, or uses --dir", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "filesync-history-" });
  try {
    const sync = join(tmp, "Sync");
    await Deno.mkdir(join(sync, STATE_DIR), { recursive: true });
    await Deno.mkdir(join(sync, "a", "b"), { recursive: true });
    const info = { server: "localhost:8443", user: "u", device: "d", deviceId: "id" };
    await Deno.writeTextFile(join(sync, STATE_DIR, "device.json"), JSON.stringify(info));
    assert.equal((await findSyncedFolder(join(sync, "a", "b"))).root, sync);
    assert.deepEqual((await findSyncedFolder(sync)).device, info);
    assert.equal((await findSyncedFolder(tmp, "Sync")).root, sync);
    await assert.rejects(() => findSyncedFolder(tmp), /not inside a synced folder/);
    await assert.rejects(() => findSyncedFolder(sync, "a"), /is not a synced folder/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("formatTime prints UTC to the second", () => {
  assert.equal(formatTime(Date.UTC(2026, 11, 1, 20, 18, 27, 512)), "2026-12-01 20:18:27 UTC");
});

Deno.test("savedAddress reads the server address the client saved, IPv6 included", () => {
  assert.deepEqual(savedAddress("localhost:8443"), { hostname: "localhost", port: 8443 });
  assert.deepEqual(savedAddress("127.0.0.1:1"), { hostname: "127.0.0.1", port: 1 });
  assert.deepEqual(savedAddress("::1:8443"), { hostname: "::1", port: 8443 });
  assert.deepEqual(savedAddress("[::1]:8443"), { hostname: "::1", port: 8443 });
  assert.equal(savedAddress("localhost"), null);
  assert.equal(savedAddress("localhost:99999"), null);
});
