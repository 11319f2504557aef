// Which of a user's devices a `filesync user revoke NAME DEVICE` means: by id, or by a name only one device has.
import type { DeviceRecord } from "./metadata_store.ts";

/** The device a query names, or why none is meant. */
export type DeviceMatch = { ok: true; device: DeviceRecord } | { ok: false; error: string };

/**
 * Finds the device that `query` names among a user's devices: the one with that id (revoked or not), else the
 * one device not yet revoked with that name. A name that several live devices share is refused (the error
 * lists their ids); a name only revoked devices have gives the latest of them (so a second revocation says
 * "already revoked" instead of "unknown").
 *
 * @example
 * ```ts
 * findDevice([{ deviceId: "a1", device: "laptop", created: 1, expires: 2 }], "laptop", { user: "alice" });
 * // { ok: true, device: { deviceId: "a1", … } }
 * ```
 */
export function findDevice(
  devices: readonly DeviceRecord[],
  query: string,
  options: { user: string },
): DeviceMatch {
  const byId = devices.find((d) => d.deviceId === query);
  if (byId) return { ok: true, device: byId };
  const named = devices.filter((d) => d.device === query);
  const live = named.filter((d) => d.revoked === undefined);
  if (live.length === 1) return { ok: true, device: live[0] };
  if (live.length > 1) {
    return {
      ok: false,
      error: `${live.length} devices of ${options.user} are named "${query}" (ids ${
        live.map((d) => d.deviceId).join(", ")
      }): give the device id`,
    };
  }
  if (named.length > 0) {
    const latest = named.reduce((a, b) => (b.revoked ?? 0) > (a.revoked ?? 0) ? b : a);
    return { ok: true, device: latest };
  }
  return {
    ok: false,
    error: `No device "${query}" of user "${options.user}" (see filesync user devices ${options.user})`,
  };
}
