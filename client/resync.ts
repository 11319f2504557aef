// What a device keeps of its base when the server's journal is not the one its cursor belongs to (pure rules).
import type { ResyncReason } from "../protocol/messages.ts";
import type { BaseEntry, RemoteEntry } from "./reconcile.ts";

/**
 * How the base changes when the device resynchronises from a fresh snapshot of the server: for each path of
 * the base whose entry must change, the new entry (same content with the server's rev) or null (forgotten).
 *
 * - "expired": the server compacted the journal past the cursor but its history is the one the device saw,
 *   so the base stays as it is: reconcile then applies what changed meanwhile (deletes included).
 * - "behind", "diverged", "epoch": the server may lack what this device last agreed with it (restored from a
 *   backup, or another journal altogether). A base entry is kept only where the snapshot has the same content
 *   (kind and hash) at that path, with the snapshot's rev; elsewhere it is dropped. With no base, reconcile
 *   never deletes or overwrites a local file: what the server lacks is uploaded, and where both sides hold
 *   different content a conflicted copy keeps the loser.
 *
 * @example
 * ```ts
 * const changes = adjustBase("behind", {
 *   base: new Map([["a", { kind: "file", hash: "h1", rev: 9 }], ["b", { kind: "file", hash: "h2", rev: 10 }]]),
 *   remote: new Map([["a", { kind: "file", hash: "h1", size: 1, mtime: 1, rev: 3, device: "d" }]]),
 * });
 * // changes: Map { "a" => { kind: "file", hash: "h1", rev: 3 }, "b" => null }
 * ```
 */
export function adjustBase<B extends BaseEntry>(
  reason: ResyncReason,
  snapshots: { base: ReadonlyMap<string, B>; remote: ReadonlyMap<string, RemoteEntry> },
): Map<string, B | null> {
  const changes = new Map<string, B | null>();
  if (reason === "expired") return changes;
  for (const [path, base] of snapshots.base) {
    const remote = snapshots.remote.get(path);
    const same = remote !== undefined && remote.kind === base.kind &&
      (base.kind === "dir" || remote.hash === base.hash);
    if (!same) changes.set(path, null);
    else if (remote.rev !== base.rev) changes.set(path, { ...base, rev: remote.rev });
  }
  return changes;
}

/** A user-facing line saying why the device resynchronises. */
export function describeResync(reason: ResyncReason): string {
  switch (reason) {
    case "expired":
      return "the server no longer keeps the journal since this device's last sync; catching up from a snapshot";
    case "behind":
      return "the server's journal is older than this device's (restored from a backup?); resynchronizing: " +
        "what the server lacks is uploaded again, differing files are kept as conflicted copies";
    case "diverged":
      return "the server's journal has another history than this device saw (restored from a backup?); " +
        "resynchronizing: what the server lacks is uploaded again, differing files are kept as conflicted copies";
    case "epoch":
      return "the server's journal is a different one (new or replaced data folder); resynchronizing: " +
        "what the server lacks is uploaded again, differing files are kept as conflicted copies";
  }
}

/** True for the reasons a MONITOR may be refused with. */
export function isResyncReason(value: unknown): value is ResyncReason {
  return value === "behind" || value === "diverged" || value === "epoch" || value === "expired";
}
