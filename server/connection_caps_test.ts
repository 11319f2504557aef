// Table tests of the connection caps.
import assert from "node:assert/strict";
import { ConnectionCaps } from "./connection_caps.ts";

Deno.test("ConnectionCaps: per address and total caps, release frees a place", () => {
  const caps = new ConnectionCaps({ maxConnections: 3, maxConnectionsPerAddress: 2 });
  const steps: [op: "admit" | "release", address: string, refused: boolean][] = [
    ["admit", "a", false],
    ["admit", "a", false],
    ["admit", "a", true], // per address
    ["admit", "b", false],
    ["admit", "c", true], // total
    ["release", "a", false],
    ["admit", "c", false],
    ["release", "x", false], // unknown: ignored
    ["admit", "d", true],
  ];
  for (const [op, address, refused] of steps) {
    if (op === "release") caps.release(address);
    else assert.equal(caps.admit(address) !== null, refused, `${op} ${address}`);
  }
  assert.equal(caps.size, 3);
});
