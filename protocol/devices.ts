// How a user's devices are shown on a terminal, by `filesync user devices` (server) and `filesync devices` (client).
import type { WireDevice } from "./messages.ts";
import { safeText } from "./replies.ts";

/** A time for the terminal: `2026-12-01 20:18:27 UTC`. */
function utc(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

/** What state a device's token is in at `now`. */
export function deviceStatus(device: WireDevice, now: number): "active" | "expired" | "revoked" {
  if (device.revoked !== undefined) return "revoked";
  return device.expires <= now ? "expired" : "active";
}

/**
 * The lines that list a user's devices: a heading, then one line per device with its name, id, login time,
 * last connection, and token expiry (or revocation); the asking device is marked `(this device)`.
 *
 * @example
 * ```ts
 * describeDevices([{ deviceId: "3f2a9c0d1e2b4a5c", device: "laptop", created: 0, expires: 864e5 }], {
 *   user: "alice",
 *   now: 0,
 * });
 * // ["1 device of alice:",
 * //  "laptop  3f2a9c0d1e2b4a5c  logged in 1970-01-01 00:00:00 UTC, token expires 1970-01-02 00:00:00 UTC"]
 * ```
 */
export function describeDevices(
  devices: readonly WireDevice[],
  options: { user: string; now: number },
): string[] {
  if (devices.length === 0) return [`${options.user} has no devices`];
  // Names come from the devices themselves: terminal escapes in them are shown as "?".
  const names = devices.map((d) => safeText(d.device));
  const width = Math.max(...names.map((n) => n.length));
  const lines = [`${devices.length} device${devices.length === 1 ? "" : "s"} of ${options.user}:`];
  for (const [i, d] of devices.entries()) {
    const parts = [`logged in ${utc(d.created)}`];
    if (d.lastSeen !== undefined) parts.push(`last seen ${utc(d.lastSeen)}`);
    const status = deviceStatus(d, options.now);
    if (status === "revoked") parts.push(`revoked ${utc(d.revoked!)}`);
    else parts.push(`token ${status === "expired" ? "expired" : "expires"} ${utc(d.expires)}`);
    lines.push(
      `${names[i].padEnd(width)}  ${d.deviceId}  ${parts.join(", ")}${d.current ? "  (this device)" : ""}`,
    );
  }
  return lines;
}
