import assert from "node:assert/strict";
import { join } from "node:path";
import { UsageError, UserError } from "../protocol/user_error.ts";
import {
  defaultDevice,
  formatLsLine,
  getCommand,
  lsCommand,
  pickTarget,
  progressLines,
  putCommand,
  rmCommand,
  type Target,
} from "./remote_cli.ts";

const ALICE: Target = { hostname: "sync.example.org", port: 8443, user: "alice" };
const BOB: Target = { hostname: "sync.example.org", port: 8443, user: "bob" };
const OTHER: Target = { hostname: "10.0.0.2", port: 9000, user: "alice" };

Deno.test("pickTarget() takes --server and --user, else the one kept login that fits", () => {
  const cases: [{ server?: string; user?: string }, Target[], Target | RegExp][] = [
    [{ server: "h:1", user: "u" }, [], { hostname: "h", port: 1, user: "u" }],
    [{ server: "[::1]:8443", user: "u" }, [ALICE], { hostname: "::1", port: 8443, user: "u" }],
    [{}, [ALICE], ALICE],
    [{}, [], /Missing --server and --user: no login is kept/],
    [{}, [ALICE, BOB], /several logins are kept \(alice on sync\.example\.org:8443, bob on/],
    [{ user: "bob" }, [ALICE, BOB], BOB],
    [{ user: "carol" }, [ALICE, BOB], /Missing --server: no login is kept/],
    [{ server: "Sync.Example.org:8443" }, [ALICE, BOB], /Missing --user: several logins/],
    [{ server: "Sync.Example.org:8443" }, [ALICE, OTHER], ALICE],
    [{ server: "Sync.Example.org:8443", user: "alice" }, [ALICE], { ...ALICE, hostname: "Sync.Example.org" }],
    [{ server: "10.0.0.2:9000" }, [ALICE, OTHER], OTHER],
    [{ server: "10.0.0.2:9001" }, [ALICE, OTHER], /Missing --user/],
    [{ server: "nope" }, [ALICE], /Invalid --server "nope"/],
  ];
  for (const [given, logins, want] of cases) {
    if (want instanceof RegExp) {
      assert.throws(
        () => pickTarget(given, logins),
        (e: Error) => e instanceof UsageError && want.test(e.message),
      );
    } else {
      assert.deepEqual(pickTarget(given, logins), want, JSON.stringify(given));
    }
  }
});

Deno.test("defaultDevice() names the host and says it is the command line, within 64 characters", () => {
  assert.equal(defaultDevice("laptop"), "laptop (cli)");
  assert.equal(defaultDevice("  "), "device (cli)");
  const long = defaultDevice("x".repeat(100));
  assert.ok(long.length <= 64 && long.endsWith(" (cli)"), long);
});

Deno.test("formatLsLine() shows kind, size, time and name; folders with a slash", () => {
  const hash = "ab".repeat(32);
  const mtime = Date.UTC(2026, 11, 1, 20, 18, 27);
  assert.equal(
    formatLsLine({
      path: "Docs/a.txt",
      kind: "file",
      hash,
      size: 5 * 1024 * 1024,
      mtime,
      rev: 3,
      device: "A",
    }, "a.txt"),
    "file     5.0 MiB  2026-12-01 20:18:27 UTC  a.txt",
  );
  assert.equal(
    formatLsLine({ path: "Docs", kind: "dir", hash: "", size: 0, mtime: 0, rev: 1, device: "A" }, "Docs"),
    "dir            -  -                        Docs/",
  );
});

Deno.test("bad use is refused before anything is sent: wrong counts, bad paths, local files in the way", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const options = { cwd: tmp, env: { XDG_CONFIG_HOME: join(tmp, "cfg") }, print: () => {}, log: () => {} };
    await Deno.writeTextFile(join(tmp, "here.txt"), "mine");
    await Deno.mkdir(join(tmp, "folder"));
    const cases: [() => Promise<number>, typeof UserError, RegExp][] = [
      [() => lsCommand(["a", "b"], options), UsageError, /Wrong number of paths \(see filesync ls --help\)/],
      [() => getCommand([], options), UsageError, /Wrong number of paths/],
      [() => putCommand(["a", "b", "c"], options), UsageError, /Wrong number of paths/],
      [() => rmCommand([], options), UsageError, /Wrong number of paths/],
      [() => lsCommand(["a/../b"], options), UserError, /\.\./],
      [() => getCommand(["/"], options), UserError, /Name a file on the server/],
      [() => getCommand(["docs/here.txt"], options), UserError, /here\.txt" exists: pass --force/],
      [() => getCommand(["x.txt", "missing/x.txt"], options), UserError, /Folder ".*missing" does not exist/],
      [() => putCommand(["nothing.txt"], options), UserError, /No file "nothing\.txt"/],
      [() => putCommand(["folder"], options), UserError, /"folder" is a folder: filesync put sends one file/],
      [() => putCommand(["here.txt", "a/../b"], options), UserError, /\.\./],
      [() => rmCommand(["/"], options), UserError, /Refusing to delete all your files/],
      [() => rmCommand(["a//b"], options), UserError, /Invalid path/],
      [() => lsCommand([], options), UsageError, /Missing --server and --user/],
    ];
    for (const [command, type, want] of cases) {
      await assert.rejects(command(), (e: Error) => e instanceof type && want.test(e.message));
    }
    await assert.rejects(lsCommand(["--bogus"], options), (e: Error) => e instanceof TypeError);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("every command prints its help with --help", async () => {
  for (
    const [command, word] of [[lsCommand, "ls"], [getCommand, "get"], [putCommand, "put"], [
      rmCommand,
      "rm",
    ]] as const
  ) {
    const lines: string[] = [];
    assert.equal(await command(["--help"], { print: (l) => lines.push(l) }), 0);
    assert.match(lines.join("\n"), new RegExp(`Usage: filesync ${word} `));
    assert.match(lines.join("\n"), /--server HOST:PORT/);
  }
});

Deno.test("progressLines() is quiet for two seconds, then prints a line every five", () => {
  let clock = 1000;
  const lines: string[] = [];
  const progress = progressLines((l) => lines.push(l), () => clock);
  const total = 1024 * 1024 * 1024;
  progress("big.bin", 1, total, "up");
  clock += 1999;
  progress("big.bin", 2, total, "up");
  assert.deepEqual(lines, []);
  clock += 1;
  progress("big.bin", total / 4, total, "up");
  clock += 4999;
  progress("big.bin", total / 2, total, "up");
  clock += 1;
  progress("big.bin", total / 2, total, "down");
  clock += 10_000;
  progress("big.bin", total, total, "up"); // done: the result line says the rest
  assert.deepEqual(lines, ["uploading big.bin: 25% of 1.00 GiB", "downloading big.bin: 50% of 1.00 GiB"]);
});
