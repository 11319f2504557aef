// What client and server share about file locks: the lock as the wire carries it, codes, lease defaults.

/** Error code of a change or lock refused because another device holds a lock on the path. */
export const LOCKED_CODE = "locked";
/** Error code of UNLOCK on a path nobody holds a lock on. */
export const NOT_LOCKED_CODE = "not_locked";
/** Error code of UNLOCK by a device that does not hold the lock (without `force`, or not the owner). */
export const NOT_HOLDER_CODE = "not_holder";
/** Error code of LOCK on a folder. */
export const NOT_A_FILE_CODE = "not_a_file";

/** A lease lasts this long unless LOCK asks for another length. */
export const DEFAULT_LEASE_MINUTES = 30;
/** The shortest lease LOCK accepts: 0.6 seconds (short leases are for tests). */
export const MIN_LEASE_MINUTES = 0.01;
/** The longest lease LOCK accepts: one week. */
export const MAX_LEASE_MINUTES = 7 * 24 * 60;

/** Who holds a lock: a user on one of their devices. */
export interface LockHolder {
  /** The holder's user name. */
  user: string;
  /** The holder's device id (unique per device). */
  deviceId: string;
  /** The holder's device name (what people read). */
  device: string;
}

/** A lock as LOCK, LOCKS and the `locks` push report it. */
export interface WireLock extends LockHolder {
  /** The locked file. */
  path: string;
  /** When the lease ends, on the server's clock (ms since the epoch). */
  expires: number;
  /** Time left of the lease when the server sent this (ms): what a device schedules by, whatever its clock. */
  remainingMs: number;
  /** Length of the lease: what a renewal extends it to. */
  leaseMs: number;
  /** True when the device receiving this holds the lock. */
  mine: boolean;
}

/**
 * The holder in words, for messages: `alice on device "laptop"`.
 *
 * @example
 * ```ts
 * describeHolder({ user: "alice", deviceId: "d1", device: "laptop" }); // 'alice on device "laptop"'
 * ```
 */
export function describeHolder(holder: LockHolder): string {
  return `${holder.user} on device "${holder.device}"`;
}
