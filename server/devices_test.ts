// Table test of findDevice: which device a revoke means.
import assert from "node:assert/strict";
import { findDevice } from "./devices.ts";
import type { DeviceRecord } from "./metadata_store.ts";

const d = (deviceId: string, device: string, revoked?: number): DeviceRecord => ({
  deviceId,
  device,
  created: 1,
  expires: 2,
  ...(revoked === undefined ? {} : { revoked }),
});

const devices = [
  d("a1", "laptop"),
  d("b2", "phone"),
  d("c3", "phone"),
  d("e5", "old", 10),
  d("f6", "old", 30),
  d("g7", "old", 20),
  d("h8", "tablet", 5),
  d("i9", "tablet"),
  d("phone", "desk"),
];

Deno.test("findDevice() picks by id first, then by a name one live device has", () => {
  const cases: [query: string, expected: string | RegExp][] = [
    ["a1", "a1"],
    ["laptop", "a1"],
    ["b2", "b2"],
    ["c3", "c3"],
    ["phone", "phone"], // an id wins over a name
    ["e5", "e5"], // a revoked device by id
    ["old", "f6"], // only revoked devices have the name: the latest revocation
    ["tablet", "i9"], // the live one, not the revoked one
    ["desk", "phone"],
    ["nope", /^No device "nope" of user "alice" \(see filesync user devices alice\)$/],
    ["Laptop", /^No device "Laptop"/],
    ["", /^No device ""/],
  ];
  for (const [query, expected] of cases) {
    const match = findDevice(devices, query, { user: "alice" });
    if (typeof expected === "string") {
      assert.ok(match.ok, `${query}: ${!match.ok && match.error}`);
      assert.equal(match.device.deviceId, expected, query);
    } else {
      assert.ok(!match.ok, `${query} matched`);
      assert.match(match.error, expected, query);
    }
  }
});

Deno.test("findDevice() refuses a name several live devices share, listing their ids", () => {
  const match = findDevice([d("b2", "phone"), d("c3", "phone")], "phone", { user: "alice" });
  assert.ok(!match.ok);
  assert.equal(match.error, '2 devices of alice are named "phone" (ids b2, c3): give the device id');
});
