// The lock rules as pure functions: taking, renewing and releasing leases, and which locks block a change.
import {
  DEFAULT_LEASE_MINUTES,
  describeHolder,
  LOCKED_CODE,
  type LockHolder,
  NOT_A_FILE_CODE,
  NOT_HOLDER_CODE,
  NOT_LOCKED_CODE,
  type WireLock,
} from "../protocol/locks.ts";
import type { EntryRecord } from "./metadata_store.ts";

/** A stored lock: a lease on a file of a namespace, held by one device. */
export interface LockRecord extends LockHolder {
  /** The locked file. */
  path: string;
  /** When it was first taken (ms since the epoch). */
  taken: number;
  /** When the lease ends (ms since the epoch); a renewal moves it. */
  expires: number;
  /** Length of the lease (ms): what a renewal extends it to. */
  leaseMs: number;
}

/** A lock decision that refuses: code and one line for the user. */
export interface LockRefusal {
  /** Always false. */
  ok: false;
  /** Error code: "locked", "not_locked", "not_holder", "not_a_file" or "not_found". */
  code: string;
  /** One line for the user. */
  error: string;
  /** The lock in the way, when there is one. */
  lock?: LockRecord;
}

/** True while the lease lasts. */
export function isLive(lock: LockRecord, now: number): boolean {
  return lock.expires > now;
}

/** True when both name the same device (the holder's own changes pass its lock). */
export function sameHolder(a: LockHolder, b: LockHolder): boolean {
  return a.user === b.user && a.deviceId === b.deviceId;
}

/**
 * True when `user` owns namespace `ns` and may so force any lock in it open. Today every namespace is its user's
 * own (the namespace is named after the user); shares will add namespaces owned by someone else.
 */
export function ownsNamespace(user: string, ns: string): boolean {
  return user === ns;
}

/** The refusal line of a change that a lock stops. */
export function lockedMessage(path: string, lock: LockRecord): string {
  const where = lock.path === path ? `"${path}"` : `"${path}" holds "${lock.path}", which`;
  return `${where} is locked by ${describeHolder(lock)}`;
}

/** What {@linkcode blockingLock} looks for. */
export interface LockQuery {
  /** The paths a change writes. */
  paths: readonly string[];
  /** Who makes the change: its own locks do not stop it. */
  holder: LockHolder;
  /** The server's clock. */
  now: number;
  /** Whether a lock on a file below one of the paths counts too (a delete or move of a folder). @default true */
  below?: boolean;
}

/**
 * The live lock of another device that stops a change of `query.paths` (a lock on one of them, or on a file
 * below one of them: a folder holding a locked file can be neither deleted nor moved), or null when none does.
 *
 * @example
 * ```ts
 * const lock = { path: "d/a", user: "u", deviceId: "A", device: "a", taken: 0, expires: 100, leaseMs: 100 };
 * const b = { user: "u", deviceId: "B", device: "b" };
 * blockingLock([lock], { paths: ["d"], holder: b, now: 50 }); // lock
 * blockingLock([lock], { paths: ["d"], holder: b, now: 50, below: false }); // null
 * blockingLock([lock], { paths: ["d"], holder: b, now: 100 }); // null: expired
 * ```
 */
export function blockingLock(locks: Iterable<LockRecord>, query: LockQuery): LockRecord | null {
  const below = query.below ?? true;
  for (const lock of locks) {
    if (!isLive(lock, query.now) || sameHolder(lock, query.holder)) continue;
    for (const path of query.paths) {
      if (lock.path === path || (below && lock.path.startsWith(`${path}/`))) return lock;
    }
  }
  return null;
}

/** What LOCK asks for. */
export interface LockRequest {
  /** The file to lock. */
  path: string;
  /** Who asks. */
  holder: LockHolder;
  /** Lease length in minutes; absent: a renewal keeps the lock's length, a new lock gets the default. */
  minutes?: number;
  /** Only renew the caller's live lock (a client's periodic renewal): never take a lock anew. */
  renew?: boolean;
  /** The server's clock. */
  now: number;
}

