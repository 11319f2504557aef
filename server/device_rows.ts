// How a device is stored by every metadata backend, and how it is listed from its stored row and its token.
import type { DeviceRecord, TokenRecord } from "./metadata_store.ts";

/** A device as a metadata store keeps it (its token is kept apart, under its hash). */
export interface DeviceRow {
  tokenHash: string;
  device: string;
  created: number;
  revoked?: number;
}

/** A device as listed: its row, with expiry and last sight from its token (gone only after a crash of old code). */
export function deviceOf(deviceId: string, row: DeviceRow, token: TokenRecord | null): DeviceRecord {
  const record: DeviceRecord = {
    deviceId,
    device: row.device,
    created: row.created,
    expires: token?.expires ?? row.created,
  };
  if (token?.lastSeen !== undefined) record.lastSeen = token.lastSeen;
  if (row.revoked !== undefined) record.revoked = row.revoked;
  return record;
}
