// Tests for the server list: parsing `--server`, and the order and waits of the connection attempts.
import assert from "node:assert/strict";
import { UsageError } from "../protocol/user_error.ts";
import {
  parseServerList,
  sameServerNames,
  type ServerAddress,
  serverName,
  ServerRotation,
} from "./server_list.ts";

Deno.test("parseServerList() keeps the order given, IPv6 included", () => {
  assert.deepEqual(parseServerList(["a:1", "[::1]:8443", "b.example:2"]), [
    { hostname: "a", port: 1 },
    { hostname: "::1", port: 8443 },
    { hostname: "b.example", port: 2 },
  ]);
});

Deno.test("parseServerList() refuses no server, a bad one and one given twice with one line", () => {
  const cases: [string[], string][] = [
    [[], "Missing --server (see filesync client --help)"],
    [["a:1", "b"], 'Invalid --server "b": expected HOST:PORT, for example localhost:8443'],
    [["a:1", "A:1"], '--server "A:1" is given twice: list each server once'],
    [["[::1]:5", "[::1]:5"], '--server "[::1]:5" is given twice: list each server once'],
  ];
  for (const [texts, message] of cases) {
    assert.throws(
      () => parseServerList(texts),
      (error) => error instanceof UsageError && error.message === message,
      texts.join(" "),
    );
  }
});

Deno.test("serverName() names a server as device.json and the events do", () => {
  assert.equal(serverName({ hostname: "a", port: 1 }), "a:1");
  assert.equal(serverName({ hostname: "::1", port: 8443 }), "::1:8443");
});

const [A, B, C]: ServerAddress[] = ["a", "b", "c"].map((hostname) => ({ hostname, port: 1 }));

/** What happens to an attempt: it fails, or connects and later drops. */
type Outcome = "fail" | "drop";

Deno.test("ServerRotation tries each server of a round at once, backs off between rounds, moves on after a drop", () => {
  const cases: { name: string; servers: ServerAddress[]; outcomes: Outcome[]; want: string[] }[] = [
    {
      name: "one server: waits double after each failure, as with a single --server",
      servers: [A],
      outcomes: ["fail", "fail", "fail", "fail"],
      want: ["a+0", "a+250", "a+500", "a+1000", "a+2000"],
    },
    {
      name: "one server: a drop waits the first delay, and the waits start again",
      servers: [A],
      outcomes: ["fail", "fail", "drop", "fail"],
      want: ["a+0", "a+250", "a+500", "a+250", "a+500"],
    },
    {
      name: "two servers: the second right after the first, then a wait before the next round",
      servers: [A, B],
      outcomes: ["fail", "fail", "fail", "fail", "fail"],
      want: ["a+0", "b+0", "a+250", "b+0", "a+500", "b+0"],
    },
    {
      name: "the first drops: the next server after a short wait, the dropped one last",
      servers: [A, B, C],
      outcomes: ["drop", "fail", "fail"],
      want: ["a+0", "b+250", "c+0", "a+0"],
    },
    {
      name: "the last drops: wraps to the first",
      servers: [A, B, C],
      outcomes: ["fail", "fail", "drop"],
      want: ["a+0", "b+0", "c+0", "a+250"],
    },
    {
      name: "a round after a drop that fails whole backs off and starts where that round started",
      servers: [A, B],
      outcomes: ["drop", "fail", "fail", "fail"],
      want: ["a+0", "b+250", "a+0", "b+500", "a+0"],
    },
    {
      name: "waits stop growing at the largest",
      servers: [A],
      outcomes: ["fail", "fail", "fail", "fail", "fail", "fail", "fail", "fail"],
      want: ["a+0", "a+250", "a+500", "a+1000", "a+2000", "a+3000", "a+3000", "a+3000", "a+3000"],
    },
  ];
  for (const { name, servers, outcomes, want } of cases) {
    const rotation = new ServerRotation(servers, { backoffMs: [250, 3000], random: () => 0.5 });
    const got: string[] = [];
    const note = () => {
      const attempt = rotation.next();
      assert.equal(attempt.server, servers[attempt.index], name);
      got.push(`${attempt.server.hostname}+${attempt.waitMs}`);
    };
    note();
    for (const outcome of outcomes) {
      if (outcome === "fail") rotation.failed();
      else {
        rotation.connected();
        rotation.dropped();
      }
      note();
    }
    assert.deepEqual(got, want, name);
  }
});

Deno.test("ServerRotation jitters each wait by a quarter either way", () => {
  for (const [random, wait] of [[0, 188], [0.5, 250], [0.999, 312]] as const) {
    const rotation = new ServerRotation([A], { random: () => random });
    rotation.failed();
    assert.equal(rotation.next().waitMs, wait, `random ${random}`);
  }
});

Deno.test("ServerRotation needs a server", () => {
  assert.throws(() => new ServerRotation([]), RangeError);
});

Deno.test("sameServerNames() compares lists of servers whatever their order", () => {
  assert.equal(sameServerNames(["a:1", "b:2"], ["B:2", "a:1"]), true);
  assert.equal(sameServerNames(["a:1"], ["a:1", "b:2"]), false);
  assert.equal(sameServerNames(["a:1"], ["a:2"]), false);
});
