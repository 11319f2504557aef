// Whether a device's journal cursor belongs to this server's journal (pure rule behind MONITOR's resync refusal).
import type { ResyncReason } from "../protocol/messages.ts";

/** What a device says about its cursor in MONITOR. */
export interface DeviceCursor {
  /** The last sequence number the device applied (0: none, it wants a snapshot). */
  since: number;
  /** Epoch of the journal the cursor belongs to (absent from devices that never saw one). */
  epoch?: string;
  /** Tag of the journal entry at `since` as the device saw it (absent when unknown). */
  tag?: string;
}

/** What the server knows of its own journal for the check. */
export interface JournalFacts {
  /** This server's journal epoch (not checked when absent). */
  epoch?: string;
  /** The namespace's latest sequence number. */
  latest: number;
  /** The compaction point: entries up to `seq` are gone; `tag` was the tag of the entry at `seq`. */
  compacted: { seq: number; tag?: string } | null;
  /** Tag of the kept journal entry at `since` (undefined if there is none or it has no tag). */
  tagAtSince?: string;
}

/**
 * Why a device with this cursor must resynchronise from a snapshot instead of following the journal, or null
 * when it may follow it from `since`. Checked in this order: another journal ("epoch"); a cursor beyond the
 * journal ("behind": restored from an older backup); a cursor inside the compacted part ("expired"); an entry
 * at the cursor with another tag than the device saw ("diverged": restored, then other commits). A cursor of 0
 * is a fresh start and always accepted; what a device or an old journal does not record is not checked.
 *
 * @example
 * ```ts
 * resyncReason({ since: 12, epoch: "e1" }, { epoch: "e1", latest: 7, compacted: null }); // "behind"
 * resyncReason({ since: 5, epoch: "e1", tag: "t5" }, { epoch: "e1", latest: 7, compacted: null, tagAtSince: "t5" }); // null
 * ```
 */
export function resyncReason(device: DeviceCursor, journal: JournalFacts): ResyncReason | null {
  if (device.since === 0) return null;
  if (device.epoch !== undefined && journal.epoch !== undefined && device.epoch !== journal.epoch) {
    return "epoch";
  }
  if (device.since > journal.latest) return "behind";
  const compacted = journal.compacted;
  if (compacted && device.since < compacted.seq) return "expired";
  const tag = compacted && device.since === compacted.seq ? compacted.tag : journal.tagAtSince;
  if (device.tag !== undefined && tag !== undefined && tag !== device.tag) return "diverged";
  return null;
}
