// Tests of the stop signals per platform.
import assert from "node:assert/strict";
import { stopSignals } from "./stop_signals.ts";

Deno.test("stopSignals() is SIGINT and SIGTERM on Linux and macOS", () => {
  assert.deepEqual(stopSignals("linux"), ["SIGINT", "SIGTERM"]);
  assert.deepEqual(stopSignals("darwin"), ["SIGINT", "SIGTERM"]);
});

Deno.test("stopSignals() avoids SIGTERM on Windows, where Deno cannot listen for it", () => {
  assert.deepEqual(stopSignals("windows"), ["SIGINT", "SIGBREAK"]);
});