/**
 * Decides a LOCK: a new lease on a file nobody else holds, or a renewal (from now, for the lease's length) of
 * the caller's own. Refuses a folder, a missing file, and a file another device holds (naming it).
 *
 * @example
 * ```ts
 * const file = { path: "a", kind: "file", hash: "h", size: 1, mtime: 0, rev: 1, device: "x" } as const;
 * const me = { user: "u", deviceId: "A", device: "a" };
 * decideLock(null, file, { path: "a", holder: me, now: 0 }); // { ok: true, lock: { …, expires: 1800000 } }
 * ```
 */
export function decideLock(
  current: LockRecord | null,
  entry: EntryRecord | null,
  request: LockRequest,
): { ok: true; lock: LockRecord; renewed: boolean } | LockRefusal {
  const { path, holder, now } = request;
  const live = current !== null && isLive(current, now) ? current : null;
  if (live && !sameHolder(live, holder)) {
    return {
      ok: false,
      code: LOCKED_CODE,
      error: `"${path}" is already locked by ${describeHolder(live)}`,
      lock: live,
    };
  }
  if (request.renew && live === null) {
    return { ok: false, code: NOT_LOCKED_CODE, error: `"${path}" is no longer locked by this device` };
  }
  if (entry === null) return { ok: false, code: "not_found", error: `No file "${path}" on the server` };
  if (entry.kind !== "file") {
    return { ok: false, code: NOT_A_FILE_CODE, error: `"${path}" is a folder: only files can be locked` };
  }
  const leaseMs = request.minutes !== undefined
    ? Math.round(request.minutes * 60_000)
    : live?.leaseMs ?? DEFAULT_LEASE_MINUTES * 60_000;
  const lock: LockRecord = {
    path,
    user: holder.user,
    deviceId: holder.deviceId,
    device: holder.device,
    taken: live?.taken ?? now,
    expires: now + leaseMs,
    leaseMs,
  };
  return { ok: true, lock, renewed: live !== null };
}

/** What UNLOCK asks for. */
export interface UnlockRequest {
  /** The file to unlock. */
  path: string;
  /** Who asks. */
  holder: LockHolder;
  /** Release another device's lock (only the namespace's owner may). */
  force: boolean;
  /** Whether the caller owns the namespace (see {@linkcode ownsNamespace}). */
  owner: boolean;
  /** The server's clock. */
  now: number;
}

/**
 * Decides an UNLOCK: the holder releases its lock; the namespace's owner releases any with `force`. Refuses a
 * path without a live lock, and another device's lock without `force` (suggesting it to the owner).
 */
export function decideUnlock(
  current: LockRecord | null,
  request: UnlockRequest,
): { ok: true; released: LockRecord } | LockRefusal {
  const { path, holder, now } = request;
  if (current === null || !isLive(current, now)) {
    return { ok: false, code: NOT_LOCKED_CODE, error: `"${path}" is not locked` };
  }
  if (sameHolder(current, holder)) return { ok: true, released: current };
  if (request.force && request.owner) return { ok: true, released: current };
  const hint = request.owner
    ? ": use --force to release it anyway"
    : request.force
    ? ": only the owner of the files can force it open"
    : "";
  return {
    ok: false,
    code: NOT_HOLDER_CODE,
    error: `"${path}" is locked by ${describeHolder(current)}, not by this device${hint}`,
    lock: current,
  };
}

/** A lock as the wire carries it to `viewer` (`mine` when the viewer holds it). */
export function wireLock(lock: LockRecord, viewer: LockHolder, now: number): WireLock {
  return {
    path: lock.path,
    user: lock.user,
    deviceId: lock.deviceId,
    device: lock.device,
    expires: lock.expires,
    remainingMs: Math.max(0, lock.expires - now),
    leaseMs: lock.leaseMs,
    mine: sameHolder(lock, viewer),
  };
}

/** The live locks among these, as the wire carries them to `viewer`, by path. */
export function wireLocks(locks: Iterable<LockRecord>, viewer: LockHolder, now: number): WireLock[] {
  const out: WireLock[] = [];
  for (const lock of locks) if (isLive(lock, now)) out.push(wireLock(lock, viewer, now));
  return out.sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
}
