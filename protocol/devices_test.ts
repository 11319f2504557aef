// Table test of how devices are listed on a terminal.
import assert from "node:assert/strict";
import { describeDevices, deviceStatus } from "./devices.ts";
import type { WireDevice } from "./messages.ts";

const DAY = 86_400_000;
const laptop: WireDevice = { deviceId: "3f2a9c0d1e2b4a5c", device: "laptop", created: 0, expires: 90 * DAY };

Deno.test("deviceStatus() tells active, expired and revoked tokens apart", () => {
  const cases: [WireDevice, number, string][] = [
    [laptop, 0, "active"],
    [laptop, 90 * DAY, "expired"],
    [{ ...laptop, revoked: 5 }, 0, "revoked"],
    [{ ...laptop, revoked: 5 }, 100 * DAY, "revoked"],
  ];
  for (const [device, now, expected] of cases) assert.equal(deviceStatus(device, now), expected);
});

Deno.test("describeDevices() lists each device on one line, names aligned, the asking one marked", () => {
  assert.deepEqual(
    describeDevices([
      { ...laptop, lastSeen: DAY },
      { deviceId: "00112233445566aa", device: "pc", created: DAY, expires: 91 * DAY, current: true },
      {
        deviceId: "99887766554433bb",
        device: "phone",
        created: 2 * DAY,
        expires: 92 * DAY,
        revoked: 3 * DAY,
      },
      { deviceId: "0a0b0c0d0e0f0102", device: "old", created: 0, expires: DAY },
    ], { user: "alice", now: 10 * DAY }),
    [
      "4 devices of alice:",
      "laptop  3f2a9c0d1e2b4a5c  logged in 1970-01-01 00:00:00 UTC, last seen 1970-01-02 00:00:00 UTC, " +
      "token expires 1970-04-01 00:00:00 UTC",
      "pc      00112233445566aa  logged in 1970-01-02 00:00:00 UTC, token expires 1970-04-02 00:00:00 UTC  " +
      "(this device)",
      "phone   99887766554433bb  logged in 1970-01-03 00:00:00 UTC, revoked 1970-01-04 00:00:00 UTC",
      "old     0a0b0c0d0e0f0102  logged in 1970-01-01 00:00:00 UTC, token expired 1970-01-02 00:00:00 UTC",
    ],
  );
  assert.deepEqual(describeDevices([laptop], { user: "bob", now: 0 })[0], "1 device of bob:");
  assert.deepEqual(describeDevices([], { user: "bob", now: 0 }), ["bob has no devices"]);
  const hostile = describeDevices([{ ...laptop, device: "x\u001b[2J" }], { user: "bob", now: 0 })[1];
  assert.ok(hostile.startsWith("x?[2J  3f2a"), hostile);
});
