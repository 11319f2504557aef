// Retention of history and trash as pure decisions: which versions and trash items have expired.
import type { RetentionPolicy, TrashRecord, VersionRecord } from "./metadata_store.ts";

const DAY_MS = 24 * 3600 * 1000;

/** The default policy: 30 days, no limit on the number of versions. */
export const DEFAULT_RETENTION: RetentionPolicy = { keepDays: 30 };

/** True once a trash item is older than the policy keeps. */
export function trashExpired(item: TrashRecord, policy: RetentionPolicy, now: number): boolean {
  return now >= item.deletedAt + policy.keepDays * DAY_MS;
}

/**
 * The versions of one file that have expired: older than `keepDays` since they stopped being current, or
 * beyond the newest `keepVersions`. A version that a kept trash item needs (the deleted file's last content)
 * is not dropped for the count, only for its age.
 */
export function expiredVersions(
  versions: readonly VersionRecord[],
  policy: RetentionPolicy,
  now: number,
  options: { needed?: ReadonlySet<number> } = {},
): VersionRecord[] {
  const newestFirst = [...versions].sort((a, b) => b.rev - a.rev);
  let kept = 0;
  const expired: VersionRecord[] = [];
  for (const version of newestFirst) {
    const old = now >= version.until + policy.keepDays * DAY_MS;
    const needed = options.needed?.has(version.rev) ?? false;
    const tooMany = policy.keepVersions !== undefined && kept >= policy.keepVersions && !needed;
    if (old || tooMany) expired.push(version);
    else kept++;
  }
  return expired;
}

/**
 * Splits a namespace's history into what is kept and what has expired. Versions are grouped by path; trash
 * items of files keep their version alive against the count limit.
 */
export function expireHistory(
  versions: readonly VersionRecord[],
  trash: readonly TrashRecord[],
  policy: RetentionPolicy,
  now: number,
): { versions: VersionRecord[]; trash: TrashRecord[] } {
  const expiredTrash = trash.filter((t) => trashExpired(t, policy, now));
  const needed = new Map<string, Set<number>>();
  for (const item of trash) {
    if (item.kind !== "file" || expiredTrash.includes(item)) continue;
    let set = needed.get(item.path);
    if (!set) needed.set(item.path, set = new Set());
    set.add(Number(item.version));
  }
  const byPath = new Map<string, VersionRecord[]>();
  for (const v of versions) {
    let list = byPath.get(v.path);
    if (!list) byPath.set(v.path, list = []);
    list.push(v);
  }
  const expired: VersionRecord[] = [];
  for (const [path, list] of byPath) {
    expired.push(...expiredVersions(list, policy, now, { needed: needed.get(path) }));
  }
  return { versions: expired, trash: expiredTrash };
}
