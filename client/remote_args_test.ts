import assert from "node:assert/strict";
import { UsageError } from "../protocol/user_error.ts";
import { defaultDevice, pickTarget, progressLines, type Target } from "./remote_args.ts";

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
