// Journal compaction: entries older than the retention are deleted by garbage collection (pure plan + pass).
import type { JournalMark, MetadataStore } from "./metadata_store.ts";

const DAY_MS = 24 * 3600 * 1000;

/** What one compaction pass does to a namespace's journal. */
export interface CompactionPlan {
  /** Delete the entries up to this seq (null: nothing to compact). */
  through: number | null;
  /** The marks to keep, with this pass's mark added. */
  marks: JournalMark[];
}

/**
 * Plans the compaction of one journal. Entries carry no time, so each pass records a mark (the latest seq at
 * `now`); every entry up to a mark's seq was committed before the mark's time, so once a mark is older than
 * `keepDays` the entries up to it are compacted. Marks at or below the compaction point are dropped. Entries
 * are thus deleted between `keepDays` and `keepDays` plus one collection interval after their commit.
 *
 * @example
 * ```ts
 * const day = 86_400_000;
 * planCompaction([{ seq: 40, time: 0 }], { latest: 90, now: 31 * day, keepDays: 30, compacted: 0 });
 * // { through: 40, marks: [{ seq: 90, time: 31 * day }] }
 * ```
 */
export function planCompaction(
  marks: readonly JournalMark[],
  options: { latest: number; now: number; keepDays: number; compacted: number },
): CompactionPlan {
  const { latest, now, keepDays, compacted } = options;
  const all = [...marks].sort((a, b) => a.seq - b.seq || a.time - b.time);
  if (latest > 0 && (all.length === 0 || all[all.length - 1].seq < latest)) {
    all.push({ seq: latest, time: now });
  }
  const cutoff = now - keepDays * DAY_MS;
  let through: number | null = null;
  for (const mark of all) {
    if (mark.time <= cutoff && mark.seq > compacted && mark.seq > (through ?? 0)) through = mark.seq;
  }
  const done = Math.max(compacted, through ?? 0);
  return { through, marks: all.filter((m) => m.seq > done) };
}

/** Options of {@linkcode compactJournals}. */
export interface CompactOptions {
  /** The clock (ms). */
  now: number;
  /** Days journal entries are kept. */
  keepDays: number;
}

/** Runs one compaction pass over every namespace; returns how many journal entries were deleted. */
export async function compactJournals(store: MetadataStore, options: CompactOptions): Promise<number> {
  let removed = 0;
  for await (const ns of store.listNamespaces()) {
    const plan = planCompaction(await store.getJournalMarks(ns), {
      latest: await store.latestSeq(ns),
      now: options.now,
      keepDays: options.keepDays,
      compacted: (await store.getCompaction(ns))?.seq ?? 0,
    });
    if (plan.through !== null) removed += await store.compactJournal(ns, plan.through);
    await store.setJournalMarks(ns, plan.marks);
  }
  return removed;
}
